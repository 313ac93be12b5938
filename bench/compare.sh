#!/usr/bin/env bash
# Compare shmkit-bench against the Boost.Interprocess peer benchmark.
#
#   bench/compare.sh [-n RUNS] [-f] [-i] [group...]
#
# Runs every group RUNS times (default 3), interleaved: for each run and each group,
# first the peer (A), then shmkit-bench (B), each group in its own process. With -i, the
# iceoryx2 peer (../shared/peer/iceoryx2-bench, built under the target directory) runs
# too, before the other two, for the groups it has (mq_pingpong, mq_pingpong_samecpu,
# mq_pingpong_poll, mq_throughput), and the table gets its columns. Prints a
# markdown table of medians, the ratios, the CPU time per op of the hand-off workloads
# (shmkit's `# cpu` lines: both processes, user+system), and the `#` lines (memory
# accounting, latency percentiles) of both sides. Default groups: alloc_free_fixed
# alloc_free_mixed alloc_many_free alloc_free_mt named open_existing create_segment
# pingpong pingpong_samecpu mutex_uncontended baseline_std. A group the peer does not have
# (alloc_free_mt, open_existing_populated, mutex_uncontended, handoff_latency) runs on the
# shmkit side only. A read-only peer checkout is built in a copy under the target directory.
# -f runs both sides under SCHED_FIFO (chrt -f 10; needs root or CAP_SYS_NICE), so that on
# a loaded machine other processes do not preempt the timed loops (wall time then tracks
# CPU time).
#
# Environment:
#   PEER_DIR          the peer (default: <repo>/../shared/peer/boost-bench)
#   ICEORYX2_DIR      the iceoryx2 peer (default: <repo>/../shared/peer/iceoryx2-bench)
#   CARGO_TARGET_DIR  where cargo builds (default: <repo>/target)
#   OUT_DIR           keep the raw outputs there (default: a temporary directory)
#   BENCH_PREFAULT    passed through to both sides (0 disables pre-faulting)
set -euo pipefail

usage() {
    sed -n '2,27s/^# \{0,1\}//p' "$0"
}

RUNS=3
FIFO=()
ICEORYX2=""
while getopts "n:fih" opt; do
    case "$opt" in
        n) RUNS="$OPTARG" ;;
        f) FIFO=(chrt -f 10) ;;
        i) ICEORYX2=1 ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if ! [[ "$RUNS" =~ ^[1-9][0-9]*$ ]]; then
    echo "compare.sh: -n needs a positive integer, got '$RUNS'" >&2
    exit 2
fi
GROUPS_RUN=("$@")
if [[ ${#GROUPS_RUN[@]} -eq 0 ]]; then
    GROUPS_RUN=(alloc_free_fixed alloc_free_mixed alloc_many_free alloc_free_mt named open_existing
        create_segment pingpong pingpong_samecpu mutex_uncontended baseline_std)
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEER_DIR="${PEER_DIR:-$ROOT/../shared/peer/boost-bench}"
PEER="$PEER_DIR/bench"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OURS="$TARGET_DIR/release/shmkit-bench"

# --- build both sides ---------------------------------------------------------------------
if [[ ! -x "$PEER" || "$PEER_DIR/bench.cpp" -nt "$PEER" ]]; then
    if [[ ! -w "$PEER_DIR" ]]; then
        # A read-only checkout of the peer: build a copy of it under the target directory.
        BUILD_DIR="$TARGET_DIR/boost-bench"
        PEER="$BUILD_DIR/bench"
        if [[ ! -x "$PEER" || "$PEER_DIR/bench.cpp" -nt "$PEER" ]]; then
            mkdir -p "$BUILD_DIR"
            cp "$PEER_DIR/bench.cpp" "$PEER_DIR/build.sh" "$BUILD_DIR/"
            chmod u+w "$BUILD_DIR/bench.cpp" "$BUILD_DIR/build.sh"
            echo "compare.sh: building the peer in $BUILD_DIR ($PEER_DIR is read-only)" >&2
            "$BUILD_DIR/build.sh" >&2
        fi
    else
        echo "compare.sh: building the peer ($PEER_DIR/build.sh)" >&2
        "$PEER_DIR/build.sh" >&2
    fi
fi
if [[ -n "$ICEORYX2" ]]; then
    ICEORYX2_DIR="${ICEORYX2_DIR:-$ROOT/../shared/peer/iceoryx2-bench}"
    IOX="$TARGET_DIR/iceoryx2-bench/release/iceoryx2-bench"
    echo "compare.sh: building the iceoryx2 peer (cargo build --release, in $TARGET_DIR/iceoryx2-bench)" >&2
    (cd "$ICEORYX2_DIR" && CARGO_TARGET_DIR="$TARGET_DIR/iceoryx2-bench" cargo build --release --locked -q) >&2
fi
echo "compare.sh: building shmkit-bench (cargo build --release)" >&2
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q -p shmkit-bench) >&2

# shmkit-bench must know every requested group before anything runs; a group the peer
# lacks (alloc_free_mt, open_existing_populated, mutex_uncontended, handoff_latency) runs
# on the shmkit side only.
declare -A PEER_HAS IOX_HAS
for g in "${GROUPS_RUN[@]}"; do
    if [[ -n "$ICEORYX2" ]] && grep -qw -- "$g" <<<"$("$IOX" list)"; then
        IOX_HAS[$g]=1
    fi
    if ! grep -qw -- "$g" <<<"$("$OURS" list)"; then
        echo "compare.sh: shmkit-bench has no workload '$g' (see: $OURS list)" >&2
        exit 2
    fi
    if grep -qw -- "$g" <<<"$("$PEER" list)"; then
        PEER_HAS[$g]=1
    else
        echo "compare.sh: the peer has no workload '$g': shmkit side only" >&2
    fi
done

# --- run, interleaved ---------------------------------------------------------------------
if [[ -n "${OUT_DIR:-}" ]]; then
    mkdir -p "$OUT_DIR"
else
    OUT_DIR="$(mktemp -d -t shmkit-compare.XXXXXX)"
fi

run_side() { # <label> <binary> <group> <outfile>
    if ! "${FIFO[@]}" "$2" "$3" >>"$4"; then
        echo "compare.sh: $1 failed on group '$3' (output so far: $4)" >&2
        exit 1
    fi
}

"$PEER" info >"$OUT_DIR/boost_info.txt"
"$OURS" info >"$OUT_DIR/shmkit_info.txt"
for ((r = 1; r <= RUNS; r++)); do
    : >"$OUT_DIR/boost_run$r.txt"
    : >"$OUT_DIR/shmkit_run$r.txt"
    : >"$OUT_DIR/iceoryx2_run$r.txt"
    for g in "${GROUPS_RUN[@]}"; do
        if [[ -n "${IOX_HAS[$g]:-}" ]]; then
            echo "compare.sh: run $r/$RUNS: $g (iceoryx2)" >&2
            run_side iceoryx2 "$IOX" "$g" "$OUT_DIR/iceoryx2_run$r.txt"
        fi
        if [[ -n "${PEER_HAS[$g]:-}" ]]; then
            echo "compare.sh: run $r/$RUNS: $g (boost, then shmkit)" >&2
            run_side boost "$PEER" "$g" "$OUT_DIR/boost_run$r.txt"
        else
            echo "compare.sh: run $r/$RUNS: $g (shmkit only)" >&2
        fi
        run_side shmkit "$OURS" "$g" "$OUT_DIR/shmkit_run$r.txt"
    done
done

# --- report -------------------------------------------------------------------------------
boost_files=()
shmkit_files=()
iox_files=()
for ((r = 1; r <= RUNS; r++)); do
    boost_files+=("$OUT_DIR/boost_run$r.txt")
    shmkit_files+=("$OUT_DIR/shmkit_run$r.txt")
    iox_files+=("$OUT_DIR/iceoryx2_run$r.txt")
done

echo "## shmkit-bench vs Boost.Interprocess peer"
echo
echo "$RUNS interleaved runs (per run and group: boost, then shmkit; one process each${FIFO[*]:+, under ${FIFO[*]}})," \
     "groups: ${GROUPS_RUN[*]}. Medians of ns/op. Raw output: $OUT_DIR"
echo

# Every timing line is "<workload> <ops> <seconds> <ns_per_op>"; '#' lines are skipped.
awk '
    function median(side, w,    k, i, j, t, v) {
        k = cnt[side, w]
        if (k == 0) return ""
        for (i = 1; i <= k; i++) v[i] = ns[side, w, i]
        for (i = 2; i <= k; i++) { t = v[i]; j = i - 1
            while (j >= 1 && v[j] + 0 > t + 0) { v[j + 1] = v[j]; j-- }
            v[j + 1] = t }
        if (k % 2) return v[(k + 1) / 2]
        return (v[k / 2] + v[k / 2 + 1]) / 2
    }
    function fmt(x) { return x == "" ? "-" : sprintf("%.2f", x) }
    function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2fx", a / b) }
    # The process-heap line a segment workload is compared with.
    function std_of(w,    s) {
        if (w ~ /^std_/ || w ~ /^create_segment/ || w ~ /^open_existing/ || w ~ /^pingpong/ || w ~ /^named_/) return ""
        s = w
        sub(/^map_nodealloc_/, "map_", s)
        return "std_" s
    }
    /^#/ || NF != 4 { next }
    {
        side = (FILENAME ~ /\/boost_run[0-9]+\.txt$/) ? "b" : (FILENAME ~ /\/iceoryx2_run[0-9]+\.txt$/) ? "i" : "s"
        w = $1
        if (!(w in seen)) { seen[w] = 1; order[++n] = w; ops[w] = $2 }
        c = ++cnt[side, w]
        ns[side, w, c] = $4
    }
    END {
        print "| workload | ops | boost median ns/op | shmkit median ns/op | boost/shmkit | std line | std C++ ns/op | std Rust ns/op | boost/std C++ | shmkit/std Rust | iceoryx2 ns/op | iceoryx2/shmkit |"
        print "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= n; i++) {
            w = order[i]
            b = median("b", w); s = median("s", w)
            sw = std_of(w)
            if (sw != "" && (cnt["b", sw] > 0 || cnt["s", sw] > 0)) {
                sb = median("b", sw); ss = median("s", sw)
                extra = sprintf("%s | %s | %s | %s | %s", sw, fmt(sb), fmt(ss), ratio(b, sb), ratio(s, ss))
            } else {
                extra = " | | | | "
            }
            io = median("i", w)
            printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", w, ops[w], fmt(b), fmt(s), ratio(b, s), extra, fmt(io), ratio(io, s)
        }
    }
' "${boost_files[@]}" "${shmkit_files[@]}" "${iox_files[@]}"

echo
echo "boost/shmkit > 1 means shmkit is faster. For std_* rows the two columns are the C++"
echo "(glibc malloc, libstdc++) and Rust (glibc malloc, Rust std) process-heap references."

# shmkit's "# cpu <workload> <ops> <seconds> <ns_per_op> ..." lines: CPU time of both
# processes of a hand-off workload, next to its wall time (the peer prints none).
if grep -q '^# cpu ' "${shmkit_files[@]}"; then
    echo
    echo "CPU time per op of the hand-off workloads (shmkit: user+system of both processes,"
    echo "medians; spinning shows here). The peer reports wall time only."
    echo
    awk '
        function median(key,    k, i, j, t, v) {
            k = cnt[key]
            for (i = 1; i <= k; i++) v[i] = val[key, i]
            for (i = 2; i <= k; i++) { t = v[i]; j = i - 1
                while (j >= 1 && v[j] + 0 > t + 0) { v[j + 1] = v[j]; j-- }
                v[j + 1] = t }
            if (k % 2) return v[(k + 1) / 2]
            return (v[k / 2] + v[k / 2 + 1]) / 2
        }
        /^# cpu / && NF >= 6 {
            if (!($3 in seen)) { seen[$3] = 1; order[++n] = $3 }
            key = "cpu " $3; val[key, ++cnt[key]] = $6; next
        }
        /^#/ || NF != 4 { next }
        { key = "wall " $1; val[key, ++cnt[key]] = $4 }
        END {
            print "| workload | shmkit wall ns/op | shmkit CPU ns/op | CPU/wall |"
            print "|---|---:|---:|---:|"
            for (i = 1; i <= n; i++) {
                w = order[i]; c = median("cpu " w); t = median("wall " w)
                printf "| %s | %.2f | %.2f | %.2f |\n", w, t, c, (t > 0 ? c / t : 0)
            }
        }
    ' "${shmkit_files[@]}"
fi
echo
echo "### \`#\` lines (configuration from \`info\`, memory accounting from run 1)"
echo
echo '```'
sed 's/^/boost:  /' "$OUT_DIR/boost_info.txt"
grep '^#' "$OUT_DIR/boost_run1.txt" | sed 's/^/boost:  /' || true
sed 's/^/shmkit: /' "$OUT_DIR/shmkit_info.txt"
grep '^#' "$OUT_DIR/shmkit_run1.txt" | sed 's/^/shmkit: /' || true
echo '```'

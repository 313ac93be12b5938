//! Group `baseline_std`: the process-heap reference. Every line is prefixed `std_`.
//!
//! The peer's lines use glibc `malloc`/`free` and libstdc++ containers. Here the allocator
//! lines call glibc `malloc`/`free` directly (through `libc`), and the container lines use
//! Rust's `Vec`, `BTreeMap`, `HashMap` and `String`, whose global allocator is also glibc
//! malloc. All of them run after [`prepare_heap`], identical to the peer's.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use super::alloc::{self, Malloc, MixedPlan, FIXED_OPS, MANY_N, MIXED_OPS, MT_THREADS};
use crate::rng::{make_keys, XorShift64};
use crate::segment::{page_size, prefault_enabled, SEG_SIZE};
use crate::timing::{escape, now, report, secs};
use crate::{check, check_eq};

/// The peer's `prepare_heap()`, once per process and only when pre-faulting is on:
/// serve everything from the brk heap (`M_MMAP_MAX` 0), never give memory back
/// (`M_TRIM_THRESHOLD` INT_MAX), then malloc 512 MiB, write one byte per page and free it,
/// so that later heap allocations reuse already-faulted pages.
pub fn prepare_heap() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.load(Ordering::Relaxed) || !prefault_enabled() {
        return;
    }
    DONE.store(true, Ordering::Relaxed);
    // SAFETY: mallopt only changes glibc malloc tunables.
    check_eq!(unsafe { libc::mallopt(libc::M_MMAP_MAX, 0) }, 1);
    check_eq!(
        // SAFETY: as above.
        unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) },
        1
    );
    // SAFETY: malloc has no preconditions.
    let p: *mut u8 = unsafe { libc::malloc(SEG_SIZE) }.cast();
    check!(!p.is_null());
    let page = page_size();
    let mut off = 0;
    while off < SEG_SIZE {
        // SAFETY: `off < SEG_SIZE`, inside the block just allocated.
        unsafe { std::ptr::write_volatile(p.add(off), 1) };
        off += page;
    }
    escape(p);
    // SAFETY: `p` came from malloc and is not used afterwards.
    unsafe { libc::free(p.cast()) };
}

/// `std_alloc_free_fixed`, `std_alloc_free_mixed`, `std_alloc_many`, `std_free_many`,
/// `std_alloc_many_free`, `std_alloc_free_mt`: the segment allocator workloads on
/// malloc/free.
pub fn run_alloc() {
    prepare_heap();
    report(
        "std_alloc_free_fixed",
        FIXED_OPS,
        alloc::alloc_free_fixed(&mut Malloc, FIXED_OPS),
    );
    let s = alloc::alloc_free_mixed(&mut Malloc, check_malloc_live_set);
    report("std_alloc_free_mixed", MIXED_OPS, s);
    let r = alloc::alloc_many_free(&mut Malloc, |ptrs| alloc::check_distinct_aligned(ptrs, 16));
    report("std_alloc_many", MANY_N, r.alloc_s);
    report("std_free_many", MANY_N, r.free_s);
    report("std_alloc_many_free", MANY_N, r.alloc_s + r.free_s);
    let s = alloc::alloc_free_mixed_mt([Malloc, Malloc], check_malloc_live_set);
    report("std_alloc_free_mt", MT_THREADS as u64 * MIXED_OPS, s);
}

/// Untimed: every slot is a distinct malloc block holding at least the requested size.
fn check_malloc_live_set(live: &[*mut u8], plan: &MixedPlan) {
    alloc::check_distinct_aligned(live, 16);
    for (&p, &want) in live.iter().zip(&plan.final_sizes) {
        // SAFETY: `p` is a live malloc block.
        let usable = unsafe { libc::malloc_usable_size(p.cast()) };
        check!(usable >= want, "block {p:?} holds {usable} < {want} bytes");
    }
}

const VEC_N: u64 = 10_000_000;

/// `std_vec_push` / `std_vec_iter_sum`: `Vec<u64>` without reserve (growth doubles and
/// reallocates, like `std::vector`), then a sum over the elements.
pub fn run_vec() {
    prepare_heap();
    let mut v: Vec<u64> = Vec::new();
    let t0 = now();
    for i in 0..VEC_N {
        v.push(i);
    }
    let t1 = now();
    let mut sum = 0u64;
    let t2 = now();
    for &x in &v {
        sum = sum.wrapping_add(x);
    }
    let t3 = now();
    escape(sum);
    check_eq!(v.len() as u64, VEC_N);
    check_eq!(sum, VEC_N * (VEC_N - 1) / 2);
    report("std_vec_push", VEC_N, secs(t0, t1));
    report("std_vec_iter_sum", VEC_N, secs(t2, t3));
}

const MAP_N: u64 = 1_000_000;

/// The map interface both reference maps offer to the shared loops.
trait RefMap: Default {
    fn put(&mut self, k: u64, v: u64);
    fn get_value(&self, k: u64) -> Option<u64>;
    fn count(&self) -> usize;
}

impl RefMap for BTreeMap<u64, u64> {
    #[inline(always)]
    fn put(&mut self, k: u64, v: u64) {
        // `emplace`: insert when absent (all keys are distinct, so every call inserts).
        self.entry(k).or_insert(v);
    }
    #[inline(always)]
    fn get_value(&self, k: u64) -> Option<u64> {
        self.get(&k).copied()
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl RefMap for HashMap<u64, u64> {
    #[inline(always)]
    fn put(&mut self, k: u64, v: u64) {
        self.entry(k).or_insert(v);
    }
    #[inline(always)]
    fn get_value(&self, k: u64) -> Option<u64> {
        self.get(&k).copied()
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// The peer's `bench_std_map_generic`: 1e6 inserts of `(keys[i], i)`, then 1e6 finds in
/// insertion order, summing the values.
fn map_generic<M: RefMap>(ins_name: &str, find_name: &str) {
    prepare_heap();
    let keys = make_keys(MAP_N as usize);
    let mut m = M::default();
    let t0 = now();
    for (i, &k) in keys.iter().enumerate() {
        m.put(k, i as u64);
    }
    let t1 = now();
    check_eq!(m.count() as u64, MAP_N);
    let (mut sum, mut missing) = (0u64, 0u64);
    let t2 = now();
    for &k in &keys {
        match m.get_value(k) {
            Some(v) => sum = sum.wrapping_add(v),
            None => missing += 1,
        }
    }
    let t3 = now();
    check!(missing == 0 && sum == MAP_N * (MAP_N - 1) / 2);
    report(ins_name, MAP_N, secs(t0, t1));
    report(find_name, MAP_N, secs(t2, t3));
}

/// `std_map_insert` / `std_map_find` with `BTreeMap` (the peer: `std::map`, a red-black
/// tree; a B-tree has fewer, larger nodes).
pub fn run_map() {
    map_generic::<BTreeMap<u64, u64>>("std_map_insert", "std_map_find");
}

/// `std_unordered_map_insert` / `std_unordered_map_find` with `HashMap` and its default
/// hasher. Note: Rust's `HashMap` hashes with SipHash-1-3 (randomly keyed) and is an open
/// addressing SwissTable, whereas the peer's libstdc++ `std::unordered_map<uint64_t, _>`
/// uses the identity hash and one heap node per entry.
pub fn run_unordered_map() {
    map_generic::<HashMap<u64, u64>>("std_unordered_map_insert", "std_unordered_map_find");
}

pub const STR_N: u64 = 1_000_000;
pub const STR_SRC: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";

/// `len[i] = 8 + next() % 57` (uniform in 8..=64), from a fresh generator.
pub fn make_str_lens() -> Vec<u8> {
    let mut rng = XorShift64::seeded();
    (0..STR_N)
        .map(|_| (8 + rng.next_u64() % 57) as u8)
        .collect()
}

/// `std_string_vec`: `Vec<String>` without reserve, `push(String::from(&src[..len[i]]))`.
/// Rust's `String` has no small-string optimisation (libstdc++ keeps 15 chars inline), so
/// every string allocates here.
pub fn run_string_vec() {
    prepare_heap();
    let lens = make_str_lens();
    let mut v: Vec<String> = Vec::new();
    let t0 = now();
    for &len in &lens {
        v.push(String::from(&STR_SRC[..len as usize]));
    }
    let t1 = now();
    check_eq!(v.len() as u64, STR_N);
    let total: u64 = v.iter().map(|s| s.len() as u64).sum();
    check_eq!(total, 36_016_533);
    check_eq!(
        v[STR_N as usize - 1].as_str(),
        &STR_SRC[..lens[STR_N as usize - 1] as usize]
    );
    report("std_string_vec", STR_N, secs(t0, t1));
}

/// The whole group, in the peer's order.
pub fn run() {
    run_alloc();
    run_vec();
    run_map();
    run_unordered_map();
    run_string_vec();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_lengths_match_the_readme() {
        let lens = make_str_lens();
        assert_eq!(&lens[..5], &[59, 50, 32, 62, 31]);
        assert_eq!(lens.iter().map(|&l| l as u64).sum::<u64>(), 36_016_533);
    }
}

//! shmkit-bench: the Rust side of the Boost.Interprocess peer benchmark
//! (`../shared/peer/boost-bench`, relative to the checkout). Same workloads, same output format:
//!
//! ```text
//! <workload> <ops> <seconds %.6f> <ns_per_op %.2f>
//! ```
//!
//! Lines starting with `#` are information (memory accounting, configuration).
//! Usage: `shmkit-bench <group>...`, `shmkit-bench list`, `shmkit-bench info`,
//! `shmkit-bench all`.

mod process;
mod rng;
mod segment;
mod timing;
mod workloads;

use std::process::ExitCode;

use segment::{prefault_enabled, Segment};
use timing::print_line;
use workloads::{GROUPS, STD_PARTS};

/// Exit status for a command line that names no or unknown workloads.
const EXIT_USAGE: u8 = 2;

enum Command {
    List,
    Info,
    All,
    Group(&'static workloads::Group),
}

fn usage() -> String {
    let groups: Vec<&str> = GROUPS.iter().map(|g| g.name).collect();
    let parts: Vec<&str> = STD_PARTS.iter().map(|g| g.name).collect();
    format!(
        "usage: shmkit-bench <workload>...\nworkloads: {} all info\naliases: {}",
        groups.join(" "),
        parts.join(" ")
    )
}

fn parse(arg: &str) -> Option<Command> {
    match arg {
        "list" | "-h" | "--help" => Some(Command::List),
        "info" => Some(Command::Info),
        "all" => Some(Command::All),
        name => workloads::find(name).map(Command::Group),
    }
}

fn print_info() {
    print_line(&format!("# shmkit_bench {}", env!("CARGO_PKG_VERSION")));
    print_line(&format!("# compiler {}", env!("BENCH_RUSTC_VERSION")));
    print_line(&format!(
        "# profile {} (debug_assertions {})",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if cfg!(debug_assertions) { "on" } else { "off" }
    ));
    print_line(&format!(
        "# prefault {} (BENCH_PREFAULT)",
        u8::from(prefault_enabled())
    ));
    print_line(
        "# segment shmkit::ManagedSharedMemory (POSIX shm, reserve=true: fallocate at creation)",
    );
    print_line(&format!(
        "# payload_per_allocation {} alignment {}",
        Segment::PAYLOAD_PER_ALLOCATION,
        Segment::MIN_ALIGN
    ));
}

/// Runs one group; a failed CHECK (a panic) has already unwound the group's segment guards,
/// and then aborts the process, as the peer's `CHECK` does.
fn run_group(group: &workloads::Group) {
    if std::panic::catch_unwind(group.run).is_err() {
        eprintln!("workload group {} failed; aborting", group.name);
        std::process::abort();
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.is_empty() {
        eprintln!("{}", usage());
        return ExitCode::from(EXIT_USAGE);
    }
    // Validate the whole command line before running anything.
    let mut commands = Vec::with_capacity(args.len());
    for arg in &args {
        match parse(arg) {
            Some(cmd) => commands.push(cmd),
            None => {
                eprintln!("unknown workload: {arg}\n{}", usage());
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    for cmd in commands {
        match cmd {
            Command::List => print_line(&usage()),
            Command::Info => print_info(),
            Command::All => GROUPS.iter().for_each(run_group),
            Command::Group(g) => run_group(g),
        }
    }
    ExitCode::SUCCESS
}

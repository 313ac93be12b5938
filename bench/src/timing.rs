//! The timing line printer, the clock, the optimisation barrier and the always-on CHECK.

use std::io::Write;
use std::time::Instant;

/// The clock of every timed region: `Instant` is `CLOCK_MONOTONIC`, as the peer's
/// `std::chrono::steady_clock`.
#[inline(always)]
pub fn now() -> Instant {
    Instant::now()
}

/// Seconds from `a` to `b`.
pub fn secs(a: Instant, b: Instant) -> f64 {
    b.duration_since(a).as_secs_f64()
}

/// The peer's `escape(x)`: the value must be materialised, so the compiler cannot elide
/// e.g. an allocate/deallocate pair whose pointer is otherwise unused.
#[inline(always)]
pub fn escape<T>(value: T) -> T {
    std::hint::black_box(value)
}

/// One timing line, exactly the peer's `"%s %" PRIu64 " %.6f %.2f\n"`.
pub fn format_line(name: &str, ops: u64, seconds: f64) -> String {
    format!(
        "{name} {ops} {seconds:.6} {:.2}",
        seconds * 1e9 / ops as f64
    )
}

/// Prints one timing line and flushes it (the peer `fflush`es after every line).
pub fn report(name: &str, ops: u64, seconds: f64) {
    print_line(&format_line(name, ops, seconds));
}

/// Prints a line (timing or `#` information) and flushes stdout.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) must not turn into a panic in the middle of a
    // workload; the segment guards still clean up when the process ends normally.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The peer's `CHECK(cond)`: always on, used outside timed regions. A failure panics with
/// the condition and location (so segment guards unwind and remove their objects), and
/// `main` then aborts the process like the peer does.
#[macro_export]
macro_rules! check {
    ($cond:expr) => {
        if !($cond) {
            panic!(
                "CHECK failed: {} ({}:{})",
                stringify!($cond),
                file!(),
                line!()
            );
        }
    };
    ($cond:expr, $($fmt:tt)+) => {
        if !($cond) {
            panic!(
                "CHECK failed: {} ({}:{}): {}",
                stringify!($cond),
                file!(),
                line!(),
                format_args!($($fmt)+)
            );
        }
    };
}

/// `check!(a == b)` that also prints both values.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            panic!(
                "CHECK failed: {} == {} ({}:{}): left = {:?}, right = {:?}",
                stringify!($left),
                stringify!($right),
                file!(),
                line!(),
                l,
                r
            );
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_matches_printf() {
        assert_eq!(
            format_line("alloc_free_fixed", 1_000_000, 0.367137),
            "alloc_free_fixed 1000000 0.367137 367.14"
        );
        assert_eq!(
            format_line("x", 20, 0.467_118_864),
            "x 20 0.467119 23355943.20"
        );
        assert_eq!(format_line("y", 3, 0.0), "y 3 0.000000 0.00");
    }

    #[test]
    #[should_panic(expected = "CHECK failed: 1 + 1 == 3")]
    fn check_panics_with_the_condition() {
        check!(1 + 1 == 3);
    }

    #[test]
    #[should_panic(expected = "left = 2, right = 3")]
    fn check_eq_prints_both_sides() {
        check_eq!(1 + 1, 3);
    }
}

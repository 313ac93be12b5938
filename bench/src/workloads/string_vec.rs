//! Group `string_vec`: the peer's workload 9 on the segment containers. A `Vec<String>`
//! is the named object "strings" in a fresh 512 MiB segment, not reserved; the lengths
//! `8 + next() % 57` are made untimed; timed: 1,000,000 `push(&SRC[..len[i]])`, each
//! string built in place in the vector's slot (`Emplace<&str>`); plus the `#` line with
//! the header size and the segment bytes per string (with the vector's grown buffer).
//!
//! The segment String has no inline (small-string) storage: every string allocates, as
//! Rust's std `String` does (the peer's `basic_string` keeps up to 22 chars inline).
//! Mapped exclusively, as in `vec_push`.

use shmkit::containers::{String, Vec, VecExt};

use super::baseline_std::{make_str_lens, STR_N, STR_SRC};
use crate::segment::{check_segment, used, ShmGuard, SEG_SIZE};
use crate::timing::{now, print_line, report, secs};
use crate::{check, check_eq};

pub fn run() {
    let lens = make_str_lens();
    let guard = ShmGuard::new("strvec");
    let mut seg = guard.create_exclusive_prefaulted(SEG_SIZE);
    let used0 = used(&seg);
    check!(seg.construct("strings", Vec::<String>::new()).is_ok());
    let mut v = match seg.find_mut::<Vec<String>>("strings") {
        Ok(Some(v)) => v,
        other => panic!("finding the vector failed: {:?}", other.err()),
    };

    let t0 = now();
    for &len in &lens {
        if let Err(e) = v.push(&STR_SRC[..len as usize]) {
            panic!("push of {len} chars failed: {e}");
        }
    }
    let t1 = now();

    check_eq!(v.len() as u64, STR_N);
    let total: u64 = v.iter().map(|s| s.len() as u64).sum();
    check_eq!(total, 36_016_533);
    check_eq!(
        v[STR_N as usize - 1].as_str(),
        &STR_SRC[..lens[STR_N as usize - 1] as usize]
    );
    report("string_vec", STR_N, secs(t0, t1));
    let bytes = used(&seg) - used0;
    print_line(&format!(
        "# string_vec: sizeof(String)={} inline_capacity=0 heap_strings={STR_N} \
         segment bytes per string={:.2}",
        size_of::<String>(),
        bytes as f64 / STR_N as f64
    ));
    check!(matches!(seg.destroy::<Vec<String>>("strings"), Ok(true)));
    check_eq!(used(&seg), used0);
    check_segment(&seg);
}

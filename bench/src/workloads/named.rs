//! Group `named` (lines `named_construct`, `named_find`): 100,000 named `u64`s `obj_<i>` in a
//! fresh 512 MiB segment, constructed in order, then found in a Fisher–Yates permutation
//! drawn from xorshift64(SEED); plus the `# mem named_construct` line.
//!
//! The names are built beforehand, as the peer's `std::vector<std::string>`. Those strings
//! are at most 9 characters, so libstdc++ keeps them inline (SSO): reading a name is one
//! access into the vector. [`InlineName`] keeps them inline the same way (a `String` would add
//! a second, random heap access per lookup that the peer does not make).

use crate::rng::XorShift64;
use crate::segment::{check_segment, used, ShmGuard, SEG_SIZE};
use crate::timing::{escape, now, print_line, report, secs};
use crate::{check, check_eq};

const N: u64 = 100_000;

/// The peer's permutation: `for i = N-1 down to 1: j = next() % (i+1); swap(perm[i], perm[j])`.
fn permutation(n: usize) -> Vec<u32> {
    let mut perm: Vec<u32> = (0..n as u32).collect();
    let mut rng = XorShift64::seeded();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        perm.swap(i, j);
    }
    perm
}

/// Short names stored inline, like `std::string` with SSO (32 bytes, up to 15 characters).
struct InlineName {
    len: u8,
    bytes: [u8; 31],
}

impl InlineName {
    fn new(s: &str) -> Self {
        let mut bytes = [0; 31];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        InlineName {
            len: s.len() as u8,
            bytes,
        }
    }

    #[inline(always)]
    fn as_str(&self) -> &str {
        // SAFETY: the first `len` bytes were copied from a `str` in `new`.
        unsafe { std::str::from_utf8_unchecked(&self.bytes[..self.len as usize]) }
    }
}

pub fn run() {
    let guard = ShmGuard::new("named");
    let seg = guard.create_prefaulted(SEG_SIZE);
    let names: Vec<InlineName> = (0..N)
        .map(|i| InlineName::new(&format!("obj_{i}")))
        .collect();
    let used0 = used(&seg);

    let t0 = now();
    for (i, name) in names.iter().enumerate() {
        match seg.construct(name.as_str(), i as u64) {
            Ok(r) => {
                escape(r);
            }
            Err(e) => panic!("construct {:?} failed: {e}", name.as_str()),
        }
    }
    let t1 = now();
    let used1 = used(&seg);
    check_eq!(seg.num_named_objects() as u64, N);

    let perm = permutation(N as usize);
    check_eq!(perm[..5], [86700, 21518, 92636, 86279, 91972]);
    let (mut sum, mut missing) = (0u64, 0u64);
    let t2 = now();
    for &k in &perm {
        match seg.find::<u64>(names[k as usize].as_str()) {
            Ok(Some(v)) => sum += *v,
            _ => missing += 1,
        }
    }
    let t3 = now();
    check_eq!(missing, 0);
    check!(sum == N * (N - 1) / 2, "sum {sum}");
    check_segment(&seg);

    report("named_construct", N, secs(t0, t1));
    report("named_find", N, secs(t2, t3));
    let avg_name = names.iter().map(|n| n.as_str().len()).sum::<usize>() as f64 / N as f64;
    print_line(&format!(
        "# mem named_construct: objects={N} used_bytes={} used_per_object={:.3} \
         (object=8 bytes + name \"obj_<i>\" avg {avg_name:.2} chars)",
        used1 - used0,
        (used1 - used0) as f64 / N as f64
    ));
}

#[cfg(test)]
mod tests {
    use super::permutation;

    #[test]
    fn the_permutation_matches_the_peer() {
        assert_eq!(
            permutation(100_000)[..5],
            [86700, 21518, 92636, 86279, 91972]
        );
    }
}

//! Who sent a message, and how: the `origin` word of a slot header.
//!
//! Bytes that may be uninitialised (the padding of a segment image's values) can cross a
//! queue ([`send_uninit`](super::MessageQueue::send_uninit)); in the process that wrote
//! them they are still uninitialised, so that process must not read them back as `[u8]`.
//! Another process reads what the kernel shows it of shared memory, which is initialised
//! bytes. So the word flags what the bytes are, and names the sending process of
//! uninitialised ones by a random token of its own (0 for other messages).

use std::sync::atomic::{AtomicU64, Ordering};

/// The payload may hold uninitialised bytes.
pub(crate) const UNINIT: u64 = 1 << 63;
/// The payload is a value whose type fingerprint is in the header.
pub(crate) const TYPED: u64 = 1 << 62;
/// The bits of the process token.
const TOKEN: u64 = TYPED - 1;

/// This process's token and the pid it was made in (a forked child makes its own).
static THIS: AtomicU64 = AtomicU64::new(0);
static MADE_IN: AtomicU64 = AtomicU64::new(0);

/// This process's token: random, never 0, 62 bits.
pub(crate) fn this_process() -> u64 {
    let pid = u64::from(
        rustix::process::getpid()
            .as_raw_nonzero()
            .get()
            .unsigned_abs(),
    );
    let token = THIS.load(Ordering::Relaxed);
    if token != 0 && MADE_IN.load(Ordering::Relaxed) == pid {
        return token;
    }
    let token = fresh(pid);
    MADE_IN.store(pid, Ordering::Relaxed);
    THIS.store(token, Ordering::Relaxed);
    token
}

/// A random token mixed with `pid`: std's `RandomState` is seeded from the OS once per
/// process (a forked child shares its parent's seed, hence the pid).
fn fresh(pid: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(pid);
    h.write_usize(std::ptr::addr_of!(THIS).addr());
    (h.finish() & TOKEN).max(1)
}

/// Whether a message of `origin` holds bytes this process must not read as `[u8]`.
pub(crate) fn uninit_here(origin: u64) -> bool {
    origin & UNINIT != 0 && origin & TOKEN == this_process()
}

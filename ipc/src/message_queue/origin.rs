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

/// A random word drawn once per process image, by whichever thread asks first (the others
/// take the winner's), and inherited by a forked child, whose pid then tells it apart.
static SECRET: AtomicU64 = AtomicU64::new(0);

/// This process's token: never 0, 62 bits, the same for every thread of the process at any
/// time (a thread must never see another token than the one its process's messages carry)
/// and another after `fork`. A `getpid` each call: only uninitialised messages need it.
pub(crate) fn this_process() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut secret = SECRET.load(Ordering::Relaxed);
    if secret == 0 {
        // std's `RandomState` is seeded from the OS.
        let drawn = std::collections::hash_map::RandomState::new()
            .hash_one(std::ptr::addr_of!(SECRET).addr())
            .max(1);
        secret = match SECRET.compare_exchange(0, drawn, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => drawn,
            Err(won) => won,
        };
    }
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    // A fixed-key hash: a function of the secret and the pid alone.
    let mut h = std::hash::DefaultHasher::new();
    h.write_u64(secret);
    h.write_i32(pid);
    (h.finish() & TOKEN).max(1)
}

/// Whether a message of `origin` holds bytes this process must not read as `[u8]`.
pub(crate) fn uninit_here(origin: u64) -> bool {
    origin & UNINIT != 0 && origin & TOKEN == this_process()
}

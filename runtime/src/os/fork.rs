//! Descriptors a forked child must not share with its parent: a child shares its parent's
//! open file descriptions, so it would keep their OFD locks alive after the parent let go,
//! and locks it took would be the parent's. A `pthread_atfork` child handler goes through
//! the registered descriptors (async-signal-safe calls only):
//! - an [`uninherited`](Registered::uninherited) one (an exclusive mapping's) now refers to a placeholder (`dup3`),
//!   so the child's copy of the number stays a valid descriptor to close but no longer
//!   refers to the locked description;
//! - a [`reopened`](Registered::reopened) one (a shared mapping's) now refers to a new description of the same
//!   file (`/proc/self/fd/N` opened again) holding the same attachment bytes shared: the
//!   child stays attached in its own name, and the parent's locks die with the parent. If
//!   that fails (no `/proc`, no descriptor left) the child keeps sharing the parent's
//!   description, which keeps it attached, but it can take no locks: the parent's would
//!   look like its own ([`shares_parents`]).
//!
//! The handler also counts forks ([`generation`]), so that what was claimed in the parent's
//! name (a lock owner id) is claimed again in the child.
//!
//! The registry is a lock-free list of nodes that are never freed, only reused: the child
//! handler may run while another thread of the parent was registering.

use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Once;

use crate::error::{Error, Result};

const FREE: RawFd = -1;
/// Bytes a reopened description locks shared again (unused entries are [`NO_BYTE`]).
const RELOCKED: usize = 2;
const NO_BYTE: u64 = u64::MAX;

struct Node {
    fd: AtomicI32,
    /// Whether the child gets a new description (true) or the placeholder.
    reopen: std::sync::atomic::AtomicBool,
    relock: [AtomicU64; RELOCKED],
    /// The fork generation whose child could not reopen the descriptor (0: none).
    not_reopened: AtomicU32,
    next: AtomicPtr<Node>,
}

static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());
/// An empty memfd the child handler puts in place of registered descriptors; FREE until
/// set up.
static PLACEHOLDER: AtomicI32 = AtomicI32::new(FREE);
static INSTALL: Once = Once::new();
/// Forks this process descends from since the handler was installed.
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// How many forks separate this process from the one that installed the handler: a value
/// recorded before a fork differs after it, in the child.
#[inline]
pub(crate) fn generation() -> u32 {
    GENERATION.load(Ordering::Relaxed)
}

/// A registered descriptor: what a forked child does with it is fixed at registration.
/// Unregisters on drop, which must come before the descriptor is closed.
pub(crate) struct Registered {
    node: &'static Node,
}

impl Registered {
    /// A forked child does not keep `fd`'s description (an exclusive mapping's).
    pub(crate) fn uninherited(fd: BorrowedFd<'_>) -> Result<Self> {
        Ok(Registered {
            node: register(fd, false, &[])?,
        })
    }

    /// A forked child gets a description of its own for `fd`, with `relock` locked shared.
    pub(crate) fn reopened(fd: BorrowedFd<'_>, relock: &[u64]) -> Result<Self> {
        Ok(Registered {
            node: register(fd, true, relock)?,
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.node.fd.store(FREE, Ordering::Release);
    }
}

/// Puts `fd` in a free node (or a new one) with what the child does with it.
fn register(fd: BorrowedFd<'_>, reopen: bool, relock: &[u64]) -> Result<&'static Node> {
    install()?;
    if relock.len() > RELOCKED {
        return Err(Error::Os {
            op: "pthread_atfork",
            what: "a descriptor to reopen in forked children".into(),
            source: std::io::Error::other("too many bytes to lock again"),
        });
    }
    let fill = |node: &Node| {
        node.reopen.store(reopen, Ordering::Relaxed);
        node.not_reopened.store(0, Ordering::Relaxed);
        for (i, slot) in node.relock.iter().enumerate() {
            slot.store(relock.get(i).copied().unwrap_or(NO_BYTE), Ordering::Relaxed);
        }
    };
    let raw = fd.as_raw_fd();
    let mut next = HEAD.load(Ordering::Acquire);
    // SAFETY: nodes are leaked, never freed: every pointer in the list stays valid.
    while let Some(node) = unsafe { next.as_ref() } {
        // Claim a free node with a placeholder number first, fill it, then publish the
        // descriptor (Release), so the handler never sees a half-filled node.
        if node
            .fd
            .compare_exchange(FREE, FREE - 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            fill(node);
            node.fd.store(raw, Ordering::Release);
            return Ok(node);
        }
        next = node.next.load(Ordering::Acquire);
    }
    let node: &'static Node = Box::leak(Box::new(Node {
        fd: AtomicI32::new(FREE - 1),
        reopen: std::sync::atomic::AtomicBool::new(false),
        relock: [const { AtomicU64::new(NO_BYTE) }; RELOCKED],
        not_reopened: AtomicU32::new(0),
        next: AtomicPtr::new(ptr::null_mut()),
    }));
    fill(node);
    node.fd.store(raw, Ordering::Release);
    let mut head = HEAD.load(Ordering::Acquire);
    loop {
        node.next.store(head, Ordering::Relaxed);
        let new = ptr::from_ref(node).cast_mut();
        match HEAD.compare_exchange(head, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(node),
            Err(current) => head = current,
        }
    }
}

/// Sets up the placeholder and the fork handler, once per process.
fn install() -> Result<()> {
    INSTALL.call_once(|| {
        let Ok(fd) =
            rustix::fs::memfd_create("shmkit-fork-placeholder", rustix::fs::MemfdFlags::CLOEXEC)
        else {
            return;
        };
        // SAFETY: `in_child` is an `extern "C" fn()` that only makes async-signal-safe calls.
        if unsafe { libc::pthread_atfork(None, None, Some(in_child)) } == 0 {
            PLACEHOLDER.store(fd.into_raw_fd(), Ordering::Release);
        }
    });
    if PLACEHOLDER.load(Ordering::Acquire) == FREE {
        return Err(Error::Os {
            op: "pthread_atfork",
            what: "the handler that keeps forked children from inheriting exclusive mappings"
                .into(),
            source: std::io::Error::other("could not create its placeholder or register it"),
        });
    }
    Ok(())
}

/// The child handler: every registered descriptor now refers to the placeholder or to a
/// new description of its own.
extern "C" fn in_child() {
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    let placeholder = PLACEHOLDER.load(Ordering::Acquire);
    let mut next = HEAD.load(Ordering::Acquire);
    // SAFETY: nodes are never freed (see `register`).
    while let Some(node) = unsafe { next.as_ref() } {
        let fd = node.fd.load(Ordering::Acquire);
        if fd >= 0 {
            let replacement = if node.reopen.load(Ordering::Relaxed) {
                reopen(fd, node)
            } else {
                placeholder
            };
            if replacement < 0 {
                node.not_reopened.store(generation, Ordering::Relaxed);
            } else {
                // SAFETY: `dup3` is async-signal-safe; it atomically replaces the child's
                // `fd` (its copy of the parent's descriptor) and touches no memory.
                // Nothing useful can be done if it fails in a fork handler.
                unsafe { libc::dup3(replacement, fd, libc::O_CLOEXEC) };
            }
            if replacement >= 0 && replacement != placeholder {
                // SAFETY: `close` is async-signal-safe; `replacement` is ours (just opened).
                unsafe { libc::close(replacement) };
            }
        }
        next = node.next.load(Ordering::Acquire);
    }
}

/// Whether `fd` is a registered descriptor that this forked child could not reopen: it
/// still refers to its parent's description, whose locks look like this child's own.
pub(crate) fn shares_parents(fd: RawFd) -> bool {
    let generation = generation();
    let mut next = HEAD.load(Ordering::Acquire);
    // SAFETY: nodes are never freed (see `register`).
    while let Some(node) = unsafe { next.as_ref() } {
        if node.fd.load(Ordering::Acquire) == fd
            && generation != 0
            && node.not_reopened.load(Ordering::Relaxed) == generation
        {
            return true;
        }
        next = node.next.load(Ordering::Acquire);
    }
    false
}

/// Opens `/proc/self/fd/<fd>` again (a new description of the same file, read-write) and
/// locks the node's bytes shared on it; the new descriptor, or -1. Async-signal-safe: no
/// allocation, only `open`, `fcntl` and `close`.
fn reopen(fd: RawFd, node: &Node) -> RawFd {
    let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
    let prefix = b"/proc/self/fd/".len();
    let mut digits = [0u8; 10];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        path[prefix + i] = digits[len - 1 - i];
    }
    // SAFETY: `path` is NUL-terminated (at most 10 digits in a 12-byte tail of zeros);
    // `open` is async-signal-safe.
    let new = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDWR | libc::O_CLOEXEC) };
    if new < 0 {
        return -1;
    }
    for byte in &node.relock {
        let byte = byte.load(Ordering::Relaxed);
        if byte != NO_BYTE && !super::ofd::lock_shared_raw(new, byte) {
            // SAFETY: as above; `new` is ours.
            unsafe { libc::close(new) };
            return -1;
        }
    }
    new
}

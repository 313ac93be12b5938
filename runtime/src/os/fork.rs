//! Descriptors a forked child must not keep: a child shares its parent's open file
//! descriptions, so it would keep their OFD locks (an exclusive mapping's) alive after the
//! parent let go. A `pthread_atfork` child handler points each registered descriptor at a
//! placeholder instead (`dup3`, async-signal-safe), so the child's copy of the number stays
//! a valid descriptor to close but no longer refers to the locked description.
//!
//! The registry is a lock-free list of nodes that are never freed, only reused: the child
//! handler may run while another thread of the parent was registering.

use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::Once;

use crate::error::{Error, Result};

const FREE: RawFd = -1;

struct Node {
    fd: AtomicI32,
    next: AtomicPtr<Node>,
}

static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());
/// An empty memfd the child handler puts in place of registered descriptors; FREE until
/// set up.
static PLACEHOLDER: AtomicI32 = AtomicI32::new(FREE);
static INSTALL: Once = Once::new();

/// A registered descriptor: a child forked while this lives does not keep its description.
/// Unregisters on drop, which must come before the descriptor is closed.
pub(crate) struct Uninherited {
    node: &'static Node,
}

impl Uninherited {
    pub(crate) fn new(fd: BorrowedFd<'_>) -> Result<Self> {
        install()?;
        let raw = fd.as_raw_fd();
        let mut next = HEAD.load(Ordering::Acquire);
        // SAFETY: nodes are leaked, never freed: every pointer in the list stays valid.
        while let Some(node) = unsafe { next.as_ref() } {
            if node
                .fd
                .compare_exchange(FREE, raw, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Uninherited { node });
            }
            next = node.next.load(Ordering::Acquire);
        }
        let node: &'static Node = Box::leak(Box::new(Node {
            fd: AtomicI32::new(raw),
            next: AtomicPtr::new(ptr::null_mut()),
        }));
        let mut head = HEAD.load(Ordering::Acquire);
        loop {
            node.next.store(head, Ordering::Relaxed);
            let new = ptr::from_ref(node).cast_mut();
            match HEAD.compare_exchange(head, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Uninherited { node }),
                Err(current) => head = current,
            }
        }
    }
}

impl Drop for Uninherited {
    fn drop(&mut self) {
        self.node.fd.store(FREE, Ordering::Release);
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

/// The child handler: every registered descriptor now refers to the placeholder.
extern "C" fn in_child() {
    let placeholder = PLACEHOLDER.load(Ordering::Acquire);
    let mut next = HEAD.load(Ordering::Acquire);
    // SAFETY: nodes are never freed (see `Uninherited::new`).
    while let Some(node) = unsafe { next.as_ref() } {
        let fd = node.fd.load(Ordering::Acquire);
        if fd != FREE {
            // SAFETY: `dup3` is async-signal-safe; it atomically replaces the child's `fd`
            // (its copy of the parent's descriptor) and touches no memory. Nothing useful
            // can be done if it fails in a fork handler.
            unsafe { libc::dup3(placeholder, fd, libc::O_CLOEXEC) };
        }
        next = node.next.load(Ordering::Acquire);
    }
}

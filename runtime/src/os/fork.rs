//! Descriptors and mappings a forked child must not share with its parent: a child shares
//! its parent's open file descriptions, so it would keep their OFD locks alive after the
//! parent let go, and locks it took would be the parent's. A mapping of a file holds on to
//! the description it was made from until it is unmapped, so the child's copy of a mapping
//! would too. A `pthread_atfork` child handler goes through the registered descriptors
//! (async-signal-safe calls only):
//! - an [`uninherited`](Registered::uninherited) one (an exclusive mapping's) now refers to a placeholder (`dup3`),
//!   so the child's copy of the number stays a valid descriptor to close but no longer
//!   refers to the locked description. Its mapping is not inherited (`MADV_DONTFORK`), and
//!   the hole it leaves is reserved, inaccessible, so that nothing else gets mapped where
//!   the child's copy of the segment points (which refuses every use, see
//!   [`MappedRegion::mapped_here`]);
//! - a [`reopened`](Registered::reopened) one (a shared mapping's) now refers to a new description of the same
//!   file (`/proc/self/fd/N` opened again) holding the same attachment bytes shared, and its
//!   mapping is made again from the new description at the same address (the same pages):
//!   the child stays attached in its own name, and the parent's locks die with the parent.
//!   If that fails (no `/proc`, no descriptor left) the child keeps sharing the parent's
//!   description, which keeps it attached, but it can take no locks: the parent's would
//!   look like its own ([`shares_parents`]).
//!
//! A mapping is recorded for the handler ([`Registered::map`]) with no fork between its
//! `mmap` and the record (a prepare handler waits for the recording to end), and forgotten
//! before it is unmapped: whenever a child finds a record, the range holds its parent's
//! mapping (inherited, or a hole where it was not).
//!
//! The handler also counts forks ([`generation`]), so that what was claimed in the parent's
//! name (a lock owner id) is claimed again in the child.
//!
//! The registry is a lock-free list of nodes that are never freed, only reused: the child
//! handler may run while another thread of the parent was registering.

use std::ffi::c_void;
use std::ops::Deref;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::Once;

use super::MappedRegion;
use crate::error::{Error, Result};

const FREE: RawFd = -1;
/// Bytes a reopened description locks shared again (unused entries are [`NO_BYTE`]).
const RELOCKED: usize = 2;
const NO_BYTE: u64 = u64::MAX;

struct Node {
    fd: AtomicI32,
    /// Whether the child gets a new description (true) or the placeholder.
    reopen: AtomicBool,
    relock: [AtomicU64; RELOCKED],
    /// The fork generation whose child could not reopen the descriptor (0: none).
    not_reopened: AtomicU32,
    /// The mapping of the descriptor's file (from offset 0, page aligned) that the child
    /// makes again or reserves; null when none is recorded (see [`Mapped`]).
    base: AtomicPtr<c_void>,
    len: AtomicUsize,
    next: AtomicPtr<Node>,
}

static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());
/// An empty memfd the child handler puts in place of registered descriptors; FREE until
/// set up.
static PLACEHOLDER: AtomicI32 = AtomicI32::new(FREE);
static INSTALL: Once = Once::new();
/// Forks this process descends from since the handler was installed.
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Mappings being recorded (one each, in the low bits) and forks under way ([`FORKING`]
/// each): a fork waits until no mapping is between its `mmap` and its record, and a
/// recording waits while a fork is under way.
static GATE: AtomicU32 = AtomicU32::new(0);
const FORKING: u32 = 1 << 16;

/// How many forks separate this process from the one that installed the handler: a value
/// recorded before a fork differs after it, in the child.
#[inline]
pub(crate) fn generation() -> u32 {
    GENERATION.load(Ordering::Relaxed)
}

/// The `pthread_self` of the thread that made the latest fork, in the child: the one
/// thread of the parent that goes on in it (its stack, and any guard on it, were copied).
static FORKER: AtomicUsize = AtomicUsize::new(0);

/// The thread that forked this process, as `pthread_self` names it (0: none seen).
pub(crate) fn forker() -> usize {
    FORKER.load(Ordering::Relaxed)
}

/// This thread, as [`forker`] names threads.
pub(crate) fn this_thread() -> usize {
    // SAFETY: `pthread_self` has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// A registered descriptor: what a forked child does with it is fixed at registration
/// (or by [`share`](Registered::share)). Unregisters on drop, which must come before the
/// descriptor is closed.
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

    /// Maps the descriptor's file from offset 0 with `map` and records the mapping, with
    /// no fork in between: a child remaps it from the description it reopens, or, for an
    /// uninherited descriptor, does not inherit it (and reserves its range).
    pub(crate) fn map(&self, map: impl FnOnce() -> Result<MappedRegion>) -> Result<Mapped> {
        without_fork(|| {
            let region = map()?;
            if !self.node.reopen.load(Ordering::Relaxed) {
                region.set_inherited_by_fork(false)?;
            }
            let (base, len) = region.pages();
            self.node.len.store(len, Ordering::Relaxed);
            self.node.base.store(base, Ordering::Release);
            Ok(Mapped {
                node: Some(self.node),
                region,
            })
        })
    }

    /// Turns an uninherited descriptor into a reopened one with `relock`, in place, and
    /// makes its recorded `mapping` inherited again, with no fork in between: a child gets
    /// the placeholder and a hole, or a description and a mapping of its own, never its
    /// parent's.
    pub(crate) fn share(&self, relock: &[u64], mapping: &Mapped) -> Result<()> {
        check_relock(relock)?;
        without_fork(|| {
            mapping.set_inherited_by_fork(true)?;
            fill_relock(self.node, relock);
            // Release: a child that sees the new kind sees the bytes it relocks.
            self.node.reopen.store(true, Ordering::Release);
            Ok(())
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.node.fd.store(FREE, Ordering::Release);
    }
}

/// A region mapping a registered descriptor's file, recorded for forked children by
/// [`Registered::map`], or one they simply inherit ([`Mapped::inherited`]). The record is
/// forgotten before the region is unmapped.
pub(crate) struct Mapped {
    node: Option<&'static Node>,
    region: MappedRegion,
}

impl Mapped {
    /// A region forked children inherit as it is (a read-only or copy-on-write mapping,
    /// which takes no locks a child could misuse).
    pub(crate) fn inherited(region: MappedRegion) -> Self {
        Mapped { node: None, region }
    }
}

impl Deref for Mapped {
    type Target = MappedRegion;
    fn deref(&self) -> &MappedRegion {
        &self.region
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if let Some(node) = self.node {
            // Only this record: a node reused meanwhile records another live mapping,
            // which cannot be at this range while this region maps it.
            let _ = node.base.compare_exchange(
                self.region.pages().0,
                ptr::null_mut(),
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
    }
}

/// `Os` unless `relock` fits a node.
fn check_relock(relock: &[u64]) -> Result<()> {
    if relock.len() > RELOCKED {
        return Err(Error::Os {
            op: "pthread_atfork",
            what: "a descriptor to reopen in forked children".into(),
            source: std::io::Error::other("too many bytes to lock again"),
        });
    }
    Ok(())
}

fn fill_relock(node: &Node, relock: &[u64]) {
    for (i, slot) in node.relock.iter().enumerate() {
        slot.store(relock.get(i).copied().unwrap_or(NO_BYTE), Ordering::Relaxed);
    }
}

/// Runs `f` with no fork under way in this process from its start to its end (see
/// [`before_fork`]).
fn without_fork<R>(f: impl FnOnce() -> R) -> R {
    struct Recording;
    impl Drop for Recording {
        fn drop(&mut self) {
            GATE.fetch_sub(1, Ordering::Release);
        }
    }
    let mut gate = GATE.load(Ordering::Relaxed);
    loop {
        if gate >= FORKING {
            std::thread::yield_now();
            gate = GATE.load(Ordering::Relaxed);
            continue;
        }
        match GATE.compare_exchange_weak(gate, gate + 1, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => gate = now,
        }
    }
    let _recording = Recording;
    f()
}

/// Puts `fd` in a free node (or a new one) with what the child does with it.
fn register(fd: BorrowedFd<'_>, reopen: bool, relock: &[u64]) -> Result<&'static Node> {
    install()?;
    check_relock(relock)?;
    let fill = |node: &Node| {
        node.reopen.store(reopen, Ordering::Relaxed);
        node.not_reopened.store(0, Ordering::Relaxed);
        node.base.store(ptr::null_mut(), Ordering::Relaxed);
        fill_relock(node, relock);
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
        reopen: AtomicBool::new(false),
        relock: [const { AtomicU64::new(NO_BYTE) }; RELOCKED],
        not_reopened: AtomicU32::new(0),
        base: AtomicPtr::new(ptr::null_mut()),
        len: AtomicUsize::new(0),
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

/// Sets up the placeholder and the fork handlers, once per process.
pub(crate) fn install() -> Result<()> {
    INSTALL.call_once(|| {
        let Ok(fd) =
            rustix::fs::memfd_create("shmkit-fork-placeholder", rustix::fs::MemfdFlags::CLOEXEC)
        else {
            return;
        };
        // SAFETY: the handlers are `extern "C" fn()`s; `in_child` only makes
        // async-signal-safe calls, and the other two only touch an atomic and yield.
        let installed = unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(in_child),
            )
        };
        if installed == 0 {
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

/// The prepare handler: waits until no thread is between a mapping's `mmap` and its
/// record ([`without_fork`], a few system calls), and keeps new ones from starting until
/// the fork is done. (A signal handler that forks while its thread is recording would
/// wait forever; glibc's `fork` is not async-signal-safe either.)
extern "C" fn before_fork() {
    GATE.fetch_add(FORKING, Ordering::Acquire);
    while GATE.load(Ordering::Acquire) % FORKING != 0 {
        std::thread::yield_now();
    }
}

extern "C" fn after_fork_in_parent() {
    GATE.fetch_sub(FORKING, Ordering::Release);
}

/// The child handler: every registered descriptor now refers to the placeholder or to a
/// new description of its own, and its recorded mapping is reserved or made again from
/// that description.
extern "C" fn in_child() {
    // The child's only thread records nothing, and no other fork is under way here.
    GATE.store(0, Ordering::Relaxed);
    // glibc's `pthread_self` reads the thread pointer, which is async-signal-safe.
    FORKER.store(this_thread(), Ordering::Relaxed);
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    let placeholder = PLACEHOLDER.load(Ordering::Acquire);
    let mut next = HEAD.load(Ordering::Acquire);
    // SAFETY: nodes are never freed (see `register`).
    while let Some(node) = unsafe { next.as_ref() } {
        let fd = node.fd.load(Ordering::Acquire);
        if fd >= 0 {
            let base = node.base.load(Ordering::Acquire);
            let len = node.len.load(Ordering::Relaxed);
            if node.reopen.load(Ordering::Acquire) {
                let new = reopen(fd, node);
                let own = new >= 0 && (base.is_null() || remap(new, base, len)) && put(new, fd);
                if new >= 0 {
                    // SAFETY: `close` is async-signal-safe; `new` is ours (just opened).
                    unsafe { libc::close(new) };
                }
                if !own {
                    node.not_reopened.store(generation, Ordering::Relaxed);
                }
            } else {
                // Nothing useful can be done if it fails in a fork handler.
                put(placeholder, fd);
                if !base.is_null() {
                    reserve(base, len);
                }
            }
        }
        next = node.next.load(Ordering::Acquire);
    }
}

/// Makes `fd` (the child's copy of a parent's descriptor) refer to `replacement`'s
/// description; false if it could not.
fn put(replacement: RawFd, fd: RawFd) -> bool {
    // SAFETY: `dup3` is async-signal-safe; it atomically replaces the descriptor `fd` and
    // touches no memory.
    unsafe { libc::dup3(replacement, fd, libc::O_CLOEXEC) >= 0 }
}

/// Maps `len` bytes of `fd`'s file from offset 0 read-write, shared, at `base`, in place of
/// the child's copy of its parent's mapping of that file; false if it could not (the copy
/// then stays).
fn remap(fd: RawFd, base: *mut c_void, len: usize) -> bool {
    // SAFETY: `base..base+len` holds the child's copy of a mapping of this same file from
    // offset 0, shared and read-write (only read-write mappings are reopened, and a record
    // exists only while that mapping is mapped and inherited: see `Registered::map`,
    // `Registered::share` and `Mapped`'s drop). A new shared mapping of the same file at the
    // same offset with the same protection shows the same pages, so no byte that anything
    // refers to changes: only the description the mapping holds on to does. `MAP_FIXED`
    // replaces the old mapping atomically. `mmap` is a plain system call (glibc's wrapper
    // takes no lock and touches no memory but `errno`): async-signal-safe in practice,
    // though POSIX does not list it.
    let mapped = unsafe {
        libc::mmap(
            base,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd,
            0,
        )
    };
    mapped == base
}

/// Reserves, inaccessible, the `len` bytes at `base` that an exclusive mapping left
/// unmapped in this child (`MADV_DONTFORK`): whatever reads there through the child's copy
/// of the segment faults, rather than reading something mapped there later. The child's
/// copy of the region never unmaps it (`MappedRegion::mapped_here`).
fn reserve(base: *mut c_void, len: usize) {
    // SAFETY: `MAP_FIXED_NOREPLACE` never replaces a mapping (another fork handler may have
    // mapped something in the hole already: then that stays); an old kernel takes the
    // address as a mere hint, and what it put elsewhere is unmapped again below. `mmap`
    // and `munmap` are plain system calls, as for `remap`.
    let reserved = unsafe {
        libc::mmap(
            base,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if reserved != libc::MAP_FAILED && reserved != base {
        // SAFETY: `reserved` is the mapping just made, which nothing refers to.
        unsafe { libc::munmap(reserved, len) };
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

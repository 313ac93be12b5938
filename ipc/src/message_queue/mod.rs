//! [`MessageQueue`]: Boost's `message_queue`, robust: messages of up to a fixed size, with
//! priorities, between any threads and processes that map the queue, in a segment of its
//! own ([`NamedMessageQueue`]) or placed in any segment.
//!
//! # How it stays whole when a peer dies
//!
//! One robust [`Mutex`] guards the queue; two [`Condvar`]s wake receivers and senders. A
//! message is copied into a free slot and becomes queued by one store of its slot's state
//! word; a receive copies it out and frees the slot by one store (`slots` has the details).
//! A peer killed anywhere inside `send` or `receive` leaves the mutex to the next caller,
//! poisoned: that caller rebuilds the queue's order from the slot states and clears the
//! poison, so every message arrives whole exactly once or (if its sender died before the
//! store) not at all, and no one waits for the dead. A notification lost with a dead peer
//! costs a waiter at most [`LIVENESS_POLL`]: waiters look at the queue again that often.
//!
//! # Waiting
//!
//! A receiver of an empty queue (a sender of a full one) waits on its condition variable,
//! which spins about a microsecond and yields a few times before it sleeps on a futex
//! (see [`Condvar`]: a few µs at most, and no spinning when the other side runs on the
//! same CPU). A sender wakes a receiver only if one waits, so a queue nobody waits on
//! costs no system call.

mod image;
mod named;
mod origin;
mod slots;

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

use shmkit_runtime::layout::leaf_fingerprint;
use shmkit_runtime::segment::owned::{check_owned, set_owner};
use shmkit_runtime::sync::{Condvar, LockError, Mutex, MutexGuard, TryLockError, LIVENESS_POLL};
use shmkit_runtime::{
    Error, Invalid, NoPadding, PositionIndependent, Result, SegmentAllocator, ShmSafe,
};

pub use named::NamedMessageQueue;
use slots::{Head, Locked, Outgoing, Rebuilt, Shape, Words, ALIGN};

/// What a receive got: the message's length and priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Received {
    /// The message's length in bytes (the first `len` bytes of the buffer hold it).
    pub len: usize,
    /// Its priority.
    pub priority: u32,
}

/// A message queue that lives in a segment: up to [`max_msg`](Self::max_msg) messages of up
/// to [`max_msg_size`](Self::max_msg_size) bytes each, taken highest priority first and in
/// order of sending within a priority. Any number of threads and processes send and
/// receive (multi-producer, multi-consumer, as Boost's).
///
/// Place it in any writable segment as a named object, a root's field or a container's
/// element (`seg.construct("q", MessageQueue::new(16, 64)?)`), or use a
/// [`NamedMessageQueue`], which gives it a shared memory object of its own as Boost's
/// `message_queue` has. The slots are one block of the queue's segment, allocated by
/// [`prepare`](Self::prepare) or the first operation; a queue outside a writable segment
/// (on the stack) has no slots and every operation reports it.
///
/// ```
/// use shmkit_ipc::MessageQueue;
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let seg = ManagedHeapMemory::new(64 * 1024)?;
/// let q = seg.construct("q", MessageQueue::new(8, 32)?)?;
/// q.send(b"low", 0)?;
/// q.send(b"high", 5)?;
/// let mut buf = [0u8; 32];
/// let got = q.receive(&mut buf)?;
/// assert_eq!((&buf[..got.len], got.priority), (&b"high"[..], 5));
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
///
/// Errors leave the queue as it was: a message longer than `max_msg_size` is
/// [`Error::MessageTooLarge`] (nothing sent), a buffer shorter than the next message is
/// [`Error::ReceiveBufferTooSmall`] (nothing taken). Typed values go through
/// [`send_value`](Self::send_value) and [`receive_value`](Self::receive_value), which
/// check the type and validate the bytes.
#[repr(C)]
pub struct MessageQueue {
    /// The first 64 bytes: what a lock holder uses.
    lock: Mutex<()>,
    /// The counters, guarded by the lock but `published` (see `slots`).
    words: Words,
    max_msg: u32,
    max_msg_size: u32,
    /// The storage block's address minus this field's, wrapping; 0 until allocated. Set
    /// once, under the lock.
    storage: AtomicU64,
    _apart: [u8; 8],
    /// Each condition variable 64 bytes from anything else, so on a cache line of its
    /// own wherever the queue lies: waiters spin on its word, which lock holders should
    /// not keep taking from them. (Spacing, not `align(64)`: segments in buffers promise
    /// 16-byte alignment only.)
    not_empty: Apart<Condvar>,
    not_full: Apart<Condvar>,
}

const _: () = assert!(
    size_of::<MessageQueue>() == 192 && core::mem::offset_of!(MessageQueue, not_empty) == 64
);

/// A condition variable and the bytes that keep the next field 64 bytes away.
#[repr(C)]
struct Apart<T>(T, [u8; 48]);

/// How long an operation waits.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Until(Option<Instant>),
}

impl Wait {
    fn timeout(timeout: Duration) -> Wait {
        Wait::Until(Instant::now().checked_add(timeout))
    }
}

/// What an operation under the lock decided.
enum Step<R> {
    Done(R),
    /// The queue is empty (full): wait, then try again.
    Pending,
}

/// The lock held, with the queue's slots.
struct Held<'q> {
    guard: MutexGuard<'q, ()>,
    slots: Locked<'q>,
}

impl MessageQueue {
    /// A queue for `max_msg` messages of up to `max_msg_size` bytes each; both at least 1.
    /// Its slots take about `max_msg * (max_msg_size + 40)` bytes of its segment.
    pub fn new(max_msg: usize, max_msg_size: usize) -> Result<Self> {
        let shape = Shape::new(max_msg, max_msg_size).ok_or_else(|| Error::InvalidSize {
            size: max_msg as u64,
            reason: format!(
                "a message queue holds 1 to {} messages of 1 to {} bytes, and at most \
                 isize::MAX / 2 bytes in all ({max_msg} messages of {max_msg_size} bytes \
                 asked for)",
                slots::MAX_MSG,
                slots::MAX_MSG_SIZE
            ),
        })?;
        Ok(MessageQueue {
            lock: Mutex::new(()),
            not_empty: Apart(Condvar::new(), [0; 48]),
            not_full: Apart(Condvar::new(), [0; 48]),
            words: Words::default(),
            max_msg: shape.max_msg() as u32,
            max_msg_size: shape.max_msg_size() as u32,
            storage: AtomicU64::new(0),
            _apart: [0; 8],
        })
    }

    /// The bytes a queue of this capacity allocates in its segment (its slots), for sizing
    /// segments; None for a capacity [`new`](Self::new) refuses.
    pub fn storage_bytes(max_msg: usize, max_msg_size: usize) -> Option<usize> {
        Shape::new(max_msg, max_msg_size)?.bytes()
    }

    /// How many messages it holds at most.
    pub fn max_msg(&self) -> usize {
        self.max_msg as usize
    }

    /// The longest message, in bytes.
    pub fn max_msg_size(&self) -> usize {
        self.max_msg_size as usize
    }

    /// How many messages are queued now (others may change it at once).
    pub fn num_msg(&self) -> usize {
        self.words.published.load(Ordering::Relaxed) as usize
    }

    /// Allocates the slots now if no operation has yet, so that a segment too small shows
    /// here ([`Error::OutOfMemory`]) rather than at the first send.
    pub fn prepare(&self) -> Result<()> {
        self.acquire(Wait::Until(None)).map(drop)
    }

    // ---- sending ------------------------------------------------------------------------

    /// Queues `msg` with `priority` (higher is received first), waiting while the queue
    /// is full.
    pub fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.send_bytes(as_uninit(msg), priority, 0, 0, Wait::Until(None))
            .map(drop)
    }

    /// Queues `msg` if there is room now; false (nothing sent) when the queue is full.
    pub fn try_send(&self, msg: &[u8], priority: u32) -> Result<bool> {
        self.send_bytes(as_uninit(msg), priority, 0, 0, Wait::No)
    }

    /// Queues `msg`, waiting at most `timeout` for room; false (nothing sent) if none came.
    pub fn send_timeout(&self, msg: &[u8], priority: u32, timeout: Duration) -> Result<bool> {
        self.send_bytes(as_uninit(msg), priority, 0, 0, Wait::timeout(timeout))
    }

    /// Queues bytes that may be uninitialised, such as a segment image
    /// ([`ManagedHeapMemory::image`](shmkit_runtime::ManagedHeapMemory::image)), waiting
    /// while the queue is full. No `[u8]` is formed over them. Another process receives
    /// them with [`receive`](Self::receive); this process only with
    /// [`receive_uninit`](Self::receive_uninit), since here they are still uninitialised.
    pub fn send_uninit(&self, msg: &[MaybeUninit<u8>], priority: u32) -> Result<()> {
        self.send_bytes(msg, priority, 0, origin::UNINIT, Wait::Until(None))
            .map(drop)
    }

    /// Queues a copy of `value` (a type without padding, so no uninitialised byte is
    /// sent) with its type's fingerprint, for [`receive_value`](Self::receive_value),
    /// waiting while the queue is full.
    pub fn send_value<T: NoPadding>(&self, value: &T, priority: u32) -> Result<()> {
        self.send_typed(value, priority, Wait::Until(None))
            .map(drop)
    }

    /// [`send_value`](Self::send_value) if there is room now; false when full.
    pub fn try_send_value<T: NoPadding>(&self, value: &T, priority: u32) -> Result<bool> {
        self.send_typed(value, priority, Wait::No)
    }

    /// [`send_value`](Self::send_value), waiting at most `timeout` for room.
    pub fn send_value_timeout<T: NoPadding>(
        &self,
        value: &T,
        priority: u32,
        timeout: Duration,
    ) -> Result<bool> {
        self.send_typed(value, priority, Wait::timeout(timeout))
    }

    fn send_typed<T: NoPadding>(&self, value: &T, priority: u32, wait: Wait) -> Result<bool> {
        // SAFETY: `T: NoPadding`: every byte of a `T` is initialised, and it has no interior
        // mutability (no atomics nor cells), so its bytes do not change while `&T` lives.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                (value as *const T).cast::<MaybeUninit<u8>>(),
                size_of::<T>(),
            )
        };
        self.send_bytes(bytes, priority, T::type_fingerprint(), origin::TYPED, wait)
    }

    fn send_bytes(
        &self,
        bytes: &[MaybeUninit<u8>],
        priority: u32,
        fingerprint: u64,
        flags: u64,
        wait: Wait,
    ) -> Result<bool> {
        if bytes.len() > self.max_msg_size() {
            return Err(Error::MessageTooLarge {
                size: bytes.len(),
                max: self.max_msg_size(),
            });
        }
        // Only possibly uninitialised bytes need their sender named (a `getpid` call).
        let sender = if flags & origin::UNINIT != 0 {
            origin::this_process()
        } else {
            0
        };
        let msg = Outgoing {
            bytes,
            priority,
            fingerprint,
            origin: flags | sender,
        };
        let sent = self.transact(false, wait, |slots| {
            Ok(match slots.push(&msg) {
                Ok(true) => Step::Done(()),
                Ok(false) => Step::Pending,
                Err(Rebuilt) => return Err(Fail::Retry),
            })
        })?;
        Ok(sent.is_some())
    }

    // ---- receiving ----------------------------------------------------------------------

    /// Takes the next message into `buf`, waiting while the queue is empty.
    pub fn receive(&self, buf: &mut [u8]) -> Result<Received> {
        self.receive_bytes(as_uninit_mut(buf), false, Wait::Until(None))
            .map(expect_message)
    }

    /// Takes the next message into `buf` if there is one now.
    pub fn try_receive(&self, buf: &mut [u8]) -> Result<Option<Received>> {
        if self.num_msg() == 0 {
            // Polling an empty queue writes nothing shared (no lock taken): pollers on
            // other CPUs do not slow its sender down.
            return Ok(None);
        }
        self.receive_bytes(as_uninit_mut(buf), false, Wait::No)
    }

    /// Takes the next message into `buf`, waiting at most `timeout` for one.
    pub fn receive_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>> {
        self.receive_bytes(as_uninit_mut(buf), false, Wait::timeout(timeout))
    }

    /// Takes the next message into `buf` as possibly uninitialised bytes (any message,
    /// also one this process sent with [`send_uninit`](Self::send_uninit)), waiting while
    /// the queue is empty.
    pub fn receive_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> Result<Received> {
        self.receive_bytes(buf, true, Wait::Until(None))
            .map(expect_message)
    }

    /// Takes the next message, a `T` sent with [`send_value`](Self::send_value), waiting
    /// while the queue is empty. A message of another type (or raw bytes) is
    /// [`Error::TypeMismatch`], and bytes that are no valid `T` (a `bool` of 2) are
    /// [`Error::InvalidValue`]; either way the message stays queued.
    pub fn receive_value<T: PositionIndependent>(&self) -> Result<(T, u32)> {
        self.receive_typed(Wait::Until(None)).map(expect_message)
    }

    /// [`receive_value`](Self::receive_value) if a message is queued now.
    pub fn try_receive_value<T: PositionIndependent>(&self) -> Result<Option<(T, u32)>> {
        if self.num_msg() == 0 {
            return Ok(None);
        }
        self.receive_typed(Wait::No)
    }

    /// [`receive_value`](Self::receive_value), waiting at most `timeout` for a message.
    pub fn receive_value_timeout<T: PositionIndependent>(
        &self,
        timeout: Duration,
    ) -> Result<Option<(T, u32)>> {
        self.receive_typed(Wait::timeout(timeout))
    }

    fn receive_bytes(
        &self,
        buf: &mut [MaybeUninit<u8>],
        uninit_ok: bool,
        wait: Wait,
    ) -> Result<Option<Received>> {
        self.transact(true, wait, |slots| {
            let Some(head) = slots.head().map_err(|Rebuilt| Fail::Retry)? else {
                return Ok(Step::Pending);
            };
            if head.len > buf.len() {
                return Err(Error::ReceiveBufferTooSmall {
                    len: buf.len(),
                    needed: head.len,
                }
                .into());
            }
            if !uninit_ok {
                refuse_uninit_here(&head)?;
            }
            // SAFETY: `head` is this hold's; `buf` has room for `head.len` bytes.
            unsafe { slots.read(&head, buf.as_mut_ptr().cast()) };
            slots.take(&head);
            Ok(Step::Done(Received {
                len: head.len,
                priority: head.priority,
            }))
        })
    }

    fn receive_typed<T: PositionIndependent>(&self, wait: Wait) -> Result<Option<(T, u32)>> {
        self.transact(true, wait, |slots| {
            let Some(head) = slots.head().map_err(|Rebuilt| Fail::Retry)? else {
                return Ok(Step::Pending);
            };
            check_type::<T>(&head)?;
            refuse_uninit_here(&head)?;
            let mut value = MaybeUninit::<T>::uninit();
            // SAFETY: `head` is this hold's, and holds `size_of::<T>()` bytes
            // (`check_type`), which `value` has room for.
            unsafe { slots.read(&head, value.as_mut_ptr().cast()) };
            // SAFETY: `value` is aligned and its `size_of::<T>()` bytes are initialised: a
            // `send_value` of a `NoPadding` type wrote them all, no message this process
            // sent as uninitialised bytes gets here (`refuse_uninit_here`), and bytes from
            // another process come from shared memory, which the kernel initialised.
            // Nothing else sees `value`.
            unsafe { T::validate(value.as_ptr()) }.map_err(|e| invalid::<T>(e))?;
            slots.take(&head);
            // SAFETY: validated above: a valid `T`, position-independent, so this copy of
            // its bytes is one too.
            Ok(Step::Done((unsafe { value.assume_init() }, head.priority)))
        })
    }

    // ---- the lock -----------------------------------------------------------------------

    /// Runs `op` under the lock until it is done, waiting on this side's condition variable
    /// while it is pending (as a receiver or as a sender); None when `wait` ran out first.
    fn transact<R>(
        &self,
        receiver: bool,
        wait: Wait,
        mut op: impl FnMut(&Locked<'_>) -> core::result::Result<Step<R>, Fail>,
    ) -> Result<Option<R>> {
        let Some(mut held) = self.acquire(wait)? else {
            return Ok(None);
        };
        let (mine, theirs) = if receiver {
            (&self.not_empty.0, &self.not_full.0)
        } else {
            (&self.not_full.0, &self.not_empty.0)
        };
        loop {
            match op(&held.slots) {
                Ok(Step::Done(r)) => {
                    let notify = held.slots.must_wake(receiver);
                    drop(held);
                    if notify {
                        theirs.notify_one();
                    }
                    return Ok(Some(r));
                }
                Err(Fail::Retry) => continue,
                Err(Fail::Error(e)) => return Err(e),
                Ok(Step::Pending) => {
                    let deadline = match wait {
                        Wait::No => return Ok(None),
                        Wait::Until(deadline) => deadline,
                    };
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                    held.slots.count_waiter(receiver, true);
                    held = self.wait_on(mine, held, deadline)?;
                    held.slots.count_waiter(receiver, false);
                }
            }
        }
    }

    /// Waits on `cv` (at most [`LIVENESS_POLL`] at a time, so that a notification lost
    /// with a dead peer delays nobody longer) and takes the lock again.
    fn wait_on<'q>(
        &'q self,
        cv: &Condvar,
        held: Held<'q>,
        deadline: Option<Instant>,
    ) -> Result<Held<'q>> {
        let slice = match deadline {
            None => LIVENESS_POLL,
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(LIVENESS_POLL),
        };
        let Held { guard, slots } = held;
        let guard = match cv.wait_timeout(guard, slice) {
            Ok((guard, _)) => guard,
            Err(LockError::Poisoned(p)) => self.repair(p.into_inner().0, &slots),
            Err(LockError::Failed(e)) => return Err(e),
        };
        Ok(Held { guard, slots })
    }

    /// Takes the lock (repairing the queue after a dead holder) and the slots (allocating
    /// them on first use); None when `wait` ran out first.
    fn acquire(&self, wait: Wait) -> Result<Option<Held<'_>>> {
        let taken = match wait {
            Wait::Until(None) => self.lock.lock().map_err(TryLockError::from),
            // Not `try_lock`: a holder that died is taken over (and the queue repaired), or
            // a poller would never see the messages behind it.
            Wait::No => self.lock.lock_timeout(Duration::ZERO),
            Wait::Until(Some(deadline)) => self
                .lock
                .lock_timeout(deadline.saturating_duration_since(Instant::now())),
        };
        let (guard, poisoned) = match taken {
            Ok(guard) => (guard, false),
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Poisoned(p)) => (p.into_inner(), true),
            Err(TryLockError::Failed(e)) => return Err(e),
        };
        let shape = self.shape()?;
        let base = match self.block() {
            Some(base) => base,
            None => self.allocate(shape)?,
        };
        // SAFETY: the queue's own block, of `shape.bytes()` bytes aligned to `ALIGN`
        // (allocated so, or validated so when found in bytes from elsewhere); it is freed
        // only by `drop`, which `&self` excludes; its words are touched only under the lock,
        // which `guard` holds.
        let slots = unsafe { Locked::new(base, shape, &self.words) };
        let guard = if poisoned {
            self.repair(guard, &slots)
        } else {
            let _ = slots.check_counts();
            guard
        };
        Ok(Some(Held { guard, slots }))
    }

    /// After a holder died (or panicked) mid-operation: rebuilds the order from the slot
    /// states and clears the poison.
    fn repair<'q>(&'q self, guard: MutexGuard<'q, ()>, slots: &Locked<'_>) -> MutexGuard<'q, ()> {
        let _ = slots.rebuild();
        self.lock.clear_poison();
        guard
    }

    fn shape(&self) -> Result<Shape> {
        Shape::new(self.max_msg(), self.max_msg_size()).ok_or_else(|| Error::Corrupted {
            what: "message queue".into(),
            reason: format!(
                "capacity of {} messages of {} bytes",
                self.max_msg, self.max_msg_size
            ),
        })
    }

    /// The storage block, once allocated.
    fn block(&self) -> Option<NonNull<u8>> {
        let offset = self.storage.load(Ordering::Acquire);
        let field = core::ptr::addr_of!(self.storage).addr();
        (offset != 0)
            .then(|| field.wrapping_add(offset as usize))
            .and_then(|addr| NonNull::new(core::ptr::with_exposed_provenance_mut(addr)))
    }

    /// Allocates, formats and publishes the storage block (under the lock).
    fn allocate(&self, shape: Shape) -> Result<NonNull<u8>> {
        let layout = block_layout(shape)?;
        let alloc = SegmentAllocator::of(self).map_err(|e| Error::Unsupported {
            what: match e.kind() {
                shmkit_runtime::AllocErrorKind::ReadOnly { .. } => {
                    "a message queue in a read-only mapping"
                }
                _ => "a message queue outside a writable segment (place it in one)",
            },
        })?;
        let block = alloc.allocate_zeroed(layout)?.cast::<u8>();
        let field = core::ptr::addr_of!(self.storage);
        // SAFETY: a fresh, zeroed block of this mapping, aligned to 16, whose first word
        // is reserved for the tag; nobody else knows it yet.
        unsafe { set_owner(block, field.cast()) };
        // SAFETY: as above, of `shape.bytes()` bytes; the lock is held by the caller.
        unsafe { Locked::new(block, shape, &self.words) }.format();
        shmkit_runtime::__private::crash::point("queue: slots allocated, not yet published");
        self.storage.store(
            block.as_ptr().addr().wrapping_sub(field.addr()) as u64,
            Ordering::Release,
        );
        Ok(block)
    }
}

/// Why an operation under the lock did not finish.
enum Fail {
    /// The structures were rebuilt from the slot states: run the operation again.
    Retry,
    Error(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Error(e)
    }
}

/// The layout of a queue's storage block.
fn block_layout(shape: Shape) -> Result<Layout> {
    shape
        .bytes()
        .and_then(|bytes| Layout::from_size_align(bytes, ALIGN).ok())
        .ok_or_else(|| Error::InvalidSize {
            size: shape.max_msg() as u64,
            reason: "the queue's slots would not fit in the address space".into(),
        })
}

/// Bytes as possibly uninitialised bytes (what the slots copy).
fn as_uninit(bytes: &[u8]) -> &[MaybeUninit<u8>] {
    // SAFETY: same layout; a shared borrow never writes (so never de-initialises) them.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len()) }
}

/// A buffer of initialised bytes as one that a receive writes only initialised bytes to.
fn as_uninit_mut(bytes: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: same layout; the receives that take this view write only bytes that are
    // initialised here (they refuse a message this process sent as uninitialised bytes,
    // and memory shared with other processes holds what the kernel gives, initialised).
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), bytes.len()) }
}

/// The message of a receive that waited without a deadline (which always gets one).
fn expect_message<R>(got: Option<R>) -> R {
    match got {
        Some(r) => r,
        None => unreachable!("a receive without a deadline returned without a message"),
    }
}

/// Refuses a message this process sent with `send_uninit`: here its bytes may still be
/// uninitialised, so only `receive_uninit` may take it.
fn refuse_uninit_here(head: &Head) -> Result<()> {
    if origin::uninit_here(head.origin) {
        return Err(Error::Unsupported {
            what: "receiving as initialised bytes a message this process sent with \
                   send_uninit (its bytes may be uninitialised here): use receive_uninit",
        });
    }
    Ok(())
}

/// Whether the head is a `T` sent with `send_value`.
fn check_type<T: ShmSafe>(head: &Head) -> Result<()> {
    let typed = head.origin & origin::TYPED != 0;
    if typed && head.fingerprint == T::type_fingerprint() && head.len == size_of::<T>() {
        return Ok(());
    }
    Err(Error::TypeMismatch {
        what: "the next message of a message queue".into(),
        expected: core::any::type_name::<T>().into(),
        found: if typed {
            format!("a value of another type ({} bytes)", head.len)
        } else {
            format!("{} bytes sent untyped", head.len)
        },
    })
}

fn invalid<T>(e: Invalid) -> Error {
    Error::InvalidValue {
        what: format!(
            "a message of type {} in a message queue",
            core::any::type_name::<T>()
        ),
        field: e.field,
        offset: e.offset,
        expected: e.expected,
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        let (Some(block), Ok(shape)) = (self.block(), self.shape()) else {
            return;
        };
        let (Ok(layout), Ok(alloc)) = (block_layout(shape), SegmentAllocator::of(&*self)) else {
            return;
        };
        // SAFETY: the queue's own block (validated when the queue came from bytes from
        // elsewhere), allocated with this layout in the queue's mapping; `&mut self` is the
        // last use of the queue. A failure leaves the block to the segment, leaked.
        let _ = unsafe { alloc.deallocate(block, layout) };
    }
}

// SAFETY: the lock and condition variables validate themselves; the capacity must be one
// `new` accepts; the storage word must be 0 or aim at a block of the queue's length that
// names this very word its owner (so no two queues share slots). The words inside the
// block are checked at each use (see `slots`), so any bytes there are safe.
unsafe impl ShmSafe for MessageQueue {
    const LAYOUT_FINGERPRINT: u64 = leaf_fingerprint(
        "shmkit::MessageQueue/1",
        size_of::<MessageQueue>(),
        align_of::<MessageQueue>(),
    );

    unsafe fn validate(value: *const Self) -> core::result::Result<(), Invalid> {
        // SAFETY: the caller's contract: an aligned, readable `MessageQueue`.
        let queue = unsafe { &*value };
        // SAFETY: as above, for the field.
        unsafe { <Mutex<()> as ShmSafe>::validate(&queue.lock) }
            .map_err(|e| e.within("lock", 0))?;
        let shape = Shape::new(queue.max_msg(), queue.max_msg_size())
            .ok_or_else(|| Invalid::new("a message queue capacity `MessageQueue::new` accepts"))?;
        let Some(block) = queue.block() else {
            return Ok(());
        };
        let len = shape.bytes().unwrap_or(usize::MAX);
        check_owned(
            block.as_ptr(),
            core::ptr::addr_of!(queue.storage).cast(),
            len,
        )
        .map_err(|e| e.within("storage", core::mem::offset_of!(Self, storage)))?;
        if block.as_ptr().addr() % ALIGN != 0 {
            return Err(Invalid::new("slots aligned to 16 bytes")
                .within("storage", core::mem::offset_of!(Self, storage)));
        }
        Ok(())
    }

    unsafe fn relocate(&mut self, moved_from: usize) {
        let old_field = moved_from.wrapping_add(core::mem::offset_of!(Self, storage));
        let offset = *self.storage.get_mut();
        if offset == 0 {
            return;
        }
        let block = old_field.wrapping_add(offset as usize);
        let field = core::ptr::addr_of!(self.storage);
        *self.storage.get_mut() = block.wrapping_sub(field.addr()) as u64;
        if let Some(block) = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(block)) {
            // SAFETY: the queue's own block (it moved, the block did not), whose first word
            // is its tag; `&mut self` means nobody uses the queue meanwhile.
            unsafe { set_owner(block, field.cast()) };
        }
    }

    fn type_fingerprint() -> u64 {
        Self::LAYOUT_FINGERPRINT
    }
}

impl fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageQueue")
            .field("max_msg", &self.max_msg)
            .field("max_msg_size", &self.max_msg_size)
            .field("num_msg", &self.num_msg())
            .finish_non_exhaustive()
    }
}

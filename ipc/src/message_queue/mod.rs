//! [`MessageQueue`]: Boost's `message_queue`, robust: messages of up to a fixed size, with
//! priorities, between any threads and processes that map the queue, in a segment of its
//! own ([`NamedMessageQueue`]) or placed in any segment.
//!
//! # How it stays whole when a peer dies
//!
//! Two robust [`Mutex`]es: one that senders take, one that receivers take (a two-lock
//! queue: a sender and a receiver never wait for each other's lock, and each lock stays
//! in its side's cache). A message is copied into a free slot and becomes queued by one
//! store of its slot's state word; a receive copies it out and frees the slot by one store
//! (`slots` has the details). A peer killed anywhere inside `send` or `receive` leaves its
//! lock to the next caller of its side, poisoned: that caller takes both locks, rebuilds
//! the queue's order from the slot states and clears the poison, so every message arrives
//! whole exactly once or (if its sender died before the store) not at all, and no one
//! waits for the dead. A receiver that finds the queue empty while a sender is half-way,
//! and a sender that is about to sleep on a full queue, look whether the other side's
//! lock holder died, and repair then. A message whose sender died after its store thus
//! arrives once that repair has published it, after the messages sent before the repair.
//!
//! # Waiting
//!
//! A receiver of an empty queue (a sender of a full one) first watches the queue for
//! [`SPIN`] (about 4 µs; not at all when the other side last ran on the same CPU, where
//! spinning only keeps it from running), then yields the CPU a few times, then sleeps on
//! a futex word of its side, counted as a sleeper. A sender wakes a receiver (a receiver a
//! sender) only if one is counted, so a queue nobody sleeps on costs no system call. A
//! sleeper looks at the queue again at least every [`LIVENESS_POLL`], so a wake-up lost
//! with a dead peer costs no more.

mod image;
mod named;
mod origin;
mod slots;

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

use shmkit_runtime::layout::leaf_fingerprint;
use shmkit_runtime::segment::owned::{check_owned, set_owner};
use shmkit_runtime::sync::{
    atomic_notify_one, atomic_wait, LockError, Mutex, MutexGuard, TryLockError, LIVENESS_POLL,
};
use shmkit_runtime::{
    Error, Invalid, NoPadding, PositionIndependent, Result, SegmentAllocator, ShmSafe,
};

pub use named::NamedMessageQueue;
use slots::{
    Block, Both, Broken, Consumer, Head, Outgoing, Producer, RecvSide, SendSide, Shape, ALIGN,
};

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
    /// The first line: what both sides read and seldom write.
    max_msg: u32,
    max_msg_size: u32,
    /// The storage block's address minus this field's, wrapping; 0 until allocated. Set
    /// once, under both locks.
    storage: AtomicU64,
    waits: Waits,
    _line0: [u8; 32],
    /// The second to fourth: the senders' lock and words, what they publish, and their
    /// claim.
    send_lock: Mutex<()>,
    send: SendSide,
    /// The fifth and sixth: the receivers'. (Lines apart by spacing, not `align(64)`:
    /// segments in buffers promise 16-byte alignment only.)
    recv_lock: Mutex<()>,
    recv: RecvSide,
}

const _: () = assert!(
    size_of::<MessageQueue>() == 384
        && core::mem::offset_of!(MessageQueue, send_lock) == 64
        && core::mem::offset_of!(MessageQueue, recv_lock) == 256
);

/// The futex words that sleepers wait on, and how many sleep on each (hints that only
/// make the other side skip the `futex` call when nobody sleeps: a sleeper that dies stays
/// counted, which costs each later wake a system call and nothing else; they saturate
/// and never go below zero). Dekker: a side publishes (a message, a free slot), then
/// reads the other side's count; a sleeper counts itself, then looks at the queue once
/// more; a fence between on both sides, so one of the two sees the other.
#[repr(C)]
#[derive(Default)]
struct Waits {
    not_empty: AtomicU32,
    receivers: AtomicU32,
    not_full: AtomicU32,
    senders: AtomicU32,
}

/// How long a waiter watches the queue before it yields and sleeps (see the module docs).
pub const SPIN: Duration = Duration::from_micros(if cfg!(miri) { 0 } else { 4 });

/// How many times a waiter then yields the CPU, looking after each, before it sleeps.
const YIELDS: u32 = if cfg!(miri) { 1 } else { 4 };

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

/// Which side of the queue an operation is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Sender,
    Receiver,
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
            max_msg: shape.max_msg() as u32,
            max_msg_size: shape.max_msg_size() as u32,
            storage: AtomicU64::new(0),
            waits: Waits::default(),
            _line0: [0; 32],
            send_lock: Mutex::new(()),
            send: SendSide::default(),
            recv_lock: Mutex::new(()),
            recv: RecvSide::default(),
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
        self.allocated().map_or(0, |block| block.count())
    }

    /// Allocates the slots now if no operation has yet, so that a segment too small shows
    /// here ([`Error::OutOfMemory`]) rather than at the first send.
    pub fn prepare(&self) -> Result<()> {
        self.block().map(drop)
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
        let block = self.block()?;
        loop {
            let Some(guard) = self.lock_side(Side::Sender, wait)? else {
                return Ok(false);
            };
            // SAFETY: `guard` holds the send lock while `producer` lives.
            let producer = unsafe { Producer::new(block) };
            match producer.claim() {
                Ok(Some(slot)) => {
                    producer.send(slot, &msg);
                    self.send.cpu.store(this_cpu(), Ordering::Relaxed);
                    drop(guard);
                    self.wake(Side::Receiver);
                    return Ok(true);
                }
                Ok(None) => {
                    drop(guard);
                    // Full. A receiver half-way through a take may have died there, the
                    // slot it freed not counted yet: a poller must not be told "full"
                    // for good.
                    if matches!(wait, Wait::No) && block.receive_in_progress() {
                        if self.stuck(Side::Sender)? {
                            continue;
                        }
                        return Ok(false);
                    }
                    if !self.wait_for(Side::Sender, block, wait)? {
                        return Ok(false);
                    }
                }
                Err(Broken) => {
                    drop(guard);
                    self.repair()?;
                }
            }
        }
    }

    // ---- receiving ----------------------------------------------------------------------

    /// Takes the next message into `buf`, waiting while the queue is empty.
    pub fn receive(&self, buf: &mut [u8]) -> Result<Received> {
        self.receive_bytes(as_uninit_mut(buf), false, Wait::Until(None))
            .map(expect_message)
    }

    /// Takes the next message into `buf` if there is one now.
    pub fn try_receive(&self, buf: &mut [u8]) -> Result<Option<Received>> {
        if self.nothing_to_take() {
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
        if self.nothing_to_take() {
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
        self.take_next(wait, |consumer, head| {
            if head.len > buf.len() {
                return Err(Error::ReceiveBufferTooSmall {
                    len: buf.len(),
                    needed: head.len,
                });
            }
            if !uninit_ok {
                refuse_uninit_here(head)?;
            }
            // SAFETY: `head` is this consumer's; `buf` has room for `head.len` bytes.
            unsafe { consumer.read(head, buf.as_mut_ptr().cast()) };
            Ok(Received {
                len: head.len,
                priority: head.priority,
            })
        })
    }

    fn receive_typed<T: PositionIndependent>(&self, wait: Wait) -> Result<Option<(T, u32)>> {
        self.take_next(wait, |consumer, head| {
            check_type::<T>(head)?;
            refuse_uninit_here(head)?;
            let mut value = MaybeUninit::<T>::uninit();
            // SAFETY: `head` is this consumer's, and holds `size_of::<T>()` bytes
            // (`check_type`), which `value` has room for.
            unsafe { consumer.read(head, value.as_mut_ptr().cast()) };
            // SAFETY: `value` is aligned and its `size_of::<T>()` bytes are initialised: a
            // `send_value` of a `NoPadding` type wrote them all, no message this process
            // sent as uninitialised bytes gets here (`refuse_uninit_here`), and bytes from
            // another process come from shared memory, which the kernel initialised.
            // Nothing else sees `value`.
            unsafe { T::validate(value.as_ptr()) }.map_err(|e| invalid::<T>(e))?;
            // SAFETY: validated above: a valid `T`, position-independent, so this copy of
            // its bytes is one too.
            Ok((unsafe { value.assume_init() }, head.priority))
        })
    }

    // ---- the two sides ------------------------------------------------------------------

    /// Takes the next message with `op` (which checks and copies it, or refuses it with an
    /// error that leaves it queued), waiting while the queue is empty; None when `wait` ran
    /// out first.
    fn take_next<R>(
        &self,
        wait: Wait,
        mut op: impl FnMut(&Consumer<'_>, &Head) -> Result<R>,
    ) -> Result<Option<R>> {
        let block = self.block()?;
        loop {
            let Some(guard) = self.lock_side(Side::Receiver, wait)? else {
                return Ok(None);
            };
            // SAFETY: `guard` holds the receive lock while `consumer` lives.
            let consumer = unsafe { Consumer::new(block) };
            match consumer.head() {
                Ok(Some(head)) => {
                    let got = op(&consumer, &head)?;
                    consumer.take(&head);
                    self.recv.cpu.store(this_cpu(), Ordering::Relaxed);
                    drop(guard);
                    self.wake(Side::Sender);
                    return Ok(Some(got));
                }
                Ok(None) => {
                    drop(guard);
                    if block.send_in_progress() {
                        // A send half-way: it publishes in a moment, unless its sender
                        // died (or stands still), which only then is worth a look at its
                        // lock (that look would slow a live sender down).
                        let sent = || block.has_message() || !block.send_in_progress();
                        if spin(&sent, &self.send.cpu, 1) || self.stuck(Side::Receiver)? {
                            continue;
                        }
                    }
                    if !self.wait_for(Side::Receiver, block, wait)? {
                        return Ok(None);
                    }
                }
                Err(Broken) => {
                    drop(guard);
                    self.repair()?;
                }
            }
        }
    }

    /// Whether a poller can tell without any lock that there is nothing to take: nothing
    /// published beyond what receivers sorted, no lanes, no sender half-way (which may
    /// have died there: the slow path looks). Writes nothing shared, so pollers on other
    /// CPUs do not slow the sender down.
    fn nothing_to_take(&self) -> bool {
        match self.allocated() {
            Some(block) => !block.has_message() && !block.send_in_progress(),
            // No slots yet, nothing was ever sent; or a capacity the slow path reports.
            None => self.shape().is_ok(),
        }
    }

    /// Takes this side's lock as `wait` allows (a lock is held only briefly, so `No`
    /// waits for it too); after a holder died, repairs the queue and takes it again. None
    /// when the deadline passed.
    fn lock_side(&self, side: Side, wait: Wait) -> Result<Option<MutexGuard<'_, ()>>> {
        let lock = match side {
            Side::Sender => &self.send_lock,
            Side::Receiver => &self.recv_lock,
        };
        loop {
            let taken = match wait {
                Wait::No | Wait::Until(None) => lock.lock().map_err(TryLockError::from),
                Wait::Until(Some(deadline)) => {
                    lock.lock_timeout(deadline.saturating_duration_since(Instant::now()))
                }
            };
            match taken {
                Ok(guard) => return Ok(Some(guard)),
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Poisoned(p)) => {
                    drop(p.into_inner());
                    self.repair()?;
                }
                Err(TryLockError::Failed(e)) => return Err(e),
            }
        }
    }

    /// Takes both locks, the send lock first (the one order in which anyone blocks on
    /// both), poisoned or not.
    fn lock_both(&self) -> Result<(MutexGuard<'_, ()>, MutexGuard<'_, ()>)> {
        let send = lock_anyway(&self.send_lock)?;
        let recv = lock_anyway(&self.recv_lock)?;
        Ok((send, recv))
    }

    /// After a holder of either lock died (or panicked) mid-operation, or on words that do
    /// not add up: rebuilds the order from the slot states under both locks and clears
    /// both poisons.
    fn repair(&self) -> Result<()> {
        let (send, recv) = self.lock_both()?;
        if let Some(block) = self.allocated() {
            // SAFETY: both locks are held while `both` lives.
            unsafe { Both::new(block) }.rebuild();
        }
        self.send_lock.clear_poison();
        self.recv_lock.clear_poison();
        drop(recv);
        drop(send);
        Ok(())
    }

    /// Before a caller of `side` gives up or sleeps: whether the queue was repaired, so
    /// that there is something to try again. It is when a lock holder died (its lock is
    /// taken over), or when, with both locks free and taken for a moment, the words do
    /// not add up (a claim or a take nobody finishes, counts that say messages are queued
    /// that no receiver can reach: forged, or left so). A lock held by a live caller is not
    /// waited for: that caller is working, and wakes the sleepers it must.
    fn stuck(&self, side: Side) -> Result<bool> {
        let (theirs, ours) = match side {
            Side::Sender => (&self.recv_lock, &self.send_lock),
            Side::Receiver => (&self.send_lock, &self.recv_lock),
        };
        // Neither waits, so the order does not matter here.
        let Some((their_guard, their_poison)) = try_lock(theirs)? else {
            return Ok(false);
        };
        let broken = if their_poison {
            true
        } else {
            match try_lock(ours)? {
                None => false,
                Some((our_guard, our_poison)) => {
                    let adds_up = self.allocated().is_none_or(|block| block.adds_up());
                    drop(our_guard);
                    our_poison || !adds_up
                }
            }
        };
        drop(their_guard);
        if broken {
            self.repair()?;
        }
        Ok(broken)
    }

    /// Waits until the queue may have what `side` waits for (a message, room), the other
    /// side's lock holder died, or `wait` runs out (false). Spins, yields, then sleeps in
    /// slices of at most [`LIVENESS_POLL`].
    fn wait_for(&self, side: Side, block: Block<'_>, wait: Wait) -> Result<bool> {
        let Wait::Until(deadline) = wait else {
            return Ok(false);
        };
        let ready = || match side {
            Side::Sender => block.room_for(1),
            Side::Receiver => block.has_message(),
        };
        let (peer_cpu, word, sleepers) = match side {
            Side::Sender => (&self.recv.cpu, &self.waits.not_full, &self.waits.senders),
            Side::Receiver => (&self.send.cpu, &self.waits.not_empty, &self.waits.receivers),
        };
        // A sender that outruns its receivers waits, while it spins, for a few free slots
        // rather than one (and looks less often): the two sides then take turns in runs
        // of messages, not message by message, and each run moves the free ring's and the
        // counts' lines once. Once done spinning, one free slot will do.
        let batch = (self.max_msg / 8).clamp(1, 16);
        let spun = match side {
            Side::Sender => spin(&|| block.room_for(batch), peer_cpu, 8),
            Side::Receiver => spin(&ready, peer_cpu, 1),
        };
        if spun || ready() {
            return Ok(true);
        }
        if self.stuck(side)? {
            return Ok(true);
        }
        let slice = match deadline {
            None => LIVENESS_POLL,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                left.min(LIVENESS_POLL)
            }
        };
        let seen = word.load(Ordering::SeqCst);
        let counted = sleepers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_add(1))
            .is_ok();
        // Dekker with `wake`: after counting in, look once more.
        fence(Ordering::SeqCst);
        if !ready() {
            atomic_wait(word, seen, Some(slice));
        }
        if counted {
            let _ = sleepers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
        Ok(true)
    }

    /// After publishing a message (`side` Receiver) or a free slot (Sender): wakes a
    /// sleeper of that side, if one is counted.
    fn wake(&self, side: Side) {
        let (word, sleepers) = match side {
            Side::Sender => (&self.waits.not_full, &self.waits.senders),
            Side::Receiver => (&self.waits.not_empty, &self.waits.receivers),
        };
        // Dekker with `wait_for`: the publication came before this fence.
        fence(Ordering::SeqCst);
        if sleepers.load(Ordering::Relaxed) != 0 {
            word.fetch_add(1, Ordering::SeqCst);
            atomic_notify_one(word);
        }
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

    /// The storage block with the counters, allocating it on first use.
    fn block(&self) -> Result<Block<'_>> {
        let shape = self.shape()?;
        let base = match self.storage_block() {
            Some(base) => base,
            None => self.allocate(shape)?,
        };
        Ok(self.view(base, shape))
    }

    /// The storage block with the counters, if allocated (and the capacity is one `new`
    /// accepts).
    fn allocated(&self) -> Option<Block<'_>> {
        Some(self.view(self.storage_block()?, self.shape().ok()?))
    }

    fn view(&self, base: NonNull<u8>, shape: Shape) -> Block<'_> {
        // SAFETY: the queue's own block, of `shape.bytes()` bytes aligned to `ALIGN`
        // (allocated so, or validated so when found in bytes from elsewhere); it is freed
        // only by `drop`, which `&self` excludes; this module makes its views only under
        // the locks they need.
        unsafe { Block::new(base, shape, &self.send, &self.recv) }
    }

    /// The storage block, once allocated.
    fn storage_block(&self) -> Option<NonNull<u8>> {
        let offset = self.storage.load(Ordering::Acquire);
        let field = core::ptr::addr_of!(self.storage).addr();
        (offset != 0)
            .then(|| field.wrapping_add(offset as usize))
            .and_then(|addr| NonNull::new(core::ptr::with_exposed_provenance_mut(addr)))
    }

    /// Allocates, formats and publishes the storage block, under both locks (unless
    /// another caller did meanwhile).
    fn allocate(&self, shape: Shape) -> Result<NonNull<u8>> {
        let (send, recv) = self.lock_both()?;
        if let Some(base) = self.storage_block() {
            return Ok(base);
        }
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
        // SAFETY: both locks are held; the block is the queue's (as `view` says).
        unsafe { Both::new(self.view(block, shape)) }.format();
        shmkit_runtime::__private::crash::point("queue: slots allocated, not yet published");
        self.storage.store(
            block.as_ptr().addr().wrapping_sub(field.addr()) as u64,
            Ordering::Release,
        );
        self.send_lock.clear_poison();
        self.recv_lock.clear_poison();
        drop(recv);
        drop(send);
        Ok(block)
    }
}

/// Takes `lock` if it is free or its holder dead (then poisoned: true); None while a live
/// holder has it.
fn try_lock(lock: &Mutex<()>) -> Result<Option<(MutexGuard<'_, ()>, bool)>> {
    match lock.lock_timeout(Duration::ZERO) {
        Ok(guard) => Ok(Some((guard, false))),
        Err(TryLockError::Poisoned(p)) => Ok(Some((p.into_inner(), true))),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Failed(e)) => Err(e),
    }
}

/// Takes `lock`, poisoned or not.
fn lock_anyway(lock: &Mutex<()>) -> Result<MutexGuard<'_, ()>> {
    match lock.lock() {
        Ok(guard) => Ok(guard),
        Err(LockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(LockError::Failed(e)) => Err(e),
    }
}

/// Watches `ready` (every `pauses` pauses) for up to [`SPIN`] (unless the other side last
/// ran on this CPU), then yields [`YIELDS`] times; whether it came.
fn spin(ready: &impl Fn() -> bool, peer_cpu: &AtomicU32, pauses: u32) -> bool {
    if ready() {
        return true;
    }
    let cpu = this_cpu();
    if cpu == 0 || peer_cpu.load(Ordering::Relaxed) != cpu {
        let start = Instant::now();
        while start.elapsed() < SPIN {
            for _ in 0..16 {
                if ready() {
                    return true;
                }
                for _ in 0..pauses {
                    core::hint::spin_loop();
                }
            }
        }
    }
    for _ in 0..YIELDS {
        if ready() {
            return true;
        }
        std::thread::yield_now();
    }
    ready()
}

/// The CPU this thread runs on, plus one (0 if unknown, as under Miri).
fn this_cpu() -> u32 {
    if cfg!(miri) {
        return 0;
    }
    // SAFETY: no arguments; glibc reads it from the thread's rseq area.
    (unsafe { libc::sched_getcpu() } as u32).wrapping_add(1)
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
        let (Some(block), Ok(shape)) = (self.storage_block(), self.shape()) else {
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
        "shmkit::MessageQueue/2",
        size_of::<MessageQueue>(),
        align_of::<MessageQueue>(),
    );

    unsafe fn validate(value: *const Self) -> core::result::Result<(), Invalid> {
        // SAFETY: the caller's contract: an aligned, readable `MessageQueue`.
        let queue = unsafe { &*value };
        // SAFETY: as above, for the fields.
        unsafe { <Mutex<()> as ShmSafe>::validate(&queue.send_lock) }
            .map_err(|e| e.within("send_lock", core::mem::offset_of!(Self, send_lock)))?;
        // SAFETY: as above.
        unsafe { <Mutex<()> as ShmSafe>::validate(&queue.recv_lock) }
            .map_err(|e| e.within("recv_lock", core::mem::offset_of!(Self, recv_lock)))?;
        let shape = Shape::new(queue.max_msg(), queue.max_msg_size())
            .ok_or_else(|| Invalid::new("a message queue capacity `MessageQueue::new` accepts"))?;
        let Some(block) = queue.storage_block() else {
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

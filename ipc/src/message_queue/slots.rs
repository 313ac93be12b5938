//! The queue's storage block, and what a sender and a receiver do to it, each under its own
//! lock.
//!
//! ```text
//! tag | lanes (16 bytes each) | links (4 each) | arrival ring (4 each) | free ring (4 each) | slots (a 48-byte header, then the payload; on lines of their own)
//! ```
//!
//! The truth is each slot header's `state` word: 0 for a free slot, the message's sequence
//! number for a queued one. A send writes payload and header first and stores `state` last
//! (one store: the message is queued whole or not at all); a receive copies the payload out
//! and then stores 0 (taken exactly once).
//!
//! Senders and receivers meet in the slots and in two rings of slot numbers (a two-lock
//! queue): the *arrival ring*, which senders fill in order of sending and receivers empty,
//! and the *free ring*, which receivers fill with the slots they free and senders read.
//! Each side writes its own words ([`SendSide`], [`RecvSide`]) on its lock's cache line,
//! and what the other side watches on lines of their own: the *publish word* (the arrival
//! ring's tail, with the slot published last and its priority), the *claim* (the slot a
//! sender works on), and the count of slots freed. So one sender and one receiver neither
//! wait for each other's lock nor take its line, and a message moves its slot's lines
//! and the publish word, little else; the rings' lines move once per run of entries.
//!
//! A receiver moves what arrived into *lanes*, one per priority with messages, each a FIFO
//! list through the receivers' own *links*, sorted by priority, and takes the head of the
//! highest lane; lanes and links are the receivers' alone. The message published last
//! comes with the publish word, so sorting it reads none of its slot's lines (which its
//! sender has just written); a slot is checked once it heads its lane.
//!
//! The free ring only hints: a sender takes the slots it names in order, each only if its
//! state says free; when the entries it read are used up it reads the receivers' count
//! (slots taken minus slots freed says whether one is free, and a scan finds it if no
//! entry names it). A sender that waits for room waits, while it spins, for a run of free
//! slots, so that the two sides take turns in runs. Each side prefetches the slot it will
//! probably touch next (the next free entry's, the next lane head's).
//!
//! A sender names the slot it works on in its claim until it has published it. After a
//! holder of either lock died mid-operation (its lock poisoned), or on words that do not
//! add up (forged, or half-updated), the holder of both locks rebuilds rings, lanes and
//! counts from the states alone ([`Both::rebuild`]): queued slots to the arrival ring in
//! order of their sequence numbers. Every index and position read from the block or the
//! counters is checked before it is used, so no bytes make an access leave the block.
//!
//! Payloads are plain memory; what keeps the two sides off each other's bytes: a slot's
//! payload is written only by the sender holding its claim, while its state is 0 (checked,
//! with acquire ordering, after claiming), and only the holder of the send lock makes a
//! state nonzero; it is read only by the holder of the receive lock while its state is
//! nonzero (checked likewise), and only that holder makes a state 0 again. The rebuild
//! holds both locks.

use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use shmkit_runtime::__private::crash::point;
use shmkit_runtime::segment::owned::OWNER_TAG_BYTES;

/// Bytes of a slot's header (the payload follows it, 16-aligned).
const HEADER: usize = 48;
/// Bytes of a lane: priority, head slot, tail slot, and 4 spare.
const LANE: usize = 16;
/// Bytes of a ring entry (a slot number).
const ENTRY: usize = 4;
/// `next` of the last slot of a lane, and the claim of a sender that claims nothing.
pub(crate) const NONE: u32 = u32::MAX;
/// Alignment of the block.
pub(crate) const ALIGN: usize = 16;
/// Alignment of the slots within the block (a cache line: no two slots share one).
const SLOT_ALIGN: usize = 64;

/// What the senders write: their own words, on the send lock's cache line (any values are
/// safe, checked where used), then the publish word, on a line of its own, which receivers
/// watch (so that watching it does not take the lock's line from a sender).
#[repr(C)]
pub(crate) struct SendSide {
    /// The next sequence number.
    next_seq: AtomicU64,
    /// Slots senders took, ever (wrapping).
    taken: AtomicU32,
    /// Slots receivers freed, as last read from their side.
    freed_seen: AtomicU32,
    /// Where a scan for a free slot starts (after the slot taken last).
    cursor: AtomicU32,
    /// Entries of the free ring senders read, ever (wrapping): its head.
    free_read: AtomicU32,
    /// The arrival ring's tail, as published (senders read this copy, not the published
    /// word, whose line receivers keep reading).
    tail: AtomicU32,
    _own: [u8; 28],
    /// The arrival ring's tail and the slot published last ([`Published`]), in one word:
    /// a receiver that finds one message more needs no look at the ring.
    published: AtomicU64,
    /// The CPU the last send ran on, plus one: a receiver about to wait spins only if it
    /// runs on another.
    pub(crate) cpu: AtomicU32,
    _watched: [u8; 52],
    /// The slot a sender claimed and has not yet published, or [`NONE`], with the slots
    /// taken counting it ([`Marked`]: one store): what a receiver that finds the queue
    /// empty looks at to tell whether a sender is half-way (and perhaps died there), and
    /// what `num_msg` counts. On a line of its own, which receivers read only then.
    claim: AtomicU64,
    _claim: [u8; 56],
}

impl Default for SendSide {
    fn default() -> Self {
        SendSide {
            next_seq: AtomicU64::new(1),
            taken: AtomicU32::new(0),
            freed_seen: AtomicU32::new(0),
            cursor: AtomicU32::new(0),
            free_read: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            _own: [0; 28],
            published: AtomicU64::new(Published::EMPTY.pack()),
            cpu: AtomicU32::new(0),
            _watched: [0; 52],
            claim: AtomicU64::new(Marked::IDLE.pack()),
            _claim: [0; 56],
        }
    }
}

/// What the receivers write: their own words on the receive lock's line, then what senders
/// watch on a line of its own.
#[repr(C)]
pub(crate) struct RecvSide {
    /// The arrival ring's head.
    arrived_head: AtomicU32,
    /// How many lanes hold messages.
    lanes_len: AtomicU32,
    /// `freed`, in the receivers' own line (which senders do not read).
    freed_mine: AtomicU32,
    _own: [u8; 44],
    /// Slots receivers freed, ever (wrapping): the free ring's tail; with the slot a
    /// receiver is taking and has not yet counted freed, or [`NONE`] ([`Marked`]).
    freed: AtomicU64,
    /// The CPU the last receive ran on, plus one.
    pub(crate) cpu: AtomicU32,
    _watched: [u8; 52],
}

impl Default for RecvSide {
    fn default() -> Self {
        RecvSide {
            arrived_head: AtomicU32::new(0),
            lanes_len: AtomicU32::new(0),
            freed_mine: AtomicU32::new(0),
            _own: [0; 44],
            freed: AtomicU64::new(Marked::IDLE.pack()),
            cpu: AtomicU32::new(0),
            _watched: [0; 52],
        }
    }
}

const _: () = assert!(
    size_of::<SendSide>() == 184
        && core::mem::offset_of!(SendSide, published) == 56
        && core::mem::offset_of!(SendSide, claim) == 120
        && size_of::<RecvSide>() == 120
        && core::mem::offset_of!(RecvSide, freed) == 56
);

/// Offsets within a slot header.
const STATE: usize = 0;
const LEN: usize = 8;
const PRIORITY: usize = 12;
const FINGERPRINT: usize = 16;
const ORIGIN: usize = 24;

/// Offsets within a lane.
const LANE_PRIORITY: usize = 0;
const LANE_HEAD: usize = 4;
const LANE_TAIL: usize = 8;

/// The most messages a queue holds (slot indices are `u32`, ring positions go to twice
/// this, and a queue this long is already far past any use).
pub(crate) const MAX_MSG: usize = 1 << 24;
/// The longest message (lengths are `u32`).
pub(crate) const MAX_MSG_SIZE: usize = u32::MAX as usize;

/// A count with the slot an operation works on and has not yet counted ([`NONE`] when
/// none), as one word: the claim with the slots taken, the slot being taken with the
/// slots freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Marked {
    slot: u32,
    count: u32,
}

impl Marked {
    const IDLE: Marked = Marked {
        slot: NONE,
        count: 0,
    };

    fn pack(self) -> u64 {
        u64::from(self.slot) | u64::from(self.count) << 32
    }

    fn unpack(word: u64) -> Marked {
        Marked {
            slot: word as u32,
            count: (word >> 32) as u32,
        }
    }

    fn store(self, word: &AtomicU64, order: Ordering) {
        word.store(self.pack(), order);
    }
}

/// The publish word, unpacked: 25 bits of ring position, 24 of slot, 15 of priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Published {
    /// The arrival ring's tail.
    tail: u32,
    /// The slot at the ring's position before `tail`, or [`NONE`] (unknown).
    last: u32,
    /// Its priority, if below [`Published::NO_PRIORITY`] (so a receiver sorts it without
    /// a look at its slot).
    priority: Option<u32>,
}

impl Published {
    const SLOT_BITS: u32 = 24;
    const TAIL_BITS: u32 = 25;
    /// The priorities the word carries are those below this.
    const NO_PRIORITY: u32 = (1 << 15) - 1;
    const EMPTY: Published = Published {
        tail: 0,
        last: NONE,
        priority: None,
    };

    fn pack(self) -> u64 {
        let slot_none = (1u64 << Self::SLOT_BITS) - 1;
        let last = if self.last < MAX_MSG as u32 {
            u64::from(self.last)
        } else {
            slot_none
        };
        let priority = match self.priority {
            Some(p) if p < Self::NO_PRIORITY => u64::from(p),
            _ => u64::from(Self::NO_PRIORITY),
        };
        u64::from(self.tail) & ((1 << Self::TAIL_BITS) - 1)
            | last << Self::TAIL_BITS
            | priority << (Self::TAIL_BITS + Self::SLOT_BITS)
    }

    fn unpack(word: u64) -> Published {
        let slot_mask = (1u64 << Self::SLOT_BITS) - 1;
        let last = (word >> Self::TAIL_BITS) & slot_mask;
        let priority = (word >> (Self::TAIL_BITS + Self::SLOT_BITS)) as u32;
        Published {
            tail: (word & ((1 << Self::TAIL_BITS) - 1)) as u32,
            last: if last == slot_mask { NONE } else { last as u32 },
            priority: (priority < Self::NO_PRIORITY).then_some(priority),
        }
    }
}

/// A queue's capacity: how many messages of how many bytes, and where things are in its
/// storage block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    max_msg: u32,
    max_msg_size: u32,
}

impl Shape {
    /// The shape for `max_msg` messages of `max_msg_size` bytes; None if either is 0 or too
    /// large, or the block would be.
    pub(crate) fn new(max_msg: usize, max_msg_size: usize) -> Option<Shape> {
        if !(1..=MAX_MSG).contains(&max_msg) || !(1..=MAX_MSG_SIZE).contains(&max_msg_size) {
            return None;
        }
        let shape = Shape {
            max_msg: max_msg as u32,
            max_msg_size: max_msg_size as u32,
        };
        shape.bytes().map(|_| shape)
    }

    pub(crate) fn max_msg(self) -> usize {
        self.max_msg as usize
    }

    pub(crate) fn max_msg_size(self) -> usize {
        self.max_msg_size as usize
    }

    /// Bytes from one slot to the next; None past `usize`.
    fn stride(self) -> Option<usize> {
        (self.max_msg_size as usize)
            .checked_add(HEADER)?
            .checked_next_multiple_of(SLOT_ALIGN)
    }

    fn lanes_at(self) -> usize {
        OWNER_TAG_BYTES
    }

    fn links_at(self) -> usize {
        self.lanes_at() + LANE * self.max_msg()
    }

    fn arrived_at(self) -> usize {
        self.links_at() + ENTRY * self.max_msg()
    }

    fn freed_at(self) -> usize {
        self.arrived_at() + ENTRY * self.max_msg()
    }

    fn slots_at(self) -> usize {
        (self.freed_at() + ENTRY * self.max_msg()).next_multiple_of(SLOT_ALIGN)
    }

    /// The storage block's length; None past `isize::MAX / 2`.
    pub(crate) fn bytes(self) -> Option<usize> {
        let slots = self.stride()?.checked_mul(self.max_msg())?;
        let total = self.slots_at().checked_add(slots)?;
        (total <= isize::MAX as usize / 2).then_some(total)
    }

    /// Ring positions run from 0 to twice the capacity (so that a full ring and an empty
    /// one differ); the next after `pos`.
    fn advance(self, pos: u32) -> u32 {
        if pos + 1 >= 2 * self.max_msg {
            0
        } else {
            pos + 1
        }
    }

    /// How many entries lie from `head` to `tail`; None if either is no position or the
    /// distance is more than a ring holds.
    fn distance(self, head: u32, tail: u32) -> Option<u32> {
        let laps = 2 * self.max_msg;
        if head >= laps || tail >= laps {
            return None;
        }
        let d = if tail >= head {
            tail - head
        } else {
            tail + laps - head
        };
        (d <= self.max_msg).then_some(d)
    }

    /// The entry a position stands for (a checked position).
    fn entry(self, pos: u32) -> u32 {
        if pos >= self.max_msg {
            pos - self.max_msg
        } else {
            pos
        }
    }
}

/// What a header says about the message in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) slot: u32,
    /// Its lane (checked below the lanes there are).
    lane: u32,
    pub(crate) len: usize,
    pub(crate) priority: u32,
    pub(crate) fingerprint: u64,
    pub(crate) origin: u64,
}

/// A message to queue: its bytes (possibly uninitialised: see `origin`) and header words.
pub(crate) struct Outgoing<'m> {
    pub(crate) bytes: &'m [MaybeUninit<u8>],
    pub(crate) priority: u32,
    pub(crate) fingerprint: u64,
    pub(crate) origin: u64,
}

/// The words did not add up: rebuild (with both locks), then try again.
#[derive(Debug)]
pub(crate) struct Broken;

/// A queue's storage block and counters, as any of its users sees them.
#[derive(Clone, Copy)]
pub(crate) struct Block<'q> {
    base: NonNull<u8>,
    shape: Shape,
    /// Where the slots start, and bytes from one to the next (computed once per view, not
    /// at every header access).
    slots_at: usize,
    stride: usize,
    send: &'q SendSide,
    recv: &'q RecvSide,
}

impl<'q> Block<'q> {
    /// # Safety
    /// `base` is the start of a live block of at least `shape.bytes()` bytes, aligned to
    /// [`ALIGN`], that stays allocated for `'q` and is used (beyond its tag) only as this
    /// module says: through the views below, each made only by a holder of its locks.
    pub(crate) unsafe fn new(
        base: NonNull<u8>,
        shape: Shape,
        send: &'q SendSide,
        recv: &'q RecvSide,
    ) -> Self {
        Block {
            base,
            shape,
            slots_at: shape.slots_at(),
            // The stride exists: `bytes` does, for every shape a block has.
            stride: shape.stride().unwrap_or(0),
            send,
            recv,
        }
    }

    fn u32_at(&self, at: usize) -> &'q AtomicU32 {
        debug_assert!(at % 4 == 0 && at + 4 <= self.len());
        // SAFETY: every caller passes an offset of a 4-aligned word inside the block (the
        // layout of `Shape`, indices checked against `max_msg`), which lives for `'q`;
        // all accesses to it are atomic.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(at).cast()) }
    }

    fn u64_at(&self, at: usize) -> &'q AtomicU64 {
        debug_assert!(at % 8 == 0 && at + 8 <= self.len());
        // SAFETY: as `u32_at`, for an 8-aligned word.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(at).cast()) }
    }

    fn len(&self) -> usize {
        self.shape.bytes().unwrap_or(0)
    }

    fn get(&self, at: usize) -> u32 {
        self.u32_at(at).load(Ordering::Relaxed)
    }

    fn put(&self, at: usize, value: u32) {
        self.u32_at(at).store(value, Ordering::Relaxed);
    }

    fn header(&self, slot: u32, field: usize) -> usize {
        self.slots_at + self.stride * slot as usize + field
    }

    fn state(&self, slot: u32) -> &'q AtomicU64 {
        self.u64_at(self.header(slot, STATE))
    }

    fn lane(&self, i: u32, field: usize) -> usize {
        self.shape.lanes_at() + LANE * i as usize + field
    }

    /// The word after `slot` (a checked index) in its lane: the receivers' alone, apart
    /// from the slot's lines, which the senders write.
    fn link(&self, slot: u32) -> usize {
        self.shape.links_at() + ENTRY * slot as usize
    }

    /// The free ring's entry for a count of slots freed (any count: taken modulo).
    fn freed_entry(&self, count: u32) -> usize {
        self.shape.freed_at() + ENTRY * (count % self.shape.max_msg) as usize
    }

    /// The arrival ring's entry for a checked position.
    fn arrived(&self, pos: u32) -> usize {
        self.shape.arrived_at() + ENTRY * self.shape.entry(pos) as usize
    }

    /// Asks the CPU to fetch the slot's first two lines (header and payload) meanwhile,
    /// when it is one: a guess where the next message will be.
    fn prefetch_slot(&self, slot: u32) {
        if let Some(slot) = self.checked(slot) {
            let at = self.header(slot, 0);
            prefetch(self.base.as_ptr().wrapping_add(at));
            prefetch(self.base.as_ptr().wrapping_add(at + SLOT_ALIGN));
        }
    }

    fn payload(&self, slot: u32) -> *mut u8 {
        // SAFETY: `slot < max_msg` (checked by every caller), so the payload's
        // `max_msg_size` bytes, after its header, lie inside the block.
        unsafe { self.base.as_ptr().add(self.header(slot, HEADER)) }
    }

    /// A slot index read from the block, if it is one.
    fn checked(&self, slot: u32) -> Option<u32> {
        (slot < self.shape.max_msg).then_some(slot)
    }

    /// A ring position read from the counters, if it is one.
    fn position(&self, pos: u32) -> Option<u32> {
        (pos < 2 * self.shape.max_msg).then_some(pos)
    }

    /// How many slots are in use: taken by senders and not yet counted freed by receivers
    /// (None if the counts do not add up). Without any lock. A receiver frees a slot by its
    /// state first and counts it after, and a sender may take it in between: one more than
    /// the slots is still a count that adds up, and means all of them.
    fn in_use(&self, freed: u32) -> Option<u32> {
        self.in_use_of(self.send.taken.load(Ordering::Relaxed), freed)
    }

    fn in_use_of(&self, taken: u32, freed: u32) -> Option<u32> {
        let in_use = taken.wrapping_sub(freed);
        (in_use <= self.shape.max_msg + 1).then(|| in_use.min(self.shape.max_msg))
    }

    fn claim(&self, order: Ordering) -> Marked {
        Marked::unpack(self.send.claim.load(order))
    }

    fn freed(&self, order: Ordering) -> Marked {
        Marked::unpack(self.recv.freed.load(order))
    }

    /// How many messages are queued, about (others may change it at once): the slots in
    /// use, but a claimed one not yet queued and a taken one not yet counted freed (by
    /// their states: also right after a peer died there). Without any lock.
    pub(crate) fn count(&self) -> usize {
        let (claim, freed) = (self.claim(Ordering::Acquire), self.freed(Ordering::Acquire));
        let free_by_state = |slot: u32| {
            u32::from(
                self.checked(slot)
                    .is_some_and(|s| self.state(s).load(Ordering::Acquire) == 0),
            )
        };
        let in_use = self.in_use_of(claim.count, freed.count).unwrap_or(0);
        in_use
            .saturating_sub(free_by_state(claim.slot))
            .saturating_sub(free_by_state(freed.slot)) as usize
    }

    /// Whether a receiver may find a message: one published that no receiver moved into a
    /// lane yet, or lanes left. Without any lock.
    pub(crate) fn has_message(&self) -> bool {
        let tail = self.published(Ordering::Acquire).tail;
        tail != self.recv.arrived_head.load(Ordering::Relaxed)
            || self.recv.lanes_len.load(Ordering::Relaxed) != 0
    }

    fn published(&self, order: Ordering) -> Published {
        Published::unpack(self.send.published.load(order))
    }

    fn publish(&self, word: Published, order: Ordering) {
        self.send.published.store(word.pack(), order);
    }

    /// Whether a sender has claimed a slot it has not published (mid-send, or died there).
    pub(crate) fn send_in_progress(&self) -> bool {
        self.claim(Ordering::Acquire).slot != NONE
    }

    /// Whether a receiver took a slot it has not yet counted freed (mid-receive, or died
    /// there).
    pub(crate) fn receive_in_progress(&self) -> bool {
        self.freed(Ordering::Acquire).slot != NONE
    }

    /// Whether the words add up, for a caller that holds both locks (so nobody is
    /// half-way): no claim and no slot being taken, counts in range, and messages to
    /// take exactly when the counts say some are queued.
    pub(crate) fn adds_up(&self) -> bool {
        !self.send_in_progress()
            && !self.receive_in_progress()
            && self
                .in_use(self.freed(Ordering::Relaxed).count)
                .is_some_and(|in_use| (in_use > 0) == self.has_message())
    }

    /// Whether senders would find at least `slots` free slots (or the counts do not add
    /// up, which a sender finds out under its lock). Without any lock.
    pub(crate) fn room_for(&self, slots: u32) -> bool {
        self.in_use(self.freed(Ordering::Acquire).count)
            .is_none_or(|in_use| self.shape.max_msg - in_use >= slots)
    }
}

/// A slot a sender claimed, with the words `claim` checked that `send` goes on from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Claimed {
    slot: u32,
    tail: u32,
    taken: u32,
}

/// The block as the holder of the send lock uses it.
pub(crate) struct Producer<'q>(Block<'q>);

impl<'q> Producer<'q> {
    /// # Safety
    /// The caller holds the queue's send lock for as long as this value lives.
    pub(crate) unsafe fn new(block: Block<'q>) -> Self {
        Producer(block)
    }

    /// Claims a free slot; None when the queue is full.
    pub(crate) fn claim(&self) -> Result<Option<Claimed>, Broken> {
        let b = &self.0;
        let tail = b.send.tail.load(Ordering::Relaxed);
        if b.send_in_progress() || b.position(tail).is_none() {
            // A claim left by a sender that died (its lock poisoned, so not here) or bytes
            // that do not add up.
            return Err(Broken);
        }
        let n = b.shape.max_msg;
        let slot = match self.freed_slot()? {
            Some(slot) => slot,
            None if b.in_use(b.send.freed_seen.load(Ordering::Relaxed)) == Some(n) => {
                return Ok(None);
            }
            // The counts say a slot is free, but no entry named one (after a rebuild, or
            // in a fresh queue): look for it, from after the slot taken last.
            None => {
                let start = b.send.cursor.load(Ordering::Relaxed) % n;
                (0..n)
                    .map(|i| {
                        if start + i >= n {
                            start + i - n
                        } else {
                            start + i
                        }
                    })
                    .find(|&slot| b.state(slot).load(Ordering::Acquire) == 0)
                    .ok_or(Broken)?
            }
        };
        let taken = b.send.taken.load(Ordering::Relaxed).wrapping_add(1);
        Marked { slot, count: taken }.store(&b.send.claim, Ordering::Relaxed);
        point("send: slot claimed");
        b.send.taken.store(taken, Ordering::Relaxed);
        b.send
            .cursor
            .store(if slot + 1 == n { 0 } else { slot + 1 }, Ordering::Relaxed);
        Ok(Some(Claimed { slot, tail, taken }))
    }

    /// A free slot named by the free ring, reading the receivers' count only when the
    /// entries read before are used up; None when there is none.
    fn freed_slot(&self) -> Result<Option<u32>, Broken> {
        let b = &self.0;
        let n = b.shape.max_msg;
        let mut read = b.send.free_read.load(Ordering::Relaxed);
        let mut seen = b.send.freed_seen.load(Ordering::Relaxed);
        for reloaded in [false, true] {
            if reloaded {
                seen = b.freed(Ordering::Acquire).count;
                b.send.freed_seen.store(seen, Ordering::Relaxed);
                if b.in_use(seen).ok_or(Broken)? == n {
                    return Ok(None);
                }
            }
            // Entries more than a ring behind were written over: skip them.
            if seen.wrapping_sub(read) > n {
                read = seen.wrapping_sub(n);
            }
            while read != seen {
                let entry = b.get(b.freed_entry(read));
                read = read.wrapping_add(1);
                // An entry is a hint; the state is the truth (acquire: the receiver that
                // freed the slot is done with its payload).
                if b.checked(entry)
                    .is_some_and(|slot| b.state(slot).load(Ordering::Acquire) == 0)
                {
                    b.send.free_read.store(read, Ordering::Relaxed);
                    if read != seen {
                        // The slot the next send probably takes: its lines, meanwhile.
                        b.prefetch_slot(b.get(b.freed_entry(read)));
                    }
                    return Ok(Some(entry));
                }
            }
            b.send.free_read.store(read, Ordering::Relaxed);
        }
        Ok(None)
    }

    /// Writes `msg` (at most `max_msg_size` bytes, checked by the caller) into the slot
    /// just claimed, queues it (the commit) and publishes it to receivers, at the tail
    /// `claim` checked (no word is read twice: one written meanwhile by anything else
    /// could not move an access out of the block).
    pub(crate) fn send(&self, claimed: Claimed, msg: &Outgoing<'_>) {
        let b = &self.0;
        let Claimed { slot, tail, taken } = claimed;
        debug_assert!(msg.bytes.len() <= b.shape.max_msg_size() && slot < b.shape.max_msg);
        // SAFETY: a claimed slot's payload, inside the block (`slot < max_msg`), holds
        // `max_msg_size >= bytes.len()` bytes that nobody else touches while its state is
        // 0 (module docs); the source is the caller's slice, outside the block. Copied as
        // possibly uninitialised bytes: no `[u8]` is formed over them.
        unsafe {
            core::ptr::copy_nonoverlapping(
                msg.bytes.as_ptr().cast::<u8>(),
                b.payload(slot),
                msg.bytes.len(),
            )
        };
        point("send: payload copied");
        b.put(b.header(slot, LEN), msg.bytes.len() as u32);
        b.put(b.header(slot, PRIORITY), msg.priority);
        b.u64_at(b.header(slot, FINGERPRINT))
            .store(msg.fingerprint, Ordering::Relaxed);
        b.u64_at(b.header(slot, ORIGIN))
            .store(msg.origin, Ordering::Relaxed);
        let seq = b.send.next_seq.load(Ordering::Relaxed).max(1);
        b.send
            .next_seq
            .store(seq.wrapping_add(1).max(1), Ordering::Relaxed);
        point("send: header written");
        // The commit: from here the message is queued, whatever happens to this process.
        b.state(slot).store(seq, Ordering::Release);
        point("send: queued (the commit)");
        b.put(b.arrived(tail), slot);
        point("send: in the arrival ring");
        let tail = b.shape.advance(tail);
        b.publish(
            Published {
                tail,
                last: slot,
                priority: Some(msg.priority),
            },
            Ordering::Release,
        );
        point("send: published, the claim not yet given up");
        b.send.tail.store(tail, Ordering::Relaxed);
        Marked {
            slot: NONE,
            count: taken,
        }
        .store(&b.send.claim, Ordering::Relaxed);
    }
}

/// The block as the holder of the receive lock uses it.
pub(crate) struct Consumer<'q>(Block<'q>);

impl<'q> Consumer<'q> {
    /// # Safety
    /// The caller holds the queue's receive lock for as long as this value lives.
    pub(crate) unsafe fn new(block: Block<'q>) -> Self {
        Consumer(block)
    }

    /// The message that a receive takes next (after moving what arrived into the lanes);
    /// None when the queue is empty.
    pub(crate) fn head(&self) -> Result<Option<Head>, Broken> {
        self.sort_arrivals()?;
        let b = &self.0;
        let lanes = b.recv.lanes_len.load(Ordering::Relaxed);
        if lanes == 0 {
            return Ok(None);
        }
        if lanes > b.shape.max_msg {
            return Err(Broken);
        }
        let lane = lanes - 1;
        let slot = b.checked(b.get(b.lane(lane, LANE_HEAD))).ok_or(Broken)?;
        // The message after it, which the next receive probably takes.
        b.prefetch_slot(b.get(b.link(slot)));
        let len = b.get(b.header(slot, LEN)) as usize;
        let priority = b.get(b.header(slot, PRIORITY));
        // Acquire: the sender's payload and header come before its commit.
        if b.state(slot).load(Ordering::Acquire) == 0
            || len > b.shape.max_msg_size()
            || priority != b.get(b.lane(lane, LANE_PRIORITY))
        {
            return Err(Broken);
        }
        Ok(Some(Head {
            slot,
            lane,
            len,
            priority,
            fingerprint: b
                .u64_at(b.header(slot, FINGERPRINT))
                .load(Ordering::Relaxed),
            origin: b.u64_at(b.header(slot, ORIGIN)).load(Ordering::Relaxed),
        }))
    }

    /// Moves every published message from the arrival ring to the tail of its lane.
    fn sort_arrivals(&self) -> Result<(), Broken> {
        let b = &self.0;
        let published = b.published(Ordering::Acquire);
        let tail = published.tail;
        let mut head = b.recv.arrived_head.load(Ordering::Relaxed);
        b.shape.distance(head, tail).ok_or(Broken)?;
        while head != tail {
            let next = b.shape.advance(head);
            // The last one comes with the publish word: its slot, and its priority too
            // unless that is large, so that sorting it reads none of its lines, which its
            // sender has just written. (A slot queued is checked once it heads its lane.)
            let (slot, priority) = match published {
                Published {
                    last,
                    priority: Some(priority),
                    ..
                } if next == tail && last != NONE => (b.checked(last).ok_or(Broken)?, priority),
                _ => {
                    let entry = if next == tail && published.last != NONE {
                        published.last
                    } else {
                        b.get(b.arrived(head))
                    };
                    let slot = b.checked(entry).ok_or(Broken)?;
                    if b.state(slot).load(Ordering::Acquire) == 0 {
                        return Err(Broken);
                    }
                    (slot, b.get(b.header(slot, PRIORITY)))
                }
            };
            self.append(slot, priority)?;
            point("receive: one arrival in its lane");
            head = next;
            b.recv.arrived_head.store(head, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Puts `slot` at the tail of the lane of `priority` (opening it if needed).
    fn append(&self, slot: u32, priority: u32) -> Result<(), Broken> {
        let b = &self.0;
        b.put(b.link(slot), NONE);
        let lanes = b.recv.lanes_len.load(Ordering::Relaxed);
        if lanes >= b.shape.max_msg {
            // Every slot already heads a lane: this one is queued twice.
            return Err(Broken);
        }
        let (lane, found) = self.find_lane(priority, lanes);
        if found {
            let tail = b.checked(b.get(b.lane(lane, LANE_TAIL))).ok_or(Broken)?;
            if tail == slot {
                return Err(Broken);
            }
            b.put(b.link(tail), slot);
        } else {
            for i in (lane..lanes).rev() {
                for field in [LANE_PRIORITY, LANE_HEAD, LANE_TAIL] {
                    b.put(b.lane(i + 1, field), b.get(b.lane(i, field)));
                }
            }
            b.put(b.lane(lane, LANE_PRIORITY), priority);
            b.put(b.lane(lane, LANE_HEAD), slot);
            b.recv.lanes_len.store(lanes + 1, Ordering::Relaxed);
        }
        b.put(b.lane(lane, LANE_TAIL), slot);
        Ok(())
    }

    /// Where the lane of `priority` is (true) or would go (false) among the sorted lanes.
    fn find_lane(&self, priority: u32, lanes: u32) -> (u32, bool) {
        let b = &self.0;
        let (mut lo, mut hi) = (0, lanes);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match b.get(b.lane(mid, LANE_PRIORITY)).cmp(&priority) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return (mid, true),
            }
        }
        (lo, false)
    }

    /// Copies the head's payload to `dst` (at least `head.len` bytes, not inside the block).
    ///
    /// # Safety
    /// `head` came from [`head`](Self::head) of this same value; `dst` is valid for writes
    /// of `head.len` bytes.
    pub(crate) unsafe fn read(&self, head: &Head, dst: *mut u8) {
        // SAFETY: the payload holds `max_msg_size >= head.len` bytes of the block (checked
        // by `head`), which nobody writes while the slot is queued (module docs); `dst` is
        // the caller's.
        unsafe { core::ptr::copy_nonoverlapping(self.0.payload(head.slot), dst, head.len) };
    }

    /// Takes the head (found by [`head`](Self::head) of this same value) off the queue: its
    /// state goes to 0 first (the commit: the slot is free), then the lane moves on and
    /// the slot is counted freed.
    pub(crate) fn take(&self, head: &Head) {
        let b = &self.0;
        let freed = b.recv.freed_mine.load(Ordering::Relaxed);
        Marked {
            slot: head.slot,
            count: freed,
        }
        .store(&b.recv.freed, Ordering::Relaxed);
        point("receive: copied out, about to take");
        b.state(head.slot).store(0, Ordering::Release);
        point("receive: taken (the commit)");
        // The lane `head` checked (no word is read twice).
        let lane = head.lane;
        if b.get(b.lane(lane, LANE_TAIL)) == head.slot {
            b.recv.lanes_len.store(lane, Ordering::Relaxed);
        } else {
            b.put(b.lane(lane, LANE_HEAD), b.get(b.link(head.slot)));
        }
        point("receive: lane moved on, the slot not yet counted");
        b.put(b.freed_entry(freed), head.slot);
        let freed = freed.wrapping_add(1);
        b.recv.freed_mine.store(freed, Ordering::Relaxed);
        Marked {
            slot: NONE,
            count: freed,
        }
        .store(&b.recv.freed, Ordering::Release);
    }
}

/// The block as the holder of both locks uses it.
pub(crate) struct Both<'q>(Block<'q>);

impl<'q> Both<'q> {
    /// # Safety
    /// The caller holds both of the queue's locks for as long as this value lives.
    pub(crate) unsafe fn new(block: Block<'q>) -> Self {
        Both(block)
    }

    /// Makes a freshly zeroed block (every state 0: every slot free) a queue.
    pub(crate) fn format(&self) {
        let b = &self.0;
        b.send.next_seq.store(1, Ordering::Relaxed);
        self.set_counts(0);
    }

    /// Sets every count for `queued` messages in the arrival ring's first entries, no
    /// lanes, no claim.
    fn set_counts(&self, queued: u32) {
        let b = &self.0;
        b.publish(
            Published {
                tail: queued,
                ..Published::EMPTY
            },
            Ordering::Relaxed,
        );
        b.send.tail.store(queued, Ordering::Relaxed);
        Marked {
            slot: NONE,
            count: queued,
        }
        .store(&b.send.claim, Ordering::Relaxed);
        b.recv.freed_mine.store(0, Ordering::Relaxed);
        b.send.free_read.store(0, Ordering::Relaxed);
        b.send.taken.store(queued, Ordering::Relaxed);
        b.send.freed_seen.store(0, Ordering::Relaxed);
        b.send.cursor.store(0, Ordering::Relaxed);
        Marked::IDLE.store(&b.recv.freed, Ordering::Relaxed);
        b.recv.arrived_head.store(0, Ordering::Relaxed);
        b.recv.lanes_len.store(0, Ordering::Relaxed);
    }

    /// Rebuilds rings and lanes from the slots' states, which are the truth: a queued slot
    /// whose header is impossible (a length past the largest message) is freed, as bytes
    /// no send wrote whole. Queued slots go to the arrival ring in order of sending;
    /// sequence numbers continue after the largest queued.
    pub(crate) fn rebuild(&self) {
        let b = &self.0;
        let mut queued: Vec<(u64, u32)> = Vec::new();
        for slot in 0..b.shape.max_msg {
            let seq = b.state(slot).load(Ordering::Relaxed);
            let len = b.get(b.header(slot, LEN)) as usize;
            if seq != 0 && len <= b.shape.max_msg_size() {
                queued.push((seq, slot));
            } else {
                b.state(slot).store(0, Ordering::Relaxed);
            }
            point("repair: a slot sorted");
        }
        queued.sort_unstable();
        for (i, &(_, slot)) in queued.iter().enumerate() {
            b.put(b.arrived(i as u32), slot);
        }
        self.set_counts(queued.len() as u32);
        let top_seq = queued.iter().map(|&(seq, _)| seq).max().unwrap_or(0);
        if b.send.next_seq.load(Ordering::Relaxed) <= top_seq {
            b.send
                .next_seq
                .store(top_seq.wrapping_add(1).max(1), Ordering::Relaxed);
        }
    }
}

/// Asks the CPU to fetch the cache line at `addr` (no effect on what a program computes,
/// and never a fault, whatever the address).
#[inline]
fn prefetch(addr: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: a prefetch reads nothing the program sees and never faults, even at an
    // address that is not mapped.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr.cast())
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = addr;
}

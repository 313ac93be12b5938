//! What the lock algorithms run on under `--cfg loom` in place of the kernel: the futex (for
//! [`super::wait`]) and the threads' owner ids (in place of [`super::thread_ids`]). With
//! loom's atomics ([`super::atomic`]) this lets loom run the algorithms' own source through
//! every interleaving (`tests/loom.rs`).
//!
//! - **Futex.** A sleeper checks its word and queues itself with the word's address under
//!   one loom mutex (as the kernel checks the word under its bucket lock), then sleeps until
//!   a `wake` on that address takes it off the queue (first come, first woken). An untimed
//!   wait thus blocks until it is woken, and a lost wake-up is a deadlock that loom reports.
//!   Checking the word is a `SeqCst` fence and a load, as the kernel's check follows a full
//!   barrier: a waiter's store to another word before its sleep is seen by a waker that
//!   moved the futex word first and then looks at that other word.
//! - **Time.** Timeouts only serve to notice that an owner died (`LIVENESS_POLL`), so in the
//!   model time passes only when a killed thread (a crash point fired in it, see
//!   [`super::crash`], or a test said [`killed`]) ends: then every timed sleeper times out,
//!   and the next timed wait of each other thread returns at once (its liveness poll, which
//!   sees the death). A thread that has polled since the last death sleeps in a timed wait
//!   as in an untimed one, so no timeout can hide a lost wake-up, not even after a death;
//!   and a waiter that polls in a loop does not spin through the model. The clock ([`now`],
//!   for waiters that measure how long a dead owner's work stood still) stands still, and
//!   jumps `LIVENESS_POLL` ahead at each reading once a killed thread ended. Deadlines
//!   (`lock_timeout`) are real time, which loom does not model: model tests do not use
//!   them.
//! - **Owner ids.** Each model thread takes an id of its own (2, 3, … per execution) at its
//!   first lock and gives it back when it ends (when loom drops its thread locals), as a real
//!   thread does at exit. An id no thread holds is dead. Learning that an owner died
//!   synchronises with its end, as the kernel's answer does. Only locks outside segments
//!   (the private owner's) are modelled.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use loom::sync::{Condvar, Mutex};
use loom::thread_local;

use super::atomic::{fence, AtomicU32, Ordering};
use super::owner::{Owner, FIRST_ID};
use crate::error::Result;

/// One execution's kernel.
struct Model {
    queue: Mutex<Queue>,
    /// Signalled when sleepers leave the queue.
    dequeued: Condvar,
    /// The ids of the live model threads, and the next one to hand out.
    ids: Mutex<(Vec<u32>, u32)>,
    /// Whether time passes: a killed thread ended (set under the queue's lock). Not one of
    /// loom's atomics: reading the clock is no step of the algorithms.
    time_passes: AtomicBool,
    /// How far the clock moved, in `LIVENESS_POLL`s.
    jumps: AtomicU64,
}

struct Queue {
    sleepers: Vec<Sleeper>,
    next_ticket: u64,
    /// How many killed threads ended.
    deaths: u64,
}

struct Sleeper {
    word: usize,
    ticket: u64,
    timed: bool,
}

loom::lazy_static! {
    static ref MODEL: Arc<Model> = Arc::new(Model {
        queue: Mutex::new(Queue { sleepers: Vec::new(), next_ticket: 0, deaths: 0 }),
        dequeued: Condvar::new(),
        ids: Mutex::new((Vec::new(), FIRST_ID)),
        time_passes: AtomicBool::new(false),
        jumps: AtomicU64::new(0),
    });
}

/// A model thread: its owner id, whether it was killed, and the deaths its last liveness
/// poll saw. Dropped when the thread ends. It keeps the model alive for the end of the
/// model's main thread, whose thread locals are dropped after the execution's statics.
struct ModelThread {
    model: Arc<Model>,
    id: Cell<Option<u32>>,
    killed: Cell<bool>,
    polled: Cell<u64>,
}

thread_local! {
    static THREAD: ModelThread = ModelThread {
        model: MODEL.clone(),
        id: Cell::new(None),
        killed: Cell::new(false),
        polled: Cell::new(0),
    };
}

impl Drop for ModelThread {
    fn drop(&mut self) {
        if let Some(id) = self.id.get() {
            self.model.ids.lock().unwrap().0.retain(|&live| live != id);
        }
        if self.killed.get() {
            let mut queue = self.model.queue.lock().unwrap();
            queue.deaths += 1;
            self.model.time_passes.store(true, Relaxed);
            queue.sleepers.retain(|s| !s.timed);
            self.model.dequeued.notify_all();
        }
    }
}

/// The calling model thread is being killed: once it ends, time passes for the others.
pub(crate) fn killed() {
    THREAD.with(|t| t.killed.set(true));
}

/// Sleeps while `word` holds `expected`: until woken, or when timed, until a killed thread
/// ends (not at all if one ended since this thread last polled).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let model = &*MODEL;
    let mut queue = model.queue.lock().unwrap();
    fence(Ordering::SeqCst);
    if word.load(Ordering::SeqCst) != expected {
        return;
    }
    let timed = timeout.is_some();
    if timed && THREAD.with(|t| t.polled.replace(queue.deaths)) != queue.deaths {
        drop(queue);
        loom::thread::yield_now();
        return;
    }
    let ticket = queue.next_ticket;
    queue.next_ticket += 1;
    queue.sleepers.push(Sleeper {
        word: address(word),
        ticket,
        timed,
    });
    while queue.sleepers.iter().any(|s| s.ticket == ticket) {
        queue = model.dequeued.wait(queue).unwrap();
    }
    if timed {
        // Woken by a death, or polling now in any case: the deaths so far are seen.
        THREAD.with(|t| t.polled.set(queue.deaths));
    }
}

/// Wakes up to `count` sleepers on `word`, the longest asleep first.
pub(crate) fn wake(word: &AtomicU32, count: u32) {
    let model = &*MODEL;
    let mut queue = model.queue.lock().unwrap();
    let mut left = count;
    queue.sleepers.retain(|s| {
        let wakes = left > 0 && s.word == address(word);
        left -= u32::from(wakes);
        !wakes
    });
    if left != count {
        model.dequeued.notify_all();
    }
}

/// The time now: standing still (an execution must not depend on real time, which loom
/// does not replay), jumping `LIVENESS_POLL` ahead at each reading once time passes.
pub(crate) fn now() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    let model = &*MODEL;
    if model.time_passes.load(Relaxed) {
        model.jumps.fetch_add(1, Relaxed);
    }
    let jumps = u32::try_from(model.jumps.load(Relaxed)).unwrap_or(u32::MAX);
    *START.get_or_init(Instant::now) + super::LIVENESS_POLL * jumps
}

fn address(word: &AtomicU32) -> usize {
    std::ptr::from_ref(word).addr()
}

/// Owners get a serial number, never reused (see the real `thread_ids`).
pub(super) fn next_serial() -> u64 {
    static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
    NEXT_SERIAL.fetch_add(1, Relaxed)
}

/// Nothing to forget: the model's ids are per thread, not per owner.
pub(super) fn forget_owner(_serial: u64) {}

impl Owner {
    /// The calling model thread's owner id, taken on first use.
    pub fn thread_id(&self) -> Result<u32> {
        Ok(THREAD.with(|t| match t.id.get() {
            Some(id) => id,
            None => {
                let mut ids = t.model.ids.lock().unwrap();
                let id = ids.1;
                ids.1 += 1;
                ids.0.push(id);
                t.id.set(Some(id));
                id
            }
        }))
    }

    /// Whether `id` is the calling model thread's (its one id, whatever the owner).
    pub fn held_by_this_thread(&self, id: u32) -> bool {
        THREAD.with(|t| t.id.get() == Some(id))
    }

    /// Whether a model thread holds `id`.
    pub(super) fn own_thread_alive(&self, id: u32) -> bool {
        MODEL.ids.lock().unwrap().0.contains(&id)
    }
}

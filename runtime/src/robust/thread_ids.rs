//! Lock owner ids per thread, for the locks that user data lives behind (`crate::sync`).
//!
//! The segment's internal locks name a mapping's id ([`Owner::me`]): each is taken and
//! released within one call, so no thread can leave one held. A user lock's guard can be
//! leaked (`mem::forget`) by a thread that then exits, and the lock would stay held by a
//! live process forever. Naming the thread instead lets a waiter see that like the death of
//! a process: each thread claims an id of its own on each owner it locks through, the way a
//! mapping does (an exclusive lock on the id's byte of the owner's description; for private
//! memory, a place in the owner's list of live thread ids), and gives it back when it exits.
//!
//! It gives them back from a `pthread` key destructor, which glibc runs after every
//! `thread_local!` destructor of the thread: a guard kept in a thread local can still be
//! used by that local's destructor, and its lock must not look abandoned before. Past that
//! point no code of the thread runs, so a guard still held is one that was leaked.
//!
//! Where a thread cannot claim an id of its own (no key, or its thread locals are gone), it
//! locks in its mapping's name ([`Owner::me`]): sound (a live process's locks are never taken
//! over), only a leaked guard then keeps its lock until the process ends.

use std::cell::Cell;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use super::owner::{id_byte, FileId, Owner, FIRST_ID, ID_COUNT};
use crate::error::Result;
use crate::os::{fork, ofd};

/// Owners get a serial number, never reused, so that a thread's cached id cannot be taken
/// for an id on a later owner at the same address.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

pub(super) fn next_serial() -> u64 {
    NEXT_SERIAL.fetch_add(1, Relaxed)
}

/// The ids threads hold on one owner: how to give one back, and (for private memory, which
/// no kernel lock describes) which are alive.
struct Claims {
    serial: u64,
    /// The owner's description; None for private memory.
    fd: Option<RawFd>,
    /// The file it describes: ids are unique per file, whichever description claims them.
    file: FileId,
    /// Live thread ids of this process: for private memory the only record; on a
    /// description, what tells this process's live threads from dead ones, since the
    /// kernel sees no conflict with the description's own locks.
    live: Vec<Live>,
}

/// A live thread id: the id, the fork generation it counts in, and its thread
/// (`fork::this_thread`). A forked child has only the thread that forked: on a
/// description it claims ids anew (the parent's are the parent's description's), on
/// private memory, which the child has a copy of, that thread's ids carry over ([`claims`]).
type Live = (u32, u32, usize);

/// Every owner some thread holds an id on. An owner removes its entry before its
/// description closes ([`forget_owner`]), so a descriptor found here is open.
static CLAIMS: Mutex<Vec<Claims>> = Mutex::new(Vec::new());

/// The fork generation [`CLAIMS`] was brought up to date for (read and written under it).
static CLAIMS_GENERATION: AtomicU32 = AtomicU32::new(0);

/// [`CLAIMS`], locked, brought up to date after a fork: on private memory the ids of the
/// thread that forked (its guards live on in the child's copy) count in the new
/// generation, and every other thread's are gone with their threads.
fn claims() -> MutexGuard<'static, Vec<Claims>> {
    let mut claims = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
    let now = fork::generation();
    if CLAIMS_GENERATION.swap(now, Relaxed) != now {
        let forker = fork::forker();
        for owner in claims.iter_mut().filter(|c| c.fd.is_none()) {
            owner.live.retain(|&(.., thread)| thread == forker);
            for live in &mut owner.live {
                live.1 = now;
            }
        }
    }
    claims
}

/// One id of this thread: the owner's serial, the fork generation, the id.
type Claim = (u64, u32, u32);

thread_local! {
    /// The id used last: a lock taken again through the same owner costs one compare.
    static LAST: Cell<Claim> = const { Cell::new((0, 0, 0)) };
}

/// The `pthread` key whose value is this thread's `Vec<Claim>`, given back at exit.
fn key() -> Option<libc::pthread_key_t> {
    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut key = 0;
        // SAFETY: `key` is a valid place for the key; the destructor has the signature
        // `pthread_key_create` wants and is sound for every value this module sets.
        (unsafe { libc::pthread_key_create(&mut key, Some(release_thread)) } == 0).then_some(key)
    })
}

/// Gives back the ids of an exiting thread (the key's destructor).
unsafe extern "C" fn release_thread(list: *mut libc::c_void) {
    // SAFETY: the only values set under the key are `Box<Vec<Claim>>`s (`record`), and glibc
    // calls this once per value, having cleared the thread's slot.
    let list = unsafe { Box::from_raw(list.cast::<Vec<Claim>>()) };
    let forks = fork::generation();
    let mut claims = claims();
    for &(serial, claimed_in, id) in list.iter() {
        let Some(owner) = claims.iter_mut().find(|c| c.serial == serial) else {
            continue;
        };
        // A private id carried over a fork is this thread's still; a description's from
        // before a fork is the parent's.
        if owner.fd.is_some() && claimed_in != forks {
            continue;
        }
        owner.live.retain(|&(live, ..)| live != id);
        if let Some(fd) = owner.fd {
            // SAFETY: open while the owner's entry is listed (see `CLAIMS`).
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            // On failure the id stays held until the description closes: a leaked guard
            // then holds its lock until the mapping goes, as without thread ids.
            let _ = ofd::unlock_byte_fd(fd, id_byte(id));
        }
    }
}

/// This thread's ids, if it has recorded any.
fn thread_list(key: libc::pthread_key_t) -> *mut Vec<Claim> {
    // SAFETY: reading this thread's value of a created key.
    unsafe { libc::pthread_getspecific(key) }.cast()
}

/// Records `claim` for this thread's exit; false if it cannot (the claim must be undone).
fn record(key: libc::pthread_key_t, claim: Claim) -> bool {
    let mut list = thread_list(key);
    if list.is_null() {
        let fresh = Box::into_raw(Box::new(Vec::new()));
        // SAFETY: setting this thread's value of a created key.
        if unsafe { libc::pthread_setspecific(key, fresh.cast()) } != 0 {
            // SAFETY: not handed to anyone.
            drop(unsafe { Box::from_raw(fresh) });
            return false;
        }
        list = fresh;
    }
    // SAFETY: the value is this thread's own `Vec`, used by this thread only (and by the key
    // destructor, which runs after the thread's last code).
    let list = unsafe { &mut *list };
    list.retain(|c| c.0 != claim.0);
    list.push(claim);
    true
}

impl Owner {
    /// The calling thread's owner id on this owner, claimed on first use (and again in a
    /// forked child): what the user locks name their holder by.
    #[inline]
    pub fn thread_id(&self) -> Result<u32> {
        let forks = fork::generation();
        if let Ok((serial, claimed_in, id)) = LAST.try_with(Cell::get) {
            if serial == self.serial() && claimed_in == forks {
                return Ok(id);
            }
        }
        self.thread_id_slow(forks)
    }

    #[cold]
    fn thread_id_slow(&self, forks: u32) -> Result<u32> {
        let (Some(key), Ok(())) = (key(), LAST.try_with(|_| ())) else {
            return self.fallback_id(forks);
        };
        let list = thread_list(key);
        // SAFETY: this thread's own `Vec` (see `record`).
        // On private memory, the id of the thread that forked carries over (see `claims`).
        let known = (!list.is_null())
            .then(|| unsafe { &*list })
            .and_then(|list| {
                list.iter()
                    .find(|c| c.0 == self.serial() && (c.1 == forks || self.fd().is_none()))
            });
        let id = match known {
            Some(&(_, claimed_in, id)) if claimed_in == forks => id,
            Some(&(.., id)) => {
                if !record(key, (self.serial(), forks, id)) {
                    return self.fallback_id(forks);
                }
                id
            }
            None => {
                let claimed = match self.fd() {
                    Some(fd) => Some(self.claim_id(fd, forks, 1)?),
                    None => None,
                };
                let mut claims = claims();
                let mine = self.claims_in(&mut claims);
                let id = claimed.unwrap_or_else(|| private_id(mine, forks));
                if !record(key, (self.serial(), forks, id)) {
                    drop(claims);
                    if let Some(fd) = self.fd() {
                        let _ = ofd::unlock_byte_fd(fd, id_byte(id));
                    }
                    return self.fallback_id(forks);
                }
                mine.live.push((id, forks, fork::this_thread()));
                id
            }
        };
        let _ = LAST.try_with(|last| last.set((self.serial(), forks, id)));
        Ok(id)
    }

    /// This owner's entry in `claims`, made if it has none.
    fn claims_in<'c>(&self, claims: &'c mut Vec<Claims>) -> &'c mut Claims {
        let at = match claims.iter().position(|c| c.serial == self.serial()) {
            Some(at) => at,
            None => {
                claims.push(Claims {
                    serial: self.serial(),
                    fd: self.raw_fd(),
                    file: self.file(),
                    live: Vec::new(),
                });
                claims.len() - 1
            }
        };
        &mut claims[at]
    }

    /// The id of a thread that cannot record an id of its own (no key, or its thread locals
    /// are gone): its mapping's id on a description (its locks then last until the mapping
    /// goes), and on private memory a fresh id that stays alive for good, never
    /// [`PRIVATE`](super::owner::PRIVATE), which user locks take for forged.
    fn fallback_id(&self, forks: u32) -> Result<u32> {
        if self.fd().is_some() {
            return self.me();
        }
        let mut claims = claims();
        let mine = self.claims_in(&mut claims);
        let id = private_id(mine, forks);
        mine.live.push((id, forks, fork::this_thread()));
        Ok(id)
    }

    /// Whether `id` is an id the calling thread holds on some owner of this owner's file
    /// (another mapping of the same segment, with a description of its own): a lock word
    /// naming it is held by this very thread, which must not wait for it.
    pub fn held_by_this_thread(&self, id: u32) -> bool {
        let (Some(key), Some(_)) = (key(), self.fd()) else {
            return false;
        };
        let list = thread_list(key);
        if list.is_null() {
            return false;
        }
        // SAFETY: this thread's own `Vec` (see `record`).
        let list = unsafe { &*list };
        let forks = fork::generation();
        let claims = claims();
        list.iter()
            .filter(|&&(_, claimed_in, mine)| (mine, claimed_in) == (id, forks))
            .any(|&(serial, ..)| {
                claims
                    .iter()
                    .any(|c| c.serial == serial && c.fd.is_some() && c.file == self.file())
            })
    }

    /// Whether `id` is the id of a live thread of this process on this owner.
    pub(super) fn own_thread_alive(&self, id: u32) -> bool {
        let forks = fork::generation();
        claims()
            .iter()
            .find(|c| c.serial == self.serial())
            .is_some_and(|c| {
                c.live
                    .iter()
                    .any(|&(live, at, _)| (live, at) == (id, forks))
            })
    }
}

/// Called by an owner that goes away, before its description closes.
pub(super) fn forget_owner(serial: u64) {
    CLAIMS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|c| c.serial != serial);
}

/// A thread id for private memory, not live on this owner: random, so that bytes forged
/// into a private copy (an image, a buffer) cannot name the id a thread is about to get.
fn private_id(mine: &Claims, forks: u32) -> u32 {
    let seed = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), forks);
    (0u64..)
        .map(|attempt| {
            let r = seed.wrapping_add(attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            FIRST_ID + ((r ^ (r >> 31)) % u64::from(ID_COUNT)) as u32
        })
        .find(|id| !mine.live.iter().any(|&(live, ..)| live == *id))
        .unwrap_or(FIRST_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::owner::PRIVATE;

    #[test]
    fn each_thread_has_its_own_private_id_until_it_exits() {
        let owner = std::sync::Arc::new(Owner::private());
        let mine = owner.thread_id().unwrap();
        assert_eq!(owner.thread_id().unwrap(), mine, "claimed once");
        assert_ne!(mine, PRIVATE);
        assert!(owner.alive(mine));
        let theirs = {
            let owner = owner.clone();
            std::thread::spawn(move || {
                let id = owner.thread_id().unwrap();
                assert!(owner.alive(id));
                id
            })
            .join()
            .unwrap()
        };
        assert_ne!(theirs, mine);
        assert!(!owner.alive(theirs), "an exited thread's id is dead");
        assert!(owner.alive(mine));
        let other = Owner::private();
        assert!(!other.alive(mine), "ids are per owner");
    }
}

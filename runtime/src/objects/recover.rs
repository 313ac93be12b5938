//! Repair after a process died holding the index lock (and on a copy-on-write attach),
//! and the check of every entry that a cold open and `check()` run (one `entry_at` for
//! both).
//! Rather than trusting whatever half of an update the dead process left, the indexes are
//! rebuilt from the entries the object layer itself recorded: the registry of entries and
//! what the old indexes link (for segments made before the registry), never from blocks
//! that merely look like entries or tables (user data can look like anything). Every
//! candidate is validated (tag, kind, state, a known type, a name that hashes to the stored
//! hash, a block large enough), an index's before anything there is read or the links it
//! holds are followed ([`IndexKind::walk`]): a torn or forged link is dropped with what
//! hangs below it (those entries leak), never read through. Live ones are linked again;
//! ones caught half-built or half-destroyed are freed (their elements are not dropped: what
//! they own leaks, which is all that is lost); the type records are recounted.
//!
//! The rebuild happens in place: the registry and the hash tables are reused, so that
//! recovering a full segment needs no allocation (freeing the abandoned entries first
//! makes room if an index must grow after all). Abandoned entries that readers without the
//! lock may have found are retired rather than freed (`retired`), and the retired list is
//! cut at its first bad link.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;

use super::entry::{self, state, Entry, ObjectKind, MAX_KEY_LEN, MAX_NAME_LEN, SCHEMA_KIND, TAG};
use super::index::{IndexKind, Root};
use super::ops::{root_of, NAMED, SCHEMAS, UNIQUE};
use super::registry;
use super::retired;
use super::space::{Blocks, Space};
use super::types;
use crate::error::Result;
use crate::manager::header::words;

/// The indexes entries are linked in: named and unique objects, and stored type schemas.
const INDEXES: [Root; 3] = [NAMED, UNIQUE, SCHEMAS];

/// Rebuilds the indexes, the registry and the type records of `s` (under the index lock).
pub(crate) fn rebuild<I: IndexKind>(s: &Space) -> Result<()> {
    // Every offset followed below is checked against the chain of blocks first.
    let blocks = s.blocks();
    let records = types::check(s, &blocks)?;
    retired::repair(s, &blocks, &own_blocks(s, records))?;
    let mut layouts = Layouts::default();
    let mut found = Vec::new();
    let mut consider = |off| {
        let h = entry_at::<I::Link>(s, &blocks, off, &mut layouts);
        if let Ok(h) = h {
            found.push((off, h));
        }
        h.is_ok()
    };
    for off in registry::members(s, &blocks) {
        consider(off);
    }
    for root in INDEXES {
        // Best effort: a torn index yields the entries it reaches through links that name
        // entries. A link that does not is dropped with what hangs below it: only the
        // indexes and the registry tell entries from user data, so those are lost (their
        // blocks leak), never guessed at.
        let _ = I::walk(s, root, &blocks, &mut |e| Ok(consider(e)));
    }
    found.sort_unstable_by_key(|&(off, _)| off);
    found.dedup_by_key(|&mut (off, _)| off);
    let (live, doomed): (Vec<_>, Vec<_>) =
        found.into_iter().partition(|(_, h)| h.state == state::LIVE);
    // The registry holds the anonymous entries only (the others are in their indexes).
    let keep: Vec<u64> = live
        .iter()
        .filter(|(_, h)| h.kind == ObjectKind::Anonymous as u8)
        .map(|&(off, _)| off)
        .collect();
    registry::rebuild(s, &blocks, &keep)?;
    for root in INDEXES {
        I::clear(s, root, &blocks)?;
        s.word(root.count).store(0, Relaxed);
    }
    for (off, h) in doomed {
        let root = root_of(h.kind);
        if root.is_some_and(|root| root.read_without_lock::<I>()) {
            // Linked until now where readers without the lock look.
            retired::retire_entry(s, off)?;
            continue;
        }
        if let Ok(p) = Entry::<I::Link>::ptr(s, off) {
            // SAFETY: a header in bounds of a block nobody links any more; clearing the tag
            // keeps it from looking like an entry once it is reused.
            unsafe { (*p).tag = 0 };
        }
        // SAFETY: the block is an abandoned entry (registered or linked by an index and
        // marked, so one of ours); nothing refers to it after the rebuild.
        unsafe { s.free_entry(off)? };
    }
    let mut counts = HashMap::<u64, u64>::new();
    for (off, h) in live {
        *counts.entry(h.fingerprint).or_default() += 1;
        if let Some(root) = root_of(h.kind) {
            I::insert(s, root, off)?;
            s.bump(root.count, 1);
        }
    }
    types::recount(s, &counts)
}

/// Checks every entry the indexes link and the registry records, for a cold open and
/// `check()`: each passes [`entry_at`] against the used blocks of the allocator's chain, so
/// it starts a block of its own (blocks of a checked chain do not overlap) and its elements
/// end inside that block; an index links only entries of its kind, and none twice. After
/// this, lookups trust an entry's count. The retired list holds only used blocks that are
/// no entries and none of the object layer's own (`retired::check`), so draining it frees
/// nothing in use. Under the index lock (or on a read-only snapshot), after the allocator's
/// own check.
pub(crate) fn check<I: IndexKind>(s: &Space) -> Result<()> {
    let blocks = s.blocks();
    let bad = |e: u64, why: &str| s.corrupt(format!("entry at {e}: {why}"));
    let mut layouts = Layouts::default();
    let records = types::check(s, &blocks)?;
    retired::check(s, &blocks, &own_blocks(s, records))?;
    for root in INDEXES {
        // Each link is checked as an entry before the walk reads anything there (a forged
        // one could aim at a payload's padding) or follows the links it holds.
        let mut linked = HashSet::new();
        I::walk(s, root, &blocks, &mut |e| {
            if !linked.insert(e) {
                return Err(bad(e, "linked twice by one index"));
            }
            let h = entry_at::<I::Link>(s, &blocks, e, &mut layouts).map_err(|why| bad(e, why))?;
            let own = root_of(h.kind);
            if own.is_none_or(|own| own.root != root.root) {
                return Err(bad(e, "linked by the index of another kind"));
            }
            Ok(true)
        })?;
        let counted = s.read_word(root.count);
        if counted != linked.len() as u64 {
            return Err(s.corrupt(format!(
                "an index counts {counted} objects but links {}",
                linked.len()
            )));
        }
    }
    for e in registry::members(s, &blocks) {
        entry_at::<I::Link>(s, &blocks, e, &mut layouts).map_err(|why| bad(e, why))?;
    }
    Ok(())
}

/// The blocks the object layer keeps for itself (the hash tables, the registry, the type
/// `records`) and the thread-cache table: no retired link may name them.
fn own_blocks(s: &Space, records: Vec<u64>) -> HashSet<u64> {
    let mut own: HashSet<u64> = records.into_iter().collect();
    own.extend(INDEXES.map(|root| s.read_word(root.root)));
    own.extend([s.read_word(words::ENTRIES), s.cache_table()]);
    own
}

/// The (size, alignment) of each type record looked up so far, by fingerprint: a segment
/// holds many entries of few types.
#[derive(Default)]
struct Layouts(HashMap<u64, Option<(usize, usize)>>);

impl Layouts {
    fn of(&mut self, s: &Space, fingerprint: u64) -> Option<(usize, usize)> {
        *self.0.entry(fingerprint).or_insert_with(|| {
            let t = types::info(s, fingerprint).ok()??;
            Some((t.size, t.align))
        })
    }
}

/// The header at `off` if the block holds a consistent entry, else what is wrong with it.
/// `off` must start a used block of `blocks` that its header marks as an entry before
/// anything there is read (another block's first bytes, or a word inside a payload, may
/// be uninitialised padding).
fn entry_at<L: Copy>(
    s: &Space,
    blocks: &Blocks,
    off: u64,
    layouts: &mut Layouts,
) -> Result<Entry<L>, &'static str> {
    let have = blocks.entry_len(off).ok_or("not an object entry")?;
    if have < Entry::<L>::SIZE {
        return Err("its block is smaller than an entry header");
    }
    let h = Entry::<L>::read(s, off).map_err(|_| "its header lies outside the segment")?;
    let max = match ObjectKind::from_u8(h.kind) {
        Some(ObjectKind::Named) => MAX_NAME_LEN,
        Some(ObjectKind::Unique) => MAX_KEY_LEN,
        Some(ObjectKind::Anonymous) => 0,
        None if h.kind == SCHEMA_KIND => MAX_NAME_LEN,
        None => return Err("unknown kind"),
    };
    if h.tag != TAG {
        return Err("no entry tag");
    }
    if !(state::CONSTRUCTING..=state::DESTROYING).contains(&h.state) {
        return Err("unknown state");
    }
    if h.name_len() > max {
        return Err("name too long");
    }
    let (size, align) = layouts.of(s, h.fingerprint).ok_or("unknown type")?;
    let align = align.max(1);
    if !align.is_power_of_two() {
        return Err("its type record has a bad alignment");
    }
    let need = Entry::<L>::total(h.name_len(), size, align, h.count());
    if need.is_none_or(|n| n > have) {
        return Err("its elements reach past its block");
    }
    let name = Entry::<L>::name(s, off, h.name_len()).map_err(|_| "name out of bounds")?;
    if h.kind != ObjectKind::Anonymous as u8 && entry::hash(name) != h.hash {
        return Err("its name does not hash to its stored hash");
    }
    Ok(h)
}

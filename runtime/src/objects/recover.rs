//! Repair after a process died holding the index lock (and on a copy-on-write attach).
//! Rather than trusting whatever half of an update the dead process left, the indexes are
//! rebuilt from the entries the object layer itself recorded: the registry of entries and
//! what the old indexes link (for segments made before the registry), never from blocks
//! that merely look like entries or tables (user data can look like anything). Every
//! candidate is validated (tag, kind, state, a known type, a name that hashes to the stored
//! hash, a block large enough). Live ones are linked again; ones caught half-built or
//! half-destroyed are freed (their elements are not dropped: what they own leaks, which is
//! all that is lost); the type records are recounted.
//!
//! The rebuild happens in place: the registry and the hash tables are reused, so that
//! recovering a full segment needs no allocation (freeing the abandoned entries first
//! makes room if an index must grow after all).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use super::entry::{self, state, Entry, ObjectKind, MAX_KEY_LEN, MAX_NAME_LEN, TAG};
use super::index::IndexKind;
use super::ops::{root_of, NAMED, UNIQUE};
use super::registry;
use super::space::{Blocks, Space};
use super::types;
use crate::error::Result;

/// Rebuilds both indexes, the registry and the type records of `s` (under the index lock).
pub(crate) fn rebuild<I: IndexKind>(s: &Space) -> Result<()> {
    // Every offset followed below is checked against the chain of blocks first.
    let blocks = s.blocks();
    let mut candidates = registry::members(s, &blocks);
    for root in [NAMED, UNIQUE] {
        // Best effort: a torn index yields what it can; its links are offsets of entries.
        // Its root names a block of ours (a table or an entry), or nothing is read there.
        if blocks.len_of(s.read_word(root.root)).is_none() {
            continue;
        }
        let _ = I::for_each(s, root, &mut |e| {
            candidates.push(e);
            Ok(())
        });
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut live = Vec::new();
    let mut doomed = Vec::new();
    for off in candidates {
        match entry_at::<I::Link>(s, &blocks, off) {
            Some(h) if h.state == state::LIVE => live.push((off, h)),
            Some(_) => doomed.push(off),
            None => {}
        }
    }
    // The registry holds the anonymous entries only (the others are in their indexes).
    let keep: Vec<u64> = live
        .iter()
        .filter(|(_, h)| ObjectKind::from_u8(h.kind) == Some(ObjectKind::Anonymous))
        .map(|&(off, _)| off)
        .collect();
    registry::rebuild(s, &blocks, &keep)?;
    for root in [NAMED, UNIQUE] {
        I::clear(s, root, &blocks)?;
        s.word(root.count).store(0, Relaxed);
    }
    for off in doomed {
        if let Ok(p) = Entry::<I::Link>::ptr(s, off) {
            // SAFETY: a header in bounds of a block nobody links any more; clearing the tag
            // keeps it from looking like an entry once it is reused.
            unsafe { (*p).tag = 0 };
        }
        // SAFETY: the block is an abandoned entry (registered or linked by an index, so
        // one of ours); nothing refers to it after the rebuild.
        unsafe { s.free(off)? };
    }
    let mut counts = HashMap::<u64, u64>::new();
    for (off, h) in live {
        *counts.entry(h.fingerprint).or_default() += 1;
        if let Some(root) = ObjectKind::from_u8(h.kind).and_then(root_of) {
            I::insert(s, root, off)?;
            s.bump(root.count, 1);
        }
    }
    types::recount(s, &counts)
}

/// The header at `off` if the block holds a consistent entry; `off` must start a used
/// block before anything there is read.
fn entry_at<L: Copy>(s: &Space, blocks: &Blocks, off: u64) -> Option<Entry<L>> {
    let have = blocks.len_of(off)?;
    if have < Entry::<L>::SIZE {
        return None;
    }
    let h = Entry::<L>::read(s, off).ok()?;
    let kind = ObjectKind::from_u8(h.kind)?;
    let max = match kind {
        ObjectKind::Named => MAX_NAME_LEN,
        ObjectKind::Unique => MAX_KEY_LEN,
        ObjectKind::Anonymous => 0,
    };
    if h.tag != TAG
        || !(state::CONSTRUCTING..=state::DESTROYING).contains(&h.state)
        || h.name_len() > max
    {
        return None;
    }
    let t = types::info(s, h.fingerprint).ok()??;
    let name = Entry::<L>::name(s, off, h.name_len()).ok()?;
    let fits = Entry::<L>::total(h.name_len(), t.size, t.align.max(1), h.count())
        .is_some_and(|n| have >= n);
    (fits && (kind == ObjectKind::Anonymous || entry::hash(name) == h.hash)).then_some(h)
}

//! Repair after a process died holding the index lock. Rather than trusting whatever half
//! of an update the dead process left, the indexes are rebuilt from the allocator's list
//! of used blocks: every block that starts with a consistent entry header (tag, kind,
//! state, a known type, a name that hashes to the stored hash, a block large enough) is an
//! entry. Live ones are linked again; ones caught half-built or half-destroyed are freed
//! (their elements are not dropped: what they own leaks, which is all that is lost); the
//! old bucket arrays are freed and the type records recounted.
//!
//! The one thing this cannot tell apart is a raw allocation whose bytes were forged to look
//! exactly like an entry, which takes unsafe code writing a valid tag, type fingerprint
//! and name hash.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use super::entry::{self, state, Entry, ObjectKind, MAX_KEY_LEN, MAX_NAME_LEN, TAG};
use super::index::{hash, IndexKind};
use super::ops::{root_of, NAMED, UNIQUE};
use super::space::Space;
use super::types;
use crate::error::Result;

/// Rebuilds both indexes and the type records of `s` (under the index lock).
pub(crate) fn rebuild<I: IndexKind>(s: &Space) -> Result<()> {
    let blocks = s.used_blocks()?;
    for root in [NAMED, UNIQUE] {
        s.word(root.root).store(0, Relaxed);
        s.word(root.count).store(0, Relaxed);
    }
    let mut counts = HashMap::<u64, u64>::new();
    let mut doomed = Vec::new();
    for off in blocks {
        if hash::is_table(s, off) {
            doomed.push(off);
            continue;
        }
        let Some(h) = entry_at::<I::Link>(s, off) else {
            continue;
        };
        if h.state != state::LIVE {
            doomed.push(off);
            continue;
        }
        *counts.entry(h.fingerprint).or_default() += 1;
        if let Some(root) = ObjectKind::from_u8(h.kind).and_then(root_of) {
            I::insert(s, root, off)?;
            s.bump(root.count, 1);
        }
    }
    for off in doomed {
        if let Ok(p) = Entry::<I::Link>::ptr(s, off) {
            // SAFETY: a header in bounds of a block nobody links any more; clearing the tag
            // keeps it from looking like an entry once it is reused.
            unsafe { (*p).tag = 0 };
        }
        // SAFETY: the block is an abandoned entry or an old bucket array; nothing refers
        // to it after the rebuild.
        unsafe { s.free(off)? };
    }
    types::recount(s, &counts)
}

/// The header at `off` if the block holds a consistent entry.
fn entry_at<L: Copy>(s: &Space, off: u64) -> Option<Entry<L>> {
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
        .is_some_and(|n| s.block_len(off).is_some_and(|have| have >= n));
    (fits && (kind == ObjectKind::Anonymous || entry::hash(name) == h.hash)).then_some(h)
}

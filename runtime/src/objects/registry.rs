//! The registry: the set of the offsets of the anonymous object entries, an open-addressing
//! table reachable from a header word. Named and unique entries are verified through their
//! indexes; anonymous ones have no index, and the registry is what tells a genuine entry
//! from bytes that merely look like one: user data can forge an entry header, but only
//! object construction adds an offset here. `destroy_ptr` and the `instance_*` functions
//! require it, and recovery rebuilds from it and the indexes rather than from whatever
//! blocks look like entries.
//!
//! Slots hold offsets (entries never start at 0); linear probing from a home derived from
//! the offset itself, backward-shift deletion, doubling at 13/16 load. A slot write is one
//! word, so a process dying in an update leaves every member findable (at worst a member
//! twice, which `rebuild` removes).

use std::sync::atomic::Ordering::Relaxed;

use super::probing;
use super::space::{Blocks, Space};
use crate::error::{Error, Result};
use crate::manager::header::words;

const TAG: u64 = 0x454E_5452_4945_5331; // "ENTRIES1"
/// Small, so that a small segment can afford the first table.
const MIN_SLOTS: u64 = 4;
const TABLE: u64 = 16;

/// A table's place: offset of its block and its slot count (a power of two).
#[derive(Clone, Copy)]
struct At {
    off: u64,
    len: u64,
}

impl At {
    fn slot_off(self, i: u64) -> u64 {
        self.off + TABLE + (i & (self.len - 1)) * 8
    }

    fn get(self, s: &Space, i: u64) -> Result<u64> {
        let p = s.at::<u64>(self.slot_off(i))?;
        // SAFETY: in bounds and aligned (checked); plain data.
        Ok(unsafe { p.read() })
    }

    fn set(self, s: &Space, i: u64, v: u64) -> Result<()> {
        let p = s.at::<u64>(self.slot_off(i))?;
        // SAFETY: in bounds and aligned (checked); the index lock makes us the only writer.
        unsafe { p.write(v) };
        Ok(())
    }

    fn home(self, e: u64) -> u64 {
        ((e >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24) & (self.len - 1)
    }
}

/// Bytes of a table of `len` slots, if that is a sane size for this segment.
fn table_bytes(s: &Space, len: u64) -> Option<usize> {
    let bytes = len.checked_mul(8)?.checked_add(TABLE)?;
    (len.is_power_of_two() && bytes <= s.size()).then_some(bytes as usize)
}

/// The registry's table; None when it has none.
fn table(s: &Space) -> Result<Option<At>> {
    let off = s.read_word(words::ENTRIES);
    if off == 0 {
        return Ok(None);
    }
    let p = s.at::<[u64; 2]>(off)?;
    // SAFETY: in bounds and aligned (checked); plain data.
    let [tag, len] = unsafe { p.read() };
    let bytes = table_bytes(s, len).filter(|_| tag == TAG);
    let Some(bytes) = bytes else {
        return Err(s.corrupt(format!("no entry registry at offset {off}")));
    };
    s.bytes(off, bytes)?;
    Ok(Some(At { off, len }))
}

fn position(s: &Space, at: At, e: u64) -> Result<Option<u64>> {
    let home = at.home(e);
    for i in home..home + at.len {
        match at.get(s, i)? {
            0 => return Ok(None),
            w if w == e => return Ok(Some(i)),
            _ => {}
        }
    }
    Ok(None)
}

fn place(s: &Space, at: At, e: u64) -> Result<()> {
    let home = at.home(e);
    for i in home..home + at.len {
        if at.get(s, i)? == 0 {
            return at.set(s, i, e);
        }
    }
    Err(s.corrupt("the entry registry is full".into()))
}

/// Whether `e` is the offset of a registered entry.
pub(crate) fn contains(s: &Space, e: u64) -> Result<bool> {
    if e == 0 {
        return Ok(false);
    }
    match table(s)? {
        Some(at) => Ok(position(s, at, e)?.is_some()),
        None => Ok(false),
    }
}

fn overloaded(n: u64, len: u64) -> bool {
    n.saturating_mul(16) > len.saturating_mul(13)
}

/// Registers the new entry `e`, growing the table if needed.
pub(crate) fn insert(s: &Space, e: u64) -> Result<()> {
    let wanted = s.read_word(words::ENTRIES_COUNT).saturating_add(1);
    let at = match table(s)? {
        Some(at) if !overloaded(wanted, at.len) => at,
        old => grow(s, old, wanted)?,
    };
    place(s, at, e)?;
    s.bump(words::ENTRIES_COUNT, 1);
    Ok(())
}

/// Moves the registry into a new table with room for `n` members.
fn grow(s: &Space, old: Option<At>, n: u64) -> Result<At> {
    let len = (n.saturating_mul(16) / 13 + 1)
        .checked_next_power_of_two()
        .unwrap_or(0)
        .max(MIN_SLOTS);
    let bytes = table_bytes(s, len).ok_or(Error::OutOfMemory {
        requested: usize::MAX,
        align: 8,
        free: s.core().free_memory(),
    })?;
    let off = s.alloc(bytes, 8)?;
    let p = s.bytes(off, bytes)?;
    // SAFETY: a fresh block of `bytes` bytes: a tag, a length and empty slots.
    unsafe {
        p.write_bytes(0, bytes);
        p.cast::<[u64; 2]>().write([TAG, len]);
    }
    let new = At { off, len };
    if let Some(old) = old {
        for i in 0..old.len {
            let w = old.get(s, i)?;
            if w != 0 {
                place(s, new, w)?;
            }
        }
    }
    s.word(words::ENTRIES).store(off, Relaxed);
    if let Some(old) = old {
        // SAFETY: every member moved to the new table; nothing refers to the old one.
        unsafe { s.free(old.off)? };
    }
    Ok(new)
}

/// Unregisters `e` (before its block is freed).
pub(crate) fn remove(s: &Space, e: u64) -> Result<()> {
    let Some(at) = table(s)? else {
        return Err(s.corrupt(format!("entry {e} is not registered")));
    };
    let Some(hole) = position(s, at, e)? else {
        return Err(s.corrupt(format!("entry {e} is not registered")));
    };
    probing::backward_shift_delete(
        at.len,
        hole,
        |i| at.get(s, i),
        |i, w| at.set(s, i, w),
        |w| Ok(at.home(w)),
    )?;
    s.bump(words::ENTRIES_COUNT, -1);
    if s.read_word(words::ENTRIES_COUNT) == 0 {
        s.word(words::ENTRIES).store(0, Relaxed);
        // SAFETY: the empty table is unhooked; nothing refers to it.
        unsafe { s.free(at.off)? };
    }
    Ok(())
}

/// The registry's table for recovery: only if its offset starts a used block large enough
/// for it, checked before its header is read (a forged offset names any bytes at all).
fn table_in(s: &Space, blocks: &Blocks) -> Option<At> {
    let have = blocks.len_of(s.read_word(words::ENTRIES))? as u64;
    if have < TABLE {
        return None;
    }
    let at = table(s).ok()??;
    (have >= TABLE + at.len * 8).then_some(at)
}

/// Every registered offset (each once), for recovery; empty when the table is unusable.
pub(crate) fn members(s: &Space, blocks: &Blocks) -> Vec<u64> {
    let Some(at) = table_in(s, blocks) else {
        return Vec::new();
    };
    let mut out: Vec<u64> = (0..at.len)
        .filter_map(|i| at.get(s, i).ok())
        .filter(|&w| w != 0)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// For recovery: keeps only the members in `keep`, in place (no allocation). An unusable
/// table is dropped (not freed: it may not be a block of ours).
pub(crate) fn rebuild(s: &Space, blocks: &Blocks, keep: &[u64]) -> Result<()> {
    let Some(at) = table_in(s, blocks) else {
        s.word(words::ENTRIES).store(0, Relaxed);
        s.word(words::ENTRIES_COUNT).store(0, Relaxed);
        return Ok(());
    };
    for i in 0..at.len {
        at.set(s, i, 0)?;
    }
    let mut n = 0u64;
    for &e in keep {
        // Keep at least one free slot so that probes end.
        if n + 1 >= at.len {
            break;
        }
        place(s, at, e)?;
        n += 1;
    }
    s.word(words::ENTRIES_COUNT).store(n, Relaxed);
    Ok(())
}

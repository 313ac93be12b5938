//! The hash index (the default): an open-addressing table of 8-byte slots in the segment,
//! linear probing, backward-shift deletion. Each slot holds the entry's offset and the top
//! 24 bits of its name hash, so that probing, growing and deleting read only the table:
//! an entry is visited only when its 24-bit tag matches (a find visits the one it finds;
//! a construct of a new name, almost never any). The table doubles when it is 13/16 full
//! (amortised O(1) insert, O(1) find) and is freed when the index becomes empty.
//!
//! Slot routing uses the top bits of the hash, so a table of up to 2^24 slots is rehashed
//! from its tags alone; larger tables read the full hash from the entries.
//!
//! `find` probes the named index without the lock ([`IndexKind::LOCK_FREE_FIND`]): the
//! root word and the slots are stored atomically with release ordering (an entry's header
//! and name are written before its slot, a new table in full before the root names it),
//! the probe loads them with acquire ordering, and a table that is no longer the root's is
//! retired, not freed (`objects::retired`), as are the entries of failed constructions.
//! So a probe racing an insert, a backward shift or a resize reads only words that stay
//! allocated and whole; it may miss an entry that moved (then the locked path decides),
//! never find one that is not there.

use std::sync::atomic::Ordering::Release;

use super::{IndexKind, Key, Probe, Root};
use crate::error::{Error, Result};
use crate::objects::entry::{same_name, Entry, TAG as ENTRY_TAG};
use crate::objects::probing;
use crate::objects::retired;
use crate::objects::space::{Blocks, Space};
use crate::segment::inspect::IndexShape;

/// Hash index (default): O(1) find, insert and destroy; iteration in no particular order.
#[derive(Debug)]
pub enum HashIndex {}

/// Entries carry no links: the table holds everything a probe needs.
type E = Entry<()>;

const TAG: u64 = 0x4841_5348_5441_4231; // "HASHTAB1"
/// Small, so that a small segment can afford the first table.
const MIN_SLOTS: u64 = 4;
/// Bits of a slot holding the entry offset in 8-byte units (segments up to 8 TiB).
const OFF_BITS: u32 = 40;
const TAG_BITS: u32 = 64 - OFF_BITS;

/// A slot: the entry's offset and the top 24 bits of its hash; 0 is empty.
#[inline]
fn slot(e: u64, hash: u32) -> u64 {
    (e >> 3) | (u64::from(hash >> (32 - TAG_BITS)) << OFF_BITS)
}

#[inline]
fn entry_of(w: u64) -> u64 {
    (w & ((1 << OFF_BITS) - 1)) << 3
}

#[inline]
fn tag_of(w: u64) -> u32 {
    (w >> OFF_BITS) as u32
}

/// The table: a tag, the slot count (a power of two), then the slots.
#[repr(C)]
#[derive(Clone, Copy)]
struct Table {
    tag: u64,
    len: u64,
}

/// A table's place in the segment.
#[derive(Clone, Copy)]
struct At {
    off: u64,
    len: u64,
}

impl At {
    #[inline]
    fn slot_off(self, i: u64) -> u64 {
        self.off + size_of::<Table>() as u64 + (i & (self.len - 1)) * 8
    }

    #[inline]
    fn get(self, s: &Space, i: u64) -> Result<u64> {
        let p = s.at::<u64>(self.slot_off(i))?;
        // SAFETY: in bounds and aligned (checked).
        Ok(unsafe { p.read() })
    }

    /// Stores a slot (the index lock makes us its only writer) with release ordering: a
    /// reader without the lock that loads the slot then sees the entry it names whole.
    #[inline]
    fn set(self, s: &Space, i: u64, v: u64) -> Result<()> {
        s.shared(self.slot_off(i))?.store(v, Release);
        Ok(())
    }

    /// Writes a slot of a table that no reader can reach yet (being filled before the root
    /// names it, with release ordering): a plain write.
    #[inline]
    fn init(self, s: &Space, i: u64, v: u64) -> Result<()> {
        let p = s.at::<u64>(self.slot_off(i))?;
        // SAFETY: in bounds and aligned (checked); the table is this lock holder's alone
        // until it is published.
        unsafe { p.write(v) };
        Ok(())
    }

    /// Where the entry of slot word `w` belongs: the top bits of its hash.
    #[inline]
    fn home(self, s: &Space, w: u64) -> Result<u64> {
        let bits = self.len.trailing_zeros();
        if bits > 32 {
            return Err(s.corrupt(format!("a hash table of {} slots", self.len)));
        }
        if bits <= TAG_BITS {
            Ok(u64::from(tag_of(w)) >> (TAG_BITS - bits))
        } else {
            Ok(u64::from(E::read(s, entry_of(w))?.hash) >> (32 - bits))
        }
    }

    #[inline]
    fn home_of_hash(self, hash: u32) -> u64 {
        match self.len.trailing_zeros() {
            0 => 0,
            // Tables have at most 2^32 slots (`table` and `resize` check).
            bits => u64::from(hash) >> 32u32.saturating_sub(bits),
        }
    }
}

/// The table of an index; None while the index is empty.
#[inline]
fn table(s: &Space, root: Root) -> Result<Option<At>> {
    let off = s.read_word(root.root);
    if off == 0 {
        return Ok(None);
    }
    let p = s.at::<Table>(off)?;
    // SAFETY: in bounds and aligned (checked); plain data.
    let t = unsafe { p.read() };
    let Some(bytes) = table_bytes(s, t.len).filter(|_| t.tag == TAG) else {
        return Err(s.corrupt(format!("no hash table at offset {off}")));
    };
    s.bytes(off, bytes)?;
    Ok(Some(At { off, len: t.len }))
}

/// The table the root names, for a check or recovery: only if it starts a used block of
/// `blocks` large enough for it, checked before its header is read, so a forged root never
/// has bytes read as a table header nor slots read past its block.
fn table_in(s: &Space, root: Root, blocks: &Blocks) -> Option<At> {
    let have = blocks.len_of(s.read_word(root.root))? as u64;
    if have < size_of::<Table>() as u64 {
        return None;
    }
    let at = table(s, root).ok()??;
    (have >= size_of::<Table>() as u64 + at.len.saturating_mul(8)).then_some(at)
}

/// The slot holding entry `e` (with hash `hash`), if any.
fn position(s: &Space, at: At, e: u64, hash: u32) -> Result<Option<u64>> {
    let home = at.home_of_hash(hash);
    for i in home..home + at.len {
        match at.get(s, i)? {
            0 => return Ok(None),
            w if entry_of(w) == e => return Ok(Some(i)),
            _ => {}
        }
    }
    Ok(None)
}

/// The first free slot from the home of slot word `w`.
fn free_slot(s: &Space, at: At, w: u64) -> Result<u64> {
    let home = at.home(s, w)?;
    for i in home..home + at.len {
        if at.get(s, i)? == 0 {
            return Ok(i);
        }
    }
    Err(s.corrupt("the hash table is full".into()))
}

/// Most slots of a table: slot routing uses at most the 32 bits of a name hash.
const MAX_SLOTS: u64 = 1 << 32;

/// Bytes of a table of `len` slots, if such a table can exist in this segment.
fn table_bytes(s: &Space, len: u64) -> Option<usize> {
    let bytes = len.checked_mul(8)?.checked_add(size_of::<Table>() as u64)?;
    let fits = len.is_power_of_two() && len <= MAX_SLOTS && bytes <= s.size();
    fits.then(|| usize::try_from(bytes).ok()).flatten()
}

/// Allocates a table of `len` slots and moves every slot of the old one into it.
fn resize(s: &Space, root: Root, len: u64) -> Result<()> {
    let Some(bytes) = table_bytes(s, len) else {
        return Err(Error::OutOfMemory {
            requested: usize::try_from(len.saturating_mul(8)).unwrap_or(usize::MAX),
            align: 8,
            free: s.core().free_memory(),
        });
    };
    let off = s.alloc(bytes, 8)?;
    let p = s.bytes(off, bytes)?;
    // SAFETY: a fresh block of `bytes` bytes: a tag, a length and empty slots.
    unsafe {
        p.write_bytes(0, bytes);
        p.cast::<Table>().write(Table { tag: TAG, len });
    }
    let new = At { off, len };
    let old = table(s, root)?;
    if let Some(old) = old {
        for i in 0..old.len {
            let w = old.get(s, i)?;
            if w != 0 {
                new.init(s, free_slot(s, new, w)?, w)?;
            }
        }
    }
    // Release: a reader that loads the new root sees the table whole.
    s.word(root.root).store(off, Release);
    match old {
        Some(old) => dispose(s, root, old.off),
        None => Ok(()),
    }
}

/// Gives up a table the root no longer names: retired while readers without the lock may
/// still be probing it, freed otherwise.
fn dispose(s: &Space, root: Root, off: u64) -> Result<()> {
    if root.read_without_lock::<HashIndex>() {
        retired::retire(s, off)
    } else {
        // SAFETY: the table is unhooked from the root, and only lock holders read it.
        unsafe { s.free(off) }
    }
}

/// Whether `n` entries exceed the maximum load of 13/16 of `len` slots (no division on
/// the insert path).
#[inline]
fn overloaded(n: u64, len: u64) -> bool {
    n.saturating_mul(16) > len.saturating_mul(13)
}

/// Slots needed for `n` entries at the maximum load of 13/16.
fn slots_for(n: u64) -> u64 {
    (n.saturating_mul(16) / 13 + 1)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
        .max(MIN_SLOTS)
}

impl IndexKind for HashIndex {
    const KIND: u32 = 1;
    const NAME: &'static str = "hash index";
    const LOCK_FREE_FIND: bool = true;
    type Link = ();

    #[inline]
    fn find(s: &Space, root: Root, key: Key<'_>) -> Result<Option<u64>> {
        let Some(at) = table(s, root)? else {
            return Ok(None);
        };
        let want = key.hash >> (32 - TAG_BITS);
        let home = at.home_of_hash(key.hash);
        for i in home..home + at.len {
            let w = at.get(s, i)?;
            if w == 0 {
                return Ok(None);
            }
            if tag_of(w) == want {
                let e = entry_of(w);
                let h = E::read(s, e)?;
                if h.hash == key.hash
                    && h.name_len() == key.name.len()
                    && E::name(s, e, h.name_len())? == key.name
                {
                    return Ok(Some(e));
                }
            }
        }
        Ok(None)
    }

    #[inline]
    fn probe<const SHARED: bool>(s: &Space, root: Root, key: Key<'_>) -> Probe {
        let off = s.load_word::<SHARED>(root.root);
        if off == 0 {
            return Probe::Absent;
        }
        // The table's header words (a retired table's first word is a link, not the tag).
        let Some(head) = s.words::<SHARED>(off, 2) else {
            return Probe::Slow;
        };
        let (Some(tag), Some(len)) = (head.get(0), head.get(1)) else {
            return Probe::Slow;
        };
        if tag != TAG || !len.is_power_of_two() || len > MAX_SLOTS {
            return Probe::Slow;
        }
        let Some(slots) = s.words::<SHARED>(off + size_of::<Table>() as u64, len) else {
            return Probe::Slow;
        };
        let at = At { off, len };
        let want = key.hash >> (32 - TAG_BITS);
        let home = at.home_of_hash(key.hash);
        for i in home..home + at.len {
            let Some(w) = slots.get(i & (len - 1)) else {
                return Probe::Slow;
            };
            if w == 0 {
                return Probe::Absent;
            }
            if tag_of(w) != want {
                continue;
            }
            let e = entry_of(w);
            // The block header, the entry header, the name and a small object's data
            // often span two lines: load the second alongside the first.
            s.prefetch(e + 40);
            // Only a block marked as an entry is read as one.
            let Some(block_len) = s.entry_len(e).filter(|&len| len >= E::SIZE) else {
                return Probe::Slow;
            };
            let Some(words) = s.words::<SHARED>(e, 3) else {
                return Probe::Slow;
            };
            let (Some(w0), Some(w1), Some(w2)) = (words.get(0), words.get(1), words.get(2)) else {
                return Probe::Slow;
            };
            let h = E::from_words([w0, w1, w2]);
            // A retired entry's first word is a link, not the tag.
            if h.tag != ENTRY_TAG {
                return Probe::Slow;
            }
            if h.hash != key.hash || h.name_len() != key.name.len() {
                continue;
            }
            let Some(name) = s.checked(e + E::SIZE as u64, key.name.len()) else {
                return Probe::Slow;
            };
            // SAFETY: `key.name.len()` bytes in bounds (checked); a name is written before
            // its entry is linked and never changes while the entry's block is allocated.
            if unsafe { same_name(name, key.name) } {
                return Probe::Found {
                    entry: e,
                    block_len,
                    header: h,
                };
            }
        }
        Probe::Slow
    }

    fn insert(s: &Space, root: Root, e: u64) -> Result<()> {
        if e >> (OFF_BITS + 3) != 0 {
            return Err(Error::InvalidSize {
                size: e,
                reason: "the hash index reaches objects in the first 8 TiB of a segment".into(),
            });
        }
        // The count is a bare word of the segment: a forged one must not overflow.
        let wanted = s
            .read_word(root.count)
            .checked_add(1)
            .ok_or_else(|| s.corrupt("the object count is at its maximum".into()))?;
        let at = match table(s, root)? {
            Some(at) if !overloaded(wanted, at.len) => at,
            _ => {
                resize(s, root, slots_for(wanted))?;
                table(s, root)?.ok_or_else(|| s.corrupt("the new hash table vanished".into()))?
            }
        };
        let w = slot(e, E::read(s, e)?.hash);
        at.set(s, free_slot(s, at, w)?, w)
    }

    fn remove(s: &Space, root: Root, e: u64) -> Result<()> {
        let Some(at) = table(s, root)? else {
            return Err(s.corrupt("removing from an empty hash index".into()));
        };
        let Some(hole) = position(s, at, e, E::read(s, e)?.hash)? else {
            return Err(s.corrupt(format!("entry {e} is not in the hash table")));
        };
        probing::backward_shift_delete(
            at.len,
            hole,
            |i| at.get(s, i),
            |i, w| at.set(s, i, w),
            |w| at.home(s, w),
        )?;
        if s.read_word(root.count) <= 1 {
            Self::reset(s, root)?;
        }
        Ok(())
    }

    fn for_each(s: &Space, root: Root, f: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
        let Some(at) = table(s, root)? else {
            return Ok(());
        };
        for i in 0..at.len {
            match at.get(s, i)? {
                0 => {}
                w => f(entry_of(w))?,
            }
        }
        Ok(())
    }

    fn walk(
        s: &Space,
        root: Root,
        blocks: &Blocks,
        visit: &mut dyn FnMut(u64) -> Result<bool>,
    ) -> Result<()> {
        let off = s.read_word(root.root);
        if off == 0 {
            return Ok(());
        }
        let Some(at) = table_in(s, root, blocks) else {
            return Err(s.corrupt(format!(
                "an index root names offset {off}, which is not a hash table in a used block"
            )));
        };
        for i in 0..at.len {
            match at.get(s, i)? {
                0 => {}
                // Entries link nothing further: accepted or not, there is nothing to follow.
                w => {
                    visit(entry_of(w))?;
                }
            }
        }
        Ok(())
    }

    fn shape(s: &Space, root: Root) -> Result<IndexShape> {
        Ok(IndexShape::Table {
            buckets: table(s, root)?.map_or(0, |t| t.len),
        })
    }

    fn reserve(s: &Space, root: Root, n: u64) -> Result<()> {
        match table(s, root)? {
            Some(at) if !overloaded(n, at.len) => Ok(()),
            _ => resize(s, root, slots_for(n)),
        }
    }

    fn shrink_to_fit(s: &Space, root: Root) -> Result<()> {
        let Some(at) = table(s, root)? else {
            return Ok(());
        };
        match s.read_word(root.count) {
            0 => Self::reset(s, root),
            n if slots_for(n) < at.len => resize(s, root, slots_for(n)),
            _ => Ok(()),
        }
    }

    fn clear(s: &Space, root: Root, blocks: &Blocks) -> Result<()> {
        // Only the table the root names is a candidate (never a block that merely looks
        // like one), and it is kept only if it is a live block of its size.
        let Some(at) = table_in(s, root, blocks) else {
            // Dropped, not freed: it may be no table of ours.
            s.word(root.root).store(0, Release);
            return Ok(());
        };
        for i in 0..at.len {
            at.set(s, i, 0)?;
        }
        Ok(())
    }

    fn reset(s: &Space, root: Root) -> Result<()> {
        let off = s.read_word(root.root);
        s.word(root.root).store(0, Release);
        match off {
            0 => Ok(()),
            off => dispose(s, root, off),
        }
    }
}

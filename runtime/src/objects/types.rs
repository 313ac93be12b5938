//! Type records: the name, size and alignment of every element type that objects of the
//! segment use, one record per fingerprint, reference-counted by the entries. Entries keep
//! only the 8-byte fingerprint; the record lets `TypeMismatch` name the stored type in any
//! process, and iteration describe it.

use super::space::{Blocks, Space};
use crate::error::Result;
use std::sync::atomic::Ordering::Relaxed;

use crate::manager::header::words;

const TAG: u64 = 0x5459_5045_5245_4331; // "TYPEREC1"

#[repr(C)]
#[derive(Clone, Copy)]
struct Record {
    tag: u64,
    next: u64,
    fingerprint: u64,
    refs: u64,
    size: u64,
    align: u64,
    name_len: u64,
}

/// What a record says about a type.
pub(crate) struct TypeInfo {
    pub name: String,
    pub size: usize,
    pub align: usize,
}

/// The Rust description of a type: its fingerprint, name, size and alignment.
#[derive(Clone, Copy)]
pub(crate) struct TypeDesc {
    pub fingerprint: u64,
    pub name: &'static str,
    pub size: usize,
    pub align: usize,
}

impl TypeDesc {
    pub fn of<T: crate::layout::ShmSafe>() -> Self {
        TypeDesc {
            fingerprint: T::type_fingerprint(),
            name: std::any::type_name::<T>(),
            size: size_of::<T>(),
            align: align_of::<T>(),
        }
    }
}

fn read(s: &Space, off: u64) -> Result<Record> {
    let p = s.at::<Record>(off)?;
    // SAFETY: bounds and alignment checked; plain data.
    let r = unsafe { p.read() };
    if r.tag != TAG {
        return Err(s.corrupt(format!("no type record at offset {off}")));
    }
    Ok(r)
}

fn write(s: &Space, off: u64, r: Record) -> Result<()> {
    let p = s.at::<Record>(off)?;
    // SAFETY: bounds and alignment checked; the index lock makes us the only writer.
    unsafe { p.write(r) };
    Ok(())
}

/// Walks the list; returns (previous, offset) of the record with `fingerprint`.
fn position(s: &Space, fingerprint: u64) -> Result<Option<(u64, u64)>> {
    let (mut prev, mut cur) = (0, s.read_word(words::TYPES));
    let mut steps = 0u64;
    while cur != 0 {
        let r = read(s, cur)?;
        if r.fingerprint == fingerprint {
            return Ok(Some((prev, cur)));
        }
        (prev, cur) = (cur, r.next);
        steps += 1;
        // Every record is a block of at least 64 bytes: more steps mean a cycle.
        if steps > s.core().size() as u64 / 64 {
            return Err(s.corrupt("the list of type records has a cycle".into()));
        }
    }
    Ok(None)
}

/// Checks the list of type records of bytes from elsewhere before anything follows it: each
/// record is a used block of the chain (`blocks`) large enough for its header and name, is
/// tagged, and the list ends. Read before its block is confirmed, a forged offset could
/// aim into an object's padding, or lead `retain` to count inside live data. Returns the
/// records' offsets.
pub(crate) fn check(s: &Space, blocks: &Blocks) -> Result<Vec<u64>> {
    let mut cur = s.read_word(words::TYPES);
    let mut records = Vec::new();
    let mut steps = 0u64;
    while cur != 0 {
        let have = blocks.len_of(cur).unwrap_or(0);
        if have < size_of::<Record>() {
            return Err(s.corrupt(format!(
                "a type record at offset {cur} is not a used block of its size"
            )));
        }
        let r = read(s, cur)?;
        if (have as u64) < size_of::<Record>() as u64 + r.name_len.min(u64::MAX / 2) {
            return Err(s.corrupt(format!(
                "the type record at offset {cur} names more than its block holds"
            )));
        }
        steps += 1;
        if steps > s.core().size() as u64 / 64 {
            return Err(s.corrupt("the list of type records has a cycle".into()));
        }
        records.push(cur);
        cur = r.next;
    }
    Ok(records)
}

/// Counts one more entry of type `t`, creating its record if it is the first.
pub(crate) fn retain(s: &Space, t: &TypeDesc) -> Result<()> {
    if let Some((_, off)) = position(s, t.fingerprint)? {
        let mut r = read(s, off)?;
        r.refs = r.refs.saturating_add(1);
        return write(s, off, r);
    }
    let off = s.alloc(size_of::<Record>() + t.name.len(), 8)?;
    let r = Record {
        tag: TAG,
        next: s.read_word(words::TYPES),
        fingerprint: t.fingerprint,
        refs: 1,
        size: t.size as u64,
        align: t.align as u64,
        name_len: t.name.len() as u64,
    };
    write(s, off, r)?;
    let name = s.bytes(off + size_of::<Record>() as u64, t.name.len())?;
    // SAFETY: the fresh block holds the record and the name (allocated above).
    unsafe { name.copy_from_nonoverlapping(t.name.as_ptr(), t.name.len()) };
    s.word(words::TYPES).store(off, Relaxed);
    Ok(())
}

/// Counts one entry of type `fingerprint` less, freeing the record after the last.
pub(crate) fn release(s: &Space, fingerprint: u64) -> Result<()> {
    let Some((prev, off)) = position(s, fingerprint)? else {
        return Err(s.corrupt(format!("no type record for fingerprint {fingerprint:#x}")));
    };
    let mut r = read(s, off)?;
    r.refs = r.refs.saturating_sub(1);
    if r.refs > 0 {
        return write(s, off, r);
    }
    unlink(s, prev, r.next)?;
    // SAFETY: the record is unlinked; nothing refers to it any more.
    unsafe { s.free(off) }
}

fn unlink(s: &Space, prev: u64, next: u64) -> Result<()> {
    if prev == 0 {
        s.word(words::TYPES).store(next, Relaxed);
        Ok(())
    } else {
        let mut p = read(s, prev)?;
        p.next = next;
        write(s, prev, p)
    }
}

/// What the segment knows about type `fingerprint`.
pub(crate) fn info(s: &Space, fingerprint: u64) -> Result<Option<TypeInfo>> {
    let Some((_, off)) = position(s, fingerprint)? else {
        return Ok(None);
    };
    let r = read(s, off)?;
    let len = usize::try_from(r.name_len).unwrap_or(usize::MAX);
    let p = s.bytes(off + size_of::<Record>() as u64, len)?;
    // SAFETY: in bounds (checked); written once when the record was made.
    let bytes = unsafe { std::slice::from_raw_parts(p, len) };
    Ok(Some(TypeInfo {
        name: String::from_utf8_lossy(bytes).into_owned(),
        size: r.size as usize,
        align: r.align as usize,
    }))
}

/// The stored type's name for messages: its record's name, or the bare fingerprint.
pub(crate) fn describe(s: &Space, fingerprint: u64) -> String {
    match info(s, fingerprint) {
        Ok(Some(t)) => t.name,
        _ => format!("unknown type (fingerprint {fingerprint:#x})"),
    }
}

/// For recovery: sets every record's count to what `counts` says (records missing from
/// it drop to zero and are freed).
pub(crate) fn recount(s: &Space, counts: &std::collections::HashMap<u64, u64>) -> Result<()> {
    let (mut prev, mut cur) = (0, s.read_word(words::TYPES));
    let mut steps = 0u64;
    while cur != 0 {
        steps += 1;
        // Every record is a block of at least 64 bytes: more steps mean a cycle.
        if steps > s.core().size() as u64 / 64 {
            return Err(s.corrupt("the list of type records has a cycle".into()));
        }
        let mut r = read(s, cur)?;
        let next = r.next;
        match counts.get(&r.fingerprint) {
            Some(&n) => {
                r.refs = n;
                write(s, cur, r)?;
                prev = cur;
            }
            None => {
                unlink(s, prev, next)?;
                // SAFETY: unlinked, and no live entry has this type.
                unsafe { s.free(cur)? };
            }
        }
        cur = next;
    }
    Ok(())
}

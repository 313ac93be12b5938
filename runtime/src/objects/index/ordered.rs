//! The ordered index: a treap linked through the entries, ordered by name bytes, with the
//! stored name hash as the heap priority (so its shape depends only on the names: expected
//! depth O(log n), no extra field). Iteration yields names in byte order.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

use super::{IndexKind, Key, Root};
use crate::error::Result;
use crate::objects::entry::Entry;
use crate::objects::space::{Blocks, Space};
use crate::segment::inspect::IndexShape;

/// Ordered index: O(log n) find, insert and destroy; iteration in name order.
#[derive(Debug)]
pub enum OrderedIndex {}

type E = Entry<[u64; 2]>;
const LEFT: usize = 0;
const RIGHT: usize = 1;

/// Where a subtree hangs: the root word in the header, or a child link of an entry.
#[derive(Clone, Copy)]
enum Slot {
    Root(usize),
    Child(u64, usize),
}

fn get(s: &Space, slot: Slot) -> Result<u64> {
    match slot {
        Slot::Root(w) => Ok(s.read_word(w)),
        Slot::Child(e, side) => Ok(E::read(s, e)?.link[side]),
    }
}

fn set(s: &Space, slot: Slot, v: u64) -> Result<()> {
    match slot {
        Slot::Root(w) => s.word(w).store(v, Relaxed),
        Slot::Child(e, side) => {
            let p = E::ptr(s, e)?;
            // SAFETY: a header in bounds; the index lock makes us its only writer.
            unsafe { (*p).link[side] = v };
        }
    }
    Ok(())
}

/// Compares `key` with the name of entry `e`.
fn compare(s: &Space, key: &[u8], e: u64) -> Result<Ordering> {
    let h = E::read(s, e)?;
    Ok(key.cmp(E::name(s, e, h.name_len())?))
}

fn priority(s: &Space, e: u64) -> Result<u32> {
    Ok(E::read(s, e)?.hash)
}

/// Guards walks against cycles in a corrupted tree.
fn step(s: &Space, root: Root, steps: &mut u64) -> Result<()> {
    *steps += 1;
    if *steps > s.read_word(root.count).saturating_add(1) {
        return Err(s.corrupt("the ordered index has a cycle".into()));
    }
    Ok(())
}

/// The slot that holds entry `e` (found by its name).
fn slot_of(s: &Space, root: Root, e: u64) -> Result<Slot> {
    let h = E::read(s, e)?;
    let name = E::name(s, e, h.name_len())?;
    let mut slot = Slot::Root(root.root);
    let mut steps = 0;
    loop {
        let cur = get(s, slot)?;
        if cur == e {
            return Ok(slot);
        }
        if cur == 0 {
            return Err(s.corrupt(format!("entry {e} is not in the ordered index")));
        }
        slot = match compare(s, name, cur)? {
            Ordering::Less => Slot::Child(cur, LEFT),
            _ => Slot::Child(cur, RIGHT),
        };
        step(s, root, &mut steps)?;
    }
}

impl IndexKind for OrderedIndex {
    const KIND: u32 = 2;
    const NAME: &'static str = "ordered index";
    /// Left and right children.
    type Link = [u64; 2];

    fn find(s: &Space, root: Root, key: Key<'_>) -> Result<Option<u64>> {
        let mut cur = s.read_word(root.root);
        let mut steps = 0;
        while cur != 0 {
            cur = match compare(s, key.name, cur)? {
                Ordering::Equal => return Ok(Some(cur)),
                Ordering::Less => E::read(s, cur)?.link[LEFT],
                Ordering::Greater => E::read(s, cur)?.link[RIGHT],
            };
            step(s, root, &mut steps)?;
        }
        Ok(None)
    }

    fn insert(s: &Space, root: Root, e: u64) -> Result<()> {
        let h = E::read(s, e)?;
        let name = E::name(s, e, h.name_len())?;
        // Down to where `e`'s priority belongs...
        let mut slot = Slot::Root(root.root);
        let mut steps = 0;
        let mut cur = get(s, slot)?;
        while cur != 0 && priority(s, cur)? >= h.hash {
            slot = match compare(s, name, cur)? {
                Ordering::Less => Slot::Child(cur, LEFT),
                _ => Slot::Child(cur, RIGHT),
            };
            cur = get(s, slot)?;
            step(s, root, &mut steps)?;
        }
        // ...then split the subtree there around `e`'s name.
        let (mut left, mut right) = (Slot::Child(e, LEFT), Slot::Child(e, RIGHT));
        while cur != 0 {
            // Entries below the name go left of `e`, the others right; each moved entry
            // leaves its inner child to be split next.
            if compare(s, name, cur)? == Ordering::Greater {
                set(s, left, cur)?;
                left = Slot::Child(cur, RIGHT);
                cur = get(s, left)?;
            } else {
                set(s, right, cur)?;
                right = Slot::Child(cur, LEFT);
                cur = get(s, right)?;
            }
            step(s, root, &mut steps)?;
        }
        set(s, left, 0)?;
        set(s, right, 0)?;
        set(s, slot, e)
    }

    fn remove(s: &Space, root: Root, e: u64) -> Result<()> {
        let slot = slot_of(s, root, e)?;
        let [mut a, mut b] = E::read(s, e)?.link;
        // Merge the two subtrees into the slot, by priority.
        let mut slot = slot;
        let mut steps = 0;
        loop {
            if a == 0 || b == 0 {
                return set(s, slot, a.max(b));
            }
            if priority(s, a)? >= priority(s, b)? {
                set(s, slot, a)?;
                slot = Slot::Child(a, RIGHT);
                a = get(s, slot)?;
            } else {
                set(s, slot, b)?;
                slot = Slot::Child(b, LEFT);
                b = get(s, slot)?;
            }
            step(s, root, &mut steps)?;
        }
    }

    fn for_each(s: &Space, root: Root, f: &mut dyn FnMut(u64) -> Result<()>) -> Result<()> {
        let mut stack = Vec::new();
        let mut cur = s.read_word(root.root);
        let mut steps = 0;
        while cur != 0 || !stack.is_empty() {
            while cur != 0 {
                stack.push(cur);
                cur = E::read(s, cur)?.link[LEFT];
                step(s, root, &mut steps)?;
            }
            let Some(e) = stack.pop() else { break };
            let next = E::read(s, e)?.link[RIGHT];
            f(e)?;
            cur = next;
        }
        Ok(())
    }

    fn walk(
        s: &Space,
        root: Root,
        _: &Blocks,
        visit: &mut dyn FnMut(u64) -> Result<bool>,
    ) -> Result<()> {
        // Depth first, without trusting the count: each entry followed is one `visit`
        // accepted and is followed once, so the walk ends after at most as many entries as
        // there are blocks.
        let mut followed = HashSet::new();
        let mut stack = vec![s.read_word(root.root)];
        while let Some(e) = stack.pop() {
            if e != 0 && visit(e)? && followed.insert(e) {
                stack.extend(E::read(s, e)?.link);
            }
        }
        Ok(())
    }

    fn shape(s: &Space, root: Root) -> Result<IndexShape> {
        // Depth first with each node's depth; `step` stops a cycle of a corrupt tree.
        let (mut depth, mut steps) = (0, 0);
        let mut stack = vec![(s.read_word(root.root), 1)];
        while let Some((e, d)) = stack.pop() {
            if e == 0 {
                continue;
            }
            step(s, root, &mut steps)?;
            depth = depth.max(d);
            let links = E::read(s, e)?.link;
            stack.extend(links.map(|l| (l, d + 1)));
        }
        Ok(IndexShape::Tree { depth })
    }

    fn reserve(_: &Space, _: Root, _: u64) -> Result<()> {
        // A node-based index has nothing to preallocate (as Boost's map and iset indexes).
        Ok(())
    }

    fn reset(s: &Space, root: Root) -> Result<()> {
        s.word(root.root).store(0, Relaxed);
        Ok(())
    }
}

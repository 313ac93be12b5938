//! [`BoxExt`], the mutating methods of [`Box`] on whatever gives in-place access to one.

use shmkit_runtime::{AllocError, Error, PositionIndependent, ShmDerefMut, ShmMut, ShmSafe};

use super::{block, Box};
use crate::emplace::Emplace;

/// The mutating methods of the segment [`Box`] on anything that gives in-place access to
/// one: a [`ShmMut`] (from `root_mut`, `find_mut` or a derived accessor) and the guards of
/// shmkit's locks. Brought in by `use shmkit::prelude::*`.
///
/// A position-dependent value is never returned by value: [`take_with`](Self::take_with)
/// hands it to a closure in place and drops it there.
///
/// ```
/// use shmkit_containers::{Box, BoxExt};
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let mut seg = ManagedHeapMemory::new(1 << 16)?;
/// seg.construct("b", Box::<u64>::new())?;
/// let mut b = seg.find_mut::<Box<u64>>("b")?.expect("constructed above");
/// b.insert(7)?;
/// *b.value_mut().expect("set") += 1; // plain data derefs mutably
/// assert_eq!(b.take(), Some(8));
/// assert!(b.is_none());
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `Box<{T}>`",
    label = "not a guard of a `Box<{T}>` in place",
    note = "lock the box's Mutex, or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates (`node.next_mut().insert(x)?`)"
)]
pub trait BoxExt<T: ShmSafe>: ShmDerefMut<Target = Box<T>> {
    /// Puts a value built from `src` in the box (in a new block, built in place), dropping
    /// the value it held, as `Option::insert`; on error the box is unchanged. (Not `set`,
    /// which a guard of plain data has already: [`ShmMut::set`].)
    fn insert<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>;

    /// The guard of the value, None when empty: std's `as_mut`, whose name a guard has
    /// already ([`ShmMut::as_mut`]). Plain data derefs mutably:
    /// `*b.value_mut().unwrap() += 1`.
    fn value_mut(&mut self) -> Option<ShmMut<'_, T>>;

    /// Empties the box and returns its value; None when empty.
    fn take(&mut self) -> Option<T>
    where
        T: PositionIndependent;

    /// Hands the value to `f` in place, then drops it there and empties the box; None (and
    /// `f` not called) when empty. What `take` is for position-dependent values.
    fn take_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R>;

    /// Drops the value, if any, and empties the box.
    fn clear(&mut self);

    /// Swaps the values of this box and `other` (std's `mem::swap` of two boxes; the
    /// values stay in their blocks): how a value moves from one box to another, as in
    /// `a.swap(&mut b)?; b.clear()`. [`Error::InvalidAddress`] (and nothing changed) when
    /// `other` is in another segment.
    fn swap<Q: ShmDerefMut<Target = Box<T>> + ?Sized>(
        &mut self,
        other: &mut Q,
    ) -> Result<(), Error>;
}

/// The guard of the value of `b`, None when empty.
fn value_mut<T>(b: &mut Box<T>) -> Option<ShmMut<'_, T>> {
    let block = b.block()?;
    // SAFETY: the value, in place in its block, owned by the box and borrowed with it;
    // the guard moves nothing.
    Some(unsafe { ShmMut::new(&mut *block.as_ptr()) })
}

/// The box behind a guard, for its in-place methods.
#[inline(always)]
fn in_place<T, P: ShmDerefMut<Target = Box<T>> + ?Sized>(p: &mut P) -> &mut Box<T> {
    // SAFETY: only the box's own methods use the reference; they change it in place and
    // never move it.
    unsafe { p.as_shm_mut().get_unchecked_mut() }
}

impl<T: ShmSafe, P: ShmDerefMut<Target = Box<T>> + ?Sized> BoxExt<T> for P {
    fn insert<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        in_place(self).replace_from(src)
    }

    fn value_mut(&mut self) -> Option<ShmMut<'_, T>> {
        value_mut(in_place(self))
    }

    fn take(&mut self) -> Option<T>
    where
        T: PositionIndependent,
    {
        let block = in_place(self).detach()?;
        // SAFETY: the block holds a `T` that nothing owns any more: read out once, then
        // the block is freed without dropping it.
        unsafe {
            let value = block.as_ptr().read();
            block::free(block);
            Some(value)
        }
    }

    fn take_with<R>(&mut self, f: impl FnOnce(ShmMut<'_, T>) -> R) -> Option<R> {
        // One guard for both steps: the box emptied is the one whose value `f` saw.
        let b = in_place(self);
        let r = f(value_mut(b)?);
        b.release();
        Some(r)
    }

    fn clear(&mut self) {
        in_place(self).release();
    }

    fn swap<Q: ShmDerefMut<Target = Box<T>> + ?Sized>(
        &mut self,
        other: &mut Q,
    ) -> Result<(), Error> {
        let (a, b) = (in_place(self), in_place(other));
        let b_at = (&raw const b.ptr).cast::<u8>();
        if !a.allocator()?.contains(b_at) {
            return Err(Error::InvalidAddress {
                addr: b_at.addr(),
                reason: "a box swaps values with boxes of its own segment only".into(),
            });
        }
        let (x, y) = (a.detach(), b.detach());
        // SAFETY: both boxes are in one mapping (checked above), so each box's block lies
        // in the mapping of the other box too; each value gets one owner again, named in
        // its block's tag before it is published.
        unsafe {
            if let Some(y) = y {
                a.publish(y);
            }
            if let Some(x) = x {
                b.publish(x);
            }
        }
        Ok(())
    }
}

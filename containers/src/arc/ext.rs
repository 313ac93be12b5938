//! [`ArcExt`] and [`WeakExt`], the mutating methods of [`Arc`] and [`Weak`] on whatever
//! gives in-place access to one, and [`ArcError`].

use core::fmt;
use core::sync::atomic::Ordering;

use shmkit_runtime::{AllocError, Error, ShmDerefMut, ShmMut, ShmSafe};

use super::{release_strong, release_weak, strong, weak, Arc, Weak, MAX, STRONG, WEAK};
use crate::emplace::Emplace;

/// The mutating methods of the segment [`Arc`] on anything that gives in-place access to
/// one: a [`ShmMut`] (from `root_mut`, `find_mut` or a derived accessor) and the guards of
/// shmkit's locks. Brought in by `use shmkit::prelude::*`.
///
/// ```
/// use shmkit_containers::{Arc, ArcError, ArcExt, Weak, WeakExt};
/// use shmkit_runtime::sync::Mutex;
/// use shmkit_runtime::ManagedHeapMemory;
///
/// let seg = ManagedHeapMemory::new(1 << 16)?;
/// let arc = seg.construct("arc", Mutex::new(Arc::<u64>::new()))?;
/// let weak = seg.construct("weak", Mutex::new(Weak::<u64>::new()))?;
/// let (mut arc, mut weak) = (arc.lock()?, weak.lock()?);
/// arc.insert(7)?;
/// *arc.value_mut().expect("unshared") += 1;
/// weak.downgrade_from(&arc)?;
/// assert!(arc.value_mut().is_none()); // the Weak could upgrade meanwhile
/// arc.clear(); // the value is dropped; the block stays for the Weak
/// assert_eq!(arc.upgrade_from(&weak), Err(ArcError::Gone));
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `Arc<{T}>`",
    label = "not a guard of an `Arc<{T}>` in place",
    note = "lock the handle's Mutex, or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates (`db.config_mut().share(&other)?`)"
)]
pub trait ArcExt<T: ShmSafe>: ShmDerefMut<Target = Arc<T>> {
    /// Makes this handle the only `Arc` of a new value built from `src` (in a new block,
    /// in place), giving up the value it shared; on error nothing changes. (Not `set`,
    /// which a guard of plain data has already: [`ShmMut::set`].)
    fn insert<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>;

    /// Makes this handle share `from`'s value (or empty, if `from` is), giving up the value
    /// it shared: std's `clone`, in place. `from` must be in this handle's segment.
    fn share(&mut self, from: &Arc<T>) -> Result<(), ArcError>;

    /// Makes this handle share the value `weak` refers to, giving up the value it shared:
    /// std's `upgrade`, in place. [`ArcError::Gone`] (and nothing changed) when the value
    /// was dropped or `weak` is empty.
    fn upgrade_from(&mut self, weak: &Weak<T>) -> Result<(), ArcError>;

    /// The guard of the value while this is its only handle (no other `Arc`, no `Weak`,
    /// in any process), as std's `get_mut`; None otherwise or when empty, and for a handle
    /// from before the segment's trust epoch, which cannot know that (see the
    /// [module docs](crate::arc)).
    fn value_mut(&mut self) -> Option<ShmMut<'_, T>>;

    /// Empties the handle: the value is dropped if it was the last `Arc` (and the handle
    /// is from this trust epoch; an older one's count leaks, see the
    /// [module docs](crate::arc)).
    fn clear(&mut self);
}

/// The mutating methods of the segment [`Weak`], as [`ArcExt`]'s.
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no in-place access to a segment `Weak<{T}>`",
    label = "not a guard of a `Weak<{T}>` in place",
    note = "lock the handle's Mutex, or reach it through `root_mut`/`find_mut` of an exclusive mapping and the accessors #[derive(ShmSafe)] generates"
)]
pub trait WeakExt<T: ShmSafe>: ShmDerefMut<Target = Weak<T>> {
    /// Makes this handle refer to `arc`'s value (or empty, if `arc` is): std's
    /// `Arc::downgrade`, in place. `arc` must be in this handle's segment.
    fn downgrade_from(&mut self, arc: &Arc<T>) -> Result<(), ArcError>;

    /// Makes this handle refer to what `from` refers to (or empty): std's `clone`, in
    /// place.
    fn share(&mut self, from: &Weak<T>) -> Result<(), ArcError>;

    /// Empties the handle: the block is freed if it was the last handle (from this trust
    /// epoch, as for [`ArcExt::clear`]).
    fn clear(&mut self);
}

/// The handle behind a guard, for its in-place methods.
#[inline(always)]
fn in_place<H, P: ShmDerefMut<Target = H> + ?Sized>(p: &mut P) -> &mut H {
    // SAFETY: only the handles' own methods use the reference; they change the handle in
    // place and never move it.
    unsafe { p.as_shm_mut().get_unchecked_mut() }
}

/// The strong count raised by one, if there is a value and room.
fn one_more_strong(counts: u64) -> Result<u64, ArcError> {
    match strong(counts) {
        0 => Err(ArcError::Gone),
        MAX => Err(ArcError::Overflow),
        _ => Ok(counts + STRONG),
    }
}

/// The weak count raised by one, if there is room.
fn one_more_weak(counts: u64) -> Result<u64, ArcError> {
    if weak(counts) == MAX {
        Err(ArcError::Overflow)
    } else {
        Ok(counts + WEAK)
    }
}

impl<T: ShmSafe, P: ShmDerefMut<Target = Arc<T>> + ?Sized> ArcExt<T> for P {
    fn insert<S>(&mut self, src: S) -> Result<(), AllocError>
    where
        T: Emplace<S>,
    {
        in_place(self).replace_from(src)
    }

    fn share(&mut self, from: &Arc<T>) -> Result<(), ArcError> {
        if let Some(old) = in_place(self).link.adopt(&from.link, one_more_strong)? {
            // SAFETY: the handle no longer holds the old block: its count is given back.
            unsafe { release_strong(old) };
        }
        Ok(())
    }

    fn upgrade_from(&mut self, weak: &Weak<T>) -> Result<(), ArcError> {
        if weak.link.block().is_none() {
            return Err(ArcError::Gone);
        }
        if let Some(old) = in_place(self).link.adopt(&weak.link, one_more_strong)? {
            // SAFETY: the handle no longer holds the old block: its count is given back.
            unsafe { release_strong(old) };
        }
        Ok(())
    }

    fn value_mut(&mut self) -> Option<ShmMut<'_, T>> {
        let arc = in_place(self);
        let block = arc.link.block()?;
        // One `Arc` (this one) and no `Weak`, seen in one load; Acquire, so that what
        // other handles did before they went happens before the `&mut`. Nothing can add a
        // handle meanwhile: that takes one, and this is the only one. Only a current
        // handle knows the counts count it: an old one may have uncounted twins (see the
        // module docs).
        let alone =
            arc.link.is_current() && arc.link.counts()?.load(Ordering::Acquire) == STRONG | WEAK;
        // SAFETY: the value, unshared, in place in its block, borrowed with the handle;
        // the guard moves nothing.
        alone.then(|| unsafe { ShmMut::new(&mut (*block.as_ptr()).value) })
    }

    fn clear(&mut self) {
        if let Some(old) = in_place(self).link.detach() {
            // SAFETY: the handle is emptied: its count is given back.
            unsafe { release_strong(old) };
        }
    }
}

impl<T: ShmSafe, P: ShmDerefMut<Target = Weak<T>> + ?Sized> WeakExt<T> for P {
    fn downgrade_from(&mut self, arc: &Arc<T>) -> Result<(), ArcError> {
        if let Some(old) = in_place(self).link.adopt(&arc.link, one_more_weak)? {
            // SAFETY: the handle no longer holds the old block: its count is given back.
            unsafe { release_weak(old) };
        }
        Ok(())
    }

    fn share(&mut self, from: &Weak<T>) -> Result<(), ArcError> {
        if let Some(old) = in_place(self).link.adopt(&from.link, one_more_weak)? {
            // SAFETY: as above.
            unsafe { release_weak(old) };
        }
        Ok(())
    }

    fn clear(&mut self) {
        if let Some(old) = in_place(self).link.detach() {
            // SAFETY: as above.
            unsafe { release_weak(old) };
        }
    }
}

/// Why an [`ArcExt`] or [`WeakExt`] method changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArcError {
    /// The value is gone: its last `Arc` dropped it, or the `Weak` is empty.
    Gone,
    /// The source handle's value is in another segment than the handle to change (or that
    /// handle is in no writable segment): a handle points into its own segment only.
    OtherSegment {
        /// The address of the source's block.
        addr: usize,
    },
    /// The value has as many handles of that kind as a count holds (`u32::MAX`).
    Overflow,
}

impl fmt::Display for ArcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArcError::Gone => {
                f.write_str("the value of the Weak is gone (its last Arc dropped it)")
            }
            ArcError::OtherSegment { addr } => write!(
                f,
                "the value at {addr:#x} is in another segment than the handle to share it"
            ),
            ArcError::Overflow => write!(f, "the value has {MAX} handles of that kind already"),
        }
    }
}

impl std::error::Error for ArcError {}

impl From<ArcError> for Error {
    fn from(e: ArcError) -> Error {
        match e {
            ArcError::Gone => Error::NotFound {
                what: "the value of a Weak (its last Arc dropped it)".into(),
            },
            ArcError::OtherSegment { addr } => Error::InvalidAddress {
                addr,
                reason: "a handle shares values of its own segment only".into(),
            },
            ArcError::Overflow => Error::Overflow {
                what: "the count of an Arc's value".into(),
                max: MAX,
            },
        }
    }
}

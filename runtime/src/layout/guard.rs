//! [`ShmMut`]: the guard for mutable access to a value that lives in place. The
//! [layout module](super) says why it replaces `&mut T`.

use core::fmt;
use core::ops::{Deref, DerefMut};

use super::traits::PositionIndependent;

/// Mutable access to a value that lives in place (in a segment): `&T` always, `&mut T` only
/// for [`PositionIndependent`] types, in-place operations and projections otherwise.
/// See the [layout module](crate::layout) for why.
pub struct ShmMut<'a, T: ?Sized> {
    value: &'a mut T,
}

impl<'a, T: ?Sized> ShmMut<'a, T> {
    /// Wraps a reference to plain data: moving it is harmless, so this is safe.
    #[inline(always)]
    pub fn from_mut(value: &'a mut T) -> Self
    where
        T: PositionIndependent,
    {
        ShmMut { value }
    }

    /// The inner `&mut T`: plain data may be moved or swapped freely.
    #[inline(always)]
    pub fn get_mut(self) -> &'a mut T
    where
        T: PositionIndependent,
    {
        self.value
    }

    /// Replaces the value (dropping the old one).
    #[inline(always)]
    pub fn set(&mut self, value: T)
    where
        T: PositionIndependent,
    {
        *self.value = value;
    }

    /// Wraps a mutable reference to a value that is in place.
    ///
    /// # Safety
    ///
    /// The value must be at its place: every self-relative pointer in it is either null or
    /// aims into the memory it belongs with (its segment) as seen from where the value is now.
    /// Code holding a `ShmMut` relies on that.
    #[inline(always)]
    pub unsafe fn new(value: &'a mut T) -> Self {
        ShmMut { value }
    }

    /// Reborrows the guard for a shorter time, like `Pin::as_mut`.
    #[inline(always)]
    pub fn as_mut(&mut self) -> ShmMut<'_, T> {
        ShmMut { value: self.value }
    }

    /// The inner `&mut T`, whatever `T`.
    ///
    /// # Safety
    ///
    /// The caller must not move the value out of its place through the reference (no
    /// `mem::swap`, `mem::replace`, `mem::take`, assignment of a whole position-dependent
    /// value), except by relocating it with [`ShmSafe::relocate`](crate::ShmSafe::relocate) afterwards.
    #[inline(always)]
    pub unsafe fn get_unchecked_mut(self) -> &'a mut T {
        self.value
    }

    /// Projects the guard onto a part of the value (a field), as the derive's accessors do.
    ///
    /// # Safety
    ///
    /// `project` must return a part of the value it is given (a field, an element), and must
    /// not move anything out of place, as for [`get_unchecked_mut`](Self::get_unchecked_mut).
    #[inline(always)]
    pub unsafe fn map_unchecked<U: ?Sized, F>(self, project: F) -> ShmMut<'a, U>
    where
        F: FnOnce(&'a mut T) -> &'a mut U,
    {
        ShmMut {
            value: project(self.value),
        }
    }
}

/// In-place mutable access to a value that lives in a segment: [`ShmMut`] itself and the
/// guards of the locks in [`sync`](crate::sync). Extension traits (the containers', the
/// derive's accessors) are implemented for every `P: ShmDerefMut<Target = X>`, so the same
/// methods work on a `ShmMut<X>` from an exclusive mapping and on a lock guard of a shared
/// one: `db.users.lock()?.push(user)?`.
///
/// A safe trait: an implementation is expected to hand out the value it derefs to, but
/// soundness never depends on it. An implementation whose `deref` shows one value and
/// whose `as_shm_mut` hands out another (or another at each call) is a bug, not undefined
/// behaviour: shmkit's extension traits take `as_shm_mut` once per call and make every
/// check a write relies on (bounds, character boundaries, lengths, keys) on that guard,
/// never through `Deref`.
pub trait ShmDerefMut: Deref {
    /// The value, for in-place mutation (like [`ShmMut::as_mut`]).
    fn as_shm_mut(&mut self) -> ShmMut<'_, Self::Target>;
}

impl<T: ?Sized> ShmDerefMut for ShmMut<'_, T> {
    #[inline(always)]
    fn as_shm_mut(&mut self) -> ShmMut<'_, T> {
        self.as_mut()
    }
}

impl<T: ?Sized> Deref for ShmMut<'_, T> {
    type Target = T;

    /// Shared access is always fine: `&T` cannot move the value.
    #[inline(always)]
    fn deref(&self) -> &T {
        self.value
    }
}

/// Plain data may be mutated and moved freely, so its guard is a `&mut T` too: this is
/// what makes `*db.hits_mut() += 1` work. Position-dependent values get no `DerefMut`, so
/// `mem::swap(&mut *a, &mut *b)` on them does not compile.
impl<T: PositionIndependent> DerefMut for ShmMut<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        self.value
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for ShmMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<'a, T> ShmMut<'a, [T]> {
    /// Number of elements.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether there are no elements.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The guard of element `i`, or `None` when out of bounds.
    #[inline(always)]
    pub fn index(&mut self, i: usize) -> Option<ShmMut<'_, T>> {
        self.value.get_mut(i).map(|value| ShmMut { value })
    }

    /// Guards of every element, in order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = ShmMut<'_, T>> {
        self.value.iter_mut().map(|value| ShmMut { value })
    }
}

impl<'a, T: PositionIndependent> ShmMut<'a, [T]> {
    /// Wraps a slice of plain data (safe for the same reason as [`ShmMut::from_mut`]).
    #[inline(always)]
    pub fn from_mut_slice(value: &'a mut [T]) -> Self {
        ShmMut { value }
    }

    /// The inner `&mut [T]` of plain data.
    #[inline(always)]
    pub fn get_mut_slice(self) -> &'a mut [T] {
        self.value
    }
}

impl<'a, T, const N: usize> ShmMut<'a, [T; N]> {
    /// The guard of the array as a slice, for [`index`](ShmMut::index) and
    /// [`iter_mut`](ShmMut::iter_mut).
    #[inline(always)]
    pub fn into_slice(self) -> ShmMut<'a, [T]> {
        ShmMut { value: self.value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OffsetPtr, ShmSafe};

    /// A plain-data struct the way the derive will implement it.
    #[repr(C)]
    struct Point {
        x: u32,
        y: u32,
    }
    // SAFETY: two `u32`s.
    unsafe impl ShmSafe for Point {}
    // SAFETY: two `u32`s.
    unsafe impl PositionIndependent for Point {}

    #[test]
    fn get_mut_and_set_on_plain_data() {
        let mut p = Point { x: 1, y: 2 };
        let mut guard = ShmMut::from_mut(&mut p);
        guard.as_mut().get_mut().x = 10;
        guard.set(Point {
            x: 3,
            y: guard.y + 1,
        });
        assert_eq!((guard.x, guard.y), (3, 3));
        let r = guard.get_mut();
        r.y = 7;
        assert_eq!((p.x, p.y), (3, 7));
    }

    #[test]
    fn map_unchecked_projects_to_a_field() {
        let mut p = Point { x: 1, y: 2 };
        let guard = ShmMut::from_mut(&mut p);
        // SAFETY: the projection returns a field and moves nothing.
        let y = unsafe { guard.map_unchecked(|p| &mut p.y) };
        *y.get_mut() = 20;
        assert_eq!(p.y, 20);
    }

    #[test]
    fn slice_guard_indexes_and_iterates() {
        let mut values = [1u32, 2, 3];
        let mut guard = ShmMut::from_mut(&mut values).into_slice();
        assert_eq!(guard.len(), 3);
        assert!(!guard.is_empty());
        *guard.index(1).map(ShmMut::get_mut).unwrap() = 20;
        assert!(guard.index(3).is_none());
        for element in guard.iter_mut() {
            *element.get_mut() += 1;
        }
        guard.as_mut().get_mut_slice()[0] = 0;
        assert_eq!(values, [0, 21, 4]);

        let mut empty: [u8; 0] = [];
        assert!(ShmMut::from_mut_slice(&mut empty[..]).is_empty());
    }

    #[test]
    fn slice_of_offset_ptrs_is_mutated_in_place() {
        /// Pointers and their targets in one registered range, like a segment.
        #[repr(C)]
        struct Arena {
            ptrs: [OffsetPtr<u64>; 2],
            targets: [u64; 2],
        }
        let mut arena = Box::new(Arena {
            ptrs: [OffsetPtr::null(), OffsetPtr::null()],
            targets: [5, 6],
        });
        let at: *mut Arena = &mut *arena;
        let reg = crate::registry::register(at.cast(), size_of::<Arena>(), true).unwrap();
        // SAFETY: the box stays where it is while the guard lives; both pointers are null.
        let guard = unsafe { ShmMut::new(&mut (*at).ptrs) };
        let mut slice = guard.into_slice();
        for (i, mut p) in slice.iter_mut().enumerate() {
            // SAFETY: a field address of the live arena.
            p.set_target(unsafe { &raw const (*at).targets[1 - i] })
                .unwrap();
        }
        // SAFETY: the pointers aim at live `u64`s of the arena.
        let read: Vec<u64> = arena.ptrs.iter().map(|p| unsafe { *p.get() }).collect();
        assert_eq!(read, [6, 5]);
        drop(reg);
    }
}

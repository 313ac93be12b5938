//! Typed roots: `segment.root::<Db>()` finds or builds (with `Default`) the one root a
//! `#[shm_segment]` type declares, after checking that the layout stored in the segment is
//! the layout this program compiled. On a read-only mapping `root` finds and never builds.
//!
//! A root named `N` is two objects of the named index: `__shmkit_schema::N`, the encoded
//! [`Schema`](crate::Schema) (bytes), and `__shmkit_root::N`, the value. Both are made under
//! the index lock ([`atomic_func`](ManagedSegment::atomic_func)), so racing processes agree
//! on one root and one schema; the schema is checked before the value is touched, so a
//! program with another layout gets [`Error::SchemaMismatch`], never a misread value.

use super::managed::{Backing, ManagedSegment};
use super::mode::{ExclusiveAccess, Lends, Mode, ReadOnly, Writable};
use crate::alloc::MemoryAlgorithm;
use crate::error::{Error, Result};
use crate::layout::ShmMut;
use crate::layout::{SchemaDiff, ShmImmutable, ShmRoot};
use crate::objects::{IndexKind, NamedIndex, RootName, Target, RESERVED_PREFIX};

fn root_name<T: ShmRoot>() -> RootName {
    RootName(format!("{RESERVED_PREFIX}root::{}", T::ROOT_NAME))
}

fn schema_name<T: ShmRoot>() -> RootName {
    RootName(format!("{RESERVED_PREFIX}schema::{}", T::ROOT_NAME))
}

fn what<T: ShmRoot>() -> String {
    format!("segment root `{}`", T::ROOT_NAME)
}

impl<B: Backing, M: Mode, I: IndexKind + NamedIndex, A: MemoryAlgorithm>
    ManagedSegment<B, M, I, A>
{
    /// Checks the stored schema of root `T` against `T`'s; false when none is stored.
    fn check_root_schema<T: ShmRoot>(&self) -> Result<bool> {
        // `find_raw`: bytes lend themselves in every mode (no `Lends` bound to carry).
        let Some((p, n)) = self.find_raw::<u8>(Target::Root(&schema_name::<T>().0))? else {
            return Ok(false);
        };
        // SAFETY: `n` live, checked bytes in this mapping, read before `self`'s borrow ends.
        let stored = unsafe { std::slice::from_raw_parts(p.as_ptr(), n) };
        match SchemaDiff::between(stored, T::ROOT_SCHEMA) {
            None => Ok(true),
            Some(diff) => Err(Error::SchemaMismatch {
                what: what::<T>(),
                diff: diff.to_string(),
            }),
        }
    }

    /// The root `T` if the segment has one (any mapping mode, read-only included for a
    /// [`ShmImmutable`] root); a `SchemaMismatch` when the segment holds a root of that name
    /// with another layout.
    pub fn find_root<T: ShmRoot>(&self) -> Result<Option<&T>>
    where
        M: Lends<T>,
    {
        if !self.check_root_schema::<T>()? {
            return Ok(None);
        }
        self.find::<T>(root_name::<T>())
    }
}

impl<B: Backing, M: Writable, I: IndexKind + NamedIndex, A: MemoryAlgorithm>
    ManagedSegment<B, M, I, A>
{
    /// The segment's root `T`, built with `Default` on first use, atomically across threads
    /// and processes (one `Default::default()` runs, everyone gets that root).
    ///
    /// If the segment holds a root named like `T`'s with another layout, the error is
    /// [`Error::SchemaMismatch`], listing the fields added, removed, retyped or moved.
    pub fn root<T: ShmRoot>(&self) -> Result<&T> {
        self.atomic_func(|| {
            if !self.check_root_schema::<T>()? {
                let encoded = T::ROOT_SCHEMA.encode();
                self.construct_from_iter::<u8, _>(schema_name::<T>(), encoded.into_bytes())?;
            }
            self.find_or_construct::<T>(root_name::<T>(), T::default)
        })?
    }

    /// Destroys the root `T` (dropping it in place: what its containers own goes back to
    /// the segment) and its stored schema; false when there is none. Needs what
    /// [`destroy`](Self::destroy) needs. A later [`root`](Self::root) builds it anew.
    pub fn destroy_root<T: ShmRoot>(&mut self) -> Result<bool> {
        if !self.check_root_schema::<T>()? {
            return Ok(false);
        }
        let destroyed = self.destroy::<T>(root_name::<T>())?;
        self.destroy::<u8>(schema_name::<T>())?;
        Ok(destroyed)
    }
}

impl<B: Backing, I: IndexKind + NamedIndex, A: MemoryAlgorithm> ManagedSegment<B, ReadOnly, I, A> {
    /// The segment's root `T`, found, never built: a read-only mapping cannot write it. When
    /// the segment has none the error is [`Error::NotFound`] naming the root; a writable
    /// mapping builds it (or [`find_root`](Self::find_root) says `None` instead).
    pub fn root<T: ShmRoot + ShmImmutable>(&self) -> Result<&T> {
        self.find_root::<T>()?.ok_or_else(|| Error::NotFound {
            what: format!(
                "{} (a read-only mapping finds roots, never builds them: a writable mapping's \
                 `root` builds it; `find_root` gives `None` instead of this error)",
                what::<T>()
            ),
        })
    }
}

impl<B: Backing, M: Mode, I: IndexKind + NamedIndex, A: MemoryAlgorithm>
    ManagedSegment<B, M, I, A>
{
    /// Mutable access to the root (built as [`root`](Self::root) does) through the guard:
    /// `&mut` for plain fields through the derive's accessors, in-place operations for
    /// position-dependent ones. Needs an exclusive or copy-on-write mapping (the bound is
    /// on the method so that the error on a shared one says what to use instead).
    pub fn root_mut<T: ShmRoot>(&mut self) -> Result<ShmMut<'_, T>>
    where
        M: ExclusiveAccess,
    {
        self.root::<T>()?;
        self.find_mut::<T>(root_name::<T>())?
            .ok_or_else(|| Error::NotFound { what: what::<T>() })
    }
}

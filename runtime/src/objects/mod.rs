//! Objects in segments: named, unique and anonymous construction, typed and checked.
//!
//! Every object is one allocation holding a small header (kind, state, name hash, element
//! count, type fingerprint, index links), its name and its elements (see `entry`). Named
//! and unique objects are linked into one of two indexes of the kind the segment was
//! created with ([`HashIndex`], [`OrderedIndex`], [`NullIndex`]); anonymous ones into none.
//! A third index of that kind holds the stored type schemas (`ops::SCHEMAS`), entries of a
//! kind of their own that only the crate reaches.
//! Every entry, of any kind, is also in the registry (`registry`, an offset set reachable
//! from the header): entry headers are plain bytes that user data can imitate, so whatever
//! starts from a pointer (`destroy_ptr`, `instance_*`) or repairs the indexes trusts only
//! entries the registry or an index reaches, never bytes that merely look like one.
//! The element type's fingerprint is checked by every lookup, so finding an object as the
//! wrong type is an error ([`Error::TypeMismatch`]), never undefined behaviour as in Boost.
//!
//! The index operations run under a lock of their own (`lock`), so raw allocation goes on
//! while `atomic_func` holds it; `find` of a named object in a hash index runs without it,
//! and what it could be reading is retired rather than freed (`retired`). The public
//! methods are on [`ManagedSegment`](crate::ManagedSegment) (`segment/objects_api.rs`).

mod entry;
mod index;
mod lock;
pub(crate) mod ops;
mod probing;
mod recover;
pub(crate) mod registry;
mod retired;
pub(crate) mod space;
mod target;
mod types;

pub use entry::{ObjectKind, MAX_NAME_LEN};
pub use index::{HashIndex, IndexKind, NamedIndex, NullIndex, OrderedIndex};
pub use ops::ObjectInfo;
pub use target::{Anonymous, Lookup, ObjectTarget, Unique, RESERVED_PREFIX};

pub(crate) use index::{kind_name as index_kind_name, Root};
pub(crate) use lock::IndexGuard;
pub(crate) use target::{RootName, Target};

use crate::error::{Error, Result};
use crate::manager::SegmentCore;
use space::Space;

/// How the object layer treats a segment being attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opening {
    /// Formatted just now by this mapping.
    Created,
    /// A copy-on-write mapping: a private copy of pages others may have been changing, so
    /// its index lock may name them and its indexes may be torn: freed lock, rebuilt indexes.
    CopyOnWrite,
    /// A private copy nobody else can reach (a heap image, a buffer): a held index lock names
    /// a holder that is gone (freed, indexes rebuilt as after its death); otherwise every
    /// entry is checked, as on a cold open.
    PrivateCopy,
    /// A cold writable open (no trusted mapping attached): every entry is checked.
    Cold,
    /// A warm open, or a read-only one: the header checks already made suffice.
    Trusted,
}

/// Checks a segment being attached: it must have been created with index kind `I`; then
/// what `opening` says (see [`Opening`]). Entry checks are [`check`].
pub(crate) fn attach<I: IndexKind>(
    core: SegmentCore,
    opening: Opening,
    what: &dyn Fn() -> String,
) -> Result<()> {
    let s = Space::new(core);
    let found = s.index_kind();
    if found != u64::from(I::KIND) {
        return Err(Error::IndexMismatch {
            what: what(),
            expected: I::NAME,
            found: index::kind_name(found),
        });
    }
    let adopt = match opening {
        Opening::CopyOnWrite => true,
        Opening::PrivateCopy => lock::held(&s),
        Opening::Created | Opening::Cold | Opening::Trusted => false,
    };
    if adopt {
        lock::force_unlock(&s);
        let _guard = lock::<I>(&s)?;
        recover::rebuild::<I>(&s)?;
        // A private copy: nobody else reads it.
        retired::drain(&s)?;
    } else if matches!(opening, Opening::PrivateCopy | Opening::Cold) {
        let _guard = lock::<I>(&s)?;
        recover::check::<I>(&s)?;
        if opening == Opening::PrivateCopy {
            retired::drain(&s)?;
        }
    }
    Ok(())
}

/// Frees the retired blocks (see `retired`); the caller holds the index lock of a mapping
/// that nobody else can be reading through: no other mapping attached, and `&mut` to this
/// one.
pub(crate) fn drain_retired(s: &Space) -> Result<()> {
    retired::drain(s)
}

/// Checks every object entry of the segment (see [`recover::check`]); the caller holds
/// the index lock or reads a read-only snapshot.
pub(crate) fn check<I: IndexKind>(s: &Space) -> Result<()> {
    recover::check::<I>(s)
}

/// Takes the index lock of `s`, rebuilding the indexes if its last holder died.
pub(crate) fn lock<I: IndexKind>(s: &Space) -> Result<IndexGuard<'_>> {
    lock::lock(s, recover::rebuild::<I>)
}

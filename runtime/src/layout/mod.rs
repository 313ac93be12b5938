//! What may live in a segment, and how a value that lives there may be mutated: the
//! traits ([`ShmSafe`], [`PositionIndependent`], [`NoPadding`], [`ShmRoot`]) with their
//! impls for std types (`traits`), the guard [`ShmMut`] (`guard`), layout descriptions
//! ([`Schema`], `schema`) and the fingerprints computed from them (`fingerprint`), and what
//! a validator reports (`validity`).
//!
//! # Why a guard instead of `&mut T`
//!
//! A segment holds [`OffsetPtr`](crate::OffsetPtr)s: `target − address of the pointer itself`.
//! That is what keeps a whole segment valid wherever it is mapped, but it also means a single
//! pointer is only right *at the address where it was set*. Rust moves are plain byte copies
//! with no hook: given two `&mut OffsetPtr<T>`, safe code could `mem::swap` them, and each would
//! then point `distance between the two pointers` bytes away from its target — a pointer to the
//! wrong data, without a line of `unsafe`.
//!
//! So the model has three parts:
//!
//! - [`ShmSafe`]: the type may live in a segment at all (no references, no process-local
//!   pointers, no std heap types). Its [`relocate`](ShmSafe::relocate) hook lets *library*
//!   code move a value (a `Vec` that reallocates) and then fix its self-relative pointers.
//! - [`PositionIndependent`]: a `ShmSafe` type whose bytes mean the same wherever they are
//!   copied — plain data. Only such types may be handed out as `&mut T` or moved by safe code.
//!   It is an `unsafe` marker trait implemented by the derive, not an auto trait, so no one
//!   gets it by accident.
//! - [`ShmMut<'a, T>`]: the guard for mutable access to a value that lives in a segment, in the
//!   spirit of `Pin<&mut T>` and rkyv's `Seal`. It gives `&T` always, `&mut T` only when
//!   `T: PositionIndependent`, and otherwise in-place operations and field projections that
//!   never move the value.
//!
//! ```
//! use shmkit_runtime::ShmMut;
//! let mut hits = 0u64;
//! let mut guard = ShmMut::from_mut(&mut hits);
//! *guard.as_mut().get_mut() += 1; // plain data: `&mut` is fine
//! assert_eq!(*guard, 1);
//! ```
//!
//! A position-dependent value cannot be reached mutably, so it cannot be swapped or replaced:
//!
//! ```compile_fail,E0277
//! use shmkit_runtime::{OffsetPtr, ShmMut};
//! fn escape(p: ShmMut<'_, OffsetPtr<u8>>) -> &mut OffsetPtr<u8> {
//!     p.get_mut() // error: `OffsetPtr<u8>` is position-dependent
//! }
//! ```
//!
//! ```compile_fail,E0596
//! use shmkit_runtime::{OffsetPtr, ShmMut};
//! fn swap(mut a: ShmMut<'_, OffsetPtr<u8>>, mut b: ShmMut<'_, OffsetPtr<u8>>) {
//!     std::mem::swap(&mut *a, &mut *b); // error: ShmMut is not DerefMut
//! }
//! ```
//!
//! Swapping the *guards* is harmless (it swaps two references, the values stay in place);
//! what a pointer points at is changed in place with
//! [`swap_targets`](ShmMut::swap_targets) or [`set_target`](ShmMut::set_target).

mod fingerprint;
mod guard;
mod schema;
mod traits;
mod validity;

pub use fingerprint::{
    compound_fingerprint, field_fingerprint, leaf_fingerprint, type_fingerprint_of,
};
pub use guard::{ShmDerefMut, ShmMut};
pub use schema::{
    container_schemas, pointee_fingerprint, FieldSchema, Schema, SchemaDiff, SchemaKind,
    StoredField, StoredSchema, StoredVariant, VariantSchema,
};
pub use traits::{
    ForwardsImmutable, NoPadding, PositionIndependent, ShmImmutable, ShmObservable, ShmRoot,
    ShmSafe,
};
pub use validity::{payload_start, variant_field_offset, Invalid};

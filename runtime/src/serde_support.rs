//! serde `Serialize` for what the runtime defines (feature `serde`), and the helpers that
//! `#[derive(ShmSafe)]`'s expansion uses to serialize a derived type (through
//! `__private::serde_impl!`, which keeps the impl only when this feature is on: the feature
//! is the runtime's, the derive expands in the user's crate).
//!
//! Values behind a lock are serialized under it (a poisoned lock still lends its value:
//! what a dead holder left is memory-safe to read); a field whose type has no `Serialize`
//! (an offset pointer's target, a condition variable, a field of a generic parameter's
//! type) is written as `{"opaque": type, "size": bytes}`, never guessed at.

use serde::ser::{Error as _, SerializeStruct, SerializeStructVariant};
use serde::{Serialize, Serializer};

use std::ops::Deref;

use crate::sync::{LockError, LockResult, Mutex, RwLock};

/// Serializes the value a lock call lent: a poisoned lock's too (what a dead holder left
/// is memory-safe to read); a lock that could not be taken is an error.
fn locked<G: Deref<Target: Serialize>, S: Serializer>(
    taken: LockResult<G>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match taken {
        Ok(guard) => (*guard).serialize(s),
        Err(LockError::Poisoned(p)) => (**p.get_ref()).serialize(s),
        Err(LockError::Failed(e)) => Err(S::Error::custom(e)),
    }
}

impl<T: Serialize> Serialize for Mutex<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        locked(self.lock(), s)
    }
}

impl<T: Serialize> Serialize for RwLock<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        locked(self.read(), s)
    }
}

/// What a field without `Serialize` is written as.
struct Opaque {
    ty: &'static str,
    size: usize,
}

impl Serialize for Opaque {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Opaque", 2)?;
        st.serialize_field("opaque", self.ty)?;
        st.serialize_field("size", &self.size)?;
        st.end()
    }
}

/// Where a derived type's fields go: a struct's or an enum variant's serializer.
pub trait Sink {
    /// The serializer's error.
    type Error;
    /// Writes one field.
    fn field<T: ?Sized + Serialize>(
        &mut self,
        name: &'static str,
        v: &T,
    ) -> Result<(), Self::Error>;
}

/// The fields of a struct.
pub struct StructSink<S>(pub S);
/// The fields of an enum variant.
pub struct VariantSink<S>(pub S);

impl<S: SerializeStruct> Sink for StructSink<S> {
    type Error = S::Error;
    fn field<T: ?Sized + Serialize>(&mut self, name: &'static str, v: &T) -> Result<(), S::Error> {
        self.0.serialize_field(name, v)
    }
}

impl<S: SerializeStructVariant> Sink for VariantSink<S> {
    type Error = S::Error;
    fn field<T: ?Sized + Serialize>(&mut self, name: &'static str, v: &T) -> Result<(), S::Error> {
        self.0.serialize_field(name, v)
    }
}

/// A field on its way out: `(&&Field(&x)).__shmkit_field(sink, name)` serializes `x` when
/// its type has `Serialize` ([`ViaSerialize`], found first by auto-ref) and writes it as
/// opaque otherwise ([`ViaOpaque`]).
pub struct Field<'a, T: ?Sized>(pub &'a T);

/// The field's own `Serialize`.
pub trait ViaSerialize {
    /// Writes the field.
    fn __shmkit_field<K: Sink>(&self, sink: &mut K, name: &'static str) -> Result<(), K::Error>;
}

impl<T: ?Sized + Serialize> ViaSerialize for &Field<'_, T> {
    fn __shmkit_field<K: Sink>(&self, sink: &mut K, name: &'static str) -> Result<(), K::Error> {
        sink.field(name, self.0)
    }
}

/// The fallback: type and size.
pub trait ViaOpaque {
    /// Writes the field as opaque.
    fn __shmkit_field<K: Sink>(&self, sink: &mut K, name: &'static str) -> Result<(), K::Error>;
}

impl<T: ?Sized> ViaOpaque for Field<'_, T> {
    fn __shmkit_field<K: Sink>(&self, sink: &mut K, name: &'static str) -> Result<(), K::Error> {
        let opaque = Opaque {
            ty: std::any::type_name::<T>(),
            size: std::mem::size_of_val(self.0),
        };
        sink.field(name, &opaque)
    }
}

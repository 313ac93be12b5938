//! What an object is constructed, found or destroyed as: a name, the unique instance of its
//! type, or an anonymous instance. Like Boost's `unique_instance` / `anonymous_instance`
//! tags, but checked at compile time against the index: a segment with a
//! [`NullIndex`](super::NullIndex) takes only [`Anonymous`].

use super::index::{IndexKind, NamedIndex};

/// The key of an object, resolved against its element type later.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A name given by the user: never one that starts with [`RESERVED_PREFIX`].
    Named(&'a str),
    /// A root's value or stored schema (`segment::root_api`), named with
    /// [`RESERVED_PREFIX`]: only the crate makes one ([`RootName`]).
    Root(&'a str),
    Unique,
    Anonymous,
    /// A stored type schema, keyed by its layout fingerprint in hex (`ops::SCHEMAS`). Made
    /// only inside the crate: no public target or lookup names one.
    Schema(&'a str),
}

/// The start of the names of roots and their stored schemas. Users may not construct,
/// find or destroy objects named so: a forged schema beside a root would make the
/// inspector read a value where the root's type says a lock guards it.
pub const RESERVED_PREFIX: &str = "__shmkit_";

/// The name of a root's value or stored schema, as the root API passes it to the object
/// layer.
pub(crate) struct RootName(pub String);

/// Construct or find the one instance of the element type (Boost's `unique_instance`).
#[derive(Clone, Copy, Debug)]
pub struct Unique;

/// Construct an instance that no name finds (Boost's `anonymous_instance`); it is
/// destroyed through its pointer.
#[derive(Clone, Copy, Debug)]
pub struct Anonymous;

mod sealed {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for &String {}
    impl Sealed for String {}
    impl Sealed for super::RootName {}
    impl Sealed for super::Unique {}
    impl Sealed for super::Anonymous {}
}

/// What an object can be constructed as on a segment with index `I`: a name (`&str`,
/// `String`), [`Unique`] or [`Anonymous`]; names and `Unique` need a [`NamedIndex`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name an object in a segment whose index is `{I}`",
    label = "names and `Unique` need a name index",
    note = "a segment with a NullIndex keeps no names: it holds only `Anonymous` objects; use HashIndex or OrderedIndex for named and unique objects"
)]
pub trait ObjectTarget<I: IndexKind>: sealed::Sealed {
    #[doc(hidden)]
    fn target(&self) -> Target<'_>;
}

/// What an object can be found or destroyed by: a name or [`Unique`].
#[diagnostic::on_unimplemented(
    message = "objects cannot be found by `{Self}` in a segment whose index is `{I}`",
    label = "lookup needs a name index",
    note = "a segment with a NullIndex keeps no names: its `Anonymous` objects are reached through the pointer construction returned; use HashIndex or OrderedIndex to find objects"
)]
pub trait Lookup<I: IndexKind>: ObjectTarget<I> {}

impl<I: NamedIndex> ObjectTarget<I> for &str {
    fn target(&self) -> Target<'_> {
        Target::Named(self)
    }
}
impl<I: NamedIndex> ObjectTarget<I> for &String {
    fn target(&self) -> Target<'_> {
        Target::Named(self)
    }
}
impl<I: NamedIndex> ObjectTarget<I> for String {
    fn target(&self) -> Target<'_> {
        Target::Named(self)
    }
}
impl<I: NamedIndex> ObjectTarget<I> for RootName {
    fn target(&self) -> Target<'_> {
        Target::Root(&self.0)
    }
}
impl<I: NamedIndex> ObjectTarget<I> for Unique {
    fn target(&self) -> Target<'_> {
        Target::Unique
    }
}
impl<I: IndexKind> ObjectTarget<I> for Anonymous {
    fn target(&self) -> Target<'_> {
        Target::Anonymous
    }
}

impl<I: NamedIndex> Lookup<I> for &str {}
impl<I: NamedIndex> Lookup<I> for &String {}
impl<I: NamedIndex> Lookup<I> for String {}
impl<I: NamedIndex> Lookup<I> for RootName {}
impl<I: NamedIndex> Lookup<I> for Unique {}

//! Procedural macros of shmkit: `#[derive(ShmSafe)]` and `#[shm_segment]`.
//!
//! Expansions name the runtime through the facade, `::shmkit`, so they work in crates that
//! depend on `shmkit`. Whatever the input, the macros never panic: every problem is a
//! `syn::Error` at the span it is about.
//!
//! # What `#[derive(ShmSafe)]` checks
//!
//! 1. Syntactically, at each field type's span: no references, raw pointers, `dyn Trait`,
//!    `fn` pointers, `impl Trait`, nor process-local std types (`Box`, `Vec`, `String`, `Rc`,
//!    `Arc`, `HashMap`, `BTreeMap`, `Cell`, `RefCell`, std `Mutex`, …), each with the shmkit
//!    replacement in the message. Bare names (`Vec<u8>`) are taken to be the std ones; a
//!    type spelled with a path outside `std`/`core`/`alloc` is left to check 2.
//! 2. Authoritatively, per field (spanned on the field type): `FieldType: ShmSafe`, whose
//!    `#[diagnostic::on_unimplemented]` makes a foreign type's error read like check 1.
//!
//! Also: a struct needs `#[repr(C)]` (or `transparent`), an enum an explicit integer
//! `repr`; `repr(packed)` is refused; unions and lifetime parameters are refused; a type
//! with a `Drop` impl is refused (a conflicting impl of the helper trait
//! `ShmSafeTypesMustNotImplementDrop`, the trick pin-project uses).
//!
//! # What it generates
//!
//! - `unsafe impl ShmSafe` with a bound `T: ShmSafe` per type parameter, the relocation hook
//!   (each field relocated from its own old address), a compile-time [`Schema`] (field
//!   names, offsets, sizes, alignments, child fingerprints) and the layout fingerprint
//!   hashed from it, which is also the type's `type_fingerprint()`;
//! - `unsafe impl PositionIndependent` when every field is position-independent (a
//!   `where for<'a> Field: PositionIndependent` bound per field, so the impl exists exactly
//!   then);
//! - for structs, field accessors on the guard: a trait `<Type>Fields` (the struct's
//!   visibility, for its non-private fields; private fields go in a module-private
//!   `<Type>PrivateFields`) implemented for `ShmMut<'_, Type>`, with `field_mut(&mut self)
//!   -> ShmMut<'_, FieldType>` (`field0_mut`, … for tuple fields). The guard of a
//!   position-independent type derefs mutably, so plain fields behave as `&mut`
//!   (`*db.hits_mut() += 1`), while a position-dependent field's guard offers only
//!   in-place operations. Import the trait where it is used outside its module.
//!
//! [`Schema`]: https://docs.rs/shmkit/latest/shmkit/schema/struct.Schema.html

mod check;
mod derive;
mod segment;

use proc_macro::TokenStream;

/// Derives `ShmSafe` (and `PositionIndependent` when every field is): see the crate docs.
#[proc_macro_derive(ShmSafe)]
pub fn derive_shm_safe(input: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(input) {
        Ok(input) => derive::expand(&input)
            .unwrap_or_else(syn::Error::into_compile_error)
            .into(),
        Err(e) => e.into_compile_error().into(),
    }
}

/// Declares a segment schema: a root type for `segment.root::<T>()`.
///
/// Does everything `#[derive(ShmSafe)]` does, adds `#[repr(C)]` when no `repr` is given,
/// rewrites raw pointers (`*const T`, `*mut T`) in field types into `OffsetPtr<T>`, refuses
/// std containers whose segment counterpart does not exist yet, and implements `ShmRoot`
/// (the root name is the struct's name, or `#[shm_segment(name = "...")]`). The struct must
/// implement `Default` (derive it): that builds the root on first use.
#[proc_macro_attribute]
pub fn shm_segment(args: TokenStream, item: TokenStream) -> TokenStream {
    segment::expand(args.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

//! Procedural macros of shmkit: `#[derive(ShmSafe)]`, `#[derive(NoPadding)]` and
//! `#[shm_segment]`.
//!
//! Expansions name the runtime through the facade by absolute paths (`::shmkit::…`,
//! `::core::…`), so they work in any module, `#![no_implicit_prelude]` ones included.
//! A crate that renames the dependency or re-exports shmkit says where it is with
//! `#[shm(crate = "path")]` on the type (as with serde's `#[serde(crate = "…")]`):
//!
//! ```ignore
//! extern crate shmkit as my_shm;
//!
//! #[derive(my_shm::ShmSafe)]
//! #[shm(crate = "my_shm")]
//! #[repr(C)]
//! struct Point { x: u32, y: u32 }
//! ```
//!
//! Whatever the input, the macros never panic: every problem is a `syn::Error` at the span
//! it is about. A refused type still gets bare impls of the traits next to its errors, so
//! that its uses do not add errors of their own (the errors fail the build anyway).
//!
//! The code is in two halves, as in serde_derive: `internals` parses and checks the input
//! into a model (`ast`, `attr`, `check`, `segment`, and `std_types`, the one table of std
//! types and their segment replacements), and `expand` generates code from that model only.
//!
//! # What `#[derive(ShmSafe)]` checks
//!
//! 1. Syntactically, at each field type's span: no references, raw pointers, `dyn Trait`,
//!    `fn` pointers, `impl Trait`, nor process-local std types (`Box`, `Vec`, `String`, `Rc`,
//!    `Arc`, `HashMap`, `BTreeMap`, `Cell`, `RefCell`, std `Mutex`, …), each with its shmkit
//!    replacement in the message (and whether that is available yet). Bare names (`Box<u8>`)
//!    are taken to be the std ones, except those shmkit has a type of its own by (`Mutex`,
//!    and the available segment containers: `Vec`), which are taken for shmkit's imported
//!    with `use`; those and a type spelled with a path outside `std`/`core`/`alloc` are left
//!    to check 2 (`std::vec::Vec<u8>` is refused here).
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
//!   (each field relocated from its own old address), a compile-time `Schema` (field
//!   names, offsets, sizes, alignments, child fingerprints, discriminant values, generic
//!   arguments) and the layout fingerprint hashed from it, which is also the type's
//!   `type_fingerprint()`, and the shallower fingerprint a pointer to the type hashes;
//! - `unsafe impl PositionIndependent` when every field is position-independent (a
//!   `where for<'a> Field: PositionIndependent` bound per field, so the impl exists exactly
//!   then);
//! - `unsafe impl ShmImmutable` (no interior mutability: what a read-only mapping lends)
//!   when every field is, in the same way; a field that names the type itself with its own
//!   parameters as a type argument or element (`OffsetPtr<Node>` in `Node`) is assumed
//!   immutable, which breaks the cycle, provided every type around the mention is
//!   `ForwardsImmutable` (asks nothing else of it); a mention anywhere else (an expression,
//!   a macro call, `<Node as Tr>::T`) assumes nothing;
//! - the validator: `ALL_BIT_PATTERNS_VALID` when every field's is (lookups then skip
//!   checks), else `validate` field by field at each field's offset, and for an enum the
//!   tag against the discriminant values (computed by the compiler) and the fields of its
//!   variant at the offsets its `repr` defines; padding is never read;
//! - for structs, field accessors on the guard: a trait `<Type>Fields` (the struct's
//!   visibility, for its non-private fields; private fields go in a module-private
//!   `<Type>PrivateFields`) implemented for every `P: ShmDerefMut<Target = Type>` (a
//!   `ShmMut<'_, Type>`, a lock guard), with `field_mut(&mut self)
//!   -> ShmMut<'_, FieldType>` (`field0_mut`, … for tuple fields). The guard of a
//!   position-independent type derefs mutably, so plain fields behave as `&mut`
//!   (`*db.hits_mut() += 1`), while a position-dependent field's guard offers only
//!   in-place operations. Import the trait where it is used outside its module.
//!
//! # `#[derive(NoPadding)]`
//!
//! Implements the marker trait `NoPadding` (every byte of every value is initialised, so a
//! `&T` may be read as `size_of::<T>()` bytes, as a message queue sends them), next to
//! `ShmSafe`, which it requires (`#[derive(ShmSafe, NoPadding)]`; the trait and the derive
//! share a name, as serde's `Serialize` trait and derive do). A type that is not `ShmSafe`
//! is an error saying to derive it (the impl applies where the supertraits hold, and an
//! assertion asks `ShmSafe`, whose message is the helpful one). It accepts
//!
//! - a non-generic struct (named, tuple or unit) with `#[repr(C)]` or
//!   `#[repr(transparent)]`: every field type must be `NoPadding` (checked per field, the
//!   error at the field type; tuples, `Option`, atomics and `OffsetPtr` are not), and a
//!   `const` assertion checks that the struct's size is the sum of its fields' sizes, so a
//!   struct with padding between or after its fields fails to compile with a message naming
//!   it (fill the gaps with explicit `[u8; N]` fields);
//! - a fieldless enum with an explicit integer `repr` (`#[repr(u8)]`): its bytes are the
//!   tag's.
//!
//! It refuses generic types (at the generics: a padding check per instantiation cannot be
//! written on stable Rust, as an impl has no place to run a `const` assertion for each),
//! enums with fields (a smaller variant leaves bytes uninitialised), unions, a missing
//! `repr` and `repr(packed)` (refused by `ShmSafe` too). `#[shm(crate = "path")]` applies.

mod expand;
mod internals;

use proc_macro::TokenStream;

/// Derives `ShmSafe` (and `PositionIndependent` when every field is): see the crate docs.
#[proc_macro_derive(ShmSafe, attributes(shm))]
pub fn derive_shm_safe(input: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(input) {
        Ok(input) => expand::derive::derive(&input).into(),
        Err(e) => e.into_compile_error().into(),
    }
}

/// Derives `NoPadding` for a struct without padding or a fieldless enum: see the crate
/// docs.
#[proc_macro_derive(NoPadding, attributes(shm))]
pub fn derive_no_padding(input: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(input) {
        Ok(input) => expand::no_padding::derive(&input).into(),
        Err(e) => e.into_compile_error().into(),
    }
}

/// Declares a segment schema: a root type for `segment.root::<T>()`.
///
/// Does everything `#[derive(ShmSafe)]` does, adds `#[repr(C)]` when no `repr` is given,
/// rewrites raw pointers (`*const T`, `*mut T`) in field types into `OffsetPtr<T>` and std
/// containers into their segment counterparts (refusing those not available yet), and
/// implements `ShmRoot` (the root name is the struct's name, or
/// `#[shm_segment(name = "...")]`). The struct must implement `Default` (derive it): that
/// builds the root on first use. `#[shm(crate = "path")]` on the struct applies here too.
#[proc_macro_attribute]
pub fn shm_segment(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::segment::shm_segment(args.into(), item.into()).into()
}

#[cfg(test)]
mod tests {
    //! The macros never panic: odd, broken or hostile input gives a `syn::Error` or code.

    use proc_macro2::TokenStream;

    const INPUTS: &[&str] = &[
        "struct A;",
        "#[repr(C)] struct A;",
        "#[repr(C)] struct A();",
        "#[repr(C)] struct A {}",
        "#[repr(C)] struct A { r#type: u8, r#match: [u8; 0] }",
        "#[repr(C)] struct A<T, const N: usize> where T: Copy, { a: [T; N], }",
        "#[repr(C)] struct A<T = u8>(T, Self, OffsetPtr<Self>);",
        "#[repr(C)] struct A<'a>(&'a u8);",
        "#[repr(C, packed(2))] struct A(u8);",
        "#[repr(packed, C)] struct A(u8);",
        "#[repr(align(8), C)] struct A(u8);",
        "#[repr(align)] struct A(u8);",
        "#[repr(C = 1)] struct A(u8);",
        "#[repr(\"C\")] struct A(u8);",
        "#[repr] struct A(u8);",
        "#[repr(weird)] struct A(u8);",
        "#[repr(u8)] enum E {}",
        "#[repr(u8)] enum E { A = 1, B(u8) = 3, C { x: Self } }",
        "enum E { A }",
        "#[repr(C)] union U { a: u8 }",
        "#[repr(C)] struct A { f: fn(), d: dyn X, i: impl X, n: !, s: [u8], m: m!(), t: _ }",
        "#[repr(C)] struct A { f: <Vec<u8> as X>::Y, g: Option<fn() -> Box<u8>> }",
        "#[repr(C)] struct A { f: std::sync::Mutex<u8>, g: ::std::rc::Rc<u8>, h: Fn(u8) -> u8 }",
        "#[repr(C)] struct A { f: *const *mut u8, g: (*const u8,), h: [*mut Self; 2] }",
        "#[shm(crate = \"my_shm\")] #[repr(C)] struct A(*const u8);",
        "#[shm(crate = 1)] struct A;",
        "#[shm(crate = \"\")] #[shm(crate)] #[shm] #[shm = 1] struct A;",
        "#[shm(crate = \"a\", crate = \"b\")] #[repr(C)] struct A { #[shm] x: u8 }",
        "#[shm(crate = \"a b\")] #[repr(u8)] enum E { #[shm(crate = \"c\")] A }",
        "#[repr(transparent)] struct A(u32, ::core::marker::PhantomData<Self>);",
        "#[repr(C)] struct A where u8: Copy, Self: Sized { a: [Self; 0] }",
        "#[repr(C, u8)] enum E { A, B {}, C() }",
        "#[repr(u8)] enum E { A = 1, B = 3 }",
        "#[repr(C)] union U { a: u8, b: u32 }",
        "#[repr(C)] struct A<'a, T: 'a>(T) where T: Copy;",
    ];

    #[test]
    fn derives_never_panic() {
        for src in INPUTS {
            if let Ok(input) = syn::parse_str::<syn::DeriveInput>(src) {
                let _ = crate::expand::derive::derive(&input);
                let _ = crate::expand::no_padding::derive(&input);
            }
        }
    }

    #[test]
    fn shm_segment_never_panics() {
        let args = [
            "",
            "name = \"db\"",
            "name = \"\"",
            "name = 1",
            "nam = \"x\"",
            "name",
            "(",
            "name = \"a\", name = \"b\"",
        ];
        for src in INPUTS.iter().chain(&[
            "fn f() {}",
            "",
            "struct",
            "#[derive(ShmSafe, Default)] struct A { x: Vec<u8> }",
        ]) {
            for a in args {
                let args: TokenStream = a.parse().unwrap_or_default();
                let item: TokenStream = src.parse().unwrap_or_default();
                let _ = crate::expand::segment::shm_segment(args, item);
            }
        }
    }

    #[test]
    fn rejections_name_the_replacement() {
        let input: syn::DeriveInput = syn::parse_str(
            "#[repr(C)] struct A { v: std::vec::Vec<u8>, p: *const u8, c: std::cell::Cell<u8> }",
        )
        .unwrap();
        let Err(rejected) = crate::internals::ast::Container::from_ast(&input) else {
            panic!("accepted");
        };
        let messages: Vec<String> = rejected.errors.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("segment `Vec`"));
        assert!(messages[1].contains("OffsetPtr"));
        assert!(messages[2].contains("atomics"));
    }

    #[test]
    fn a_crate_path_replaces_shmkit_in_every_expansion() {
        // The derive refuses raw pointers; #[shm_segment] rewrites them into `OffsetPtr`.
        let derive_input: syn::DeriveInput = syn::parse_str(
            "#[shm(crate = \"my_shm\")] #[repr(C)] struct Db { p: my_shm::OffsetPtr<u8>, e: [u8; 2] }",
        )
        .unwrap();
        let item =
            "#[shm(crate = \"my_shm\")] #[derive(Default)] struct Db { p: *const u8, e: [u8; 2] }";
        let expansions = [
            crate::expand::derive::derive(&derive_input),
            crate::expand::segment::shm_segment(TokenStream::new(), item.parse().unwrap()),
        ];
        for out in expansions {
            let text = out.to_string();
            assert!(text.contains("my_shm :: ShmSafe"), "{text}");
            assert!(!text.contains("shmkit ::"), "{text}");
            assert!(!text.contains("compile_error"), "{text}");
        }
        let plain: syn::DeriveInput =
            syn::parse_str("#[shm(crate = \"my_shm\")] #[repr(C)] struct P { e: [u8; 2] }")
                .unwrap();
        let text = crate::expand::no_padding::derive(&plain).to_string();
        assert!(text.contains("my_shm :: NoPadding"), "{text}");
        assert!(!text.contains("shmkit ::"), "{text}");
        assert!(!text.contains("compile_error"), "{text}");
    }

    #[test]
    fn no_padding_refuses_what_may_hold_uninitialised_bytes() {
        let refused = |src: &str| -> Vec<String> {
            let input: syn::DeriveInput = syn::parse_str(src).unwrap();
            match crate::internals::no_padding::NoPaddingInput::from_ast(&input) {
                Ok(_) => panic!("accepted: {src}"),
                Err(r) => r.errors.into_iter().map(|e| e.to_string()).collect(),
            }
        };
        let generic = refused("#[repr(C)] struct A<T, const N: usize>([T; N]);");
        assert_eq!(generic.len(), 1, "{generic:?}");
        assert!(generic[0].contains("generic type"));
        let with_fields = refused("#[repr(u8)] enum E { A, B(u8), C { x: u16 }, D {} }");
        assert_eq!(with_fields.len(), 2, "{with_fields:?}");
        assert!(with_fields.iter().all(|m| m.contains("enum with fields")));
        assert!(refused("#[repr(C)] union U { a: u8 }")[0].contains("union"));
        assert!(refused("struct A(u8);")[0].contains("#[repr(C)]"));
        assert!(refused("#[repr(C)] enum E { A }")[0].contains("#[repr(u8)]"));
        assert!(refused("#[repr(C, packed)] struct A(u8);")[0].contains("packed"));
        for accepted in [
            "#[repr(C)] struct A;",
            "#[repr(C)] struct A { a: u32, b: [u8; 4] }",
            "#[repr(transparent)] struct A(u64);",
            "#[repr(i16)] enum E { A = -1, B, C() }",
        ] {
            let input: syn::DeriveInput = syn::parse_str(accepted).unwrap();
            assert!(
                crate::internals::no_padding::NoPaddingInput::from_ast(&input).is_ok(),
                "{accepted}"
            );
        }
    }
}

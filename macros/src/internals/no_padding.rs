//! `#[derive(NoPadding)]`'s input: a non-generic struct with a defined layout (whose sizes
//! the expansion checks) or a fieldless enum with an integer `repr`; everything else is
//! refused, at the span it is about.

use syn::spanned::Spanned;
use syn::{DeriveInput, Fields, Ident, Type, WhereClause};

use super::ast::{self_type, spell_out_self};
use super::attr::{self, Repr};
use super::{combine, Rejected};

/// A type that derives `NoPadding`, checked.
pub struct NoPaddingInput {
    pub ident: Ident,
    /// A where clause without parameters (`struct A where u8: Copy`), kept on the impl.
    pub where_clause: Option<WhereClause>,
    /// The path of the shmkit crate (`#[shm(crate = "..")]`, default `::shmkit`).
    pub krate: syn::Path,
    pub shape: Shape,
}

pub enum Shape {
    /// A struct, with its field types (`Self` spelled out): each must be `NoPadding`, and
    /// their sizes must add up to the struct's.
    Struct(Vec<Type>),
    /// A fieldless enum with an integer `repr`: its bytes are the tag's, all initialised.
    FieldlessEnum,
}

impl NoPaddingInput {
    /// Parses and validates `input`; on failure, every problem found, each at its span.
    pub fn from_ast(input: &DeriveInput) -> Result<NoPaddingInput, Rejected> {
        let mut errors = Vec::new();
        let repr = Repr::from_attrs(&input.attrs, &mut errors);
        let krate = attr::crate_path(&input.attrs, &mut errors);
        if !input.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(
                &input.generics,
                "NoPadding cannot be derived for a generic type: whether it has padding \
                 depends on its arguments, and on stable Rust an impl for every instantiation \
                 cannot check each one's size at compile time; derive it on a concrete type \
                 instead (a struct with the element types written out)",
            ));
        }
        let shape = match &input.data {
            syn::Data::Struct(s) => {
                if !(repr.c || repr.transparent) {
                    errors.push(syn::Error::new(
                        input.ident.span(),
                        "NoPadding needs a defined layout: add #[repr(C)] (or \
                         #[repr(transparent)]), as ShmSafe does",
                    ));
                }
                let self_ty = self_type(input);
                Shape::Struct(
                    s.fields
                        .iter()
                        .map(|f| spell_out_self(&f.ty, &self_ty, &mut errors))
                        .collect(),
                )
            }
            syn::Data::Enum(e) => {
                if repr.int.is_none() {
                    errors.push(syn::Error::new(
                        input.ident.span(),
                        "NoPadding needs an enum's tag to be an integer of a known size: add \
                         an integer representation such as #[repr(u8)], as ShmSafe does",
                    ));
                }
                for v in &e.variants {
                    if !v.fields.is_empty() {
                        errors.push(variant_with_fields(&v.fields));
                    }
                }
                Shape::FieldlessEnum
            }
            syn::Data::Union(u) => {
                let mut union = syn::Error::new(
                    u.union_token.span(),
                    "a union cannot be NoPadding: the bytes its live field does not cover are \
                     uninitialised; use a #[repr(C)] struct",
                );
                errors.into_iter().for_each(|e| union.combine(e));
                return Err(Rejected {
                    errors: union,
                    krate,
                });
            }
        };
        match combine(errors) {
            Ok(()) => Ok(NoPaddingInput {
                ident: input.ident.clone(),
                where_clause: input.generics.where_clause.clone(),
                krate,
                shape,
            }),
            Err(errors) => Err(Rejected { errors, krate }),
        }
    }
}

/// The error for an enum variant with fields, spanned on them.
fn variant_with_fields(fields: &Fields) -> syn::Error {
    syn::Error::new_spanned(
        fields,
        "an enum with fields cannot be NoPadding: a variant smaller than the largest leaves \
         the bytes past its fields uninitialised, and padding may follow the tag; send a \
         #[repr(C)] struct with a fieldless #[repr(u8)] enum as its tag and the payload as \
         fields instead",
    )
}

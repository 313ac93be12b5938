//! `#[derive(NoPadding)]`'s impl and its compile-time checks, from the checked model.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr};

use super::fallback;
use crate::internals::no_padding::{NoPaddingInput, Shape};

/// The expansion of `#[derive(NoPadding)]`: the impl and its checks, or the errors and the
/// fallback impl.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match NoPaddingInput::from_ast(input) {
        Ok(t) => expand(&t),
        Err(r) => {
            let mut out = r.errors.into_compile_error();
            out.extend(fallback::no_padding(
                &input.ident,
                &input.generics,
                &r.krate,
            ));
            out
        }
    }
}

fn expand(t: &NoPaddingInput) -> TokenStream {
    let krate = &t.krate;
    let name = &t.ident;
    let preds = t.where_clause.as_ref().map(|w| {
        let p = w.predicates.iter();
        quote!(#(#p,)*)
    });
    // A struct's bytes are all initialised when its fields' are and nothing lies between or
    // after them: its size is the sum of theirs. Each field's size is read through a
    // function that asks `NoPadding` of it, called at the field type's span, so that a field
    // that is not NoPadding is an error at that field.
    let sizes_add_up = match &t.shape {
        Shape::Struct(types) => {
            let sizes = types
                .iter()
                .map(|ty| quote_spanned! {ty.span()=> __shmkit_no_padding_size::<#ty>() });
            // No `0 +` in front: the spans are the user's, so lints see the sum.
            let sum = if types.is_empty() {
                quote!(0)
            } else {
                quote!(#(#sizes)+*)
            };
            let message = LitStr::new(
                &format!(
                    "`{name}` has padding: its size is more than the sum of its fields' sizes, \
                     so some of its bytes are uninitialised and it cannot be NoPadding; order \
                     the fields largest first, or fill the gaps with explicit fields such as \
                     `_pad: [u8; 3]`"
                ),
                name.span(),
            );
            quote_spanned! {name.span()=>
                const fn __shmkit_no_padding_size<T: #krate::NoPadding>() -> usize {
                    #krate::__private::size_of::<T>()
                }
                ::core::assert!(
                    #krate::__private::size_of::<#name>() == #sum,
                    #message,
                );
            }
        }
        Shape::FieldlessEnum => TokenStream::new(),
    };
    // The impl applies where the type is `PositionIndependent` (the supertraits), rather
    // than requiring it: a type that does not derive `ShmSafe` would otherwise get the
    // error of `PositionIndependent` ("position-dependent"), which misleads; the assertion
    // below gives `ShmSafe`'s instead ("derive it"). A derived `ShmSafe` type whose fields
    // are all NoPadding is `PositionIndependent`, as NoPadding asks that of each field.
    //
    // The SAFETY comment is for readers of this macro: comments do not reach the expansion,
    // hence the `allow` for the lint that looks for them.
    quote! {
        // SAFETY: a struct whose fields are all NoPadding (every byte initialised, none
        // mutable through `&`) and whose size is the sum of theirs, so no byte lies outside
        // a field (both checked at compile time below); or a fieldless enum with an integer
        // repr, whose bytes are its tag's.
        #[allow(clippy::undocumented_unsafe_blocks)]
        unsafe impl #krate::NoPadding for #name
        where #preds for<'__shmkit> #name: #krate::PositionIndependent
        {}

        const _: () = {
            const fn __shmkit_assert_shm_safe<T: #krate::ShmSafe>() {}
            __shmkit_assert_shm_safe::<#name>();
            #sizes_add_up
        };
    }
}

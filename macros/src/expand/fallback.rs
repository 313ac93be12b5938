//! What a refused input still expands to next to its errors (thiserror's fallback): bare
//! impls of the traits, so that every use of the type does not add an error saying to
//! derive what it already derives. The `compile_error!`s beside them fail the build, so
//! these impls never reach a program.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Generics, Ident, LitStr};

/// `ShmSafe`, `PositionIndependent` and `ShmImmutable` with no checks, no schema and no relocation; only
/// for a sized type (the `for<'_>` bound keeps an unsized one from adding an error).
pub fn shm_safe(ident: &Ident, generics: &Generics, krate: &syn::Path) -> TokenStream {
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let preds = where_clause.map(|w| {
        let p = w.predicates.iter();
        quote!(#(#p,)*)
    });
    let where_sized = quote! {
        where #preds for<'__shmkit> #ident #ty_generics: ::core::marker::Sized
    };
    quote! {
        // SAFETY: never compiled into a program: the errors next to it fail the build.
        unsafe impl #impl_generics #krate::ShmSafe for #ident #ty_generics #where_sized {}
        // SAFETY: as above.
        unsafe impl #impl_generics #krate::PositionIndependent for #ident #ty_generics
            #where_sized {}
        // SAFETY: as above.
        unsafe impl #impl_generics #krate::ShmImmutable for #ident #ty_generics #where_sized {}
    }
}

/// `NoPadding` with no checks, where the type is `PositionIndependent` (and so `ShmSafe`):
/// the `for<'_>` bound keeps a type that is not from adding an error at this impl.
pub fn no_padding(ident: &Ident, generics: &Generics, krate: &syn::Path) -> TokenStream {
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let preds = where_clause.map(|w| {
        let p = w.predicates.iter();
        quote!(#(#p,)*)
    });
    quote! {
        // SAFETY: never compiled into a program: the errors next to it fail the build.
        unsafe impl #impl_generics #krate::NoPadding for #ident #ty_generics
            where #preds for<'__shmkit> #ident #ty_generics: #krate::PositionIndependent {}
    }
}

/// `ShmRoot` with the fallback's empty schema.
pub fn root(ident: &Ident, generics: &Generics, krate: &syn::Path) -> TokenStream {
    let root_name = LitStr::new(&ident.to_string(), ident.span());
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        impl #impl_generics #krate::ShmRoot for #ident #ty_generics #where_clause {
            const ROOT_NAME: &'static str = #root_name;
            const ROOT_SCHEMA: &'static #krate::Schema = &#krate::__private::NO_SCHEMA;
        }
    }
}

//! `#[shm_segment]`'s expansion: the rewritten struct, the derive's impls and `ShmRoot`.

use proc_macro2::TokenStream;
use quote::quote;

use super::{derive, fallback};
use crate::internals::segment::{Segment, SegmentRejected};

/// The expansion of `#[shm_segment]`: the root, or the errors, the item and the fallback
/// impls.
pub fn shm_segment(args: TokenStream, item: TokenStream) -> TokenStream {
    match Segment::from_ast(args, item) {
        Ok(segment) => expand(&segment),
        Err(SegmentRejected {
            rejected,
            item,
            derives_shm_safe,
        }) => {
            let mut out = rejected.errors.into_compile_error();
            if let Some(item) = item {
                let krate = &rejected.krate;
                out.extend(quote!(#item));
                if !derives_shm_safe {
                    out.extend(fallback::shm_safe(&item.ident, &item.generics, krate));
                }
                if matches!(item.data, syn::Data::Struct(_)) {
                    out.extend(fallback::root(&item.ident, &item.generics, krate));
                }
            }
            out
        }
    }
}

fn expand(segment: &Segment) -> TokenStream {
    let c = &segment.container;
    let krate = &c.krate;
    let item = &segment.item;
    let derived = derive::expand(c);
    let name = &c.ident;
    let root_name = &segment.root_name;
    let generics = derive::bounded_generics(&c.generics, krate);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        #item
        #derived
        impl #impl_generics #krate::ShmRoot for #name #ty_generics #where_clause {
            const ROOT_NAME: &'static str = #root_name;
            const ROOT_SCHEMA: &'static #krate::Schema =
                match <Self as #krate::ShmSafe>::SCHEMA {
                    ::core::option::Option::Some(s) => s,
                    ::core::option::Option::None => &#krate::__private::NO_SCHEMA,
                };
        }
    }
}

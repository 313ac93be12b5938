//! `#[shm_segment]`: a root type. Rewrites std types in field position into their segment
//! counterparts, adds `#[repr(C)]`, derives `ShmSafe` and implements `ShmRoot`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, LitStr, Type};

use crate::check::std_type;
use crate::derive;

/// The std containers `#[shm_segment]` rewrites, with their segment counterparts. None of
/// them exists yet (the containers crate is empty), so each is refused with a clear message.
fn counterpart(name: &str) -> Option<&'static str> {
    Some(match name {
        "Vec" => "Vec",
        "String" => "String",
        "HashMap" => "HashMap",
        "BTreeMap" => "Map",
        "LinkedList" => "List",
        "Box" => "Box",
        _ => return None,
    })
}

/// Rewrites `*const T` / `*mut T` into `OffsetPtr<T>` everywhere in `ty`, and refuses the
/// std containers whose counterpart is not available.
fn rewrite(ty: &mut Type, errors: &mut Vec<syn::Error>) {
    match ty {
        Type::Ptr(p) => {
            let mut elem = (*p.elem).clone();
            rewrite(&mut elem, errors);
            let span = p.span();
            match syn::parse2(quote::quote_spanned!(span=> ::shmkit::OffsetPtr<#elem>)) {
                Ok(t) => *ty = t,
                Err(e) => errors.push(e),
            }
        }
        Type::Array(a) => rewrite(&mut a.elem, errors),
        Type::Tuple(t) => t.elems.iter_mut().for_each(|e| rewrite(e, errors)),
        Type::Paren(p) => rewrite(&mut p.elem, errors),
        Type::Group(g) => rewrite(&mut g.elem, errors),
        Type::Path(p) => {
            if let Some((name, _)) = std_type(p) {
                if let Some(c) = counterpart(&name) {
                    errors.push(syn::Error::new_spanned(
                        &*p,
                        format!(
                            "#[shm_segment] rewrites `{name}` into the segment `{c}` \
                             (shmkit containers), which is not available yet; until it is, use \
                             a fixed-size array (`[T; N]`, `[u8; N]` for text) or an \
                             `OffsetPtr<T>` to memory allocated in the segment"
                        ),
                    ));
                    return;
                }
            }
            for seg in &mut p.path.segments {
                if let syn::PathArguments::AngleBracketed(a) = &mut seg.arguments {
                    for arg in &mut a.args {
                        if let syn::GenericArgument::Type(t) = arg {
                            rewrite(t, errors);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

struct Args {
    name: Option<LitStr>,
}

fn parse_args(args: TokenStream) -> syn::Result<Args> {
    let mut out = Args { name: None };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if lit.value().is_empty() {
                return Err(syn::Error::new(lit.span(), "the root name cannot be empty"));
            }
            if lit.value().len() > 200 {
                return Err(syn::Error::new(
                    lit.span(),
                    "the root name is too long (200 bytes at most)",
                ));
            }
            out.name = Some(lit);
            Ok(())
        } else {
            Err(meta.error("unknown #[shm_segment] argument; expected `name = \"...\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    Ok(out)
}

/// The whole expansion of `#[shm_segment]`.
pub fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_args(args)?;
    let mut input: DeriveInput = syn::parse2(item)?;
    let mut errors = Vec::new();

    let Data::Struct(s) = &mut input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[shm_segment] declares a segment root and goes on a struct; derive ShmSafe for \
             enums used inside it",
        ));
    };
    for field in s.fields.iter_mut() {
        rewrite(&mut field.ty, &mut errors);
    }
    // A derive(ShmSafe) next to #[shm_segment] would implement the traits twice.
    for attr in &input.attrs {
        if attr.path().is_ident("derive") {
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("ShmSafe")
                    || meta
                        .path
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == "ShmSafe")
                {
                    errors.push(syn::Error::new(
                        meta.path.span(),
                        "#[shm_segment] derives ShmSafe itself: remove ShmSafe from #[derive]",
                    ));
                }
                Ok(())
            });
        }
    }
    if !input.attrs.iter().any(|a| a.path().is_ident("repr")) {
        input.attrs.push(syn::parse_quote!(#[repr(C)]));
    }
    crate::check::combine(errors)?;

    let derived = derive::expand(&input)?;
    let name = &input.ident;
    let root_name = args
        .name
        .unwrap_or_else(|| LitStr::new(&name.to_string(), name.span()));
    let mut generics = input.generics.clone();
    for param in &mut generics.params {
        if let syn::GenericParam::Type(t) = param {
            t.bounds.push(syn::parse_quote!(::shmkit::ShmSafe));
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    Ok(quote! {
        #input
        #derived
        impl #impl_generics ::shmkit::ShmRoot for #name #ty_generics #where_clause {
            const ROOT_NAME: &'static str = #root_name;
            const ROOT_SCHEMA: &'static ::shmkit::Schema =
                match <Self as ::shmkit::ShmSafe>::SCHEMA {
                    ::core::option::Option::Some(s) => s,
                    ::core::option::Option::None => &::shmkit::__private::NO_SCHEMA,
                };
        }
    })
}

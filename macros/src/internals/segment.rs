//! `#[shm_segment]`'s input: the arguments, the rewriting of field types into their segment
//! counterparts, and the checks on top of the derive's.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, LitStr, Type, TypePath};

use super::ast::Container;
use super::attr::{self, SegmentArgs};
use super::std_types::{self, Replacement, StdType};
use super::{combine, Rejected};

/// A checked segment root.
pub struct Segment {
    /// The struct as emitted: field types rewritten, `#[repr(C)]` added, `#[shm]` removed
    /// (no derive declares it here).
    pub item: DeriveInput,
    pub container: Container,
    pub root_name: LitStr,
}

/// A refused `#[shm_segment]`, with what is still emitted next to the errors so that the
/// uses of the type do not add errors of their own.
pub struct SegmentRejected {
    pub rejected: Rejected,
    /// The item, if it parsed at all.
    pub item: Option<Box<DeriveInput>>,
    /// Whether the item also derives `ShmSafe` (which then implements it, not the fallback).
    pub derives_shm_safe: bool,
}

impl Segment {
    pub fn from_ast(args: TokenStream, item: TokenStream) -> Result<Segment, SegmentRejected> {
        let mut errors = Vec::new();
        let args = SegmentArgs::parse(args).unwrap_or_else(|e| {
            errors.push(e);
            SegmentArgs { name: None }
        });
        let mut input: DeriveInput = syn::parse2(item).map_err(|e| SegmentRejected {
            rejected: Rejected {
                errors: e,
                krate: syn::parse_quote!(::shmkit),
            },
            item: None,
            derives_shm_safe: false,
        })?;
        let krate = attr::crate_path(&input.attrs, &mut errors);
        match &mut input.data {
            Data::Struct(s) => s
                .fields
                .iter_mut()
                .for_each(|f| rewrite(&mut f.ty, &krate, &mut errors)),
            _ => errors.push(syn::Error::new(
                input.ident.span(),
                "#[shm_segment] declares a segment root and goes on a struct; derive ShmSafe \
                 for enums used inside it",
            )),
        }
        let derives_shm_safe = derives_shm_safe(&input, &mut errors);
        if !input.attrs.iter().any(|a| a.path().is_ident("repr")) {
            input.attrs.push(syn::parse_quote!(#[repr(C)]));
        }
        let parsed =
            combine(errors).and_then(|()| Container::from_ast(&input).map_err(|r| r.errors));
        match parsed {
            Ok(container) => {
                input.attrs.retain(|a| !attr::is_shm(a));
                let root_name = args
                    .name
                    .unwrap_or_else(|| LitStr::new(&input.ident.to_string(), input.ident.span()));
                Ok(Segment {
                    item: input,
                    container,
                    root_name,
                })
            }
            Err(errors) => {
                if !derives_shm_safe {
                    input.attrs.retain(|a| !attr::is_shm(a));
                }
                Err(SegmentRejected {
                    rejected: Rejected { errors, krate },
                    item: Some(Box::new(input)),
                    derives_shm_safe,
                })
            }
        }
    }
}

/// Whether the item also says `#[derive(ShmSafe)]`, which is an error: the traits would be
/// implemented twice.
fn derives_shm_safe(input: &DeriveInput, errors: &mut Vec<syn::Error>) -> bool {
    let mut found = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "ShmSafe")
            {
                found = true;
                errors.push(syn::Error::new(
                    meta.path.span(),
                    "#[shm_segment] derives ShmSafe itself: remove ShmSafe from #[derive]",
                ));
            }
            Ok(())
        });
    }
    found
}

/// Rewrites `*const T` / `*mut T` into `OffsetPtr<T>` and the std types with an available
/// segment counterpart into it, everywhere in `ty`; refuses those whose counterpart is not
/// available yet.
fn rewrite(ty: &mut Type, krate: &syn::Path, errors: &mut Vec<syn::Error>) {
    match ty {
        Type::Ptr(p) => {
            let mut elem = (*p.elem).clone();
            rewrite(&mut elem, krate, errors);
            let span = p.span();
            match syn::parse2(quote_spanned!(span=> #krate::OffsetPtr<#elem>)) {
                Ok(t) => *ty = t,
                Err(e) => errors.push(e),
            }
        }
        Type::Array(a) => rewrite(&mut a.elem, krate, errors),
        Type::Tuple(t) => t.elems.iter_mut().for_each(|e| rewrite(e, krate, errors)),
        Type::Paren(p) => rewrite(&mut p.elem, krate, errors),
        Type::Group(g) => rewrite(&mut g.elem, krate, errors),
        Type::Path(p) => {
            if let Some(std) = std_types::lookup(p) {
                if let Err(e) = counterpart(p, std, krate) {
                    errors.push(e);
                    return;
                }
            }
            for seg in &mut p.path.segments {
                if let syn::PathArguments::AngleBracketed(a) = &mut seg.arguments {
                    for arg in &mut a.args {
                        if let syn::GenericArgument::Type(t) = arg {
                            rewrite(t, krate, errors);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// Rewrites a std type into its segment container, if it has one.
fn counterpart(p: &mut TypePath, std: &StdType, krate: &syn::Path) -> syn::Result<()> {
    let Replacement::Container { name, .. } = std.replacement else {
        // The derive refuses it, with the advice.
        return Ok(());
    };
    let args = p
        .path
        .segments
        .last()
        .map(|s| s.arguments.clone())
        .unwrap_or(syn::PathArguments::None);
    let ident = syn::Ident::new(name, p.span());
    p.path = syn::parse_quote!(#krate::containers::#ident);
    if let Some(last) = p.path.segments.last_mut() {
        last.arguments = args;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_available_counterpart_is_rewritten_with_its_arguments() {
        let std = StdType {
            name: "Vec",
            replacement: Replacement::Container {
                name: "Vec",
                otherwise: "an array",
            },
        };
        let mut p: TypePath = syn::parse_quote!(std::vec::Vec<u8>);
        counterpart(&mut p, &std, &syn::parse_quote!(my_shm)).unwrap();
        assert_eq!(
            quote::quote!(#p).to_string(),
            quote::quote!(my_shm::containers::Vec<u8>).to_string()
        );
    }
}

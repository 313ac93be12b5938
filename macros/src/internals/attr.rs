//! The attributes the macros read: `#[repr(..)]`, `#[shm(..)]` and `#[shm_segment(..)]`'s
//! arguments.

use proc_macro2::TokenStream;
use syn::{Attribute, Ident, LitStr};

/// The layout a `repr` attribute asks for.
#[derive(Default)]
pub struct Repr {
    pub c: bool,
    pub transparent: bool,
    pub int: Option<Ident>,
}

const INTS: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
];

impl Repr {
    /// Reads every `#[repr(..)]`; refuses `packed` (and what is not a repr).
    pub fn from_attrs(attrs: &[Attribute], errors: &mut Vec<syn::Error>) -> Repr {
        let mut repr = Repr::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("repr")) {
            let res = attr.parse_nested_meta(|meta| {
                let Some(ident) = meta.path.get_ident() else {
                    return Err(meta.error("unknown repr"));
                };
                match ident.to_string().as_str() {
                    "C" => repr.c = true,
                    "transparent" => repr.transparent = true,
                    "packed" => {
                        // `packed` or `packed(N)`.
                        if meta.input.peek(syn::token::Paren) {
                            let content;
                            syn::parenthesized!(content in meta.input);
                            let _: TokenStream = content.parse()?;
                        }
                        return Err(syn::Error::new(
                            ident.span(),
                            "repr(packed) is not allowed for shared-memory types: its fields may \
                             be misaligned, and the references the guard and its accessors hand \
                             out (and atomics and locks) must be aligned; remove it, and order \
                             the fields largest first to avoid padding",
                        ));
                    }
                    "align" => {
                        let content;
                        syn::parenthesized!(content in meta.input);
                        let _: TokenStream = content.parse()?;
                    }
                    n if INTS.contains(&n) => repr.int = Some(ident.clone()),
                    _ => return Err(meta.error("unknown repr")),
                }
                Ok(())
            });
            if let Err(e) = res {
                errors.push(e);
            }
        }
        repr
    }
}

/// The path expansions name the runtime by: `::shmkit` unless `#[shm(crate = "..")]` says
/// otherwise (a renamed dependency, or a crate that re-exports shmkit).
pub fn crate_path(attrs: &[Attribute], errors: &mut Vec<syn::Error>) -> syn::Path {
    let mut path: Option<syn::Path> = None;
    for attr in attrs.iter().filter(|a| is_shm(a)) {
        let res = attr.parse_nested_meta(|meta| {
            if !meta.path.is_ident("crate") {
                return Err(meta.error("unknown #[shm] option; expected `crate = \"path\"`"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            if path.is_some() {
                return Err(syn::Error::new(lit.span(), "#[shm(crate)] is given twice"));
            }
            let parsed = lit.parse::<syn::Path>().map_err(|_| {
                syn::Error::new(
                    lit.span(),
                    format!(
                        "`{}` is not a path; expected the path of the shmkit crate, such as \
                         `shmkit` or `my_crate::shmkit`",
                        lit.value()
                    ),
                )
            })?;
            path = Some(parsed);
            Ok(())
        });
        if let Err(e) = res {
            errors.push(e);
        }
    }
    path.unwrap_or_else(|| syn::parse_quote!(::shmkit))
}

/// Whether an attribute is `#[shm(..)]`.
pub fn is_shm(attr: &Attribute) -> bool {
    attr.path().is_ident("shm")
}

/// `#[shm_segment(name = "..")]`'s arguments.
pub struct SegmentArgs {
    /// The root's name in the segment, if not the struct's.
    pub name: Option<LitStr>,
}

impl SegmentArgs {
    pub fn parse(args: TokenStream) -> syn::Result<SegmentArgs> {
        let mut out = SegmentArgs { name: None };
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
}

//! Code generation: from the checked model of `crate::internals` to the impls, or from a
//! rejection to its errors and the fallback impls.

pub mod derive;
mod fallback;
pub mod no_padding;
pub mod segment;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{GenericArgument, PathArguments, Type};

/// The crate path with every token at `span`: inside `quote_spanned!`, so that a diagnostic
/// about a bound points at the field type as a whole, crate path included.
fn krate_at(krate: &syn::Path, span: Span) -> TokenStream {
    krate
        .to_token_stream()
        .into_iter()
        .map(|mut tt| {
            tt.set_span(span);
            tt
        })
        .collect()
}

/// A type as a short readable string for schema descriptions: `Vec<u8>`, not `Vec < u8 >`,
/// and `OffsetPtr<u8>`, not `::shmkit::OffsetPtr<u8>` (whatever the crate path).
fn type_string(ty: &Type, krate: &syn::Path) -> String {
    let prefix = format!("{}::", compact(&quote::quote!(#krate).to_string()));
    let full = compact(&quote::quote!(#ty).to_string());
    // Remove the crate path where it starts a path: not inside another identifier.
    let mut out = String::with_capacity(full.len());
    let mut rest = full.as_str();
    while let Some(i) = rest.find(&prefix) {
        let glued = rest[..i]
            .chars()
            .next_back()
            .or(out.chars().next_back())
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        out.push_str(&rest[..i]);
        if glued {
            out.push_str(&prefix);
        }
        rest = &rest[i + prefix.len()..];
    }
    out.push_str(rest);
    out
}

/// The parameters of the `PhantomData`s written in a field type (in type arguments, array and
/// tuple elements), each without module paths (`PhantomData<super::Raw>` gives `Raw`, as a
/// schema names types by identifier): a `PhantomData` has no bytes, so only they tell
/// typestates such as `Token { state: PhantomData<Raw> }` and `<Validated>` apart.
fn phantom_params(ty: &Type) -> Vec<String> {
    fn collect(ty: &Type, out: &mut Vec<String>) {
        match ty {
            Type::Path(p) if p.qself.is_none() => {
                let last = p.path.segments.len() - 1;
                for (i, seg) in p.path.segments.iter().enumerate() {
                    let PathArguments::AngleBracketed(a) = &seg.arguments else {
                        continue;
                    };
                    for arg in &a.args {
                        if let GenericArgument::Type(t) = arg {
                            if i == last && seg.ident == "PhantomData" {
                                let mut t = t.clone();
                                strip_paths(&mut t);
                                out.push(compact(&t.to_token_stream().to_string()));
                            } else {
                                collect(t, out);
                            }
                        }
                    }
                }
            }
            Type::Array(a) => collect(&a.elem, out),
            Type::Paren(p) => collect(&p.elem, out),
            Type::Group(g) => collect(&g.elem, out),
            Type::Tuple(t) => t.elems.iter().for_each(|e| collect(e, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    collect(ty, &mut out);
    out
}

/// Keeps only the last segment of each (unqualified) path in `ty`.
fn strip_paths(ty: &mut Type) {
    match ty {
        Type::Path(p) => {
            if p.qself.is_none() {
                let last = p.path.segments.pop().map(|s| s.into_value());
                p.path.segments = last.into_iter().collect();
                p.path.leading_colon = None;
            }
            for seg in &mut p.path.segments {
                if let PathArguments::AngleBracketed(a) = &mut seg.arguments {
                    for arg in &mut a.args {
                        if let GenericArgument::Type(t) = arg {
                            strip_paths(t);
                        }
                    }
                }
            }
        }
        Type::Array(a) => strip_paths(&mut a.elem),
        Type::Slice(s) => strip_paths(&mut s.elem),
        Type::Paren(p) => strip_paths(&mut p.elem),
        Type::Group(g) => strip_paths(&mut g.elem),
        Type::Reference(r) => strip_paths(&mut r.elem),
        Type::Ptr(p) => strip_paths(&mut p.elem),
        Type::Tuple(t) => t.elems.iter_mut().for_each(strip_paths),
        _ => {}
    }
}

/// Token text without the spaces `to_string` puts between tokens where Rust writes none.
fn compact(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = if i > 0 { chars[i - 1] } else { ' ' };
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let glue_after = matches!(prev, '<' | '(' | '[' | '&' | ':' | '*');
            let glue_before = matches!(next, '<' | '>' | ')' | ']' | ',' | ';' | ':');
            if glue_after || glue_before {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{phantom_params, type_string};

    #[test]
    fn type_strings_drop_the_crate_path_only_where_it_starts_a_path() {
        let s = |ty: &str, krate: &str| {
            type_string(
                &syn::parse_str(ty).unwrap(),
                &syn::parse_str(krate).unwrap(),
            )
        };
        assert_eq!(s("::shmkit::OffsetPtr<u64>", "::shmkit"), "OffsetPtr<u64>");
        assert_eq!(
            s("[my_shm::OffsetPtr<u8>; 2]", "my_shm"),
            "[OffsetPtr<u8>; 2]"
        );
        assert_eq!(s("not_my_shm::X", "my_shm"), "not_my_shm::X");
        assert_eq!(
            s("(Vec < u8 >, & 'static str)", "::shmkit"),
            "(Vec<u8>, &'static str)"
        );
    }

    #[test]
    fn phantom_parameters_are_read_without_module_paths() {
        let p = |ty: &str| phantom_params(&syn::parse_str(ty).unwrap());
        assert_eq!(
            p("::core::marker::PhantomData<super::Raw<crate::a::B, [c::D; 2]>>"),
            ["Raw<B, [D; 2]>"]
        );
        assert_eq!(
            p("([PhantomData<A>; 2], Wrap<PhantomData<fn() -> B>>)"),
            ["A", "fn () -> B"]
        );
        assert!(p("Wrapping<u8>").is_empty());
    }
}

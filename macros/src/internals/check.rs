//! The syntactic rejections: layouts, generics and field types that cannot live in shared
//! memory (check 1 of the crate docs), each at the span it is about.

use syn::spanned::Spanned;
use syn::{Attribute, GenericArgument, GenericParam, PathArguments, ReturnType, Type};

use super::ast::{Container, Data};
use super::attr::is_shm;
use super::std_types;

/// The checks on a parsed item: no lifetime parameters, a defined layout, field types that
/// can live in a segment.
pub fn container(c: &Container, errors: &mut Vec<syn::Error>) {
    for param in &c.generics.params {
        if let GenericParam::Lifetime(l) = param {
            errors.push(syn::Error::new(
                l.span(),
                "a shared-memory type cannot have lifetime parameters: it cannot borrow \
                 anything outside the segment",
            ));
        }
    }
    match &c.data {
        Data::Struct(..) if !(c.repr.c || c.repr.transparent) => errors.push(syn::Error::new(
            c.ident.span(),
            "a shared-memory struct needs a defined layout: add #[repr(C)] \
             (#[shm_segment] adds it for you)",
        )),
        Data::Enum(_) if c.repr.int.is_none() => errors.push(syn::Error::new(
            c.ident.span(),
            "a shared-memory enum needs an explicit integer representation, such as \
             #[repr(u8)] or #[repr(u32)]: the discriminant's size must not depend on \
             the compiler",
        )),
        _ => {}
    }
    for ty in c.field_types() {
        field_type(ty, errors);
    }
}

/// Unions are refused.
pub fn union(u: &syn::DataUnion) -> syn::Error {
    syn::Error::new(
        u.union_token.span(),
        "unions cannot derive ShmSafe: which field is live is unknown, so the union can \
         neither be checked nor relocated; use an enum with #[repr(u8)]",
    )
}

/// `#[shm(..)]` goes on the type only.
pub fn field_attrs(attrs: &[Attribute], errors: &mut Vec<syn::Error>) {
    for attr in attrs.iter().filter(|a| is_shm(a)) {
        errors.push(syn::Error::new_spanned(
            attr,
            "#[shm(..)] goes on the type (`#[shm(crate = \"..\")]`), not on a field or variant",
        ));
    }
}

/// Check 1 on one field type: every construct that cannot live in a segment, with the
/// replacement to use, spanned on the construct.
pub fn field_type(ty: &Type, errors: &mut Vec<syn::Error>) {
    // `new_spanned` spans the whole construct (first to last token), also on stable.
    fn err(tokens: &dyn quote::ToTokens, msg: String) -> syn::Error {
        syn::Error::new_spanned(tokens, msg)
    }
    match ty {
        Type::Reference(r) => errors.push(err(
            r,
            "references cannot live in shared memory: another process maps the segment at \
             another address, and the referent may not be in it at all; use `shmkit::OffsetPtr<T>` \
             (a self-relative pointer into the same segment)"
                .into(),
        )),
        Type::Ptr(p) => errors.push(err(
            p,
            "raw pointers cannot live in shared memory: an address is only meaningful in the \
             process that took it; use `shmkit::OffsetPtr<T>` (#[shm_segment] rewrites `*const T` \
             and `*mut T` into it)"
                .into(),
        )),
        Type::TraitObject(t) => errors.push(err(
            t,
            "trait objects (`dyn Trait`) cannot live in shared memory: their vtable pointer is \
             only valid in this process; use an enum with #[repr(u8)] over the concrete types"
                .into(),
        )),
        Type::BareFn(f) => errors.push(err(
            f,
            "function pointers cannot live in shared memory: code addresses differ between \
             processes; store an enum or an integer id and dispatch on it"
                .into(),
        )),
        Type::ImplTrait(t) => errors.push(err(
            t,
            "`impl Trait` cannot be a field type: a shared-memory type needs one concrete, \
             fixed layout"
                .into(),
        )),
        Type::Never(n) => errors.push(err(
            n,
            "`!` cannot be a field type of a shared-memory type".into(),
        )),
        Type::Infer(i) => errors.push(err(i, "`_` is not a field type".into())),
        Type::Macro(m) => errors.push(err(
            m,
            "a type macro cannot be checked here: write the type out".into(),
        )),
        Type::Slice(s) => errors.push(err(
            s,
            "a slice `[T]` has no fixed size: use a fixed-size array `[T; N]` or the segment `Vec`"
                .into(),
        )),
        Type::Array(a) => field_type(&a.elem, errors),
        Type::Tuple(t) => t.elems.iter().for_each(|e| field_type(e, errors)),
        Type::Paren(p) => field_type(&p.elem, errors),
        Type::Group(g) => field_type(&g.elem, errors),
        Type::Path(p) => {
            if let Some(std) = std_types::refused(p) {
                errors.push(err(
                    p,
                    format!(
                        "`{}` cannot live in shared memory: it points into (or is tied to) \
                         this process only; use {}",
                        std.name,
                        std.advice()
                    ),
                ));
                return;
            }
            if let Some(q) = &p.qself {
                field_type(&q.ty, errors);
            }
            for seg in &p.path.segments {
                match &seg.arguments {
                    PathArguments::AngleBracketed(a) => {
                        for arg in &a.args {
                            if let GenericArgument::Type(t) = arg {
                                field_type(t, errors);
                            }
                        }
                    }
                    PathArguments::Parenthesized(a) => {
                        a.inputs.iter().for_each(|t| field_type(t, errors));
                        if let ReturnType::Type(_, t) = &a.output {
                            field_type(t, errors);
                        }
                    }
                    PathArguments::None => {}
                }
            }
        }
        _ => errors.push(err(
            ty,
            "this kind of type cannot be checked for shared memory".into(),
        )),
    }
}

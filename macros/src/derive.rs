//! `#[derive(ShmSafe)]`: the checks and the generated impls (see the crate docs).

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Fields, GenericParam, Generics, Ident, Index, LitStr, Type, Visibility,
};

use crate::check::{check_type, combine, type_string};

/// The layout a `repr` attribute asks for.
struct Repr {
    c: bool,
    transparent: bool,
    int: Option<Ident>,
}

const INTS: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
];

fn parse_repr(input: &DeriveInput, errors: &mut Vec<syn::Error>) -> Repr {
    let mut repr = Repr {
        c: false,
        transparent: false,
        int: None,
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let res = attr.parse_nested_meta(|meta| {
            let Some(ident) = meta.path.get_ident() else {
                return Err(meta.error("unknown repr"));
            };
            let name = ident.to_string();
            match name.as_str() {
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
                        "repr(packed) is not allowed for shared-memory types: its fields may be \
                         misaligned, and the references the guard and its accessors hand out (and \
                         atomics and locks) must be aligned; remove it, and order the fields \
                         largest first to avoid padding",
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

/// One field: how to name it in code, in the schema and in accessors.
struct Field<'a> {
    member: TokenStream,
    schema_name: String,
    accessor: Ident,
    ty: &'a Type,
    vis: &'a Visibility,
}

fn fields_of(fields: &Fields) -> Vec<Field<'_>> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| match &f.ident {
            Some(id) => {
                let raw = id.to_string();
                let name = raw.trim_start_matches("r#").to_string();
                Field {
                    member: quote!(#id),
                    accessor: format_ident!("{}_mut", name),
                    schema_name: name,
                    ty: &f.ty,
                    vis: &f.vis,
                }
            }
            None => {
                let idx = Index::from(i);
                Field {
                    member: quote!(#idx),
                    accessor: format_ident!("field{}_mut", i),
                    schema_name: i.to_string(),
                    ty: &f.ty,
                    vis: &f.vis,
                }
            }
        })
        .collect()
}

/// Adds `T: ShmSafe` to every type parameter; refuses lifetime parameters.
fn bounded_generics(generics: &Generics, errors: &mut Vec<syn::Error>) -> Generics {
    let mut g = generics.clone();
    for param in &mut g.params {
        match param {
            GenericParam::Type(t) => t.bounds.push(syn::parse_quote!(::shmkit::ShmSafe)),
            GenericParam::Lifetime(l) => errors.push(syn::Error::new(
                l.span(),
                "a shared-memory type cannot have lifetime parameters: it cannot borrow \
                 anything outside the segment",
            )),
            GenericParam::Const(_) => {}
        }
    }
    g
}

fn field_schema(f: &Field<'_>, offset: TokenStream) -> TokenStream {
    let ty = f.ty;
    let name = LitStr::new(&f.schema_name, Span::call_site());
    let ty_str = LitStr::new(&type_string(ty), Span::call_site());
    quote_spanned! {ty.span()=>
        ::shmkit::FieldSchema {
            name: #name,
            ty: #ty_str,
            offset: #offset,
            size: ::shmkit::__private::size_of::<#ty>(),
            align: ::shmkit::__private::align_of::<#ty>(),
            fingerprint: <#ty as ::shmkit::ShmSafe>::LAYOUT_FINGERPRINT,
        }
    }
}

/// Replaces `Self` in a field type by the type itself, so that the type means the same in
/// the generated free functions and accessor traits (where `Self` is something else).
fn replace_self(tokens: TokenStream, with: &TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .flat_map(|tt| match tt {
            TokenTree::Ident(ref id) if id == "Self" => with.clone(),
            TokenTree::Group(g) => {
                let mut new = Group::new(g.delimiter(), replace_self(g.stream(), with));
                new.set_span(g.span());
                TokenStream::from(TokenTree::Group(new))
            }
            other => TokenStream::from(other),
        })
        .collect()
}

/// The input with `Self` in field types spelled out (see [`replace_self`]).
fn without_self(input: &DeriveInput) -> syn::Result<DeriveInput> {
    let mut input = input.clone();
    let name = &input.ident;
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let with = quote!(#name #ty_generics);
    let fields: Vec<&mut syn::Field> = match &mut input.data {
        Data::Struct(s) => s.fields.iter_mut().collect(),
        Data::Enum(e) => e
            .variants
            .iter_mut()
            .flat_map(|v| v.fields.iter_mut())
            .collect(),
        Data::Union(_) => Vec::new(),
    };
    for field in fields {
        let tokens = field.ty.to_token_stream();
        if tokens.clone().into_iter().any(|t| mentions_self(&t)) {
            field.ty = syn::parse2(replace_self(tokens, &with))?;
        }
    }
    Ok(input)
}

fn mentions_self(tt: &TokenTree) -> bool {
    match tt {
        TokenTree::Ident(id) => id == "Self",
        TokenTree::Group(g) => g.stream().into_iter().any(|t| mentions_self(&t)),
        _ => false,
    }
}

/// The whole expansion of `#[derive(ShmSafe)]`.
pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let input = &without_self(input)?;
    let mut errors = Vec::new();
    let repr = parse_repr(input, &mut errors);
    let generics = bounded_generics(&input.generics, &mut errors);
    let name = &input.ident;
    let name_str = LitStr::new(&name.to_string(), name.span());

    // Every field type, in declaration order (all variants for enums).
    let mut all_types: Vec<&Type> = Vec::new();
    match &input.data {
        Data::Struct(s) => {
            if !(repr.c || repr.transparent) {
                errors.push(syn::Error::new(
                    name.span(),
                    "a shared-memory struct needs a defined layout: add #[repr(C)] \
                     (#[shm_segment] adds it for you)",
                ));
            }
            all_types.extend(s.fields.iter().map(|f| &f.ty));
        }
        Data::Enum(e) => {
            if repr.int.is_none() {
                errors.push(syn::Error::new(
                    name.span(),
                    "a shared-memory enum needs an explicit integer representation, such as \
                     #[repr(u8)] or #[repr(u32)]: the discriminant's size must not depend on \
                     the compiler",
                ));
            }
            for v in &e.variants {
                all_types.extend(v.fields.iter().map(|f| &f.ty));
            }
        }
        Data::Union(u) => errors.push(syn::Error::new(
            u.union_token.span(),
            "unions cannot derive ShmSafe: which field is live is unknown, so the union can \
             neither be checked nor relocated; use an enum with #[repr(u8)]",
        )),
    }
    for ty in &all_types {
        check_type(ty, &mut errors);
    }
    combine(errors)?;

    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let existing_preds = where_clause.map(|w| {
        let p = w.predicates.iter();
        quote!(#(#p,)*)
    });

    // Check 2: each field type is ShmSafe, spanned on the field type.
    let assertions = all_types.iter().map(|ty| {
        quote_spanned! {ty.span()=> __shmkit_assert_shm_safe::<#ty>(); }
    });
    let field_check = quote! {
        #[allow(dead_code, clippy::extra_unused_type_parameters)]
        fn __shmkit_check_fields #impl_generics () #where_clause {
            fn __shmkit_assert_shm_safe<T: ::shmkit::ShmSafe>() {}
            #(#assertions)*
        }
    };

    // No Drop impl: a Drop type would conflict with the blanket impl.
    let drop_check = quote! {
        trait ShmSafeTypesMustNotImplementDrop {}
        #[allow(drop_bounds)]
        impl<T: ::core::ops::Drop> ShmSafeTypesMustNotImplementDrop for T {}
        impl #impl_generics ShmSafeTypesMustNotImplementDrop for #name #ty_generics #where_clause {}
    };

    let pi_bounds = all_types.iter().map(|ty| {
        quote_spanned! {ty.span()=> for<'__shmkit> #ty: ::shmkit::PositionIndependent, }
    });

    let (schema, relocate, accessors) = match &input.data {
        Data::Struct(s) => {
            let fields = fields_of(&s.fields);
            let kind = match &s.fields {
                Fields::Named(_) => quote!(::shmkit::SchemaKind::Struct),
                Fields::Unnamed(_) => quote!(::shmkit::SchemaKind::TupleStruct),
                Fields::Unit => quote!(::shmkit::SchemaKind::UnitStruct),
            };
            let schemas = fields.iter().map(|f| {
                let m = &f.member;
                field_schema(
                    f,
                    quote!(::core::option::Option::Some(
                        ::shmkit::__private::offset_of!(Self, #m)
                    )),
                )
            });
            let schema = quote! {
                ::shmkit::Schema {
                    name: #name_str,
                    kind: #kind,
                    size: ::shmkit::__private::size_of::<Self>(),
                    align: ::shmkit::__private::align_of::<Self>(),
                    fields: &[#(#schemas),*],
                    variants: &[],
                }
            };
            let relocs = fields.iter().map(|f| {
                let (m, ty) = (&f.member, f.ty);
                quote_spanned! {ty.span()=>
                    // SAFETY: the field moved with the value, from `moved_from` plus its
                    // offset; the caller's contract carries over.
                    unsafe {
                        <#ty as ::shmkit::ShmSafe>::relocate(
                            &mut self.#m,
                            moved_from.wrapping_add(::shmkit::__private::offset_of!(Self, #m)),
                        )
                    };
                }
            });
            let relocate = quote! {
                #[inline(always)]
                unsafe fn relocate(&mut self, moved_from: usize) {
                    let _ = moved_from;
                    #(#relocs)*
                }
            };
            (schema, relocate, struct_accessors(input, &fields))
        }
        Data::Enum(e) => {
            let repr_int = repr.int.as_ref().map(|i| i.to_string()).unwrap_or_default();
            let repr_str = LitStr::new(
                &if repr.c {
                    format!("C, {repr_int}")
                } else {
                    repr_int
                },
                Span::call_site(),
            );
            let variants = e.variants.iter().map(|v| {
                let vname = LitStr::new(&v.ident.to_string(), v.ident.span());
                let disc = LitStr::new(
                    &v.discriminant
                        .as_ref()
                        .map(|(_, d)| d.to_token_stream().to_string())
                        .unwrap_or_default(),
                    Span::call_site(),
                );
                let fields = fields_of(&v.fields);
                let schemas = fields
                    .iter()
                    .map(|f| field_schema(f, quote!(::core::option::Option::None)));
                quote! {
                    ::shmkit::VariantSchema { name: #vname, discriminant: #disc, fields: &[#(#schemas),*] }
                }
            });
            let schema = quote! {
                ::shmkit::Schema {
                    name: #name_str,
                    kind: ::shmkit::SchemaKind::Enum(#repr_str),
                    size: ::shmkit::__private::size_of::<Self>(),
                    align: ::shmkit::__private::align_of::<Self>(),
                    fields: &[],
                    variants: &[#(#variants),*],
                }
            };
            let arms = e.variants.iter().map(|v| {
                let vid = &v.ident;
                let fields = fields_of(&v.fields);
                let binds: Vec<Ident> = (0..fields.len())
                    .map(|i| format_ident!("__shmkit_f{}", i))
                    .collect();
                let pattern = match &v.fields {
                    Fields::Named(_) => {
                        let ms = fields.iter().map(|f| &f.member);
                        quote!(Self::#vid { #(#ms: #binds),* })
                    }
                    Fields::Unnamed(_) => quote!(Self::#vid(#(#binds),*)),
                    Fields::Unit => quote!(Self::#vid),
                };
                let relocs = fields.iter().zip(&binds).map(|(f, b)| {
                    let ty = f.ty;
                    quote_spanned! {ty.span()=>
                        let __shmkit_off = (::core::ptr::addr_of_mut!(*#b) as usize).wrapping_sub(__shmkit_base);
                        // SAFETY: the field moved with the value, from `moved_from` plus its
                        // offset in the value; the caller's contract carries over.
                        unsafe {
                            <#ty as ::shmkit::ShmSafe>::relocate(#b, moved_from.wrapping_add(__shmkit_off))
                        };
                    }
                });
                quote!(#pattern => { #(#relocs)* })
            });
            let relocate = quote! {
                #[inline(always)]
                #[allow(unused_variables)]
                unsafe fn relocate(&mut self, moved_from: usize) {
                    let __shmkit_base = self as *mut Self as usize;
                    match self {
                        #(#arms)*
                    }
                }
            };
            (schema, relocate, TokenStream::new())
        }
        Data::Union(_) => unreachable_union(),
    };

    Ok(quote! {
        // SAFETY: the derive checked that every field is ShmSafe (check 2 below, and the
        // field relocations), that the layout is defined (repr C or an integer repr, never
        // packed) and that there is no Drop impl; `relocate` relocates every field from its
        // own old address.
        unsafe impl #impl_generics ::shmkit::ShmSafe for #name #ty_generics #where_clause {
            const SCHEMA: ::core::option::Option<&'static ::shmkit::Schema> =
                ::core::option::Option::Some(&#schema);
            const LAYOUT_FINGERPRINT: u64 = match <Self as ::shmkit::ShmSafe>::SCHEMA {
                ::core::option::Option::Some(s) => s.fingerprint(),
                ::core::option::Option::None => 0,
            };
            #[inline]
            fn type_fingerprint() -> u64 {
                <Self as ::shmkit::ShmSafe>::LAYOUT_FINGERPRINT
            }
            #relocate
        }

        // SAFETY: applies only when every field is position-independent (the `for<'_>`
        // bounds keep concrete, false ones from being errors), and then the bytes of the
        // whole are plain data too.
        unsafe impl #impl_generics ::shmkit::PositionIndependent for #name #ty_generics
        where #existing_preds #(#pi_bounds)*
        {}

        const _: () = {
            #field_check
            #drop_check
        };

        #accessors
    })
}

fn unreachable_union() -> (TokenStream, TokenStream, TokenStream) {
    // Unions were refused above; nothing to generate.
    (TokenStream::new(), TokenStream::new(), TokenStream::new())
}

/// The accessor traits of a struct: `<Type>Fields` (with the struct's visibility) for its
/// fields that are not private, or all of them for a private struct; `<Type>PrivateFields`
/// (module-private) for the private fields of a non-private struct, so that accessors
/// never widen a field's visibility.
fn struct_accessors(input: &DeriveInput, fields: &[Field<'_>]) -> TokenStream {
    let private_struct = matches!(input.vis, Visibility::Inherited);
    let (public, private): (Vec<&Field<'_>>, Vec<&Field<'_>>) = fields
        .iter()
        .partition(|f| private_struct || !matches!(f.vis, Visibility::Inherited));
    let mut out = TokenStream::new();
    let groups = [
        (public, format_ident!("{}Fields", input.ident), &input.vis),
        (
            private,
            format_ident!("{}PrivateFields", input.ident),
            &Visibility::Inherited,
        ),
    ];
    let name = &input.ident;
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let trait_generics = &input.generics;
    let trait_where = &input.generics.where_clause;
    // The impl: `impl<'__a, T...> Trait<T...> for ShmMut<'__a, Name<T...>>`.
    let mut impl_g = input.generics.clone();
    impl_g.params.insert(0, syn::parse_quote!('__shmkit_a));
    let (impl_generics, _, where_clause) = impl_g.split_for_impl();
    for (group, trait_name, vis) in groups {
        if group.is_empty() {
            continue;
        }
        let doc = format!(
            "Field accessors of [`{name}`] on its guard, generated by `#[derive(ShmSafe)]`: \
             plain fields' guards deref mutably, position-dependent fields' guards offer \
             in-place operations only."
        );
        let sigs = group.iter().map(|f| {
            let (acc, ty) = (&f.accessor, f.ty);
            let d = format!("The guard of field `{}`.", f.schema_name);
            quote!(#[doc = #d] fn #acc(&mut self) -> ::shmkit::ShmMut<'_, #ty>;)
        });
        let bodies = group.iter().map(|f| {
            let (acc, ty, m) = (&f.accessor, f.ty, &f.member);
            quote! {
                #[inline(always)]
                fn #acc(&mut self) -> ::shmkit::ShmMut<'_, #ty> {
                    // SAFETY: the projection returns a field of the value, which is in place
                    // since it is behind a guard, and moves nothing.
                    unsafe { ::shmkit::ShmMut::map_unchecked(self.as_mut(), |v| &mut v.#m) }
                }
            }
        });
        out.extend(quote! {
            #[doc = #doc]
            #[allow(private_interfaces, dead_code)]
            #vis trait #trait_name #trait_generics #trait_where {
                #(#sigs)*
            }
            #[allow(private_interfaces)]
            impl #impl_generics #trait_name #ty_generics
                for ::shmkit::ShmMut<'__shmkit_a, #name #ty_generics> #where_clause
            {
                #(#bodies)*
            }
        });
    }
    out
}

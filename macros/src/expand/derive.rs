//! `#[derive(ShmSafe)]`'s generated impls (see the crate docs), from the checked model.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Generics, Ident, LitStr, Visibility};

use super::{fallback, krate_at, phantom_params, type_string};
use crate::internals::ast::{Container, Data, Field, Style, Variant};

/// The expansion of `#[derive(ShmSafe)]`: the impls, or the errors and the fallback impls.
pub fn derive(input: &DeriveInput) -> TokenStream {
    match Container::from_ast(input) {
        Ok(c) => expand(&c),
        Err(r) => {
            let mut out = r.errors.into_compile_error();
            out.extend(fallback::shm_safe(&input.ident, &input.generics, &r.krate));
            out
        }
    }
}

/// The impls of a checked type.
pub fn expand(c: &Container) -> TokenStream {
    let krate = &c.krate;
    let name = &c.ident;
    let name_str = LitStr::new(&name.to_string(), name.span());
    let generics = bounded_generics(&c.generics, krate);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let existing_preds = where_clause.map(|w| {
        let p = w.predicates.iter();
        quote!(#(#p,)*)
    });
    let all_types = c.field_types();
    let serialize = serialize_impl(c);

    // Check 2: each field type is ShmSafe, spanned on the field type.
    let assertions = all_types.iter().map(|ty| {
        quote_spanned! {ty.span()=> __shmkit_assert_shm_safe::<#ty>(); }
    });
    let field_check = quote! {
        #[allow(dead_code, clippy::extra_unused_type_parameters)]
        fn __shmkit_check_fields #impl_generics () #where_clause {
            fn __shmkit_assert_shm_safe<T: #krate::ShmSafe>() {}
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
        let krate = krate_at(krate, ty.span());
        quote_spanned! {ty.span()=> for<'__shmkit> #ty: #krate::PositionIndependent, }
    });

    let assumed: syn::Type = syn::parse_quote!(#krate::__private::AssumedImmutable);
    let immutable_bounds = all_types.iter().map(|ty| {
        let krate = krate_at(krate, ty.span());
        let (assumed_ty, around) = c.assume_self(ty, &assumed);
        quote_spanned! {ty.span()=>
            for<'__shmkit> #assumed_ty: #krate::ShmImmutable,
            #(for<'__shmkit> #around: #krate::__private::ForwardsImmutable,)*
        }
    });

    let generic_args: Vec<TokenStream> = c
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            syn::GenericParam::Type(t) => {
                let t = &t.ident;
                Some(quote!(<#t as #krate::ShmSafe>::POINTEE_FINGERPRINT))
            }
            syn::GenericParam::Const(k) => {
                let k = &k.ident;
                Some(quote!(#k as u64))
            }
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect();

    // The schema of a struct (fields) or an enum (variants): everything else is the same.
    let schema_of = |kind: &TokenStream, fields: TokenStream, variants: TokenStream| {
        quote! {
            #krate::Schema {
                name: #name_str,
                kind: #kind,
                size: #krate::__private::size_of::<Self>(),
                align: #krate::__private::align_of::<Self>(),
                fields: &[#fields],
                variants: &[#variants],
                generics: &[#(#generic_args),*],
            }
        }
    };
    let (kind, schema, relocate, accessors) = match &c.data {
        Data::Struct(style, fields) => {
            let kind = match style {
                Style::Named => quote!(#krate::SchemaKind::Struct),
                Style::Tuple => quote!(#krate::SchemaKind::TupleStruct),
                Style::Unit => quote!(#krate::SchemaKind::UnitStruct),
            };
            let schemas = fields.iter().map(|f| {
                let m = &f.member;
                field_schema(
                    f,
                    krate,
                    quote!(::core::option::Option::Some(
                        #krate::__private::offset_of!(Self, #m)
                    )),
                )
            });
            let schema = schema_of(&kind, quote!(#(#schemas),*), quote!());
            let relocs = fields.iter().map(|f| {
                let m = &f.member;
                let hook = relocate_hook(f, krate);
                // SAFETY (of the generated block): the field moved with the value, from
                // `moved_from` plus its offset; the caller's contract carries over.
                // `unsafe` keeps the macro's span, so lints on unsafe blocks see macro code.
                quote! {
                    unsafe {
                        #hook(
                            &mut self.#m,
                            moved_from.wrapping_add(#krate::__private::offset_of!(Self, #m)),
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
            let checks = fields.iter().map(|f| {
                let (m, ty) = (&f.member, &f.ty);
                let name = LitStr::new(&f.name, Span::call_site());
                let check = quote!(::core::ptr::addr_of!((*value).#m));
                validity_check(
                    ty,
                    krate,
                    check,
                    quote!(#krate::__private::offset_of!(Self, #m)),
                    &name,
                )
            });
            let validity = quote! {
                const ALL_BIT_PATTERNS_VALID: bool =
                    true #(&& <#all_types as #krate::ShmSafe>::ALL_BIT_PATTERNS_VALID)*;
                unsafe fn validate(
                    value: *const Self,
                ) -> ::core::result::Result<(), #krate::__private::Invalid> {
                    let _ = value;
                    #(#checks)*
                    ::core::result::Result::Ok(())
                }
            };
            (
                kind,
                schema,
                quote!(#relocate #validity),
                struct_accessors(c, fields),
            )
        }
        Data::Enum(variants) => {
            let repr_int = c
                .repr
                .int
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_default();
            let repr_str = LitStr::new(
                &if c.repr.c {
                    format!("C, {repr_int}")
                } else {
                    repr_int
                },
                Span::call_site(),
            );
            let kind = quote!(#krate::SchemaKind::Enum(#repr_str));
            let values = discriminant_values(variants, c.repr.int.as_ref());
            let variant_schemas = variants.iter().zip(&values).map(|(v, disc)| {
                let vname = LitStr::new(&v.ident.to_string(), v.ident.span());
                let schemas = v
                    .fields
                    .iter()
                    .map(|f| field_schema(f, krate, quote!(::core::option::Option::None)));
                quote! {
                    #krate::VariantSchema {
                        name: #vname,
                        discriminant: #disc as i128,
                        fields: &[#(#schemas),*],
                    }
                }
            });
            let schema = schema_of(&kind, quote!(), quote!(#(#variant_schemas),*));
            let arms = variants.iter().map(|v| {
                let vid = &v.ident;
                let binds: Vec<Ident> = (0..v.fields.len())
                    .map(|i| format_ident!("__shmkit_f{}", i))
                    .collect();
                let pattern = match v.style {
                    Style::Named => {
                        let ms = v.fields.iter().map(|f| &f.member);
                        quote!(Self::#vid { #(#ms: #binds),* })
                    }
                    Style::Tuple => quote!(Self::#vid(#(#binds),*)),
                    Style::Unit => quote!(Self::#vid),
                };
                let relocs = v.fields.iter().zip(&binds).map(|(f, b)| {
                    let hook = relocate_hook(f, krate);
                    // SAFETY (of the generated block): the field moved with the value, from
                    // `moved_from` plus its offset in the value; the contract carries over.
                    quote! {
                        let __shmkit_off = (::core::ptr::addr_of_mut!(*#b) as usize).wrapping_sub(__shmkit_base);
                        unsafe { #hook(#b, moved_from.wrapping_add(__shmkit_off)) };
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
            let validity = enum_validator(c, variants, &values);
            (
                kind,
                schema,
                quote!(#relocate #validity),
                TokenStream::new(),
            )
        }
    };

    // The SAFETY comments below are for readers of this macro: comments do not reach the
    // expansion, hence the `allow`s for the lints that look for them.
    quote! {
        // SAFETY: the derive checked that every field is ShmSafe (check 2 below, and the
        // field relocations), that the layout is defined (repr C or an integer repr, never
        // packed) and that there is no Drop impl; `relocate` relocates every field from its
        // own old address.
        #[allow(clippy::undocumented_unsafe_blocks)]
        unsafe impl #impl_generics #krate::ShmSafe for #name #ty_generics #where_clause {
            const SCHEMA: ::core::option::Option<&'static #krate::Schema> =
                ::core::option::Option::Some(&#schema);
            const LAYOUT_FINGERPRINT: u64 = match <Self as #krate::ShmSafe>::SCHEMA {
                ::core::option::Option::Some(s) => s.fingerprint(),
                ::core::option::Option::None => 0,
            };
            // Not from `SCHEMA`, which holds the fingerprints of pointers to the type.
            const POINTEE_FINGERPRINT: u64 = #krate::__private::pointee_fingerprint(
                #kind,
                #name_str,
                #krate::__private::size_of::<Self>(),
                #krate::__private::align_of::<Self>(),
                &[#(#generic_args),*],
            );
            #[inline]
            fn type_fingerprint() -> u64 {
                <Self as #krate::ShmSafe>::LAYOUT_FINGERPRINT
            }
            fn for_each_schema(
                f: &mut dyn ::core::ops::FnMut(&'static #krate::Schema) -> bool,
            ) {
                if let ::core::option::Option::Some(s) = <Self as #krate::ShmSafe>::SCHEMA {
                    if !f(s) {
                        return;
                    }
                }
                #(<#all_types as #krate::ShmSafe>::for_each_schema(f);)*
            }
            #relocate
        }

        // SAFETY: applies only when every field is position-independent (the `for<'_>`
        // bounds keep concrete, false ones from being errors), and then the bytes of the
        // whole are plain data too.
        #[allow(clippy::undocumented_unsafe_blocks)]
        unsafe impl #impl_generics #krate::PositionIndependent for #name #ty_generics
        where #existing_preds #(#pi_bounds)*
        {}

        // SAFETY: applies only when every field is free of interior mutability, itself and
        // behind its pointers (a field pointing back at the type is assumed to be, as it adds
        // no field of its own).
        #[allow(clippy::undocumented_unsafe_blocks)]
        unsafe impl #impl_generics #krate::ShmImmutable for #name #ty_generics
        where #existing_preds #(#immutable_bounds)*
        {}

        const _: () = {
            #field_check
            #drop_check
            #serialize
        };

        #accessors
    }
}

/// The check of one field whose address is `place` (a `*const FieldType` expression, in an
/// `unsafe fn validate(value: *const Self)`), at byte `offset` of the value: skipped at
/// compile time when every bit pattern of the field type is valid.
fn validity_check(
    ty: &syn::Type,
    krate: &syn::Path,
    place: TokenStream,
    offset: TokenStream,
    name: &LitStr,
) -> TokenStream {
    let krate = krate_at(krate, ty.span());
    // SAFETY (of the generated block): the field lies within the value, which the caller
    // of `validate` vouches for.
    quote_spanned! {ty.span()=>
        if !<#ty as #krate::ShmSafe>::ALL_BIT_PATTERNS_VALID {
            unsafe { <#ty as #krate::ShmSafe>::validate(#place) }
                .map_err(|e| e.within(#name, #offset))?;
        }
    }
}

/// An enum's validator: the tag must be one of the declared discriminant values, and the
/// fields of its variant valid, at the offsets the enum's `repr` defines.
fn enum_validator(c: &Container, variants: &[Variant], values: &[TokenStream]) -> TokenStream {
    let krate = &c.krate;
    let Some(int) = &c.repr.int else {
        return TokenStream::new();
    };
    let all_aligns = c
        .field_types()
        .into_iter()
        .map(|ty| quote!(#krate::__private::align_of::<#ty>()));
    let start = if c.repr.c {
        quote!(#krate::__private::payload_start(
            #krate::__private::size_of::<#int>(),
            &[#(#all_aligns),*],
        ))
    } else {
        quote!(#krate::__private::size_of::<#int>())
    };
    let arms = variants.iter().zip(values).map(|(v, value)| {
        let layout = v.fields.iter().map(|f| {
            let ty = &f.ty;
            quote!((#krate::__private::size_of::<#ty>(), #krate::__private::align_of::<#ty>()))
        });
        let checks = v.fields.iter().enumerate().map(|(j, f)| {
            let name = LitStr::new(&format!("{}.{}", v.ident, f.name), Span::call_site());
            let ty = &f.ty;
            let offset = quote!(#krate::__private::variant_field_offset(
                __shmkit_start,
                __shmkit_fields,
                #j,
            ));
            let place = quote!(value.cast::<u8>().add(#offset).cast::<#ty>());
            validity_check(ty, krate, place, offset, &name)
        });
        quote! {
            if __shmkit_tag == #value {
                let __shmkit_fields: &[(usize, usize)] = &[#(#layout),*];
                let _ = (__shmkit_start, __shmkit_fields);
                #(#checks)*
                return ::core::result::Result::Ok(());
            }
        }
    });
    let expected = LitStr::new(
        &format!("a declared discriminant of `{}`", c.ident),
        Span::call_site(),
    );
    // SAFETY (of the generated block): an enum with a primitive repr starts with its tag,
    // and the caller of `validate` vouches for the value's bytes.
    quote! {
        const ALL_BIT_PATTERNS_VALID: bool = false;
        unsafe fn validate(
            value: *const Self,
        ) -> ::core::result::Result<(), #krate::__private::Invalid> {
            let __shmkit_tag = unsafe { value.cast::<#int>().read() };
            let __shmkit_start: usize = #start;
            #(#arms)*
            ::core::result::Result::Err(#krate::__private::Invalid::new(#expected))
        }
    }
}

/// Each variant's discriminant value as a constant expression of the enum's `repr` type,
/// computed by the compiler: the written expression, or the previous value plus one (0 for
/// the first), as the language defines it. The values, not the tokens, are what a segment
/// holds (`On = D` means another value when `D` does).
fn discriminant_values(variants: &[Variant], int: Option<&Ident>) -> Vec<TokenStream> {
    let int = int.map_or_else(|| quote!(isize), |i| quote!(#i));
    let mut base: Option<&syn::Expr> = None;
    let mut step = 0usize;
    variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if let Some(d) = &v.discriminant {
                base = Some(d);
                step = 0;
            } else {
                step += 1;
            }
            match base {
                Some(d) => {
                    let step = proc_macro2::Literal::usize_unsuffixed(step);
                    quote!({ let __shmkit_d: #int = #d; __shmkit_d + #step })
                }
                None => {
                    let i = proc_macro2::Literal::usize_unsuffixed(i);
                    quote!({ let __shmkit_d: #int = #i; __shmkit_d })
                }
            }
        })
        .collect()
}

/// The generics of the impls: `T: ShmSafe` on every type parameter (lifetimes were refused).
pub(super) fn bounded_generics(generics: &Generics, krate: &syn::Path) -> Generics {
    let mut g = generics.clone();
    for param in &mut g.params {
        if let syn::GenericParam::Type(t) = param {
            t.bounds.push(syn::parse_quote!(#krate::ShmSafe));
        }
    }
    g
}

/// `<FieldType as ShmSafe>::relocate`, spanned on the field type so that an error in it
/// points there.
fn relocate_hook(f: &Field, krate: &syn::Path) -> TokenStream {
    let ty = &f.ty;
    let krate = krate_at(krate, ty.span());
    quote_spanned! {ty.span()=> <#ty as #krate::ShmSafe>::relocate }
}

fn field_schema(f: &Field, krate: &syn::Path, offset: TokenStream) -> TokenStream {
    let ty = &f.ty;
    let name = LitStr::new(&f.name, Span::call_site());
    let ty_str = LitStr::new(&type_string(ty, krate), Span::call_site());
    let phantom = phantom_params(ty);
    let krate = krate_at(krate, ty.span());
    quote_spanned! {ty.span()=>
        #krate::FieldSchema {
            name: #name,
            ty: #ty_str,
            offset: #offset,
            size: #krate::__private::size_of::<#ty>(),
            align: #krate::__private::align_of::<#ty>(),
            fingerprint: #krate::__private::field_fingerprint(
                <#ty as #krate::ShmSafe>::LAYOUT_FINGERPRINT,
                &[#(#phantom),*],
            ),
        }
    }
}

/// The accessor traits of a struct: `<Type>Fields` (with the struct's visibility) for its
/// fields that are not private, or all of them for a private struct; `<Type>PrivateFields`
/// (module-private) for the private fields of a non-private struct, so that accessors
/// never widen a field's visibility.
fn struct_accessors(c: &Container, fields: &[Field]) -> TokenStream {
    let krate = &c.krate;
    let private_struct = matches!(c.vis, Visibility::Inherited);
    let (public, private): (Vec<&Field>, Vec<&Field>) = fields
        .iter()
        .partition(|f| private_struct || !matches!(f.vis, Visibility::Inherited));
    let mut out = TokenStream::new();
    let groups = [
        (public, format_ident!("{}Fields", c.ident), &c.vis),
        (
            private,
            format_ident!("{}PrivateFields", c.ident),
            &Visibility::Inherited,
        ),
    ];
    let name = &c.ident;
    let (_, ty_generics, _) = c.generics.split_for_impl();
    let trait_generics = &c.generics;
    let trait_where = &c.generics.where_clause;
    // The impl: `impl<P, T...> Trait<T...> for P where P: ShmDerefMut<Target = Name<T...>>`,
    // so that the accessors work on a `ShmMut` and on a lock guard alike.
    let mut impl_g = c.generics.clone();
    impl_g
        .params
        .insert(0, syn::parse_quote!(__ShmkitP: ?::core::marker::Sized));
    impl_g
        .make_where_clause()
        .predicates
        .push(syn::parse_quote!(__ShmkitP: #krate::ShmDerefMut<Target = #name #ty_generics>));
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
            let (acc, ty) = (&f.accessor, &f.ty);
            let d = format!("The guard of field `{}`.", f.name);
            // The named lifetime and its bound: the implementing type is any guard `P`,
            // which does not imply that the struct's type parameters outlive the borrow.
            quote! {
                #[doc = #d]
                fn #acc<'__shmkit_s>(&'__shmkit_s mut self) -> #krate::ShmMut<'__shmkit_s, #ty>
                where
                    #name #ty_generics: '__shmkit_s;
            }
        });
        let bodies = group.iter().map(|f| {
            let (acc, ty, m) = (&f.accessor, &f.ty, &f.member);
            // SAFETY (of the generated block): the projection returns a field of the
            // value, which is in place since it is behind a guard, and moves nothing.
            quote! {
                #[inline(always)]
                fn #acc<'__shmkit_s>(&'__shmkit_s mut self) -> #krate::ShmMut<'__shmkit_s, #ty>
                where
                    #name #ty_generics: '__shmkit_s,
                {
                    unsafe {
                        #krate::ShmMut::map_unchecked(
                            #krate::ShmDerefMut::as_shm_mut(self),
                            |v| &mut v.#m,
                        )
                    }
                }
            }
        });
        out.extend(quote! {
            #[doc = #doc]
            #[allow(private_interfaces, dead_code)]
            #vis trait #trait_name #trait_generics #trait_where {
                #(#sigs)*
            }
            #[allow(private_interfaces, clippy::undocumented_unsafe_blocks)]
            impl #impl_generics #trait_name #ty_generics for __ShmkitP #where_clause
            {
                #(#bodies)*
            }
        });
    }
    out
}

/// serde `Serialize`, kept by the runtime only when it has its `serde` feature (the feature
/// is the runtime's; this expansion runs in the user's crate). Each field goes through the
/// runtime's auto-ref choice: its own `Serialize`, or `{"opaque": type, "size": bytes}`
/// where its type has none (or is a generic parameter's: no bound is added). Structs
/// serialize as structs (tuple fields named `0`, `1`, ...), enums by variant.
fn serialize_impl(c: &Container) -> TokenStream {
    let krate = &c.krate;
    let name = &c.ident;
    let name_str = LitStr::new(&name.to_string(), name.span());
    let (impl_generics, ty_generics, where_clause) = c.generics.split_for_impl();
    let p = quote!(#krate::__private);
    let write = |fields: &[Field], access: &dyn Fn(usize, &Field) -> TokenStream| {
        let writes = fields.iter().enumerate().map(|(i, f)| {
            let fname = LitStr::new(&f.name, Span::call_site());
            let value = access(i, f);
            quote! {
                (&&#p::SerdeField(#value)).__shmkit_field(&mut __sink, #fname)?;
            }
        });
        quote!(#(#writes)*)
    };
    let body = match &c.data {
        Data::Struct(_, fields) => {
            let n = fields.len();
            let writes = write(fields, &|_, f| {
                let m = &f.member;
                quote!(&self.#m)
            });
            quote! {
                let mut __sink = #p::StructSink(
                    #p::serde::Serializer::serialize_struct(__serializer, #name_str, #n)?,
                );
                #writes
                #p::serde::ser::SerializeStruct::end(__sink.0)
            }
        }
        Data::Enum(variants) => {
            let arms = variants.iter().enumerate().map(|(index, v)| {
                let vid = &v.ident;
                let vname = LitStr::new(&vid.to_string(), vid.span());
                let index = index as u32;
                let binds: Vec<Ident> = (0..v.fields.len())
                    .map(|i| format_ident!("__shmkit_f{}", i))
                    .collect();
                let ms = v.fields.iter().map(|f| &f.member);
                if v.fields.is_empty() {
                    return quote! {
                        Self::#vid { .. } => #p::serde::Serializer::serialize_unit_variant(
                            __serializer, #name_str, #index, #vname,
                        ),
                    };
                }
                let n = v.fields.len();
                let writes = write(&v.fields, &|i, _| {
                    let b = &binds[i];
                    quote!(#b)
                });
                quote! {
                    Self::#vid { #(#ms: #binds),* } => {
                        let mut __sink = #p::VariantSink(
                            #p::serde::Serializer::serialize_struct_variant(
                                __serializer, #name_str, #index, #vname, #n,
                            )?,
                        );
                        #writes
                        #p::serde::ser::SerializeStructVariant::end(__sink.0)
                    }
                }
            });
            quote! {
                match self {
                    #(#arms)*
                }
            }
        }
    };
    quote! {
        #p::serde_impl! {
            impl #impl_generics #p::serde::Serialize for #name #ty_generics #where_clause {
                fn serialize<__S: #p::serde::Serializer>(
                    &self,
                    __serializer: __S,
                ) -> ::core::result::Result<__S::Ok, __S::Error> {
                    #[allow(unused_imports)]
                    use #p::{ViaOpaque as _, ViaSerialize as _};
                    #body
                }
            }
        }
    }
}

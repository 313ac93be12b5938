//! The parsed and validated model of a `#[derive(ShmSafe)]` item: what code generation reads.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::{DeriveInput, Expr, Fields, Generics, Ident, Index, Member, Type, Visibility};

use super::attr::{self, Repr};
use super::{check, combine, Rejected};

/// A type that derives `ShmSafe`, checked: a struct with a defined layout or an enum with an
/// integer repr, no lifetime parameters, every field type acceptable to check 1.
pub struct Container {
    pub ident: Ident,
    pub vis: Visibility,
    pub generics: Generics,
    /// The path of the shmkit crate (`#[shm(crate = "..")]`, default `::shmkit`).
    pub krate: syn::Path,
    pub repr: Repr,
    pub data: Data,
}

pub enum Data {
    Struct(Style, Vec<Field>),
    Enum(Vec<Variant>),
}

/// How a struct or a variant spells its fields.
#[derive(Clone, Copy)]
pub enum Style {
    Named,
    Tuple,
    Unit,
}

pub struct Variant {
    pub ident: Ident,
    pub discriminant: Option<Expr>,
    pub style: Style,
    pub fields: Vec<Field>,
}

pub struct Field {
    /// How code names it: `self.x` or `self.0`.
    pub member: Member,
    /// Its name in the schema: `x` (without `r#`) or `0`.
    pub name: String,
    /// Its accessor on the guard: `x_mut` or `field0_mut`.
    pub accessor: Ident,
    /// Its type, with `Self` spelled out (see [`replace_self`]).
    pub ty: Type,
    pub vis: Visibility,
}

impl Container {
    /// Parses and validates `input`; on failure, every problem found, each at its span.
    pub fn from_ast(input: &DeriveInput) -> Result<Container, Rejected> {
        let mut errors = Vec::new();
        let repr = Repr::from_attrs(&input.attrs, &mut errors);
        let krate = attr::crate_path(&input.attrs, &mut errors);
        let self_ty = {
            let ident = &input.ident;
            let (_, ty_generics, _) = input.generics.split_for_impl();
            quote!(#ident #ty_generics)
        };
        let data = match &input.data {
            syn::Data::Struct(s) => Data::Struct(
                style(&s.fields),
                fields_of(&s.fields, &self_ty, &mut errors),
            ),
            syn::Data::Enum(e) => Data::Enum(
                e.variants
                    .iter()
                    .map(|v| {
                        check::field_attrs(&v.attrs, &mut errors);
                        Variant {
                            ident: v.ident.clone(),
                            discriminant: v.discriminant.as_ref().map(|(_, d)| d.clone()),
                            style: style(&v.fields),
                            fields: fields_of(&v.fields, &self_ty, &mut errors),
                        }
                    })
                    .collect(),
            ),
            syn::Data::Union(u) => {
                let mut union = check::union(u);
                errors.into_iter().for_each(|e| union.combine(e));
                return Err(Rejected {
                    errors: union,
                    krate,
                });
            }
        };
        let container = Container {
            ident: input.ident.clone(),
            vis: input.vis.clone(),
            generics: input.generics.clone(),
            krate,
            repr,
            data,
        };
        check::container(&container, &mut errors);
        match combine(errors) {
            Ok(()) => Ok(container),
            Err(errors) => Err(Rejected {
                errors,
                krate: container.krate,
            }),
        }
    }

    /// `ty` with each mention of the type itself (its bare name with exactly its own generic
    /// parameters, as `Self` is spelled out) replaced by `with`: for bounds that decide a
    /// property of the type from its fields, where such a mention would be a cycle. A path
    /// (`other::Node`) or other arguments (`Node<u8>` inside `Node<T>`) may name another type
    /// and are kept; if that is the type after all, the bound stays a cycle, which fails to
    /// compile rather than assume anything.
    pub fn assume_self(&self, ty: &Type, with: &TokenStream) -> TokenStream {
        let shadowed = self.generics.type_params().any(|p| p.ident == self.ident);
        if shadowed {
            return ty.to_token_stream();
        }
        let (_, ty_generics, _) = self.generics.split_for_impl();
        let own_args = ty_generics.to_token_stream().to_string();
        assume_in(ty.to_token_stream(), &self.ident, &own_args, with)
    }

    /// Every field type, in declaration order (all variants' for an enum).
    pub fn field_types(&self) -> Vec<&Type> {
        match &self.data {
            Data::Struct(_, fields) => fields.iter().map(|f| &f.ty).collect(),
            Data::Enum(variants) => variants
                .iter()
                .flat_map(|v| v.fields.iter().map(|f| &f.ty))
                .collect(),
        }
    }
}

fn style(fields: &Fields) -> Style {
    match fields {
        Fields::Named(_) => Style::Named,
        Fields::Unnamed(_) => Style::Tuple,
        Fields::Unit => Style::Unit,
    }
}

fn fields_of(fields: &Fields, self_ty: &TokenStream, errors: &mut Vec<syn::Error>) -> Vec<Field> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            check::field_attrs(&f.attrs, errors);
            field(i, f, self_ty, errors)
        })
        .collect()
}

fn field(i: usize, f: &syn::Field, self_ty: &TokenStream, errors: &mut Vec<syn::Error>) -> Field {
    let tokens = f.ty.to_token_stream();
    let ty = if tokens.clone().into_iter().any(|t| mentions_self(&t)) {
        syn::parse2(replace_self(tokens, self_ty)).unwrap_or_else(|e| {
            errors.push(e);
            f.ty.clone()
        })
    } else {
        f.ty.clone()
    };
    let (member, accessor, name) = match &f.ident {
        Some(id) => {
            let name = id.to_string().trim_start_matches("r#").to_string();
            (
                Member::Named(id.clone()),
                format_ident!("{}_mut", name),
                name,
            )
        }
        None => (
            Member::Unnamed(Index::from(i)),
            format_ident!("field{}_mut", i),
            i.to_string(),
        ),
    };
    Field {
        member,
        name,
        accessor,
        ty,
        vis: f.vis.clone(),
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

fn assume_in(tokens: TokenStream, name: &Ident, own_args: &str, with: &TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = TokenStream::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Ident(id) if id == name && !after_path_separator(&tokens[..i]) => {
                let (args, len) = angle_args(&tokens[i + 1..]);
                if args.to_string() == own_args {
                    out.extend(with.clone());
                    i += 1 + len;
                    continue;
                }
                out.extend([tokens[i].clone()]);
            }
            TokenTree::Group(g) => {
                let mut new =
                    Group::new(g.delimiter(), assume_in(g.stream(), name, own_args, with));
                new.set_span(g.span());
                out.extend([TokenTree::Group(new)]);
            }
            other => out.extend([other.clone()]),
        }
        i += 1;
    }
    out
}

fn after_path_separator(before: &[TokenTree]) -> bool {
    matches!(before.last(), Some(TokenTree::Punct(p)) if p.as_char() == ':')
}

/// The `<…>` arguments at the start of `tokens` (empty if none) and how many tokens they take.
fn angle_args(tokens: &[TokenTree]) -> (TokenStream, usize) {
    let is = |t: &TokenTree, c: char| matches!(t, TokenTree::Punct(p) if p.as_char() == c);
    if !tokens.first().is_some_and(|t| is(t, '<')) {
        return (TokenStream::new(), 0);
    }
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        if is(t, '<') {
            depth += 1;
        } else if is(t, '>') {
            depth -= 1;
            if depth == 0 {
                return (tokens[..=i].iter().cloned().collect(), i + 1);
            }
        }
    }
    (TokenStream::new(), 0)
}

fn mentions_self(tt: &TokenTree) -> bool {
    match tt {
        TokenTree::Ident(id) => id == "Self",
        TokenTree::Group(g) => g.stream().into_iter().any(|t| mentions_self(&t)),
        _ => false,
    }
}

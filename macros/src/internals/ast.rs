//! The parsed and validated model of a `#[derive(ShmSafe)]` item: what code generation reads.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::{
    DeriveInput, Expr, Fields, GenericArgument, Generics, Ident, Index, Member, PathArguments,
    Type, Visibility,
};

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
        let self_ty = self_type(input);
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

    /// `ty` as a `ShmImmutable` bound reads it, each mention of the type itself (its bare
    /// name with exactly its own generic parameters, as `Self` is spelled out) in a type
    /// position replaced by `with`, where such a mention would be a cycle; and the types
    /// around each replaced mention, which must be `ForwardsImmutable` for the replacement to
    /// mean anything (see [`Assume`]). A mention elsewhere (a path `other::Node`, other
    /// arguments, an expression, a macro call, the self type of `<Node as Tr>::T`) is kept: if
    /// that is a cycle, it fails to compile rather than assume anything.
    pub fn assume_self(&self, ty: &Type, with: &Type) -> (Type, Vec<Type>) {
        let mut ty = ty.clone();
        let mut around = Vec::new();
        let shadowed = self.generics.type_params().any(|p| p.ident == self.ident);
        if !shadowed {
            let (_, ty_generics, _) = self.generics.split_for_impl();
            let assume = Assume {
                name: &self.ident,
                own_args: ty_generics.to_token_stream().to_string(),
                with,
            };
            assume.in_type(&mut ty, &mut around);
        }
        (ty, around)
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
    let ty = spell_out_self(&f.ty, self_ty, errors);
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

/// The type itself as its field types would name it: `Name<T, N>`.
pub fn self_type(input: &DeriveInput) -> TokenStream {
    let ident = &input.ident;
    let (_, ty_generics, _) = input.generics.split_for_impl();
    quote!(#ident #ty_generics)
}

/// A field type with each `Self` in it replaced by `self_ty` (see [`replace_self`]).
pub fn spell_out_self(ty: &Type, self_ty: &TokenStream, errors: &mut Vec<syn::Error>) -> Type {
    let tokens = ty.to_token_stream();
    if tokens.clone().into_iter().any(|t| mentions_self(&t)) {
        syn::parse2(replace_self(tokens, self_ty)).unwrap_or_else(|e| {
            errors.push(e);
            ty.clone()
        })
    } else {
        ty.clone()
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

/// The replacement of [`Container::assume_self`]. It descends only where a type can hold a
/// pointer back at the type (generic type arguments, array, slice and tuple elements), and
/// never into a qualified path: there the user's impls for `with` (a type anyone can name)
/// would pick the type checked. Every path type it rewrites inside is recorded, so that the
/// bound also asks it to be `ForwardsImmutable` (ask nothing of `with` but `ShmImmutable`).
struct Assume<'a> {
    name: &'a Ident,
    own_args: String,
    with: &'a Type,
}

impl Assume<'_> {
    /// Replaces the mentions in `ty`, recording the path types around them in `around`;
    /// whether it replaced any.
    fn in_type(&self, ty: &mut Type, around: &mut Vec<Type>) -> bool {
        match ty {
            Type::Path(p) if p.qself.is_none() => {
                if self.is_own(&p.path) {
                    *ty = self.with.clone();
                    return true;
                }
                let mut replaced = false;
                for seg in &mut p.path.segments {
                    if let PathArguments::AngleBracketed(a) = &mut seg.arguments {
                        for arg in &mut a.args {
                            if let GenericArgument::Type(t) = arg {
                                replaced |= self.in_type(t, around);
                            }
                        }
                    }
                }
                if replaced {
                    around.push(ty.clone());
                }
                replaced
            }
            Type::Array(a) => self.in_type(&mut a.elem, around),
            Type::Slice(s) => self.in_type(&mut s.elem, around),
            Type::Paren(p) => self.in_type(&mut p.elem, around),
            Type::Group(g) => self.in_type(&mut g.elem, around),
            Type::Tuple(t) => t
                .elems
                .iter_mut()
                .fold(false, |replaced, e| self.in_type(e, around) | replaced),
            _ => false,
        }
    }

    fn is_own(&self, path: &syn::Path) -> bool {
        match (&path.leading_colon, path.segments.first()) {
            (None, Some(seg)) if path.segments.len() == 1 => {
                seg.ident == *self.name
                    && seg.arguments.to_token_stream().to_string() == self.own_args
            }
            _ => false,
        }
    }
}

fn mentions_self(tt: &TokenTree) -> bool {
    match tt {
        TokenTree::Ident(id) => id == "Self",
        TokenTree::Group(g) => g.stream().into_iter().any(|t| mentions_self(&t)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    //! Where `assume_self` puts the stand-in, and which types it asks to forward immutability.

    use quote::ToTokens;

    use super::Container;

    /// The bound types for field `f` of `item`: the field type and the types around the
    /// stand-in `X`, as strings.
    fn assumed(item: &str) -> (String, Vec<String>) {
        let c = Container::from_ast(&syn::parse_str(item).unwrap())
            .ok()
            .expect("a valid item");
        let (ty, around) = c.assume_self(c.field_types()[0], &syn::parse_quote!(X));
        let s = |t: &syn::Type| t.to_token_stream().to_string().replace(' ', "");
        (s(&ty), around.iter().map(s).collect())
    }

    #[test]
    fn replaces_the_type_in_type_arguments_and_elements() {
        let item = "#[repr(C)] struct N<T> { f: [OffsetPtr<(N<T>, Self)>; 2], v: T }";
        let (ty, around) = assumed(item);
        assert_eq!(ty, "[OffsetPtr<(X,X)>;2]");
        assert_eq!(around, ["OffsetPtr<(X,X)>"]);
        let (ty, around) = assumed("#[repr(C)] struct N { f: Pick<OffsetPtr<N>> }");
        assert_eq!(ty, "Pick<OffsetPtr<X>>");
        assert_eq!(around, ["OffsetPtr<X>", "Pick<OffsetPtr<X>>"]);
    }

    #[test]
    fn keeps_every_other_mention() {
        for field in [
            "<N as Tr>::T",
            "<Cond<{ is_me!(N) }> as Pick>::T",
            "OffsetPtr<[u8; { size_of::<N>() }]>",
            "OffsetPtr<other::N>",
            "OffsetPtr<::N>",
            "Tr<Out = N>",
        ] {
            let (ty, around) = assumed(&format!("#[repr(C)] struct N {{ f: {field} }}"));
            assert_eq!(ty, field.replace(' ', ""));
            assert!(around.is_empty(), "{field}");
        }
        let (ty, _) = assumed("#[repr(C)] struct N<T> { f: OffsetPtr<N<u8>>, v: T }");
        assert_eq!(ty, "OffsetPtr<N<u8>>");
    }
}

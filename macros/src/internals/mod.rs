//! Parsing and validation: from the macro input to a checked model ([`ast::Container`],
//! [`no_padding::NoPaddingInput`], [`segment::Segment`]) or the errors that refuse it. Code
//! generation (`crate::expand`) reads only the model.

pub mod ast;
pub mod attr;
pub mod check;
pub mod no_padding;
pub mod segment;
pub mod std_types;

/// An input refused by the checks.
pub struct Rejected {
    /// Every problem found, each at its own span.
    pub errors: syn::Error,
    /// The crate path, for the fallback impls that keep the errors from cascading.
    pub krate: syn::Path,
}

/// Joins errors into one (each keeps its own span); Ok when there are none.
pub fn combine(errors: Vec<syn::Error>) -> syn::Result<()> {
    let mut it = errors.into_iter();
    match it.next() {
        None => Ok(()),
        Some(mut first) => {
            it.for_each(|e| first.combine(e));
            Err(first)
        }
    }
}

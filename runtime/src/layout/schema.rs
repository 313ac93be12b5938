//! Layouts of the types that live in a segment, as the derive describes them at compile
//! time: a [`Schema`] per derived type, a layout fingerprint computed from it, a readable
//! description, and the diff between the layout a segment holds and the one a program
//! expects (the [`SchemaMismatch`](crate::Error::SchemaMismatch) of
//! [`root`](crate::ManagedSegment::root)).

use std::fmt::{self, Write as _};

use super::fingerprint::{compound_fingerprint, hash_bytes, hash_u64, FNV_OFFSET};

/// What kind of type a [`Schema`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaKind {
    /// A struct with named fields.
    Struct,
    /// A tuple struct (fields named `0`, `1`, …).
    TupleStruct,
    /// A unit struct.
    UnitStruct,
    /// An enum with a primitive representation (the `repr`, e.g. `"u8"`).
    Enum(&'static str),
    /// A library container or lock, by its layout (a descriptor for tools, which read its
    /// parts by the fields' names):
    /// - `"sequence"` (`Vec<T>`, `Box<T>`): `len` elements from where the offset pointer
    ///   `ptr` aims; `ptr`'s size, alignment and fingerprint are the element type's.
    /// - `"text"` (`String`): the same, of UTF-8 bytes.
    /// - `"list"` (`List<T>`): nodes linked from the offset pointer `head`, `len` of them;
    ///   the node's own fields (`next`, `value`) are those of the pointer's schema
    ///   (`head`'s size, alignment and fingerprint are the node's).
    /// - `"btree"` (`Map<K, V>`): nodes from `root` (its size a leaf's), `len` entries;
    ///   per node its key count `node.len` and height `node.level` (`u16`s), its arrays
    ///   `node.keys` and `node.vals` (sized and fingerprinted as one key and one value),
    ///   and an internal node's child pointers `node.edges` (its size an internal node's).
    /// - `"hash"` (`HashMap<K, V>`): the table behind `table`, `len` entries; in the table
    ///   its `table.mask` (buckets - 1) and control bytes `table.ctrl` (a byte per bucket,
    ///   then as many as its size), then the buckets, `bucket` each, aligned, holding
    ///   `bucket.key` and `bucket.value`; a bucket is full when its control byte's top bit
    ///   is clear.
    /// - `"lock"` (`Mutex<T>`): the owner word `word` (a `u32`), the value `data`.
    ///
    /// Its fingerprint is the container's own
    /// ([`LAYOUT_FINGERPRINT`](crate::ShmSafe::LAYOUT_FINGERPRINT): `compound_fingerprint`
    /// of `name` and `generics`), so the descriptor sits beside the fingerprints segments
    /// already hold and changes none of them.
    Container(&'static str),
}

impl SchemaKind {
    const fn tag(self) -> &'static str {
        match self {
            SchemaKind::Struct => "struct",
            SchemaKind::TupleStruct => "tuple struct",
            SchemaKind::UnitStruct => "unit struct",
            SchemaKind::Enum(_) => "enum",
            SchemaKind::Container(_) => "container",
        }
    }
}

/// One field of a struct or enum variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSchema {
    /// The field's name (`"0"`, `"1"` … for tuple fields).
    pub name: &'static str,
    /// The field's type as written in the source (for messages only; not hashed).
    pub ty: &'static str,
    /// Offset in bytes from the start of the value; `None` in enum variants.
    pub offset: Option<usize>,
    /// `size_of` the field type.
    pub size: usize,
    /// `align_of` the field type.
    pub align: usize,
    /// The field type's [`LAYOUT_FINGERPRINT`](crate::ShmSafe::LAYOUT_FINGERPRINT), with the
    /// parameters of the `PhantomData`s written in it when there are any (the derive hashes
    /// them in, see `field_fingerprint`).
    pub fingerprint: u64,
}

impl FieldSchema {
    /// A part of a [`Container`](SchemaKind::Container)'s descriptor: a word at `offset`
    /// (in the container, or in its node), or what a pointer aims at (`size`, `align` and
    /// `fingerprint` of the target type).
    pub const fn part(
        name: &'static str,
        offset: usize,
        size: usize,
        align: usize,
        fingerprint: u64,
    ) -> FieldSchema {
        FieldSchema {
            name,
            ty: name,
            offset: Some(offset),
            size,
            align,
            fingerprint,
        }
    }
}

/// One variant of an enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VariantSchema {
    /// The variant's name.
    pub name: &'static str,
    /// The discriminant's value (computed by the compiler from what is written, or implied),
    /// as `i128` (a `u128` discriminant above `i128::MAX` wraps around, consistently).
    pub discriminant: i128,
    /// The variant's fields, in order.
    pub fields: &'static [FieldSchema],
}

/// The layout of a derived type, built at compile time by `#[derive(ShmSafe)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schema {
    /// The type's identifier (no crate path).
    pub name: &'static str,
    /// Struct, tuple struct, unit struct or enum.
    pub kind: SchemaKind,
    /// `size_of` the type.
    pub size: usize,
    /// `align_of` the type.
    pub align: usize,
    /// The fields of a struct (empty for an enum).
    pub fields: &'static [FieldSchema],
    /// The variants of an enum (empty for a struct).
    pub variants: &'static [VariantSchema],
    /// The generic arguments, in order: a type argument's
    /// [`POINTEE_FINGERPRINT`](crate::ShmSafe::POINTEE_FINGERPRINT), a const argument's
    /// value. `Handle<Raw>` and `Handle<Validated>` differ here even when `Handle` holds its
    /// parameter only in a `PhantomData`.
    pub generics: &'static [u64],
}

impl Schema {
    /// The descriptor of a container `name` of the given layout (see
    /// [`SchemaKind::Container`]), whose fingerprint is `compound_fingerprint(name,
    /// generics)`.
    pub const fn container(
        name: &'static str,
        layout: &'static str,
        size: usize,
        align: usize,
        generics: &'static [u64],
        fields: &'static [FieldSchema],
    ) -> Schema {
        Schema {
            name,
            kind: SchemaKind::Container(layout),
            size,
            align,
            fields,
            variants: &[],
            generics,
        }
    }
}

/// What a container's [`for_each_schema`](crate::ShmSafe::for_each_schema) does: its
/// descriptor `own`, then, if new to `f`, the schemas its element type `T` needs.
pub fn container_schemas<T: crate::ShmSafe>(
    own: Option<&'static Schema>,
    f: &mut dyn FnMut(&'static Schema) -> bool,
) {
    if own.is_none_or(&mut *f) {
        T::for_each_schema(f);
    }
}

const fn hash_fields(mut h: u64, fields: &[FieldSchema]) -> u64 {
    h = hash_u64(h, fields.len() as u64);
    let mut i = 0;
    while i < fields.len() {
        let f = &fields[i];
        h = hash_bytes(h, f.name.as_bytes());
        h = match f.offset {
            Some(o) => hash_u64(h, o as u64),
            None => hash_u64(h, u64::MAX),
        };
        h = hash_u64(h, f.size as u64);
        h = hash_u64(h, f.align as u64);
        h = hash_u64(h, f.fingerprint);
        i += 1;
    }
    h
}

/// What a pointer to a derived type hashes: the kind, name, size, alignment and generic
/// arguments, not the fields. A type may point at itself (`next: OffsetPtr<Node>`), and a
/// fingerprint cannot contain itself; the cut is at the name, as a pointer's target is named
/// by its type. What the target's fields are is checked where the target is itself an
/// object (its own fingerprint) or a root (its schema). Computed apart from the [`Schema`]
/// value, which holds the fingerprints of pointers to the type.
pub const fn pointee_fingerprint(
    kind: SchemaKind,
    name: &str,
    size: usize,
    align: usize,
    generics: &[u64],
) -> u64 {
    head(b"pointee", kind, name, size, align, generics)
}

/// The hash of what identifies a type apart from its fields and variants.
const fn head(
    domain: &[u8],
    kind: SchemaKind,
    name: &str,
    size: usize,
    align: usize,
    generics: &[u64],
) -> u64 {
    let mut h = hash_bytes(FNV_OFFSET, domain);
    h = hash_bytes(h, kind.tag().as_bytes());
    if let SchemaKind::Enum(repr) = kind {
        h = hash_bytes(h, repr.as_bytes());
    }
    h = hash_bytes(h, name.as_bytes());
    h = hash_u64(h, size as u64);
    h = hash_u64(h, align as u64);
    h = hash_u64(h, generics.len() as u64);
    let mut i = 0;
    while i < generics.len() {
        h = hash_u64(h, generics[i]);
        i += 1;
    }
    h
}

impl Schema {
    /// The layout fingerprint. It hashes (FNV-1a) the kind of type, its name (the identifier,
    /// not the crate path: moving a type between modules keeps its fingerprint), size and
    /// alignment, its generic arguments, per field its name, offset, size, alignment and the
    /// field type's own [`LAYOUT_FINGERPRINT`](crate::ShmSafe::LAYOUT_FINGERPRINT), and per
    /// variant its name and discriminant value. Primitives hash their name, arrays their
    /// element and length, tuples their fields, and an [`OffsetPtr<T>`](crate::OffsetPtr)
    /// `T`'s [`POINTEE_FINGERPRINT`](crate::ShmSafe::POINTEE_FINGERPRINT)
    /// ([`pointee_fingerprint`](Self::pointee_fingerprint) for a derived `T`).
    ///
    /// Enum variants record no offsets: under a primitive `repr` the offsets of a variant's
    /// fields follow from their order, sizes and alignments, which are hashed.
    ///
    /// A [`Container`](SchemaKind::Container)'s is the container's own fingerprint instead,
    /// `compound_fingerprint(name, generics)`: its fields describe, they do not identify.
    pub const fn fingerprint(&self) -> u64 {
        if let SchemaKind::Container(_) = self.kind {
            return compound_fingerprint(self.name, self.generics);
        }
        let mut h = head(
            b"schema",
            self.kind,
            self.name,
            self.size,
            self.align,
            self.generics,
        );
        h = hash_fields(h, self.fields);
        h = hash_u64(h, self.variants.len() as u64);
        let mut i = 0;
        while i < self.variants.len() {
            let v = &self.variants[i];
            h = hash_bytes(h, v.name.as_bytes());
            h = hash_bytes(h, &v.discriminant.to_le_bytes());
            h = hash_fields(h, v.fields);
            i += 1;
        }
        h
    }

    /// What a pointer to the type hashes ([`ShmSafe::POINTEE_FINGERPRINT`](crate::ShmSafe::POINTEE_FINGERPRINT)):
    /// [`pointee_fingerprint`] of its kind, name, size, alignment and generic arguments.
    pub const fn pointee_fingerprint(&self) -> u64 {
        pointee_fingerprint(self.kind, self.name, self.size, self.align, self.generics)
    }

    /// A machine-readable encoding, stored in a segment next to a root so that another
    /// program can tell what differs ([`SchemaDiff`]).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let repr = match self.kind {
            SchemaKind::Enum(r) | SchemaKind::Container(r) => r,
            _ => "-",
        };
        let _ = writeln!(
            s,
            "shmkit-schema 1\t{}\t{}\t{}\t{}\t{}\t{:016x}",
            self.kind.tag(),
            repr,
            self.name,
            self.size,
            self.align,
            self.fingerprint()
        );
        encode_fields(&mut s, "", self.fields);
        for v in self.variants {
            let _ = writeln!(s, "variant\t{}\t{}", v.name, v.discriminant);
            encode_fields(&mut s, v.name, v.fields);
        }
        s
    }
}

fn encode_fields(s: &mut String, variant: &str, fields: &[FieldSchema]) {
    for f in fields {
        let offset = f.offset.map_or_else(|| "-".to_string(), |o| o.to_string());
        let name = if variant.is_empty() {
            f.name.to_string()
        } else {
            format!("{variant}.{}", f.name)
        };
        let _ = writeln!(
            s,
            "field\t{name}\t{offset}\t{}\t{}\t{:016x}\t{}",
            f.size,
            f.align,
            f.fingerprint,
            f.ty.replace(['\t', '\n'], " ")
        );
    }
}

/// The readable description: one line for the type, one per field (and variant).
impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SchemaKind::Enum(repr) => write!(f, "enum {} (repr {repr})", self.name)?,
            SchemaKind::Container(layout) => write!(f, "container {} ({layout})", self.name)?,
            kind => write!(f, "{} {}", kind.tag(), self.name)?,
        }
        writeln!(
            f,
            ": size {}, align {}, fingerprint {:016x}",
            self.size,
            self.align,
            self.fingerprint()
        )?;
        write_fields(f, "  ", self.fields)?;
        for v in self.variants {
            writeln!(f, "  variant {} = {}", v.name, v.discriminant)?;
            write_fields(f, "    ", v.fields)?;
        }
        Ok(())
    }
}

fn write_fields(f: &mut fmt::Formatter<'_>, indent: &str, fields: &[FieldSchema]) -> fmt::Result {
    for field in fields {
        write!(f, "{indent}{}: {}", field.name, field.ty)?;
        if let Some(o) = field.offset {
            write!(f, " @ {o}")?;
        }
        writeln!(
            f,
            " (size {}, align {}, fingerprint {:016x})",
            field.size, field.align, field.fingerprint
        )?;
    }
    Ok(())
}

/// One field of an encoded schema.
#[derive(Clone, Debug, PartialEq, Eq)]
struct EncodedField {
    name: String,
    offset: String,
    size: String,
    align: String,
    fingerprint: String,
    ty: String,
}

/// An encoded schema, parsed back.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Encoded {
    header: Vec<String>,
    fields: Vec<EncodedField>,
    /// The variants' names and discriminants, and where their fields start in `fields`.
    variants: Vec<(String, String, usize)>,
}

fn parse(text: &str) -> Option<Encoded> {
    let mut lines = text.lines();
    let header: Vec<String> = lines.next()?.split('\t').map(str::to_string).collect();
    if header.len() != 7 || header[0] != "shmkit-schema 1" {
        return None;
    }
    let mut fields = Vec::new();
    let mut variants = Vec::new();
    for line in lines {
        let parts: Vec<&str> = line.split('\t').collect();
        match parts.as_slice() {
            ["field", name, offset, size, align, fp, ty] => fields.push(EncodedField {
                name: name.to_string(),
                offset: offset.to_string(),
                size: size.to_string(),
                align: align.to_string(),
                fingerprint: fp.to_string(),
                ty: ty.to_string(),
            }),
            ["variant", name, discriminant] => {
                variants.push((name.to_string(), discriminant.to_string(), fields.len()))
            }
            _ => return None,
        }
    }
    Some(Encoded {
        header,
        fields,
        variants,
    })
}

/// A schema as a segment stores it ([`Schema::encode`]), read back without the program
/// that wrote it: what a tool needs to describe a root's fields. The bytes are untrusted:
/// [`parse`](Self::parse) refuses any line it cannot read, and nothing here says the
/// figures agree with the value's bytes (a reader bounds-checks every field it reads).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredSchema {
    /// `struct`, `tuple struct`, `unit struct`, `enum` or `container`.
    pub kind: String,
    /// The type's identifier.
    pub name: String,
    /// `size_of` the type, as stored.
    pub size: usize,
    /// `align_of` the type, as stored.
    pub align: usize,
    /// The layout fingerprint, as stored.
    pub fingerprint: u64,
    /// The fields (an enum's are named `Variant.field` and have no offset).
    pub fields: Vec<StoredField>,
    /// An enum's `repr` as written (`u8`, `C, u8`), a container's layout (`sequence`, …;
    /// see [`SchemaKind::Container`]); None for a struct.
    pub repr: Option<String>,
    /// An enum's variants, in order (empty for a struct).
    pub variants: Vec<StoredVariant>,
}

/// One variant of an enum's [`StoredSchema`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredVariant {
    /// The variant's name.
    pub name: String,
    /// Its discriminant, as stored.
    pub discriminant: i128,
    /// Its fields in order, named without the variant's prefix (no offsets: the `repr`
    /// defines them).
    pub fields: Vec<StoredField>,
}

/// One field of a [`StoredSchema`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredField {
    /// The field's name.
    pub name: String,
    /// The field's type as written in the writer's source.
    pub ty: String,
    /// Offset from the start of the value (`None` in enum variants).
    pub offset: Option<usize>,
    /// `size_of` the field's type.
    pub size: usize,
    /// `align_of` the field's type.
    pub align: usize,
    /// The field type's layout fingerprint.
    pub fingerprint: u64,
}

impl StoredSchema {
    /// Reads an encoded schema; `None` when the bytes are not one (corrupted, or written by
    /// an incompatible shmkit).
    pub fn parse(bytes: &[u8]) -> Option<StoredSchema> {
        let e = parse(std::str::from_utf8(bytes).ok()?)?;
        let num = |t: &str| t.parse::<usize>().ok();
        let hex = |t: &str| u64::from_str_radix(t, 16).ok();
        let fields = e
            .fields
            .iter()
            .map(|f| {
                Some(StoredField {
                    name: f.name.clone(),
                    ty: f.ty.clone(),
                    offset: if f.offset == "-" {
                        None
                    } else {
                        Some(num(&f.offset)?)
                    },
                    size: num(&f.size)?,
                    align: num(&f.align)?,
                    fingerprint: hex(&f.fingerprint)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let mut variants = Vec::with_capacity(e.variants.len());
        for (i, (name, discriminant, start)) in e.variants.iter().enumerate() {
            let end = e.variants.get(i + 1).map_or(fields.len(), |v| v.2);
            let prefix = format!("{name}.");
            let fields = fields[*start..end]
                .iter()
                .map(|f| {
                    Some(StoredField {
                        name: f.name.strip_prefix(&prefix)?.to_string(),
                        ..f.clone()
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            variants.push(StoredVariant {
                name: name.clone(),
                discriminant: discriminant.parse().ok()?,
                fields,
            });
        }
        let struct_fields = e.variants.first().map_or(fields.len(), |v| v.2);
        if struct_fields != 0 && !variants.is_empty() {
            return None;
        }
        Some(StoredSchema {
            repr: (e.header[2] != "-").then(|| e.header[2].clone()),
            variants,
            kind: e.header[1].clone(),
            name: e.header[3].clone(),
            size: num(&e.header[4])?,
            align: num(&e.header[5])?,
            fingerprint: hex(&e.header[6])?,
            fields,
        })
    }
}

/// What differs between the layout stored in a segment and the layout a program expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaDiff {
    lines: Vec<String>,
}

impl SchemaDiff {
    /// Compares the encoding `stored` (from [`Schema::encode`], read from a segment) with
    /// `expected`; `None` when the layouts are the same.
    pub fn between(stored: &[u8], expected: &Schema) -> Option<SchemaDiff> {
        let ours_text = expected.encode();
        if stored == ours_text.as_bytes() {
            return None;
        }
        let ours = parse(&ours_text)?;
        let theirs = match std::str::from_utf8(stored).ok().and_then(parse) {
            Some(t) => t,
            None => {
                return Some(SchemaDiff {
                    lines: vec!["the stored schema is unreadable (corrupted or written by an incompatible shmkit)".into()],
                })
            }
        };
        // Same fingerprint: same layout (only type spellings differ).
        if theirs.header[6] == ours.header[6] {
            return None;
        }
        let mut lines = Vec::new();
        let (h0, h1) = (&theirs.header, &ours.header);
        if h0[1] != h1[1] || h0[2] != h1[2] {
            let kind = |h: &[String]| {
                if h[2] == "-" {
                    h[1].clone()
                } else {
                    format!("{} (repr {})", h[1], h[2])
                }
            };
            lines.push(format!(
                "kind: the segment holds a {}, this program expects a {}",
                kind(h0),
                kind(h1)
            ));
        }
        if h0[3] != h1[3] {
            lines.push(format!(
                "type name: the segment holds `{}`, this program expects `{}`",
                h0[3], h1[3]
            ));
        }
        for f in &ours.fields {
            if !theirs.fields.iter().any(|t| t.name == f.name) {
                lines.push(format!("added: {}: {}{}", f.name, f.ty, at(&f.offset)));
            }
        }
        for t in &theirs.fields {
            if !ours.fields.iter().any(|f| f.name == t.name) {
                lines.push(format!("removed: {}: {}{}", t.name, t.ty, at(&t.offset)));
            }
        }
        for f in &ours.fields {
            let Some(t) = theirs.fields.iter().find(|t| t.name == f.name) else {
                continue;
            };
            let same_type =
                t.size == f.size && t.align == f.align && t.fingerprint == f.fingerprint;
            if !same_type && t.ty == f.ty && t.size == f.size && t.align == f.align {
                lines.push(format!(
                    "retyped: {}: {} has another layout inside (fingerprint {} -> {}), though \
                     its size ({}) and alignment ({}) are the same",
                    f.name, f.ty, t.fingerprint, f.fingerprint, f.size, f.align
                ));
            } else if !same_type {
                lines.push(format!(
                    "retyped: {}: was {} (size {}, align {}), now {} (size {}, align {})",
                    f.name, t.ty, t.size, t.align, f.ty, f.size, f.align
                ));
            } else if t.offset != f.offset {
                lines.push(format!(
                    "moved: {}: {} was at offset {}, now at offset {}",
                    f.name, f.ty, t.offset, f.offset
                ));
            }
        }
        if h0[4] != h1[4] || h0[5] != h1[5] {
            lines.push(format!(
                "size/align: was {}/{}, now {}/{}",
                h0[4], h0[5], h1[4], h1[5]
            ));
        }
        if lines.is_empty() {
            lines.push(format!(
                "fingerprint: was {}, now {} (the field types' layouts differ deeper down)",
                h0[6], h1[6]
            ));
        }
        Some(SchemaDiff { lines })
    }

    /// The differences, one per line.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

fn at(offset: &str) -> String {
    if offset == "-" {
        String::new()
    } else {
        format!(" at offset {offset}")
    }
}

impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::leaf_fingerprint;

    const A: Schema = Schema {
        name: "Db",
        kind: SchemaKind::Struct,
        size: 16,
        align: 8,
        fields: &[
            FieldSchema {
                name: "hits",
                ty: "u64",
                offset: Some(0),
                size: 8,
                align: 8,
                fingerprint: leaf_fingerprint("u64", 8, 8),
            },
            FieldSchema {
                name: "flag",
                ty: "u32",
                offset: Some(8),
                size: 4,
                align: 4,
                fingerprint: leaf_fingerprint("u32", 4, 4),
            },
        ],
        variants: &[],
        generics: &[],
    };

    #[test]
    fn an_enum_is_read_back_with_its_repr_variants_and_their_fields() {
        const U8: FieldSchema = FieldSchema {
            name: "0",
            ty: "u8",
            offset: None,
            size: 1,
            align: 1,
            fingerprint: leaf_fingerprint("u8", 1, 1),
        };
        const E: Schema = Schema {
            name: "Tagged",
            kind: SchemaKind::Enum("C, u16"),
            size: 4,
            align: 2,
            fields: &[],
            variants: &[
                VariantSchema {
                    name: "Empty",
                    discriminant: -1,
                    fields: &[],
                },
                VariantSchema {
                    name: "Small",
                    discriminant: 7,
                    fields: &[U8, FieldSchema { name: "1", ..U8 }],
                },
            ],
            generics: &[],
        };
        let stored = StoredSchema::parse(E.encode().as_bytes()).unwrap();
        assert_eq!(stored.repr.as_deref(), Some("C, u16"));
        let v: Vec<(&str, i128, usize)> = stored
            .variants
            .iter()
            .map(|v| (v.name.as_str(), v.discriminant, v.fields.len()))
            .collect();
        assert_eq!(v, [("Empty", -1, 0), ("Small", 7, 2)]);
        assert_eq!(stored.variants[1].fields[1].name, "1");
        assert_eq!(stored.fields.len(), 2); // flattened, as `Small.0` and `Small.1`
        assert_eq!(
            StoredSchema::parse(A.encode().as_bytes()).unwrap().repr,
            None
        );
        // A variant's field must carry its variant's name.
        let forged = E.encode().replace("Small.1", "Other.1");
        assert!(StoredSchema::parse(forged.as_bytes()).is_none());
    }

    #[test]
    fn same_schema_has_no_diff_and_fingerprint_is_const() {
        const FP: u64 = A.fingerprint();
        assert_eq!(FP, A.fingerprint());
        assert!(SchemaDiff::between(A.encode().as_bytes(), &A).is_none());
    }

    #[test]
    fn diff_lists_added_removed_retyped_moved() {
        const B: Schema = Schema {
            fields: &[
                FieldSchema {
                    name: "flag",
                    ty: "u64",
                    offset: Some(0),
                    size: 8,
                    align: 8,
                    fingerprint: leaf_fingerprint("u64", 8, 8),
                },
                FieldSchema {
                    name: "hits",
                    ty: "u64",
                    offset: Some(8),
                    size: 8,
                    align: 8,
                    fingerprint: leaf_fingerprint("u64", 8, 8),
                },
                FieldSchema {
                    name: "new",
                    ty: "u8",
                    offset: Some(16),
                    size: 1,
                    align: 1,
                    fingerprint: leaf_fingerprint("u8", 1, 1),
                },
            ],
            size: 24,
            ..A
        };
        let b = B;
        let d = SchemaDiff::between(A.encode().as_bytes(), &b).unwrap();
        let text = d.to_string();
        assert!(text.contains("added: new: u8 at offset 16"), "{text}");
        assert!(text.contains("retyped: flag"), "{text}");
        assert!(text.contains("moved: hits"), "{text}");
        assert!(text.contains("size/align: was 16/8, now 24/8"), "{text}");
        let d = SchemaDiff::between(b.encode().as_bytes(), &A).unwrap();
        assert!(d.to_string().contains("removed: new: u8"), "{d}");
        let stored = StoredSchema::parse(A.encode().as_bytes()).unwrap();
        assert_eq!(
            (stored.name.as_str(), stored.size, stored.align),
            ("Db", 16, 8)
        );
        assert_eq!(stored.fingerprint, A.fingerprint());
        assert_eq!(stored.fields[1].name, "flag");
        assert_eq!(stored.fields[1].offset, Some(8));
        assert!(StoredSchema::parse(b"garbage").is_none());
        let d = SchemaDiff::between(b"garbage", &A).unwrap();
        assert!(d.to_string().contains("unreadable"));
    }
}

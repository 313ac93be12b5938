//! Why bytes are not a valid value: what [`ShmSafe::validate`](super::ShmSafe::validate)
//! returns, with the field path and byte offset it is about, and the layout arithmetic the
//! derive's validators of enums use.

/// A value that is not valid: a `bool` byte that is 2, a `char` that is a surrogate, a zero
/// `NonZero*`, an enum tag that names no variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The path to the offending field from the checked value (`flags[2].on`, `Pair.a`, or
    /// empty for the value itself).
    pub field: String,
    /// Its offset in bytes from the start of the checked value.
    pub offset: usize,
    /// What a valid value would be.
    pub expected: &'static str,
}

impl Invalid {
    /// The value itself is invalid.
    pub fn new(expected: &'static str) -> Self {
        Invalid {
            field: String::new(),
            offset: 0,
            expected,
        }
    }

    /// The same, seen from a value that holds the checked one as `field` (a field name or
    /// `[i]`) at byte `offset`.
    #[must_use]
    pub fn within(mut self, field: &str, offset: usize) -> Self {
        let sep = if self.field.is_empty() || self.field.starts_with('[') {
            ""
        } else {
            "."
        };
        self.field = format!("{field}{sep}{}", self.field);
        self.offset += offset;
        self
    }
}

/// The offset of field `index` of an enum variant whose fields (`(size, align)` each, in
/// order) are laid out as `repr(C)` from byte `start` on. Under a primitive `repr` a
/// variant is a `repr(C)` struct of the tag and the fields, so `start` is the tag's size;
/// under `repr(C, int)` the fields follow in a union aligned for every variant, so `start`
/// is [`payload_start`] (the layouts RFC 2195 defines).
pub const fn variant_field_offset(start: usize, fields: &[(usize, usize)], index: usize) -> usize {
    let mut end = start;
    let mut i = 0;
    while i < fields.len() {
        let (size, align) = fields[i];
        let offset = end.next_multiple_of(align);
        if i == index {
            return offset;
        }
        end = offset + size;
        i += 1;
    }
    end
}

/// Where the variants' fields start under `repr(C, int)`: after the tag, aligned for the
/// most aligned field of any variant (`aligns`).
pub const fn payload_start(tag_size: usize, aligns: &[usize]) -> usize {
    let mut align = 1;
    let mut i = 0;
    while i < aligns.len() {
        if aligns[i] > align {
            align = aligns[i];
        }
        i += 1;
    }
    tag_size.next_multiple_of(align)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_from_the_outside_in() {
        let e = Invalid::new("a bool (0 or 1)")
            .within("on", 4)
            .within("[2]", 16)
            .within("flags", 8);
        assert_eq!((e.field.as_str(), e.offset), ("flags[2].on", 28));
    }

    #[test]
    fn variant_offsets_follow_repr_c() {
        #[allow(dead_code)]
        #[repr(u8)]
        enum E {
            A(u16, u64, u8),
        }
        #[allow(dead_code)]
        #[repr(C, u8)]
        enum F {
            A(u16),
            B(u64),
        }
        let fields = [(2, 2), (8, 8), (1, 1)];
        let offsets: Vec<usize> = (0..3)
            .map(|i| variant_field_offset(1, &fields, i))
            .collect();
        let e = E::A(1, 2, 3);
        let E::A(a, b, c) = &e;
        let base = &e as *const E as usize;
        let real: Vec<usize> = [
            a as *const u16 as usize,
            b as *const u64 as usize,
            c as *const u8 as usize,
        ]
        .iter()
        .map(|p| p - base)
        .collect();
        assert_eq!(offsets, real);
        let f = F::A(7);
        let F::A(x) = &f else { unreachable!() };
        let start = payload_start(1, &[2, 8]);
        assert_eq!(
            variant_field_offset(start, &[(2, 2)], 0),
            x as *const u16 as usize - &f as *const F as usize
        );
    }
}

//! The table of stored type schemas: constructing objects of derived types stores their
//! schemas beside the objects, never as objects (no count, listing, lookup or destruction
//! of user objects sees them), and forged table words or bytes are errors, never a crash.

// The types are `pub` to exercise the derive on public items; they need no docs here.
#![allow(missing_docs)]

use shmkit::inspect::{self, Value};
use shmkit::{
    AlignedBuffer, Anonymous, Error, HashIndex, ManagedExternalBuffer, ManagedHeapMemory,
    NamedIndex, ObjectKind, OrderedIndex, ShmSafe, Unique,
};
use shmkit_test_support::{image_bytes, offsets};

#[derive(ShmSafe, Clone, Copy)]
#[repr(C)]
pub struct Point {
    pub x: u32,
    pub y: u32,
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Wrapper(pub u32, pub Point);

#[derive(ShmSafe, Clone, Copy)]
#[repr(u8)]
pub enum Color {
    Red = 1,
    Blue = 4,
}

/// A heap segment of index kind `I` holding a named `Wrapper` (which holds a `Point`), a
/// unique `Color` and an anonymous `Point`.
fn populated<I: NamedIndex>() -> ManagedHeapMemory<I> {
    let seg = ManagedHeapMemory::options()
        .index::<I>()
        .create(1 << 16)
        .unwrap();
    seg.construct("w", Wrapper(7, Point { x: 1, y: 2 }))
        .unwrap();
    seg.construct(Unique, Color::Blue).unwrap();
    seg.construct(Anonymous, Point { x: 3, y: 4 }).unwrap();
    seg
}

/// The names of the types whose schemas `seg` stores, sorted.
fn stored_types<I: NamedIndex>(seg: &ManagedHeapMemory<I>) -> Vec<String> {
    let mut names: Vec<String> = inspect::type_schemas(seg)
        .unwrap()
        .into_iter()
        .map(|t| t.schema.expect("a sound schema").name)
        .collect();
    names.sort();
    names
}

fn schemas_are_no_objects<I: NamedIndex>() {
    let mut seg = populated::<I>();
    assert_eq!(stored_types(&seg), ["Color", "Point", "Wrapper"]);
    assert_eq!((seg.num_named_objects(), seg.num_unique_objects()), (1, 1));
    let named: Vec<String> = seg.named_objects().unwrap().map(|o| o.name).collect();
    assert_eq!(named, ["w"]);
    assert_eq!(seg.unique_objects().unwrap().count(), 1);

    // Neither the old names nor the table's keys reach a schema.
    for t in inspect::type_schemas(&seg).unwrap() {
        let fingerprint = t.schema.as_ref().unwrap().fingerprint;
        assert_eq!(t.key, format!("{fingerprint:016x}"));
        assert!(seg.find_slice::<u8>(t.key.as_str()).unwrap().is_none());
        assert!(!seg.destroy::<u8>(t.key.as_str()).unwrap());
        // The old names are reserved: the user cannot reach them at all.
        let old = format!("__shmkit_schema_type::{}", t.key);
        assert!(matches!(
            seg.find_slice::<u8>(old.as_str()),
            Err(shmkit::Error::InvalidName { .. })
        ));
    }

    // The inspector lists the user's objects alone, rendered from the table.
    let objects = inspect::objects(&seg).unwrap();
    let kinds: Vec<(ObjectKind, &str)> =
        objects.iter().map(|o| (o.kind, o.name.as_str())).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    let Value::Struct(fields) = &objects[0].value else {
        panic!("w is rendered: {:?}", objects[0].value);
    };
    assert_eq!(fields[0], ("0".into(), Value::Unsigned(7)));
    assert_eq!(
        fields[1].1,
        Value::Struct(vec![
            ("x".into(), Value::Unsigned(1)),
            ("y".into(), Value::Unsigned(2)),
        ])
    );

    // One schema per type, kept when every object of it is gone.
    seg.construct("w2", Wrapper(8, Point { x: 0, y: 0 }))
        .unwrap();
    assert!(seg.destroy::<Wrapper>("w").unwrap());
    assert!(seg.destroy::<Wrapper>("w2").unwrap());
    assert!(seg.destroy::<Color>(Unique).unwrap());
    seg.shrink_to_fit_indexes().unwrap();
    assert_eq!((seg.num_named_objects(), seg.num_unique_objects()), (0, 0));
    assert_eq!(stored_types(&seg), ["Color", "Point", "Wrapper"]);
    seg.check().unwrap();

    // A copy checks and repairs the table like the other indexes.
    let image = image_bytes(&mut seg);
    let copy = ManagedHeapMemory::options()
        .index::<I>()
        .from_image(&image)
        .unwrap();
    assert_eq!(stored_types(&copy), ["Color", "Point", "Wrapper"]);
}

#[test]
fn type_schemas_are_no_objects_in_a_hash_index() {
    schemas_are_no_objects::<HashIndex>();
}

#[test]
fn type_schemas_are_no_objects_in_an_ordered_index() {
    schemas_are_no_objects::<OrderedIndex>();
}

/// The image of [`populated`] with the header word at `at` set to `value`.
fn forged<I: NamedIndex>(at: usize, value: u64) -> Vec<u8> {
    let mut seg = populated::<I>();
    let mut image = image_bytes(&mut seg);
    image[at..at + 8].copy_from_slice(&value.to_ne_bytes());
    image
}

/// The offset of the data of the object named "w" in `image`.
fn data_of_w<I: NamedIndex>(image: &[u8]) -> u64 {
    let seg = ManagedHeapMemory::options()
        .index::<I>()
        .from_image(image)
        .unwrap();
    let objects = inspect::objects(&seg).unwrap();
    objects.iter().find(|o| o.name == "w").unwrap().offset
}

fn forged_table_words_are_errors<I: NamedIndex>() {
    let image = image_bytes(&mut populated::<I>());
    let len = image.len() as u64;
    let word = |at: usize| u64::from_ne_bytes(image[at..at + 8].try_into().unwrap());
    let (root, count) = (word(offsets::SCHEMA_ROOT), word(offsets::SCHEMA_COUNT));
    assert!(root != 0 && count == 3, "the table is where the words say");
    let forgeries = [
        (offsets::SCHEMA_ROOT, u64::MAX),
        (offsets::SCHEMA_ROOT, len + 16),
        (offsets::SCHEMA_ROOT, 8),
        (offsets::SCHEMA_ROOT, root + 16),
        // A user object's bytes, and its entry, where the table should be.
        (offsets::SCHEMA_ROOT, data_of_w::<I>(&image)),
        (offsets::SCHEMA_ROOT, word(offsets::NAMED_ROOT)),
        (offsets::SCHEMA_COUNT, u64::MAX),
        (offsets::SCHEMA_COUNT, count + 1),
        (offsets::SCHEMA_COUNT, 0),
    ];
    for (at, value) in forgeries {
        let image = forged::<I>(at, value);
        // A private copy is checked at open.
        let err = ManagedHeapMemory::options()
            .index::<I>()
            .from_image(&image)
            .map(drop)
            .unwrap_err();
        assert!(
            matches!(err, Error::Corrupted { .. }),
            "{at}={value}: {err:?}"
        );
        // A read-only mapping trusts the header; `check` and the inspector report.
        let buf = AlignedBuffer::from_image(&image);
        let Ok(seg) = ManagedExternalBuffer::options()
            .read_only()
            .index::<I>()
            .open(&buf)
        else {
            continue;
        };
        let err = seg.check().unwrap_err();
        assert!(
            matches!(err, Error::Corrupted { .. }),
            "{at}={value}: {err:?}"
        );
        let _ = inspect::objects(&seg);
        let _ = inspect::type_schemas(&seg);
    }
}

#[test]
fn forged_schema_table_words_are_errors_in_a_hash_index() {
    forged_table_words_are_errors::<HashIndex>();
}

#[test]
fn forged_schema_table_words_are_errors_in_an_ordered_index() {
    forged_table_words_are_errors::<OrderedIndex>();
}

/// A segment written before the table (both words zero) reads as it did: no schemas, the
/// objects found and listed, values of derived types not described.
#[test]
fn a_segment_without_a_table_reads_as_before() {
    let mut image = forged::<HashIndex>(offsets::SCHEMA_ROOT, 0);
    image[offsets::SCHEMA_COUNT..offsets::SCHEMA_COUNT + 8].copy_from_slice(&[0; 8]);
    let seg = ManagedHeapMemory::from_image(&image).unwrap();
    seg.check().unwrap();
    assert!(inspect::type_schemas(&seg).unwrap().is_empty());
    assert_eq!(seg.find::<Wrapper>("w").unwrap().unwrap().0, 7);
    let objects = inspect::objects(&seg).unwrap();
    assert!(matches!(objects[0].value, Value::Opaque { .. }));
}

/// Forged bytes in a stored schema make it unreadable for the inspector, which renders
/// what does not need it.
#[test]
fn a_forged_stored_schema_is_unreadable_not_a_crash() {
    let mut image = image_bytes(&mut populated::<HashIndex>());
    let seg = ManagedHeapMemory::from_image(&image).unwrap();
    let point = inspect::type_schemas(&seg)
        .unwrap()
        .into_iter()
        .find(|t| t.schema.as_ref().is_ok_and(|s| s.name == "Point"))
        .unwrap();
    drop(seg);
    image[point.offset as usize] = b'X';
    let seg = ManagedHeapMemory::from_image(&image).unwrap();
    let objects = inspect::objects(&seg).unwrap();
    let Value::Struct(fields) = &objects[0].value else {
        panic!("w is rendered: {:?}", objects[0].value);
    };
    assert_eq!(fields[0].1, Value::Unsigned(7));
    assert!(
        matches!(&fields[1].1, Value::Invalid(why) if why.contains("unreadable")),
        "{:?}",
        fields[1].1
    );
}

/// A copy taken while a process was storing a schema (its entry linked, still being
/// built, the index lock held): the repair drops the half-made schema and counts the table
/// again, and the next construction of the type stores it anew.
#[test]
fn a_half_made_schema_is_dropped_by_the_repair_and_stored_again() {
    let mut image = image_bytes(&mut populated::<HashIndex>());
    // An entry starts with its tag (0xB0E5), kind (4: a stored schema) and state (2: live).
    let tag = [0xE5, 0xB0, 4, 2];
    let at = image
        .windows(4)
        .position(|w| w == tag)
        .expect("a stored schema's entry");
    image[at + 3] = 1; // being built
    image[offsets::INDEX_LOCK..offsets::INDEX_LOCK + 4].copy_from_slice(&1u32.to_ne_bytes());
    let seg = ManagedHeapMemory::from_image(&image).expect("the indexes are rebuilt");
    seg.check().unwrap();
    assert_eq!(inspect::type_schemas(&seg).unwrap().len(), 2);
    seg.construct(Anonymous, Wrapper(1, Point { x: 0, y: 0 }))
        .unwrap();
    seg.construct(Anonymous, Color::Red).unwrap();
    assert_eq!(stored_types(&seg), ["Color", "Point", "Wrapper"]);
    assert_eq!(seg.num_named_objects(), 1);
}

/// A container constructed on its own stores its descriptor too, so the inspector renders
/// it; once it is destroyed, the segment gives all its memory back but the schemas, which
/// are bookkeeping: `all_memory_deallocated` says so, and says false while anything of the
/// user's is left.
#[test]
fn a_bare_container_is_rendered_and_its_memory_given_back() {
    use shmkit::containers::{Vec, VecExt};
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("v", Vec::<u32>::new()).unwrap();
    seg.find_mut::<Vec<u32>>("v")
        .unwrap()
        .unwrap()
        .extend([3, 1, 4])
        .unwrap();
    let objects = inspect::objects(&seg).unwrap();
    assert_eq!(
        objects[0].value,
        Value::Array {
            elements: [3, 1, 4].map(Value::Unsigned).to_vec(),
            length: 3
        }
    );
    assert!(!inspect::type_schemas(&seg).unwrap().is_empty());
    seg.construct("left", 5u64).unwrap();
    assert!(seg.destroy::<Vec<u32>>("v").unwrap());
    assert!(!seg.all_memory_deallocated(), "`left` is still there");
    assert!(seg.destroy::<u64>("left").unwrap());
    assert!(seg.all_memory_deallocated());
    assert!(!inspect::type_schemas(&seg).unwrap().is_empty());
}

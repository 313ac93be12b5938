//! `#[derive(ShmSafe)]` and `#[shm_segment]` end to end: generated impls, accessors,
//! relocation, schemas (insta snapshots) and typed roots on a heap segment.

// The types are `pub` to exercise the derive on public items; they need no docs here.
#![allow(missing_docs)]

use shmkit::{
    shm_segment, AlignedBuffer, Error, ManagedExternalBuffer, ManagedHeapMemory, OffsetPtr,
    PositionIndependent, ShmMut, ShmSafe,
};

#[derive(ShmSafe, Default, Debug, PartialEq)]
#[repr(C)]
pub struct Point {
    pub x: u32,
    pub y: u32,
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Node {
    pub value: u64,
    pub next: OffsetPtr<Node>,
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Pair<T, const N: usize> {
    pub items: [T; N],
    pub tag: (u8, u16),
}

#[derive(ShmSafe, Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
pub enum Color {
    Red = 1,
    Green = 2,
    Blue = 4,
}

#[derive(ShmSafe)]
#[repr(u16)]
pub enum Link {
    Empty,
    To(OffsetPtr<u64>),
    Pair { a: u32, b: OffsetPtr<u32> },
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Wrapper(pub u32, pub Point);

#[derive(ShmSafe)]
#[repr(C)]
pub struct Unit;

#[shm_segment(name = "db")]
#[derive(Default)]
pub struct Db {
    pub hits: u64,
    pub origin: Point,
    pub head: *const u64,
    pub colors: [u8; 4],
}

fn assert_pi<T: PositionIndependent>() {}

#[test]
fn plain_types_are_position_independent() {
    assert_pi::<Point>();
    assert_pi::<Pair<Point, 3>>();
    assert_pi::<Color>();
    assert_pi::<Wrapper>();
    assert_pi::<Unit>();
}

#[test]
fn accessors_give_mut_for_plain_fields_and_guards_for_pointers() {
    let mut p = Point { x: 1, y: 2 };
    let mut g = ShmMut::from_mut(&mut p);
    *g.x_mut() += 10;
    *g.y_mut() = 5;
    assert_eq!(p, Point { x: 11, y: 5 });

    let target = Node {
        value: 7,
        next: OffsetPtr::null(),
    };
    let mut n = Node {
        value: 1,
        next: OffsetPtr::null(),
    };
    // SAFETY: `n` stays where it is while the guard lives.
    let mut g = unsafe { ShmMut::new(&mut n) };
    *g.value_mut() = 3;
    // Outside a segment a pointer can only be null.
    assert!(g.next_mut().set_target(&target).is_err());
    assert_eq!(n.value, 3);
    assert!(n.next.is_null());

    let mut w = Wrapper(1, Point { x: 0, y: 0 });
    let mut g = ShmMut::from_mut(&mut w);
    *g.field0_mut() = 9;
    g.field1_mut().y_mut().clone_from(&4);
    assert_eq!((w.0, w.1.y), (9, 4));
}

#[test]
fn derived_relocate_fixes_pointers_in_structs_and_enums() {
    let target = Node {
        value: 42,
        next: OffsetPtr::null(),
    };
    let mut old = core::mem::MaybeUninit::<Node>::uninit();
    // SAFETY: `old` is valid for writes; the pointer is set in place.
    unsafe {
        old.as_mut_ptr().write(Node {
            value: 1,
            next: OffsetPtr::null(),
        });
        (*old.as_mut_ptr()).next.set(&target);
    }
    let mut new = core::mem::MaybeUninit::<Node>::uninit();
    // SAFETY: both valid and distinct; `new` is relocated by relocate_value.
    unsafe {
        shmkit::relocate_value(new.as_mut_ptr(), old.as_mut_ptr());
        assert_eq!((*(*new.as_ptr()).next.get()).value, 42);
    }

    let t2 = 5u32;
    let mut old = core::mem::MaybeUninit::<Link>::uninit();
    // SAFETY: as above.
    unsafe {
        old.as_mut_ptr().write(Link::Pair {
            a: 1,
            b: OffsetPtr::null(),
        });
        if let Link::Pair { b, .. } = &mut *old.as_mut_ptr() {
            b.set(&t2);
        }
    }
    let mut new = core::mem::MaybeUninit::<Link>::uninit();
    // SAFETY: as above.
    unsafe {
        shmkit::relocate_value(new.as_mut_ptr(), old.as_mut_ptr());
        match &*new.as_ptr() {
            Link::Pair { a, b } => assert_eq!((*a, *b.get()), (1, 5)),
            _ => unreachable!(),
        }
    }
    let _ = (Link::Empty, Link::To(OffsetPtr::null()));
}

#[test]
fn fingerprints_follow_layout_not_names_of_paths() {
    mod other {
        #[derive(shmkit::ShmSafe)]
        #[repr(C)]
        pub struct Point {
            pub x: u32,
            pub y: u32,
        }
        #[derive(shmkit::ShmSafe)]
        #[repr(C)]
        pub struct PointSwapped {
            pub y: u32,
            pub x: u32,
        }
    }
    assert_eq!(Point::LAYOUT_FINGERPRINT, other::Point::LAYOUT_FINGERPRINT);
    assert_eq!(Point::type_fingerprint(), Point::LAYOUT_FINGERPRINT);
    assert_ne!(
        other::Point::LAYOUT_FINGERPRINT,
        other::PointSwapped::LAYOUT_FINGERPRINT
    );
    const FP: u64 = <Db as ShmSafe>::LAYOUT_FINGERPRINT;
    assert_ne!(FP, 0);
    assert_ne!(
        <Pair<u8, 2>>::LAYOUT_FINGERPRINT,
        <Pair<u16, 2>>::LAYOUT_FINGERPRINT
    );
}

#[test]
fn the_crate_path_is_not_part_of_the_layout() {
    mod renamed {
        extern crate shmkit as my_shm;
        use super::Point;

        #[my_shm::shm_segment(name = "db")]
        #[shm(crate = "my_shm")]
        #[derive(Default)]
        pub struct Db {
            pub hits: u64,
            pub origin: Point,
            pub head: *const u64,
            pub colors: [u8; 4],
        }
    }
    let encode = |s: Option<&'static shmkit::Schema>| s.unwrap().encode();
    assert_eq!(encode(renamed::Db::SCHEMA), encode(Db::SCHEMA));
    assert_eq!(
        <renamed::Db as ShmSafe>::LAYOUT_FINGERPRINT,
        <Db as ShmSafe>::LAYOUT_FINGERPRINT
    );
}

#[test]
fn schema_descriptions() {
    let describe = |s: Option<&'static shmkit::Schema>| s.unwrap().to_string();
    insta::assert_snapshot!("schema_db", describe(Db::SCHEMA));
    insta::assert_snapshot!("schema_node", describe(Node::SCHEMA));
    insta::assert_snapshot!("schema_pair", describe(<Pair<Point, 2>>::SCHEMA));
    insta::assert_snapshot!("schema_color", describe(Color::SCHEMA));
    insta::assert_snapshot!("schema_link", describe(Link::SCHEMA));
    insta::assert_snapshot!("schema_wrapper", describe(Wrapper::SCHEMA));
}

#[test]
fn root_is_built_once_and_mutated_through_the_guard() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    {
        let db = seg.root::<Db>().unwrap();
        assert_eq!(db.hits, 0);
        assert!(db.head.is_null());
    }
    {
        let mut db = seg.root_mut::<Db>().unwrap();
        *db.hits_mut() += 5;
        *db.origin_mut().x_mut() = 3;
        db.colors_mut()[2] = 9;
    }
    let value = seg.construct("value", 77u64).unwrap() as *const u64;
    {
        let mut db = seg.root_mut::<Db>().unwrap();
        db.head_mut().set_target(value).unwrap();
        // A target outside the segment is refused: it would not exist for another mapping.
        let local = 1u64;
        assert!(db.head_mut().set_target(&local).is_err());
    }
    let db = seg.root::<Db>().unwrap();
    assert_eq!((db.hits, db.origin.x, db.colors[2]), (5, 3, 9));
    // SAFETY: aims at the live `value` object.
    assert_eq!(unsafe { *db.head.get() }, 77);
    assert_eq!(seg.find_root::<Db>().unwrap().map(|d| d.hits), Some(5));
}

#[test]
fn a_read_only_mapping_finds_the_root_and_never_builds_it() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let empty = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&empty)
        .unwrap();
    let err = reader.root::<Db>().err().unwrap();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("segment root") && message.contains("a writable mapping"),
        "{message}"
    );
    assert!(reader.find_root::<Db>().unwrap().is_none());

    *seg.root_mut::<Db>().unwrap().hits_mut() = 7;
    let built = AlignedBuffer::from_image(seg.image());
    let reader = ManagedExternalBuffer::options()
        .read_only()
        .open(&built)
        .unwrap();
    assert_eq!(reader.root::<Db>().unwrap().hits, 7);
}

mod v2 {
    /// The same root name as `Db`, with another layout.
    #[shmkit::shm_segment(name = "db")]
    #[derive(Default)]
    pub struct Db {
        pub hits: u32,
        pub colors: [u8; 4],
        pub origin: super::Point,
        pub added: u16,
    }
}

#[test]
fn another_layout_is_a_schema_mismatch() {
    let seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.root::<Db>().unwrap();
    let err = seg.root::<v2::Db>().err().unwrap();
    assert!(matches!(err, Error::SchemaMismatch { .. }));
    insta::assert_snapshot!("schema_mismatch_db_v2", err.to_string());
    let err = seg.find_root::<v2::Db>().err().unwrap();
    assert!(matches!(err, Error::SchemaMismatch { .. }));
    // The original still works.
    assert_eq!(seg.root::<Db>().unwrap().hits, 0);
}

#[test]
fn racing_threads_get_one_root() {
    let seg = ManagedHeapMemory::new(1 << 16).unwrap();
    let addrs: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| seg.root::<Db>().unwrap() as *const Db as usize))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(addrs.windows(2).all(|w| w[0] == w[1]));
    // The root and its schema; the schemas of its type and of `Point` are no objects
    // (ARCHITECTURE.md, "Type schemas").
    assert_eq!(seg.named_objects().unwrap().count(), 2);
    assert_eq!(shmkit::inspect::type_schemas(&seg).unwrap().len(), 2);
}

mod v3 {
    /// Same fields, names, sizes and offsets as `Db`, but `origin` is a point whose fields
    /// are swapped: only the child fingerprint tells.
    #[derive(shmkit::ShmSafe, Default)]
    #[repr(C)]
    pub struct Point {
        pub y: u32,
        pub x: u32,
    }

    #[shmkit::shm_segment(name = "db")]
    #[derive(Default)]
    pub struct Db {
        pub hits: u64,
        pub origin: Point,
        pub head: *const u64,
        pub colors: [u8; 4],
    }
}

#[test]
fn a_change_deep_in_a_field_type_is_a_schema_mismatch() {
    let seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.root::<Db>().unwrap();
    let err = seg.root::<v3::Db>().err().unwrap();
    insta::assert_snapshot!("schema_mismatch_db_nested", err.to_string());
}

/// A derived type built in place from a source of its own ([`Emplace`]): what lets a
/// container of such rows take `rows.push(&cells[..])`.
#[derive(ShmSafe)]
#[repr(C)]
pub struct Row {
    pub sum: u64,
    pub cells: shmkit::containers::Vec<u32>,
}

impl<'s> shmkit::containers::Emplace<&'s [u32]> for Row {
    fn emplace<'a>(
        slot: shmkit::containers::Slot<'a, Self>,
        cells: &'s [u32],
    ) -> Result<shmkit::containers::Filled<'a, Self>, shmkit::AllocError> {
        use shmkit::prelude::*;
        let sum = cells.iter().map(|&c| u64::from(c)).sum();
        let mut row = slot.write(Row {
            sum,
            cells: shmkit::containers::Vec::new(),
        });
        row.as_mut().cells_mut().extend(cells)?; // on error the row is dropped again
        Ok(row)
    }
}

#[test]
fn a_derived_type_is_emplaced_from_its_own_source_and_a_failure_leaves_nothing() {
    use shmkit::prelude::*;
    let mut seg = ManagedHeapMemory::new(4096).unwrap();
    seg.construct("rows", shmkit::containers::Vec::<Row>::new())
        .unwrap();
    let mut rows = seg
        .find_mut::<shmkit::containers::Vec<Row>>("rows")
        .unwrap()
        .unwrap();
    rows.push(&[1, 2, 3][..]).unwrap();
    assert_eq!((rows[0].sum, &rows[0].cells[..]), (6, &[1, 2, 3][..]));
    // Too many cells for the segment: the row's own vector fails to grow, the row is
    // dropped in its slot and the outer vector keeps one row.
    let huge = vec![7u32; 4096];
    assert!(rows.push(&huge[..]).is_err());
    assert_eq!(rows.len(), 1);
    seg.destroy::<shmkit::containers::Vec<Row>>("rows").unwrap();
    assert!(seg.all_memory_deallocated());
}

#[test]
fn destroying_a_root_gives_back_what_its_containers_own_and_a_later_root_is_fresh() {
    use shmkit::prelude::*;
    use shmkit::sync::Mutex;

    #[shm_segment]
    #[derive(Default)]
    pub struct Inventory {
        pub stock: Mutex<std::collections::BTreeMap<String, Vec<u64>>>,
    }

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    assert!(!seg.destroy_root::<Inventory>().unwrap());
    // The type's schema, stored by the first root, stays for good (ARCHITECTURE.md "Type
    // schemas"): what the segment gets back is measured with it stored.
    seg.root::<Inventory>().unwrap();
    assert!(seg.destroy_root::<Inventory>().unwrap());
    seg.shrink_to_fit_indexes().unwrap();
    let empty = seg.free_memory();
    {
        let root = seg.root::<Inventory>().unwrap();
        let mut stock = root.stock.lock().unwrap();
        stock
            .entry("apples")
            .unwrap()
            .or_default()
            .unwrap()
            .extend(0..500)
            .unwrap();
    }
    assert!(seg.free_memory() < empty - 4000);
    assert!(seg.destroy_root::<Inventory>().unwrap());
    seg.shrink_to_fit_indexes().unwrap();
    assert_eq!(seg.free_memory(), empty);
    assert!(seg
        .root::<Inventory>()
        .unwrap()
        .stock
        .lock()
        .unwrap()
        .is_empty());
}

#[test]
fn a_type_holding_itself_through_a_container_stores_its_schemas_and_renders() {
    use shmkit::containers::VecExt;
    use shmkit::inspect::Value;

    #[derive(ShmSafe, Default)]
    #[repr(C)]
    pub struct Tree {
        pub value: u32,
        pub kids: shmkit::containers::Vec<Tree>,
    }

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    // The walk over `Tree`'s schemas ends although `Vec<Tree>` leads back to `Tree`.
    seg.construct("tree", Tree::default()).unwrap();
    {
        let mut tree = seg.find_mut::<Tree>("tree").unwrap().unwrap();
        *tree.value_mut() = 1;
        let kid = Tree {
            value: 2,
            ..Tree::default()
        };
        tree.kids_mut().push(kid).unwrap();
    }
    let objects = shmkit::inspect::objects(&seg).unwrap();
    let tree = objects.iter().find(|o| o.name == "tree").unwrap();
    let kid = Value::Struct(vec![
        ("value".into(), Value::Unsigned(2)),
        (
            "kids".into(),
            Value::Array {
                elements: vec![],
                length: 0,
            },
        ),
    ]);
    assert_eq!(
        tree.value,
        Value::Struct(vec![
            ("value".into(), Value::Unsigned(1)),
            (
                "kids".into(),
                Value::Array {
                    elements: vec![kid],
                    length: 1
                }
            ),
        ])
    );
}

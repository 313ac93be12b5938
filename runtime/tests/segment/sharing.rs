//! The sharing model in one process: an exclusive mapping excludes every other (and is
//! refused while anyone maps), it becomes shared atomically, destruction through a shared
//! mapping needs the segment alone, and offline resizing is refused while it is mapped.

use std::sync::atomic::{AtomicU64, Ordering};

use shmkit_runtime::Error;
use shmkit_test_support as support;
use support::on_both_devices;
use support::{Seg, Target};

const SIZE: usize = 64 * 1024;

on_both_devices!(
    a_second_open_of_an_exclusive_mapping_is_in_use,
    an_exclusive_open_is_in_use_while_anyone_maps,
    an_exclusive_mapping_builds_then_shares_without_unmapping,
    a_shared_mapping_destroys_only_alone,
    grow_and_shrink_are_refused_while_mapped,
    a_warm_open_trusts_the_attached_mapping_and_a_cold_one_validates,
    mappings_in_one_process_share_one_attachment,
);

fn assert_in_use<S>(result: shmkit_runtime::Result<S>, says: &str) {
    match result {
        Err(err @ Error::InUse { .. }) => {
            assert!(err.to_string().contains(says), "{says:?} not in: {err}")
        }
        Err(err) => panic!("expected InUse, got {err}"),
        Ok(_) => panic!("expected InUse, the open succeeded"),
    }
}

/// The audit's first finding: two mappings in one process each handing out `find_mut` to
/// one object. Now the second open of an exclusively opened segment fails, in every mode.
fn a_second_open_of_an_exclusive_mapping_is_in_use<T: Target>() {
    let t = T::new();
    let mut seg = Seg::<T>::options()
        .exclusive()
        .create(t.name(), SIZE)
        .unwrap();
    seg.construct("n", 1u64).unwrap();
    *seg.find_mut::<u64>("n").unwrap().unwrap().get_mut() = 2;
    assert_in_use(Seg::<T>::open(t.name()), "exclusive mapping");
    assert_in_use(Seg::<T>::options().exclusive().open(t.name()), "exclusive");
    assert_in_use(Seg::<T>::options().read_only().open(t.name()), "exclusive");
    assert_in_use(
        Seg::<T>::options().copy_on_write().open(t.name()),
        "exclusive",
    );
    assert_in_use(Seg::<T>::open_or_create(t.name(), SIZE), "exclusive");
    assert_eq!(seg.find::<u64>("n").unwrap(), Some(&2));
    drop(seg);
    assert_eq!(
        Seg::<T>::open(t.name()).unwrap().find::<u64>("n").unwrap(),
        Some(&2)
    );
}

fn an_exclusive_open_is_in_use_while_anyone_maps<T: Target>() {
    let t = T::new();
    let shared = Seg::<T>::create(t.name(), SIZE).unwrap();
    assert_in_use(
        Seg::<T>::options().exclusive().open(t.name()),
        "shared read-write mappings map it",
    );
    drop(shared);
    let reader = Seg::<T>::options().read_only().open(t.name()).unwrap();
    assert_in_use(
        Seg::<T>::options().exclusive().open(t.name()),
        "read-only or copy-on-write mappings map it",
    );
    drop(reader);
    Seg::<T>::options().exclusive().open(t.name()).unwrap();
}

fn an_exclusive_mapping_builds_then_shares_without_unmapping<T: Target>() {
    let t = T::new();
    let mut builder = Seg::<T>::options()
        .exclusive()
        .create(t.name(), SIZE)
        .unwrap();
    builder.construct_array("table", 16, 0u32).unwrap();
    builder
        .find_slice_mut::<u32>("table")
        .unwrap()
        .unwrap()
        .get_mut_slice()
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = i as u32 * 3);
    builder.construct("hits", AtomicU64::new(0)).unwrap();
    let base = builder.base_address();
    let shared = builder.into_shared().unwrap();
    assert_eq!(shared.base_address(), base, "not remapped");
    let other = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(other.find_slice::<u32>("table").unwrap().unwrap()[15], 45);
    other
        .find::<AtomicU64>("hits")
        .unwrap()
        .unwrap()
        .fetch_add(1, Ordering::Relaxed);
    let hits = shared.find::<AtomicU64>("hits").unwrap().unwrap();
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    assert_in_use(Seg::<T>::options().exclusive().open(t.name()), "shared");
}

/// The audit's `&T` that survived a destroy in another mapping: the destroy is refused while
/// the other mapping (which may hold the reference) is attached.
fn a_shared_mapping_destroys_only_alone<T: Target>() {
    let t = T::new();
    let a = Seg::<T>::create(t.name(), SIZE).unwrap();
    let kept = a.construct("kept", 7u64).unwrap();
    let mut b = Seg::<T>::open(t.name()).unwrap();
    assert_in_use(
        b.destroy::<u64>("kept"),
        "destroying in place needs it alone",
    );
    let p: *const u64 = b.find::<u64>("kept").unwrap().unwrap();
    assert_in_use(b.destroy_ptr(p), "destroying in place needs it alone");
    assert_eq!(
        *kept, 7,
        "the reference from the other mapping is still valid"
    );
    drop(a);
    assert!(b.destroy::<u64>("kept").unwrap());
    // Alone again, and others may open afterwards.
    let c = Seg::<T>::open(t.name()).unwrap();
    assert_eq!(c.find::<u64>("kept").unwrap(), None);
}

/// The audit's `grow` under a live mapping (which then wrote past its end): refused while
/// any mapping exists, in any mode.
fn grow_and_shrink_are_refused_while_mapped<T: Target>() {
    let t = T::new();
    let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
    assert_in_use(
        Seg::<T>::grow(t.name(), SIZE),
        "shared read-write mappings map it",
    );
    assert_in_use(
        Seg::<T>::shrink_to_fit(t.name()),
        "shared read-write mappings map it",
    );
    drop(seg);
    let reader = Seg::<T>::options().read_only().open(t.name()).unwrap();
    assert_in_use(Seg::<T>::grow(t.name(), SIZE), "read-only");
    assert_in_use(Seg::<T>::shrink_to_fit(t.name()), "read-only");
    assert_eq!(reader.size(), SIZE);
    drop(reader);
    Seg::<T>::grow(t.name(), SIZE).unwrap();
    assert_eq!(Seg::<T>::open(t.name()).unwrap().size(), 2 * SIZE);
    assert!(Seg::<T>::shrink_to_fit(t.name()).unwrap() < 2 * SIZE);
}

/// Issue 8, item 10: an open while a trusted mapping is attached (warm) keeps to the
/// header checks, so its cost does not grow with the contents; with nobody attached (cold)
/// it validates everything. The forged count (an entry's elements reaching past its
/// block) is one only the full check finds. Sound: nothing looks the object up while the
/// forged bytes are mapped, and `check()` still finds the damage in the warm mapping.
fn a_warm_open_trusts_the_attached_mapping_and_a_cold_one_validates<T: Target>() {
    use std::os::unix::fs::FileExt;
    let t = T::new();
    let first = Seg::<T>::create(t.name(), SIZE).unwrap();
    first.construct_array("a", 8, 0xAAu8).unwrap();
    let at = support::internals::entry_count_at(&std::fs::read(t.path()).unwrap(), 8);
    std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap()
        .write_at(&support::internals::entry_count_word(4096, 1), at as u64)
        .unwrap();
    let past_block = |err: Error| {
        assert!(
            matches!(&err, Error::Corrupted { reason, .. } if reason.contains("past its block")),
            "{err:?}"
        )
    };
    let second = Seg::<T>::open(t.name()).expect("a warm open trusts the attached mapping");
    past_block(second.check().unwrap_err());
    drop((second, first));
    past_block(Seg::<T>::open(t.name()).unwrap_err());
}

/// Descriptions of the device with inode `ino` that hold an attachment lock (`ATTACH`, at
/// `1 << 62` + 1), from `/proc/locks`: one line per description and lock range.
fn attached_descriptions(ino: u64) -> usize {
    let attach = (1u64 << 62) + 1;
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter(|line| line.contains("OFDLCK"))
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "N: OFDLCK ADVISORY READ -1 MAJ:MIN:INODE START END"
            let inode = fields
                .get(5)
                .and_then(|f| f.rsplit(':').next())
                .and_then(|i| i.parse::<u64>().ok());
            let (start, end) = (fields.get(6), fields.get(7));
            inode == Some(ino)
                && start
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|s| s <= attach)
                && end
                    .and_then(|e| e.parse::<u64>().ok())
                    .is_some_and(|e| e >= attach)
        })
        .count()
}

/// Shared mappings of one device in one process hold one attachment together: one
/// description with the locks, one lock owner id, kept while any of them lives. (So a
/// process that opens a segment again and again makes no lock call after the first.)
fn mappings_in_one_process_share_one_attachment<T: Target>() {
    use std::os::fd::AsFd;
    let t = T::new();
    let first = Seg::<T>::create(t.name(), SIZE).unwrap();
    let ino = rustix::fs::fstat(first.backing().device().as_fd())
        .unwrap()
        .st_ino;
    let more: Vec<_> = (0..9).map(|_| Seg::<T>::open(t.name()).unwrap()).collect();
    assert_eq!(
        attached_descriptions(ino),
        1,
        "ten mappings, one attachment"
    );
    let id = support::owner_id(&first);
    assert!(
        more.iter().all(|m| support::owner_id(m) == id),
        "one lock owner"
    );
    // A reader would exclude writers, in this process too.
    assert_in_use(Seg::<T>::options().read_only().open(t.name()), "read-write");
    drop(first);
    assert_in_use(Seg::<T>::options().exclusive().open(t.name()), "shared");
    assert_eq!(attached_descriptions(ino), 1, "kept by the other mappings");
    drop(more);
    assert_eq!(attached_descriptions(ino), 0, "the last mapping lets go");
    drop(Seg::<T>::options().exclusive().open(t.name()).unwrap());
}

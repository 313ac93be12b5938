//! Attacks on the process attachment (shared mappings of one device in one process hold one
//! attachment): reuse of a recorded size, racing opens and destroys, forks.

use std::sync::atomic::{AtomicU64, Ordering};

use shmkit_runtime::Error;
use shmkit_test_support as support;
use support::on_both_devices;
use support::{Seg, Target};

const SIZE: usize = 64 * 1024;

on_both_devices!(
    a_reused_open_maps_no_more_than_the_device_has,
    threads_racing_opens_and_destroys_never_free_a_found_object,
    a_lock_held_through_one_mapping_is_waited_for_through_another,
    a_device_replaced_under_a_live_mapping_is_validated_cold,
    a_shared_converted_mapping_and_a_process_attachment_exclude_each_others_destroy,
    a_destroy_whose_drop_panics_leaves_the_segment_shared,
);

/// A file shrunk from outside (safe `File::set_len`, any writer of the file) while a mapping
/// of this process lives: a later open must not map (and hand out) bytes past the end of
/// the device, which fault with SIGBUS. A fresh open reads the size (`fstat`, which the
/// open takes anyway) and refuses the header; a reused attachment mapped the size it
/// recorded at its first open.
fn a_reused_open_maps_no_more_than_the_device_has<T: Target>() {
    let t = T::new();
    let first = Seg::<T>::create(t.name(), SIZE).unwrap();
    first.construct("far", AtomicU64::new(1)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(t.path())
        .unwrap()
        .set_len(4096)
        .unwrap();
    match Seg::<T>::open(t.name()) {
        Err(_) => {}
        Ok(second) => panic!(
            "the open mapped {} bytes of a 4096-byte device; touching them is SIGBUS",
            second.size()
        ),
    }
}

/// Threads that open, find and destroy one object through their own mappings: a destroy
/// succeeds only while no other mapping of the process lives, so a `&T` found through
/// another mapping is never freed under it.
fn threads_racing_opens_and_destroys_never_free_a_found_object<T: Target>() {
    let t = T::new();
    drop(Seg::<T>::create(t.name(), SIZE).unwrap());
    let name = t.name_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let name = name.clone();
            s.spawn(move || {
                while std::time::Instant::now() < deadline {
                    // An open meets an in-place destroy's exclusive lock: InUse, by design.
                    let mut seg = match Seg::<T>::open(T::parse_name(&name)) {
                        Ok(seg) => seg,
                        Err(Error::InUse { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    };
                    match seg.find::<AtomicU64>("x").unwrap() {
                        Some(x) => {
                            let v = x.load(Ordering::Relaxed);
                            assert_eq!(v, 0xfeed, "a found object changed under its reference");
                        }
                        None => match seg.construct("x", AtomicU64::new(0xfeed)) {
                            Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                            Err(e) => panic!("{e}"),
                        },
                    }
                    match seg.destroy::<AtomicU64>("x") {
                        Ok(_) | Err(Error::InUse { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
}

/// Two mappings in one process share one lock owner id: a thread locking through the second
/// while another holds the lock through the first must wait (the holder is alive), never
/// take the lock over or enter beside it.
fn a_lock_held_through_one_mapping_is_waited_for_through_another<T: Target>() {
    use std::time::{Duration, Instant};
    let t = T::new();
    let a = Seg::<T>::create(t.name(), SIZE).unwrap();
    let b = Seg::<T>::open(t.name()).unwrap();
    let (held, entered) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let b = &b;
        let waiter = s.spawn(move || {
            entered.recv_timeout(Duration::from_secs(10)).unwrap();
            b.with_lock(Instant::now).unwrap()
        });
        let released = a
            .with_lock(|| {
                held.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(500));
                Instant::now()
            })
            .unwrap();
        let got_in = waiter.join().unwrap();
        assert!(
            got_in >= released,
            "entered while the other mapping held the lock"
        );
    });
    a.check().unwrap();
    b.check().unwrap();
}

/// The name now names another inode (a forged copy renamed over it, or removed and made
/// anew) while this process maps and trusts the old one: an open of the name reuses nothing
/// (the attachment is by device and inode) and validates the forged bytes in full.
fn a_device_replaced_under_a_live_mapping_is_validated_cold<T: Target>() {
    let t = T::new();
    let first = Seg::<T>::create(t.name(), SIZE).unwrap();
    first.construct_array("a", 8, 0xAAu8).unwrap();
    let mut bytes = std::fs::read(t.path()).unwrap();
    let at = support::internals::entry_count_at(&bytes, 8);
    let forged = support::internals::entry_count_word(4096, 1);
    bytes[at..at + forged.len()].copy_from_slice(&forged);
    let tmp = t.path().with_extension("forged");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, t.path()).unwrap();
    let warm = Seg::<T>::open(t.name()).unwrap_err();
    assert!(
        matches!(&warm, Error::Corrupted { reason, .. } if reason.contains("past its block")),
        "{warm:?}"
    );
    assert_eq!(
        first.find_slice::<u8>("a").unwrap().map(|a| a.len()),
        Some(8)
    );
}

/// A mapping made shared by `into_shared` holds its own attachment, beside the one later
/// opens of the process share: neither destroys in place while the other maps.
fn a_shared_converted_mapping_and_a_process_attachment_exclude_each_others_destroy<T: Target>() {
    let t = T::new();
    let mut a = Seg::<T>::options()
        .exclusive()
        .create(t.name(), SIZE)
        .unwrap()
        .into_shared()
        .unwrap();
    let from_a = a.construct("a", 1u64).unwrap() as *const u64;
    let mut b = Seg::<T>::open(t.name()).unwrap();
    let from_b = b.find::<u64>("a").unwrap().unwrap() as *const u64;
    assert!(matches!(b.destroy::<u64>("a"), Err(Error::InUse { .. })));
    assert!(matches!(a.destroy_ptr(from_a), Err(Error::InUse { .. })));
    assert!(matches!(b.destroy_ptr(from_b), Err(Error::InUse { .. })));
    assert_eq!(a.find::<u64>("a").unwrap(), Some(&1));
    drop(b);
    assert!(a.destroy::<u64>("a").unwrap());
}

/// A value whose drop panics (safe code in a user's `Drop`).
#[repr(C)]
struct PanicsOnDrop(u64);
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("attack9: drop panics");
    }
}
// SAFETY: one `u64`; its drop touches nothing in the segment.
unsafe impl shmkit_runtime::ShmSafe for PanicsOnDrop {}

/// An in-place destroy converts `ATTACH` to exclusive for the call: a drop that panics
/// inside it must not leave the segment locked against every other mapping (this
/// process's opens, and every other process's) for as long as this mapping lives.
fn a_destroy_whose_drop_panics_leaves_the_segment_shared<T: Target>() {
    let t = T::new();
    let mut a = Seg::<T>::create(t.name(), SIZE).unwrap();
    a.construct("p", PanicsOnDrop(1)).unwrap();
    let destroyed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.destroy::<PanicsOnDrop>("p")
    }));
    assert!(destroyed.is_err(), "the drop panicked");
    let b = Seg::<T>::open(t.name());
    assert!(b.is_ok(), "an open after the panic: {:?}", b.err());
}

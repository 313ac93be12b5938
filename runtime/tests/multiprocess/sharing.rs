//! The sharing model between real processes (the children are the helper binary's
//! `sharing-*` roles, in `tests/bin/child/sharing.rs`):
//!
//! - an exclusive open is refused while a child maps the segment, and granted once the
//!   child exits or is SIGKILLed (the kernel drops its locks);
//! - grow and shrink_to_fit are refused in a child while the parent maps the segment;
//! - an opener racing the exclusive-to-shared downgrade gets in only after it, and sees
//!   what was built before.

use std::time::Duration;

use shmkit_runtime::Error;
use shmkit_test_support as support;
use support::on_both_devices;
use support::{Seg, Target};

use crate::child;

const SIZE: usize = 64 * 1024;
const CHILD_LIMIT: Duration = Duration::from_secs(20);

on_both_devices!(
    an_exclusive_open_waits_for_a_child_to_exit,
    an_exclusive_open_is_granted_after_the_mapping_child_is_killed,
    a_child_cannot_resize_a_segment_the_parent_maps,
    an_opener_racing_the_downgrade_gets_in_after_it,
);

fn exclusive_open_is_in_use<T: Target>(t: &T) -> bool {
    match Seg::<T>::options().exclusive().open(t.name()) {
        Err(Error::InUse { .. }) => true,
        Err(e) => panic!("expected InUse, got {e}"),
        Ok(_) => false,
    }
}

fn an_exclusive_open_waits_for_a_child_to_exit<T: Target>() {
    let t = T::new();
    drop(Seg::<T>::create(t.name(), SIZE).unwrap());
    for read_only in [false, true] {
        let extra: &[(&str, String)] = if read_only {
            &[("SHMKIT_READ_ONLY", String::new())]
        } else {
            &[]
        };
        let mut c = child(&t, "sharing-hold", extra);
        assert_eq!(c.expect_message(CHILD_LIMIT), "mapped");
        assert!(exclusive_open_is_in_use(&t), "read_only {read_only}");
        c.release();
        c.assert_success(CHILD_LIMIT);
        drop(Seg::<T>::options().exclusive().open(t.name()).unwrap());
    }
}

fn an_exclusive_open_is_granted_after_the_mapping_child_is_killed<T: Target>() {
    let t = T::new();
    drop(Seg::<T>::create(t.name(), SIZE).unwrap());
    let mut c = child(&t, "sharing-hold", &[]);
    assert_eq!(c.expect_message(CHILD_LIMIT), "mapped");
    assert!(exclusive_open_is_in_use(&t));
    c.kill();
    let mut seg = Seg::<T>::options().exclusive().open(t.name()).unwrap();
    seg.construct("after", 1u8).unwrap();
    assert_eq!(
        seg.find_mut::<u8>("after").unwrap().map(|v| *v.get_mut()),
        Some(1)
    );
}

fn a_child_cannot_resize_a_segment_the_parent_maps<T: Target>() {
    let t = T::new();
    let seg = Seg::<T>::create(t.name(), SIZE).unwrap();
    let mut c = child(&t, "sharing-resize", &[]);
    assert_eq!(c.expect_message(CHILD_LIMIT), "in-use in-use");
    c.assert_success(CHILD_LIMIT);
    assert_eq!(seg.size(), SIZE);
    seg.check().unwrap();
    drop(seg);
    let mut c = child(&t, "sharing-resize", &[]);
    assert_eq!(c.expect_message(CHILD_LIMIT), "ok ok");
    c.assert_success(CHILD_LIMIT);
}

fn an_opener_racing_the_downgrade_gets_in_after_it<T: Target>() {
    let t = T::new();
    let mut seg = Seg::<T>::options()
        .exclusive()
        .create(t.name(), SIZE)
        .unwrap();
    seg.construct("built", 0u64).unwrap();
    let mut c = child(&t, "sharing-open-when-shared", &[]);
    assert_eq!(c.expect_message(CHILD_LIMIT), "trying");
    std::thread::sleep(Duration::from_millis(20));
    *seg.find_mut::<u64>("built").unwrap().unwrap().get_mut() = 12345;
    let shared = seg.into_shared().unwrap();
    let report = c.expect_message(CHILD_LIMIT);
    c.assert_success(CHILD_LIMIT);
    let (refused, built) = report.split_once(' ').unwrap();
    assert!(
        refused.parse::<u64>().unwrap() > 0,
        "the child tried before"
    );
    assert_eq!(built, "12345", "the child got in only after the downgrade");
    assert_eq!(shared.find::<u64>("built").unwrap(), Some(&12345));
}

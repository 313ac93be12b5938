//! The children of the sharing tests (`multiprocess/sharing.rs`), on the segment named by
//! `SHMKIT_KIND` ("shm" or "file") and `SHMKIT_NAME` (see `on_device!`).

use shmkit_runtime::segment::Device;
use shmkit_runtime::{Error, Result};

use crate::{tell_parent, wait_for_parent, Seg};

/// Maps the segment (read-write, or read-only when `SHMKIT_READ_ONLY` is set), says
/// "mapped", and keeps it mapped until the parent's signal (or SIGKILL).
pub fn hold() {
    on_device!(hold_on)
}

fn hold_on<D: Device>(name: &D::Name) {
    if std::env::var_os("SHMKIT_READ_ONLY").is_some() {
        let _seg = Seg::<D>::options().read_only().open(name).unwrap();
        tell_parent("mapped");
        wait_for_parent();
    } else {
        let _seg = Seg::<D>::open(name).unwrap();
        tell_parent("mapped");
        wait_for_parent();
    }
}

/// Tries to grow and to shrink the segment, and reports each outcome ("in-use", "ok" or
/// the error).
pub fn resize() {
    on_device!(resize_on)
}

fn resize_on<D: Device>(name: &D::Name) {
    let grow = outcome(Seg::<D>::grow(name, 4096));
    let shrink = outcome(Seg::<D>::shrink_to_fit(name));
    tell_parent(&format!("{grow} {shrink}"));
}

fn outcome<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(Error::InUse { .. }) => "in-use".into(),
        Err(e) => format!("error:{e}"),
    }
}

/// Says "trying", then opens the segment shared until it succeeds (only `InUse` is
/// expected meanwhile) and reports the refusals and the `built` marker it then reads.
pub fn open_when_shared() {
    on_device!(open_when_shared_on)
}

fn open_when_shared_on<D: Device>(name: &D::Name) {
    tell_parent("trying");
    let mut refused = 0u64;
    let seg = loop {
        match Seg::<D>::open(name) {
            Ok(seg) => break seg,
            Err(Error::InUse { .. }) => refused += 1,
            Err(e) => panic!("only InUse may refuse the open: {e}"),
        }
    };
    let built = *seg.find::<u64>("built").unwrap().unwrap();
    tell_parent(&format!("{refused} {built}"));
}

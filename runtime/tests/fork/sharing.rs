//! A forked child never inherits exclusivity: the exclusive mapping is not mapped in the
//! child (`MADV_DONTFORK`; its range is reserved, inaccessible), and the child's copy of its
//! descriptor no longer refers to the locked description, so the parent's drop frees the
//! segment while the child lives.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use shmkit_runtime::{Error, ManagedSharedMemory};
use shmkit_test_support::ShmGuard;

use crate::segment::{fork_child, wait_success};

/// Whether `addr` lies in a readable mapping of this process (from `/proc/self/maps`).
fn is_readable(addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().any(|line| {
        let mut fields = line.split(' ');
        let (start, end) = fields.next().unwrap().split_once('-').unwrap();
        let start = usize::from_str_radix(start, 16).unwrap();
        let end = usize::from_str_radix(end, 16).unwrap();
        (start..end).contains(&addr) && fields.next().unwrap().starts_with('r')
    })
}

pub fn a_forked_child_does_not_inherit_an_exclusive_mapping() {
    let name = ShmGuard::new();
    let mut seg = ManagedSharedMemory::options()
        .exclusive()
        .create(name.get(), 64 * 1024)
        .unwrap();
    seg.construct("n", 1u64).unwrap();
    *seg.find_mut::<u64>("n").unwrap().unwrap().get_mut() = 2;
    let base = seg.base_address().as_ptr().addr();
    let (mut parent_end, mut child_end) = UnixStream::pair().unwrap();

    let pid = fork_child(|| {
        // The exclusive mapping is not there, and the parent's still excludes this process.
        let unmapped = !is_readable(base);
        let refused = matches!(
            ManagedSharedMemory::open(name.get()),
            Err(Error::InUse { .. })
        );
        child_end.write_all(b"c").unwrap();
        // Live until the parent has opened the segment again (bounded: this child holds
        // the parent's end too, so the parent's death would not end the read).
        child_end
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut byte = [0u8];
        child_end.read_exact(&mut byte).unwrap();
        unmapped && refused
    });
    assert!(is_readable(base), "the parent keeps its mapping");
    let mut byte = [0u8];
    parent_end.read_exact(&mut byte).unwrap();
    drop(seg);
    // The child lives and holds its copy of every descriptor: none keeps the lock.
    let again = ManagedSharedMemory::options()
        .exclusive()
        .open(name.get())
        .expect("the child does not keep the exclusive lock");
    assert_eq!(again.find::<u64>("n").unwrap(), Some(&2));
    parent_end.write_all(b"p").unwrap();
    wait_success(pid, "exclusive child");
}

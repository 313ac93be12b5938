//! What the operating system says about files, mappings and processes.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The process id of a child that has exited and been reaped: a process that is dead.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("reap true");
    pid
}

/// The permission bits of a path.
pub fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// The permission bits of an open descriptor.
pub fn mode_of_fd(fd: impl AsFd) -> u32 {
    rustix::fs::fstat(fd).expect("fstat").st_mode & 0o777
}

/// Rewrites the bytes of the file (or `/dev/shm` object) at `path` in place.
pub fn patch_file(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).expect("read the device");
    f(&mut bytes);
    std::fs::write(path, &bytes).expect("write the device");
}

/// The permissions column of `/proc/self/maps` (e.g. `rw-s`) for the mapping holding `addr`.
pub fn map_perms(addr: *const u8) -> String {
    let addr = addr.addr();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (lo, hi) = range.split_once('-').unwrap();
        let lo = usize::from_str_radix(lo, 16).unwrap();
        let hi = usize::from_str_radix(hi, 16).unwrap();
        if (lo..hi).contains(&addr) {
            return perms.to_owned();
        }
    }
    panic!("{addr:#x} is not mapped");
}

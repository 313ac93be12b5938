//! The children of the lock-owner liveness tests (`multiprocess/liveness.rs`): a lock
//! holder that says which pids it has, run directly or as a chosen pid of a new pid
//! namespace, where its pid means nothing to the parent.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use shmkit_runtime::segment::Backing;
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{
    ManagedMappedFile, ManagedSegment, ManagedSharedMemory, ManagedXsiSharedMemory,
};

use crate::objects::ChildSegment;
use crate::segment::{hold_lock_in, xsi_key};
use crate::{env, tell_parent};

/// Says "pids <outer> <inner>" (this process's pid as the parent sees it, and in its own
/// pid namespace), opens the segment named by `SHMKIT_KIND` ("shm", "file" or "xsi") and
/// `SHMKIT_NAME`, and holds the lock `SHMKIT_LOCK` names ("segment": `with_lock`; "index":
/// `atomic_func`; "user": the `Mutex<u64>` "user_mutex") until SIGKILLed, saying "locked" once it holds it.
pub fn hold() {
    tell_parent(&pids());
    let name = env("SHMKIT_NAME");
    match env("SHMKIT_KIND").as_str() {
        "shm" => hold_in(ManagedSharedMemory::open(&name).unwrap()),
        "file" => hold_in(ManagedMappedFile::open(Path::new(&name)).unwrap()),
        "xsi" => hold_in(ManagedXsiSharedMemory::open(xsi_key(&name)).unwrap()),
        other => panic!("unknown kind {other}"),
    }
}

fn hold_in<B: Backing>(mut seg: ManagedSegment<B>) {
    match env("SHMKIT_LOCK").as_str() {
        "segment" => hold_lock_in(&seg),
        "index" => seg.hold_index_lock(),
        "user" => hold_user_mutex(&seg),
        other => panic!("unknown lock {other}"),
    }
}

/// Locks the parent's `Mutex<u64>` "user_mutex", adds one, says "locked" and holds it
/// until SIGKILLed.
fn hold_user_mutex<B: Backing>(seg: &ManagedSegment<B>) {
    let m = seg
        .find::<Mutex<u64>>("user_mutex")
        .unwrap()
        .expect("the parent made it");
    let mut guard = m.lock().unwrap();
    *guard += 1;
    tell_parent("locked");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// "pids <outer> <inner>" from the `NSpid` line of `/proc/self/status`. `/proc` is the
/// parent's mount (`unshare` runs without `--mount-proc`), so the first pid is the one the
/// parent sees and the last the one in this process's own namespace.
fn pids() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let ns: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("an NSpid line")
        .split_whitespace()
        .collect();
    format!("pids {} {}", ns[0], ns[ns.len() - 1])
}

/// Becomes `unshare --pid --fork --kill-child <this binary> liveness-ns-init`: the parent's
/// handle on this child is then `unshare`'s, and killing `unshare` kills the namespace.
/// The parent checks beforehand that `unshare` works here.
pub fn in_pid_namespace() {
    let err = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(std::env::current_exe().expect("this binary's path"))
        .arg("liveness-ns-init")
        .exec();
    panic!("exec unshare: {err}");
}

/// Pid 1 of the new namespace: runs the holder ([`hold`]) as pid `SHMKIT_NS_PID` of the
/// namespace, in place when that is 1, else as a child spawned right after setting the
/// namespace's last pid (`/proc/sys/kernel/ns_last_pid` acts on the writer's namespace).
/// Exits when the holder does; its death as pid 1 kills the rest of the namespace.
pub fn ns_init() {
    assert_eq!(std::process::id(), 1, "pid 1 of a new pid namespace");
    let target: u32 = env("SHMKIT_NS_PID").parse().unwrap();
    let mut holder = Command::new(std::env::current_exe().expect("this binary's path"));
    holder.arg("liveness-hold");
    if target == 1 {
        let err = holder.exec();
        panic!("exec the holder: {err}");
    }
    std::fs::write("/proc/sys/kernel/ns_last_pid", (target - 1).to_string())
        .expect("set the namespace's last pid");
    let status = holder.status().expect("run the holder");
    std::process::exit(status.code().unwrap_or(1));
}

//! Groups `mq_pingpong`, `mq_pingpong_samecpu`, `mq_throughput` (the peer's), and ours:
//! `mq_pingpong_poll` (both sides busy-poll `try_receive`, as iceoryx2's peer row of that
//! name does) and `posix_mq_pingpong`, `posix_mq_throughput` (the same on a POSIX message
//! queue, `mq_open`, as a reference from the kernel).
//!
//! As the peer: named queues of 16 messages × 64 bytes (`NamedMessageQueue`, a shared
//! memory object each, as Boost's `message_queue`). Ping-pong: the parent forks; the child
//! opens both queues by name, sends a 1-byte "ready" message, then echoes N = 100,000
//! 64-byte messages (priority 0); timed: N round trips from the parent. `_samecpu` pins
//! the parent (and so the child) to the lowest CPU of its affinity mask first. Throughput:
//! one queue of 1024 × 64 bytes; the clock starts, the parent forks and sends N =
//! 1,000,000 messages, message i holding i with priority i % 4; the child opens the queue
//! by name, receives them all and checks the sum and FIFO order within each priority; the
//! clock stops when the parent has reaped the child.
//!
//! A `# cpu` line after each gives the user+system CPU time of both processes per
//! operation (`getrusage`), so that time spent spinning shows next to the wall time.
//!
//! The POSIX queues hold 10 messages (`/proc/sys/fs/mqueue/msg_max`'s default, the most an
//! unprivileged process may ask for), not 16 or 1024; the line says so.

use std::ffi::CString;

use shmkit::ipc::NamedMessageQueue;

use crate::process::{self, cpu_time, PinnedToLowestCpu, Who};
use crate::segment::{unique_name, ShmGuard};
use crate::timing::{format_line, now, print_line, report, secs};
use crate::{check, check_eq};

const ROUNDS: u64 = 100_000;
const MESSAGES: u64 = 1_000_000;
const MSG: usize = 64;
/// The most messages an unprivileged POSIX queue may hold by default.
const POSIX_MAX_MSG: usize = 10;

/// What both kinds of queue do for the workloads.
trait Queue: Sized {
    /// Creates the queue `name` (`max` messages of [`MSG`] bytes).
    fn create(name: &str, max: usize) -> Self;
    fn open(name: &str) -> Self;
    fn send(&self, msg: &[u8], priority: u32);
    fn try_send(&self, msg: &[u8], priority: u32) -> bool;
    /// The length and priority of the message received into `buf`.
    fn receive(&self, buf: &mut [u8]) -> (usize, u32);
    fn try_receive(&self, buf: &mut [u8]) -> Option<(usize, u32)>;
}

impl Queue for NamedMessageQueue {
    fn create(name: &str, max: usize) -> Self {
        NamedMessageQueue::create(name, max, MSG).unwrap_or_else(|e| panic!("create {name}: {e}"))
    }
    fn open(name: &str) -> Self {
        NamedMessageQueue::open(name).unwrap_or_else(|e| panic!("open {name}: {e}"))
    }
    fn send(&self, msg: &[u8], priority: u32) {
        if let Err(e) = (**self).send(msg, priority) {
            panic!("send: {e}");
        }
    }
    fn try_send(&self, msg: &[u8], priority: u32) -> bool {
        (**self)
            .try_send(msg, priority)
            .unwrap_or_else(|e| panic!("try_send: {e}"))
    }
    fn receive(&self, buf: &mut [u8]) -> (usize, u32) {
        let r = (**self)
            .receive(buf)
            .unwrap_or_else(|e| panic!("receive: {e}"));
        (r.len, r.priority)
    }
    fn try_receive(&self, buf: &mut [u8]) -> Option<(usize, u32)> {
        let r = (**self)
            .try_receive(buf)
            .unwrap_or_else(|e| panic!("try_receive: {e}"));
        r.map(|r| (r.len, r.priority))
    }
}

/// A POSIX message queue (`mq_open`), closed on drop.
struct PosixMq(libc::mqd_t);

impl PosixMq {
    fn path(name: &str) -> CString {
        CString::new(format!("/{name}")).unwrap_or_default()
    }

    fn mq_open(name: &str, create: Option<usize>) -> Self {
        let path = Self::path(name);
        // SAFETY: an all-zero `mq_attr` is valid; the fields set below are the ones used.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        let fd = match create {
            Some(max) => {
                attr.mq_maxmsg = max as _;
                attr.mq_msgsize = MSG as _;
                // SAFETY: a NUL-terminated name, flags, a mode and a valid `mq_attr`.
                unsafe {
                    libc::mq_open(
                        path.as_ptr(),
                        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                        0o600 as libc::mode_t,
                        &attr as *const libc::mq_attr,
                    )
                }
            }
            // SAFETY: a NUL-terminated name and flags.
            None => unsafe { libc::mq_open(path.as_ptr(), libc::O_RDWR) },
        };
        check!(
            fd >= 0,
            "mq_open {name}: {}",
            std::io::Error::last_os_error()
        );
        PosixMq(fd)
    }

    fn unlink(name: &str) {
        // SAFETY: a NUL-terminated name; a missing queue is only an error code.
        unsafe { libc::mq_unlink(Self::path(name).as_ptr()) };
    }
}

impl Drop for PosixMq {
    fn drop(&mut self) {
        // SAFETY: our descriptor, closed once.
        unsafe { libc::mq_close(self.0) };
    }
}

impl Queue for PosixMq {
    fn create(name: &str, max: usize) -> Self {
        Self::unlink(name);
        Self::mq_open(name, Some(max))
    }
    fn open(name: &str) -> Self {
        Self::mq_open(name, None)
    }
    fn send(&self, msg: &[u8], priority: u32) {
        // SAFETY: our descriptor and a readable buffer of `msg.len()` bytes.
        let rc = unsafe { libc::mq_send(self.0, msg.as_ptr().cast(), msg.len(), priority) };
        check_eq!(rc, 0);
    }
    fn try_send(&self, _: &[u8], _: u32) -> bool {
        unreachable!("the POSIX queue takes part in the blocking workloads only")
    }
    fn receive(&self, buf: &mut [u8]) -> (usize, u32) {
        let mut priority = 0;
        // SAFETY: our descriptor and a writable buffer of `buf.len()` bytes.
        let n =
            unsafe { libc::mq_receive(self.0, buf.as_mut_ptr().cast(), buf.len(), &mut priority) };
        check!(n >= 0, "mq_receive: {}", std::io::Error::last_os_error());
        (n as usize, priority)
    }
    fn try_receive(&self, _: &mut [u8]) -> Option<(usize, u32)> {
        unreachable!("the POSIX queue takes part in the blocking workloads only")
    }
}

/// Removes a POSIX queue's name when dropped.
struct PosixName(String);

impl Drop for PosixName {
    fn drop(&mut self) {
        PosixMq::unlink(&self.0);
    }
}

/// How the two sides wait for each other's message.
#[derive(Clone, Copy, PartialEq)]
enum Waiting {
    Blocking,
    Polling,
}

pub fn run_pingpong() {
    let (ping, pong) = (ShmGuard::new("mqping"), ShmGuard::new("mqpong"));
    pingpong::<NamedMessageQueue>(
        "mq_pingpong",
        ping.name(),
        pong.name(),
        16,
        false,
        Waiting::Blocking,
    );
}

pub fn run_pingpong_samecpu() {
    let (ping, pong) = (ShmGuard::new("mqping"), ShmGuard::new("mqpong"));
    pingpong::<NamedMessageQueue>(
        "mq_pingpong_samecpu",
        ping.name(),
        pong.name(),
        16,
        true,
        Waiting::Blocking,
    );
}

pub fn run_pingpong_poll() {
    let (ping, pong) = (ShmGuard::new("mqping"), ShmGuard::new("mqpong"));
    pingpong::<NamedMessageQueue>(
        "mq_pingpong_poll",
        ping.name(),
        pong.name(),
        16,
        false,
        Waiting::Polling,
    );
}

pub fn run_throughput() {
    let q = ShmGuard::new("mqtput");
    throughput::<NamedMessageQueue>("mq_throughput", q.name(), 1024);
}

pub fn run_posix() {
    let (ping, pong) = (
        PosixName(unique_name("pmqping")),
        PosixName(unique_name("pmqpong")),
    );
    print_line(&format!(
        "# posix_mq: queues of {POSIX_MAX_MSG} messages x {MSG} bytes"
    ));
    pingpong::<PosixMq>(
        "posix_mq_pingpong",
        &ping.0,
        &pong.0,
        POSIX_MAX_MSG,
        false,
        Waiting::Blocking,
    );
    let q = PosixName(unique_name("pmqtput"));
    throughput::<PosixMq>("posix_mq_throughput", &q.0, POSIX_MAX_MSG);
}

/// Receives the next message, polling or blocking.
fn next<Q: Queue>(q: &Q, buf: &mut [u8], waiting: Waiting) -> (usize, u32) {
    match waiting {
        Waiting::Blocking => q.receive(buf),
        Waiting::Polling => loop {
            if let Some(got) = q.try_receive(buf) {
                return got;
            }
            std::hint::spin_loop();
        },
    }
}

/// Sends a message, polling or blocking while the queue is full.
fn put<Q: Queue>(q: &Q, msg: &[u8], priority: u32, waiting: Waiting) {
    match waiting {
        Waiting::Blocking => q.send(msg, priority),
        Waiting::Polling => {
            while !q.try_send(msg, priority) {
                std::hint::spin_loop();
            }
        }
    }
}

fn pingpong<Q: Queue>(
    line: &str,
    ping: &str,
    pong: &str,
    max: usize,
    same_cpu: bool,
    waiting: Waiting,
) {
    let to_child = Q::create(ping, max);
    let to_parent = Q::create(pong, max);
    let pinned = same_cpu.then(PinnedToLowestCpu::new);
    let children_before = cpu_time(Who::Children);
    let child = process::fork(|| {
        let (input, output) = (Q::open(ping), Q::open(pong));
        let mut buf = [0u8; MSG];
        output.send(&buf[..1], 0);
        for _ in 0..ROUNDS {
            let (len, priority) = next(&input, &mut buf, waiting);
            put(&output, &buf[..len], priority, waiting);
        }
    });
    let mut buf = [b'x'; MSG];
    to_parent.receive(&mut buf);
    let cpu0 = cpu_time(Who::This);
    let t0 = now();
    let mut sum = 0u64;
    for i in 0..ROUNDS {
        buf[..8].copy_from_slice(&i.to_le_bytes());
        put(&to_child, &buf, 0, waiting);
        let (len, _) = next(&to_parent, &mut buf, waiting);
        check_eq!(len, MSG);
        sum += u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
    }
    let t1 = now();
    let cpu1 = cpu_time(Who::This);
    child.wait();
    drop(pinned);
    check_eq!(sum, ROUNDS * (ROUNDS - 1) / 2);
    let cpu = cpu1 - cpu0 + (cpu_time(Who::Children) - children_before);
    report(line, ROUNDS, secs(t0, t1));
    print_cpu(line, ROUNDS, cpu.as_secs_f64());
}

fn throughput<Q: Queue>(line: &str, name: &str, max: usize) {
    let q = Q::create(name, max);
    let cpu0 = cpu_time(Who::This);
    let children_before = cpu_time(Who::Children);
    let t0 = now();
    let child = process::fork(|| {
        let q = Q::open(name);
        let mut buf = [0u8; MSG];
        let (mut sum, mut last) = (0u64, [None::<u64>; 4]);
        for _ in 0..MESSAGES {
            let (len, priority) = q.receive(&mut buf);
            let v = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
            check!(len == MSG && priority < 4 && v % 4 == u64::from(priority));
            let p = priority as usize;
            check!(last[p] < Some(v), "FIFO within priority {p}");
            last[p] = Some(v);
            sum += v;
        }
        check_eq!(sum, MESSAGES * (MESSAGES - 1) / 2);
    });
    let mut buf = [b'y'; MSG];
    for i in 0..MESSAGES {
        buf[..8].copy_from_slice(&i.to_le_bytes());
        q.send(&buf, (i % 4) as u32);
    }
    child.wait();
    let t1 = now();
    let cpu = cpu_time(Who::This) - cpu0 + (cpu_time(Who::Children) - children_before);
    report(line, MESSAGES, secs(t0, t1));
    print_cpu(line, MESSAGES, cpu.as_secs_f64());
}

fn print_cpu(line: &str, ops: u64, cpu_seconds: f64) {
    print_line(&format!(
        "# cpu {} (user+system of both processes)",
        format_line(line, ops, cpu_seconds)
    ));
}

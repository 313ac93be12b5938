//! Helpers for the `segment_*` tests: unique names, guards that remove what a test created
//! (shared memory objects, files, XSI segments) even when the test panics, byte access to
//! blocks by handle, hand-made segment headers, and child processes that re-execute the
//! test binary to play the other side of a multi-process test.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmkit_runtime::os::{MappableFile, SharedMemoryObject, XsiKey, XsiSharedMemory};
use shmkit_runtime::segment::{Backing, Device, DeviceBacking, Mode, Writable};
use shmkit_runtime::test_hooks::SegmentHeader;
use shmkit_runtime::{Handle, ManagedSegment, ManagedXsiSharedMemory};

// ----- names and guards ----------------------------------------------------------------

/// A name no other test (in this process or a concurrent run) uses: `shmkit_t_<pid>_<n>`.
pub fn unique_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "shmkit_t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the shared memory object `name` on drop (also when the test panics).
pub struct ShmGuard(pub String);

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = SharedMemoryObject::remove(&self.0);
    }
}

/// A fresh directory under the temporary directory, removed with its contents on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique_name());
        std::fs::create_dir(&path).expect("create the test's temporary directory");
        // Searchable by everyone, whatever the umask: the permission test opens files in
        // it as another user.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the test's temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory (nothing is created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes whatever XSI segment `key` names on drop.
pub struct XsiKeyGuard(pub XsiKey);

impl Drop for XsiKeyGuard {
    fn drop(&mut self) {
        let _ = ManagedXsiSharedMemory::remove(self.0);
    }
}

/// Removes the XSI segment `id` on drop (one that may no longer be reachable by key).
pub struct XsiIdGuard(pub i32);

impl Drop for XsiIdGuard {
    fn drop(&mut self) {
        let _ = XsiSharedMemory::remove_id(self.0);
    }
}

/// A fresh XSI key (from a new file in `dir`) and a guard that removes its segment.
pub fn xsi_key(dir: &TempDir) -> (XsiKey, XsiKeyGuard) {
    let path = dir.join(&unique_name());
    std::fs::write(&path, b"xsi key file").expect("create the key file");
    let key = XsiKey::from_path(&path, b'S').expect("ftok");
    (key, XsiKeyGuard(key))
}

// ----- device targets: one test body for shared memory and for files --------------------

/// A named device a test creates a segment in, removed when the target is dropped.
pub trait Target: Send + 'static {
    type Dev: Device;
    /// "shm" or "file", for messages and child processes.
    const KIND: &'static str;
    fn new() -> Self;
    /// The name the segment API takes.
    fn name(&self) -> &<Self::Dev as Device>::Name;
    /// Where the device's bytes are in the filesystem (`/dev/shm/<name>` or the file).
    fn path(&self) -> &Path;
    /// The name as a string, to hand to a child process.
    fn name_string(&self) -> String;
    /// The name back from [`name_string`](Target::name_string), in a child process.
    fn parse_name(s: &str) -> &<Self::Dev as Device>::Name;
}

/// The read-write managed segment type of a target.
pub type Seg<T> = ManagedSegment<DeviceBacking<<T as Target>::Dev>>;

/// A POSIX shared memory name.
pub struct ShmTarget {
    guard: ShmGuard,
    path: PathBuf,
}

impl Target for ShmTarget {
    type Dev = SharedMemoryObject;
    const KIND: &'static str = "shm";
    fn new() -> Self {
        let name = unique_name();
        ShmTarget {
            path: shm_path(&name),
            guard: ShmGuard(name),
        }
    }
    fn name(&self) -> &str {
        &self.guard.0
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn name_string(&self) -> String {
        self.guard.0.clone()
    }
    fn parse_name(s: &str) -> &str {
        s
    }
}

/// Where Linux keeps the shared memory object `name`.
pub fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// A file in a fresh temporary directory.
pub struct FileTarget {
    path: PathBuf,
    // Dropped last: removes the file with the directory.
    _dir: TempDir,
}

impl Target for FileTarget {
    type Dev = MappableFile;
    const KIND: &'static str = "file";
    fn new() -> Self {
        let dir = TempDir::new();
        FileTarget {
            path: dir.join("segment"),
            _dir: dir,
        }
    }
    fn name(&self) -> &Path {
        &self.path
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn name_string(&self) -> String {
        self.path
            .to_str()
            .expect("temporary paths are UTF-8")
            .to_owned()
    }
    fn parse_name(s: &str) -> &Path {
        Path::new(s)
    }
}

/// Defines `mod $name { #[test] fn shm(); #[test] fn file(); }` running the generic test
/// body `$name::<T>()` on both device kinds. (Test files say `#[macro_use] mod support;`.)
#[allow(unused_macros)]
macro_rules! on_both_devices {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn shm() {
                super::$name::<crate::support::ShmTarget>();
            }
            #[test]
            fn file() {
                super::$name::<crate::support::FileTarget>();
            }
        }
    )*};
}

// ----- bytes of blocks -----------------------------------------------------------------

/// `len` bytes of a pattern that differs with `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Copies `len` bytes from the address of `handle` in `seg`.
pub fn get<B: Backing, M: Mode>(seg: &ManagedSegment<B, M>, handle: Handle, len: usize) -> Vec<u8> {
    assert!(
        handle.0 as usize + len <= seg.size(),
        "read of {len} bytes at {handle:?} runs past the {}-byte segment",
        seg.size()
    );
    let ptr = seg.address_from_handle(handle).expect("handle inside");
    let mut out = vec![0; len];
    // SAFETY: `handle..handle+len` lies inside the segment (checked), which stays mapped
    // while `seg` is borrowed; other processes write these bytes only when the test's own
    // protocol lets them, and the copy does not create a reference into shared memory.
    unsafe { std::ptr::copy_nonoverlapping(ptr.as_ptr(), out.as_mut_ptr(), len) };
    out
}

/// Writes `bytes` at the address of `handle` in the writable `seg`.
pub fn put<B: Backing, M: Writable>(seg: &ManagedSegment<B, M>, handle: Handle, bytes: &[u8]) {
    assert!(
        handle.0 as usize + bytes.len() <= seg.size(),
        "write of {} bytes at {handle:?} runs past the {}-byte segment",
        bytes.len(),
        seg.size()
    );
    let ptr = seg.address_from_handle(handle).expect("handle inside");
    // SAFETY: the range lies inside the segment (checked), which is mapped writable (the
    // mode is `Writable`) while `seg` is borrowed; tests only write blocks they allocated.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
}

/// A block allocated by a test: where it is, how long, and which pattern it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub handle: Handle,
    pub len: usize,
    pub seed: u64,
}

impl Block {
    /// Allocates `len` bytes in `seg` and fills them with the pattern of `seed`.
    pub fn new<B: Backing, M: Writable>(seg: &ManagedSegment<B, M>, len: usize, seed: u64) -> Self {
        let ptr = seg.allocate(len).expect("allocate a test block");
        let handle = seg.handle_from_address(ptr.as_ptr()).expect("handle");
        put(seg, handle, &pattern(seed, len));
        Block { handle, len, seed }
    }

    /// Whether `seg` holds this block's pattern.
    pub fn intact<B: Backing, M: Mode>(&self, seg: &ManagedSegment<B, M>) -> bool {
        get(seg, self.handle, self.len) == pattern(self.seed, self.len)
    }

    /// Asserts the pattern is there, naming the block if not.
    pub fn assert_intact<B: Backing, M: Mode>(&self, seg: &ManagedSegment<B, M>) {
        assert!(self.intact(seg), "block {self:?} lost its contents");
    }

    /// The block's address in `seg`.
    pub fn ptr<B: Backing, M: Mode>(&self, seg: &ManagedSegment<B, M>) -> NonNull<u8> {
        seg.address_from_handle(self.handle).expect("handle inside")
    }

    /// Frees the block in `seg`.
    pub fn free<B: Backing, M: Writable>(&self, seg: &ManagedSegment<B, M>) {
        // SAFETY: the block was allocated in this segment (in this or another mapping or
        // process) and the test uses it no more.
        unsafe { seg.deallocate(self.ptr(seg)) }.expect("deallocate a test block");
    }

    /// `offset:len:seed`, to hand to a child process.
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.handle.0, self.len, self.seed)
    }

    pub fn decode(s: &str) -> Self {
        let mut it = s.split(':').map(|p| p.parse::<u64>().expect("a number"));
        let (handle, len, seed) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        Block {
            handle: Handle(handle),
            len: len as usize,
            seed,
        }
    }
}

/// Blocks as one string for an environment variable.
pub fn encode_blocks(blocks: &[Block]) -> String {
    blocks
        .iter()
        .map(Block::encode)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn decode_blocks(s: &str) -> Vec<Block> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(Block::decode)
        .collect()
}

// ----- the header, by its real layout --------------------------------------------------

/// Offsets of the header fields the tests patch, from the struct itself.
pub mod offsets {
    use super::SegmentHeader;
    pub const MAGIC: usize = std::mem::offset_of!(SegmentHeader, magic);
    pub const VERSION: usize = std::mem::offset_of!(SegmentHeader, version);
    pub const ENDIAN: usize = std::mem::offset_of!(SegmentHeader, endian);
    pub const POINTER_WIDTH: usize = std::mem::offset_of!(SegmentHeader, pointer_width);
    pub const STATE: usize = std::mem::offset_of!(SegmentHeader, state);
    pub const CREATOR_PID: usize = std::mem::offset_of!(SegmentHeader, creator_pid);
    pub const SIZE: usize = std::mem::offset_of!(SegmentHeader, size);
}

/// The header of the segment mapped at `seg`, as a raw pointer: fields are read one by one
/// (the lock holder mutates the allocator state that a `&SegmentHeader` would cover).
fn header_ptr<B: Backing, M: Mode>(seg: &ManagedSegment<B, M>) -> *const SegmentHeader {
    seg.base_address()
        .as_ptr()
        .cast::<SegmentHeader>()
        .cast_const()
}

/// The pid recorded as the segment's creator.
pub fn creator_pid<B: Backing, M: Mode>(seg: &ManagedSegment<B, M>) -> u32 {
    let h = header_ptr(seg);
    // SAFETY: every managed segment starts with its header, mapped while `seg` is
    // borrowed; the field is an aligned 4-byte word, read without making a reference.
    unsafe { (&raw const (*h).creator_pid).cast::<u32>().read_volatile() }
}

/// The pid holding the segment lock, if any.
pub fn lock_owner<B: Backing, M: Mode>(seg: &ManagedSegment<B, M>) -> Option<u32> {
    let h = header_ptr(seg);
    // SAFETY: as in `creator_pid`; the lock is an atomic word, which may be shared by
    // reference while other processes change it.
    unsafe { (*h).lock.owner() }
}

pub fn read_u32(bytes: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(bytes[off..off + 4].try_into().unwrap())
}

pub fn write_u32(bytes: &mut [u8], off: usize, v: u32) {
    bytes[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Rewrites the bytes of the file (or `/dev/shm` object) at `path` in place.
pub fn patch_file(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).expect("read the device");
    f(&mut bytes);
    std::fs::write(path, &bytes).expect("write the device");
}

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

// ----- time limits ---------------------------------------------------------------------

/// Runs `f` on its own thread and returns its result, failing the test if it takes longer
/// than `limit` (a hang becomes a failure; the stuck thread is abandoned).
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

// ----- child processes -----------------------------------------------------------------

/// The environment variable that tells a re-executed test binary which child to play.
pub const ROLE_VAR: &str = "SHMKIT_CHILD_ROLE";
/// Marks the messages a child prints for its parent (the harness prints other lines).
pub const MARK: &str = "SHMKIT:";

/// The role this process plays, if it is a child (`None` in a normal test run).
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// An environment variable a child needs; panics with its name if absent.
pub fn child_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("child needs ${var}"))
}

/// Tells the parent something: one `SHMKIT:` line on stdout, flushed at once.
pub fn tell_parent(msg: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK}{msg}").expect("write to the parent");
    out.flush().expect("flush to the parent");
}

/// Blocks until the parent writes a byte to our stdin (a start signal).
pub fn wait_for_parent() {
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(&mut std::io::stdin().lock(), &mut byte).expect("start signal");
}

/// A child process running one test of this binary in a role. Dropping it kills and reaps
/// the child if it still runs, so a failing parent leaves no process behind.
pub struct ChildProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Everything the child printed so far, for failure messages.
    pub transcript: Vec<String>,
}

/// Starts this test binary running only `test` (an exact test name) as `role`, with `envs`.
pub fn spawn_child(test: &str, role: &str, envs: &[(&str, String)]) -> ChildProc {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn the child test process");
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    ChildProc {
        child,
        stdin,
        lines,
        transcript: Vec::new(),
    }
}

impl ChildProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the start signal (one byte on the child's stdin; see [`wait_for_parent`]).
    pub fn release(&mut self) {
        self.send("g");
    }

    /// Writes `text` to the child's stdin.
    pub fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(text.as_bytes())
            .expect("write to the child");
        stdin.flush().expect("write to the child");
    }

    /// Waits for the child's next `SHMKIT:` message, returning what follows the prefix.
    pub fn expect_message(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    // The harness may have printed `test name ... ` on the same line.
                    if let Some(at) = line.find(MARK) {
                        return line[at + MARK.len()..].to_owned();
                    }
                }
                Err(_) => panic!(
                    "child {} sent no message within {limit:?}; it printed:\n{}",
                    self.pid(),
                    self.transcript.join("\n")
                ),
            }
        }
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL the child");
        self.child.wait().expect("reap the child")
    }

    /// Waits (up to `limit`) for the child to exit; kills it and fails on a timeout.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Collect what it printed, for the caller's messages.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                    self.transcript.push(line);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "child {} did not exit within {limit:?}; it printed:\n{}",
                    self.pid(),
                    self.transcript.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for the child and asserts it passed its test (exit status 0).
    pub fn assert_success(&mut self, limit: Duration) {
        let status = self.wait(limit);
        assert!(
            status.success(),
            "child {} failed ({status}); it printed:\n{}",
            self.pid(),
            self.transcript.join("\n")
        );
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A small deterministic random generator (xorshift64*), seeded by the caller.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// A seed that differs from run to run (printed by the tests that use it).
    pub fn time_seed() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            ^ u64::from(std::process::id())
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

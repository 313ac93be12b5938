//! Groups that allocate nodes one by one, where a node pool (Boost's `node_allocator`,
//! `adaptive_pool`) could pay: `list_push_pop` (lines `list_push_back`, `list_pop_front`:
//! 1,000,000 `push_back(i)` on a segment `List<u64>`, then `pop_front` of all),
//! `arc_new_drop` (line `arc_new_drop`: 1,000,000 `insert(i)` on one segment `Arc<u64>`,
//! each a new block and the old one dropped and freed), and `node_alloc` (the bare
//! allocation pattern under both, on the segment allocator and on a node pool:
//! `node_alloc_many`/`node_free_many` for 1,000,000 24-byte nodes allocated then freed in
//! order, and `node_alloc_free` for 1,000,000 allocate-then-free pairs; each line as
//! `<line>` on the allocator and `<line>_pool` on the pool). The std counterparts are
//! `std_list` and `std_arc`.
//!
//! Each runs in a fresh 512 MiB segment mapped exclusively, as `vec_push` does.

use std::alloc::Layout;
use std::collections::LinkedList;
use std::ptr::NonNull;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use shmkit::containers::{Arc, ArcExt, List, ListExt};
use shmkit::SegmentAllocator;

use crate::segment::{check_segment, used, ShmGuard, SEG_SIZE};
use crate::timing::{escape, now, report, secs};
use crate::{check, check_eq};

const N: u64 = 1_000_000;

/// Group `list_push_pop`.
pub fn run_list() {
    let guard = ShmGuard::new("list");
    let mut seg = guard.create_exclusive_prefaulted(SEG_SIZE);
    let used0 = used(&seg);
    check!(seg.construct("list", List::<u64>::new()).is_ok());
    let mut list = match seg.find_mut::<List<u64>>("list") {
        Ok(Some(l)) => l,
        other => panic!("finding the list failed: {:?}", other.err()),
    };
    let t0 = now();
    for i in 0..N {
        if let Err(e) = list.push_back(i) {
            panic!("push_back {i} failed: {e}");
        }
    }
    let t1 = now();
    let mut sum = 0u64;
    let t2 = now();
    while let Some(x) = list.pop_front() {
        sum = sum.wrapping_add(x);
    }
    let t3 = now();
    check_eq!(sum, N * (N - 1) / 2);
    report("list_push_back", N, secs(t0, t1));
    report("list_pop_front", N, secs(t2, t3));
    check!(matches!(seg.destroy::<List<u64>>("list"), Ok(true)));
    check_eq!(used(&seg), used0);
    check_segment(&seg);
}

/// Group `arc_new_drop`.
pub fn run_arc() {
    let guard = ShmGuard::new("arc");
    let mut seg = guard.create_exclusive_prefaulted(SEG_SIZE);
    let used0 = used(&seg);
    check!(seg.construct("arc", Arc::<u64>::new()).is_ok());
    let mut arc = match seg.find_mut::<Arc<u64>>("arc") {
        Ok(Some(a)) => a,
        other => panic!("finding the arc failed: {:?}", other.err()),
    };
    let t0 = now();
    for i in 0..N {
        if let Err(e) = arc.insert(i) {
            panic!("insert {i} failed: {e}");
        }
    }
    let t1 = now();
    check_eq!(arc.get().copied(), Some(N - 1));
    report("arc_new_drop", N, secs(t0, t1));
    check!(matches!(seg.destroy::<Arc<u64>>("arc"), Ok(true)));
    check_eq!(used(&seg), used0);
    check_segment(&seg);
}

/// A node's size in the `node_alloc` lines: a `List<u64>` node (tag, two links, value).
const NODE: Layout = match Layout::from_size_align(32, 8) {
    Ok(l) => l,
    Err(_) => panic!("a valid layout"),
};

/// What the `node_alloc` lines time: a source of nodes of [`NODE`]'s layout.
trait Nodes {
    fn get(&self) -> NonNull<u8>;
    /// # Safety
    /// `node` came from `get` of the same source and is not used afterwards.
    unsafe fn put(&self, node: NonNull<u8>);
}

impl Nodes for SegmentAllocator<'_> {
    #[inline]
    fn get(&self) -> NonNull<u8> {
        match self.allocate(NODE) {
            Ok(b) => b.cast(),
            Err(e) => panic!("allocate failed: {e}"),
        }
    }
    #[inline]
    unsafe fn put(&self, node: NonNull<u8>) {
        // SAFETY: the caller's contract: a live node of this allocator.
        if let Err(e) = unsafe { self.deallocate(node, NODE) } {
            panic!("deallocate failed: {e}");
        }
    }
}

/// Nodes a prototype pool carves from one segment block.
const PER_CHUNK: usize = 64;

/// The prototype pool the `_pool` lines time: segregated storage carved in chunks of
/// [`PER_CHUNK`] nodes from the segment allocator, its free list linked through the nodes
/// and headed by one word in a segment block (`tag << 40 | offset + 1` from the chunk
/// base... here from the segment base), popped and pushed by compare-exchange with a tag
/// bumped by every pop, as a pool shared by processes would need. With `shared` false the
/// head is a plain word (one thread's own list, no atomic read-modify-write): the bound a
/// per-thread pool cache could reach.
struct ProtoPool<'a> {
    alloc: SegmentAllocator<'a>,
    base: usize,
    head: &'a AtomicU64,
    shared: bool,
    local: Cell<u64>,
    chunks: RefCell<Vec<NonNull<u8>>>,
}

const OFF_BITS: u32 = 40;
const OFF_MASK: u64 = (1 << OFF_BITS) - 1;

impl<'a> ProtoPool<'a> {
    fn new(alloc: SegmentAllocator<'a>, head: &'a AtomicU64, shared: bool) -> Self {
        let base = head as *const AtomicU64 as usize;
        ProtoPool {
            alloc,
            base,
            head,
            shared,
            local: Cell::new(0),
            chunks: RefCell::new(Vec::new()),
        }
    }

    /// The node at link `link` (an offset + 1 from `base`, masked).
    fn node(&self, link: u64) -> *mut u64 {
        (self.base.wrapping_add((link & OFF_MASK) as usize - 1)) as *mut u64
    }

    fn link(&self, node: NonNull<u8>) -> u64 {
        (node.as_ptr() as usize).wrapping_sub(self.base) as u64 + 1
    }

    #[cold]
    fn refill(&self) -> NonNull<u8> {
        let chunk = Layout::from_size_align(NODE.size() * PER_CHUNK, 8).expect("layout");
        let block = match self.alloc.allocate(chunk) {
            Ok(b) => b.cast::<u8>(),
            Err(e) => panic!("chunk allocate failed: {e}"),
        };
        self.chunks.borrow_mut().push(block);
        for i in 1..PER_CHUNK {
            // SAFETY: node `i` of the fresh chunk, inside it.
            unsafe { self.put(block.add(i * NODE.size())) };
        }
        block
    }
}

impl Nodes for ProtoPool<'_> {
    #[inline]
    fn get(&self) -> NonNull<u8> {
        if !self.shared {
            let head = self.local.get();
            if head == 0 {
                return self.refill();
            }
            // SAFETY: a free node of this pool: its first word links the next.
            self.local.set(unsafe { *self.node(head) });
            return NonNull::new(self.node(head).cast()).expect("non-null");
        }
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            if head & OFF_MASK == 0 {
                return self.refill();
            }
            // SAFETY: a node of a chunk of this pool, which stays allocated: read as an
            // atomic word since another thread may pop it meanwhile.
            let next = unsafe { AtomicU64::from_ptr(self.node(head)) }.load(Ordering::Relaxed);
            let new = (next & OFF_MASK) | ((head >> OFF_BITS) + 1) << OFF_BITS;
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return NonNull::new(self.node(head).cast()).expect("non-null"),
                Err(h) => head = h,
            }
        }
    }
    #[inline]
    unsafe fn put(&self, node: NonNull<u8>) {
        let link = self.link(node);
        if !self.shared {
            // SAFETY: the caller gives the node back: its first word is the pool's.
            unsafe { *node.cast::<u64>().as_ptr() = self.local.get() };
            self.local.set(link);
            return;
        }
        // SAFETY: as above, written atomically since a racing pop may read it.
        let word = unsafe { AtomicU64::from_ptr(node.cast::<u64>().as_ptr()) };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            word.store(head & OFF_MASK, Ordering::Relaxed);
            let new = link | (head & !OFF_MASK);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }
}

impl Drop for ProtoPool<'_> {
    fn drop(&mut self) {
        let chunk = Layout::from_size_align(NODE.size() * PER_CHUNK, 8).expect("layout");
        for &c in self.chunks.borrow().iter() {
            // SAFETY: each chunk was allocated by `refill` and all its nodes are back.
            let _ = unsafe { self.alloc.deallocate(c, chunk) };
        }
    }
}

/// The `node_alloc` lines on `nodes`, each name suffixed with `suffix`.
fn time_nodes(nodes: &impl Nodes, suffix: &str) {
    let mut live = Vec::with_capacity(N as usize);
    let t0 = now();
    for _ in 0..N {
        live.push(nodes.get());
    }
    let t1 = now();
    for &p in &live {
        // SAFETY: each node was got above and is given back once.
        unsafe { nodes.put(p) };
    }
    let t2 = now();
    for _ in 0..N {
        let p = escape(nodes.get());
        // SAFETY: got just above, given back once.
        unsafe { nodes.put(p) };
    }
    let t3 = now();
    report(&format!("node_alloc_many{suffix}"), N, secs(t0, t1));
    report(&format!("node_free_many{suffix}"), N, secs(t1, t2));
    report(&format!("node_alloc_free{suffix}"), N, secs(t2, t3));
}

/// Group `node_alloc`.
pub fn run_node_alloc() {
    let guard = ShmGuard::new("nodes");
    let seg = guard.create_exclusive_prefaulted(SEG_SIZE);
    let used0 = used(&seg);
    time_nodes(&seg.allocator(), "");
    let head = match seg.construct("head", AtomicU64::new(0)) {
        Ok(h) => h,
        Err(e) => panic!("constructing the head failed: {e}"),
    };
    time_nodes(&ProtoPool::new(seg.allocator(), head, true), "_pool");
    time_nodes(&ProtoPool::new(seg.allocator(), head, false), "_pool_local");
    check_eq!(used(&seg) - used0 > 0, true);
}

/// `std_list_push_back`, `std_list_pop_front`: std's `LinkedList` on glibc malloc.
pub fn run_std_list() {
    super::baseline_std::prepare_heap();
    let mut list = LinkedList::new();
    let t0 = now();
    for i in 0..N {
        list.push_back(i);
    }
    let t1 = now();
    let mut sum = 0u64;
    let t2 = now();
    while let Some(x) = list.pop_front() {
        sum = sum.wrapping_add(x);
    }
    let t3 = now();
    check_eq!(sum, N * (N - 1) / 2);
    report("std_list_push_back", N, secs(t0, t1));
    report("std_list_pop_front", N, secs(t2, t3));
}

/// `std_arc_new_drop`: std's `Arc::new` replacing the last one, on glibc malloc.
pub fn run_std_arc() {
    super::baseline_std::prepare_heap();
    let mut arc = std::sync::Arc::new(0u64);
    let t0 = now();
    for i in 0..N {
        arc = escape(std::sync::Arc::new(i));
    }
    let t1 = now();
    check_eq!(*arc, N - 1);
    report("std_arc_new_drop", N, secs(t0, t1));
}

//! The allocator workloads shared by the segment and the process heap (the peer's
//! `wl_alloc_free_fixed`, `wl_alloc_free_mixed`, `wl_alloc_many_free`), written once
//! against [`RawAlloc`] so that both sides run the very same loops.

use std::ptr::{self, NonNull};
use std::sync::Barrier;
use std::time::Instant;

use crate::rng::{XorShift64, SEED};
use crate::segment::Segment;
use crate::timing::{escape, now, secs};
use crate::{check, check_eq};

/// An allocator as the workloads see it: allocate bytes, free them again.
pub trait RawAlloc {
    /// Allocates `size` bytes; never returns null (the segment panics when it runs out).
    fn alloc(&mut self, size: usize) -> *mut u8;

    /// Frees a block.
    ///
    /// # Safety
    /// `p` was returned by `alloc` on this allocator and is not used afterwards.
    unsafe fn free(&mut self, p: *mut u8);
}

/// A managed segment's `allocate` / `deallocate`.
pub struct SegAlloc<'a>(pub &'a Segment);

#[cold]
#[inline(never)]
fn allocate_failed(size: usize, e: shmkit::Error) -> ! {
    panic!("segment allocate({size}) failed: {e}")
}

#[cold]
#[inline(never)]
fn deallocate_failed(e: shmkit::Error) -> ! {
    panic!("segment deallocate failed: {e}")
}

impl RawAlloc for SegAlloc<'_> {
    #[inline(always)]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        match self.0.allocate(size) {
            Ok(p) => p.as_ptr(),
            Err(e) => allocate_failed(size, e),
        }
    }

    #[inline(always)]
    unsafe fn free(&mut self, p: *mut u8) {
        // SAFETY: `p` came from `alloc`, which never returns null, and is freed once
        // (caller).
        let p = unsafe { NonNull::new_unchecked(p) };
        // SAFETY: `p` is a live allocation of this segment, not used afterwards (caller).
        if let Err(e) = unsafe { self.0.deallocate(p) } {
            deallocate_failed(e)
        }
    }
}

/// glibc `malloc` / `free` (the peer's `std::malloc` / `std::free`). Like the peer, a
/// null result is not checked inside the timed loops.
pub struct Malloc;

impl RawAlloc for Malloc {
    #[inline(always)]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: malloc has no preconditions.
        unsafe { libc::malloc(size) }.cast()
    }

    #[inline(always)]
    unsafe fn free(&mut self, p: *mut u8) {
        // SAFETY: `p` came from `malloc` and is freed once (caller).
        unsafe { libc::free(p.cast()) }
    }
}

/// A zero-initialised pointer table whose pages are really written (like the peer's
/// value-initialised `std::vector<void*>`), so the timed loops do not fault them in.
fn touched_table(len: usize) -> Vec<*mut u8> {
    let mut table = vec![ptr::null_mut::<u8>(); len];
    // `vec![null; n]` may come from calloc and fresh, untouched pages: write one slot of
    // every page through a volatile store.
    let per_page = (crate::segment::page_size() / size_of::<*mut u8>()).max(1);
    for slot in table.iter_mut().step_by(per_page) {
        // SAFETY: `slot` is a valid, aligned element of `table`.
        unsafe { ptr::write_volatile(slot, ptr::null_mut()) };
    }
    table
}

// ---------------------------------------------------------------------------------------
// 1. alloc_free_fixed
// ---------------------------------------------------------------------------------------

/// Iterations of `alloc_free_fixed`.
pub const FIXED_OPS: u64 = 1_000_000;
/// Request size of `alloc_free_fixed`.
pub const FIXED_SIZE: usize = 64;

/// Timed: `n` × `p = alloc(64); escape(p); free(p)`. Returns seconds.
pub fn alloc_free_fixed<A: RawAlloc>(a: &mut A, n: u64) -> f64 {
    let t0 = now();
    for _ in 0..n {
        let p = a.alloc(FIXED_SIZE);
        escape(p);
        // SAFETY: `p` was just allocated by `a` and is not used again.
        unsafe { a.free(p) };
    }
    let t1 = now();
    secs(t0, t1)
}

// ---------------------------------------------------------------------------------------
// 2. alloc_free_mixed
// ---------------------------------------------------------------------------------------

/// Live blocks of `alloc_free_mixed`.
pub const MIXED_WINDOW: usize = 10_000;
/// Timed ops of `alloc_free_mixed` (one free + one allocate each).
pub const MIXED_OPS: u64 = 2_000_000;

/// README checks: bytes requested by the prefill and by the timed ops, sum of all `idx`,
/// bytes of the final live set.
pub const MIXED_PREFILL_BYTES: u64 = 20_245_467;
pub const MIXED_TIMED_BYTES: u64 = 4_099_556_374;
pub const MIXED_IDX_SUM: u64 = 10_001_317_002;
pub const MIXED_FINAL_LIVE_BYTES: u64 = 20_516_511;

/// `8 + next() % 4089`: uniform in 8..=4096.
#[inline(always)]
fn mixed_size(rng: &mut XorShift64) -> usize {
    8 + (rng.next_u64() % 4089) as usize
}

/// What `alloc_free_mixed` requests, replayed without allocating (untimed).
pub struct MixedPlan {
    pub prefill_bytes: u64,
    pub timed_bytes: u64,
    pub idx_sum: u64,
    /// Size requested for each slot of the final live set.
    pub final_sizes: Vec<usize>,
    /// Generator state after the last draw.
    pub final_state: u64,
}

impl MixedPlan {
    /// Replays the sequence from `seed` in the workload's draw order (prefill sizes, then per
    /// op: index first, then size).
    pub fn replay(seed: u64) -> Self {
        let mut rng = XorShift64::new(seed);
        let mut sizes = vec![0usize; MIXED_WINDOW];
        let mut prefill_bytes = 0u64;
        for s in sizes.iter_mut() {
            *s = mixed_size(&mut rng);
            prefill_bytes += *s as u64;
        }
        let (mut timed_bytes, mut idx_sum) = (0u64, 0u64);
        for _ in 0..MIXED_OPS {
            let idx = (rng.next_u64() % MIXED_WINDOW as u64) as usize;
            idx_sum += idx as u64;
            sizes[idx] = mixed_size(&mut rng);
            timed_bytes += sizes[idx] as u64;
        }
        MixedPlan {
            prefill_bytes,
            timed_bytes,
            idx_sum,
            final_sizes: sizes,
            final_state: rng.state(),
        }
    }

    /// The README's numbers for a correct port.
    pub fn check_readme_totals(&self) {
        check_eq!(self.prefill_bytes, MIXED_PREFILL_BYTES);
        check_eq!(self.timed_bytes, MIXED_TIMED_BYTES);
        check_eq!(self.idx_sum, MIXED_IDX_SUM);
        let live: u64 = self.final_sizes.iter().map(|&s| s as u64).sum();
        check_eq!(live, MIXED_FINAL_LIVE_BYTES);
    }
}

/// One thread's `alloc_free_mixed`: its generator, its window of live blocks and the plan
/// its draws must follow. Split in three so that threads can start their timed loops
/// together.
struct Mixed {
    rng: XorShift64,
    live: Vec<*mut u8>,
    plan: MixedPlan,
}

impl Mixed {
    /// Untimed: replays the plan of `seed` (the README's totals hold for [`SEED`]) and
    /// allocates the window.
    fn prefill<A: RawAlloc>(a: &mut A, seed: u64) -> Self {
        let plan = MixedPlan::replay(seed);
        if seed == SEED {
            plan.check_readme_totals();
        }
        let mut rng = XorShift64::new(seed);
        let mut live = touched_table(MIXED_WINDOW);
        for slot in live.iter_mut() {
            *slot = a.alloc(mixed_size(&mut rng));
        }
        Mixed { rng, live, plan }
    }

    /// Timed: `MIXED_OPS` × (`idx = next() % W; free(live[idx]); live[idx] = alloc(size)`).
    /// Returns the clock at the start and at the end.
    fn timed<A: RawAlloc>(&mut self, a: &mut A) -> (Instant, Instant) {
        // A local generator stays in registers across the allocator calls.
        let mut rng = self.rng.clone();
        let live_slots: &mut [*mut u8; MIXED_WINDOW] = match self.live.as_mut_slice().try_into() {
            Ok(array) => array,
            Err(_) => unreachable!("the table has MIXED_WINDOW slots"),
        };
        let t0 = now();
        for _ in 0..MIXED_OPS {
            let idx = (rng.next_u64() % MIXED_WINDOW as u64) as usize;
            // SAFETY: every slot holds a live block of `a` (prefill or the previous op),
            // which is replaced right below and never used again.
            unsafe { a.free(live_slots[idx]) };
            live_slots[idx] = a.alloc(mixed_size(&mut rng));
        }
        let t1 = now();
        escape(self.live.as_ptr());
        self.rng = rng;
        (t0, t1)
    }

    /// Untimed: checks the number of draws, runs `inspect(&live, &plan)` while the final
    /// live set is still allocated, then frees every block.
    fn finish<A: RawAlloc>(self, a: &mut A, inspect: impl FnOnce(&[*mut u8], &MixedPlan)) {
        check_eq!(self.rng.state(), self.plan.final_state);
        inspect(&self.live, &self.plan);
        for &p in &self.live {
            // SAFETY: each slot holds a distinct live block of `a`, freed exactly once here.
            unsafe { a.free(p) };
        }
    }
}

/// The single-threaded workload from [`SEED`]: `Mixed` prefill, timed loop, finish.
/// Returns seconds.
pub fn alloc_free_mixed<A: RawAlloc>(
    a: &mut A,
    inspect: impl FnOnce(&[*mut u8], &MixedPlan),
) -> f64 {
    let mut run = Mixed::prefill(a, SEED);
    let (t0, t1) = run.timed(a);
    run.finish(a, inspect);
    secs(t0, t1)
}

// ---------------------------------------------------------------------------------------
// 2b. alloc_free_mt
// ---------------------------------------------------------------------------------------

/// Threads of `alloc_free_mt`.
pub const MT_THREADS: usize = 2;

/// Thread `i`'s seed: thread 0 draws exactly the single-threaded sequence.
fn thread_seed(i: usize) -> u64 {
    SEED ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// One thread's way through a row of barriers. A thread that panics (a failed CHECK, an
/// allocation failure) still waits at the ones it did not reach when it unwinds, so the
/// others finish and the panic reaches the group instead of a hang.
struct Rendezvous<'a> {
    barriers: &'a [Barrier],
    passed: usize,
}

impl Rendezvous<'_> {
    fn wait(&mut self) {
        self.barriers[self.passed].wait();
        self.passed += 1;
    }
}

impl Drop for Rendezvous<'_> {
    fn drop(&mut self) {
        while self.passed < self.barriers.len() {
            self.wait();
        }
    }
}

/// `alloc_free_mixed` on [`MT_THREADS`] threads at once, thread `i` on `allocs[i]` with its
/// own window and `thread_seed(i)`: the prefills first, then all timed loops started
/// together, then each thread's `inspect` and frees once every loop is done. Returns the
/// seconds from the first start to the last end.
pub fn alloc_free_mixed_mt<A: RawAlloc + Send>(
    allocs: [A; MT_THREADS],
    inspect: impl Fn(&[*mut u8], &MixedPlan) + Sync,
) -> f64 {
    let barriers = [Barrier::new(MT_THREADS), Barrier::new(MT_THREADS)];
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let threads: Vec<_> = allocs
            .into_iter()
            .enumerate()
            .map(|(i, mut a)| {
                let (barriers, inspect) = (&barriers, &inspect);
                s.spawn(move || {
                    let mut sync = Rendezvous {
                        barriers,
                        passed: 0,
                    };
                    let mut run = Mixed::prefill(&mut a, thread_seed(i));
                    sync.wait();
                    let span = run.timed(&mut a);
                    sync.wait();
                    run.finish(&mut a, inspect);
                    span
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min();
    let last = spans.iter().map(|s| s.1).max();
    match (first, last) {
        (Some(t0), Some(t1)) => secs(t0, t1),
        _ => unreachable!("MT_THREADS > 0"),
    }
}

// ---------------------------------------------------------------------------------------
// 3. alloc_many_free
// ---------------------------------------------------------------------------------------

/// Blocks of `alloc_many_free`.
pub const MANY_N: u64 = 1_000_000;
/// Request size of `alloc_many_free`.
pub const MANY_SIZE: usize = 32;

/// Seconds of the two timed halves of `alloc_many_free`.
pub struct ManyResult {
    pub alloc_s: f64,
    pub free_s: f64,
}

/// Timed A: `ptrs[i] = alloc(32)` for 1e6 blocks; untimed `after_alloc(&ptrs)`; timed B:
/// free them in allocation order.
pub fn alloc_many_free<A: RawAlloc>(a: &mut A, after_alloc: impl FnOnce(&[*mut u8])) -> ManyResult {
    let mut ptrs = touched_table(MANY_N as usize);

    let t0 = now();
    for slot in ptrs.iter_mut() {
        *slot = a.alloc(MANY_SIZE);
    }
    let t1 = now();
    escape(ptrs.as_ptr());
    after_alloc(&ptrs);

    let t2 = now();
    for &p in ptrs.iter() {
        // SAFETY: each entry is a distinct live block of `a`, freed exactly once.
        unsafe { a.free(p) };
    }
    let t3 = now();
    ManyResult {
        alloc_s: secs(t0, t1),
        free_s: secs(t2, t3),
    }
}

/// Untimed sanity for a pointer table: no null, all distinct and `align`-aligned.
pub fn check_distinct_aligned(ptrs: &[*mut u8], align: usize) {
    check!(ptrs.iter().all(|p| !p.is_null()));
    check!(ptrs.iter().all(|p| p.addr() % align == 0));
    let mut sorted: Vec<usize> = ptrs.iter().map(|p| p.addr()).collect();
    sorted.sort_unstable();
    check!(sorted.windows(2).all(|w| w[0] != w[1]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_plan_matches_the_readme() {
        MixedPlan::replay(SEED).check_readme_totals();
    }

    #[test]
    fn malloc_workloads_run() {
        let mut m = Malloc;
        assert!(alloc_free_fixed(&mut m, 1000) >= 0.0);
        let r = alloc_many_free(&mut m, |p| check_distinct_aligned(p, 16));
        assert!(r.alloc_s >= 0.0 && r.free_s >= 0.0);
        let seeds = std::sync::Mutex::new(Vec::new());
        let s = alloc_free_mixed_mt([Malloc, Malloc], |live, plan| {
            check_distinct_aligned(live, 16);
            seeds.lock().unwrap().push(plan.final_state);
        });
        assert!(s >= 0.0);
        let seeds = seeds.into_inner().unwrap();
        assert_eq!(seeds.len(), MT_THREADS);
        assert_ne!(seeds[0], seeds[1], "each thread draws its own sequence");
    }

    /// malloc, or a panic on every allocation.
    struct Failing(bool);

    impl RawAlloc for Failing {
        fn alloc(&mut self, size: usize) -> *mut u8 {
            assert!(!self.0, "injected allocation failure");
            Malloc.alloc(size)
        }

        unsafe fn free(&mut self, p: *mut u8) {
            // SAFETY: forwarded contract (blocks come from `Malloc`).
            unsafe { Malloc.free(p) }
        }
    }

    #[test]
    #[should_panic(expected = "injected allocation failure")]
    fn a_thread_that_fails_before_the_barriers_does_not_hang_the_other() {
        alloc_free_mixed_mt([Failing(false), Failing(true)], |_, _| ());
    }
}

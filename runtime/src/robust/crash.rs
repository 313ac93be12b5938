//! Simulated crashes at numbered points, for the sweeps that stop an operation at each of its
//! steps and check that everybody else can go on: the allocator's writes, and each step of
//! the locks' lock, unlock, wait and notify.
//!
//! An algorithm marks each place where its process may die with [`point`], naming the step
//! (`"unlock: released, not yet woken"`). A sweep runs an operation through
//! [`crashes_at`]`(n, op)` for n = 0, 1, 2, … until it completes: the n-th point the calling
//! thread passes panics with a payload only `crashes_at` catches, so the operation stops there
//! and leaves every word as it was. While that panic unwinds, [`crashing`] is true, and guards
//! release nothing (nothing runs in a killed process); afterwards the thread must end, which
//! releases its owner id (as a killed process's description closes), so its locks are a dead
//! owner's. Under `--cfg loom` a crash also tells the model that time may pass for the others
//! (`super::model::killed`).
//!
//! Outside tests and model checking the points compile to nothing.
//!
//! The internal locks name the mapping, not the thread, and a thread's end does not kill
//! a mapping: a sweep through them makes the holder dead itself (as
//! `manager/core/tests.rs` does, writing a dead owner's id into the lock word).
//!
//! To bring a new primitive into the sweeps: put a [`point`] before and after every write to
//! its shared words and before every sleep and wake; make its guards' `Drop` return at once
//! when [`crashing`]; and add a scenario to `crate::sync::crash_tests` (and to the model
//! tests, `tests/loom.rs`).

#[cfg(any(test, loom))]
pub(crate) use runtime_points::crashes_at;
#[cfg(any(test, loom, feature = "crash-points"))]
pub(crate) use runtime_points::{crashing, point};

/// The runtime's own points, counted apart from the containers' (see [`external`]): a
/// sweep of a container must not stop inside the allocator, whose lock names the mapping,
/// not the thread, and would stay held by a thread that goes on.
#[cfg(any(test, loom, feature = "crash-points"))]
mod runtime_points {
    use super::hooks::{self, Domain};

    pub(crate) fn point(step: &'static str) {
        hooks::point(Domain::Runtime, step);
    }

    pub(crate) fn crashing() -> bool {
        hooks::crashing(Domain::Runtime)
    }

    #[cfg(any(test, loom))]
    pub(crate) fn crashes_at<R>(n: u32, op: impl FnOnce() -> R) -> Result<R, &'static str> {
        hooks::crashes_at(Domain::Runtime, n, op)
    }
}

/// The same hooks for the segment containers (`shmkit-containers`, whose tests enable the
/// `crash-points` feature): their points, their sweeps, counted apart from the runtime's.
#[cfg(feature = "crash-points")]
pub mod external {
    use super::hooks::{self, Domain};

    /// Marks a step at which a process may die.
    pub fn point(step: &'static str) {
        hooks::point(Domain::External, step);
    }

    /// Whether the calling thread is unwinding from a simulated crash at an external point.
    pub fn crashing() -> bool {
        hooks::crashing(Domain::External)
    }

    /// Runs `op`, crashing it at the `n`-th external point it passes (from 0): its result,
    /// or the step it crashed at. Other panics go on unwinding.
    pub fn crashes_at<R>(n: u32, op: impl FnOnce() -> R) -> Result<R, &'static str> {
        hooks::crashes_at(Domain::External, n, op)
    }
}

/// Whether the calling thread is unwinding from a simulated crash at a point of either
/// domain: what the guards of locks a *thread* owns (the `sync` locks) ask, so that a
/// sweep through a container or a queue leaves them to a dead owner too, as a SIGKILL
/// would. (The allocator's and the index's locks name the mapping, which a crash of one
/// thread does not kill: their guards ask [`crashing`], the runtime's domain only.)
#[cfg(any(test, loom, feature = "crash-points"))]
pub(crate) fn thread_crashing() -> bool {
    #[cfg(feature = "crash-points")]
    if external::crashing() {
        return true;
    }
    crashing()
}

/// Whether the calling thread is unwinding from a simulated crash. Never, outside tests.
#[cfg(not(any(test, loom, feature = "crash-points")))]
#[inline(always)]
pub(crate) fn thread_crashing() -> bool {
    false
}

/// Marks a step at which a process may die. Nothing, outside tests.
#[cfg(not(any(test, loom, feature = "crash-points")))]
#[inline(always)]
pub(crate) fn point(_step: &'static str) {}

/// Whether the calling thread is unwinding from a simulated crash. Never, outside tests.
#[cfg(not(any(test, loom, feature = "crash-points")))]
#[inline(always)]
pub(crate) fn crashing() -> bool {
    false
}

#[cfg(any(test, loom, feature = "crash-points"))]
mod hooks {
    use std::cell::Cell;
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::Once;

    /// Whose points a plan counts.
    #[derive(Clone, Copy)]
    pub(super) enum Domain {
        Runtime,
        #[cfg_attr(not(feature = "crash-points"), allow(dead_code))]
        External,
    }

    /// The calling thread's crash plan in one domain.
    struct Plan {
        /// Points left to pass before the crash (None: no crash planned).
        left: Cell<Option<u32>>,
        /// The step it crashed at, while unwinding from it.
        crashed: Cell<Option<&'static str>>,
    }

    impl Plan {
        const fn none() -> Self {
            Plan {
                left: Cell::new(None),
                crashed: Cell::new(None),
            }
        }
    }

    #[cfg(not(loom))]
    thread_local! {
        static PLANS: [Plan; 2] = const { [Plan::none(), Plan::none()] };
    }
    // A model thread's plan is its own (loom's threads share the OS thread's locals).
    #[cfg(loom)]
    loom::thread_local! {
        static PLANS: [Plan; 2] = [Plan::none(), Plan::none()];
    }

    fn with_plan<R>(domain: Domain, f: impl FnOnce(&Plan) -> R) -> R {
        PLANS.with(|plans| f(&plans[domain as usize]))
    }

    /// The payload of a simulated crash.
    struct Crash;

    /// Crashes here if this is the planned point.
    pub(super) fn point(domain: Domain, step: &'static str) {
        let crash = with_plan(domain, |p| match p.left.get() {
            Some(0) => {
                p.left.set(None);
                p.crashed.set(Some(step));
                true
            }
            Some(n) => {
                p.left.set(Some(n - 1));
                false
            }
            None => false,
        });
        if crash {
            #[cfg(loom)]
            crate::robust::model::killed();
            panic::panic_any(Crash);
        }
    }

    pub(super) fn crashing(domain: Domain) -> bool {
        with_plan(domain, |p| p.crashed.get().is_some())
    }

    /// Runs `op`, crashing it at the `n`-th point it passes (counting from 0): its result, or
    /// the step it crashed at. Other panics go on unwinding.
    pub(super) fn crashes_at<R>(
        domain: Domain,
        n: u32,
        op: impl FnOnce() -> R,
    ) -> Result<R, &'static str> {
        quiet_crashes();
        with_plan(domain, |p| p.left.set(Some(n)));
        let result = panic::catch_unwind(AssertUnwindSafe(op));
        let crashed = with_plan(domain, |p| {
            p.left.set(None);
            p.crashed.take()
        });
        match (result, crashed) {
            (Ok(value), None) => Ok(value),
            (Err(payload), None) => panic::resume_unwind(payload),
            (_, Some(step)) => Err(step),
        }
    }

    /// Keeps the simulated crashes out of the test output; other panics are printed as usual.
    fn quiet_crashes() {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if !info.payload().is::<Crash>() {
                    previous(info);
                }
            }));
        });
    }
}

//! The seed objects in a segment: built (constructed empty, grown in rounds), and in an
//! opened mutant looked up as their types, read in full where lent, and, in a writable
//! mapping, changed, partly destroyed, and the segment checked.

use std::hint::black_box;

use shmkit_containers::{Arc, ArcExt, String, Vec, Weak, WeakExt};
use shmkit_runtime::segment::Backing;
use shmkit_runtime::sync::{Mutex, MutexGuard, TryLockError};
use shmkit_runtime::{Error, Exclusive, ManagedSegment, ReadOnly, ShmImmutable};
use shmkit_test_support::fuzz::Choices;

use crate::exercise::{objects, Exercise, Sample, Visit};

/// The `Arc<String>` handles, an array: the first two share a value; the third's value is
/// gone, but the `Weak` keeps its block.
pub const ARCS: &str = "arcs";
const HANDLES: usize = 3;
/// A `Mutex<Weak<String>>` (a `Weak` is changed in place while the `Arc`s are read).
pub const WEAK: &str = "weak";
/// A `Mutex<Vec<u64>>`.
pub const GUARDED: &str = "guarded";

type WeakSlot = Mutex<Weak<String>>;
type Guarded = Mutex<Vec<u64>>;

/// A segment of the seeds' kind: heap, external buffer, read-only or not.
pub type Segment<B, M> = ManagedSegment<B, M>;

/// What a mapping lends: a read-only one the `ShmImmutable` types only.
pub trait Lender {
    fn lend<T: Exercise + ShmImmutable>(&self, name: &str) -> Result<Option<&T>, Error>;
    fn check(&self) -> Result<(), Error>;
}

impl<B: Backing> Lender for Segment<B, Exclusive> {
    fn lend<T: Exercise + ShmImmutable>(&self, name: &str) -> Result<Option<&T>, Error> {
        self.find::<T>(name)
    }
    fn check(&self) -> Result<(), Error> {
        ManagedSegment::check(self)
    }
}

impl<B: Backing> Lender for Segment<B, ReadOnly> {
    fn lend<T: Exercise + ShmImmutable>(&self, name: &str) -> Result<Option<&T>, Error> {
        self.find::<T>(name)
    }
    fn check(&self) -> Result<(), Error> {
        ManagedSegment::check(self)
    }
}

/// What became of the objects of one opened mutant.
#[derive(Default, Debug)]
pub struct Report {
    /// Objects looked up and lent.
    pub lent: u64,
    /// Lookups refused with an error.
    pub refused: u64,
    /// Every error, as `what: Kind`.
    pub errors: std::vec::Vec<std::string::String>,
    /// Every error in full, with the object it is about.
    pub details: std::vec::Vec<std::string::String>,
    /// Whether the segment checked out before the changes and not after: changes to
    /// objects that validation lent wrote where they should not have.
    pub corrupted: bool,
}

impl Report {
    /// Counts a lookup of `name`; what it lent.
    fn lookup<T>(&mut self, name: &str, found: Result<Option<T>, Error>) -> Option<T> {
        match found {
            Ok(Some(v)) => {
                self.lent += 1;
                Some(v)
            }
            Ok(None) => {
                self.errors.push("lookup: missing".into());
                self.details.push(format!("{name}: missing"));
                None
            }
            Err(e) => {
                self.refused += 1;
                self.error(name, "lookup", &e);
                None
            }
        }
    }

    /// What `r` holds; None, and the error noted as `what` of `name`, on error.
    fn note<T>(&mut self, name: &str, what: &str, r: Result<T, Error>) -> Option<T> {
        r.map_err(|e| self.error(name, what, &e)).ok()
    }

    fn error(&mut self, name: &str, what: &str, e: &Error) {
        self.errors.push(format!("{what}: {}", kind(e)));
        self.details.push(format!("{what} {name}: {e}"));
    }
}

/// The variant of an error, for the tallies.
pub fn kind(e: &Error) -> std::string::String {
    let text = format!("{e:?}");
    text.split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A lock's guard, also from a poisoned lock; None (and the error noted) when another
/// holder has it or it failed.
fn locked<'a, T>(name: &str, m: &'a Mutex<T>, report: &mut Report) -> Option<MutexGuard<'a, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => {
            report.errors.push("lock: WouldBlock".into());
            report.details.push(format!("lock {name}: would block"));
            None
        }
        Err(TryLockError::Failed(e)) => {
            report.error(name, "lock", &e);
            None
        }
    }
}

/// Constructs every seed object, empty.
pub fn construct<B: Backing>(seg: &Segment<B, Exclusive>) -> Result<(), Error> {
    struct Construct<'a, B: Backing>(&'a Segment<B, Exclusive>, Result<(), Error>);
    impl<B: Backing> Visit for Construct<'_, B> {
        fn object<T: Exercise + ShmImmutable>(&mut self, name: &'static str) {
            if self.1.is_ok() {
                self.1 = self.0.construct(name, T::default()).map(drop);
            }
        }
    }
    let mut c = Construct(seg, Ok(()));
    objects(&mut c);
    c.1?;
    seg.construct_array_with(ARCS, HANDLES, |_| Arc::<String>::new())?;
    seg.construct(WEAK, WeakSlot::default())?;
    seg.construct(GUARDED, Guarded::default())?;
    Ok(())
}

/// Grows every seed object by something made of `n`; the first round also makes the
/// handles share.
pub fn grow<B: Backing>(seg: &mut Segment<B, Exclusive>, n: u64) -> Result<(), Error> {
    struct Grow<'a, B: Backing>(&'a mut Segment<B, Exclusive>, u64, Result<(), Error>);
    impl<B: Backing> Visit for Grow<'_, B> {
        fn object<T: Exercise + ShmImmutable>(&mut self, name: &'static str) {
            if self.2.is_ok() {
                self.2 = match self.0.find_mut::<T>(name) {
                    Ok(Some(v)) => T::grow(v, self.1),
                    Ok(None) => Err(Error::NotFound { what: name.into() }),
                    Err(e) => Err(e),
                };
            }
        }
    }
    let mut g = Grow(seg, n, Ok(()));
    objects(&mut g);
    g.2?;
    let mut guarded = seg.find::<Guarded>(GUARDED)?.expect("constructed").lock()?;
    Exercise::grow(guarded.as_shm_mut(), n)?;
    drop(guarded);
    if n == 0 {
        {
            let mut arcs = seg
                .find_slice_mut::<Arc<String>>(ARCS)?
                .expect("constructed");
            let mut handles: std::vec::Vec<_> = arcs.iter_mut().collect();
            let [a, b, c] = &mut handles[..] else {
                unreachable!("{HANDLES} handles")
            };
            a.insert(String::src(n))?;
            b.share(a)?;
            c.insert(String::src(n + 1))?;
        }
        {
            let arcs = seg.find_slice::<Arc<String>>(ARCS)?.expect("constructed");
            let weak = seg.find::<WeakSlot>(WEAK)?.expect("constructed");
            weak.lock()?.downgrade_from(&arcs[2])?;
        }
        let mut arcs = seg
            .find_slice_mut::<Arc<String>>(ARCS)?
            .expect("constructed");
        arcs.index(2).expect("3 handles").clear();
    }
    Ok(())
}

/// Looks every object up as its type and reads what is lent.
pub fn read<S: Lender>(seg: &S, report: &mut Report) {
    struct Read<'a, S>(&'a S, &'a mut Report, u64);
    impl<S: Lender> Visit for Read<'_, S> {
        fn object<T: Exercise + ShmImmutable>(&mut self, name: &'static str) {
            if let Some(v) = self.1.lookup(name, self.0.lend::<T>(name)) {
                self.2 ^= v.read();
            }
        }
    }
    let mut r = Read(seg, report, 0);
    objects(&mut r);
    black_box(r.2);
}

/// [`read`], then checks the segment: the mix of a read-only mapping.
pub fn read_and_check<S: Lender>(seg: &S, report: &mut Report) {
    read(seg, report);
    report.note("segment", "check", seg.check());
}

/// Rounds of changes to every object in a writable mapping (one under Miri, where the
/// first finds what the others would).
const CHANGES: usize = if cfg!(miri) { 1 } else { 3 };

/// The whole mix on a writable mapping: [`read`], the handles and locked objects read,
/// changes to every object chosen by `c`, some objects destroyed, the segment checked.
pub fn write<B: Backing>(
    seg: &mut Segment<B, Exclusive>,
    c: &mut impl Choices,
    report: &mut Report,
) {
    read(seg, report);
    // Whether the segment checks out before the changes (not under Miri: costly, and the
    // suspects it finds are for native runs to list).
    let sound = !cfg!(miri) && report.note("segment", "check", seg.check()).is_some();
    read_specials(seg, report);
    for _ in 0..CHANGES {
        change(seg, c, report);
    }
    struct Destroy<'a, B: Backing, C>(&'a mut Segment<B, Exclusive>, &'a mut C, &'a mut Report);
    impl<B: Backing, C: Choices> Visit for Destroy<'_, B, C> {
        fn object<T: Exercise + ShmImmutable>(&mut self, name: &'static str) {
            if self.1.below(3) == 0 {
                self.2.note(name, "destroy", self.0.destroy::<T>(name));
            }
        }
    }
    objects(&mut Destroy(seg, c, report));
    if c.below(3) == 0 {
        report.note(ARCS, "destroy", seg.destroy::<Arc<String>>(ARCS));
    }
    if c.below(3) == 0 {
        report.note(WEAK, "destroy", seg.destroy::<WeakSlot>(WEAK));
    }
    if c.below(3) == 0 {
        report.note(GUARDED, "destroy", seg.destroy::<Guarded>(GUARDED));
    }
    let after = report.note("segment", "check after", seg.check());
    report.corrupted = sound && after.is_none();
}

/// One change to every object, each chosen by `c`.
fn change<B: Backing>(seg: &mut Segment<B, Exclusive>, c: &mut impl Choices, report: &mut Report) {
    struct Change<'a, B: Backing, C>(&'a mut Segment<B, Exclusive>, &'a mut C, &'a mut Report);
    impl<B: Backing, C: Choices> Visit for Change<'_, B, C> {
        fn object<T: Exercise + ShmImmutable>(&mut self, name: &'static str) {
            let n = self.1.word();
            if let Some(Some(v)) = self.2.note(name, "find_mut", self.0.find_mut::<T>(name)) {
                self.2.note(name, "change", T::change(v, n));
            }
        }
    }
    objects(&mut Change(seg, c, report));
    let n = c.word();
    if let Some(Some(mut arcs)) = report.note(
        ARCS,
        "find_slice_mut",
        seg.find_slice_mut::<Arc<String>>(ARCS),
    ) {
        let mut handles: std::vec::Vec<_> = arcs.iter_mut().collect();
        let len = handles.len() as u64;
        if len > 0 {
            let (i, j) = (c.below(len) as usize, c.below(len) as usize);
            let r = match c.below(4) {
                0 => handles[i].insert(String::src(n % 32)).map_err(Error::from),
                1 if i != j => {
                    let (low, high) = handles.split_at_mut(i.max(j));
                    let (a, b) = if i < j {
                        (&mut low[i], &high[0])
                    } else {
                        (&mut high[0], &low[j])
                    };
                    a.share(b).map_err(Error::from)
                }
                2 => {
                    handles[i].clear();
                    Ok(())
                }
                _ => handles[i]
                    .value_mut()
                    .map_or(Ok(()), |v| Exercise::change(v, n)),
            };
            report.note(ARCS, "change", r);
        }
    }
    let arcs = seg.find_slice::<Arc<String>>(ARCS).ok().flatten();
    if let Some(Some(weak)) = report.note(WEAK, "find", seg.find::<WeakSlot>(WEAK)) {
        if let Some(mut w) = locked(WEAK, weak, report) {
            match (arcs, c.below(3)) {
                (Some(arcs), 0) if !arcs.is_empty() => {
                    let r = w.downgrade_from(&arcs[n as usize % arcs.len()]);
                    report.note(WEAK, "downgrade", r.map_err(Error::from));
                }
                (_, 1) => w.clear(),
                _ => {}
            }
        }
    }
    if let Some(Some(guarded)) = report.note(GUARDED, "find", seg.find::<Guarded>(GUARDED)) {
        if let Some(mut v) = locked(GUARDED, guarded, report) {
            report.note(GUARDED, "change", Exercise::change(v.as_shm_mut(), n));
        }
    }
}

/// Reads the handles, the `Weak` and the locked vector (writable mappings only: they
/// have interior mutability).
fn read_specials<B: Backing>(seg: &Segment<B, Exclusive>, report: &mut Report) {
    let mut d = 0;
    let arcs = report.lookup(ARCS, seg.find_slice::<Arc<String>>(ARCS));
    for a in arcs.unwrap_or_default() {
        d ^= a.get().map_or(0, Exercise::read) ^ (a.strong_count() + a.weak_count()) as u64;
        d ^= format!("{a:?}").len() as u64;
        d ^= arcs
            .unwrap_or_default()
            .iter()
            .filter(|b| a.ptr_eq(b))
            .count() as u64;
    }
    if let Some(weak) = report.lookup(WEAK, seg.find::<WeakSlot>(WEAK)) {
        if let Some(w) = locked(WEAK, weak, report) {
            d ^= (w.strong_count() + w.weak_count()) as u64;
            d ^= arcs
                .unwrap_or_default()
                .iter()
                .filter(|a| w.refers_to(a))
                .count() as u64;
        }
    }
    if let Some(guarded) = report.lookup(GUARDED, seg.find::<Guarded>(GUARDED)) {
        if let Some(v) = locked(GUARDED, guarded, report) {
            d ^= v.read();
        }
    }
    black_box(d);
}

//! The object methods of every managed segment: named, unique and anonymous construction,
//! lookup, destruction, instance information, counts and iteration (Boost's "Managed
//! Memory Segment Features" and "Advanced index functions").
//!
//! References handed out borrow the segment: `&self` gives `&T`, and destroying needs
//! `&mut self`, so within one mapping no reference outlives its object. No other mapping
//! can destroy it meanwhile either: destruction runs only where nobody else can hold a
//! reference, through an exclusive (or private copy-on-write) mapping, or through a shared
//! one while no other mapping is attached (`InUse` otherwise). `&mut` access
//! (`find_mut`, `find_slice_mut`) exists only on [`ExclusiveAccess`] mappings.

use std::cell::Cell;
use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use super::managed::{Backing, ManagedSegment};
use super::mode::{ExclusiveAccess, Lends, Mode, Writable};
use crate::alloc::MemoryAlgorithm;
use crate::error::{Error, Result};
use crate::layout::{Invalid, Schema, ShmMut, ShmSafe};
use crate::objects::ops::{self, IfExists, NAMED, SCHEMAS, UNIQUE};
use crate::objects::space::Space;
use crate::objects::{
    self, Anonymous, IndexKind, Lookup, NamedIndex, ObjectInfo, ObjectKind, ObjectTarget, Target,
    Unique,
};
use crate::os::MapMode;

/// The objects this mapping has checked for valid values ([`ShmSafe::validate`]) or built
/// itself, by the offset of their data, so that only the first lookup of an object in a
/// mapping pays for validation. Types whose every bit pattern is valid never come here.
///
/// Why per mapping, lazily, and keyed by offset: the bytes a mapping did not write come
/// from outside (a file at rest, an image, another process), and only a typed lookup knows
/// which validator applies, so checking everything at open is not possible. Once checked,
/// an object's bytes change only through writers trusted to write valid values (DESIGN.md
/// "Trust"), so the mark stays true as long as the mapping lives, also if the object is
/// destroyed and its offset reused by a trusted writer.
#[derive(Default)]
pub(super) struct Validated(Mutex<HashSet<usize>>);

/// The schemas this mapping has stored in the segment or found there, by the address of
/// their [`Schema`] (a cache: two addresses of one schema cost one more lookup), so that
/// constructing an object of a derived type pays for its schemas once per type and
/// mapping; then a thread that constructs that type again in that mapping finds it in its
/// own last-used pair (mapping id, schema), without a lock.
///
/// Each derived type's schema, and each descriptor of a container or lock a derived type
/// holds, is an entry of the segment's schema table (`ops::SCHEMAS`),
/// keyed by its layout fingerprint in hex: its [`Schema::encode`] bytes, shared by every
/// object of the type and by the types that hold it, so that a tool renders any object
/// from the segment alone. The table is an index of its own, so schemas are no named
/// objects: no count, listing, lookup or destruction of user objects sees them, and none
/// is ever freed (one per type ever constructed, bounded by the program's types). It is
/// built as any named object is (a process dying meanwhile leaves the index to repair),
/// under the index lock the construction holds; a schema that cannot be stored (a full
/// segment) costs the object nothing, and is tried again at the next construction.
pub(super) struct StoredSchemas {
    /// This mapping's id, unique in the process (an address could be reused by another).
    id: u64,
    known: Mutex<HashSet<usize>>,
}

impl Default for StoredSchemas {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        StoredSchemas {
            id: NEXT.fetch_add(1, Relaxed),
            known: Mutex::default(),
        }
    }
}

thread_local! {
    /// The (mapping id, schema address) this thread stored or found last.
    static LAST_SCHEMA: Cell<(u64, usize)> = const { Cell::new((0, 0)) };
}

/// Reading: lookup, instance information, counts and iteration. On a read-only mapping
/// these run without the index lock (a read-only mapping cannot write the lock word): what
/// they see is a snapshot that a concurrent writer in another process may be changing. On
/// a writable mapping they take it, except a `find` of a named object in a hash index that
/// is plainly there, which reads what the lock holder published atomically instead (see
/// ARCHITECTURE.md, "Sharing"). A read-only mapping lends only
/// [`ShmImmutable`](crate::ShmImmutable) types (the bound `M: Lends<T>`): its pages are
/// not writable, so an atomic found there could not be used.
impl<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm> ManagedSegment<B, M, I, A> {
    /// The object layer's view of the segment (`InUse` where it is not mapped, see
    /// [`ManagedSegment::mapped`]).
    fn space(&self) -> Result<Space> {
        Ok(Space::new(*self.mapped()?))
    }

    /// Runs `f` under the index lock, or without it on a read-only mapping.
    pub(super) fn indexed<R>(&self, f: impl FnOnce(&Space) -> Result<R>) -> Result<R> {
        let s = self.space()?;
        if M::MAP == MapMode::ReadOnly {
            return f(&s);
        }
        let _guard = objects::lock::<I>(&s)?;
        f(&s)
    }

    /// The object `target` (a name or [`Unique`]) as a single `T`; None when there is none.
    /// An object of another type is a `TypeMismatch`, as is an array (use
    /// [`find_slice`](Self::find_slice)).
    pub fn find<T: ShmSafe>(&self, target: impl Lookup<I>) -> Result<Option<&T>>
    where
        M: Lends<T>,
    {
        let t = target.target();
        match self.find_raw::<T>(t)? {
            None => Ok(None),
            // SAFETY: a live, checked `T` in this mapping; see the module docs on lifetimes.
            Some((p, 1)) => Ok(Some(unsafe { p.as_ref() })),
            Some((_, n)) => Err(Error::TypeMismatch {
                what: t.describe::<T>(),
                expected: std::any::type_name::<T>().into(),
                found: format!("an array of {n} {}", std::any::type_name::<T>()),
            }),
        }
    }

    /// The object `target` as a slice of its elements (one for a single value).
    pub fn find_slice<T: ShmSafe>(&self, target: impl Lookup<I>) -> Result<Option<&[T]>>
    where
        M: Lends<T>,
    {
        Ok(self.find_raw::<T>(target.target())?.map(|(p, n)| {
            // SAFETY: `n` live, checked `T`s in this mapping.
            unsafe { std::slice::from_raw_parts(p.as_ptr(), n) }
        }))
    }

    /// The unique instance of `T`, if there is one.
    pub fn find_unique<T: ShmSafe>(&self) -> Result<Option<&T>>
    where
        Unique: Lookup<I>,
        M: Lends<T>,
    {
        self.find(Unique)
    }

    /// Finds a named object that is plainly there without the index lock where the index
    /// kind allows it on a writable mapping (no locked instruction on the hot path; see
    /// `objects::retired`); everything else under the index lock, by the fast path when it
    /// can decide. Validates what it finds.
    #[inline]
    pub(super) fn find_raw<T: ShmSafe>(
        &self,
        t: Target<'_>,
    ) -> Result<Option<(NonNull<T>, usize)>> {
        let name = match t {
            Target::Named(name) => {
                ops::not_reserved(name)?;
                Some(name)
            }
            Target::Root(name) => Some(name),
            _ => None,
        };
        if let Some(name) = name {
            if I::LOCK_FREE_FIND && M::MAP != MapMode::ReadOnly {
                let s = self.space()?;
                if let ops::Quick::Found(p, n) = ops::find_fast::<I, T, true>(&s, name) {
                    self.validate(p, n, || t.describe::<T>())?;
                    return Ok(Some((p, n)));
                }
            }
        }
        self.indexed(|s| {
            let found = match name {
                Some(name) => match ops::find_fast::<I, T, false>(s, name) {
                    ops::Quick::Found(p, n) => Some((p, n)),
                    ops::Quick::Absent => None,
                    ops::Quick::Unsure(_) => ops::find::<I, T>(s, t)?,
                },
                None => ops::find::<I, T>(s, t)?,
            };
            if let Some((p, n)) = found {
                self.validate(p, n, || t.describe::<T>())?;
            }
            Ok(found)
        })
    }

    /// The named object `name` as `T`, found without the index lock and without writing a
    /// byte, for a mapping others write meanwhile (an observer's, see
    /// [`SegmentObserver`](crate::SegmentObserver)): what a probe racing the writers can
    /// tell. While a writer holds the index lock, builds or destroys the object, or moves
    /// the slots a probe passes, it looks again (pausing between looks) until `deadline`
    /// (None: for as long as it takes),
    /// then gives up with `InUse`. `T` must be read atomically only (the caller's bound).
    pub(crate) fn find_observed<T: ShmSafe>(
        &self,
        name: &str,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<(NonNull<T>, usize)>> {
        ops::not_reserved(name)?;
        let t = Target::Named(name);
        let s = self.space()?;
        let mut round = 0u32;
        loop {
            let doubt = match ops::find_fast::<I, T, true>(&s, name) {
                ops::Quick::Found(p, n) => {
                    self.validate(p, n, || t.describe::<T>())?;
                    return Ok(Some((p, n)));
                }
                ops::Quick::Absent => return Ok(None),
                ops::Quick::Unsure(doubt) => doubt,
            };
            match doubt {
                ops::Doubt::Name => {
                    t.resolve::<T>()?;
                }
                ops::Doubt::OtherType => {
                    return Err(Error::TypeMismatch {
                        what: t.describe::<T>(),
                        expected: std::any::type_name::<T>().into(),
                        found: "an object of another type".into(),
                    })
                }
                ops::Doubt::Busy => {}
                // Bytes past this mapping's reach (the segment grew past what it reserved
                // or verified) never check out: say so now rather than wait.
                ops::Doubt::Bytes => self.core().check_reach()?,
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Err(Error::InUse {
                    what: t.describe::<T>(),
                    reason: match doubt {
                        ops::Doubt::Busy => "a writer kept the index locked, or the object \
                                             half built, for the whole wait"
                            .into(),
                        _ => "its index entry did not check out without the index lock for \
                              the whole wait (a writer moving it, or a corrupted index)"
                            .into(),
                    },
                });
            }
            // Yield first (a writer's hold is short), then sleep up to 1 ms per look.
            match round {
                0..16 => crate::robust::pause::yield_now(),
                _ => crate::robust::pause::sleep(std::time::Duration::from_micros(
                    62 << (round - 16).min(4),
                )),
            }
            round = round.saturating_add(1);
        }
    }

    /// Checks that the `n` `T`s at `p` (an object of this mapping) are valid values, unless
    /// every bit pattern of `T` is (then it compiles to nothing) or this mapping checked
    /// them before; `InvalidValue` names the object, the field and its offset.
    #[inline(always)]
    fn validate<T: ShmSafe>(
        &self,
        p: NonNull<T>,
        n: usize,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        if T::ALL_BIT_PATTERNS_VALID {
            return Ok(());
        }
        self.validate_slow(p, n, what)
    }

    /// Records that this mapping built the object at `p`: valid by construction, so its
    /// lookups here need no check (which a type with a manual impl could not pass).
    #[inline(always)]
    fn built<T: ShmSafe>(&self, p: NonNull<T>) {
        if !T::ALL_BIT_PATTERNS_VALID {
            let key = self.offset_of(p);
            self.validated()
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key);
        }
    }

    fn offset_of<T>(&self, p: NonNull<T>) -> usize {
        p.as_ptr().addr() - self.base_address().as_ptr().addr()
    }

    #[inline(never)]
    fn validate_slow<T: ShmSafe>(
        &self,
        p: NonNull<T>,
        n: usize,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        let key = self.offset_of(p);
        // A poisoned set is still a set of checked offsets: a panic cannot half-insert one.
        let mut done = self.validated().0.lock().unwrap_or_else(|e| e.into_inner());
        if done.contains(&key) {
            return Ok(());
        }
        let invalid = (0..n).find_map(|i| {
            // SAFETY: element `i` of a live object of this mapping, found through the index
            // (so aligned and in bounds); once built, its bytes change only through atomics
            // or `&mut` of an exclusive mapping, which this `&self` excludes.
            let checked = unsafe { T::validate(p.as_ptr().add(i)) };
            let within = |e: Invalid| match n {
                1 => e,
                _ => e.within(&format!("[{i}]"), i * size_of::<T>()),
            };
            checked.err().map(within)
        });
        if let Some(e) = invalid {
            return Err(Error::InvalidValue {
                what: what(),
                field: e.field,
                offset: e.offset,
                expected: e.expected,
            });
        }
        done.insert(key);
        Ok(())
    }

    /// The name of the object `obj` is the first element of: its name, or for a unique
    /// object its type's name; None for anonymous objects and anything else. A copy: the
    /// segment's bytes can change under a borrowed string (another mapping may destroy the
    /// object).
    pub fn instance_name<T: ShmSafe>(&self, obj: &T) -> Option<String> {
        self.instance(obj)?.1
    }

    /// How the object `obj` is the first element of was constructed.
    pub fn instance_kind<T: ShmSafe>(&self, obj: &T) -> Option<ObjectKind> {
        Some(self.instance(obj)?.0)
    }

    /// The number of elements of the object `obj` is the first element of.
    pub fn instance_length<T: ShmSafe>(&self, obj: &T) -> Option<usize> {
        Some(self.instance(obj)?.2)
    }

    /// What the entry of `obj` says, if `obj` is the first element of a genuine live object
    /// (checked against the indexes, under the index lock: construction rewrites entry
    /// headers under it).
    fn instance<T: ShmSafe>(&self, obj: &T) -> Option<(ObjectKind, Option<String>, usize)> {
        self.indexed(|s| Ok(ops::instance::<I, T>(s, obj)))
            .ok()
            .flatten()
    }

    /// Number of named objects.
    pub fn num_named_objects(&self) -> usize {
        Space::new(*self.core()).read_word(NAMED.count) as usize
    }

    /// Number of unique objects.
    pub fn num_unique_objects(&self) -> usize {
        Space::new(*self.core()).read_word(UNIQUE.count) as usize
    }

    /// The named objects, as a consistent snapshot taken under the index lock (Boost's
    /// `named_begin()..named_end()`, which is not safe against concurrent changes).
    pub fn named_objects(&self) -> Result<std::vec::IntoIter<ObjectInfo>> {
        self.indexed(|s| ops::list::<I>(s, NAMED))
            .map(Vec::into_iter)
    }

    /// The unique objects (named by their types), as a snapshot like
    /// [`named_objects`](Self::named_objects).
    pub fn unique_objects(&self) -> Result<std::vec::IntoIter<ObjectInfo>> {
        self.indexed(|s| ops::list::<I>(s, UNIQUE))
            .map(Vec::into_iter)
    }
}

/// Writing: construction, destruction, `atomic_func` and reservations. On a copy-on-write
/// mapping all of it stays private to the mapping.
impl<B: Backing, M: Writable, I: IndexKind, A: MemoryAlgorithm> ManagedSegment<B, M, I, A> {
    fn create_object<T: ShmSafe>(
        &self,
        target: Target<'_>,
        count: usize,
        if_exists: IfExists,
        mut next: impl FnMut(usize) -> Option<T>,
    ) -> Result<&[T]> {
        let s = self.space()?;
        let _guard = objects::lock::<I>(&s)?;
        // Whether the elements were built here (valid by construction) or found.
        let mut built = false;
        let (p, n) = ops::create::<I, T>(&s, target, count, if_exists, |i| {
            built = true;
            next(i)
        })?;
        // After the object, which comes first where room is short (Boost's 1,000-byte
        // segments): a derived type's schema, a container's or a lock's descriptor, with
        // those of the types it holds.
        if let (true, Some(schema)) = (I::NAMES, T::SCHEMA) {
            self.store_schemas::<T>(&s, schema);
        }
        if built {
            self.built(p);
        } else {
            self.validate(p, n, || target.describe::<T>())?;
        }
        // SAFETY: `n` live `T`s just built, or found and validated, in this mapping.
        Ok(unsafe { std::slice::from_raw_parts(p.as_ptr(), n) })
    }

    /// Stores the schemas of `T` (whose own is `schema`) that this mapping has not stored
    /// or found yet (see [`StoredSchemas`]); under the index lock.
    fn store_schemas<T: ShmSafe>(&self, s: &Space, schema: &'static Schema) {
        let key = |schema: &'static Schema| std::ptr::from_ref(schema).addr();
        let last = (self.schemas().id, key(schema));
        if LAST_SCHEMA.get() == last {
            return;
        }
        let mut known = self
            .schemas()
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if known.contains(&key(schema)) {
            LAST_SCHEMA.set(last);
            return;
        }
        // (`T::SCHEMA` may be at another address in `for_each_schema`: `schema`'s own is
        // remembered once all are stored.)
        let mut all = true;
        // Fingerprints met in this walk: what ends it where a type holds itself.
        let mut seen = std::collections::HashSet::new();
        T::for_each_schema(&mut |nested| {
            if !seen.insert(nested.fingerprint()) {
                return false;
            }
            if known.contains(&key(nested)) {
                return true;
            }
            let bytes = nested.encode().into_bytes();
            let hex = format!("{:016x}", nested.fingerprint());
            let stored = ops::create::<I, u8>(
                s,
                Target::Schema(&hex),
                bytes.len(),
                IfExists::Return,
                |i| bytes.get(i).copied(),
            );
            if stored.is_ok() {
                known.insert(key(nested));
            } else {
                all = false;
            }
            true
        });
        if all {
            known.insert(key(schema));
            LAST_SCHEMA.set(last);
        }
    }

    /// Constructs `value` as `target`: a name, [`Unique`] or [`Anonymous`]. A name or type
    /// already taken is `AlreadyExists`, and the existing object is left untouched. Names
    /// are 1 to [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes and may not start with
    /// [`RESERVED_PREFIX`](crate::objects::RESERVED_PREFIX) (`__shmkit_`, the roots'):
    /// `InvalidName` otherwise, here and in every lookup.
    pub fn construct<T: ShmSafe>(&self, target: impl ObjectTarget<I>, value: T) -> Result<&T> {
        let mut value = Some(value);
        let s = self.create_object(target.target(), 1, IfExists::Fail, |_| value.take())?;
        Ok(&s[0])
    }

    /// Constructs an array of `n` clones of `value`.
    pub fn construct_array<T: ShmSafe + Clone>(
        &self,
        target: impl ObjectTarget<I>,
        n: usize,
        value: T,
    ) -> Result<&[T]> {
        self.create_object(target.target(), n, IfExists::Fail, |_| Some(value.clone()))
    }

    /// Constructs an array of `n` elements, element `i` being `f(i)`. If `f` panics, the
    /// elements built so far are dropped and the memory released before the panic goes on.
    pub fn construct_array_with<T: ShmSafe>(
        &self,
        target: impl ObjectTarget<I>,
        n: usize,
        mut f: impl FnMut(usize) -> T,
    ) -> Result<&[T]> {
        self.create_object(target.target(), n, IfExists::Fail, |i| Some(f(i)))
    }

    /// Constructs an array from the elements of `iter` (Boost's `construct_it`). An iterator
    /// that yields fewer elements than its length said is an `IteratorTooShort` (and what
    /// was built is undone); extra elements are not taken.
    pub fn construct_from_iter<T: ShmSafe, It>(
        &self,
        target: impl ObjectTarget<I>,
        iter: It,
    ) -> Result<&[T]>
    where
        It: IntoIterator<Item = T>,
        It::IntoIter: ExactSizeIterator,
    {
        let mut it = iter.into_iter();
        let n = it.len();
        self.create_object(target.target(), n, IfExists::Fail, |_| it.next())
    }

    /// The object `target` if it exists, else a new one made by `f`: atomically across
    /// threads and processes, so racing callers get the same object and exactly one `f`
    /// runs. `f` runs under the index lock; it may itself find or construct objects.
    pub fn find_or_construct<T: ShmSafe>(
        &self,
        target: impl Lookup<I>,
        f: impl FnOnce() -> T,
    ) -> Result<&T> {
        let t = target.target();
        let mut f = Some(f);
        let s = self.create_object(t, 1, IfExists::Return, |_| f.take().map(|f| f()))?;
        match s {
            [one] => Ok(one),
            _ => Err(Error::TypeMismatch {
                what: t.describe::<T>(),
                expected: std::any::type_name::<T>().into(),
                found: format!("an array of {} {}", s.len(), std::any::type_name::<T>()),
            }),
        }
    }

    /// The array `target` if it exists (of whatever length it has), else a new one of `n`
    /// clones of `value`: atomically across threads and processes, like
    /// [`find_or_construct`](Self::find_or_construct).
    pub fn find_or_construct_array<T: ShmSafe + Clone>(
        &self,
        target: impl Lookup<I>,
        n: usize,
        value: T,
    ) -> Result<&[T]> {
        self.create_object(target.target(), n, IfExists::Return, |_| {
            Some(value.clone())
        })
    }

    /// The array `target` if it exists, else a new one of `n` elements, element `i` being
    /// `f(i)`; atomic like [`find_or_construct`](Self::find_or_construct). `f` runs under
    /// the index lock; if it panics, what was built is undone before the panic goes on.
    pub fn find_or_construct_array_with<T: ShmSafe>(
        &self,
        target: impl Lookup<I>,
        n: usize,
        mut f: impl FnMut(usize) -> T,
    ) -> Result<&[T]> {
        self.create_object(target.target(), n, IfExists::Return, |i| Some(f(i)))
    }

    /// Constructs the unique instance of `T`.
    pub fn construct_unique<T: ShmSafe>(&self, value: T) -> Result<&T>
    where
        Unique: ObjectTarget<I>,
    {
        self.construct(Unique, value)
    }

    /// Constructs an anonymous `T`: never found, destroyed through
    /// [`destroy_ptr`](Self::destroy_ptr).
    pub fn construct_anonymous<T: ShmSafe>(&self, value: T) -> Result<&T> {
        self.construct(Anonymous, value)
    }

    /// Destroys the object `target` (a name or [`Unique`]): drops its elements and frees
    /// it. False when there is none; `TypeMismatch` (and nothing destroyed) when it holds
    /// another type.
    ///
    /// On a shared read-write mapping this needs that no other mapping is attached, in this
    /// or another process (one could hold a reference to the object): `InUse` otherwise.
    pub fn destroy<T: ShmSafe>(&mut self, target: impl Lookup<I>) -> Result<bool> {
        let t = target.target();
        // Dropping follows the values' pointers: bytes from elsewhere are dropped only once
        // they check out, as a lookup would lend them.
        if self.find_raw::<T>(t)?.is_none() {
            return Ok(false);
        }
        self.in_place(|s| ops::destroy::<I, T>(s, t))
    }

    /// Destroys the unique instance of `T`; false when there is none. Needs what
    /// [`destroy`](Self::destroy) needs.
    pub fn destroy_unique<T: ShmSafe>(&mut self) -> Result<bool>
    where
        Unique: Lookup<I>,
    {
        self.destroy::<T>(Unique)
    }

    /// Destroys the object whose first element is at `ptr`, of any kind (Boost's
    /// `destroy_ptr`). A pointer is taken rather than `&T` because the reference would
    /// borrow the segment that `&mut self` needs; `ptr` is checked, so anything but a live
    /// object of this segment holding `T`s is a `NotAnObject`, never undefined
    /// behaviour. Needs what [`destroy`](Self::destroy) needs.
    pub fn destroy_ptr<T: ShmSafe>(&mut self, ptr: *const T) -> Result<()> {
        // As in `destroy`: the values are checked before they are dropped.
        if let Some((p, n)) = self.indexed(|s| ops::elements_at::<I, T>(s, ptr))? {
            self.validate(p, n, || format!("the object at {ptr:p}"))?;
        }
        self.in_place(|s| ops::destroy_ptr::<I, T>(s, ptr))
    }

    /// Runs a destruction under the index lock where no other mapping can hold references
    /// into the segment: always on exclusive and copy-on-write mappings (their writes are
    /// private), on a shared one while it is the only mapping attached. Nobody else can be
    /// reading the segment then (`&mut self` keeps this mapping's other threads out), so
    /// the retired blocks are freed afterwards.
    fn in_place<R>(&mut self, f: impl FnOnce(&Space) -> Result<R>) -> Result<R> {
        let run = || {
            let s = self.space()?;
            let _guard = objects::lock::<I>(&s)?;
            let r = f(&s)?;
            objects::drain_retired(&s)?;
            Ok(r)
        };
        if M::MAP == MapMode::ReadWrite && !M::EXCLUSIVE {
            self.backing().alone(run)?
        } else {
            run()
        }
    }

    /// Runs `f` while no other thread or process can create, find or destroy named,
    /// unique or anonymous objects of this segment; raw allocation goes on meanwhile.
    /// Inside `f`, this thread's own object operations work as usual.
    pub fn atomic_func<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let s = self.space()?;
        let _guard = objects::lock::<I>(&s)?;
        Ok(f())
    }

    /// Prepares the named index for `n` objects in all (the hash index sizes its bucket
    /// array; other indexes have nothing to prepare). The room lasts while the index holds
    /// objects: an index that becomes empty frees its buckets, and
    /// [`shrink_to_fit_indexes`](Self::shrink_to_fit_indexes) gives back what is unused.
    pub fn reserve_named_objects(&self, n: usize) -> Result<()>
    where
        I: NamedIndex,
    {
        self.reserve(NAMED, n)
    }

    /// Like [`reserve_named_objects`](Self::reserve_named_objects), for unique objects.
    pub fn reserve_unique_objects(&self, n: usize) -> Result<()>
    where
        I: NamedIndex,
    {
        self.reserve(UNIQUE, n)
    }

    /// Gives back the index memory the objects do not need now (Boost's
    /// `shrink_to_fit_indexes`): bucket arrays reserved or grown for more objects shrink to
    /// fit, those of empty indexes are freed (they come back with the next object), and so
    /// are the tables and failed constructions that lookups without the lock might have
    /// been reading (see [`find`](Self::find)).
    ///
    /// Needs what [`destroy`](Self::destroy) needs: on a shared read-write mapping, that no
    /// other mapping is attached (`InUse` otherwise).
    pub fn shrink_to_fit_indexes(&mut self) -> Result<()> {
        self.in_place(|s| {
            I::shrink_to_fit(s, NAMED)?;
            I::shrink_to_fit(s, UNIQUE)?;
            I::shrink_to_fit(s, SCHEMAS)
        })
    }

    fn reserve(&self, root: objects::Root, n: usize) -> Result<()> {
        let s = self.space()?;
        let _guard = objects::lock::<I>(&s)?;
        // (The registry of entries holds anonymous objects only: nothing to reserve there.)
        I::reserve(&s, root, n as u64)
    }
}

/// Mutable access: only where nobody else can see the bytes change (an exclusive mapping,
/// or copy-on-write's private pages). The bound is on each method so that the error on a
/// shared mapping says what to use instead.
impl<B: Backing, M: Mode, I: IndexKind, A: MemoryAlgorithm> ManagedSegment<B, M, I, A> {
    /// Mutable access to the single-value object `target`, through a guard that hands out
    /// `&mut T` only for position-independent types.
    pub fn find_mut<T: ShmSafe>(&mut self, target: impl Lookup<I>) -> Result<Option<ShmMut<'_, T>>>
    where
        M: ExclusiveAccess,
    {
        let t = target.target();
        match self.find_raw::<T>(t)? {
            None => Ok(None),
            // SAFETY: a live `T` in place in this mapping, reachable only through `&mut self`.
            Some((p, 1)) => Ok(Some(unsafe { ShmMut::new(&mut *p.as_ptr()) })),
            Some((_, n)) => Err(Error::TypeMismatch {
                what: t.describe::<T>(),
                expected: std::any::type_name::<T>().into(),
                found: format!("an array of {n} {}", std::any::type_name::<T>()),
            }),
        }
    }

    /// Mutable access to the elements of the object `target`.
    pub fn find_slice_mut<T: ShmSafe>(
        &mut self,
        target: impl Lookup<I>,
    ) -> Result<Option<ShmMut<'_, [T]>>>
    where
        M: ExclusiveAccess,
    {
        Ok(self.find_raw::<T>(target.target())?.map(|(p, n)| {
            // SAFETY: `n` live `T`s in place, reachable only through `&mut self`.
            unsafe { ShmMut::new(std::slice::from_raw_parts_mut(p.as_ptr(), n)) }
        }))
    }
}

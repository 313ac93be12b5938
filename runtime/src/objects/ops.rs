//! The object operations, run under the index lock by the segment's methods: lookup,
//! construction (which cleans up after a failing or panicking element), destruction, and
//! what a reference says about its object. The one exception is [`find_fast`] without the
//! lock (see `index::hash` and `retired` for why that is sound).

use std::collections::hash_map::Entry::{Occupied, Vacant};
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::entry::{
    self, state, Entry, ObjectKind, MAX_COUNT, MAX_KEY_LEN, MAX_NAME_LEN, SCHEMA_KIND,
};
use super::index::{IndexKind, Key, Probe, Root};
use super::lock;
use super::registry;
use super::retired;
use super::space::Space;
use super::target::{Target, RESERVED_PREFIX};
use super::types::{self, TypeDesc};
use crate::error::{Error, Result};
use crate::layout::ShmSafe;
use crate::manager::header::words;

pub(crate) const NAMED: Root = Root {
    root: words::NAMED_ROOT,
    count: words::NAMED_COUNT,
};
pub(crate) const UNIQUE: Root = Root {
    root: words::UNIQUE_ROOT,
    count: words::UNIQUE_COUNT,
};

/// The table of stored type schemas: one entry of bytes per derived type ever
/// constructed, keyed by its layout fingerprint in hex, never destroyed. Its entries have
/// a kind of their own ([`SCHEMA_KIND`]), so only the crate reaches them
/// ([`Target::Schema`], [`stored_schemas`]).
pub(crate) const SCHEMAS: Root = Root {
    root: words::SCHEMA_ROOT,
    count: words::SCHEMA_COUNT,
};

/// The index an entry of kind byte `kind` lives in (anonymous objects, and unknown kinds,
/// live in none).
pub(crate) fn root_of(kind: u8) -> Option<Root> {
    match kind {
        k if k == ObjectKind::Named as u8 => Some(NAMED),
        k if k == ObjectKind::Unique as u8 => Some(UNIQUE),
        SCHEMA_KIND => Some(SCHEMAS),
        _ => None,
    }
}

/// A target resolved for element type `T`: its kind byte and key.
pub(crate) struct Resolved<'a> {
    pub kind: u8,
    pub name: &'a [u8],
    pub hash: u32,
}

impl<'a> Target<'a> {
    /// The key of this target for elements of type `T`; checks the name.
    pub(crate) fn resolve<T>(self) -> Result<Resolved<'a>> {
        let (kind, name, max) = match self {
            Target::Named(n) => {
                not_reserved(n)?;
                (ObjectKind::Named as u8, n, MAX_NAME_LEN)
            }
            Target::Root(n) => (ObjectKind::Named as u8, n, MAX_NAME_LEN),
            Target::Unique => (
                ObjectKind::Unique as u8,
                std::any::type_name::<T>(),
                MAX_KEY_LEN,
            ),
            Target::Schema(key) => (SCHEMA_KIND, key, MAX_NAME_LEN),
            Target::Anonymous => {
                return Ok(Resolved {
                    kind: ObjectKind::Anonymous as u8,
                    name: b"",
                    hash: 0,
                })
            }
        };
        if name.is_empty() || name.len() > max {
            return Err(Error::InvalidName {
                name: name.chars().take(80).collect(),
                reason: match self {
                    _ if name.is_empty() => "an object name cannot be empty",
                    Target::Named(_) | Target::Root(_) | Target::Schema(_) => {
                        "an object name has at most 255 bytes (MAX_NAME_LEN)"
                    }
                    _ => "a type name used as a unique key has at most 65535 bytes",
                },
            });
        }
        Ok(Resolved {
            kind,
            name: name.as_bytes(),
            hash: entry::hash(name.as_bytes()),
        })
    }

    /// How errors name the object.
    pub(crate) fn describe<T>(&self) -> String {
        match self {
            Target::Named(n) | Target::Root(n) => format!("named object {n:?}"),
            Target::Unique => format!("unique object of type {}", std::any::type_name::<T>()),
            Target::Anonymous => format!("anonymous object of type {}", std::any::type_name::<T>()),
            Target::Schema(key) => format!("stored type schema {key}"),
        }
    }
}

/// `InvalidName` for a user's name that starts with [`RESERVED_PREFIX`].
pub(crate) fn not_reserved(name: &str) -> Result<()> {
    if name.starts_with(RESERVED_PREFIX) {
        return Err(Error::InvalidName {
            name: name.chars().take(80).collect(),
            reason: "names starting with `__shmkit_` are reserved for roots and their schemas",
        });
    }
    Ok(())
}

/// The entry with `r`'s key, in whatever state.
fn lookup<I: IndexKind>(s: &Space, r: &Resolved<'_>) -> Result<Option<(u64, Entry<I::Link>)>> {
    let Some(root) = root_of(r.kind) else {
        return Ok(None);
    };
    let key = Key {
        name: r.name,
        hash: r.hash,
    };
    // A plain absence is decided by the fast probe; everything else by the checked find.
    if let Probe::Absent = I::probe::<false>(s, root, key) {
        return Ok(None);
    }
    match I::find(s, root, key)? {
        Some(e) => Ok(Some((e, Entry::read(s, e)?))),
        None => Ok(None),
    }
}

/// Fails with TypeMismatch unless the entry holds `T`s.
fn check_type<T: ShmSafe, L: Copy>(
    s: &Space,
    h: &Entry<L>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    if h.fingerprint == T::type_fingerprint() {
        return Ok(());
    }
    Err(Error::TypeMismatch {
        what: what(),
        expected: std::any::type_name::<T>().into(),
        found: types::describe(s, h.fingerprint),
    })
}

/// Whether `bytes` bytes from offset `data` end inside the entry block whose payload is the
/// entry at `e`: a forged count or type record never stretches an object over other blocks.
#[inline]
fn within_block(s: &Space, e: u64, data: u64, bytes: usize) -> bool {
    s.entry_len(e)
        .is_some_and(|len| ends_within(e, len, data, bytes))
}

/// Whether `bytes` bytes from `data` end inside the `block_len` usable bytes from `e`.
#[inline]
fn ends_within(e: u64, block_len: usize, data: u64, bytes: usize) -> bool {
    data.checked_add(bytes as u64)
        .is_some_and(|end| end <= e + block_len as u64)
}

/// The elements of a checked entry, bounds-checked against the segment and their block.
fn elements<T, L: Copy>(s: &Space, e: u64, h: &Entry<L>) -> Result<(NonNull<T>, usize)> {
    let data = Entry::<L>::data(s, e, h.name_len(), align_of::<T>())?;
    let count =
        usize::try_from(h.count()).map_err(|_| s.corrupt(format!("entry {e}: bad count")))?;
    let bytes = count
        .checked_mul(size_of::<T>())
        .ok_or_else(|| s.corrupt(format!("entry {e}: bad count")))?;
    let data_off = s.offset_of(data.as_ptr()).unwrap_or(0);
    s.bytes(data_off, bytes)?;
    if !within_block(s, e, data_off, bytes) {
        return Err(s.corrupt(format!("entry {e}: its elements reach past its block")));
    }
    if data.as_ptr().addr() % align_of::<T>() != 0 {
        return Err(s.corrupt(format!("entry {e}: misaligned elements")));
    }
    Ok((data.cast(), count))
}

/// Finds the live object `target` of element type `T`: its first element and length.
pub(crate) fn find<I: IndexKind, T: ShmSafe>(
    s: &Space,
    target: Target<'_>,
) -> Result<Option<(NonNull<T>, usize)>> {
    let r = target.resolve::<T>()?;
    match lookup::<I>(s, &r)? {
        Some((e, h)) if h.state == state::LIVE => {
            check_type::<T, _>(s, &h, || target.describe::<T>())?;
            elements::<T, _>(s, e, &h).map(Some)
        }
        _ => Ok(None),
    }
}

/// The fast path of [`find`] for a named object: the answer when it is plainly there (live,
/// of type `T`) or plainly absent; [`Quick::Unsure`] whenever anything needs the checked
/// path (a bad name, another type, an object under construction, any doubt about the bytes).
///
/// `SHARED`: without the index lock, on a mapping others may write whose index kind allows
/// it ([`IndexKind::LOCK_FREE_FIND`]). Then [`Quick::Found`] is an answer, and `Absent` only
/// as far as a probe can tell: it may miss an entry the lock holder is moving, but what it
/// finds is a live object with that name, which stays as it is while this mapping is shared (objects are destroyed only
/// by a mapping that is alone). And it is an answer only if nobody held the index lock
/// once the object was found: a holder may be publishing several objects together
/// (`atomic_func`, or a construction whose closure constructs others), which a lookup
/// must see all or none of, as it would under the lock.
#[inline]
pub(crate) fn find_fast<I: IndexKind, T: ShmSafe, const SHARED: bool>(
    s: &Space,
    name: &str,
) -> Quick<T> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Quick::Unsure(Doubt::Name);
    }
    let key = Key {
        name: name.as_bytes(),
        hash: entry::hash(name.as_bytes()),
    };
    // The probe read the entry only once its block said it is one, large enough; its
    // first word (the state) with acquire ordering, so LIVE means the elements are built.
    let (e, block_len, h) = match I::probe::<SHARED>(s, NAMED, key) {
        Probe::Found {
            entry,
            block_len,
            header,
        } => (entry, block_len, header),
        Probe::Absent => return quiet::<T, SHARED>(s, Quick::Absent),
        Probe::Slow => return Quick::Unsure(Doubt::Bytes),
    };
    if h.state != state::LIVE {
        return Quick::Unsure(Doubt::Busy);
    }
    if h.fingerprint != T::type_fingerprint() {
        return Quick::Unsure(Doubt::OtherType);
    }
    let found = (|| {
        let count = usize::try_from(h.count()).ok()?;
        let data = e + Entry::<I::Link>::data_offset(h.name_len(), align_of::<T>()) as u64;
        let bytes = count.checked_mul(size_of::<T>())?;
        let p = s.checked(data, bytes)?;
        (p.addr() % align_of::<T>() == 0 && ends_within(e, block_len, data, bytes))
            .then(|| Some(Quick::Found(NonNull::new(p.cast())?, count)))?
    })();
    match found {
        Some(found) => quiet::<T, SHARED>(s, found),
        None => Quick::Unsure(Doubt::Bytes),
    }
}

/// `answer`, if it stands: without the lock (`SHARED`), only if nobody holds the index
/// lock once the probe is over.
///
/// The lock word is loaded after the acquire loads of the probe. The holder that made an
/// object LIVE took the lock before; a free lock now means it let go since, so the answer
/// is what a lookup under the lock would give at this moment. (A dead or poisoning holder
/// leaves it held: the locked path recovers or reports.) The fence makes the release that
/// freed it happen before what this thread does next, as taking the lock would (on x86 it
/// emits no instruction).
#[inline(always)]
fn quiet<T, const SHARED: bool>(s: &Space, answer: Quick<T>) -> Quick<T> {
    if SHARED {
        if !lock::free(s) {
            return Quick::Unsure(Doubt::Busy);
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
    }
    answer
}

/// What [`find_fast`] makes of a name.
pub(crate) enum Quick<T> {
    /// A live object of type `T` with that name: `count` elements at the pointer.
    Found(NonNull<T>, usize),
    /// No object with that name (without the lock: as far as a probe racing the lock
    /// holder can tell, see [`IndexKind::probe`]).
    Absent,
    /// No answer without the checked path, for this reason.
    Unsure(Doubt),
}

/// Why [`find_fast`] has no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Doubt {
    /// The name is empty or too long: the checked path says which.
    Name,
    /// A writer holds the index lock, or the object is being built or destroyed.
    Busy,
    /// The object is of another type.
    OtherType,
    /// Something in the bytes needs the checked path's judgement.
    Bytes,
}

/// What `create` does when the key is taken by a live object.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfExists {
    Fail,
    Return,
}

/// Constructs `count` elements from `next(i)` as `target`, in place. With
/// `IfExists::Return`, a live object of that key is returned instead (the elements are
/// not built). On a failing `next` (None: too few elements), a panic, or a full segment,
/// the elements built so far are dropped and the entry and its memory released.
pub(crate) fn create<I: IndexKind, T: ShmSafe>(
    s: &Space,
    target: Target<'_>,
    count: usize,
    if_exists: IfExists,
    mut next: impl FnMut(usize) -> Option<T>,
) -> Result<(NonNull<T>, usize)> {
    let r = target.resolve::<T>()?;
    if let Some((e, h)) = lookup::<I>(s, &r)? {
        if if_exists == IfExists::Return && h.state == state::LIVE {
            check_type::<T, _>(s, &h, || target.describe::<T>())?;
            return elements::<T, _>(s, e, &h);
        }
        return Err(Error::AlreadyExists {
            what: target.describe::<T>(),
        });
    }
    let too_large = || Error::InvalidSize {
        size: count as u64,
        reason: format!("too many elements for {}", target.describe::<T>()),
    };
    if count as u64 > MAX_COUNT {
        return Err(too_large());
    }
    let total =
        Entry::<I::Link>::total(r.name.len(), size_of::<T>(), align_of::<T>(), count as u64)
            .ok_or_else(too_large)?;
    let desc = TypeDesc::of::<T>();
    types::retain(s, &desc)?;
    let e = match s.alloc_entry(total, align_of::<T>()) {
        Ok(e) => e,
        Err(err) => {
            types::release(s, desc.fingerprint)?;
            return Err(err);
        }
    };
    let header = Entry::new(
        r.kind,
        r.hash,
        count as u64,
        r.name.len(),
        desc.fingerprint,
        I::Link::default(),
    );
    let mut b = Building::<I, T> {
        s,
        e,
        fingerprint: desc.fingerprint,
        root: None,
        registered: false,
        data: NonNull::dangling(),
        built: 0,
        _index: PhantomData,
    };
    // SAFETY: `e` is a fresh block of `total` bytes, which covers header, name and data.
    unsafe { Entry::write(s, e, header, r.name, align_of::<T>())? };
    b.data = Entry::<I::Link>::data(s, e, r.name.len(), align_of::<T>())?.cast();
    // Named and unique entries are found (and verified) through their index; only
    // anonymous ones need the registry, which keeps construction of named objects cheap.
    if root_of(r.kind).is_none() {
        registry::insert(s, e)?;
        b.registered = true;
    }
    if let Some(root) = root_of(r.kind) {
        I::insert(s, root, e)?;
        b.root = Some(root);
        s.bump(root.count, 1);
    }
    for i in 0..count {
        let Some(v) = next(i) else {
            // Undone before the error is made: a panic while undoing (a process dying, in
            // the crash tests) then leaves no error value behind in flight.
            drop(b);
            return Err(Error::IteratorTooShort {
                what: target.describe::<T>(),
                expected: count,
                yielded: i,
            });
        };
        // SAFETY: element `i` of the block's data area (sized for `count` elements),
        // aligned for `T` and not yet written.
        unsafe { b.data.add(i).write(v) };
        b.built = i + 1;
    }
    Entry::set_state(s, e, &header, state::LIVE)?;
    let data = b.data;
    std::mem::forget(b);
    Ok((data, count))
}

/// An entry under construction; dropped (on error or panic) it undoes everything.
struct Building<'s, I: IndexKind, T> {
    s: &'s Space,
    e: u64,
    fingerprint: u64,
    root: Option<Root>,
    /// Whether `e` is in the registry yet.
    registered: bool,
    data: NonNull<T>,
    built: usize,
    _index: PhantomData<I>,
}

impl<I: IndexKind, T> Drop for Building<'_, I, T> {
    fn drop(&mut self) {
        // A simulated crash (tests) undoes nothing, as a killed process would not.
        if crate::robust::crash::crashing() {
            return;
        }
        // SAFETY: the first `built` elements were written and belong to nobody else.
        unsafe {
            std::ptr::slice_from_raw_parts_mut(self.data.as_ptr(), self.built).drop_in_place()
        };
        if let Some(root) = self.root {
            // Best effort: an error here means the index is corrupted, which the next
            // operation reports.
            let _ = I::remove(self.s, root, self.e);
            self.s.bump(root.count, -1);
        }
        // A reader without the lock may have found the entry while it was linked (and
        // left it, not LIVE): its block is retired, not freed.
        let _ = match self.root {
            Some(root) if root.read_without_lock::<I>() => retired::retire_entry(self.s, self.e)
                .and_then(|()| types::release(self.s, self.fingerprint)),
            _ => release::<I::Link>(self.s, self.e, self.fingerprint, self.registered),
        };
    }
}

/// Clears the entry's tag, unregisters it, frees its block and releases its type record.
fn release<L: Copy>(s: &Space, e: u64, fingerprint: u64, registered: bool) -> Result<()> {
    if registered {
        registry::remove(s, e)?;
    }
    let p = Entry::<L>::ptr(s, e)?;
    // SAFETY: a header in bounds; we own the entry (unlinked or never published).
    unsafe { (*p).tag = 0 };
    // SAFETY: the block came from `alloc_entry` in `create` and is unlinked.
    unsafe { s.free_entry(e)? };
    types::release(s, fingerprint)
}

/// Frees an unlinked entry even if dropping its elements panics.
struct Freeing<'s, L: Copy> {
    s: &'s Space,
    e: u64,
    fingerprint: u64,
    registered: bool,
    _link: PhantomData<L>,
}

impl<L: Copy> Drop for Freeing<'_, L> {
    fn drop(&mut self) {
        if crate::robust::crash::crashing() {
            return;
        }
        let _ = release::<L>(self.s, self.e, self.fingerprint, self.registered);
    }
}

/// Unlinks, drops and frees the live entry `e` holding `T`s.
fn destroy_entry<I: IndexKind, T: ShmSafe>(s: &Space, e: u64, h: &Entry<I::Link>) -> Result<()> {
    let (data, count) = elements::<T, _>(s, e, h)?;
    let kind =
        ObjectKind::from_u8(h.kind).ok_or_else(|| s.corrupt(format!("entry {e}: bad kind")))?;
    Entry::set_state(s, e, h, state::DESTROYING)?;
    let root = root_of(kind as u8);
    if let Some(root) = root {
        I::remove(s, root, e)?;
        s.bump(root.count, -1);
    }
    let registered = root.is_none() && registry::contains(s, e)?;
    let freeing = Freeing::<I::Link> {
        s,
        e,
        fingerprint: h.fingerprint,
        registered,
        _link: PhantomData,
    };
    // SAFETY: the entry held `count` live `T`s (checked type); it is unlinked, so nothing
    // finds them any more, and the caller's `&mut` segment keeps this mapping's
    // references away.
    unsafe { std::ptr::slice_from_raw_parts_mut(data.as_ptr(), count).drop_in_place() };
    std::mem::forget(freeing);
    release::<I::Link>(s, e, h.fingerprint, registered)
}

/// Destroys the live object `target` of type `T`; false when there is none.
pub(crate) fn destroy<I: IndexKind, T: ShmSafe>(s: &Space, target: Target<'_>) -> Result<bool> {
    let r = target.resolve::<T>()?;
    match lookup::<I>(s, &r)? {
        Some((e, h)) if h.state == state::LIVE => {
            check_type::<T, _>(s, &h, || target.describe::<T>())?;
            destroy_entry::<I, T>(s, e, &h)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The live entry whose first element is `ptr`, if `ptr` is that of a genuine object of
/// this segment holding `T`s. Nothing near `ptr` is read before that is known: it may point
/// into user data (a field after uninitialised padding, or bytes forged to look like an
/// entry). The entry is found among those the object layer records instead: anonymous
/// entries have no name, hence one possible entry offset, which the registry confirms in
/// O(1); named and unique ones are found by walking their index and comparing each entry's
/// data address with `ptr`, O(objects). Boost's `instance_*` and `destroy_ptr` are O(1)
/// because they trust the bytes before the pointer, which we cannot; they are rarely hot,
/// and no index can be searched by address.
pub(crate) fn verified<I: IndexKind, T: ShmSafe>(
    s: &Space,
    ptr: *const T,
) -> Result<Option<(u64, Entry<I::Link>)>> {
    let Some(d) = s.offset_of(ptr.cast()) else {
        return Ok(None);
    };
    let align = align_of::<T>();
    let data_of = |e: u64, name_len: usize| {
        e.checked_add(Entry::<I::Link>::data_offset(name_len, align) as u64)
    };
    let mut found = None;
    if let Some(e) = d.checked_sub(Entry::<I::Link>::data_offset(0, align) as u64) {
        if registry::contains(s, e)? {
            found = Some((e, Entry::<I::Link>::read(s, e)?, ObjectKind::Anonymous));
        }
    }
    for (root, kind) in [(NAMED, ObjectKind::Named), (UNIQUE, ObjectKind::Unique)] {
        if found.is_some() {
            break;
        }
        I::for_each(s, root, &mut |e| {
            let h = Entry::<I::Link>::read(s, e)?;
            if found.is_none() && data_of(e, h.name_len()) == Some(d) {
                found = Some((e, h, kind));
            }
            Ok(())
        })?;
    }
    let Some((e, h, kind)) = found else {
        return Ok(None);
    };
    let genuine = h.tag == entry::TAG
        && h.state == state::LIVE
        && h.kind == kind as u8
        && data_of(e, h.name_len()) == Some(d)
        && h.fingerprint == T::type_fingerprint();
    Ok(genuine.then_some((e, h)))
}

/// Destroys the object whose first element is `ptr`, after checking that it is one.
pub(crate) fn destroy_ptr<I: IndexKind, T: ShmSafe>(s: &Space, ptr: *const T) -> Result<()> {
    let not_object = || Error::NotAnObject {
        addr: ptr.addr(),
        ty: std::any::type_name::<T>(),
    };
    let (e, h) = verified::<I, T>(s, ptr)?.ok_or_else(not_object)?;
    destroy_entry::<I, T>(s, e, &h)
}

/// The elements of the live object whose first element is `ptr`, if it holds `T`s.
pub(crate) fn elements_at<I: IndexKind, T: ShmSafe>(
    s: &Space,
    ptr: *const T,
) -> Result<Option<(NonNull<T>, usize)>> {
    match verified::<I, T>(s, ptr)? {
        Some((e, h)) => elements::<T, _>(s, e, &h).map(Some),
        None => Ok(None),
    }
}

/// The name, kind and length of the object whose first element is `ptr` (under the index
/// lock, or on a read-only snapshot).
pub(crate) fn instance<I: IndexKind, T: ShmSafe>(
    s: &Space,
    ptr: *const T,
) -> Option<(ObjectKind, Option<String>, usize)> {
    let (e, h) = verified::<I, T>(s, ptr).ok()??;
    let kind = ObjectKind::from_u8(h.kind)?;
    let name = match kind {
        ObjectKind::Anonymous => None,
        _ => {
            let bytes = Entry::<I::Link>::name(s, e, h.name_len()).ok()?;
            Some(String::from_utf8(bytes.to_vec()).ok()?)
        }
    };
    Some((kind, name, usize::try_from(h.count()).ok()?))
}

/// A description of one named or unique object (from the iteration functions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The name (for unique objects: the type's name, their key).
    pub name: String,
    /// Named, unique or anonymous.
    pub kind: ObjectKind,
    /// Number of elements (1 for a single value).
    pub length: usize,
    /// Address of the first element in this mapping.
    pub address: NonNull<u8>,
    /// The element type, as `std::any::type_name` spelled it in the constructing process.
    pub type_name: String,
}

/// One live object as a listing finds it, with what an inspector adds to [`ObjectInfo`].
pub(crate) struct Listed {
    pub info: ObjectInfo,
    /// Offset of the first element in the segment.
    pub data: u64,
    /// `size_of` the element type, from its type record.
    pub element_size: usize,
    /// The element type's fingerprint.
    pub fingerprint: u64,
}

/// The live entry at `e` described; None when it is not live. The type records already
/// read are kept in `known`.
fn describe<L: Copy>(
    s: &Space,
    e: u64,
    known: &mut std::collections::HashMap<u64, types::TypeInfo>,
) -> Result<Option<Listed>> {
    let h = Entry::<L>::read(s, e)?;
    if h.state != state::LIVE {
        return Ok(None);
    }
    let t = match known.entry(h.fingerprint) {
        Occupied(t) => t.into_mut(),
        Vacant(v) => v.insert(
            types::info(s, h.fingerprint)?
                .ok_or_else(|| s.corrupt(format!("entry {e}: unknown type")))?,
        ),
    };
    let align = t.align.max(1);
    if !align.is_power_of_two() {
        return Err(s.corrupt(format!("entry {e}: bad alignment {align}")));
    }
    let name = Entry::<L>::name(s, e, h.name_len())?;
    let address = Entry::<L>::data(s, e, h.name_len(), align)?;
    let data = e + Entry::<L>::data_offset(h.name_len(), align) as u64;
    let bytes = t
        .size
        .checked_mul(usize::try_from(h.count()).unwrap_or(usize::MAX));
    if !bytes.is_some_and(|bytes| within_block(s, e, data, bytes)) {
        return Err(s.corrupt(format!("entry at {e}: its elements reach past its block")));
    }
    Ok(Some(Listed {
        info: ObjectInfo {
            name: String::from_utf8_lossy(name).into_owned(),
            kind: ObjectKind::from_u8(h.kind)
                .ok_or_else(|| s.corrupt(format!("entry {e}: bad kind")))?,
            length: h.count() as usize,
            address,
            type_name: t.name.clone(),
        },
        data,
        element_size: t.size,
        fingerprint: h.fingerprint,
    }))
}

/// A snapshot of the live objects of one index.
pub(crate) fn list<I: IndexKind>(s: &Space, root: Root) -> Result<Vec<ObjectInfo>> {
    Ok(list_detailed::<I>(s, root)?
        .into_iter()
        .map(|l| l.info)
        .collect())
}

/// [`list`], with the figures of [`Listed`].
pub(crate) fn list_detailed<I: IndexKind>(s: &Space, root: Root) -> Result<Vec<Listed>> {
    // The count word is only a hint: a corrupted one must not make us allocate wildly.
    let hint = s.read_word(root.count).min(s.core().size() as u64 / 64);
    let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    let mut known = Default::default();
    I::for_each(s, root, &mut |e| {
        out.extend(describe::<I::Link>(s, e, &mut known)?);
        Ok(())
    })?;
    Ok(out)
}

/// One entry of the schema table as [`stored_schemas`] reads it.
pub(crate) struct StoredBytes {
    /// Its key: the type's layout fingerprint in hex.
    pub key: String,
    /// Offset of its bytes in the segment.
    pub offset: u64,
    /// The bytes; None when the entry holds something else.
    pub bytes: Option<Vec<u8>>,
}

/// The live entries of the schema table, copied (for inspection: no public API reaches
/// the table otherwise). Under the index lock or on a read-only snapshot.
pub(crate) fn stored_schemas<I: IndexKind>(s: &Space) -> Result<Vec<StoredBytes>> {
    let mut out = Vec::new();
    I::for_each(s, SCHEMAS, &mut |e| {
        let h = Entry::<I::Link>::read(s, e)?;
        if h.state != state::LIVE {
            return Ok(());
        }
        let key = Entry::<I::Link>::name(s, e, h.name_len())?;
        let (data, count) = elements::<u8, _>(s, e, &h)?;
        let bytes = (h.fingerprint == u8::type_fingerprint()).then(|| {
            // SAFETY: `count` bytes inside the entry's block (checked by `elements`); a
            // stored schema is written once, before it is LIVE, and never changes after.
            unsafe { std::slice::from_raw_parts(data.as_ptr(), count) }.to_vec()
        });
        out.push(StoredBytes {
            key: String::from_utf8_lossy(key).into_owned(),
            offset: s.offset_of(data.as_ptr()).unwrap_or(0),
            bytes,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Bytes, block headers included, of what the object layer keeps for itself: its tables,
/// registry, type records and retired blocks (marked internal; the thread-cache table
/// aside, which the allocator counts), and the schema table's entries, which are never
/// freed. `all_memory_deallocated` does not count them as the user's. Under the index
/// lock or on a read-only snapshot; a table that does not walk counts what it walked.
pub(crate) fn bookkeeping_bytes<I: IndexKind>(s: &Space) -> u64 {
    let blocks = s.blocks();
    let mut total = blocks.internal_bytes(s.cache_table());
    let _ = I::for_each(s, SCHEMAS, &mut |e| {
        let len = blocks
            .entry_len(e)
            .map_or(0, |n| (n + crate::alloc::block::HEADER) as u64);
        total = total.saturating_add(len);
        Ok(())
    });
    total
}

/// The live anonymous objects (which no index links), found through the registry of
/// entries: only registered entries in blocks marked as entries are read.
pub(crate) fn list_anonymous<I: IndexKind>(s: &Space) -> Result<Vec<Listed>> {
    let blocks = s.blocks();
    let mut known = Default::default();
    let mut out = Vec::new();
    for e in registry::members(s, &blocks) {
        if let Some(l) = describe::<I::Link>(s, e, &mut known)? {
            if l.info.kind == ObjectKind::Anonymous {
                out.push(l);
            }
        }
    }
    Ok(out)
}

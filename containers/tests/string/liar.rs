//! Guards that lie. `ShmDerefMut` is a safe trait, so safe code may implement it with a
//! `deref` that shows one value and an `as_shm_mut` that hands out another ([`Liar`]), or
//! that hands out a different value at each call ([`Fickle`]). The containers decide what
//! to write on the value they write to (one `as_shm_mut` per call), never on what `Deref`
//! shows: whatever a lying guard makes them do, the value written stays valid (UTF-8,
//! lengths within the capacity, a copy of its segment validates) and is changed exactly as
//! through an honest guard. Here the strings; [`containers`] the others.

use core::fmt::Write as _;
use core::ops::Deref;

use shmkit_containers::{NotCharBoundary, String, StringExt, StringInsertError};
use shmkit_runtime::{ManagedHeapMemory, ShmDerefMut, ShmMut, ShmSafe};

mod containers;

/// Shows `shown`, hands out `real`.
pub struct Liar<'a, T> {
    shown: &'a T,
    real: ShmMut<'a, T>,
}

impl<T> Deref for Liar<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.shown
    }
}

impl<T> ShmDerefMut for Liar<'_, T> {
    fn as_shm_mut(&mut self) -> ShmMut<'_, T> {
        self.real.as_mut()
    }
}

/// Hands out its two guards in turn, and shows the one it hands out next: only a method
/// that takes the guard twice sees two values.
pub struct Fickle<'a, T> {
    guards: [ShmMut<'a, T>; 2],
    next: usize,
}

impl<T> Deref for Fickle<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guards[self.next]
    }
}

impl<T> ShmDerefMut for Fickle<'_, T> {
    fn as_shm_mut(&mut self) -> ShmMut<'_, T> {
        let i = self.next;
        self.next = 1 - i;
        self.guards[i].as_mut()
    }
}

/// A heap segment holding `empty` as "x", filled in place by `fill`.
fn segment<T: ShmSafe>(empty: T, fill: impl FnOnce(ShmMut<'_, T>)) -> ManagedHeapMemory {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("x", empty).unwrap();
    fill(seg.find_mut::<T>("x").unwrap().unwrap());
    seg
}

/// "x" of `seg`, once a copy of the segment has validated it (bytes from elsewhere: every
/// link, length and UTF-8 checked).
pub fn checked<T: ShmSafe>(seg: &mut ManagedHeapMemory) -> &T {
    let copy = ManagedHeapMemory::from_image(seg.image()).unwrap();
    if let Err(e) = copy.find::<T>("x") {
        panic!("the value written through a lying guard is invalid: {e}");
    }
    seg.find::<T>("x").unwrap().unwrap()
}

/// Runs `op` on a [`Liar`] that shows the value `shown` fills and hands out the one `real`
/// fills (each "x" of a segment of its own, built from `empty`); what `op` returned, and
/// the real value's segment after [`checked`] found it valid.
pub fn lie<T: ShmSafe, R>(
    empty: impl Fn() -> T,
    shown: impl FnOnce(ShmMut<'_, T>),
    real: impl FnOnce(ShmMut<'_, T>),
    op: impl FnOnce(&mut Liar<'_, T>) -> R,
) -> (R, ManagedHeapMemory) {
    let shown_seg = segment(empty(), shown);
    let mut real_seg = segment(empty(), real);
    let r = op(&mut Liar {
        shown: shown_seg.find::<T>("x").unwrap().unwrap(),
        real: real_seg.find_mut::<T>("x").unwrap().unwrap(),
    });
    checked::<T>(&mut real_seg);
    (r, real_seg)
}

/// Runs `op` on a [`Fickle`] guard of "x" in two segments, filled by `first` and `second`;
/// what `op` returned, and both segments after [`checked`] found them valid.
pub fn fickle<T: ShmSafe, R>(
    empty: impl Fn() -> T,
    first: impl FnOnce(ShmMut<'_, T>),
    second: impl FnOnce(ShmMut<'_, T>),
    op: impl FnOnce(&mut Fickle<'_, T>) -> R,
) -> (R, [ManagedHeapMemory; 2]) {
    let mut segs = [segment(empty(), first), segment(empty(), second)];
    let [a, b] = &mut segs;
    let r = op(&mut Fickle {
        guards: [
            a.find_mut::<T>("x").unwrap().unwrap(),
            b.find_mut::<T>("x").unwrap().unwrap(),
        ],
        next: 0,
    });
    for seg in &mut segs {
        checked::<T>(seg);
    }
    (r, segs)
}

/// Fills a string with `text`.
fn holding(text: &str) -> impl FnOnce(ShmMut<'_, String>) + '_ {
    move |mut s| s.push_str(text).unwrap()
}

/// Runs `op` on a liar showing the string `shown` and handing out `real`; what `op`
/// returned and the real string's text, once its bytes are found to be UTF-8 within the
/// capacity.
fn on_string<R>(
    shown: &str,
    real: &str,
    op: impl FnOnce(&mut Liar<'_, String>) -> R,
) -> (R, std::string::String) {
    let (r, mut seg) = lie(String::new, holding(shown), holding(real), op);
    let s = checked::<String>(&mut seg);
    assert!(s.len() <= s.capacity());
    let text = std::str::from_utf8(s.as_bytes()).expect("the real string is UTF-8");
    (r, text.to_owned())
}

// "ab" has a character boundary at 1, "é" (C3 A9) has none there.

#[test]
fn remove_decides_on_the_real_string() {
    // The reported case: U+0800 starts at 1 of the shown string; removing its 3 bytes
    // from the real one (ED 80 80 E0 A0 80) would leave an encoded surrogate.
    let (c, text) = on_string("a\u{800}", "\u{D000}\u{800}", |s| s.remove(1));
    assert_eq!((c, text.as_str()), (None, "\u{D000}\u{800}"));
    let (c, text) = on_string("ab", "é", |s| s.remove(1));
    assert_eq!((c, text.as_str()), (None, "é"));
    let (c, text) = on_string("ab", "éa", |s| s.remove(2));
    assert_eq!((c, text.as_str()), (Some('a'), "é"));
}

#[test]
fn pop_takes_the_real_last_character() {
    let (c, text) = on_string("ab", "é", |s| s.pop());
    assert_eq!((c, text.as_str()), (Some('é'), ""));
    let (c, text) = on_string("ab", "", |s| s.pop());
    assert_eq!((c, text.as_str()), (None, ""));
}

#[test]
fn truncate_checks_the_real_boundary() {
    let (r, text) = on_string("ab", "é", |s| s.truncate(1));
    assert_eq!(r, Err(NotCharBoundary { index: 1, len: 2 }));
    assert_eq!(text, "é");
    let (r, text) = on_string("ab", "éa", |s| s.truncate(2));
    assert_eq!((r, text.as_str()), (Ok(()), "é"));
}

#[test]
fn insert_checks_the_real_boundary() {
    let not_boundary = |index, len| {
        Err::<(), _>(StringInsertError::NotCharBoundary(NotCharBoundary {
            index,
            len,
        }))
    };
    let (r, text) = on_string("ab", "é", |s| s.insert(1, 'x'));
    assert_eq!((r, text.as_str()), (not_boundary(1, 2), "é"));
    let (r, text) = on_string("ab", "é", |s| s.insert_str(1, "xy"));
    assert_eq!((r, text.as_str()), (not_boundary(1, 2), "é"));
    let (r, text) = on_string("ab", "é", |s| s.insert_str(2, "xy"));
    assert_eq!((r, text.as_str()), (Ok(()), "éxy"));
}

#[test]
fn an_index_the_shown_string_has_but_the_real_one_not_is_refused() {
    let (r, text) = on_string("abcdef", "ab", |s| {
        (s.remove(4), s.insert_str(4, "x").is_err(), s.truncate(4))
    });
    assert_eq!((r, text.as_str()), ((None, true, Ok(())), "ab"));
}

#[test]
fn retain_sees_and_cuts_the_real_characters() {
    let mut seen = std::vec::Vec::new();
    let ((), text) = on_string("ab", "éaé", |s| {
        s.retain(|c| {
            seen.push(c);
            c == 'a'
        })
    });
    assert_eq!((seen, text.as_str()), (vec!['é', 'a', 'é'], "a"));
}

#[test]
fn appending_and_emptying_change_the_real_string() {
    let ((), text) = on_string("ab", "é", |s| {
        s.push_str("xy").unwrap();
        s.push('中').unwrap();
        write!(s.writer(), "{}", 12).unwrap();
        s.reserve(100).unwrap();
        s.shrink_to_fit().unwrap();
    });
    assert_eq!(text, "éxy中12");
    let ((), text) = on_string("ab", "é", |s| s.clear());
    assert_eq!(text, "");
}

#[test]
fn a_guard_handing_out_two_strings_in_turn_edits_one_per_call() {
    let (r, mut segs) = fickle(String::new, holding("ab"), holding("é"), |s| {
        (s.remove(1), s.pop(), s.insert_str(0, "x"), s.push('y'))
    });
    assert_eq!(r, (Some('b'), Some('é'), Ok(()), Ok(())));
    let texts = segs
        .each_mut()
        .map(|seg| checked::<String>(seg).as_str().to_owned());
    assert_eq!(texts, ["xa", "y"]);
}

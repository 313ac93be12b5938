//! Allocation failure leaves a string, a box or an `Arc` exactly as it was (and what was
//! allocated on the way is given back), and misuse is an error, never a panic or a write.

use core::fmt::Write as _;

use shmkit_containers::{
    Arc, ArcExt, Box, BoxExt, NotCharBoundary, String, StringExt, StringInsertError, Vec, VecExt,
};
use shmkit_runtime::sync::Mutex;
use shmkit_runtime::{AllocErrorKind, Error, ManagedHeapMemory};

/// What a string is: its text, capacity and buffer.
fn state(s: &String) -> (std::string::String, usize, *const u8) {
    (s.as_str().to_owned(), s.capacity(), s.as_ptr())
}

/// A text of `n` bytes, with multi-byte characters.
fn text(n: usize) -> std::string::String {
    "aé中🦀"
        .chars()
        .cycle()
        .scan(0, |len, c| {
            *len += c.len_utf8();
            (*len <= n).then_some(c)
        })
        .collect()
}

fn out_of_memory(kind: AllocErrorKind) -> bool {
    matches!(kind, AllocErrorKind::OutOfMemory { .. })
}

#[test]
fn a_full_segment_leaves_the_string_as_it_was() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("s", String::new()).unwrap();
    let mut s = seg.find_mut::<String>("s").unwrap().unwrap();
    let err = loop {
        let before = state(&s);
        match s.push_str(&text(1000)) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(state(&s), before, "a failed push_str changed the string");
                break e;
            }
        }
    };
    assert!(out_of_memory(err.kind()), "{err}");
    s.shrink_to_fit().unwrap();
    let before = state(&s);
    let middle = (0..=s.len() / 2)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap();
    assert!(
        matches!(s.insert_str(middle, "xyz"), Err(StringInsertError::Alloc(e)) if out_of_memory(e.kind()))
    );
    assert!(matches!(s.insert(0, 'é'), Err(StringInsertError::Alloc(_))));
    assert!(s.push('🦀').is_err() && s.reserve(1).is_err());
    assert!(write!(s.writer(), "{}", 12345).is_err());
    assert_eq!(state(&s), before);
    // Removing needs no room.
    let mut model = before.0;
    assert_eq!(s.remove(0), Some(model.remove(0)));
    s.retain(|c| c != '中');
    model.retain(|c| c != '中');
    assert_eq!(s.pop(), model.pop());
    assert_eq!(*s, model);
}

/// Indices inside a character or past the end are errors (or `None`), changing nothing.
#[test]
fn indices_off_the_character_boundaries_change_nothing() {
    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("s", String::new()).unwrap();
    let mut s = seg.find_mut::<String>("s").unwrap().unwrap();
    s.push_str("a€b").unwrap(); // '€' is bytes 1..4
    let inside = NotCharBoundary { index: 2, len: 5 };
    assert_eq!(s.truncate(2), Err(inside));
    assert_eq!(
        s.insert(2, 'x'),
        Err(StringInsertError::NotCharBoundary(inside))
    );
    assert_eq!(
        s.insert_str(6, "x"),
        Err(NotCharBoundary { index: 6, len: 5 }.into())
    );
    assert_eq!((s.remove(2), s.remove(5), s.remove(9)), (None, None, None));
    assert_eq!(s.truncate(9), Ok(()));
    assert_eq!(*s, "a€b");
    assert_eq!(
        inside.to_string(),
        "byte index 2 is inside a character of a string of 5 bytes"
    );
    assert!(NotCharBoundary { index: 6, len: 5 }
        .to_string()
        .contains("past the end"));
    assert!(matches!(
        Error::from(inside),
        Error::IndexOutOfBounds { index: 2, len: 5 }
    ));
    let e = StringInsertError::NotCharBoundary(inside);
    assert_eq!(e.to_string(), inside.to_string());
    assert!(matches!(Error::from(e), Error::IndexOutOfBounds { .. }));
    assert_eq!(
        (s.remove(1), s.truncate(1), s.as_str()),
        (Some('€'), Ok(()), "a")
    );
}

/// A string built in place whose buffer does not fit is no element: the vector is as it
/// was, and its slot held nothing.
#[test]
fn a_string_that_does_not_fit_is_not_pushed() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("names", Vec::<String>::new()).unwrap();
    let free = seg.free_memory();
    let mut names = seg.find_mut::<Vec<String>>("names").unwrap().unwrap();
    names.reserve(4).unwrap();
    names.push("fits").unwrap();
    let huge = text(1 << 17);
    let err = names.push(huge.as_str()).unwrap_err();
    assert!(out_of_memory(err.kind()), "{err}");
    assert!(names.insert(0, &huge).is_err());
    assert!(names.extend(["a", huge.as_str()]).is_err());
    assert_eq!(*names, ["fits"]);
    names.clear();
    names.shrink_to_fit().unwrap();
    assert_eq!(seg.free_memory(), free);
}

/// A box or an `Arc` whose new value does not fit keeps its old one, and the block made
/// for the new one is given back.
#[test]
fn a_value_that_does_not_fit_leaves_the_box_and_the_arc_as_they_were() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("b", Box::<Vec<u64>>::new()).unwrap();
    {
        let mut b = seg.find_mut::<Box<Vec<u64>>>("b").unwrap().unwrap();
        b.insert(0..10).unwrap();
    }
    let free = seg.free_memory();
    {
        let mut b = seg.find_mut::<Box<Vec<u64>>>("b").unwrap().unwrap();
        let block = b.get().map(|v| v.as_ptr());
        let err = b.insert(0..1 << 20).unwrap_err();
        assert!(out_of_memory(err.kind()), "{err}");
        assert_eq!(
            (b.get().map(|v| v.as_ptr()), b.get().unwrap().len()),
            (block, 10)
        );
    }
    assert_eq!(seg.free_memory(), free);
    seg.construct("a", Mutex::new(Arc::<Vec<u64>>::new()))
        .unwrap();
    let free = seg.free_memory();
    {
        let a = seg.find::<Mutex<Arc<Vec<u64>>>>("a").unwrap().unwrap();
        let mut a = a.lock().unwrap();
        a.insert(0..3).unwrap();
        let err = a.insert(0..1 << 20).unwrap_err();
        assert!(out_of_memory(err.kind()), "{err}");
        assert_eq!(
            (a.get().unwrap().as_slice(), a.strong_count()),
            (&[0, 1, 2][..], 1)
        );
        a.clear();
    }
    assert_eq!(seg.free_memory(), free);
    // No room for the block itself.
    let hog = seg.allocate(seg.free_memory() - 4096).unwrap();
    let _more: std::vec::Vec<_> = std::iter::from_fn(|| seg.allocate(1).ok()).collect();
    let mut b = seg.find_mut::<Box<Vec<u64>>>("b").unwrap().unwrap();
    assert!(out_of_memory(b.insert(Vec::new()).unwrap_err().kind()));
    assert_eq!(b.get().unwrap().len(), 10);
    // SAFETY: allocated above, not used afterwards.
    unsafe { seg.deallocate(hog) }.unwrap();
}

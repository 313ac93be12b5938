//! Random operation sequences on segment strings and on std strings side by side, with
//! multi-byte characters and indices off the character boundaries: after every step the
//! text must be the same.

use core::fmt::Write as _;

use shmkit_containers::{NotCharBoundary, String, StringExt, StringInsertError, Vec, VecExt};
use shmkit_runtime::{ManagedHeapMemory, ShmMut};
use shmkit_test_support::Rng;

/// Operations per sequence: thousands natively, fewer under Miri.
pub const OPS: usize = if cfg!(miri) { 300 } else { 6000 };

/// Characters of 1 to 4 bytes.
const CHARS: [char; 8] = ['a', 'z', ' ', 'é', 'ß', '€', '中', '🦀'];

/// A random character of [`CHARS`].
fn char_of(rng: &mut Rng) -> char {
    CHARS[rng.range(0, CHARS.len() as u64) as usize]
}

/// A random text of up to `max` characters.
fn text_of(rng: &mut Rng, max: u64) -> std::string::String {
    (0..rng.range(0, max + 1)).map(|_| char_of(rng)).collect()
}

/// Runs `ops` random operations on `strings` (several in one segment, so that their growth
/// interleaves) and on std models of them.
pub fn run<P: StringExt>(strings: &mut [P], seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let mut models: std::vec::Vec<std::string::String> =
        strings.iter().map(|s| s.as_str().to_owned()).collect();
    for step in 0..ops {
        let which = rng.range(0, strings.len() as u64) as usize;
        let (s, model) = (&mut strings[which], &mut models[which]);
        let len = model.len();
        // Any byte index up to one past the end: inside characters and past the end too.
        let index = rng.range(0, len as u64 + 2) as usize;
        let boundary = model.is_char_boundary(index);
        let c = char_of(&mut rng);
        match rng.range(0, 16) {
            0..=3 => {
                let t = text_of(&mut rng, 6);
                s.push_str(&t).unwrap();
                model.push_str(&t);
            }
            4 => {
                s.push(c).unwrap();
                model.push(c);
            }
            5 => assert_eq!(s.pop(), model.pop()),
            6 => match s.insert(index, c) {
                Ok(()) => model.insert(index, c),
                Err(e) => {
                    assert!(!boundary);
                    assert_eq!(
                        e,
                        StringInsertError::NotCharBoundary(NotCharBoundary { index, len })
                    );
                }
            },
            7 => {
                let t = text_of(&mut rng, 4);
                match s.insert_str(index, &t) {
                    Ok(()) => model.insert_str(index, &t),
                    Err(e) => assert!(!boundary, "{e}"),
                }
            }
            8 => {
                let expected = (index < len && boundary).then(|| model.remove(index));
                assert_eq!(s.remove(index), expected);
            }
            9 => match s.truncate(index) {
                Ok(()) => model.truncate(index),
                Err(e) => {
                    assert!(!boundary && index < len);
                    assert_eq!(e, NotCharBoundary { index, len });
                }
            },
            10 => {
                let dropped = char_of(&mut rng);
                let mut seen = std::vec::Vec::new();
                s.retain(|ch| {
                    seen.push(ch);
                    ch != dropped
                });
                assert_eq!(
                    seen,
                    model.chars().collect::<std::vec::Vec<_>>(),
                    "retain sees each once"
                );
                model.retain(|ch| ch != dropped);
            }
            11 => {
                let more = rng.range(0, 64) as usize;
                s.reserve(more).unwrap();
                assert!(s.capacity() >= len + more);
            }
            12 => {
                s.shrink_to_fit().unwrap();
                assert!(s.capacity() >= len);
            }
            13 => {
                let n = rng.range(0, 1000);
                write!(s.writer(), "<{n}:{c}>").unwrap();
                write!(model, "<{n}:{c}>").unwrap();
            }
            14 => {
                if rng.range(0, 8) == 0 {
                    s.clear();
                    model.clear();
                }
            }
            _ => {
                // Reading: slicing, searching, comparing as `str`.
                let cut = (0..=index.min(len))
                    .rev()
                    .find(|&i| model.is_char_boundary(i))
                    .unwrap_or(0);
                assert_eq!(&s[..cut], &model[..cut]);
                assert_eq!(s.find(c), model.find(c));
                assert_eq!(
                    s.chars().rev().collect::<std::string::String>(),
                    model.chars().rev().collect::<std::string::String>()
                );
            }
        }
        assert_eq!(s.as_str(), model.as_str(), "step {step} (seed {seed:#x})");
        assert_eq!(**s, *model.as_str());
        assert!(s.capacity() >= s.len());
    }
}

#[test]
fn random_operations_match_std_string_on_a_heap_segment() {
    for seed in [0x5eed, 0xdead_beef, 42] {
        let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
        seg.construct_array_with("s", 3, |_| String::new()).unwrap();
        {
            let mut all = seg.find_slice_mut::<String>("s").unwrap().unwrap();
            let mut strings: std::vec::Vec<ShmMut<'_, String>> = all.iter_mut().collect();
            run(&mut strings, seed, OPS);
        }
        assert!(seg.destroy::<String>("s").unwrap());
        assert!(seg.all_memory_deallocated(), "seed {seed:#x}");
    }
}

/// Random operations on a `Vec<String>` and a std `Vec<std::string::String>`: strings
/// pushed from every source, edited in place, moved when the outer buffer grows, dropped
/// in place.
#[test]
fn a_vector_of_strings_matches_std() {
    let mut rng = Rng::new(0x57e1);
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("names", Vec::<String>::new()).unwrap();
    let mut names = seg.find_mut::<Vec<String>>("names").unwrap().unwrap();
    let mut model: std::vec::Vec<std::string::String> = std::vec::Vec::new();
    for step in 0..OPS / 2 {
        let len = model.len();
        let index = rng.range(0, len as u64 + 1) as usize;
        let t = text_of(&mut rng, 5);
        match rng.range(0, 9) {
            0 => {
                names.push(t.as_str()).unwrap();
                model.push(t);
            }
            1 => {
                names.push(&t).unwrap();
                names.push(t.clone()).unwrap();
                model.extend([t.clone(), t]);
            }
            2 => {
                let c = char_of(&mut rng);
                names.push(c).unwrap();
                model.push(c.into());
            }
            3 => {
                names.extend(["x", t.as_str()]).unwrap();
                model.extend(["x".into(), t]);
            }
            4 => {
                names.insert(index, t.as_str()).unwrap();
                model.insert(index, t);
            }
            5 => {
                if let Some(mut name) = names.element_mut(index) {
                    name.push_str(&t).unwrap();
                    model[index].push_str(&t);
                }
            }
            6 => assert_eq!(
                names.remove_with(index, |n| n.as_str().to_owned()),
                (index < len).then(|| model.remove(index))
            ),
            7 => {
                names.retain(|n| n.len() % 3 != 1);
                model.retain(|n| n.len() % 3 != 1);
            }
            _ => {
                names.truncate(index + 4);
                model.truncate(index + 4);
                names.shrink_to_fit().unwrap();
            }
        }
        assert_eq!(*names, model, "step {step}");
    }
    let empty = {
        names.clear();
        names.shrink_to_fit().unwrap();
        names.capacity() == 0
    };
    assert!(empty && seg.destroy::<Vec<String>>("names").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// Strings compare, order, hash and borrow as `str`, and print as one.
#[test]
fn strings_compare_hash_and_borrow_as_str() {
    use std::borrow::Borrow;
    use std::hash::{BuildHasher, RandomState};

    let mut seg = ManagedHeapMemory::new(1 << 16).unwrap();
    seg.construct("names", Vec::<String>::new()).unwrap();
    let mut names = seg.find_mut::<Vec<String>>("names").unwrap().unwrap();
    names.extend(["grace", "ada", "grace"]).unwrap();
    let (a, b) = (&names[0], &names[1]);
    assert!(*a == names[2] && a != b);
    let std_grace = std::string::String::from("grace");
    assert!(*a == *"grace" && *a == "grace" && *a == std_grace);
    assert!("grace" == *a && *"grace" == *a && std_grace == *a);
    assert!(b < a && a.cmp(b) == std::cmp::Ordering::Greater);
    let hasher = RandomState::new();
    assert_eq!(hasher.hash_one(a), hasher.hash_one("grace"));
    assert_eq!(
        hasher.hash_one(a),
        hasher.hash_one(std::string::String::from("grace"))
    );
    let borrowed: &str = a.borrow();
    assert_eq!(borrowed, "grace");
    assert_eq!(AsRef::<[u8]>::as_ref(a), b"grace");
    assert_eq!(
        (format!("{a}"), format!("{a:?}"), format!("{a:>7}")),
        ("grace".into(), "\"grace\"".into(), "  grace".into())
    );
    // Searched like std's sorted strings, by `&str`.
    names.remove_with(0, |_| ());
    names.push("zed").unwrap();
    assert!(names.is_sorted());
    assert_eq!(names.binary_search_by(|n| n.as_str().cmp("grace")), Ok(1));
    assert_eq!(
        (String::default().len(), String::new().is_empty()),
        (0, true)
    );
}

/// A `write!` that runs out of room takes back what it appended.
#[test]
fn a_failed_write_leaves_the_string_as_it_was() {
    let mut seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    seg.construct("s", String::new()).unwrap();
    let mut s = seg.find_mut::<String>("s").unwrap().unwrap();
    s.push_str("kept").unwrap();
    let huge = "x".repeat(1 << 17);
    assert!(write!(s.writer(), "appended, then taken back{huge}").is_err());
    assert_eq!(*s, "kept");
    write!(s.writer(), " {}", 1).unwrap();
    assert_eq!(*s, "kept 1");
}

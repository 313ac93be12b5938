//! Strings, boxes and `Arc`s nested in vectors and in each other: built in place, edited
//! through guards, relocated when an outer buffer moves, dropped in place, and everything
//! given back when the outermost goes.

use shmkit_containers::{Arc, ArcExt, Box, BoxExt, String, StringExt, Vec, VecExt};
use shmkit_runtime::ManagedHeapMemory;
use shmkit_test_support::Rng;

use crate::model::OPS;

type Rows = Vec<Box<Vec<String>>>;
type Model = std::vec::Vec<Option<std::vec::Vec<std::string::String>>>;

/// The rows as std values.
fn snapshot(rows: &Rows) -> Model {
    rows.iter()
        .map(|b| {
            b.get()
                .map(|v| v.iter().map(|s| s.as_str().to_owned()).collect())
        })
        .collect()
}

/// Random operations on a `Vec<Box<Vec<String>>>` and on a std model.
#[test]
fn boxes_of_vectors_of_strings_in_a_vector_match_std() {
    let mut rng = Rng::new(0xb0c5);
    let mut seg = ManagedHeapMemory::new(1 << 21).unwrap();
    seg.construct("rows", Rows::new()).unwrap();
    let mut rows = seg.find_mut::<Rows>("rows").unwrap().unwrap();
    let mut model = Model::new();
    for step in 0..OPS / 2 {
        let len = model.len();
        let index = rng.range(0, len as u64 + 1) as usize;
        let word = format!("w{}é", rng.range(0, 100));
        match rng.range(0, 8) {
            0 | 1 => {
                rows.push(Some([word.as_str(), "x"])).unwrap();
                model.push(Some(vec![word, "x".into()]));
            }
            2 => {
                rows.insert(index, None::<[&str; 0]>).unwrap();
                model.insert(index, None);
            }
            3 | 4 => {
                if let Some(mut b) = rows.element_mut(index) {
                    match b.value_mut() {
                        Some(mut v) => {
                            v.push(word.as_str()).unwrap();
                            if let Some(mut first) = v.first_mut() {
                                first.push('!').unwrap();
                            }
                        }
                        None => b.insert([word.as_str()]).unwrap(),
                    }
                    let m = model[index].get_or_insert_with(std::vec::Vec::new);
                    if m.is_empty() {
                        m.push(word);
                    } else {
                        m.push(word);
                        m[0].push('!');
                    }
                }
            }
            5 => assert_eq!(
                rows.remove_with(index, |b| b.get().map(|v| v.len())),
                (index < len).then(|| model.remove(index).map(|v| v.len()))
            ),
            6 => {
                if let Some(mut b) = rows.element_mut(index) {
                    assert_eq!(
                        b.take_with(|v| v.len()),
                        model[index].take().map(|v| v.len())
                    );
                }
            }
            _ => {
                rows.truncate(index + 2);
                model.truncate(index + 2);
                rows.shrink_to_fit().unwrap();
            }
        }
        assert_eq!(snapshot(&rows), model, "step {step}");
    }
    assert!(seg.destroy::<Rows>("rows").unwrap());
    assert!(seg.all_memory_deallocated());
}

/// An `Arc<Vec<String>>` shared by the elements of a vector of `Arc`s, and a vector of
/// vectors of strings: all freed when their objects are destroyed.
#[test]
fn shared_and_nested_strings_are_all_given_back() {
    let mut seg = ManagedHeapMemory::new(1 << 20).unwrap();
    seg.construct("shared", Vec::<Arc<Vec<String>>>::new())
        .unwrap();
    seg.construct("table", Vec::<Vec<String>>::new()).unwrap();
    {
        let mut shared = seg
            .find_mut::<Vec<Arc<Vec<String>>>>("shared")
            .unwrap()
            .unwrap();
        shared.push(Some(["ada", "grace"])).unwrap();
        for _ in 0..10 {
            shared.push(None::<[&str; 0]>).unwrap();
            let mut all = shared.iter_mut();
            let first = all.next().unwrap();
            all.last().unwrap().share(&first).unwrap();
        }
        assert_eq!(shared[5].get().unwrap()[1], "grace");
        // Shared: no element of the vector may change it.
        assert!(shared.element_mut(0).unwrap().value_mut().is_none());
    }
    {
        let mut table = seg.find_mut::<Vec<Vec<String>>>("table").unwrap().unwrap();
        for r in 0..30 {
            table.push((0..r).map(|c| format!("{r}:{c}"))).unwrap();
        }
        table
            .element_mut(3)
            .unwrap()
            .element_mut(1)
            .unwrap()
            .push_str("+")
            .unwrap();
        assert_eq!((table[3][1].as_str(), table[29].len()), ("3:1+", 29));
    }
    assert!(seg.destroy::<Vec<Arc<Vec<String>>>>("shared").unwrap());
    assert!(seg.destroy::<Vec<Vec<String>>>("table").unwrap());
    assert!(seg.all_memory_deallocated());
}

//! Golden images: segment files written by earlier builds (`runtime/tests/golden/`, named
//! `v<format version>-<index>.seg`), with objects of every kind. Every later build must open
//! each one and find every object with its value, or refuse it with `IncompatibleVersion`
//! naming both versions; an image of the current version must open. The contents below
//! are frozen: a new format version gets new images (the generator writes the current
//! version's and never touches older ones), it does not change what old ones hold.
//!
//! ```text
//! cargo test -p shmkit-runtime --test segment golden -- --ignored
//! ```

use std::path::{Path, PathBuf};

use shmkit_runtime::segment::{Backing, Lends, Writable};
use shmkit_runtime::test_hooks::FORMAT_VERSION;
use shmkit_runtime::{
    AlignedBuffer, Anonymous, Error, HashIndex, ManagedExternalBuffer, ManagedHeapMemory,
    ManagedSegment, NamedIndex, OrderedIndex, Unique,
};

const SIZE: usize = 4096;
const PRIMES: [u32; 6] = [2, 3, 5, 7, 11, 13];
const TAG: [u8; 16] = *b"shmkit golden v2";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Writes the golden contents: named single and array objects, two unique objects, an
/// anonymous one, and a destroyed object's hole between them.
fn fill<B: Backing, M: Writable, I: NamedIndex>(seg: &mut ManagedSegment<B, M, I>) {
    seg.construct("counter", 42u64).unwrap();
    seg.construct("gone", [9u64; 4]).unwrap();
    seg.construct_array_with("primes", PRIMES.len(), |i| PRIMES[i])
        .unwrap();
    seg.construct("tag", TAG).unwrap();
    seg.construct(Unique, 7u64).unwrap();
    seg.construct(Unique, [1u16, 2, 3, 4]).unwrap();
    seg.construct(Anonymous, 0xA11u64).unwrap();
    assert!(seg.destroy::<[u64; 4]>("gone").unwrap());
}

/// Finds every object of [`fill`] with its value, and checks the whole segment.
fn verify<B: Backing, M, I: NamedIndex>(seg: &ManagedSegment<B, M, I>)
where
    M: Lends<u64> + Lends<u32> + Lends<[u8; 16]> + Lends<[u64; 4]> + Lends<[u16; 4]>,
{
    assert_eq!(seg.find::<u64>("counter").unwrap(), Some(&42));
    assert_eq!(seg.find_slice::<u32>("primes").unwrap(), Some(&PRIMES[..]));
    assert_eq!(seg.find::<[u8; 16]>("tag").unwrap(), Some(&TAG));
    assert_eq!(seg.find::<[u64; 4]>("gone").unwrap(), None);
    assert_eq!(seg.find_unique::<u64>().unwrap(), Some(&7));
    assert_eq!(seg.find_unique::<[u16; 4]>().unwrap(), Some(&[1, 2, 3, 4]));
    let mut named: Vec<_> = seg.named_objects().unwrap().map(|o| o.name).collect();
    named.sort();
    assert_eq!(named, ["counter", "primes", "tag"]);
    assert_eq!(seg.unique_objects().unwrap().count(), 2);
    seg.check().unwrap();
}

/// Opens `image` (of index `I`) as a heap image, an external buffer and a read-only one,
/// verifying each, or returns the error every one of them refused it with.
fn open_and_verify<I: NamedIndex>(image: &[u8]) -> Result<(), Error> {
    let opened = ManagedHeapMemory::options().index::<I>().from_image(image);
    let mut buf = AlignedBuffer::from_image(image);
    let seg = match opened {
        Ok(seg) => seg,
        Err(e) => {
            let again = ManagedExternalBuffer::options().index::<I>().open(&mut buf);
            assert!(again.is_err(), "a buffer opened what the heap refused: {e}");
            return Err(e);
        }
    };
    verify(&seg);
    verify(
        &ManagedExternalBuffer::options()
            .index::<I>()
            .open(&mut buf)
            .unwrap(),
    );
    let read_only = AlignedBuffer::from_image(image);
    verify(
        &ManagedExternalBuffer::options()
            .read_only()
            .index::<I>()
            .open(&read_only)
            .unwrap(),
    );
    Ok(())
}

/// The images in the golden directory: (path, format version, index name).
fn images() -> Vec<(PathBuf, u32, String)> {
    let mut found: Vec<_> = std::fs::read_dir(dir())
        .expect("runtime/tests/golden")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
            let (version, index) = stem
                .strip_prefix('v')
                .and_then(|s| s.split_once('-'))
                .unwrap_or_else(|| panic!("{}: not named v<version>-<index>.seg", p.display()));
            (p.clone(), version.parse().unwrap(), index.to_owned())
        })
        .collect();
    found.sort();
    found
}

#[test]
fn golden_images_open_and_verify_or_are_refused_naming_both_versions() {
    let images = images();
    for index in ["hash", "ordered"] {
        assert!(
            images
                .iter()
                .any(|(_, v, i)| *v == FORMAT_VERSION && i == index),
            "no {index} golden image of format version {FORMAT_VERSION}: run the generator \
             (see this file's doc) and commit its images beside the older ones"
        );
    }
    for (path, version, index) in images {
        let image = std::fs::read(&path).unwrap();
        let result = match index.as_str() {
            "hash" => open_and_verify::<HashIndex>(&image),
            "ordered" => open_and_verify::<OrderedIndex>(&image),
            other => panic!("{}: unknown index {other}", path.display()),
        };
        match result {
            Ok(()) => {}
            Err(
                e @ Error::IncompatibleVersion {
                    found, supported, ..
                },
            ) if version != FORMAT_VERSION => {
                assert_eq!(
                    (found, supported),
                    (version, FORMAT_VERSION),
                    "{}",
                    path.display()
                );
                let text = e.to_string();
                assert!(
                    text.contains(&format!("version {version}"))
                        && text.contains(&format!("version {FORMAT_VERSION}")),
                    "{}: the error must name both versions: {text}",
                    path.display()
                );
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

fn generate<I: NamedIndex>(index: &str) {
    let mut seg = ManagedHeapMemory::options()
        .index::<I>()
        .create(SIZE)
        .unwrap();
    fill(&mut seg);
    verify(&seg);
    let path = dir().join(format!("v{FORMAT_VERSION}-{index}.seg"));
    seg.write_image_to(std::fs::File::create(&path).unwrap())
        .unwrap();
    eprintln!("wrote {}", path.display());
}

#[test]
#[ignore = "the generator: writes the current format version's golden images"]
fn regenerate_golden_images() {
    generate::<HashIndex>("hash");
    generate::<OrderedIndex>("ordered");
}

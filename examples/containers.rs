//! Boost.Interprocess's container examples, ported: a vector of ints (`doc_cont`), a map
//! of ints (`doc_map`), a vector of strings and a map of strings to vectors (`doc_complex_map`
//! without its `unsafe`), and a list of structures. The parent builds them in POSIX shared
//! memory through the segment's root, then starts itself again as a child that finds them
//! at another address and checks every element; destroying the root frees them all.
//!
//! Run: `cargo run --example containers`

use std::process::Command;

use shmkit::prelude::*;
use shmkit::sync::Mutex;
use shmkit::{shm_segment, ManagedSharedMemory, ShmSafe};

#[derive(ShmSafe, Default, Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Order {
    id: u32,
    quantity: u32,
}

#[shm_segment]
#[derive(Default)]
struct Containers {
    ints: Mutex<Vec<i32>>,
    squares: Mutex<BTreeMap<i32, i32>>,
    names: Mutex<Vec<String>>,
    colours: Mutex<HashMap<String, Vec<String>>>,
    orders: Mutex<LinkedList<Order>>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1) {
        Some(name) => match child(&name)? {
            None => Ok(()),
            Some(what) => Err(format!("{what} are not what the parent built").into()),
        },
        None => parent(),
    }
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("shmkit_containers_{}", std::process::id());
    let segment = ManagedSharedMemory::create(&name, 1 << 20)?;
    let _remove = Remove(name.clone());
    build(segment.root::<Containers>()?)?;
    println!(
        "parent: built the containers at {:p}",
        segment.base_address()
    );
    let status = Command::new(std::env::current_exe()?).arg(&name).status()?;
    if !status.success() {
        return Err("the child found something wrong".into());
    }
    drop(segment);
    // Alone now that the child is gone: destroying the root drops every container in it,
    // which gives back all it owns (as Boost's examples `destroy` theirs).
    let mut alone = ManagedSharedMemory::options().exclusive().open(&name)?;
    let before = alone.free_memory();
    alone.destroy_root::<Containers>()?;
    println!(
        "parent: destroyed the root, {} more bytes free",
        alone.free_memory() - before
    );
    Ok(())
}

/// Fills every container, each under its lock.
fn build(root: &Containers) -> shmkit::Result<()> {
    root.ints.lock()?.extend(0..100)?;
    let mut squares = root.squares.lock()?;
    for i in 0..100 {
        squares.insert(i, i * i)?;
    }
    drop(squares);
    root.names.lock()?.extend(["ada", "grace", "barbara"])?;
    let mut colours = root.colours.lock()?;
    colours
        .entry("warm")?
        .or_default()?
        .extend(["red", "orange"])?;
    colours.entry("cold")?.or_default()?.extend(["blue"])?;
    drop(colours);
    let mut orders = root.orders.lock()?;
    for id in 1..=3 {
        orders.push_back(Order {
            id,
            quantity: id * 10,
        })?;
    }
    Ok(())
}

/// Finds the containers and checks them: None if all are as built, else what is not.
fn child(name: &str) -> shmkit::Result<Option<&'static str>> {
    let segment = ManagedSharedMemory::open(name)?;
    let root = segment.root::<Containers>()?;
    let ints = root.ints.lock()?;
    let squares = root.squares.lock()?;
    let names = root.names.lock()?;
    let colours = root.colours.lock()?;
    let orders = root.orders.lock()?;
    println!(
        "child: at {:p}, found {} ints, {} squares, names {:?}, colours {:?}, orders {:?}",
        segment.base_address(),
        ints.len(),
        squares.len(),
        *names,
        *colours,
        *orders
    );
    Ok([
        (ints.iter().copied().eq(0..100), "the ints"),
        (
            squares.len() == 100 && squares.iter().all(|(k, v)| k * k == *v),
            "the squares",
        ),
        (names[..] == ["ada", "grace", "barbara"], "the names"),
        (
            colours["warm"] == ["red", "orange"] && colours["cold"] == ["blue"],
            "the colours",
        ),
        (
            orders.iter().map(|o| o.quantity).eq([10, 20, 30]),
            "the orders",
        ),
    ]
    .into_iter()
    .find_map(|(ok, what)| (!ok).then_some(what)))
}

/// Removes the segment's name when the parent ends.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = ManagedSharedMemory::remove(&self.0);
    }
}

//! What the fuzzer does with a lent object: [`Exercise`] for every container of the seeds
//! and their element types ([`Sample`], [`Key`]): read all of it; grow it (what the seeds
//! are built with); change it by one of its mutating operations.

use std::borrow::Borrow;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};

use shmkit_containers::{
    Box, BoxExt, Deque, DequeExt, Emplace, HashMap, HashMapExt, HashSet, HashSetExt, List, ListExt,
    Map, MapExt, Set, SetExt, String, StringExt, Vec, VecExt,
};
use shmkit_macros::ShmSafe;
use shmkit_runtime::{Error, ShmMut, ShmSafe};

/// A type the fuzzer reads and changes in place.
pub trait Exercise: ShmSafe + Default {
    /// Reads all of it (lengths, both iteration orders, lookups of what it holds, a
    /// comparison with itself, `Debug`); a digest of what it read.
    fn read(&self) -> u64;
    /// Adds something made of `n`: how the seeds are built.
    fn grow(this: ShmMut<'_, Self>, n: u64) -> Result<(), Error>;
    /// One of its mutating operations, chosen and fed by `n`.
    fn change(this: ShmMut<'_, Self>, n: u64) -> Result<(), Error>;
}

/// An element type: built in place from a source made of a number.
pub trait Sample: Exercise + Emplace<Self::Src> + Debug + Hash + Ord {
    type Src;
    fn src(n: u64) -> Self::Src;
}

/// A key type, also looked up in its borrowed form, made of the same numbers as its
/// sources (so that lookups hit the keys the seeds hold).
pub trait Key: Sample + Borrow<Self::Query> {
    type Query: ?Sized + Ord + Hash + Eq;
    fn query<R>(n: u64, f: impl FnOnce(&Self::Query) -> R) -> R;
}

/// `v`'s hash; not under Miri, where one traversal through the lent references (the
/// iteration, `Debug`) shows what another would, and hashing costs most.
fn digest<T: Hash + ?Sized>(v: &T) -> u64 {
    if cfg!(miri) {
        return 0;
    }
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// Compares `v` with itself: `==` reads every element.
#[allow(clippy::eq_op)]
fn equal<T: PartialEq + ?Sized>(v: &T) -> bool {
    v == v
}

/// The length of `v`'s `Debug` text.
fn shown<T: Debug + ?Sized>(v: &T) -> u64 {
    format!("{v:?}").len() as u64
}

/// The sum of `read` over elements.
fn read_all<'a, T: Exercise + 'a>(items: impl Iterator<Item = &'a T>) -> u64 {
    items.map(Exercise::read).fold(0, u64::wrapping_add)
}

/// An index `< len + 1` made of `n` (one past the end too: methods refuse it).
fn index(n: u64, len: usize) -> usize {
    (n / 16) as usize % (len + 1)
}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl Exercise for $t {
            fn read(&self) -> u64 {
                u64::from(*self)
            }
            fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
                *this = n as $t;
                Ok(())
            }
            fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
                *this = this.wrapping_add(n as $t);
                Ok(())
            }
        }

        impl Sample for $t {
            type Src = $t;
            fn src(n: u64) -> $t {
                n as $t
            }
        }
    )*};
}

plain!(u8, u32, u64);

impl Key for u64 {
    type Query = u64;
    fn query<R>(n: u64, f: impl FnOnce(&u64) -> R) -> R {
        f(&n)
    }
}

impl Exercise for String {
    fn read(&self) -> u64 {
        digest(self)
            ^ shown(self)
            ^ format!("{self}").len() as u64
            ^ self.chars().rev().count() as u64
            ^ self.capacity() as u64
            ^ u64::from(equal(self))
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        Ok(this.push_str(&format!("s{n} "))?)
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        let len = this.len();
        match n % 8 {
            0 => this.push_str(&format!("+{n}"))?,
            1 => this.insert(index(n, len), 'é')?,
            2 => drop(this.remove(index(n, len))),
            3 => drop(this.pop()),
            4 => this.truncate(len / 2)?,
            5 => this.retain(|c| c != 's'),
            6 => this.reserve(n as usize % 64)?,
            _ => this.shrink_to_fit()?,
        }
        Ok(())
    }
}

impl Sample for String {
    type Src = std::string::String;
    fn src(n: u64) -> std::string::String {
        format!("s{n}")
    }
}

impl Key for String {
    type Query = str;
    fn query<R>(n: u64, f: impl FnOnce(&str) -> R) -> R {
        f(&Self::src(n))
    }
}

impl<T: Sample> Exercise for Vec<T> {
    fn read(&self) -> u64 {
        read_all(self.iter().rev())
            ^ digest(self)
            ^ shown(self)
            ^ (self.len() + self.capacity()) as u64
            ^ u64::from(equal(self) && self.cmp(self).is_eq())
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        Ok(this.push(T::src(n))?)
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        let (len, at) = (this.len(), index(n, this.len()));
        match n % 10 {
            0 => this.push(T::src(n))?,
            1 => this.insert(at, T::src(n))?,
            2 => drop(this.remove_with(at, |_| ())),
            3 => drop(this.pop_with(|_| ())),
            4 => this.truncate(len / 2),
            5 => this.retain(|x| digest(x) % 3 != 0),
            6 => this.reserve(n as usize % 32)?,
            7 => this.shrink_to_fit()?,
            8 => this.dedup_by(|a, b| digest(a) % 2 == digest(b) % 2),
            _ => match this.element_mut(at) {
                Some(e) => T::change(e, n / 10)?,
                None => this.clear(),
            },
        }
        Ok(())
    }
}

impl<T: Sample> Sample for Vec<T> {
    type Src = std::vec::Vec<T::Src>;
    fn src(n: u64) -> Self::Src {
        (0..n % 4).map(|i| T::src(n + i)).collect()
    }
}

impl<K: Key, V: Sample> Exercise for Map<K, V> {
    fn read(&self) -> u64 {
        let pairs = self
            .iter()
            .rev()
            .map(|(k, v)| k.read() ^ v.read())
            .fold(0, u64::wrapping_add);
        let found = self
            .keys()
            .filter(|&k| self.get::<K>(k).is_some() && self.contains_key::<K>(k))
            .count();
        let ends = (self.first_key_value(), self.last_key_value());
        pairs
            ^ found as u64
            ^ self.range::<K, _>(..).count() as u64
            ^ K::query(1, |q| self.get(q).map_or(0, Exercise::read))
            ^ digest(self)
            ^ shown(self)
            ^ shown(&ends)
            ^ self.len() as u64
            ^ u64::from(equal(self) && self.cmp(self).is_eq())
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        this.insert_with(K::src(n), V::src(n), |_| ())?;
        Ok(())
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        match n % 9 {
            0 | 1 => drop(this.insert_with(K::src(n / 9 % 32), V::src(n), |_| ())?),
            2 => drop(K::query(n / 9 % 32, |q| this.remove_with(q, |_, _| ()))),
            3 => drop(this.pop_first_with(|_, _| ())),
            4 => drop(this.pop_last_with(|_, _| ())),
            5 => this.retain(|k, _| digest(k) % 3 != 0),
            6 => {
                if let Some(v) = K::query(n / 9 % 32, |q| this.value_mut(q)) {
                    V::change(v, n / 9)?;
                }
            }
            7 => {
                for v in this.values_mut() {
                    V::change(v, n / 9)?;
                }
            }
            _ => this
                .entry(K::src(n / 9 % 32))?
                .and_modify(|_| ())
                .or_insert(V::src(n))
                .map(drop)?,
        }
        Ok(())
    }
}

impl<T: Key> Exercise for Set<T> {
    fn read(&self) -> u64 {
        let found = self.iter().filter(|&x| self.contains::<T>(x)).count();
        read_all(self.iter().rev())
            ^ found as u64
            ^ T::query(1, |q| u64::from(self.contains(q)))
            ^ self.range::<T, _>(..).count() as u64
            ^ shown(&(self.first(), self.last()))
            ^ digest(self)
            ^ shown(self)
            ^ u64::from(equal(self) && self.is_subset(self))
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        this.insert(T::src(n))?;
        Ok(())
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        match n % 6 {
            0 | 1 => drop(this.insert(T::src(n / 6 % 32))?),
            2 => drop(T::query(n / 6 % 32, |q| this.remove(q))),
            3 => drop(this.pop_first_with(|_| ())),
            4 => drop(this.pop_last_with(|_| ())),
            _ => this.retain(|x| digest(x) % 3 != 0),
        }
        Ok(())
    }
}

impl<K: Key, V: Sample> Exercise for HashMap<K, V> {
    fn read(&self) -> u64 {
        let pairs = self
            .iter()
            .map(|(k, v)| k.read() ^ v.read())
            .fold(0, u64::wrapping_add);
        let found = self
            .keys()
            .filter(|&k| self.get::<K>(k).is_some() && self.contains_key::<K>(k))
            .count();
        pairs
            ^ found as u64
            ^ K::query(1, |q| self.get_key_value(q).map_or(0, |(k, _)| k.read()))
            ^ read_all(self.values())
            ^ shown(self)
            ^ (self.len() + self.capacity()) as u64
            ^ u64::from(equal(self))
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        this.insert_with(K::src(n), V::src(n), |_| ())?;
        Ok(())
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        match n % 9 {
            0 | 1 => drop(this.insert_with(K::src(n / 9 % 32), V::src(n), |_| ())?),
            2 => drop(K::query(n / 9 % 32, |q| this.remove_with(q, |_, _| ()))),
            3 => this.retain(|k, _| digest(k) % 3 != 0),
            4 => this.reserve(n as usize / 9 % 40)?,
            5 => this.shrink_to_fit()?,
            6 => {
                if let Some(v) = K::query(n / 9 % 32, |q| this.value_mut(q)) {
                    V::change(v, n / 9)?;
                }
            }
            7 => {
                for v in this.values_mut() {
                    V::change(v, n / 9)?;
                }
            }
            _ => this
                .entry(K::src(n / 9 % 32))?
                .or_insert(V::src(n))
                .map(drop)?,
        }
        Ok(())
    }
}

impl<T: Key> Exercise for HashSet<T> {
    fn read(&self) -> u64 {
        let found = self.iter().filter(|&x| self.contains::<T>(x)).count();
        read_all(self.iter())
            ^ found as u64
            ^ T::query(1, |q| self.get(q).map_or(0, Exercise::read))
            ^ shown(self)
            ^ (self.len() + self.capacity()) as u64
            ^ u64::from(equal(self) && self.is_subset(self))
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        this.insert(T::src(n))?;
        Ok(())
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        match n % 6 {
            0 | 1 => drop(this.insert(T::src(n / 6 % 32))?),
            2 => drop(T::query(n / 6 % 32, |q| this.remove(q))),
            3 => this.retain(|x| digest(x) % 3 != 0),
            4 => this.reserve(n as usize / 6 % 40)?,
            _ => this.shrink_to_fit()?,
        }
        Ok(())
    }
}

impl<T: Sample> Exercise for List<T> {
    fn read(&self) -> u64 {
        let found = self.iter().filter(|&x| self.contains(x)).count();
        read_all(self.iter())
            ^ read_all(self.iter().rev())
            ^ found as u64
            ^ shown(&(self.front(), self.back()))
            ^ digest(self)
            ^ shown(self)
            ^ self.len() as u64
            ^ u64::from(equal(self) && self.cmp(self).is_eq())
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        Ok(this.push_back(T::src(n))?)
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        match n % 8 {
            0 => this.push_front(T::src(n))?,
            1 => this.push_back(T::src(n))?,
            2 => drop(this.pop_front_with(|_| ())),
            3 => drop(this.pop_back_with(|_| ())),
            4 => this.retain(|x| digest(x) % 3 != 0),
            5 => {
                if let Some(v) = this.back_mut() {
                    T::change(v, n / 8)?;
                }
            }
            _ => {
                let mut cursor = this.cursor_front_mut();
                for _ in 0..n / 8 % 4 {
                    cursor.move_next();
                }
                if n % 8 == 6 {
                    cursor.insert_after(T::src(n))?;
                } else {
                    cursor.remove_current_with(|_| ());
                }
            }
        }
        Ok(())
    }
}

impl<T: Sample> Exercise for Deque<T> {
    fn read(&self) -> u64 {
        let (a, b) = self.as_slices();
        let at = (0..self.len() + 1)
            .map(|i| self.get(i).map_or(1, Exercise::read))
            .fold(0, u64::wrapping_add);
        read_all(self.iter().rev())
            ^ read_all(a.iter().chain(b))
            ^ at
            ^ self.range(1..).map_or(0, |r| r.count() as u64)
            ^ shown(&(self.front(), self.back()))
            ^ digest(self)
            ^ shown(self)
            ^ (self.len() + self.capacity()) as u64
            ^ u64::from(equal(self) && self.cmp(self).is_eq())
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        // Both ends, so that the elements wrap around the buffer's end.
        match n % 2 {
            0 => this.push_back(T::src(n))?,
            _ => this.push_front(T::src(n))?,
        }
        Ok(())
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        let len = this.len();
        match n % 10 {
            0 => this.push_front(T::src(n))?,
            1 => this.push_back(T::src(n))?,
            2 => drop(this.pop_front_with(|_| ())),
            3 => drop(this.pop_back_with(|_| ())),
            4 => this.truncate(len / 2),
            5 => this.retain(|x| digest(x) % 3 != 0),
            6 => this.reserve(n as usize / 10 % 32)?,
            7 => this.shrink_to_fit()?,
            8 => drop(this.make_contiguous()),
            _ => match this.element_mut(index(n, len)) {
                Some(e) => T::change(e, n / 10)?,
                None => this.clear(),
            },
        }
        Ok(())
    }
}

impl<T: Sample> Exercise for Box<T> {
    fn read(&self) -> u64 {
        self.get().map_or(0, Exercise::read)
            ^ digest(self)
            ^ shown(self)
            ^ u64::from(equal(self) && self.is_some() != self.is_none())
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        match this.value_mut() {
            Some(v) => T::grow(v, n),
            None => Ok(this.insert(T::src(n))?),
        }
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        match n % 5 {
            0 => this.insert(T::src(n))?,
            1 => this.clear(),
            2 => drop(this.take_with(|_| ())),
            _ => {
                if let Some(v) = this.value_mut() {
                    T::change(v, n / 5)?;
                }
            }
        }
        Ok(())
    }
}

/// A derived struct of several containers, as an application's data would be.
#[derive(ShmSafe, Default)]
#[shm(crate = "crate::shm")]
#[repr(C)]
pub struct Record {
    pub id: u64,
    pub tags: shmkit_containers::Vec<shmkit_containers::String>,
    pub scores: shmkit_containers::Map<u64, shmkit_containers::Vec<u32>>,
    pub note: shmkit_containers::Box<shmkit_containers::String>,
    pub seen: shmkit_containers::HashSet<u64>,
    pub queue: shmkit_containers::Deque<u64>,
    pub chain: shmkit_containers::List<u64>,
}

impl Exercise for Record {
    fn read(&self) -> u64 {
        self.id
            ^ self.tags.read()
            ^ self.scores.read()
            ^ self.note.read()
            ^ self.seen.read()
            ^ self.queue.read()
            ^ self.chain.read()
    }

    fn grow(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        *this.id_mut() += 1;
        Exercise::grow(this.tags_mut(), n)?;
        Exercise::grow(this.scores_mut(), n)?;
        Exercise::grow(this.note_mut(), n)?;
        Exercise::grow(this.seen_mut(), n)?;
        Exercise::grow(this.queue_mut(), n)?;
        Exercise::grow(this.chain_mut(), n)
    }

    fn change(mut this: ShmMut<'_, Self>, n: u64) -> Result<(), Error> {
        let m = n / 7;
        match n % 7 {
            0 => Exercise::change(this.tags_mut(), m),
            1 => Exercise::change(this.scores_mut(), m),
            2 => Exercise::change(this.note_mut(), m),
            3 => Exercise::change(this.seen_mut(), m),
            4 => Exercise::change(this.queue_mut(), m),
            5 => Exercise::change(this.chain_mut(), m),
            _ => {
                *this.id_mut() = m;
                Ok(())
            }
        }
    }
}

/// Visits the seed objects that every mapping lends (read-only ones too), by name and
/// type.
pub trait Visit {
    fn object<T: Exercise + shmkit_runtime::ShmImmutable>(&mut self, name: &'static str);
}

/// The seed objects a read-only mapping lends too (the others, `Arc`s, a `Weak` and a
/// `Mutex`, have interior mutability: see `specials`).
pub fn objects(v: &mut impl Visit) {
    v.object::<Vec<u64>>("vec");
    v.object::<Vec<Vec<u32>>>("rows");
    v.object::<String>("text");
    v.object::<Vec<String>>("names");
    v.object::<Map<String, Vec<u64>>>("index");
    v.object::<Set<u64>>("set");
    v.object::<HashMap<u64, String>>("hmap");
    v.object::<HashSet<String>>("hset");
    v.object::<List<Vec<u8>>>("list");
    v.object::<Deque<String>>("deque");
    v.object::<Box<Vec<u64>>>("boxed");
    v.object::<Record>("record");
}

//! serde `Serialize` for the containers (feature `serde`): as their std counterparts
//! serialize (a `Vec` as a sequence, a `Map` as a map, a `String` as a string); a `Box`
//! or `Arc` as its value, or none when empty; a `FixedBuf` as its bytes.

use serde::{Serialize, Serializer};

use crate::{Arc, Box, Deque, FixedBuf, HashMap, HashSet, List, Map, Set, String, Vec};

impl Serialize for String {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<K: Serialize, V: Serialize> Serialize for Map<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<K: Serialize, V: Serialize> Serialize for HashMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Sequences of `T`: serialized as their iteration.
macro_rules! sequences {
    ($($container:ident),*) => {$(
        impl<T: Serialize> Serialize for $container<T> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.iter())
            }
        }
    )*};
}
sequences!(Vec, Set, HashSet, List, Deque);

impl<T: Serialize> Serialize for Box<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<T: Serialize> Serialize for Arc<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<const N: usize> Serialize for FixedBuf<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_bytes())
    }
}

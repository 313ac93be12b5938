// The derive decides `ShmImmutable` with a stand-in for the type itself where a field points
// back at it. Anyone can name the stand-in and implement their own traits for it, so a field
// whose type depends on such a trait must not see it: neither as the self type of a qualified
// path nor inside a type that could ask more of it than `ShmImmutable`. Neither type below
// may be `ShmImmutable` (each holds an atomic).
use std::sync::atomic::AtomicU64;

use shmkit::{OffsetPtr, ShmImmutable, ShmSafe};

pub trait Tr {
    type T;
}
impl Tr for shmkit::__private::AssumedImmutable {
    type T = u64;
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Qualified {
    pub hits: <Qualified as Tr>::T,
}
impl Tr for Qualified {
    type T = AtomicU64;
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Pick<T: Tr>
where
    <T as Tr>::T: ShmSafe,
{
    pub value: <T as Tr>::T,
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Wrapped {
    pub picked: Pick<Wrapped>,
    pub next: OffsetPtr<Pick<Wrapped>>,
}
impl Tr for Wrapped {
    type T = AtomicU64;
}

fn lent_read_only<T: ShmImmutable>() {}

fn main() {
    lent_read_only::<Qualified>();
    lent_read_only::<Wrapped>();
}

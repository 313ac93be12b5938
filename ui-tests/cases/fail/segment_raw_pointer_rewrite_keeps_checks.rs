use shmkit::shm_segment;

// Rewriting `*const T` into `OffsetPtr<T>` does not make a bad target acceptable: the
// derive's checks still see the pointee.
#[shm_segment]
#[derive(Default)]
struct Db {
    names: *const &'static str,
}

fn main() {}

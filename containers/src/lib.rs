//! Segment-resident containers (`Vec`, `String`, `Map`, …) of shmkit. They build on the
//! runtime's allocator and offset pointers; the containers issue fills this crate.

//! Offset pointers: relocation of moved values (which Miri runs, `.ci/miri`), and one
//! segment mapped at two addresses (real mappings, compiled out under Miri).

#[cfg(not(miri))]
mod in_segment;
mod relocation;
#[cfg(not(miri))]
mod two_mappings;

//! Segments and objects shared between real processes: the other processes are the
//! helper binary `shmkit-test-child` (`tests/bin/child/`), one subcommand per role.

mod objects;
mod segment;
mod sharing;

//! Holds no code: the cases are in `cases/`, run by `tests/ui.rs`.

//! Thin safe wrappers over the OS: shared memory objects, files, mappings.

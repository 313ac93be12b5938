//! Inter-process communication over shmkit segments: [`MessageQueue`], Boost's
//! `message_queue` made robust, placed in any segment or named ([`NamedMessageQueue`]).
//!
//! Builds on the runtime's robust locks (`shmkit_runtime::sync`) and its allocator: a
//! queue is a `ShmSafe` value whose slots are one block of its segment.

pub mod message_queue;

pub use message_queue::{MessageQueue, NamedMessageQueue, Received};

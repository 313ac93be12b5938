//! [`NamedMessageQueue`]: a [`MessageQueue`] in a shared memory object of its own, found by
//! name, as Boost's `message_queue` is.

use std::ops::Deref;

use shmkit_runtime::sync::Named;
use shmkit_runtime::Result;

use super::MessageQueue;

/// A [`MessageQueue`] that processes find by name (Boost's `message_queue`): a POSIX shared
/// memory object of that name holds the queue alone; it derefs to the queue.
///
/// Like Boost's, it outlives the processes that use it until [`remove`](Self::remove)d
/// (those that have it open keep using it). Names follow
/// [`ManagedSharedMemory`](shmkit_runtime::ManagedSharedMemory)'s rules, in the same
/// namespace; a name that holds something else is [`Error::TypeMismatch`](shmkit_runtime::Error::TypeMismatch).
///
/// ```
/// use shmkit_ipc::NamedMessageQueue;
/// # let name = format!("doc_mq_{}", std::process::id());
/// let q = NamedMessageQueue::create(&name, 16, 64)?;
/// q.send(b"hello", 1)?;
/// let other = NamedMessageQueue::open(&name)?; // as another process would
/// let mut buf = [0u8; 64];
/// let got = other.receive(&mut buf)?;
/// assert_eq!(&buf[..got.len], b"hello");
/// NamedMessageQueue::remove(&name)?;
/// # Ok::<(), shmkit_runtime::Error>(())
/// ```
pub struct NamedMessageQueue(Named<MessageQueue>);

impl NamedMessageQueue {
    /// Creates the queue `name` for `max_msg` messages of up to `max_msg_size` bytes;
    /// [`Error::AlreadyExists`](shmkit_runtime::Error::AlreadyExists) if the name is taken.
    pub fn create(name: impl AsRef<str>, max_msg: usize, max_msg_size: usize) -> Result<Self> {
        let name = name.as_ref();
        let queue = MessageQueue::new(max_msg, max_msg_size)?;
        let named = Named::create_with_room(name, queue, room(max_msg, max_msg_size))?;
        Self::prepared(name, named, true)
    }

    /// Opens the queue `name`, or creates it for `max_msg` messages of up to
    /// `max_msg_size` bytes. An existing queue keeps its own capacity (see
    /// [`max_msg`](MessageQueue::max_msg)), as with Boost.
    pub fn open_or_create(
        name: impl AsRef<str>,
        max_msg: usize,
        max_msg_size: usize,
    ) -> Result<Self> {
        let name = name.as_ref();
        let queue = MessageQueue::new(max_msg, max_msg_size)?;
        let named =
            Named::open_or_create_with_room(name, room(max_msg, max_msg_size), move || queue)?;
        Self::prepared(name, named, false)
    }

    /// Opens the existing queue `name`; [`Error::NotFound`](shmkit_runtime::Error::NotFound) if there is none.
    pub fn open(name: impl AsRef<str>) -> Result<Self> {
        Named::open(name).map(NamedMessageQueue)
    }

    /// Removes the queue `name`; false if there was none. Processes that have it open keep
    /// using it; the name is free at once.
    pub fn remove(name: impl AsRef<str>) -> Result<bool> {
        Named::<MessageQueue>::remove(name)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Allocates the slots of a queue just made (or opened: then they usually are), so
    /// that a capacity its segment cannot hold fails here; a queue this call created is
    /// removed again on failure.
    fn prepared(name: &str, named: Named<MessageQueue>, created: bool) -> Result<Self> {
        match named.prepare() {
            Ok(()) => Ok(NamedMessageQueue(named)),
            Err(e) => {
                drop(named);
                if created {
                    let _ = Self::remove(name);
                }
                Err(e)
            }
        }
    }
}

/// The bytes the queue's segment needs besides the queue: its slots.
fn room(max_msg: usize, max_msg_size: usize) -> usize {
    MessageQueue::storage_bytes(max_msg, max_msg_size).unwrap_or(0)
}

impl Deref for NamedMessageQueue {
    type Target = MessageQueue;

    fn deref(&self) -> &MessageQueue {
        &self.0
    }
}

impl std::fmt::Debug for NamedMessageQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedMessageQueue")
            .field("name", &self.name())
            .field("queue", &*self.0)
            .finish()
    }
}

//! A segment image through a queue (Boost's "database through a message queue"): the
//! bytes of a heap segment built in one process, sent in chunks, opened by another as an
//! external buffer, with no serialisation.

use std::io;
use std::time::{Duration, Instant};

use shmkit_runtime::{AlignedBuffer, Error, ImageBytes, Result};

use super::MessageQueue;

/// The first message of an image: this mark, then the image's length.
const MARK: u64 = u64::from_le_bytes(*b"shmkimg1");

impl MessageQueue {
    /// Sends a segment image ([`ManagedHeapMemory::image`], an [`AlignedBuffer`], bytes
    /// read from a file) with `priority`: a first message with its length, then the bytes
    /// in messages of [`max_msg_size`](Self::max_msg_size), waiting while the queue is
    /// full. The bytes go as possibly uninitialised bytes (an image in place holds the
    /// padding of its values), never as a `[u8]`.
    ///
    /// The messages of one image must not interleave with others of the same priority:
    /// send one image at a time on a queue (or use a queue per transfer).
    ///
    /// [`ManagedHeapMemory::image`]: shmkit_runtime::ManagedHeapMemory::image
    pub fn send_image(&self, image: &(impl ImageBytes + ?Sized), priority: u32) -> Result<()> {
        let bytes = image.image_bytes();
        self.send_value(&[MARK, bytes.len() as u64], priority)?;
        for chunk in bytes.chunks(self.max_msg_size()) {
            self.send_uninit(chunk, priority)?;
        }
        Ok(())
    }

    /// Receives an image sent by another process with [`send_image`](Self::send_image),
    /// into a buffer ready to be opened
    /// ([`ManagedExternalBuffer`](shmkit_runtime::ManagedExternalBuffer)); waits at most
    /// `timeout` for each message, so a sender that died halfway is [`Error::Timeout`],
    /// not a hang. A first message that is no image's is [`Error::TypeMismatch`] and stays
    /// queued; a chunk longer than what is left of the image is an error (taken: the
    /// transfer is broken either way).
    pub fn receive_image(&self, timeout: Duration) -> Result<AlignedBuffer> {
        let ([mark, len], _) = self
            .receive_value_timeout::<[u64; 2]>(timeout)?
            .ok_or_else(|| timed_out("the start of an image", timeout))?;
        if mark != MARK {
            return Err(Error::InvalidValue {
                what: "the first message of an image".into(),
                field: "[0]".into(),
                offset: 0,
                expected: "the mark of an image sent with send_image",
            });
        }
        let len = usize::try_from(len).map_err(|_| Error::InvalidSize {
            size: len,
            reason: "an image larger than the address space".into(),
        })?;
        let chunks = Chunks {
            queue: self,
            timeout,
        };
        AlignedBuffer::read_from(chunks, len).map_err(|e| match e.into_inner() {
            Some(inner) => match inner.downcast::<Error>() {
                Ok(e) => *e,
                Err(other) => Error::Corrupted {
                    what: "an image through a message queue".into(),
                    reason: other.to_string(),
                },
            },
            None => Error::Corrupted {
                what: "an image through a message queue".into(),
                reason: "the transfer broke off".into(),
            },
        })
    }
}

/// The chunks of an image as a reader: each `read` takes one message.
struct Chunks<'q> {
    queue: &'q MessageQueue,
    timeout: Duration,
}

impl io::Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        match self.queue.receive_timeout(buf, self.timeout) {
            Ok(Some(got)) if got.len > 0 => Ok(got.len),
            Ok(Some(_)) => Err(io::Error::other(Error::Corrupted {
                what: "an image through a message queue".into(),
                reason: "an empty chunk".into(),
            })),
            Ok(None) => Err(io::Error::other(timed_out(
                "the next chunk of an image",
                started.elapsed(),
            ))),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

fn timed_out(what: &str, waited: Duration) -> Error {
    Error::Timeout {
        what: "a message queue".into(),
        reason: format!("no message for {what} within {waited:?}"),
    }
}

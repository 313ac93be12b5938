//! The user locks of `shmkit_runtime::sync`, in one process (threads, heap segments, memory
//! outside segments); the multi-process and kill tests are in `tests/multiprocess`.

mod atomic_wait;
mod attack;
mod condvar;
mod mutex;
mod named;
mod reentrant;
mod rwlock;
mod semaphore;
mod seqlock;

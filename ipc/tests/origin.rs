//! The token that names this process on uninitialised messages is one token for every
//! thread, also when threads race to draw it: a message tagged with a token the process
//! no longer recognised would be handed out as initialised bytes. (A test binary of its
//! own, so that the threads below are the first to ask.)

use std::mem::MaybeUninit;
use std::sync::Barrier;

use shmkit_ipc::MessageQueue;
use shmkit_runtime::{Error, ManagedHeapMemory};

#[test]
fn threads_racing_for_the_first_token_agree_on_it() {
    const THREADS: usize = 8;
    let seg = ManagedHeapMemory::new(64 * 1024).unwrap();
    let q = seg
        .construct("q", MessageQueue::new(THREADS, 8).unwrap())
        .unwrap();
    q.prepare().unwrap();
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let bytes = [MaybeUninit::<u8>::uninit(); 8];
                start.wait();
                q.send_uninit(&bytes, 0).unwrap();
            });
        }
    });
    let mut buf = [0u8; 8];
    for _ in 0..THREADS {
        let err = q.try_receive(&mut buf).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert!(matches!(
            q.try_receive_value::<[u8; 8]>(),
            Err(Error::TypeMismatch { .. })
        ));
        let mut out = [MaybeUninit::<u8>::uninit(); 8];
        assert_eq!(q.receive_uninit(&mut out).unwrap().len, 8);
    }
    assert_eq!(q.num_msg(), 0);
}

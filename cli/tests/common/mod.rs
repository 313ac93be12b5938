//! What the attack tests share: running the binary under `timeout`, the child that writes
//! every container kind, and the watchdog over a worker that forges case after case.

#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What one run of `shmkit ARGS` did.
#[derive(Debug)]
pub struct Run {
    /// The exit status of `timeout`: the binary's own, 124 on a timeout, 128+N on signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    /// The run ended by itself with a status the inspector promises (0, 1 or 2), and no
    /// panic message.
    #[track_caller]
    pub fn sane(&self, what: &str) {
        assert!(
            matches!(self.code, 0..=2) && !self.stderr.contains("panicked"),
            "{what}: status {} after {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.took,
            &self.stdout[..self.stdout.len().min(2000)],
            &self.stderr[..self.stderr.len().min(2000)],
        );
    }
}

/// Runs `PREFIX... shmkit ARGS` (a prefix such as `setpriv ...` or `prlimit ...`), killed
/// after `limit`.
pub fn shmkit_as(prefix: &[&str], args: &[&str], limit: Duration) -> Run {
    let start = Instant::now();
    let out = Command::new("timeout")
        .arg("--kill-after=2")
        .arg(format!("{}", limit.as_secs_f64()))
        .args(prefix)
        .arg(env!("CARGO_BIN_EXE_shmkit"))
        .args(args)
        .output()
        .expect("run shmkit under timeout");
    Run {
        code: out.status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
        }),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

/// Runs the child that writes an `Inventory` of containers at `path`.
pub fn write_containers(path: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_shmkit-cli-child"))
        .arg("containers")
        .arg(path)
        .status()
        .expect("run the child");
    assert!(status.success());
}

/// Waits for a worker that sends `Ok(T)` when done or `Err(case)` when `case` panicked,
/// and keeps the case it is on in `current`: fails the test on a panic, or when one case
/// stays current for 10 s (a hang).
pub fn watch_cases<T>(rx: &Receiver<Result<T, String>>, current: &Mutex<String>) -> T {
    let mut last = (String::new(), Instant::now());
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(done)) => return done,
            Ok(Err(what)) => panic!("the inspection panicked on {what}"),
            Err(_) => {
                let now = current.lock().unwrap().clone();
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(10) {
                    panic!("the inspection hangs (10 s) on {now}");
                }
            }
        }
    }
}

//! Child processes for multi-process tests, and time limits that turn hangs into failures.
//!
//! A child is a helper binary (see the crate doc) started with its role as the first
//! argument and its parameters in environment variables. Every line it prints on stdout is
//! a message for the parent; it reads start signals and data from its stdin; its stderr
//! (panic messages) goes to the test's stderr.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `f` on its own thread and returns its result, failing the test if it takes longer
/// than `limit` (a hang becomes a failure; the stuck thread is abandoned).
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Why a child sent no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Silence {
    /// Nothing within the time limit: the child hangs (or is slow).
    Timeout,
    /// Its stdout closed: it exited or died.
    Closed,
}

/// A child process playing one role. Dropping it kills and reaps the child if it still
/// runs, so a failing parent leaves no process behind.
pub struct ChildProc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Everything the child printed so far, for failure messages.
    pub transcript: Vec<String>,
}

/// Starts the helper binary `program` (a test's `env!("CARGO_BIN_EXE_<name>")`) playing
/// `role`, with `envs` added to its environment.
pub fn spawn_child(program: &str, role: &str, envs: &[(&str, String)]) -> ChildProc {
    let mut cmd = Command::new(program);
    cmd.arg(role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program} {role}: {e}"));
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    ChildProc {
        child,
        stdin,
        lines,
        transcript: Vec::new(),
    }
}

impl ChildProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the start signal: one byte on the child's stdin.
    pub fn release(&mut self) {
        self.send("g");
    }

    /// Writes `text` to the child's stdin.
    pub fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(text.as_bytes())
            .expect("write to the child");
        stdin.flush().expect("write to the child");
    }

    /// Waits for the child's next line on stdout.
    pub fn expect_message(&mut self, limit: Duration) -> String {
        match self.lines.recv_timeout(limit) {
            Ok(line) => {
                self.transcript.push(line.clone());
                line
            }
            Err(_) => panic!(
                "child {} sent no message within {limit:?}; it printed:\n{}",
                self.pid(),
                self.transcript.join("\n")
            ),
        }
    }

    /// The child's next line on stdout within `limit`, or why there is none. Not kept in
    /// the transcript (for children that print a line per step of a long run).
    pub fn next_message(&mut self, limit: Duration) -> Result<String, Silence> {
        self.lines.recv_timeout(limit).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => Silence::Timeout,
            mpsc::RecvTimeoutError::Disconnected => Silence::Closed,
        })
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL the child");
        self.child.wait().expect("reap the child")
    }

    /// Waits (up to `limit`) for the child to exit; kills it and fails on a timeout.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Collect what it printed, for the caller's messages.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                    self.transcript.push(line);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "child {} did not exit within {limit:?}; it printed:\n{}",
                    self.pid(),
                    self.transcript.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for the child and asserts it succeeded (exit status 0).
    pub fn assert_success(&mut self, limit: Duration) {
        let status = self.wait(limit);
        assert!(
            status.success(),
            "child {} failed ({status}); it printed:\n{}",
            self.pid(),
            self.transcript.join("\n")
        );
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

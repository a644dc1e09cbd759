//! Helpers for the tests that run the built binary as a child process
//! (killed when the test ends, however it ends). The socket helper is
//! `common::Peer`. Everything waits with a bound.

#![allow(dead_code)] // each test file uses a different part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The `tcphub` binary, running, with its output read line by line.
pub struct Proc {
    child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
}

/// Starts `tcphub <args>` with piped stdin, stdout and stderr.
pub fn tcphub(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcphub"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tcphub binary");
    let stdout = lines_of(child.stdout.take().expect("stdout"));
    let stderr = lines_of(child.stderr.take().expect("stderr"));
    Proc {
        stdin: child.stdin.take(),
        child,
        stdout,
        stderr,
    }
}

fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let spawned = thread::Builder::new()
        .name("test-pipe-reader".into())
        .spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    spawned.expect("start a pipe reader thread");
    rx
}

impl Proc {
    /// Writes to the child's stdin.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(line.as_bytes()).expect("write stdin");
        stdin.write_all(b"\n").expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes the child's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the child to exit; panics after [`PATIENCE`]. Stdin stays
    /// as it is (open, unless [`Proc::close_stdin`] was called): closing it
    /// here would be an event of its own (end of input) for a client.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "tcphub did not exit in time");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything printed on stdout, once the child has exited.
    pub fn all_stdout(&self) -> Vec<String> {
        drain(&self.stdout)
    }

    pub fn all_stderr(&self) -> Vec<String> {
        drain(&self.stderr)
    }
}

/// Every line the pipe gives until it closes (bounded by [`PATIENCE`]).
fn drain(rx: &Receiver<String>) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut lines = Vec::new();
    loop {
        match rx.recv_deadline(deadline) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => return lines,
            Err(RecvTimeoutError::Timeout) => panic!("output did not end; so far: {lines:?}"),
        }
    }
}

/// The next line on `rx` that contains `needle`, skipping others; panics
/// (with what was seen) if none comes within [`PATIENCE`].
pub fn line_containing(rx: &Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        match rx.recv_deadline(deadline) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line containing {needle:?} ({e:?}); saw {seen:?}"),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address nothing listens on: bind a free port, then close it.
pub fn dead_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    addr
}

//! Socket helpers for the checks: a test client with timeouts everywhere,
//! and a way to run a check with a deadline.
//!
//! A blocking socket call without a timeout waits forever if the other side
//! never answers. In a test that means a hung `cargo test`, which tells a
//! student nothing. So every helper here gives up after a bounded time and
//! panics with a sentence saying what it was waiting for.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a check waits for any one thing (a connection, a line) before it
/// decides the server is not going to answer.
pub const WAIT: Duration = Duration::from_secs(5);

/// A listener on 127.0.0.1 with a port the OS picks (port 0), so tests never
/// collide with each other or with a hub running on 3000.
pub fn local_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

/// Starts `f` on a new thread with a name (names show up in panics, `gdb`
/// and `top -H`). Panics only if the OS refuses to make a thread.
pub fn spawn_named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .expect("spawn a thread")
}

/// Binds a listener, runs `serve(listener)` on a thread called `name`, and
/// returns the address to connect to. The server thread is never stopped:
/// it ends with the test process (a real server would take a shutdown
/// signal; the steps keep that out of the way).
pub fn start_server(name: &str, serve: impl FnOnce(TcpListener) + Send + 'static) -> SocketAddr {
    let listener = local_listener();
    let addr = listener.local_addr().expect("listener address");
    spawn_named(name, move || serve(listener));
    addr
}

/// Connects to `addr` within [`WAIT`] and sets read and write timeouts of
/// [`WAIT`] on the stream.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT)
        .unwrap_or_else(|e| panic!("could not connect to the server at {addr}: {e}"));
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.set_write_timeout(Some(WAIT)).expect("write timeout");
    stream
}

/// A test client that speaks in lines, like `nc`: every call has a timeout.
pub struct Peer {
    /// What this peer is called in failure messages ("ann", "bystander").
    pub name: String,
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Peer {
    /// Connects a new peer called `name` to `addr`.
    pub fn connect(name: &str, addr: SocketAddr) -> Peer {
        let stream = connect(addr);
        let reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        Peer {
            name: name.to_string(),
            stream,
            reader,
        }
    }

    /// The raw stream, to write bytes that are not whole lines.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes `bytes` as they are.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let name = &self.name;
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{name}: could not write to the server: {e}"));
    }

    /// Writes `line` and a `\n`.
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Reads the next line (without its `\n`), waiting at most `within`.
    /// `None` if the server closed the connection; panics on a timeout.
    pub fn try_line(&mut self, within: Duration) -> Option<String> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(within))
            .expect("read timeout");
        let mut line = String::new();
        let got = self.reader.read_line(&mut line);
        let name = &self.name;
        match got {
            Ok(0) => None,
            Ok(_) => Some(line.strip_suffix('\n').unwrap_or(&line).to_string()),
            Err(e) if is_timeout(&e) => {
                panic!("{name}: no line from the server within {within:?} (got so far: {line:?})")
            }
            Err(e) => panic!("{name}: reading from the server failed: {e}"),
        }
    }

    /// Reads the next line within [`WAIT`]; panics if there is none.
    pub fn line(&mut self) -> String {
        let name = self.name.clone();
        self.try_line(WAIT)
            .unwrap_or_else(|| panic!("{name}: the server closed the connection"))
    }

    /// Reads the next line and checks it is `want`.
    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{}: expected {want:?}, got {got:?}", self.name);
    }

    /// Reads the next line and checks it starts with `prefix`.
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.line();
        assert!(
            got.starts_with(prefix),
            "{}: expected a line starting with {prefix:?}, got {got:?}",
            self.name
        );
        got
    }

    /// Checks that nothing arrives for `quiet`: a line that should not have
    /// been sent would show up within that time.
    pub fn expect_nothing(&mut self, quiet: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(quiet))
            .expect("read timeout");
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Err(e) if is_timeout(&e) && line.is_empty() => {}
            Ok(0) => panic!("{}: expected silence, the server closed", self.name),
            other => panic!(
                "{}: expected nothing for {quiet:?}, got {line:?} ({other:?})",
                self.name
            ),
        }
    }

    /// Checks that the server closes the connection within [`WAIT`], with no
    /// more lines before it.
    pub fn expect_closed(&mut self) {
        if let Some(line) = self.try_line(WAIT) {
            panic!("{}: expected the server to close, got {line:?}", self.name);
        }
    }

    /// Shuts down our sending side: the server's `read()` returns 0, like
    /// Node's `socket.end()`.
    pub fn finish_sending(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// True for the two errors a timed-out blocking call returns on Unix and
/// Windows.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads from `stream` until `needle` has been seen, or `within` passes.
/// Returns how many bytes were read, or `None` on timeout or end of stream.
pub fn read_until_seen(stream: &mut TcpStream, needle: &[u8], within: Duration) -> Option<usize> {
    let deadline = Instant::now() + within;
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let n = match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if is_timeout(&e) => return None,
            Err(_) => return None,
        };
        total += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.windows(needle.len()).any(|w| w == needle) {
            return Some(total);
        }
        // Keep only what could still be the start of the needle.
        let keep = needle.len().saturating_sub(1).min(tail.len());
        tail.drain(..tail.len() - keep);
    }
}

/// How a check ended when run with [`run_bounded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The check returned: the code under test did what the step asks.
    Passed,
    /// The check panicked: an assertion failed, or the code hit `todo!()`.
    Failed(String),
    /// The check did not finish in time (its thread is left behind).
    TimedOut,
}

/// Runs `check` on its own thread and waits at most `limit`. This is how the
/// repository proves that a check *fails* on a starter: a starter's
/// `todo!()` panics, and a starter that would block forever is caught by the
/// deadline instead of hanging `cargo test`.
pub fn run_bounded(name: &str, limit: Duration, check: impl FnOnce() + Send + 'static) -> Outcome {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let handle = spawn_named(name, move || {
        check();
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(limit) {
        Ok(()) => {
            let _ = handle.join();
            Outcome::Passed
        }
        // The sender was dropped without sending: the thread panicked.
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(()) => Outcome::Passed,
            Err(payload) => Outcome::Failed(panic_text(payload.as_ref())),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => Outcome::TimedOut,
    }
}

/// The message of a panic, as text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

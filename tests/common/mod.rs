//! Shared test helpers: start a server under test, and talk to it as a
//! line-oriented client would.
//!
//! Tests never sleep to "let things settle". To know the hub has processed
//! everything a client sent, a test sends `/ping` and waits for `PONG`: the
//! dispatcher handles lines in order, so once `PONG` is back, every earlier
//! line from that client has been routed (see [`Peer::sync`]).

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tcphub::{Config, Hub};

/// How long any single expected line may take before a test fails.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits a conformance test may ask of a server (each is a serve flag).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_clients: usize,
    pub max_line: usize,
    pub write_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 1024,
            max_line: 4096,
            write_timeout_ms: 2000,
        }
    }
}

/// A server under test. Dropping it stops it.
pub trait Server {
    fn addr(&self) -> SocketAddr;
}

/// The threaded hub, in this process.
pub struct Threaded(Option<Hub>);

impl Server for Threaded {
    fn addr(&self) -> SocketAddr {
        self.0.as_ref().expect("hub running").local_addr()
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        if let Some(hub) = self.0.take() {
            hub.shutdown();
        }
    }
}

/// Starts the threaded hub on a free loopback port.
pub fn start_threaded(limits: Limits) -> Box<dyn Server> {
    let config = Config {
        max_clients: limits.max_clients,
        max_line: limits.max_line,
        write_timeout: Duration::from_millis(limits.write_timeout_ms),
        ..Config::ephemeral()
    };
    Box::new(Threaded(Some(Hub::start(config).expect("hub starts"))))
}

/// One client connection, reading lines with a timeout.
pub struct Peer {
    pub name: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Peer {
    /// Connects without reading anything.
    pub fn connect(addr: SocketAddr, name: &str) -> Peer {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Peer {
            name: name.to_string(),
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Connects and reads `WELCOME`; returns the peer and its nick.
    pub fn join(addr: SocketAddr, name: &str) -> (Peer, String) {
        let mut peer = Peer::connect(addr, name);
        let line = peer.recv();
        let nick = line
            .strip_prefix("WELCOME ")
            .unwrap_or_else(|| panic!("{name}: expected WELCOME, got {line:?}"))
            .to_string();
        (peer, nick)
    }

    /// Connects, reads `WELCOME`, and renames to `name`; the others already
    /// connected must then be drained by the caller (they got JOIN and NICK).
    pub fn named(addr: SocketAddr, name: &str) -> Peer {
        let (mut peer, _) = Peer::join(addr, name);
        peer.send(&format!("/nick {name}"));
        peer.expect(&format!("OK nick {name}"));
        peer
    }

    /// Sends one line (adds `\n`).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Sends bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{}: send failed: {e}", self.name));
    }

    /// The next line, without its `\n`. Fails the test on timeout or close.
    pub fn recv(&mut self) -> String {
        match self.try_recv() {
            Ok(Some(line)) => line,
            Ok(None) => panic!("{}: connection closed while expecting a line", self.name),
            Err(e) => panic!("{}: no line within {LINE_TIMEOUT:?}: {e}", self.name),
        }
    }

    /// The next line; `Ok(None)` if the server closed the connection.
    pub fn try_recv(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        assert_eq!(
            buf.pop(),
            Some(b'\n'),
            "{}: line without newline: {buf:?}",
            self.name
        );
        Ok(Some(
            String::from_utf8(buf).expect("server lines are UTF-8"),
        ))
    }

    /// Asserts the next line is exactly `expected`.
    pub fn expect(&mut self, expected: &str) {
        let got = self.recv();
        assert_eq!(got, expected, "{}: unexpected line", self.name);
    }

    /// Asserts the next line starts with `prefix`; returns it.
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.recv();
        assert!(
            got.starts_with(prefix),
            "{}: expected a line starting {prefix:?}, got {got:?}",
            self.name
        );
        got
    }

    /// Asserts the next line is `ERR <code> ...`.
    pub fn expect_err(&mut self, code: &str) {
        self.expect_prefix(&format!("ERR {code} "));
    }

    /// Round trip: `/ping` then `PONG` must be the very next line. Proves
    /// the hub has routed everything this client sent before, and that
    /// nothing else was queued for it.
    pub fn sync(&mut self) {
        self.send("/ping");
        self.expect("PONG");
    }

    /// Drops everything queued for this client so far: sends `/ping` and
    /// skips lines up to its `PONG`. Used after setting up, when the JOIN
    /// and NICK lines of the others are noise.
    pub fn settle(&mut self) {
        self.send("/ping");
        while self.recv() != "PONG" {}
    }

    /// Asserts the server closes the connection, with no further lines.
    pub fn expect_closed(&mut self) {
        match self.try_recv() {
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(Some(line)) => panic!("{}: expected close, got {line:?}", self.name),
            Err(e) => panic!("{}: expected close, got error {e}", self.name),
        }
    }

    /// Shuts down our sending side (a half-close); we can still read.
    pub fn half_close(&mut self) {
        self.writer.shutdown(Shutdown::Write).unwrap();
    }

    /// Reads and discards bytes until `deadline`; for slow-consumer tests.
    pub fn drain_for(&mut self, how_long: Duration) -> usize {
        let end = Instant::now() + how_long;
        let mut total = 0;
        let mut buf = [0u8; 64 * 1024];
        while Instant::now() < end {
            self.reader
                .get_mut()
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            match self.reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(_) => {}
            }
        }
        self.reader
            .get_mut()
            .set_read_timeout(Some(LINE_TIMEOUT))
            .unwrap();
        total
    }

    /// Splits into a reading peer (same name) and the raw write half, so one
    /// thread can send while another reads.
    pub fn split(self) -> (Peer, TcpStream) {
        let writer = self.writer.try_clone().unwrap();
        (self, writer)
    }

    /// The raw stream (to set options or reset the connection).
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }
}

//! The client side of one TCP connection to a hub, as lines.
//!
//! Every program in this crate that *talks to* a hub (the interactive
//! client, the agents, the scenario runner) connects the same way and reads
//! the hub's lines the same way, so that code lives here once:
//!
//! - [`connect`] resolves an address like `127.0.0.1:3000`, connects, and
//!   turns "connection refused" into an error that says what to do about it.
//! - [`LineReader`] turns the bytes of `read()` into lines with the very same
//!   [`LineFramer`] the hub uses on its side, and can wait for a line with a
//!   deadline (the scenario runner's `expect` needs that).
//!
//! Writing needs no helper: a line is `write_all(b"...\n")` on the socket.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use log::debug;

use crate::proto::framing::{Frame, LineFramer};
use crate::support::timeouts::is_timeout;

/// The address every client uses when none is given: where `make run` and
/// `tcphub serve` listen by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// Longest server line a client accepts. The hub's own limit on a client
/// line is at most 16 MiB (`--max-line`); a server line adds a kind, a topic
/// and a nick in front. Anything longer is not from a tcphub hub, and is
/// refused instead of growing our memory without bound.
pub const MAX_SERVER_LINE: usize = 16 * 1024 * 1024 + 1024;

/// How long [`connect`] waits for the TCP handshake. A hub on this machine
/// answers at once; this only bounds a typo'd remote address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client could not connect to a hub.
#[derive(Debug)]
pub enum ConnectError {
    /// The address is malformed or the host name does not resolve.
    Resolve { addr: String, source: io::Error },
    /// Nothing listens there (the most common case: the hub is not running).
    Refused { addr: String },
    /// Any other failure (timeout, unreachable network, ...).
    Io { addr: String, source: io::Error },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Resolve { addr, source } => {
                write!(f, "cannot use address {addr}: {source}")
            }
            ConnectError::Refused { addr } => write!(
                f,
                "cannot connect to {addr}: connection refused (is the hub running? start it with `tcphub serve`)"
            ),
            ConnectError::Io { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Resolve { source, .. } | ConnectError::Io { source, .. } => Some(source),
            ConnectError::Refused { .. } => None,
        }
    }
}

/// Connects to a hub at `addr` (`host:port`), trying every address the name
/// resolves to, like a browser would. Nagle is turned off, as on the hub's
/// side: our lines are small and should leave at once.
pub fn connect(addr: &str) -> Result<TcpStream, ConnectError> {
    let candidates: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| ConnectError::Resolve {
            addr: addr.to_string(),
            source,
        })?
        .collect();
    let mut last = None;
    for candidate in candidates {
        // Blocks until the handshake completes, is refused, or times out.
        debug!("connecting to {candidate}");
        match TcpStream::connect_timeout(&candidate, CONNECT_TIMEOUT) {
            Ok(socket) => {
                // Failing to set an option is harmless: lines just leave later.
                let _ = socket.set_nodelay(true);
                return Ok(socket);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => ConnectError::Refused {
            addr: addr.to_string(),
        },
        Some(source) => ConnectError::Io {
            addr: addr.to_string(),
            source,
        },
        None => ConnectError::Resolve {
            addr: addr.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address"),
        },
    })
}

/// What waiting for a line can end with, besides an IO error. The line is
/// a `String` ([`LineReader::read_line`]) or, for `tcphub client --raw`,
/// the bytes as they came ([`LineReader::read_line_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received<L = String> {
    /// One whole line, without its `\n` (a `\r` before it is dropped too).
    Line(L),
    /// The hub closed the connection (end of stream). Whatever the hub sent
    /// before closing has been returned as lines first.
    Closed,
    /// The deadline passed with no complete line. Nothing is lost: bytes of
    /// an unfinished line stay buffered for the next call.
    TimedOut,
}

/// Reads lines from a byte stream (a socket, or anything that implements
/// [`Read`] in tests).
///
/// Why not `BufRead::read_line`? Two reasons a student will hit: a read
/// timeout in the middle of a line can lose the half already read, and a
/// peer that never sends `\n` would grow the `String` forever. The framer
/// keeps unfinished lines across calls and bounds them.
pub struct LineReader<R> {
    inner: R,
    framer: LineFramer,
    /// Lines already framed but not yet handed out: one `read()` often
    /// brings several.
    ready: VecDeque<Result<Vec<u8>, ()>>,
    closed: bool,
}

impl<R: Read> LineReader<R> {
    /// Wraps `inner`; lines longer than [`MAX_SERVER_LINE`] are an error.
    /// A server's lines are not telnet: the framer's telnet handling (which
    /// the hub turns on for its clients) stays off, so `--raw` sees every
    /// byte.
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            framer: LineFramer::new(MAX_SERVER_LINE),
            ready: VecDeque::new(),
            closed: false,
        }
    }

    /// Blocks until a whole line arrives or the stream ends. Returns
    /// [`Received::Line`] or [`Received::Closed`] (or [`Received::TimedOut`]
    /// if the stream has a read timeout set and it expired).
    pub fn read_line(&mut self) -> io::Result<Received> {
        Ok(match self.read_line_bytes()? {
            // Never panics on bytes that are not UTF-8: U+FFFD instead.
            Received::Line(bytes) => Received::Line(match String::from_utf8(bytes) {
                Ok(line) => line,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }),
            Received::Closed => Received::Closed,
            Received::TimedOut => Received::TimedOut,
        })
    }

    /// [`LineReader::read_line`], the line as the bytes that came (without
    /// the `\n`), UTF-8 or not.
    pub fn read_line_bytes(&mut self) -> io::Result<Received<Vec<u8>>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return line.map(Received::Line).map_err(|()| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the server sent a line longer than {MAX_SERVER_LINE} bytes"),
                    )
                });
            }
            if self.closed {
                return Ok(Received::Closed);
            }
            // The blocking call: parked in the kernel until bytes arrive,
            // the peer closes, or a read timeout expires.
            let n = match self.inner.read(self.framer.spare()) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => return Ok(Received::TimedOut),
                Err(e) => return Err(e),
            };
            if n == 0 {
                // An unfinished last line (no `\n`) is dropped: the contract
                // says every server line ends with one.
                self.closed = true;
                continue;
            }
            self.framer.filled(n);
            while let Some(frame) = self.framer.next_frame() {
                self.ready.push_back(match frame {
                    Frame::Line(line) => Ok(line.to_vec()),
                    Frame::TooLong => Err(()),
                });
            }
        }
    }
}

impl LineReader<TcpStream> {
    /// Like [`LineReader::read_line`], but gives up at `deadline` with
    /// [`Received::TimedOut`]. Lines already buffered are returned even if
    /// the deadline has passed: they arrived in time.
    pub fn read_line_by(&mut self, deadline: Instant) -> io::Result<Received> {
        if !self.ready.is_empty() || self.closed {
            return self.read_line();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Received::TimedOut);
            }
            // `read()` waits at most `left`, then fails with WouldBlock.
            self.inner.set_read_timeout(Some(left))?;
            let got = self.read_line();
            self.inner.set_read_timeout(None)?;
            match got? {
                // A timed-out read may still leave time (a signal woke us):
                // go round and wait for what is left.
                Received::TimedOut if Instant::now() < deadline => continue,
                other => return Ok(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that returns its chunks one `read()` at a time.
    struct Chunks(VecDeque<Vec<u8>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(chunk) = self.0.pop_front() else {
                return Ok(0);
            };
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    fn reader(chunks: &[&[u8]]) -> LineReader<Chunks> {
        LineReader::new(Chunks(chunks.iter().map(|c| c.to_vec()).collect()))
    }

    fn line(s: &str) -> Received {
        Received::Line(s.to_string())
    }

    #[test]
    fn lines_split_across_reads_come_out_whole() {
        let mut r = reader(&[b"WELC", b"OME guest-1\nJOIN b", b"ob\r\nPONG\n"]);
        assert_eq!(r.read_line().unwrap(), line("WELCOME guest-1"));
        assert_eq!(r.read_line().unwrap(), line("JOIN bob"));
        assert_eq!(r.read_line().unwrap(), line("PONG"));
        assert_eq!(r.read_line().unwrap(), Received::Closed);
        assert_eq!(r.read_line().unwrap(), Received::Closed);
    }

    #[test]
    fn an_unfinished_last_line_is_dropped_at_close() {
        let mut r = reader(&[b"BYE\nhalf a li"]);
        assert_eq!(r.read_line().unwrap(), line("BYE"));
        assert_eq!(r.read_line().unwrap(), Received::Closed);
    }

    #[test]
    fn invalid_utf8_does_not_panic() {
        let mut r = reader(&[b"MSG a caf\xe9\n"]);
        assert_eq!(r.read_line().unwrap(), line("MSG a caf\u{fffd}"));
    }

    #[test]
    fn a_refused_connection_says_so() {
        // Bind to learn a free port, then close it: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        match connect(&addr) {
            Err(e @ ConnectError::Refused { .. }) => {
                assert!(e.to_string().contains("is the hub running?"), "{e}");
            }
            other => panic!("expected Refused, got {other:?}"),
        }
        assert!(matches!(
            connect("not an address"),
            Err(ConnectError::Resolve { .. })
        ));
    }
}

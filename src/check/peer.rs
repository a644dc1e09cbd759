//! One client connection as a check sees it: send lines, read lines, and
//! turn everything that can go wrong into a [`CheckFailure`] value.
//!
//! The server under test may be anyone's, in any state: it may send bytes
//! that are not UTF-8, stop answering, or close the connection. None of
//! that may panic the grader, so every method here returns a `Result` and
//! every read is bounded by a timeout and by the check's deadline.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a check failed: who saw what, against what was expected, and (when
/// the check can guess the cause) a hint a student can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure {
    /// The peer that saw the problem (`ann`, `bob`, ...).
    pub who: String,
    /// What the contract says should have happened.
    pub expected: String,
    /// What came back, with control bytes escaped.
    pub got: String,
    /// The likely cause and fix, when the check knows one.
    pub hint: Option<String>,
    /// True when the failure is that the server could not be reached at
    /// all, so the grader can tell "wrong address" from "wrong answer".
    pub unreachable: bool,
}

impl CheckFailure {
    /// A failure seen by `who`: expected one thing, got another.
    pub fn new(who: &str, expected: impl Into<String>, got: impl Into<String>) -> CheckFailure {
        CheckFailure {
            who: who.to_string(),
            expected: expected.into(),
            got: got.into(),
            hint: None,
            unreachable: false,
        }
    }

    /// The same failure with a hint (replacing none, keeping an earlier one).
    pub fn with_hint(mut self, hint: &str) -> CheckFailure {
        if self.hint.is_none() {
            self.hint = Some(hint.to_string());
        }
        self
    }
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  {} expected: {}", self.who, self.expected)?;
        write!(f, "  {} got:      {}", self.who, self.got)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// What a check returns: `Ok(())` is a pass.
pub type CheckResult<T = ()> = Result<T, CheckFailure>;

/// Adds a hint to a failing step: `b.expect("MSG ann two").hint("...")?`.
pub trait Hint {
    /// On failure, attach `hint` (unless the failure already has one).
    fn hint(self, hint: &str) -> Self;
}

impl<T> Hint for CheckResult<T> {
    fn hint(self, hint: &str) -> Self {
        self.map_err(|f| f.with_hint(hint))
    }
}

/// Shows bytes as a quoted string with control bytes and invalid UTF-8
/// escaped (`"a\rb\x00"`), cut after 160 characters, so a student sees
/// exactly what their server sent, stray `\r` included.
pub fn escape(bytes: &[u8]) -> String {
    const SHOWN: usize = 160;
    let mut out = String::from("\"");
    let mut shown = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == SHOWN {
                break;
            }
            out.extend(c.escape_debug());
            shown += 1;
        }
        for b in chunk.invalid() {
            if shown == SHOWN {
                break;
            }
            out.push_str(&format!("\\x{b:02x}"));
            shown += 1;
        }
    }
    out.push('"');
    if shown == SHOWN {
        out.push_str(&format!(" (cut; {} bytes in all)", bytes.len()));
    }
    out
}

/// One read from the server, as data rather than an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A whole line, without its `\n` (not necessarily UTF-8).
    Line(Vec<u8>),
    /// The server closed the connection (end of stream).
    Closed,
    /// The server reset the connection.
    Reset,
    /// Bytes without a final `\n`, then end of stream.
    Partial(Vec<u8>),
    /// Nothing within the timeout.
    Timeout(Duration),
    /// The check's overall time budget ran out.
    OutOfTime,
    /// Any other socket error.
    Error(String),
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Line(bytes) => write!(f, "{}", escape(bytes)),
            Got::Closed => write!(f, "the connection closed"),
            Got::Reset => write!(f, "the connection was reset"),
            Got::Partial(bytes) => write!(f, "{} with no \\n, then close", escape(bytes)),
            Got::Timeout(t) => write!(f, "nothing within {}ms", t.as_millis()),
            Got::OutOfTime => write!(f, "nothing before the check's time budget ran out"),
            Got::Error(e) => write!(f, "a socket error: {e}"),
        }
    }
}

/// What a peer needs to know about its check: how long one read may take,
/// when the whole check must be over, and whom to tell that a connection
/// worked (the grader uses that to tell a wrong address from a bad server).
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// Longest wait for one line.
    pub timeout: Duration,
    /// When the check must end, whatever happens.
    pub deadline: Instant,
    /// Set once any connection succeeds.
    pub reached: Arc<AtomicBool>,
    /// A line that is not the check's business and is skipped wherever it
    /// comes: the `LEAVE` of the grader's own probe between checks, which a
    /// server may announce a little late.
    pub noise: Option<Arc<[u8]>>,
}

/// One connection to the server under test.
pub struct Peer {
    /// Who this is in failure messages (`ann`), and after [`Peer::named`]
    /// its nick on the server.
    pub name: String,
    /// The nick the server gave in `WELCOME` (empty before [`Peer::join`]).
    pub guest: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    settings: PeerSettings,
    read_timeout: Duration,
}

impl Peer {
    /// Connects without reading anything.
    pub fn connect(addr: SocketAddr, name: &str, settings: &PeerSettings) -> CheckResult<Peer> {
        let unreachable = |e: io::Error| CheckFailure {
            unreachable: true,
            ..CheckFailure::new(name, format!("to connect to {addr}"), format!("{e}"))
        };
        let stream = TcpStream::connect_timeout(&addr, settings.timeout).map_err(unreachable)?;
        settings.reached.store(true, Ordering::Relaxed);
        let setup =
            |r: io::Result<()>| r.map_err(|e| CheckFailure::new(name, "a socket", e.to_string()));
        setup(stream.set_read_timeout(Some(settings.timeout)))?;
        setup(stream.set_write_timeout(Some(settings.timeout)))?;
        setup(stream.set_nodelay(true))?;
        let writer = stream
            .try_clone()
            .map_err(|e| CheckFailure::new(name, "a socket", e.to_string()))?;
        Ok(Peer {
            name: name.to_string(),
            guest: String::new(),
            reader: BufReader::new(stream),
            writer,
            settings: settings.clone(),
            read_timeout: settings.timeout,
        })
    }

    /// Connects and reads `WELCOME <nick>`; the nick goes in [`Peer::guest`].
    pub fn join(addr: SocketAddr, name: &str, settings: &PeerSettings) -> CheckResult<Peer> {
        let mut peer = Peer::connect(addr, name, settings)?;
        let line = peer.expect_prefix("WELCOME ")?;
        peer.guest = line["WELCOME ".len()..].to_string();
        Ok(peer)
    }

    /// Joins, then renames to `name` (`/nick name`, `OK nick name`). The
    /// others already connected got a JOIN and a NICK: callers drain them.
    pub fn named(addr: SocketAddr, name: &str, settings: &PeerSettings) -> CheckResult<Peer> {
        let mut peer = Peer::join(addr, name, settings)?;
        peer.call(&format!("/nick {name}"), &format!("OK nick {name}"))?;
        Ok(peer)
    }

    /// Lets one read wait longer (or shorter) than the default timeout; the
    /// slow-consumer check waits out the server's write timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.settings.timeout = timeout;
    }

    /// Sends one line (adds `\n`).
    pub fn send(&mut self, line: &str) -> CheckResult {
        self.send_raw(format!("{line}\n").as_bytes())
    }

    /// Sends bytes exactly as given, in one write.
    pub fn send_raw(&mut self, bytes: &[u8]) -> CheckResult {
        self.writer.write_all(bytes).map_err(|e| {
            let what = format!("to send {}", escape(bytes));
            CheckFailure::new(&self.name, what, format!("a socket error: {e}"))
        })
    }

    /// The next thing the server did: a line, a close, a timeout...
    ///
    /// `NOTICE <text>` lines are skipped wherever they come: they are the
    /// compatible extension of docs/protocol.md, words for a person (a
    /// hub started with `--record` says so after `WELCOME`), which no
    /// check is about and any server may send.
    pub fn read(&mut self) -> Got {
        loop {
            match self.read_one() {
                Got::Line(line) if self.settings.noise.as_deref() == Some(&line[..]) => {}
                Got::Line(line) if line.starts_with(b"NOTICE ") => {}
                other => return other,
            }
        }
    }

    fn read_one(&mut self) -> Got {
        let left = self
            .settings
            .deadline
            .saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Got::OutOfTime;
        }
        let wait = self.settings.timeout.min(left);
        if wait != self.read_timeout {
            if let Err(e) = self.reader.get_ref().set_read_timeout(Some(wait)) {
                return Got::Error(e.to_string());
            }
            self.read_timeout = wait;
        }
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => Got::Closed,
            Ok(_) if buf.last() == Some(&b'\n') => {
                buf.pop();
                Got::Line(buf)
            }
            Ok(_) => Got::Partial(buf),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if wait < self.settings.timeout {
                    Got::OutOfTime
                } else {
                    Got::Timeout(wait)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Got::Reset,
            Err(e) => Got::Error(e.to_string()),
        }
    }

    /// The next line as text; anything else (close, timeout, bytes that are
    /// not UTF-8) is a failure saying we were `expecting` something.
    pub fn recv(&mut self, expecting: &str) -> CheckResult<String> {
        match self.read() {
            Got::Line(bytes) => String::from_utf8(bytes).map_err(|e| {
                let got = format!("{} (not UTF-8)", escape(e.as_bytes()));
                CheckFailure::new(&self.name, expecting, got)
            }),
            other => Err(CheckFailure::new(&self.name, expecting, other.to_string())),
        }
    }

    /// The next line must be exactly `expected`.
    pub fn expect(&mut self, expected: &str) -> CheckResult {
        let shown = escape(expected.as_bytes());
        match self.read() {
            Got::Line(bytes) if bytes == expected.as_bytes() => Ok(()),
            other => Err(CheckFailure::new(&self.name, shown, other.to_string())),
        }
    }

    /// Sends `line`; the very next line must be `reply`.
    pub fn call(&mut self, line: &str, reply: &str) -> CheckResult {
        self.send(line)?;
        self.expect(reply)
    }

    /// The next line must start with `prefix`; returns it.
    pub fn expect_prefix(&mut self, prefix: &str) -> CheckResult<String> {
        let expecting = format!("a line starting {}", escape(prefix.as_bytes()));
        let line = self.recv(&expecting)?;
        if line.starts_with(prefix) {
            Ok(line)
        } else {
            Err(CheckFailure::new(
                &self.name,
                expecting,
                escape(line.as_bytes()),
            ))
        }
    }

    /// The next line must be `ERR <code> ...`.
    pub fn expect_err(&mut self, code: &str) -> CheckResult {
        self.expect_prefix(&format!("ERR {code} ")).map(drop)
    }

    /// Sends `line`; the very next line must be `ERR <code> ...`.
    pub fn refused(&mut self, line: &str, code: &str) -> CheckResult {
        self.send(line)?;
        self.expect_err(code)
            .map_err(|f| f.with_context(&format!("after sending {}", escape(line.as_bytes()))))
    }

    /// Skips lines until one for which `wanted` is true; returns it. Bounded
    /// by the timeout per line and by the check's deadline.
    pub fn skip_until(
        &mut self,
        what: &str,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> CheckResult<Vec<u8>> {
        loop {
            match self.read() {
                Got::Line(bytes) if wanted(&bytes) => return Ok(bytes),
                Got::Line(_) => {}
                other => return Err(CheckFailure::new(&self.name, what, other.to_string())),
            }
        }
    }

    /// Round trip: `/ping`, and `PONG` must be the very next line. Proves
    /// the server has handled everything this peer sent before, and that
    /// nothing else was queued for it.
    pub fn sync(&mut self) -> CheckResult {
        self.call("/ping", "PONG").map_err(|f| {
            f.with_context("after /ping (nothing else was due)")
                .with_hint(
                    "the checks send /ping and wait for PONG to know your server is done; a line \
                 other than PONG means your server sent something it should not have",
                )
        })
    }

    /// Drops everything queued for this peer so far: `/ping`, then skip
    /// lines up to `PONG`. Used after setting up, when the JOIN and NICK
    /// lines of the others are noise.
    pub fn settle(&mut self) -> CheckResult {
        self.send("/ping")?;
        self.skip_until("\"PONG\" (after /ping)", |l| l == b"PONG")
            .map(drop)
    }

    /// The server must close the connection, with no further line.
    pub fn expect_closed(&mut self) -> CheckResult {
        match self.read() {
            Got::Closed | Got::Reset => Ok(()),
            other => Err(CheckFailure::new(
                &self.name,
                "the connection to close",
                other.to_string(),
            )),
        }
    }

    /// Shuts down our sending side (a half-close); we can still read.
    pub fn half_close(&mut self) -> CheckResult {
        self.writer
            .shutdown(Shutdown::Write)
            .map_err(|e| CheckFailure::new(&self.name, "to half-close", e.to_string()))
    }

    /// Reads and discards bytes for up to `how_long`; true if the server
    /// closed the connection meanwhile. For the slow-consumer check.
    pub fn drain_until_closed(&mut self, how_long: Duration) -> bool {
        let end = Instant::now() + how_long;
        let mut buf = [0u8; 64 * 1024];
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(50)));
        self.read_timeout = Duration::from_millis(50);
        let mut closed = false;
        while Instant::now() < end {
            match self.reader.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    closed = true;
                    break;
                }
                Ok(_) | Err(_) => {}
            }
        }
        closed
    }

    /// A second handle on the socket for writing, so one thread can send
    /// while another reads through this peer.
    pub fn writer(&self) -> CheckResult<TcpStream> {
        self.writer
            .try_clone()
            .map_err(|e| CheckFailure::new(&self.name, "a second socket handle", e.to_string()))
    }
}

impl CheckFailure {
    /// Says when the failure happened (`after sending "/nick al ice"`).
    pub fn with_context(mut self, context: &str) -> CheckFailure {
        self.expected = format!("{} {context}", self.expected);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_shows_control_bytes_and_bad_utf8() {
        assert_eq!(
            escape(b"a\rb\0\t\xe9 caf\xc3\xa9"),
            r#""a\rb\0\t\xe9 café""#
        );
        let long = escape(&[b'x'; 200]);
        assert!(long.ends_with("\" (cut; 200 bytes in all)"), "{long}");
    }
}

//! `tcphub client`: a terminal on the hub, like `nc`, that knows when to stop.
//!
//! Two threads, each blocked in one call, like the hub's own threads:
//!
//! - `stdin-to-hub` blocks reading standard input; whatever it gets is
//!   written to the socket as is, a chunk at a time (a 300 MB line with no
//!   newline is streamed, not gathered first).
//! - `hub-to-stdout` blocks reading the socket; every line the hub sends is
//!   printed, as on the wire or (with `--pretty`) worded for people, with
//!   terminal control characters made visible
//!   ([`crate::support::terminal::escape`]: a peer's `\e[2J` cannot clear
//!   your screen). `--raw` prints the bytes exactly as they came, for pipes.
//!
//! Neither waits for the other, which is the point: a line from someone else
//! is printed the moment it arrives, even while you are typing.
//!
//! ## When it stops
//!
//! - On `BYE` (you typed `/quit`): printed, then the client exits (0).
//! - When the hub closes the connection without a `BYE` (it stopped, or cut
//!   us off) while we still had input: the CLI says so and exits 1.
//! - When standard input ends (Ctrl-D, or the end of a piped file). The
//!   client then *shuts down the sending half* of the socket (a TCP
//!   half-close) and keeps reading. The contract promises that the hub
//!   answers every line it received before the half-close, then closes the
//!   connection; so when the read ends, every reply has been printed. This
//!   is what makes `printf '/nick ann\n/list\n' | tcphub client` print the
//!   `LIST` instead of exiting before it arrives.

pub mod hub_connection;
pub mod pretty;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use log::debug;

use crate::proto::client_line;
use crate::proto::server_line::{ErrorCode, ServerLine};
use crate::support::terminal::escape;
use hub_connection::{ConnectError, LineReader, Received};

/// What `tcphub client` was asked to do.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host:port` of the hub.
    pub addr: String,
    /// If set, `/nick <nick>` is sent before anything typed.
    pub nick: Option<String>,
    /// Print lines worded for people ([`pretty::render`]) instead of as on
    /// the wire.
    pub pretty: bool,
    /// Print the hub's bytes unchanged: no escaping of control characters
    /// (for piping into another program). Ignored with `pretty`.
    pub raw: bool,
    /// How long to wait for the hub's first line (`WELCOME`): a server that
    /// accepts and never writes would otherwise leave the user staring at
    /// nothing. The agents wait as long (5 s).
    pub welcome_timeout: Duration,
}

/// How a client session ended without an error. The CLI picks the exit code
/// and whether to say anything from this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEnd {
    /// The hub said `BYE` (after `/quit`).
    Bye,
    /// Our input ended, and the hub then closed after answering everything.
    InputDone,
    /// The hub closed the connection while we still had input to send.
    HubClosed,
    /// The hub refused us (`ERR server-full`); the text is its reason.
    Refused(String),
    /// Our standard output went away (e.g. `tcphub client | head -1`).
    OutputClosed,
}

/// Why a client session could not start or broke.
#[derive(Debug)]
pub enum ClientError {
    /// No connection: refused, unresolvable, unreachable.
    Connect(ConnectError),
    /// `--nick` is not a valid nick (checked before connecting).
    BadNick(String),
    /// Reading from or writing to the connection failed.
    Io(io::Error),
    /// A thread could not be started.
    Spawn(io::Error),
    /// The connection opened but no line came within the welcome timeout:
    /// not a protocol v1 server, or one that is stuck.
    NoWelcome(Duration),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => e.fmt(f),
            ClientError::BadNick(text) => write!(f, "--nick: {text}"),
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::Spawn(e) => write!(f, "cannot start a thread: {e}"),
            ClientError::NoWelcome(t) => write!(
                f,
                "connected, but no WELCOME within {} ms: is this a tcphub server? \
                 (--welcome-timeout-ms waits longer)",
                t.as_millis()
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// Runs one client session: connects, sends `--nick`, then copies `input`
/// lines to the hub and hub lines to `output` until one of the ends listed in
/// the module docs. Returns once the hub's side is done.
///
/// The `stdin-to-hub` thread is *not* joined: when the session ends because
/// of the hub (`BYE`, close), that thread may be blocked reading a terminal
/// that will never send anything, and no portable call can wake it. The
/// process exits right after anyway.
pub fn run<I, O>(options: &ClientOptions, input: I, output: O) -> Result<ClientEnd, ClientError>
where
    I: Read + Send + 'static,
    O: Write + Send + 'static,
{
    if let Some(nick) = &options.nick {
        client_line::check_nick(nick).map_err(|r| ClientError::BadNick(r.text))?;
    }
    let mut socket = hub_connection::connect(&options.addr).map_err(ClientError::Connect)?;
    debug!("connected to {}", options.addr);
    if let Some(nick) = &options.nick {
        socket
            .write_all(format!("/nick {nick}\n").as_bytes())
            .map_err(ClientError::Io)?;
    }
    let reading = socket.try_clone().map_err(ClientError::Io)?;
    let input_done = Arc::new(AtomicBool::new(false));

    let done = input_done.clone();
    thread::Builder::new()
        .name("stdin-to-hub".into())
        .spawn(move || copy_input(input, socket, &done))
        .map_err(ClientError::Spawn)?;

    let show = if options.pretty {
        Show::Pretty
    } else if options.raw {
        Show::Raw
    } else {
        Show::Wire
    };
    let printer = thread::Builder::new()
        .name("hub-to-stdout".into())
        .spawn({
            let wait = options.welcome_timeout;
            move || copy_output(reading, output, show, wait)
        })
        .map_err(ClientError::Spawn)?;
    let end = match printer.join() {
        Ok(end) => end?,
        Err(_) => {
            return Err(ClientError::Io(io::Error::other(
                "the hub-to-stdout thread panicked",
            )));
        }
    };
    Ok(match end {
        ClientEnd::HubClosed if input_done.load(Ordering::SeqCst) => ClientEnd::InputDone,
        end => end,
    })
}

/// How much of standard input one `read()` takes: a long line goes out in
/// pieces of this size, never gathered whole in memory.
const INPUT_CHUNK: usize = 64 * 1024;

/// The `stdin-to-hub` thread: input to the socket, then a half-close.
///
/// Bytes are copied as they come, not line by line: a terminal hands over a
/// line at a time anyway, and a pipe with a gigabyte and no newline is
/// streamed in [`INPUT_CHUNK`]s (the hub refuses the line as too long, but
/// this process never holds it). Bytes, not a `String`: invalid UTF-8 is the
/// hub's to refuse (`ERR bad-utf8`), not ours to hide. If the input does not
/// end with a newline, one is added, so the last line is a line.
fn copy_input(mut input: impl Read, mut socket: TcpStream, done: &AtomicBool) {
    let mut chunk = vec![0; INPUT_CHUNK];
    let mut at_line_start = true;
    loop {
        // Blocks until a line is typed, a pipe has bytes, or input ends.
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                debug!("reading input failed: {e}");
                break;
            }
        };
        at_line_start = chunk[n - 1] == b'\n';
        if let Err(e) = socket.write_all(&chunk[..n]) {
            // The hub is gone; the other thread will see it and stop.
            debug!("writing to the hub failed: {e}");
            return;
        }
    }
    if !at_line_start && socket.write_all(b"\n").is_err() {
        return;
    }
    debug!("input ended: half-closing the connection");
    done.store(true, Ordering::SeqCst);
    // "No more lines from me": the hub answers what it has, then closes.
    let _ = socket.shutdown(Shutdown::Write);
}

/// How `hub-to-stdout` shows a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    /// As on the wire, control characters escaped.
    Wire,
    /// Worded for people, control characters escaped.
    Pretty,
    /// The bytes as they came.
    Raw,
}

/// The `hub-to-stdout` thread: socket lines to the output until the end.
fn copy_output(
    socket: TcpStream,
    mut output: impl Write,
    show: Show,
    welcome_timeout: Duration,
) -> Result<ClientEnd, ClientError> {
    // Only the first line is timed: after WELCOME, silence is normal.
    socket
        .set_read_timeout(Some(welcome_timeout.max(Duration::from_millis(1))))
        .map_err(ClientError::Io)?;
    let mut lines = LineReader::new(socket.try_clone().map_err(ClientError::Io)?);
    let mut first = true;
    loop {
        let bytes = match lines.read_line_bytes().map_err(ClientError::Io)? {
            Received::Line(bytes) => bytes,
            Received::TimedOut if first => return Err(ClientError::NoWelcome(welcome_timeout)),
            Received::Closed | Received::TimedOut => return Ok(ClientEnd::HubClosed),
        };
        if first {
            socket.set_read_timeout(None).map_err(ClientError::Io)?;
        }
        let line = String::from_utf8_lossy(&bytes);
        let written = match show {
            Show::Raw => output
                .write_all(&bytes)
                .and_then(|()| output.write_all(b"\n")),
            Show::Wire => writeln!(output, "{}", escape(&line)),
            Show::Pretty => writeln!(output, "{}", escape(&pretty::render(&line))),
        };
        if written.and_then(|()| output.flush()).is_err() {
            return Ok(ClientEnd::OutputClosed);
        }
        match ServerLine::parse(&line) {
            Some(ServerLine::Bye) => return Ok(ClientEnd::Bye),
            Some(ServerLine::Err { code, text }) if first && code == ErrorCode::ServerFull => {
                return Ok(ClientEnd::Refused(escape(text)));
            }
            _ => {}
        }
        first = false;
    }
}

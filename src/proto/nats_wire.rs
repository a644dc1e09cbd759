//! The NATS core client protocol, as bytes in and out, with no IO.
//!
//! NATS (<https://docs.nats.io/reference/reference-protocols/nats-protocol>)
//! is a line protocol much like ours: a *control line* names an operation
//! and its arguments, ends in `\r\n`, and one operation, `MSG`, is followed
//! by a payload whose length the control line gave. What a client reads:
//!
//! ```text
//! INFO {"server_id":"N...","max_payload":1048576,...}   once on connect, maybe again later
//! MSG <subject> <sid> [reply-to] <#bytes>\r\n<payload>\r\n
//! PING | PONG | +OK | -ERR '<text>'
//! ```
//!
//! and what it writes: `CONNECT {json}`, `PUB <subject> [reply-to] <#bytes>`
//! plus payload, `SUB <subject> [queue] <sid>`, `UNSUB <sid> [max]`, `PING`,
//! `PONG`. [`NatsParser`] is a pull parser like the framer
//! (`src/proto/framing.rs`): [`NatsParser::push`] what `read()` returned,
//! then take [`ServerOp`]s out with [`NatsParser::next_op`] until it says
//! `None`. The `encode_*` functions append the client's operations to a
//! buffer the caller writes.
//!
//! ## The rules, and where they come from
//!
//! Checked against nats-server's `server/parser.go` and nats.go's
//! `parser.go` (the reference server and client):
//!
//! - Operation names are case-insensitive (both parsers match `'M', 'm'`).
//! - Arguments are separated by one or more spaces or tabs (both).
//! - A control line ends at `\n`; a `\r` just before it is dropped. A bare
//!   `\n` is accepted because both reference parsers accept it: they act
//!   on `\n` and only remember a `\r` to cut it off.
//! - The payload of a `MSG` must be followed by exactly `\r\n`. nats.go
//!   skips anything up to the next `\n` there; nats-server refuses anything
//!   but `\r\n` (its `MSG_END_R`/`MSG_END_N` states). We follow the server:
//!   a wrong byte there means the length did not match the payload, and
//!   whatever we parsed next would be garbage.
//! - A control line longer than [`MAX_CONTROL_LINE`] is an error (the
//!   server's `max_control_line` defaults to 4096 too, and nats.go's scratch
//!   buffer is that size): that is what keeps our memory bounded while a
//!   line without `\n` trickles in.
//! - A payload longer than `max_payload` (from `INFO`) is an error, as in
//!   the server (`size > maxPayload`); exactly `max_payload` is fine.
//! - Numbers (sid, length) are decimal digits only, and must fit: nats.go
//!   returns -1 for a non-digit and silently wraps on overflow; we refuse
//!   both, since a wrapped length would desynchronise the stream.
//! - `-ERR 'text'`: spaces and the quotes around the text are removed, as
//!   nats.go's `normalizeErr` does. The server writes `-ERR '%s'`.
//! - `HMSG` (a message with headers) is an [`NatsWireError::UnknownOp`]:
//!   we say `"headers":false` in `CONNECT`, so a server never sends one.
//! - We are a little stricter than nats.go where a real server never sends
//!   anything else: `PING`, `PONG` and `+OK` take no arguments (nats.go
//!   ignores whatever follows them up to `\n`), and an op must be a whole
//!   word (`PINGX` is unknown, not a `PING`).
//!
//! After an error the parser stays failed: every later `next_op` returns
//! the same error and pushed bytes are dropped, because the only right
//! thing to do with a NATS connection that sent garbage is to close it.

use std::fmt;

/// The largest payload a server accepts unless its `INFO` says otherwise
/// (nats-server's default `max_payload`, 1 MiB).
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// The longest control line (without its `\r\n`) read or written: the
/// server's default `max_control_line`. It bounds what an unfinished line
/// can make us hold.
pub const MAX_CONTROL_LINE: usize = 4096;

/// How deeply an `INFO`'s JSON may nest (objects and arrays we skip): a
/// bound, so a hostile line of `[[[[...` cannot exhaust the stack.
pub const MAX_JSON_DEPTH: usize = 32;

/// What the server told us in `INFO` (the fields we use; unknown fields are
/// ignored, so newer servers with more fields still parse).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerInfo {
    /// The server's unique id (a node of a cluster is told apart by it).
    pub server_id: String,
    /// Its configured name (defaults to the id on the server side).
    pub server_name: String,
    /// nats-server's version, e.g. `2.9.20`.
    pub version: String,
    /// The largest payload it accepts; [`DEFAULT_MAX_PAYLOAD`] if `INFO`
    /// did not say (a parsed `INFO` never leaves this 0 unless the server
    /// said 0).
    pub max_payload: usize,
    /// True when `CONNECT` must carry credentials.
    pub auth_required: bool,
    /// The server supports headers (`HMSG`); we do not use them.
    pub headers: bool,
    /// Other cluster members a client may connect to (`host:port`), learnt
    /// from the server for failover.
    pub connect_urls: Vec<String>,
    /// The protocol version the server speaks (1 allows async `INFO`).
    pub proto: u32,
}

/// One operation from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// The server's description of itself: first thing on a connection,
    /// and again later when the cluster changes.
    Info(ServerInfo),
    /// A message on a subject we subscribed to with `sid`.
    Msg {
        /// The subject it was published on (never a wildcard).
        subject: String,
        /// Which of our `SUB`s matched: the sid we gave in [`encode_sub`].
        sid: u64,
        /// Where the publisher wants an answer, if anywhere.
        reply: Option<String>,
        /// Any bytes, `\r\n` included: the length said where it ends.
        payload: Vec<u8>,
    },
    /// The server asks if we are alive: answer with [`encode_pong`].
    Ping,
    /// The answer to our `PING`.
    Pong,
    /// Acknowledges an operation when `verbose` is on.
    Ok,
    /// The server reports an error (the text without its quotes); most
    /// errors are followed by the server closing the connection.
    Err(String),
}

/// Why bytes from the server could not be parsed (the connection must be
/// dropped: there is no way to find the next operation in the stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsWireError {
    /// The control line does not start with an operation we know.
    UnknownOp(String),
    /// A known operation with missing, extra or malformed arguments.
    BadArgs(String),
    /// A control line longer than [`MAX_CONTROL_LINE`].
    ControlLineTooLong,
    /// A `MSG` announced `len` bytes of payload, more than `max`
    /// (`max_payload`): refused before a byte of it is held.
    PayloadTooLong { len: usize, max: usize },
    /// The payload was not followed by `\r\n`: its length was a lie.
    BadPayloadEnd,
    /// `INFO`'s JSON could not be read (or a field we use has a bad type).
    BadInfo(String),
}

impl fmt::Display for NatsWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsWireError::UnknownOp(op) => write!(f, "unknown NATS operation {op:?}"),
            NatsWireError::BadArgs(why) => write!(f, "bad NATS arguments: {why}"),
            NatsWireError::ControlLineTooLong => {
                write!(f, "NATS control line longer than {MAX_CONTROL_LINE} bytes")
            }
            NatsWireError::PayloadTooLong { len, max } => {
                write!(f, "NATS payload of {len} bytes, over max_payload {max}")
            }
            NatsWireError::BadPayloadEnd => write!(f, "NATS payload not followed by \\r\\n"),
            NatsWireError::BadInfo(why) => write!(f, "bad NATS INFO: {why}"),
        }
    }
}

impl std::error::Error for NatsWireError {}

/// The head of a `MSG` whose payload has not fully arrived yet.
#[derive(Debug)]
struct MsgHead {
    subject: String,
    sid: u64,
    reply: Option<String>,
    len: usize,
}

/// What one control line turned out to be.
enum Control {
    /// A whole operation.
    Op(ServerOp),
    /// A `MSG`: its payload comes next.
    Head(MsgHead),
}

/// Incremental parser: push whatever `read()` returned, pull ops.
///
/// It holds at most one unfinished control line (<= [`MAX_CONTROL_LINE`] +
/// 1 bytes) or one unfinished message (<= `max_payload` + 2 bytes), plus
/// whatever was pushed and not pulled yet.
#[derive(Debug)]
pub struct NatsParser {
    max_payload: usize,
    /// Unparsed bytes are `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// `buf[start..scanned]` holds no `\n`: a line that trickles in byte by
    /// byte is searched once, not once per byte.
    scanned: usize,
    /// A `MSG` waiting for its payload.
    pending: Option<MsgHead>,
    /// Set by the first error; the parser is dead after it.
    failed: Option<NatsWireError>,
}

impl NatsParser {
    /// A parser that refuses payloads over `max_payload` (use
    /// [`DEFAULT_MAX_PAYLOAD`] until the server's `INFO` arrives).
    pub fn new(max_payload: usize) -> Self {
        NatsParser {
            max_payload,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            pending: None,
            failed: None,
        }
    }

    /// Changes the payload limit: call it with the `max_payload` of each
    /// `INFO`. A `MSG` already announced keeps the limit it was checked
    /// against.
    pub fn set_max_payload(&mut self, max: usize) {
        self.max_payload = max;
    }

    /// The current payload limit.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Appends bytes as read. Ignored once the parser has failed.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next operation, `Ok(None)` when more bytes are needed, or the
    /// error that ends the connection (returned again on every later call).
    pub fn next_op(&mut self) -> Result<Option<ServerOp>, NatsWireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = match self.pending.take() {
            Some(head) => self.payload(head),
            None => self.control_line(),
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
            self.start = 0;
            self.scanned = 0;
        }
        result
    }

    /// Bytes pushed and not yet returned as operations.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True once an error was returned: drop the connection.
    pub fn failed(&self) -> bool {
        self.failed.is_some()
    }

    fn control_line(&mut self) -> Result<Option<ServerOp>, NatsWireError> {
        let Some(at) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
            self.scanned = self.buf.len();
            let tail = &self.buf[self.start..];
            // MAX_CONTROL_LINE + 1 bytes may still be a whole line and its `\r`.
            let fits = tail.len() <= MAX_CONTROL_LINE
                || (tail.len() == MAX_CONTROL_LINE + 1 && tail.ends_with(b"\r"));
            return if fits {
                Ok(None)
            } else {
                Err(NatsWireError::ControlLineTooLong)
            };
        };
        let newline = self.scanned + at;
        let line = &self.buf[self.start..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_CONTROL_LINE {
            return Err(NatsWireError::ControlLineTooLong);
        }
        let control = parse_control(line, self.max_payload)?;
        self.start = newline + 1;
        self.scanned = self.start;
        match control {
            Control::Op(op) => Ok(Some(op)),
            Control::Head(head) => self.payload(head),
        }
    }

    fn payload(&mut self, head: MsgHead) -> Result<Option<ServerOp>, NatsWireError> {
        let have = &self.buf[self.start..];
        // Check the end as soon as its bytes are here, not only when whole.
        let end = have.get(head.len..).unwrap_or_default();
        if !b"\r\n".starts_with(&end[..end.len().min(2)]) {
            return Err(NatsWireError::BadPayloadEnd);
        }
        if end.len() < 2 {
            self.pending = Some(head);
            return Ok(None);
        }
        let payload = have[..head.len].to_vec();
        self.start += head.len + 2;
        self.scanned = self.start;
        Ok(Some(ServerOp::Msg {
            subject: head.subject,
            sid: head.sid,
            reply: head.reply,
            payload,
        }))
    }
}

/// Spaces and tabs separate arguments.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `bytes` without blanks at either end.
fn trim_blanks(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes
        && is_blank(*first)
    {
        bytes = rest;
    }
    while let [rest @ .., last] = bytes
        && is_blank(*last)
    {
        bytes = rest;
    }
    bytes
}

/// At most 64 characters of `bytes`, for an error message.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut short: String = text.chars().take(64).collect();
    if short.len() < text.len() {
        short.push_str("...");
    }
    short
}

/// One control line (without `\r\n`) to an operation.
fn parse_control(line: &[u8], max_payload: usize) -> Result<Control, NatsWireError> {
    let op_end = line.iter().position(|&b| is_blank(b)).unwrap_or(line.len());
    let (op, rest) = line.split_at(op_end);
    let args = trim_blanks(rest);
    let no_args = |op: ServerOp| {
        if args.is_empty() {
            Ok(Control::Op(op))
        } else {
            Err(NatsWireError::BadArgs(format!(
                "{} takes no arguments, got {:?}",
                shown(line),
                shown(args)
            )))
        }
    };
    match op.to_ascii_uppercase().as_slice() {
        b"MSG" => parse_msg_args(args, max_payload).map(Control::Head),
        b"PING" => no_args(ServerOp::Ping),
        b"PONG" => no_args(ServerOp::Pong),
        b"+OK" => no_args(ServerOp::Ok),
        b"-ERR" => Ok(Control::Op(ServerOp::Err(err_text(args)))),
        b"INFO" => parse_info(args).map(|info| Control::Op(ServerOp::Info(info))),
        _ => Err(NatsWireError::UnknownOp(shown(op))),
    }
}

/// `-ERR 'text'` to `text`, as nats.go's `normalizeErr`: the quotes go.
fn err_text(args: &[u8]) -> String {
    let text = args.strip_prefix(b"'").unwrap_or(args);
    let text = text.strip_suffix(b"'").unwrap_or(text);
    String::from_utf8_lossy(text).into_owned()
}

/// `<subject> <sid> [reply-to] <#bytes>`.
fn parse_msg_args(args: &[u8], max_payload: usize) -> Result<MsgHead, NatsWireError> {
    let bad = |why: &str| NatsWireError::BadArgs(format!("MSG {}: {why}", shown(args)));
    let words: Vec<&[u8]> = args
        .split(|&b| is_blank(b))
        .filter(|w| !w.is_empty())
        .collect();
    let (subject, sid, reply, len) = match words.as_slice() {
        [subject, sid, len] => (subject, sid, None, len),
        [subject, sid, reply, len] => (subject, sid, Some(reply), len),
        _ => return Err(bad("expected <subject> <sid> [reply-to] <#bytes>")),
    };
    let subject = wire_subject(subject).ok_or_else(|| bad("bad subject"))?;
    let reply = match reply {
        Some(r) => Some(wire_subject(r).ok_or_else(|| bad("bad reply subject"))?),
        None => None,
    };
    let sid = decimal(sid).ok_or_else(|| bad("sid is not a number"))?;
    let len = decimal(len)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| bad("length is not a number"))?;
    if len > max_payload {
        return Err(NatsWireError::PayloadTooLong {
            len,
            max: max_payload,
        });
    }
    Ok(MsgHead {
        subject,
        sid,
        reply,
        len,
    })
}

/// A subject as the server wrote it: UTF-8, no control bytes.
fn wire_subject(bytes: &[u8]) -> Option<String> {
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    String::from_utf8(bytes.to_vec()).ok()
}

/// Decimal digits only (no sign, no blanks), and no overflow.
fn decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Parses the JSON object of an `INFO` line (its argument, without the
/// `INFO`). Public so a test or a tool can read a captured `INFO`.
pub fn parse_info(json: &[u8]) -> Result<ServerInfo, NatsWireError> {
    let mut reader = Json {
        text: json,
        at: 0,
        depth: 0,
    };
    let info = reader.info().map_err(NatsWireError::BadInfo)?;
    reader.blanks();
    if reader.at != json.len() {
        return Err(NatsWireError::BadInfo(format!(
            "text after the object at byte {}",
            reader.at
        )));
    }
    Ok(info)
}

/// A small JSON reader for `INFO`: reads the fields we use, skips the rest
/// (whatever their type, nested or not). Errors are human text.
struct Json<'a> {
    text: &'a [u8],
    at: usize,
    depth: usize,
}

impl Json<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    /// JSON's whitespace.
    fn blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.blanks();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            self.fail(&format!("expected {:?}", byte as char))
        }
    }

    /// Consumes `word` if it comes next.
    fn word(&mut self, word: &str) -> bool {
        self.blanks();
        let found = self.text[self.at..].starts_with(word.as_bytes());
        if found {
            self.at += word.len();
        }
        found
    }

    /// The `INFO` object, field by field. A `null` leaves a field as it was
    /// (Go's `encoding/json` does the same); the last of duplicate keys wins.
    fn info(&mut self) -> Result<ServerInfo, String> {
        let mut info = ServerInfo {
            max_payload: DEFAULT_MAX_PAYLOAD,
            ..ServerInfo::default()
        };
        self.members(|json, key| {
            if json.word("null") {
                return Ok(());
            }
            match key {
                "server_id" => info.server_id = json.string()?,
                "server_name" => info.server_name = json.string()?,
                "version" => info.version = json.string()?,
                "max_payload" => info.max_payload = json.integer()?,
                "auth_required" => info.auth_required = json.boolean()?,
                "headers" => info.headers = json.boolean()?,
                "connect_urls" => info.connect_urls = json.strings()?,
                "proto" => {
                    info.proto = json
                        .integer()?
                        .try_into()
                        .or_else(|_| json.fail("proto too large"))?
                }
                _ => json.skip()?,
            }
            Ok(())
        })?;
        Ok(info)
    }

    /// `{ "key": value, ... }`, calling `field` to read each value.
    fn members(
        &mut self,
        mut field: impl FnMut(&mut Self, &str) -> Result<(), String>,
    ) -> Result<(), String> {
        self.nest()?;
        self.expect(b'{')?;
        self.blanks();
        if self.peek() == Some(b'}') {
            self.at += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            self.blanks();
            field(self, &key)?;
            self.blanks();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => break,
                _ => return self.fail("expected ',' or '}'"),
            }
        }
        self.at += 1;
        self.depth -= 1;
        Ok(())
    }

    /// One level deeper, refused past [`MAX_JSON_DEPTH`].
    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_JSON_DEPTH {
            return self.fail("nested too deeply");
        }
        Ok(())
    }

    /// `[ value, ... ]`, calling `item` for each value.
    fn elements(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.nest()?;
        self.expect(b'[')?;
        self.blanks();
        if self.peek() == Some(b']') {
            self.at += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.blanks();
            item(self)?;
            self.blanks();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => break,
                _ => return self.fail("expected ',' or ']'"),
            }
        }
        self.at += 1;
        self.depth -= 1;
        Ok(())
    }

    /// An array of strings (`connect_urls`).
    fn strings(&mut self) -> Result<Vec<String>, String> {
        let mut all = Vec::new();
        self.elements(|json| {
            all.push(json.string()?);
            Ok(())
        })?;
        Ok(all)
    }

    fn boolean(&mut self) -> Result<bool, String> {
        if self.word("true") {
            Ok(true)
        } else if self.word("false") {
            Ok(false)
        } else {
            self.fail("expected true or false")
        }
    }

    /// A JSON number that is a non-negative integer (`1.0`, `-1`, `1e3` are
    /// refused, as Go refuses them for an integer field).
    fn integer(&mut self) -> Result<usize, String> {
        let number = self.number()?;
        let value = decimal(number.as_bytes()).and_then(|n| usize::try_from(n).ok());
        value.map_or_else(|| self.fail("expected a non-negative integer"), Ok)
    }

    /// Any JSON number, as written: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<String, String> {
        self.blanks();
        let begin = self.at;
        let digits = |json: &mut Self| {
            let from = json.at;
            while json.peek().is_some_and(|b| b.is_ascii_digit()) {
                json.at += 1;
            }
            json.at - from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let first = self.peek();
        let whole = digits(self);
        if whole == 0 || (first == Some(b'0') && whole > 1) {
            return self.fail("bad number");
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return self.fail("bad fraction");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return self.fail("bad exponent");
            }
        }
        Ok(String::from_utf8_lossy(&self.text[begin..self.at]).into_owned())
    }

    /// A string literal, escapes decoded.
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return self.fail("unterminated string");
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let c = self.escape()?;
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                0..0x20 => return self.fail("control character in a string"),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).or_else(|_| self.fail("string is not UTF-8"))
    }

    /// The character of an escape (the `\` is read). A lone surrogate
    /// becomes U+FFFD, as in Go's `encoding/json`.
    fn escape(&mut self) -> Result<char, String> {
        let Some(b) = self.peek() else {
            return self.fail("unterminated escape");
        };
        self.at += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                if (0xD800..0xDC00).contains(&high) && self.text[self.at..].starts_with(b"\\u") {
                    let save = self.at;
                    self.at += 2;
                    let low = self.hex4()?;
                    if (0xDC00..0xE000).contains(&low) {
                        let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                        return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
                    }
                    self.at = save;
                }
                char::from_u32(high).unwrap_or('\u{FFFD}')
            }
            _ => return self.fail("bad escape"),
        })
    }

    /// Four hex digits of `\u`.
    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.text.get(self.at..self.at + 4);
        let value = digits
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|d| u32::from_str_radix(d, 16).ok());
        let Some(value) = value else {
            return self.fail("bad \\u escape");
        };
        self.at += 4;
        Ok(value)
    }

    /// Any value, read and thrown away (a field we do not use).
    fn skip(&mut self) -> Result<(), String> {
        self.blanks();
        match self.peek() {
            Some(b'{') => self.members(|json, _| json.skip()),
            Some(b'[') => self.elements(|json| json.skip()),
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            _ if self.word("true") || self.word("false") || self.word("null") => Ok(()),
            _ => self.fail("expected a value"),
        }
    }
}

/// Why the client could not encode an operation: a caller's mistake,
/// refused before it reaches the server (which would close the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The subject (or reply subject, or queue group) breaks NATS' rules.
    BadSubject(String),
    /// The payload is `len` bytes, over the server's `max_payload` (`max`):
    /// the server would close the connection for it.
    PayloadTooLong { len: usize, max: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BadSubject(why) => write!(f, "bad NATS subject: {why}"),
            EncodeError::PayloadTooLong { len, max } => {
                write!(
                    f,
                    "payload of {len} bytes, over the server's max_payload {max}"
                )
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Checks a subject we publish to or subscribe to: tokens separated by
/// `.`, none empty, no whitespace or control bytes. With
/// `wildcards_allowed` (subscribing) a token may be `*` (any one token) and
/// the last token may be `>` (one or more tokens); publishing allows no
/// wildcard at all. A `*` or `>` inside a longer token is refused too: the
/// server would take it literally, which is never what a student meant.
pub fn check_subject(subject: &str, wildcards_allowed: bool) -> Result<(), EncodeError> {
    let bad = |why: &str| Err(EncodeError::BadSubject(format!("{subject:?}: {why}")));
    if subject.is_empty() {
        return bad("empty");
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("whitespace or a control character");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        match *token {
            "" => return bad("empty token"),
            "*" if wildcards_allowed => {}
            ">" if wildcards_allowed && last => {}
            ">" if wildcards_allowed => return bad("'>' must be the last token"),
            "*" | ">" => return bad("wildcards are only for subscribing"),
            t if t.contains(['*', '>']) => return bad("'*' and '>' must be whole tokens"),
            _ => {}
        }
    }
    Ok(())
}

/// A queue group name: one word, no whitespace or control characters.
fn check_queue(queue: &str) -> Result<(), EncodeError> {
    if queue.is_empty() || queue.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EncodeError::BadSubject(format!("queue group {queue:?}")));
    }
    Ok(())
}

/// Refuses a control line the server would refuse as too long.
fn check_line_length(line_len: usize) -> Result<(), EncodeError> {
    if line_len > MAX_CONTROL_LINE {
        return Err(EncodeError::BadSubject(format!(
            "control line of {line_len} bytes, over {MAX_CONTROL_LINE}"
        )));
    }
    Ok(())
}

/// Appends `s` as a JSON string literal, quotes included (the escaper lives
/// here because proto imports nothing outside proto).
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

/// What we say in `CONNECT`.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Shown by the server's monitoring (`connz`): say which hub we are.
    pub name: String,
    /// Credentials when `INFO` says `auth_required`: a user...
    pub user: Option<String>,
    /// ...and its password...
    pub pass: Option<String>,
    /// ...or a token.
    pub auth_token: Option<String>,
    /// Do not send us our own publications back (a hub must never see its
    /// own lines twice).
    pub no_echo: bool,
    /// Ask for `+OK` after every operation (off: it only costs bytes).
    pub verbose: bool,
    /// Ask the server to check our subjects strictly.
    pub pedantic: bool,
}

/// `CONNECT {json}\r\n`: who we are and what we want. `lang` is `rust`,
/// `protocol` 1 (we understand `INFO` sent after the first), `headers`
/// false (so no `HMSG` ever comes), `echo` false when `no_echo`.
pub fn encode_connect(opts: &ConnectOptions, out: &mut Vec<u8>) {
    let flag = |b: bool| if b { "true" } else { "false" };
    out.extend_from_slice(b"CONNECT {\"verbose\":");
    out.extend_from_slice(flag(opts.verbose).as_bytes());
    out.extend_from_slice(b",\"pedantic\":");
    out.extend_from_slice(flag(opts.pedantic).as_bytes());
    out.extend_from_slice(b",\"tls_required\":false");
    let secrets = [
        ("user", &opts.user),
        ("pass", &opts.pass),
        ("auth_token", &opts.auth_token),
    ];
    for (key, value) in secrets {
        if let Some(value) = value {
            out.extend_from_slice(format!(",\"{key}\":").as_bytes());
            push_json_string(out, value);
        }
    }
    out.extend_from_slice(b",\"name\":");
    push_json_string(out, &opts.name);
    out.extend_from_slice(b",\"lang\":\"rust\",\"version\":");
    push_json_string(out, env!("CARGO_PKG_VERSION"));
    out.extend_from_slice(b",\"protocol\":1,\"echo\":");
    out.extend_from_slice(flag(!opts.no_echo).as_bytes());
    out.extend_from_slice(b",\"headers\":false}\r\n");
}

/// `PUB <subject> [reply-to] <#bytes>\r\n<payload>\r\n`. The subject and
/// reply are checked (no wildcards) and the payload against the server's
/// `max_payload`, so a mistake is ours to report, not a dropped connection.
/// Nothing is appended on an error.
pub fn encode_pub(
    subject: &str,
    reply: Option<&str>,
    payload: &[u8],
    max_payload: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_subject(subject, false)?;
    if let Some(reply) = reply {
        check_subject(reply, false)?;
    }
    if payload.len() > max_payload {
        return Err(EncodeError::PayloadTooLong {
            len: payload.len(),
            max: max_payload,
        });
    }
    let line = match reply {
        Some(reply) => format!("PUB {subject} {reply} {}", payload.len()),
        None => format!("PUB {subject} {}", payload.len()),
    };
    check_line_length(line.len())?;
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// `SUB <subject> [queue] <sid>\r\n`: messages on `subject` (wildcards
/// allowed) come back as `MSG`s carrying `sid`. Nothing is appended on an
/// error.
pub fn encode_sub(
    subject: &str,
    queue: Option<&str>,
    sid: u64,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_subject(subject, true)?;
    if let Some(queue) = queue {
        check_queue(queue)?;
    }
    let line = match queue {
        Some(queue) => format!("SUB {subject} {queue} {sid}"),
        None => format!("SUB {subject} {sid}"),
    };
    check_line_length(line.len())?;
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// `UNSUB <sid> [max_msgs]\r\n`: stop now, or after `max_msgs` more.
pub fn encode_unsub(sid: u64, max_msgs: Option<u64>, out: &mut Vec<u8>) {
    let line = match max_msgs {
        Some(max) => format!("UNSUB {sid} {max}\r\n"),
        None => format!("UNSUB {sid}\r\n"),
    };
    out.extend_from_slice(line.as_bytes());
}

/// `PING\r\n`: are you there? The server answers `PONG`; no answer in
/// time means a dead connection.
pub fn encode_ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PING\r\n");
}

/// `PONG\r\n`: the answer to the server's `PING` (without it the server
/// closes us as stale).
pub fn encode_pong(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PONG\r\n");
}

/// The port a `nats://` URL means when it names none.
pub const DEFAULT_PORT: u16 = 4222;

/// One server of `--nats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsUrl {
    /// A name or an address; an IPv6 address without its brackets.
    pub host: String,
    /// [`DEFAULT_PORT`] when the URL names none.
    pub port: u16,
    /// `user` of `nats://user:pass@host`. A user without a password
    /// (`nats://secret@host`) is how NATS URLs carry a *token*: nats.go
    /// sends it as `auth_token`, and so should the caller.
    pub user: Option<String>,
    /// The password of `user:pass@`, `%XX` decoded.
    pub pass: Option<String>,
}

/// Parses the comma-separated `nats://[user[:pass]@]host[:port]` list of
/// `--nats`; the `nats://` may be left out, the port defaults to 4222,
/// `%XX` in user and password is decoded (so a password may hold `@`).
/// Other schemes (`tls://`, `ws://`) are refused: this client speaks plain
/// TCP only.
pub fn parse_urls(list: &str) -> Result<Vec<NatsUrl>, String> {
    if list.trim().is_empty() {
        return Err("no NATS server given".to_string());
    }
    list.split(',').map(|item| parse_url(item.trim())).collect()
}

/// One URL of the list.
fn parse_url(url: &str) -> Result<NatsUrl, String> {
    let bad = |why: &str| Err(format!("bad NATS URL {url:?}: {why}"));
    if url.is_empty() {
        return bad("empty entry in the list");
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("nats") => rest,
        Some(_) => return bad("only nats:// is supported"),
        None => url,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) || rest.contains(char::is_whitespace) {
        return bad("a URL here is only [user:pass@]host[:port]");
    }
    let (user, pass, hostport) = match rest.rsplit_once('@') {
        Some((auth, hostport)) => {
            let (user, pass) = match auth.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (auth, None),
            };
            let Some(user) = percent_decode(user).filter(|u| !u.is_empty()) else {
                return bad("bad or empty user");
            };
            let pass = match pass.map(percent_decode) {
                Some(None) => return bad("bad %-escape in the password"),
                Some(Some(pass)) => Some(pass),
                None => None,
            };
            (Some(user), pass, hostport)
        }
        None => (None, None, rest),
    };
    let (host, port) =
        split_host_port(hostport).map_err(|why| format!("bad NATS URL {url:?}: {why}"))?;
    Ok(NatsUrl {
        host,
        port,
        user,
        pass,
    })
}

/// `host[:port]` or `[v6]:port`.
fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err("unclosed '['".to_string());
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err("text after ']'".to_string()),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host.contains(['[', ']', '@']) {
        return Err("bad or empty host".to_string());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match decimal(p.as_bytes()).and_then(|n| u16::try_from(n).ok()) {
            Some(n) if n > 0 => n,
            _ => return Err(format!("bad port {p:?}")),
        },
    };
    Ok((host.to_string(), port))
}

/// `%XX` decoded; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(bytes: &[u8]) -> Result<Vec<ServerOp>, NatsWireError> {
        let mut parser = NatsParser::new(DEFAULT_MAX_PAYLOAD);
        parser.push(bytes);
        let mut out = Vec::new();
        while let Some(op) = parser.next_op()? {
            out.push(op);
        }
        Ok(out)
    }

    #[test]
    fn a_msg_and_a_ping() {
        let got = ops(b"MSG a.b 7 5\r\nhello\r\nPING\r\n").unwrap();
        assert_eq!(
            got,
            vec![
                ServerOp::Msg {
                    subject: "a.b".into(),
                    sid: 7,
                    reply: None,
                    payload: b"hello".to_vec()
                },
                ServerOp::Ping
            ]
        );
    }

    #[test]
    fn info_skips_what_it_does_not_know() {
        let info = parse_info(
            br#"{"server_id":"X","x":{"a":[1,2,{"b":null}]},"max_payload":64,"connect_urls":["a:1"],"proto":1,"headers":true}"#,
        )
        .unwrap();
        assert_eq!(info.server_id, "X");
        assert_eq!(info.max_payload, 64);
        assert_eq!(info.connect_urls, vec!["a:1".to_string()]);
        assert!(info.headers);
    }

    #[test]
    fn err_loses_its_quotes() {
        assert_eq!(
            ops(b"-ERR 'Unknown Protocol Operation'\r\n").unwrap(),
            vec![ServerOp::Err("Unknown Protocol Operation".into())]
        );
    }
}

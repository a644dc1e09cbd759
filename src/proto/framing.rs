//! Turning a byte stream into lines, with a hard limit on line length.
//!
//! TCP delivers bytes, not messages: one `write` by a client may arrive as
//! two `read`s, and two writes may arrive as one. The framer is the piece that
//! does not care. It is a *pull* API, like h11's `receive_data` /
//! `next_event`:
//!
//! 1. `read()` straight into [`LineFramer::spare`] (no copy), then tell the
//!    framer how many bytes came with [`LineFramer::filled`];
//! 2. take complete lines out with [`LineFramer::next_frame`] (raw bytes,
//!    for clients) or [`LineFramer::next_inbound`] (parsed, for servers)
//!    until it says `None`; the unfinished tail stays for the next read.
//!
//! Because the caller pulls, it may do anything between two lines: the
//! threaded hub blocks handing a line to its channel, the async twin
//! `.await`s. Both run exactly this code.
//!
//! It is also the reason a peer cannot grow our memory without bound: an
//! unfinished line is never kept past `max_line` (+1 for a possible `\r`).
//! Past that the line is reported as [`Frame::TooLong`] once, and the rest of
//! it is thrown away as it arrives, until its `\n`.
//!
//! ## telnet
//!
//! `telnet` is a fine client for a line protocol, until it switches to
//! character mode: then it sends option negotiation (`IAC DO ...`,
//! `IAC WILL ...`, `IAC SB ... IAC SE`) among the text, and ends a line
//! with `\r\0` instead of `\r\n`. But a client that is *not* telnet may
//! send a 0xFF byte too, as broken text, and its line must then be refused
//! (`ERR bad-utf8`), not passed on with bytes removed. So telnet handling,
//! when turned on with [`LineFramer::telnet`] (the hub's and the async
//! twin's readers of client lines do; links between hubs and clients
//! reading a server's lines do not), is decided per connection, once, by
//! its first two bytes: a telnet in character mode negotiates before it
//! sends text, so a connection is a telnet one only if it opens with `IAC`
//! followed by `WILL`/`WONT`/`DO`/`DONT`/`SB`. Every other connection is
//! raw: all its bytes are data, 0xFF included. On a telnet connection the
//! framer:
//!
//! - removes telnet commands as the bytes arrive, before any framing: `IAC`
//!   (0xFF) with `DO`/`DONT`/`WILL`/`WONT` and an option byte, `IAC SB` up
//!   to `IAC SE`, and the two-byte commands (`IAC NOP`, `IAC IP`, ...).
//!   `IAC IAC` is telnet's way of sending one 0xFF byte; that byte is kept,
//!   and the line it is in is refused as not UTF-8. `IAC` followed by a
//!   byte that is no command (below 240) is kept with that byte, so it is
//!   refused too: only telnet syntax is ever removed.
//! - ends a line at `\r\0` as it does at `\n` (and at `\r\n`). A NUL that
//!   does not follow a `\r` is text, as before.
//!
//! The state of a half-arrived command is a few bits, not bytes, so memory
//! stays bounded however the commands are cut, and a read with no 0xFF in
//! it (every read of an ordinary client) is scanned once and left in place.

use crate::proto::client_line::{Command, Parsed, Refusal, parse_line};
use crate::proto::server_line::ErrorCode;

/// First size of the read buffer. Idle clients never need more, and with
/// thousands of them every byte per client counts.
pub const FIRST_READ_BUFFER: usize = 512;
/// The buffer doubles each time a read fills it, up to this size, so a client
/// that sends a lot gets few, large reads.
pub const MAX_READ_BUFFER: usize = 64 * 1024;

/// One thing the framer found in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole line, without its `\n` and without a `\r` just before it.
    Line(&'a [u8]),
    /// A line went past the limit. Reported once, as soon as it is known;
    /// the rest of the line (up to its `\n`) is discarded.
    TooLong,
}

/// One client line as a server sees it: the frame -> event step that the
/// threaded hub and the async twin share. Empty lines never come out (the
/// contract says ignore them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A well-formed command for the router.
    Command(Command),
    /// A line to answer with `ERR` (too long, bad UTF-8, malformed).
    Refused(Refusal),
}

impl Inbound {
    /// `/quit`: the reader stops here; lines after it in the same read are
    /// ignored, as the contract says.
    pub fn is_quit(&self) -> bool {
        matches!(self, Inbound::Command(Command::Quit))
    }
}

/// Splits a byte stream into lines of at most `max_line` bytes.
#[derive(Debug)]
pub struct LineFramer {
    max_line: usize,
    /// Bytes read and not yet framed are `buffer[start..end]`; the rest of
    /// the buffer is room for the next read.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// `buffer[start..scanned]` is known to hold no `\n`: a line that
    /// trickles in byte by byte is searched once, not once per byte.
    scanned: usize,
    /// True while throwing away the rest of a too-long line.
    discarding: bool,
    /// The last read filled all the room it was given: grow the buffer.
    grow: bool,
    /// Whether this connection speaks telnet, and where we are in a telnet
    /// command if it does.
    telnet: Mode,
}

/// Is this connection a telnet one? Decided once, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Telnet handling was not asked for: every byte is data.
    Off,
    /// Asked for, and nothing has arrived yet.
    Undecided,
    /// The first byte was `IAC`; the next one decides (held in the buffer).
    FirstIac,
    /// The connection did not open with a negotiation: every byte is data,
    /// 0xFF included (its line is `ERR bad-utf8`).
    Raw,
    /// The connection opened with `IAC WILL/WONT/DO/DONT/SB`: a telnet.
    On(Telnet),
}

/// telnet's "interpret as command" byte. Never in valid UTF-8.
const IAC: u8 = 0xFF;
/// `IAC SB` starts a subnegotiation, `IAC SE` ends it.
const SB: u8 = 250;
const SE: u8 = 240;
/// `IAC WILL/WONT/DO/DONT <option>`: option negotiation, three bytes.
const WILL: u8 = 251;
const DONT: u8 = 254;

/// Where the bytes read so far left us in telnet's command syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    /// Ordinary bytes.
    Data,
    /// Just after an `IAC`.
    Iac,
    /// After `IAC WILL` (or `WONT`, `DO`, `DONT`): the option byte is next.
    Option,
    /// Inside `IAC SB ...`: everything is dropped until `IAC SE`.
    Sub,
    /// Inside a subnegotiation, just after an `IAC`.
    SubIac,
}

impl LineFramer {
    pub fn new(max_line: usize) -> Self {
        LineFramer {
            max_line,
            buffer: vec![0; FIRST_READ_BUFFER],
            start: 0,
            end: 0,
            scanned: 0,
            discarding: false,
            grow: false,
            telnet: Mode::Off,
        }
    }

    /// Turns the telnet handling (module docs) on or off; off unless asked.
    /// A server turns it on for its clients' lines.
    pub fn telnet(mut self, on: bool) -> Self {
        self.telnet = if on { Mode::Undecided } else { Mode::Off };
        self
    }

    /// True once the connection has shown itself to be a telnet (it opened
    /// with a negotiation): only then are telnet commands removed and
    /// `\r\0` taken for a line end.
    pub fn is_telnet(&self) -> bool {
        matches!(self.telnet, Mode::On(_))
    }

    /// Bytes held for an unfinished line (never more than `max_line + 1`
    /// once [`LineFramer::next_frame`] has returned `None`).
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// True while part of a line has arrived and its `\n` has not (also
    /// while the rest of a too-long line is being thrown away, or a telnet
    /// command is half read: an `IAC SB` that never ends must not hold a
    /// slot for ever): what `--line-timeout-ms` times. Meaningful once
    /// `next_frame` said `None`.
    pub fn in_line(&self) -> bool {
        let mid_command = matches!(self.telnet, Mode::On(t) if t != Telnet::Data);
        self.discarding || self.end > self.start || mid_command
    }

    /// Where the next `read()` should put its bytes. Never empty.
    ///
    /// Moves an unfinished tail to the front first. Doubles the buffer when
    /// the last read filled it (up to [`MAX_READ_BUFFER`]), or when an
    /// unfinished line fills it (up to what the longest line needs).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.scanned -= self.start;
            self.end -= self.start;
            self.start = 0;
        }
        let cap = if self.end == self.buffer.len() {
            MAX_READ_BUFFER.max(self.max_line + 2)
        } else if self.grow {
            MAX_READ_BUFFER
        } else {
            0
        };
        if self.buffer.len() < cap {
            let grown = (self.buffer.len() * 2).min(cap);
            self.buffer.resize(grown, 0);
        }
        &mut self.buffer[self.end..]
    }

    /// Tells the framer that the last read put `n` bytes into
    /// [`LineFramer::spare`].
    pub fn filled(&mut self, n: usize) {
        self.grow = n > 0 && self.end + n >= self.buffer.len();
        let new_end = (self.end + n).min(self.buffer.len());
        let mut at = self.end;
        // The connection's first bytes decide, once, whether it is a telnet.
        if self.telnet == Mode::Undecided && at < new_end {
            self.telnet = if self.buffer[at] == IAC {
                at += 1; // held as data until the next byte decides
                Mode::FirstIac
            } else {
                Mode::Raw
            };
        }
        if self.telnet == Mode::FirstIac && at < new_end {
            self.telnet = if matches!(self.buffer[at], WILL..=DONT | SB) {
                Mode::On(Telnet::Iac) // the held IAC is removed below
            } else {
                Mode::Raw
            };
        }
        if let Mode::On(state) = &mut self.telnet {
            let old_end = self.end;
            self.end = strip_telnet(state, &mut self.buffer[..new_end], self.start, at);
            // A held IAC (the last byte of the read before) may have been
            // taken out: scan again from where it was.
            if old_end > self.start {
                self.scanned = self.scanned.min(old_end - 1);
            }
        } else {
            self.end = new_end;
        }
    }

    /// The next complete frame in what has been read, or `None` until more
    /// bytes arrive.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        loop {
            let unread = &self.buffer[self.scanned..self.end];
            let found = if self.is_telnet() {
                unread.iter().position(|&b| b == b'\n' || b == 0)
            } else {
                unread.iter().position(|&b| b == b'\n')
            };
            let Some(i) = found else {
                return self.no_newline_yet();
            };
            let at = self.scanned + i;
            // `\n`, or telnet's `\r\0`: the line ends before the `\r`.
            let line_end = if self.buffer[at] == b'\n' {
                at
            } else if at > self.start && self.buffer[at - 1] == b'\r' {
                at - 1
            } else {
                // A NUL in the text: not an end of line; look further.
                self.scanned = at + 1;
                continue;
            };
            let line_start = self.start;
            self.start = at + 1;
            self.scanned = self.start;
            if self.discarding {
                // The end of a too-long line: already reported.
                self.discarding = false;
                continue;
            }
            let line = &self.buffer[line_start..line_end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Some(if line.len() > self.max_line {
                Frame::TooLong
            } else {
                Frame::Line(line)
            });
        }
    }

    /// [`LineFramer::next_frame`] for a server: the next line, parsed.
    pub fn next_inbound(&mut self) -> Option<Inbound> {
        let max_line = self.max_line;
        loop {
            let parsed = match self.next_frame()? {
                Frame::TooLong => Parsed::Refused(too_long(max_line)),
                Frame::Line(line) => parse_line(line),
            };
            match parsed {
                Parsed::Empty => continue,
                Parsed::Command(command) => return Some(Inbound::Command(command)),
                Parsed::Refused(refusal) => return Some(Inbound::Refused(refusal)),
            }
        }
    }

    /// No `\n` in what is buffered: keep the tail, unless it is already too
    /// long. `max_line + 1` bytes may still end well (the extra byte may be
    /// the `\r` of `\r\n`); anything longer cannot.
    fn no_newline_yet(&mut self) -> Option<Frame<'_>> {
        self.scanned = self.end;
        if self.discarding {
            self.throw_away_held();
            return None;
        }
        let held = self.end - self.start;
        let could_still_fit = held <= self.max_line
            || (held == self.max_line + 1 && self.buffer[self.end - 1] == b'\r');
        if could_still_fit {
            return None;
        }
        self.throw_away_held();
        self.discarding = true;
        Some(Frame::TooLong)
    }

    /// Drops the bytes of a too-long line, except (with telnet) a last
    /// `\r`: the `\0` of a `\r\0` that ends the line may be in the next read.
    fn throw_away_held(&mut self) {
        let keep_cr =
            self.is_telnet() && self.end > self.start && self.buffer[self.end - 1] == b'\r';
        self.start = if keep_cr { self.end - 1 } else { self.end };
    }
}

/// Removes telnet commands from `buffer[from..]` (one read's worth), in
/// place, with `state` carried from the read before; returns where the
/// kept bytes end. A read with no `IAC` in it, outside a command, is left
/// as it is: the fast path.
///
/// An `IAC` is kept, as data, until the byte after it shows a command;
/// then it is taken back out (it is the last kept byte, possibly from the
/// read before, but never below `floor`, where the unframed bytes start).
/// So `IAC` followed by a byte that is no command (`\xff` then `\n`, or
/// `\xff` then text) leaves both bytes in the line, which is then refused
/// as not UTF-8: nothing that is not telnet syntax is removed.
fn strip_telnet(state: &mut Telnet, buffer: &mut [u8], floor: usize, from: usize) -> usize {
    let first = match *state {
        Telnet::Data => match buffer[from..].iter().position(|&b| b == IAC) {
            None => return buffer.len(),
            Some(i) => from + i,
        },
        _ => from,
    };
    let mut kept = first;
    for read in first..buffer.len() {
        let b = buffer[read];
        let mut keep = |b: u8| {
            buffer[kept] = b;
            kept += 1;
        };
        // After an `IAC` (kept for now), a command byte: drop the `IAC`.
        let unkeep = |kept: usize| if kept > floor { kept - 1 } else { kept };
        *state = match (*state, b) {
            (Telnet::Data, _) => {
                keep(b);
                if b == IAC { Telnet::Iac } else { Telnet::Data }
            }
            // `IAC IAC`: one data byte 0xFF, the one already kept (not
            // UTF-8: the line is refused).
            (Telnet::Iac, IAC) => Telnet::Data,
            (Telnet::Iac, WILL..=DONT) => {
                kept = unkeep(kept);
                Telnet::Option
            }
            (Telnet::Iac, SB) => {
                kept = unkeep(kept);
                Telnet::Sub
            }
            // The two-byte commands: SE, NOP, DM, BRK, IP, AO, AYT, EC, EL, GA.
            (Telnet::Iac, SE..=249) => {
                kept = unkeep(kept);
                Telnet::Data
            }
            // Not a command: the `IAC` and this byte are both data.
            (Telnet::Iac, _) => {
                keep(b);
                Telnet::Data
            }
            (Telnet::Option, _) => Telnet::Data,
            (Telnet::Sub, IAC) => Telnet::SubIac,
            (Telnet::Sub, _) => Telnet::Sub,
            (Telnet::SubIac, SE) => Telnet::Data,
            // `IAC IAC` inside a subnegotiation is its data: dropped too.
            (Telnet::SubIac, _) => Telnet::Sub,
        };
    }
    kept
}

/// The refusal for a line past `--max-line`.
fn too_long(max_line: usize) -> Refusal {
    Refusal::new(
        ErrorCode::LineTooLong,
        format!("lines are at most {max_line} bytes; the rest of this one is dropped"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames as owned values, for comparing in tests.
    #[derive(Debug, PartialEq, Eq)]
    enum F {
        L(Vec<u8>),
        TooLong,
    }

    fn frames_of(max: usize, pieces: &[&[u8]]) -> Vec<F> {
        frames_with(LineFramer::new(max).telnet(true), pieces)
    }

    /// As [`frames_of`], on a connection that opened with a telnet
    /// negotiation (`IAC DO ECHO`, in a read of its own).
    fn telnet_frames_of(max: usize, pieces: &[&[u8]]) -> Vec<F> {
        let mut all: Vec<&[u8]> = vec![&[0xFF, 253, 1]];
        all.extend_from_slice(pieces);
        frames_of(max, &all)
    }

    fn frames_with(mut framer: LineFramer, pieces: &[&[u8]]) -> Vec<F> {
        let max = framer.max_line;
        let mut out = Vec::new();
        for piece in pieces {
            let mut piece: &[u8] = piece;
            // As a reader does: read what fits into spare(), then pull.
            while !piece.is_empty() {
                let room = framer.spare();
                let n = room.len().min(piece.len());
                room[..n].copy_from_slice(&piece[..n]);
                framer.filled(n);
                piece = &piece[n..];
                while let Some(f) = framer.next_frame() {
                    out.push(match f {
                        Frame::Line(l) => F::L(l.to_vec()),
                        Frame::TooLong => F::TooLong,
                    });
                }
                assert!(framer.buffered() <= max + 1);
            }
        }
        out
    }

    fn l(s: &str) -> F {
        F::L(s.as_bytes().to_vec())
    }

    #[test]
    fn whole_lines_and_crlf() {
        assert_eq!(
            frames_of(100, &[b"a\nbb\r\n\n"]),
            vec![l("a"), l("bb"), l("")]
        );
    }

    #[test]
    fn only_the_last_cr_is_dropped() {
        assert_eq!(frames_of(100, &[b"a\r\r\n\rb\n"]), vec![l("a\r"), l("\rb")]);
    }

    #[test]
    fn any_split_means_the_same() {
        let stream = b"hello\r\n/nick bob\nx\n\n/pub t {\"a\":1}\r\n";
        let whole = frames_of(100, &[stream]);
        // every single split point, and one byte at a time
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(frames_of(100, &[a, b]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames_of(100, &bytes), whole);
    }

    #[test]
    fn limit_counts_content_not_line_ending() {
        // exactly max bytes, with \n or \r\n, in one piece or byte by byte
        for ending in [&b"\n"[..], b"\r\n"] {
            let mut line = b"abcd".to_vec();
            line.extend_from_slice(ending);
            assert_eq!(frames_of(4, &[&line]), vec![l("abcd")]);
            let bytes: Vec<&[u8]> = line.chunks(1).collect();
            assert_eq!(frames_of(4, &bytes), vec![l("abcd")]);
        }
        assert_eq!(frames_of(4, &[b"abcde\n"]), vec![F::TooLong]);
        assert_eq!(frames_of(4, &[b"abcde\r\n"]), vec![F::TooLong]);
        assert_eq!(frames_of(4, &[b"abcd\rx\n"]), vec![F::TooLong]);
    }

    #[test]
    fn too_long_is_reported_once_and_the_rest_discarded() {
        let pieces: Vec<&[u8]> = vec![b"0123", b"456789", b"abcdef", b"gh\nok\n"];
        assert_eq!(frames_of(4, &pieces), vec![F::TooLong, l("ok")]);
        // reported as soon as known, before the newline arrives
        assert_eq!(frames_of(4, &[b"0123456789"]), vec![F::TooLong]);
    }

    #[test]
    fn a_long_line_still_fits_past_the_first_buffer() {
        let long = "x".repeat(3000);
        let stream = format!("{long}\nshort\n");
        let bytes: Vec<&[u8]> = stream.as_bytes().chunks(700).collect();
        assert_eq!(frames_of(4096, &bytes), vec![l(&long), l("short")]);
    }

    #[test]
    fn sixty_four_megabytes_without_newline_keep_memory_bounded() {
        let mut framer = LineFramer::new(4096);
        let mut too_long = 0;
        let mut total = 0;
        while total < 64 * 1024 * 1024 {
            let room = framer.spare();
            room.fill(b'x');
            let n = room.len();
            framer.filled(n);
            total += n;
            while let Some(f) = framer.next_frame() {
                assert_eq!(f, Frame::TooLong);
                too_long += 1;
            }
            assert!(framer.buffered() <= 4097);
            assert!(framer.buffer.len() <= MAX_READ_BUFFER);
        }
        assert_eq!(too_long, 1);
    }

    #[test]
    fn servers_get_parsed_lines_without_the_empty_ones() {
        let mut framer = LineFramer::new(8);
        let mut got = Vec::new();
        for piece in [&b"/ping\n\n/li"[..], b"st\n123456789\n/quit\n"] {
            let room = framer.spare();
            room[..piece.len()].copy_from_slice(piece);
            framer.filled(piece.len());
            while let Some(inbound) = framer.next_inbound() {
                got.push(inbound);
            }
        }
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], Inbound::Command(Command::Ping));
        assert_eq!(got[1], Inbound::Command(Command::List));
        assert!(matches!(&got[2], Inbound::Refused(r) if r.code == ErrorCode::LineTooLong));
        assert!(got[3].is_quit());
    }

    // ---- telnet ------------------------------------------------------

    const IAC: u8 = 0xFF;
    const DO: u8 = 253;
    const WILL: u8 = 251;
    const WONT: u8 = 252;
    const NOP: u8 = 241;

    fn b(s: &str) -> F {
        F::L(s.as_bytes().to_vec())
    }

    /// What a telnet in character mode sends: negotiation at connect, a
    /// subnegotiation (terminal type), lines ended by `\r\0`, and a few
    /// commands in the middle of text.
    fn telnet_stream() -> Vec<u8> {
        let mut s = vec![IAC, DO, 1, IAC, WILL, 3, IAC, WILL, 24, IAC, DO, 3];
        s.extend_from_slice(&[IAC, 250, 24, 0, b'X', b'T', IAC, IAC, b'M', IAC, 240]);
        s.extend_from_slice(b"/nick ann\r\0/pi");
        s.extend_from_slice(&[IAC, NOP]);
        s.extend_from_slice(b"ng\r\0caf\xc3\xa9 ok\r\n");
        s.extend_from_slice(&[IAC, WONT, 1]);
        s.extend_from_slice(b"a\0b\n\r\0x");
        s.extend_from_slice(&[IAC, IAC]);
        s.extend_from_slice(b"y\r\0\r");
        s.extend_from_slice(&[IAC, NOP]);
        s.extend_from_slice(b"\0last\n");
        s
    }

    fn telnet_frames() -> Vec<F> {
        vec![
            b("/nick ann"),
            b("/ping"),
            b("café ok"),
            b("a\0b"),
            b(""),
            F::L(b"x\xffy".to_vec()),
            b(""),
            b("last"),
        ]
    }

    #[test]
    fn telnet_commands_are_removed_and_cr_nul_ends_a_line() {
        assert_eq!(frames_of(100, &[&telnet_stream()]), telnet_frames());
    }

    #[test]
    fn every_split_of_a_telnet_stream_means_the_same() {
        let stream = telnet_stream();
        let whole = telnet_frames();
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames_of(100, &bytes), whole, "byte by byte");
        // Every way of cutting it in two, and in three.
        for i in 0..=stream.len() {
            let (a, rest) = stream.split_at(i);
            assert_eq!(frames_of(100, &[a, rest]), whole, "cut at {i}");
            for j in 0..=rest.len() {
                let (b, c) = rest.split_at(j);
                assert_eq!(frames_of(100, &[a, b, c]), whole, "cuts at {i}, {}", i + j);
            }
        }
    }

    #[test]
    fn a_nul_is_text_unless_it_follows_a_cr() {
        assert_eq!(
            telnet_frames_of(100, &[b"\0a\0\n", b"b\r\n\0c\n"]),
            vec![b("\0a\0"), b("b"), b("\0c")]
        );
        // `\r` in one read, `\0` in the next.
        assert_eq!(
            telnet_frames_of(100, &[b"ab\r", b"\0cd\r", b"\0"]),
            vec![b("ab"), b("cd")]
        );
    }

    #[test]
    fn the_limit_is_the_same_with_cr_nul() {
        let line = b"abcd\r\0";
        assert_eq!(telnet_frames_of(4, &[line]), vec![b("abcd")]);
        let bytes: Vec<&[u8]> = line.chunks(1).collect();
        assert_eq!(telnet_frames_of(4, &bytes), vec![b("abcd")]);
        assert_eq!(
            telnet_frames_of(4, &[b"abcde\r\0ok\r\0"]),
            vec![F::TooLong, b("ok")]
        );
        // The end of a discarded line, its `\r` and `\0` in two reads.
        assert_eq!(
            telnet_frames_of(4, &[b"0123456789\r", b"\0ok\n"]),
            vec![F::TooLong, b("ok")]
        );
        // Negotiation bytes do not count towards the limit.
        let mut padded = vec![IAC, DO, 1, b'a', b'b', IAC, NOP, b'c', b'd'];
        padded.extend_from_slice(&[IAC, WILL, 3, b'\r', 0]);
        assert_eq!(telnet_frames_of(4, &[&padded]), vec![b("abcd")]);
    }

    #[test]
    fn an_endless_subnegotiation_keeps_memory_bounded() {
        let mut framer = LineFramer::new(64).telnet(true);
        let room = framer.spare();
        room[..3].copy_from_slice(&[IAC, 250, 24]);
        framer.filled(3);
        for _ in 0..1000 {
            let room = framer.spare();
            room.fill(b'x');
            let n = room.len();
            framer.filled(n);
            assert_eq!(framer.next_frame(), None);
            assert_eq!(framer.buffered(), 0);
            assert!(framer.in_line(), "timed like an unfinished line");
        }
        let room = framer.spare();
        room[..6].copy_from_slice(&[IAC, 240, b'o', b'k', b'\r', 0]);
        framer.filled(6);
        assert_eq!(framer.next_frame(), Some(Frame::Line(b"ok")));
    }

    #[test]
    fn negotiation_alone_starts_no_line() {
        let mut framer = LineFramer::new(64).telnet(true);
        let room = framer.spare();
        room[..6].copy_from_slice(&[IAC, DO, 1, IAC, WILL, 3]);
        framer.filled(6);
        assert_eq!(framer.next_frame(), None);
        assert!(!framer.in_line(), "no --line-timeout-ms for negotiation");
    }

    #[test]
    fn an_unfinished_subnegotiation_is_timed_like_a_line() {
        // `IAC SB` and then nothing: without this, a peer could hold its
        // slot for ever with two bytes and no line timeout.
        let mut framer = LineFramer::new(64).telnet(true);
        let room = framer.spare();
        room[..3].copy_from_slice(&[IAC, SB, 24]);
        framer.filled(3);
        assert_eq!(framer.next_frame(), None);
        assert!(framer.in_line(), "a half-read command is timed");
        let room = framer.spare();
        room[..2].copy_from_slice(&[IAC, SE]);
        framer.filled(2);
        assert_eq!(framer.next_frame(), None);
        assert!(!framer.in_line(), "the command ended");
    }

    #[test]
    fn with_telnet_off_every_byte_is_kept() {
        let plain = || LineFramer::new(100);
        assert_eq!(
            frames_with(plain(), &[&[b'a', IAC, DO, 1, b'\r', 0, b'\n']]),
            vec![F::L(vec![b'a', IAC, DO, 1, b'\r', 0])]
        );
    }

    /// `stream` framed in one read, and cut in two and in three every way,
    /// always gives `want`.
    fn every_split_gives(stream: &[u8], want: &[F]) {
        for i in 0..=stream.len() {
            let (a, rest) = stream.split_at(i);
            for j in 0..=rest.len() {
                let (b, c) = rest.split_at(j);
                assert_eq!(
                    frames_of(100, &[a, b, c]),
                    want,
                    "{stream:?} cut at {i}, {}",
                    i + j
                );
            }
        }
    }

    /// A raw connection (its first byte is not `IAC`, or `IAC` then no
    /// negotiation) keeps every 0xFF: each such line is then refused as not
    /// UTF-8, never passed on with bytes removed.
    #[test]
    fn on_a_raw_connection_0xff_is_kept_however_it_is_split() {
        let cases: [(&[u8], &[u8]); 3] = [
            (b"\xff\xfe bad bytes\n", b"\xff\xfe bad bytes"),
            (b"\xff\xff\n", b"\xff\xff"),
            (b"x\xff\n", b"x\xff"),
        ];
        for (line, kept) in cases {
            let mut after_text = b"hi\n".to_vec();
            after_text.extend_from_slice(line);
            after_text.extend_from_slice(b"ok\n");
            every_split_gives(&after_text, &[b("hi"), F::L(kept.to_vec()), b("ok")]);
        }
        // As the very first bytes, too, when they are no negotiation.
        every_split_gives(b"\xff\xff\nok\n", &[F::L(b"\xff\xff".to_vec()), b("ok")]);
        every_split_gives(b"\xff\nok\n", &[F::L(b"\xff".to_vec()), b("ok")]);
        every_split_gives(b"\xff x\r\0\n", &[F::L(b"\xff x\r\0".to_vec())]);
    }

    /// On a telnet connection (it opened with a negotiation), telnet syntax
    /// is removed and nothing else: `IAC IAC` is one 0xFF, and `IAC` before
    /// a byte that is no command keeps both.
    #[test]
    fn on_a_telnet_connection_only_telnet_syntax_is_removed() {
        let cases: [(&[u8], &[u8]); 3] = [
            (b"\xff\xfe bad bytes\n", b"bad bytes"), // IAC DONT 32: a command
            (b"\xff\xff\n", b"\xff"),
            (b"x\xff\n", b"x\xff"),
        ];
        for (line, kept) in cases {
            let mut stream = vec![IAC, DO, 1];
            stream.extend_from_slice(line);
            stream.extend_from_slice(b"ok\r\0");
            every_split_gives(&stream, &[F::L(kept.to_vec()), b("ok")]);
        }
    }

    #[test]
    fn ordinary_lines_are_not_moved() {
        // The fast path: a read with no IAC is framed where it was read.
        let mut framer = LineFramer::new(100).telnet(true);
        let room = framer.spare();
        let at = room.as_ptr();
        room[..9].copy_from_slice(b"hi\n/ping\n");
        framer.filled(9);
        match framer.next_frame() {
            Some(Frame::Line(line)) => assert_eq!(line.as_ptr(), at),
            other => panic!("{other:?}"),
        }
    }
}

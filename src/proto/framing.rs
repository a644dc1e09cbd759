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
        }
    }

    /// Bytes held for an unfinished line (never more than `max_line + 1`
    /// once [`LineFramer::next_frame`] has returned `None`).
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// True while part of a line has arrived and its `\n` has not (also
    /// while the rest of a too-long line is being thrown away): what
    /// `--line-timeout-ms` times. Meaningful once `next_frame` said `None`.
    pub fn in_line(&self) -> bool {
        self.discarding || self.end > self.start
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
        self.end = (self.end + n).min(self.buffer.len());
    }

    /// The next complete frame in what has been read, or `None` until more
    /// bytes arrive.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        loop {
            let unread = &self.buffer[self.scanned..self.end];
            let Some(i) = unread.iter().position(|&b| b == b'\n') else {
                return self.no_newline_yet();
            };
            let (line_start, newline) = (self.start, self.scanned + i);
            self.start = newline + 1;
            self.scanned = self.start;
            if self.discarding {
                // The end of a too-long line: already reported.
                self.discarding = false;
                continue;
            }
            let line = &self.buffer[line_start..newline];
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
            self.start = self.end;
            return None;
        }
        let held = self.end - self.start;
        let could_still_fit = held <= self.max_line
            || (held == self.max_line + 1 && self.buffer[self.end - 1] == b'\r');
        if could_still_fit {
            return None;
        }
        self.start = self.end;
        self.discarding = true;
        Some(Frame::TooLong)
    }
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
        let mut framer = LineFramer::new(max);
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
}

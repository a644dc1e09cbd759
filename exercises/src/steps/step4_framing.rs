//! Step 4: lines out of a byte stream, with a bounded buffer.
//!
//! Node: what the lesson leaves as `// handle buffer` in
//! `socket.on('data', buffer => ...)`. A `'data'` event (a `read()` here)
//! is however many bytes happened to arrive: half a line, or ten lines and
//! a bit. The framer keeps the unfinished tail between reads, and refuses
//! to keep more than `max_line` bytes of it, so a client that never sends
//! `\n` cannot use up the server's memory.

use crate::shared::{Frame, Framer};

/// Splits a byte stream into lines of at most `max_line` bytes. No sockets:
/// give it bytes, get frames, so every rule can be tested without a network.
#[derive(Debug)]
pub struct LineFramer {
    max_line: usize,
    /// Bytes of the current, unfinished line (at most `max_line + 1`).
    partial: Vec<u8>,
    /// True while throwing away the rest of a too-long line.
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max_line` bytes (not counting `\n`,
    /// nor a `\r` right before it).
    pub fn new(max_line: usize) -> LineFramer {
        LineFramer {
            max_line,
            partial: Vec::new(),
            discarding: false,
        }
    }

    /// One line's bytes (the `\n` already removed) are complete.
    fn end_line(&mut self, chunk: &[u8], frames: &mut Vec<Frame>) {
        if std::mem::take(&mut self.discarding) {
            return; // the end of a line already reported as too long
        }
        self.partial.extend_from_slice(chunk);
        let line = self.partial.strip_suffix(b"\r").unwrap_or(&self.partial);
        if line.len() > self.max_line {
            frames.push(Frame::TooLong);
        } else {
            frames.push(Frame::Line(line.to_vec()));
        }
        self.partial.clear();
    }

    /// Bytes with no `\n` yet: keep them, unless the line is already too
    /// long. `max_line + 1` bytes may still end well (if the last one is
    /// the `\r` of `\r\n`); more cannot.
    fn keep_tail(&mut self, chunk: &[u8], frames: &mut Vec<Frame>) {
        if self.discarding || chunk.is_empty() {
            return;
        }
        let held = self.partial.len() + chunk.len();
        let may_fit =
            held <= self.max_line || (held == self.max_line + 1 && chunk.last() == Some(&b'\r'));
        if may_fit {
            self.partial.extend_from_slice(chunk);
        } else {
            self.partial.clear();
            self.discarding = true;
            frames.push(Frame::TooLong);
        }
    }
}

impl Framer for LineFramer {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut pieces = bytes.split(|&b| b == b'\n').peekable();
        while let Some(piece) = pieces.next() {
            if pieces.peek().is_some() {
                self.end_line(piece, &mut frames); // a `\n` followed it
            } else {
                self.keep_tail(piece, &mut frames); // the unfinished rest
            }
        }
        frames
    }

    fn buffered(&self) -> usize {
        self.partial.len()
    }
}

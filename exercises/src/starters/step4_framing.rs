//! Step 4: lines out of a byte stream, with a bounded buffer.
//!
//! Node: what the lesson leaves as `// handle buffer` in
//! `socket.on('data', buffer => ...)`. A `'data'` event (a `read()` here)
//! is however many bytes happened to arrive: half a line, or ten lines and
//! a bit. The framer keeps the unfinished tail between reads, and refuses
//! to keep more than `max_line` bytes of it, so a client that never sends
//! `\n` cannot use up the server's memory.
//!
//! Grade it: `cargo test --test grade step4` (no sockets: it feeds your
//! framer every way of cutting a set of streams, so a failure message says
//! exactly which cut went wrong).

// The bodies below are `todo!()`, so parameters and imports look unused
// until you write them. These lints would only be noise while you work;
// delete this line when the step is done to get them back.
#![allow(unused_variables, unused_imports, unused_mut, dead_code)]

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
        todo!("LineFramer {{ max_line, partial: Vec::new(), discarding: false }}")
    }
}

impl Framer for LineFramer {
    /// The rules (docs/protocol.md, "Lines"): a line ends at `\n`; one `\r`
    /// right before it is dropped; a line longer than `max_line` is reported
    /// once as `Frame::TooLong`, as soon as you know (when more than
    /// `max_line + 1` bytes of it are held, or `max_line + 1` that do not
    /// end in `\r`), and the rest of it, up to its `\n`, is thrown away.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        todo!(
            "bytes.split(|&b| b == b'\\n') gives the pieces between newlines: \
         every piece but the last ends a line (partial + piece); the last is \
         the unfinished tail to keep (or to report as TooLong)"
        )
    }

    fn buffered(&self) -> usize {
        todo!("how many bytes of the unfinished line you hold")
    }
}

//! Turning a byte stream into lines, with a hard limit on line length.
//!
//! TCP delivers bytes, not messages: one `write` by a client may arrive as
//! two `read`s, and two writes may arrive as one. The framer is the piece that
//! does not care: feed it whatever a `read` returned and it hands back every
//! complete line, keeping the unfinished tail for the next call.
//!
//! It is also the reason a peer cannot grow our memory without bound: the
//! unfinished tail is never kept past `max_line` (+1 for a possible `\r`).
//! Past that the line is reported as [`Frame::TooLong`] once, and the rest of
//! it is thrown away, byte by byte, until its `\n` arrives.

use std::ops::ControlFlow;

/// One thing the framer found in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole line, without its `\n` and without a `\r` just before it.
    Line(&'a [u8]),
    /// A line went past the limit. Reported once, as soon as it is known;
    /// the rest of the line (up to its `\n`) is discarded.
    TooLong,
}

/// Splits a byte stream into lines of at most `max_line` bytes.
#[derive(Debug)]
pub struct LineFramer {
    max_line: usize,
    /// Bytes of the current, unfinished line (at most `max_line + 1`).
    partial: Vec<u8>,
    /// True while throwing away the rest of a too-long line.
    discarding: bool,
}

impl LineFramer {
    pub fn new(max_line: usize) -> Self {
        LineFramer {
            max_line,
            partial: Vec::new(),
            discarding: false,
        }
    }

    /// Bytes held for an unfinished line (never more than `max_line + 1`).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Feeds the bytes of one `read` and calls `on_frame` for every frame they
    /// complete, in order. `on_frame` may return `Break` (after `/quit`, say)
    /// to stop: the bytes after that frame are dropped, and `feed` returns
    /// `Break` too.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on_frame: impl FnMut(Frame<'_>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            let (chunk, ends_line) = match newline {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            bytes = match newline {
                Some(i) => &bytes[i + 1..],
                None => &[],
            };

            if self.discarding {
                if ends_line {
                    self.discarding = false;
                }
                continue;
            }

            if ends_line {
                // Fast path: the whole line is inside this read, nothing kept.
                let line: &[u8] = if self.partial.is_empty() {
                    chunk
                } else {
                    self.partial.extend_from_slice(chunk);
                    &self.partial
                };
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let flow = if line.len() > self.max_line {
                    on_frame(Frame::TooLong)
                } else {
                    on_frame(Frame::Line(line))
                };
                self.partial.clear();
                flow?;
            } else {
                // No `\n` yet: keep the tail, unless it is already too long.
                // `max_line + 1` bytes may still end well (the extra byte may
                // be the `\r` of `\r\n`); anything longer cannot.
                let held = self.partial.len() + chunk.len();
                let could_still_fit = held <= self.max_line
                    || (held == self.max_line + 1 && chunk.last() == Some(&b'\r'));
                if could_still_fit {
                    self.partial.extend_from_slice(chunk);
                } else {
                    self.partial.clear();
                    self.partial.shrink_to(self.max_line.min(1024));
                    self.discarding = true;
                    on_frame(Frame::TooLong)?;
                }
            }
        }
        ControlFlow::Continue(())
    }
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
            let _ = framer.feed(piece, |f| {
                out.push(match f {
                    Frame::Line(l) => F::L(l.to_vec()),
                    Frame::TooLong => F::TooLong,
                });
                ControlFlow::Continue(())
            });
            assert!(framer.buffered() <= max + 1);
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
    fn a_gigabyte_without_newline_keeps_memory_bounded() {
        let mut framer = LineFramer::new(4096);
        let chunk = vec![b'x'; 64 * 1024];
        let mut too_long = 0;
        for _ in 0..(64 * 1024 * 1024 / chunk.len()) {
            let _ = framer.feed(&chunk, |f| {
                assert_eq!(f, Frame::TooLong);
                too_long += 1;
                ControlFlow::Continue(())
            });
            assert!(framer.buffered() <= 4097);
        }
        assert_eq!(too_long, 1);
    }

    #[test]
    fn break_stops_at_that_frame() {
        let mut framer = LineFramer::new(100);
        let mut seen = Vec::new();
        let flow = framer.feed(b"a\n/quit\nb\n", |f| {
            if let Frame::Line(l) = f {
                seen.push(l.to_vec());
                if l == b"/quit" {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(seen, vec![b"a".to_vec(), b"/quit".to_vec()]);
    }
}

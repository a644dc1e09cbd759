//! Step 4 check: lines out of a byte stream, with a bounded buffer.

use crate::shared::{Frame, Framer, Rng};

/// The line limit every case below is written for.
pub const MAX_LINE: usize = 8;

/// One stream and the frames it must give, however it is cut.
struct Case {
    bytes: &'static [u8],
    frames: &'static [Option<&'static [u8]>], // None = TooLong
}

const fn case(bytes: &'static [u8], frames: &'static [Option<&'static [u8]>]) -> Case {
    Case { bytes, frames }
}

/// Every rule of the framing in docs/protocol.md, as streams with
/// `MAX_LINE = 8`. Each stream ends with `\n`, so any two can be joined.
const CASES: &[Case] = &[
    case(b"a\n", &[Some(b"a")]),
    case(b"a\nbb\nccc\n", &[Some(b"a"), Some(b"bb"), Some(b"ccc")]),
    case(b"\n", &[Some(b"")]),
    case(b"\r\n", &[Some(b"")]),
    case(b"ab\r\n", &[Some(b"ab")]),
    case(b"a\rb\n", &[Some(b"a\rb")]),
    case(b"a\r\r\n", &[Some(b"a\r")]),
    case(b"12345678\n", &[Some(b"12345678")]),
    case(b"12345678\r\n", &[Some(b"12345678")]),
    case(b"123456789\nok\n", &[None, Some(b"ok")]),
    case(b"1234567\r8\n", &[None]),
    case(b"1234567890123456789012\nok\n", &[None, Some(b"ok")]),
    case(b"\xff\xfe\n", &[Some(b"\xff\xfe")]),
];

/// Grades a line framer. `new(max_line)` makes a fresh one.
///
/// Every case is fed whole, cut at every single point, cut at every pair of
/// points, and one byte at a time; the frames must always be the same. After
/// every `feed`, `buffered()` must be at most `max_line + 1`, and a line
/// that is too long must be reported as soon as `max_line + 2` of its bytes
/// have arrived without a `\n`. Finally, long random mixtures of the cases
/// cut at random points.
pub fn check<F: Framer>(new: fn(usize) -> F) {
    for c in CASES {
        let want = expected(c.frames);
        let n = c.bytes.len();
        assert_eq!(
            run(new, &[c.bytes]),
            want,
            "fed whole: \"{}\"",
            show(c.bytes)
        );
        for i in 0..=n {
            let (a, b) = c.bytes.split_at(i);
            assert_eq!(run(new, &[a, b]), want, "cut at {i}: \"{}\"", show(c.bytes));
            for j in i..=n {
                let parts = [&c.bytes[..i], &c.bytes[i..j], &c.bytes[j..]];
                assert_eq!(
                    run(new, &parts),
                    want,
                    "cut at {i} and {j}: \"{}\"",
                    show(c.bytes)
                );
            }
        }
        let bytes: Vec<&[u8]> = c.bytes.chunks(1).collect();
        assert_eq!(
            run(new, &bytes),
            want,
            "byte by byte: \"{}\"",
            show(c.bytes)
        );
    }
    too_long_is_reported_early(new);
    tail_is_kept(new);
    random_mixtures(new);
}

/// A line that never ends must be reported before its `\n`, and must not
/// grow the buffer: this is what keeps a peer from eating the server's
/// memory by never sending a newline.
fn too_long_is_reported_early<F: Framer>(new: fn(usize) -> F) {
    let mut f = new(MAX_LINE);
    let mut frames = Vec::new();
    for i in 0..10_000 {
        frames.extend(f.feed(b"z"));
        assert!(
            f.buffered() <= MAX_LINE + 1,
            "buffer grew to {}",
            f.buffered()
        );
        if i + 1 == MAX_LINE + 2 {
            assert_eq!(
                frames,
                vec![Frame::TooLong],
                "after {} bytes with no newline, TooLong must have been reported (once)",
                MAX_LINE + 2
            );
        }
    }
    assert_eq!(
        frames,
        vec![Frame::TooLong],
        "TooLong is reported once per line"
    );
    frames.extend(f.feed(b"zzz\nok\n"));
    assert_eq!(
        frames,
        vec![Frame::TooLong, Frame::Line(b"ok".to_vec())],
        "after a too-long line ends, the next line comes through"
    );
}

/// An unfinished line is kept, and finished by a later feed.
fn tail_is_kept<F: Framer>(new: fn(usize) -> F) {
    let mut f = new(MAX_LINE);
    assert_eq!(f.feed(b"abc"), vec![], "no newline yet: no frame");
    assert_eq!(
        f.buffered(),
        3,
        "the 3 bytes of the unfinished line are kept"
    );
    assert_eq!(f.feed(b"d\ne"), vec![Frame::Line(b"abcd".to_vec())]);
    assert_eq!(f.buffered(), 1, "'e' is kept for the next line");
}

/// Random streams made of the cases, cut at random points (seeded, so a
/// failure repeats).
fn random_mixtures<F: Framer>(new: fn(usize) -> F) {
    let mut rng = Rng::new(4);
    for round in 0..200 {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for _ in 0..rng.below(12) {
            let c = &CASES[rng.below(CASES.len() as u64) as usize];
            stream.extend_from_slice(c.bytes);
            want.extend(expected(c.frames));
        }
        let mut parts = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let cut = (1 + rng.below(rest.len() as u64)) as usize;
            let (a, b) = rest.split_at(cut);
            parts.push(a);
            rest = b;
        }
        assert_eq!(
            run(new, &parts),
            want,
            "random round {round}: \"{}\"",
            show(&stream)
        );
    }
}

/// Feeds `parts` to a fresh framer, checking the buffer bound after each.
fn run<F: Framer>(new: fn(usize) -> F, parts: &[&[u8]]) -> Vec<Frame> {
    let mut f = new(MAX_LINE);
    let mut frames = Vec::new();
    for part in parts {
        frames.extend(f.feed(part));
        assert!(
            f.buffered() <= MAX_LINE + 1,
            "buffered() is {} after feeding \"{}\"; the limit is max_line + 1 = {}",
            f.buffered(),
            show(part),
            MAX_LINE + 1
        );
    }
    frames
}

fn expected(frames: &[Option<&[u8]>]) -> Vec<Frame> {
    frames
        .iter()
        .map(|f| match f {
            Some(line) => Frame::Line(line.to_vec()),
            None => Frame::TooLong,
        })
        .collect()
}

/// Bytes as readable text in failure messages.
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

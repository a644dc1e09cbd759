//! What the bench's chat lines look like, and how to read them back fast.
//!
//! A publisher sends fixed-size lines whose text starts with a fixed-width
//! header: publisher index, sequence number and send time, then padding:
//!
//! ```text
//! b00002 0000000041 0000001234567890 xxxxxxxxxxxxxxxx
//! ```
//!
//! Fixed widths let a receiver parse a delivered line
//! (`MSG <nick> <text>`) without scanning it: after the nick, the fields sit
//! at known offsets, and the line's end is at a known offset too, so one
//! byte check replaces a search for `\n`. The receiving side must be cheap,
//! or the bench measures itself instead of the server.

/// Bytes of the header: `b` + 5 digits, space, 10 digits, space, 16 digits.
pub const HEADER_LEN: usize = 1 + 5 + 1 + 10 + 1 + 16;
/// The smallest `--size`: the header and the `\n`.
pub const MIN_SIZE: usize = HEADER_LEN + 1;
/// Most publishers the header can number (5 digits).
pub const MAX_PUBLISHERS: usize = 99_999;

/// Appends one chat line of exactly `size` bytes (its `\n` included) to
/// `out`. `size` must be at least [`MIN_SIZE`]; `sent_ns` is the send time in
/// nanoseconds since the bench's epoch.
pub fn encode_chat(out: &mut Vec<u8>, publisher: usize, seq: u64, sent_ns: u64, size: usize) {
    debug_assert!(size >= MIN_SIZE);
    out.push(b'b');
    put_digits(out, publisher as u64, 5);
    out.push(b' ');
    put_digits(out, seq, 10);
    out.push(b' ');
    put_digits(out, sent_ns, 16);
    let pad = size - MIN_SIZE;
    if pad > 0 {
        out.push(b' ');
        out.resize(out.len() + pad - 1, b'x');
    }
    out.push(b'\n');
}

/// A chat line as the receiver reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chat {
    pub publisher: usize,
    pub seq: u64,
    pub sent_ns: u64,
}

/// Parses the text of a chat line (what follows `MSG <nick> `), up to and
/// excluding its `\n`. `None` if it is not one of ours.
pub fn parse_chat_text(text: &[u8]) -> Option<Chat> {
    if text.len() < HEADER_LEN || text[0] != b'b' || text[6] != b' ' || text[17] != b' ' {
        return None;
    }
    Some(Chat {
        publisher: parse_digits(&text[1..6])? as usize,
        seq: parse_digits(&text[7..17])?,
        sent_ns: parse_digits(&text[18..34])?,
    })
}

/// Where the text of a `MSG <nick> <text>` line starts, or `None` if `line`
/// does not start like one. Nicks are at most 32 bytes.
pub fn msg_text_start(line: &[u8]) -> Option<usize> {
    let rest = line.strip_prefix(b"MSG ")?;
    let nick_len = rest.iter().take(33).position(|&b| b == b' ')?;
    (nick_len > 0).then_some(4 + nick_len + 1)
}

/// Index of the first `\n` in `hay`, eight bytes at a time.
pub fn find_newline(hay: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = hay.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes) ^ NEWLINES;
        // A byte of x is zero where hay has '\n'; this flags the lowest such
        // byte exactly (false flags can only appear above a true one).
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

fn put_digits(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn parse_digits(digits: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(d - b'0');
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_exactly_the_asked_size_and_parse_back() {
        for size in [MIN_SIZE, MIN_SIZE + 1, MIN_SIZE + 2, 64, 1000] {
            let mut out = Vec::new();
            encode_chat(&mut out, 42, 7, 1_234_567_890, size);
            assert_eq!(out.len(), size, "size {size}");
            assert_eq!(out.last(), Some(&b'\n'));
            assert_eq!(find_newline(&out), Some(size - 1));
            let chat = parse_chat_text(&out[..size - 1]).unwrap();
            assert_eq!(
                chat,
                Chat {
                    publisher: 42,
                    seq: 7,
                    sent_ns: 1_234_567_890
                }
            );
        }
    }

    #[test]
    fn header_is_readable_text() {
        let mut out = Vec::new();
        encode_chat(&mut out, 2, 41, 1_234_567_890, 48);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "b00002 0000000041 0000001234567890 xxxxxxxxxxxx\n"
        );
    }

    #[test]
    fn foreign_lines_are_not_chats() {
        assert_eq!(parse_chat_text(b"hello"), None);
        assert_eq!(parse_chat_text(b"b0000x 0000000041 0000001234567890"), None);
        assert_eq!(parse_chat_text(b"c00002 0000000041 0000001234567890"), None);
    }

    #[test]
    fn msg_text_start_finds_the_text() {
        assert_eq!(msg_text_start(b"MSG guest-1 b000"), Some(12));
        assert_eq!(msg_text_start(b"MSG  x"), None);
        assert_eq!(msg_text_start(b"JOIN guest-1"), None);
        assert_eq!(msg_text_start(b"MSG nospace"), None);
    }

    #[test]
    fn find_newline_agrees_with_a_plain_search() {
        let mut hay = vec![b'a'; 70];
        assert_eq!(find_newline(&hay), None);
        for at in 0..hay.len() {
            hay[at] = b'\n';
            for start in 0..=at {
                assert_eq!(
                    find_newline(&hay[start..]),
                    Some(at - start),
                    "{start} {at}"
                );
            }
            // a second newline later does not matter; bytes just above and
            // below '\n' are not newlines
            hay[at] = b'\n' + 1;
            assert_eq!(find_newline(&hay), None);
            hay[at] = b'\n' - 1;
            assert_eq!(find_newline(&hay), None);
            hay[at] = 0x8a;
            assert_eq!(find_newline(&hay), None);
            hay[at] = b'a';
        }
        assert_eq!(find_newline(b"\n\n"), Some(0));
        assert_eq!(find_newline(b"\x0b\x0a"), Some(1));
    }
}

//! A reversible escape for network text in a scenario file (a recording).
//!
//! `tcphub serve --record` writes what clients sent and were sent into a
//! scenario file, one step per line. Network text may hold anything the
//! file format gives a meaning to (a newline would start a new step, a `\r`
//! at the end of a line is eaten as a Windows line ending, a trailing space
//! is lost by most editors) and anything a terminal obeys (ESC, BEL, bidi
//! controls); a line refused as bad UTF-8 is not text at all. [`encode`]
//! writes all of these as visible escapes, and [`decode`] gives back the
//! very same bytes, so the replay sends what the class sent.
//!
//! | bytes | written as |
//! | --- | --- |
//! | `\` | `\\` |
//! | ESC, CR, LF, TAB, BEL | `\e`, `\r`, `\n`, `\t`, `\a` |
//! | other C0 controls, DEL | `\x00` ... `\x1f`, `\x7f` |
//! | a byte that is not part of valid UTF-8 | `\x80` ... `\xff` |
//! | the Unicode controls `tcphub client` escapes (C1, bidi, zero-width) | `\u{202e}`, ... |
//! | a space at the end of the text | `\x20` |
//! | `*` (in `expect` patterns only) | `\*` |
//!
//! The escapes are those of [`crate::support::terminal::escape`] (so a
//! recording reads like the client's screen), plus `\\` and `\xHH` for raw
//! bytes, which make them reversible. `#` needs no escape: a comment is a
//! line that *starts* with `#`, and every recorded step starts with its
//! actor's name. No IO here.

use std::fmt::Write as _;

/// True for a character a terminal would obey rather than show: C0 and C1
/// controls, DEL, and the zero-width and bidi controls (U+061C, U+200B,
/// U+200E-200F, U+2028-202E, U+2066-2069, U+FEFF). `tcphub client` shows
/// them as escapes (`crate::support::terminal`); a recording writes them so.
pub fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200b}'
            | '\u{200e}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Where the escaped text goes: a `send` takes bytes as written; an
/// `expect` is a pattern, whose `*` is a wildcard unless escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `send <text>`: `*` is an ordinary character.
    Send,
    /// `expect <pattern>`: `*` is written `\*`.
    Pattern,
}

/// `bytes` as escaped text for a scenario file (see the module docs).
pub fn encode(bytes: &[u8], context: Context) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c, context);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    // Editors and the parser's line handling keep a trailing space only by
    // luck: an escaped one survives both.
    if out.ends_with(' ') {
        out.pop();
        out.push_str("\\x20");
    }
    out
}

fn push_char(out: &mut String, c: char, context: Context) {
    match c {
        '\\' => out.push_str("\\\\"),
        '*' if context == Context::Pattern => out.push_str("\\*"),
        c if is_unsafe(c) => push_unsafe(out, c),
        c => out.push(c),
    }
}

/// One character [`is_unsafe`] says a terminal would obey, as the escape
/// that shows it: `\e`, `\r`, `\n`, `\t`, `\a`, `\xNN` for the other C0
/// controls and DEL, `\u{...}` for the rest. Recordings and `tcphub
/// client` (`crate::support::terminal`) write the same escapes.
pub fn push_unsafe(out: &mut String, c: char) {
    match c {
        '\u{1b}' => out.push_str("\\e"),
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\u{7}' => out.push_str("\\a"),
        '\u{0}'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        _ => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// What [`decode`] yields for one piece of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes to send or to match literally.
    Bytes(Vec<u8>),
    /// An unescaped `*` (a wildcard, in a pattern).
    Star,
}

/// The bytes `text` stands for: the inverse of [`encode`] with
/// [`Context::Send`]. `Err` names the first malformed escape.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    for piece in decode_pieces(text, false)? {
        match piece {
            Piece::Bytes(b) => out.extend_from_slice(&b),
            Piece::Star => out.push(b'*'),
        }
    }
    Ok(out)
}

/// `text` split at its unescaped `*`s (only if `stars`), each literal run
/// decoded: what an `expect` pattern is made of.
pub fn decode_pieces(text: &str, stars: bool) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut run = Vec::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '*' if stars => {
                pieces.push(Piece::Bytes(std::mem::take(&mut run)));
                pieces.push(Piece::Star);
            }
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err("a lone \\ at the end (write \\\\ for a backslash)".to_string());
                };
                match e {
                    '\\' => run.push(b'\\'),
                    '*' => run.push(b'*'),
                    'e' => run.push(0x1b),
                    'r' => run.push(b'\r'),
                    'n' => run.push(b'\n'),
                    't' => run.push(b'\t'),
                    'a' => run.push(0x07),
                    'x' => {
                        let hex = chars.as_str().get(..2).unwrap_or("");
                        let byte = (hex.len() == 2)
                            .then(|| u8::from_str_radix(hex, 16).ok())
                            .flatten()
                            .ok_or_else(|| format!("\\x at byte {at} needs two hex digits"))?;
                        chars.nth(1);
                        run.push(byte);
                    }
                    'u' => {
                        let rest = chars.as_str();
                        let inner = rest
                            .strip_prefix('{')
                            .and_then(|r| r.split_once('}'))
                            .map(|(hex, _)| hex)
                            .ok_or_else(|| format!("\\u at byte {at} needs {{hex}}"))?;
                        let c = u32::from_str_radix(inner, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("\\u{{{inner}}} is not a character"))?;
                        let mut buf = [0; 4];
                        run.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        for _ in 0..inner.chars().count() + 2 {
                            chars.next();
                        }
                    }
                    other => {
                        return Err(format!(
                            "unknown escape \\{other} (escapes: \\\\ \\* \\e \\r \\n \\t \\a \\xHH \\u{{HEX}})"
                        ));
                    }
                }
            }
            c => {
                let mut buf = [0; 4];
                run.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    pieces.push(Piece::Bytes(run));
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(bytes: &[u8]) {
        for context in [Context::Send, Context::Pattern] {
            let text = encode(bytes, context);
            assert!(
                !text.contains('\n') && !text.ends_with('\r') && !text.ends_with(' '),
                "{text:?}"
            );
            assert!(!text.chars().any(is_unsafe), "{text:?}");
            assert_eq!(decode(&text).as_deref(), Ok(bytes), "{text:?}");
        }
    }

    #[test]
    fn hostile_bytes_come_back_exactly() {
        for bytes in [
            &b"hello"[..],
            b"",
            b"\x1b[2J\x1b[H",
            b"a\0b\x7f",
            b"\xff\xfe bad utf-8 \xc3",
            b"trailing space ",
            b"back\\slash \\x41 and *stars*",
            b"# not a comment",
            "bidi \u{202e}txt.exe, caf\u{e9}, \u{1f389}".as_bytes(),
            b"line\nbreak\r",
        ] {
            round_trip(bytes);
        }
        assert_eq!(encode(b"\x1b[2J *", Context::Pattern), "\\e[2J \\*");
        assert_eq!(encode(b"x ", Context::Send), "x\\x20");
        assert_eq!(encode(b"\xff", Context::Send), "\\xff");
    }

    #[test]
    fn malformed_escapes_are_named() {
        for (text, problem) in [
            ("x\\", "lone"),
            ("\\q", "unknown escape \\q"),
            ("\\x4", "two hex digits"),
            ("\\xzz", "two hex digits"),
            ("\\u{110000}", "not a character"),
            ("\\u202e", "needs {hex}"),
        ] {
            let e = decode(text).unwrap_err();
            assert!(e.contains(problem), "{text:?}: {e}");
        }
    }

    #[test]
    fn stars_split_a_pattern_unless_escaped() {
        let pieces = decode_pieces("a*b\\*c", true).unwrap();
        assert_eq!(
            pieces,
            [
                Piece::Bytes(b"a".to_vec()),
                Piece::Star,
                Piece::Bytes(b"b*c".to_vec())
            ]
        );
    }
}

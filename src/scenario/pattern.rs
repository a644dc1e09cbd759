//! `expect` patterns: a server line with `*` wildcards.
//!
//! `EVENT pickup vendor *` matches any pickup event from vendor. A `*`
//! matches any run of characters, spaces included, even none; everything
//! else must be equal, and the pattern must cover the whole line. `\*` is a
//! literal star (for `OK sub \*`), `\\` a literal backslash. No IO here.

use std::fmt;

/// A compiled pattern: the literal pieces between the stars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as written in the scenario (for reports).
    text: String,
    /// Literal pieces; a `*` sits between each two.
    pieces: Vec<String>,
}

impl Pattern {
    /// Compiles `text`. Every text is a valid pattern.
    pub fn new(text: &str) -> Pattern {
        let mut pieces = vec![String::new()];
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => pieces.push(String::new()),
                '\\' => match chars.next() {
                    Some(next @ ('*' | '\\')) => push(&mut pieces, next),
                    Some(other) => {
                        push(&mut pieces, '\\');
                        push(&mut pieces, other);
                    }
                    None => push(&mut pieces, '\\'),
                },
                c => push(&mut pieces, c),
            }
        }
        Pattern {
            text: text.to_string(),
            pieces,
        }
    }

    /// Compiles `text` written with the escapes of a recording
    /// (`set escapes on`, [`crate::proto::escape`]): `\e`, `\xHH`,
    /// `\u{HEX}` and the rest stand for the characters they name, `\*` and
    /// `\\` as before. `Err` for a malformed escape, or bytes that are not
    /// UTF-8 (a server line is text).
    pub fn escaped(text: &str) -> Result<Pattern, String> {
        use crate::proto::escape::{Piece, decode_pieces};
        let mut pieces = vec![String::new()];
        for piece in decode_pieces(text, true)? {
            match piece {
                Piece::Star => pieces.push(String::new()),
                Piece::Bytes(bytes) => {
                    let run = String::from_utf8(bytes).map_err(|_| {
                        "a pattern is text: \\x80 to \\xff alone are not UTF-8".to_string()
                    })?;
                    if let Some(last) = pieces.last_mut() {
                        last.push_str(&run);
                    }
                }
            }
        }
        Ok(Pattern {
            text: text.to_string(),
            pieces,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True if the whole of `line` matches.
    ///
    /// With pieces `[first, middle..., last]`: the line must start with
    /// `first` and end with `last`, and the middle pieces must appear in
    /// order in between. Taking the leftmost place for each middle piece is
    /// always right, because a `*` can absorb whatever is skipped.
    pub fn matches(&self, line: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return line.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return line == first; // no star at all
        };
        let Some(mut inner) = line.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some(trimmed) = inner.strip_suffix(last.as_str()) else {
            return false;
        };
        inner = trimmed;
        for piece in middle {
            match inner.find(piece.as_str()) {
                Some(at) => inner = &inner[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

fn push(pieces: &mut [String], c: char) {
    if let Some(last) = pieces.last_mut() {
        last.push(c);
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(pattern: &str, line: &str) -> bool {
        Pattern::new(pattern).matches(line)
    }

    #[test]
    fn exact_lines() {
        assert!(m("PONG", "PONG"));
        assert!(!m("PONG", "PONG "));
        assert!(!m("PONG", "PON"));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }

    #[test]
    fn stars_match_any_run_including_spaces_and_nothing() {
        assert!(m("EVENT pickup vendor *", "EVENT pickup vendor {\"a\": 1}"));
        assert!(m("EVENT pickup vendor *", "EVENT pickup vendor "));
        assert!(!m("EVENT pickup vendor *", "EVENT pickup driver {}"));
        assert!(m("WELCOME guest-*", "WELCOME guest-12"));
        assert!(m("*", ""));
        assert!(m("*", "anything at all"));
        assert!(m(
            "EVENT * * *\"orderId\":\"A-1\"*",
            "EVENT pickup vendor {\"orderId\":\"A-1\",\"x\":2}"
        ));
        assert!(!m(
            "EVENT * * *\"orderId\":\"A-1\"*",
            "EVENT pickup vendor {\"orderId\":\"A-2\"}"
        ));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "acb"));
        // The suffix may not reuse characters of the prefix.
        assert!(!m("ab*ba", "aba"));
        assert!(m("ab*ba", "abba"));
    }

    #[test]
    fn escapes() {
        assert!(m("OK sub \\*", "OK sub *"));
        assert!(!m("OK sub \\*", "OK sub pickup"));
        assert!(m("a\\\\b", "a\\b"));
        assert!(m("a\\nb", "a\\nb"));
        assert!(m("trailing\\", "trailing\\"));
        assert!(m("é*ü", "é and ü"));
    }

    #[test]
    fn recorded_escapes_stand_for_their_characters() {
        let p = Pattern::escaped("MSG bob \\e[2J \\* *\\x20").unwrap();
        assert!(p.matches("MSG bob \u{1b}[2J * anything "));
        assert!(!p.matches("MSG bob \\e[2J * anything "));
        assert!(Pattern::escaped("bad \\xff").is_err());
        assert!(Pattern::escaped("bad \\q").is_err());
    }
}

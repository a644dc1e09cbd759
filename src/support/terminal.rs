//! Text from the network, made safe to print on a terminal.
//!
//! Anyone on the hub can send any valid UTF-8, and valid UTF-8 includes
//! every control character. Printed as is, `MSG bob \e[2J` clears your
//! screen, `\e]52;c;...\a` writes your clipboard (OSC 52), a `\r` or `\x08`
//! rewinds the line so that `alice: transfer` overwrites what bob really
//! said, and U+202E (right-to-left override) shows `txt.exe` as `exe.txt`.
//! The hub relays such bytes verbatim (it is a relay, and the protocol says
//! control characters are text); it is every program that *prints* them
//! that must not let the terminal obey them.
//!
//! [`escape`] turns each such character into a visible escape and leaves
//! everything else, non-ASCII letters and emoji included, as it is:
//!
//! | character | shown as |
//! | --- | --- |
//! | ESC (U+001B) | `\e` (so `\e[2J` shows literally) |
//! | CR, LF, TAB, BEL | `\r`, `\n`, `\t`, `\a` |
//! | any other C0 control (U+0000-001F), DEL (U+007F) | `\x00` ... `\x1f`, `\x7f` |
//! | C1 controls (U+0080-009F) | `\u{80}` ... `\u{9f}` |
//! | zero-width and bidi controls: U+061C, U+200B, U+200E-200F, U+2028-2029, U+202A-202E, U+2066-2069, U+FEFF | `\u{200b}`, `\u{202e}`, ... |
//!
//! *Choices:* tabs become `\t` too (a tab can push text into another column
//! and make a line look like two; the project's output is one line per
//! message, so it shows them). A backslash is left alone: the escapes are
//! for the terminal's safety, not a reversible encoding, so a peer that
//! *types* `\e[2J` is shown the same as one that sends ESC (both harmless).
//! U+2028 and U+2029 (line and paragraph separators) and U+061C (Arabic
//! letter mark) are escaped along with the listed bidi controls, since they
//! break or reorder a line as much as the others. The zero-width joiner and
//! non-joiner (U+200D, U+200C) are *not*: emoji like 👩‍💻 are built with
//! the joiner, and Persian and Indic text need both; they cannot move or
//! hide other text.
//!
//! Everything that prints network text to a terminal goes through here:
//! `tcphub client` (plain and `--pretty`; `--raw` is the way out, for
//! piping), the agents' output and logs, and the `simulate` timeline.

/// True for a character [`escape`] rewrites (defined in the IO-free core,
/// which escapes the same characters in recordings).
pub use crate::proto::escape::is_unsafe;
use crate::proto::escape::push_unsafe;

/// `text` with every terminal control character (see the module docs)
/// replaced by a visible escape; printable text comes out unchanged, and so
/// does the result of a second `escape` of an escaped text.
pub fn escape(text: &str) -> String {
    // The fast path: most lines have nothing to escape.
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// [`escape`], then cut to at most `max` characters for a display of fixed
/// width (a table cell, a status line). When the text had to be cut, its
/// last character is `~`. An escape is never cut in half: one that does not
/// fit is left out whole. Width counts characters, not terminal columns (a
/// wide emoji counts as one), which is what a list of nicks and addresses
/// needs.
pub fn escape_to(text: &str, max: usize) -> String {
    let mut out = String::new();
    // Where each character's piece (itself, or its escape) starts in `out`
    // and how wide it is, so a cut can take whole pieces off the end.
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let mut used = 0;
    for c in text.chars() {
        let at = out.len();
        push_escaped(&mut out, c);
        let width = out[at..].chars().count();
        if used + width > max {
            out.truncate(at);
            // Room for the `~` that says "there was more".
            while used + 1 > max {
                let Some((start, w)) = pieces.pop() else {
                    break;
                };
                out.truncate(start);
                used -= w;
            }
            if max > 0 {
                out.push('~');
            }
            return out;
        }
        pieces.push((at, width));
        used += width;
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    if is_unsafe(c) {
        push_unsafe(out, c);
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_unchanged() {
        for text in [
            "",
            "hello, world",
            "café, naïve, Ærøskøbing, 日本語, עברית",
            "emoji 🎉👩‍💻 and a \\ backslash",
            "{\"orderId\":\"a-1\",\"note\":\"x\\ny\"}",
        ] {
            assert_eq!(escape(text), text);
        }
    }

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        assert_eq!(escape("\u{1b}[2J\u{1b}[H"), "\\e[2J\\e[H");
        assert_eq!(escape("\u{1b}[31mred\u{1b}[0m"), "\\e[31mred\\e[0m");
        // OSC 52: "put this in the clipboard", ended by BEL or by ESC \.
        assert_eq!(escape("\u{1b}]52;c;ZXZpbA==\u{7}"), "\\e]52;c;ZXZpbA==\\a");
        assert_eq!(escape("\u{1b}]52;c;eA==\u{1b}\\"), "\\e]52;c;eA==\\e\\");
        // The C1 form of CSI (U+009B) works on some terminals without ESC.
        assert_eq!(escape("\u{9b}2J"), "\\u{9b}2J");
    }

    #[test]
    fn carriage_return_and_backspace_cannot_rewrite_the_line() {
        assert_eq!(
            escape("bob: hi\ralice: send money"),
            "bob: hi\\ralice: send money"
        );
        assert_eq!(escape("yes\u{8}\u{8}\u{8}no "), "yes\\x08\\x08\\x08no ");
        assert_eq!(escape("a\nMSG admin fake"), "a\\nMSG admin fake");
        assert_eq!(escape("\0\u{7f}\tx"), "\\x00\\x7f\\tx");
    }

    #[test]
    fn bidi_and_invisible_controls_are_visible() {
        assert_eq!(escape("invoice\u{202e}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(escape("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        assert_eq!(escape("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        for c in [
            '\u{200b}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}',
        ] {
            assert!(is_unsafe(c), "{c:?}");
        }
        // The joiners build emoji and Persian words; they stay.
        for c in ['\u{200c}', '\u{200d}', '\u{2030}', 'é', ' '] {
            assert!(!is_unsafe(c), "{c:?}");
        }
    }

    #[test]
    fn escaping_twice_changes_nothing_more() {
        let once = escape("\u{1b}[2J\r\u{202e}");
        assert_eq!(escape(&once), once);
    }

    #[test]
    fn width_limited_output_never_cuts_an_escape() {
        assert_eq!(escape_to("hello", 10), "hello");
        assert_eq!(escape_to("hello", 5), "hello");
        assert_eq!(escape_to("hello!", 5), "hell~");
        assert_eq!(escape_to("héllo wörld", 4), "hél~");
        assert_eq!(escape_to("x", 0), "");
        // "ab\e[2J" is 7 characters escaped; cut at 4 the `\e` would be
        // split, so it goes whole.
        assert_eq!(escape_to("ab\u{1b}[2J", 4), "ab~");
        assert_eq!(escape_to("ab\u{1b}[2J", 5), "ab\\e~");
        assert_eq!(escape_to("a\u{202e}bc", 6), "a~");
        assert_eq!(escape_to("a\u{202e}bc", 9), "a~");
        assert_eq!(escape_to("a\u{202e}bc", 10), "a\\u{202e}~");
        assert_eq!(escape_to("a\u{202e}b", 10), "a\\u{202e}b");
        // A backslash typed by the peer is text, and stays.
        assert_eq!(escape_to("a\\bcd", 4), "a\\b~");
        for max in 0..20 {
            let shown = escape_to("\u{1b}[2J\r\u{8}é\u{202e}z", max);
            assert!(shown.chars().count() <= max, "{max}: {shown}");
            assert!(!shown.chars().any(is_unsafe), "{max}: {shown}");
        }
    }
}

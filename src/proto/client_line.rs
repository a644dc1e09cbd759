//! The lines a client sends, understood: protocol v1's commands as plain
//! functions.
//!
//! Nothing in this file touches a socket. A reader hands it one framed line
//! (bytes, line ending already removed) and gets back a [`Command`] or a
//! [`Refusal`]. Because it is sans-IO, every rule of the contract
//! (`docs/protocol.md`) is unit-tested here without a single connection, and
//! both servers run it unchanged. The lines a server sends back are
//! [`crate::proto::server_line`].

use crate::proto::server_line::ErrorCode;

/// Longest nick the contract allows (`/nick`, 1 to 32 characters).
pub const MAX_NICK: usize = 32;
/// Longest topic the contract allows (`/sub`, 1 to 64 characters).
pub const MAX_TOPIC: usize = 64;

/// One client line, understood. Owned, because it crosses from the reader
/// thread to the dispatcher thread through the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A line not starting with `/`: relayed to everyone else as `MSG`.
    Chat(String),
    /// `/nick <name>`: the name is already checked against the nick rules.
    Nick(String),
    /// `/list`
    List,
    /// `/dm <nick> <text>`: `to` is a well-formed nick, `text` is not empty.
    Dm { to: String, text: String },
    /// `/sub <topic>`, where topic may be `*`.
    Sub(String),
    /// `/unsub <topic>`, where topic may be `*`.
    Unsub(String),
    /// `/pub <topic> <payload>`: topic is never `*`; payload may be empty.
    Pub { topic: String, payload: String },
    /// `/ping`
    Ping,
    /// `/quit`
    Quit,
    /// `/help`
    Help,
}

/// A line the hub refuses, with the human text that follows the code in
/// `ERR <code> <text>`. The reader produces most of these (it parses); the
/// router produces the ones that need state (`nick-taken`, `no-such-nick`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub text: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        Refusal {
            code,
            text: text.into(),
        }
    }
}

/// What a reader makes of one framed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An empty line: the contract says ignore it, so nothing is sent on.
    Empty,
    /// A well-formed command for the dispatcher.
    Command(Command),
    /// A line to answer with `ERR`; nothing else happens.
    Refused(Refusal),
}

/// Parses one line exactly as received, without its `\n` (a `\r` before it
/// is already gone; see [`crate::proto::framing`]). Never panics, whatever the bytes.
pub fn parse_line(line: &[u8]) -> Parsed {
    if line.is_empty() {
        return Parsed::Empty;
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Parsed::Refused(Refusal::new(
            ErrorCode::BadUtf8,
            "line is not valid UTF-8 and was dropped",
        ));
    };
    match parse_command(text) {
        Ok(cmd) => Parsed::Command(cmd),
        Err(refusal) => Parsed::Refused(refusal),
    }
}

/// Parses a non-empty UTF-8 line into a command.
///
/// The first space separates the command word from its argument; inside the
/// argument, the first space separates a name from free text (`/dm`, `/pub`).
/// Free text is kept byte for byte, leading and trailing spaces included.
fn parse_command(line: &str) -> Result<Command, Refusal> {
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Command::Chat(line.to_string()));
    };
    let (word, arg) = match rest.split_once(' ') {
        Some((word, arg)) => (word, arg),
        None => (rest, ""),
    };
    let no_args = |cmd: Command, usage: &str| {
        if arg.is_empty() {
            Ok(cmd)
        } else {
            Err(Refusal::new(
                ErrorCode::Usage,
                format!("{usage} takes no arguments"),
            ))
        }
    };
    match word {
        "nick" => {
            if arg.is_empty() {
                return Err(Refusal::new(ErrorCode::Usage, "/nick <name>"));
            }
            check_nick(arg)?;
            Ok(Command::Nick(arg.to_string()))
        }
        "list" => no_args(Command::List, "/list"),
        "dm" => parse_dm(arg),
        "sub" | "unsub" => {
            if arg.is_empty() {
                return Err(Refusal::new(ErrorCode::Usage, format!("/{word} <topic>")));
            }
            if arg != "*" {
                check_topic(arg)?;
            }
            Ok(if word == "sub" {
                Command::Sub(arg.to_string())
            } else {
                Command::Unsub(arg.to_string())
            })
        }
        "pub" => parse_pub(arg),
        "ping" => no_args(Command::Ping, "/ping"),
        "quit" => no_args(Command::Quit, "/quit"),
        "help" => no_args(Command::Help, "/help"),
        _ => Err(Refusal::new(
            ErrorCode::UnknownCommand,
            format!("/{word} is not a command; try /help"),
        )),
    }
}

/// `/dm <nick> <text>`: the first space after the nick starts the text.
fn parse_dm(arg: &str) -> Result<Command, Refusal> {
    let usage = || Refusal::new(ErrorCode::Usage, "/dm <nick> <text>");
    let (to, text) = arg.split_once(' ').ok_or_else(usage)?;
    if to.is_empty() || text.is_empty() {
        return Err(usage());
    }
    check_dm_target(to)?;
    Ok(Command::Dm {
        to: to.to_string(),
        text: text.to_string(),
    })
}

/// The target of `/dm`: a nick, or `<nick>@<hub>` for a client of a linked
/// hub (docs/linking.md); each part follows the nick rules.
fn check_dm_target(to: &str) -> Result<(), Refusal> {
    match to.split_once('@') {
        None => check_nick(to),
        Some((nick, hub)) => {
            check_nick(nick)?;
            check_nick(hub)
        }
    }
}

/// `/pub <topic> <payload>`: the payload may be empty, the topic not `*`.
fn parse_pub(arg: &str) -> Result<Command, Refusal> {
    let (topic, payload) = arg.split_once(' ').unwrap_or((arg, ""));
    if topic.is_empty() {
        return Err(Refusal::new(ErrorCode::Usage, "/pub <topic> <payload>"));
    }
    if topic == "*" {
        return Err(Refusal::new(
            ErrorCode::BadTopic,
            "* is for /sub only; publish on a named topic",
        ));
    }
    check_topic(topic)?;
    Ok(Command::Pub {
        topic: topic.to_string(),
        payload: payload.to_string(),
    })
}

/// A nick is 1 to 32 of `A-Z a-z 0-9 _ -`.
pub fn check_nick(name: &str) -> Result<(), Refusal> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NICK
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Refusal::new(
            ErrorCode::BadNick,
            format!("a nick is 1 to {MAX_NICK} of A-Z a-z 0-9 _ -"),
        ))
    }
}

/// A topic is 1 to 64 of `A-Z a-z 0-9 _ - .` (`*` is handled by the caller,
/// because it is allowed for `/sub` and `/unsub` but not for `/pub`).
pub fn check_topic(topic: &str) -> Result<(), Refusal> {
    let ok = !topic.is_empty()
        && topic.len() <= MAX_TOPIC
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Refusal::new(
            ErrorCode::BadTopic,
            format!("a topic is 1 to {MAX_TOPIC} of A-Z a-z 0-9 _ - . (or * to /sub to all)"),
        ))
    }
}

/// The `HELP` lines, one per command, in the order `/help` sends them.
pub const HELP: &[&str] = &[
    "<text>                  chat: everyone else gets MSG <you> <text>",
    "/nick <name>            rename (1-32 of A-Z a-z 0-9 _ -)",
    "/list                   every connected nick, sorted",
    "/dm <nick> <text>       direct message to one client",
    "/sub <topic>            subscribe to a topic (or * for all)",
    "/unsub <topic>          stop receiving a topic",
    "/pub <topic> <payload>  publish an event to the topic's subscribers",
    "/ping                   PONG",
    "/quit                   BYE, then the hub closes the connection",
    "/help                   this text",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        match parse_line(line.as_bytes()) {
            Parsed::Command(c) => c,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn refused(line: &[u8]) -> ErrorCode {
        match parse_line(line) {
            Parsed::Refused(r) => r.code,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn chat_is_kept_byte_for_byte() {
        assert_eq!(cmd("hello"), Command::Chat("hello".into()));
        assert_eq!(
            cmd("  two  spaces  "),
            Command::Chat("  two  spaces  ".into())
        );
        assert_eq!(
            cmd(" /not a command"),
            Command::Chat(" /not a command".into())
        );
        assert_eq!(cmd("héllo wörld"), Command::Chat("héllo wörld".into()));
    }

    #[test]
    fn empty_line_is_ignored() {
        assert_eq!(parse_line(b""), Parsed::Empty);
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(cmd("/nick alice"), Command::Nick("alice".into()));
        assert_eq!(cmd("/list"), Command::List);
        assert_eq!(
            cmd("/dm bob  hi there "),
            Command::Dm {
                to: "bob".into(),
                text: " hi there ".into()
            }
        );
        assert_eq!(cmd("/sub pickup"), Command::Sub("pickup".into()));
        assert_eq!(cmd("/sub *"), Command::Sub("*".into()));
        assert_eq!(cmd("/unsub *"), Command::Unsub("*".into()));
        assert_eq!(cmd("/unsub a.b-c_d"), Command::Unsub("a.b-c_d".into()));
        assert_eq!(
            cmd("/pub pickup {\"id\": 1}"),
            Command::Pub {
                topic: "pickup".into(),
                payload: "{\"id\": 1}".into()
            }
        );
        assert_eq!(cmd("/ping"), Command::Ping);
        assert_eq!(cmd("/quit"), Command::Quit);
        assert_eq!(cmd("/help"), Command::Help);
    }

    #[test]
    fn pub_payload_may_be_empty() {
        for line in ["/pub t", "/pub t "] {
            assert_eq!(
                cmd(line),
                Command::Pub {
                    topic: "t".into(),
                    payload: String::new()
                }
            );
        }
        assert_eq!(
            cmd("/pub t  x "),
            Command::Pub {
                topic: "t".into(),
                payload: " x ".into()
            }
        );
    }

    #[test]
    fn commands_are_lower_case_and_exact() {
        for line in [
            "/NICK a", "/Nick a", "/nicks a", "/", "//", "/ nick", "/pingx",
        ] {
            assert_eq!(
                refused(line.as_bytes()),
                ErrorCode::UnknownCommand,
                "{line}"
            );
        }
    }

    #[test]
    fn missing_arguments_are_usage_errors() {
        for line in [
            "/nick", "/nick ", "/dm", "/dm bob", "/dm bob ", "/dm  hi", "/sub", "/sub ", "/unsub",
            "/pub", "/pub ", "/pub  x",
        ] {
            assert_eq!(refused(line.as_bytes()), ErrorCode::Usage, "{line:?}");
        }
    }

    #[test]
    fn argumentless_commands_refuse_arguments() {
        for line in ["/list x", "/ping x", "/quit now", "/help me"] {
            assert_eq!(refused(line.as_bytes()), ErrorCode::Usage, "{line:?}");
        }
    }

    #[test]
    fn nick_rules() {
        assert_eq!(cmd("/nick a"), Command::Nick("a".into()));
        assert_eq!(cmd("/nick A-z_09"), Command::Nick("A-z_09".into()));
        let longest = "x".repeat(MAX_NICK);
        assert_eq!(cmd(&format!("/nick {longest}")), Command::Nick(longest));
        for bad in [
            "/nick al ice",
            "/nick al.ice",
            "/nick é",
            "/nick a*",
            &format!("/nick {}", "x".repeat(MAX_NICK + 1)),
        ] {
            assert_eq!(refused(bad.as_bytes()), ErrorCode::BadNick, "{bad}");
        }
        assert_eq!(refused(b"/dm b.b hi"), ErrorCode::BadNick);
        // a client of a linked hub: <nick>@<hub>, each part a valid name
        assert_eq!(
            cmd("/dm bob@hub-2 hi"),
            Command::Dm {
                to: "bob@hub-2".into(),
                text: "hi".into()
            }
        );
        for line in [
            &b"/dm bob@ hi"[..],
            b"/dm @hub hi",
            b"/dm a@b@c hi",
            b"/dm a@b.c hi",
        ] {
            assert_eq!(refused(line), ErrorCode::BadNick, "{line:?}");
        }
    }

    #[test]
    fn topic_rules() {
        let longest = "t".repeat(MAX_TOPIC);
        assert_eq!(cmd(&format!("/sub {longest}")), Command::Sub(longest));
        for bad in [
            "/sub a b",
            "/sub a/b",
            "/sub **",
            "/unsub a*",
            "/pub *",
            "/pub * x",
            "/pub a/b x",
            &format!("/sub {}", "t".repeat(MAX_TOPIC + 1)),
        ] {
            assert_eq!(refused(bad.as_bytes()), ErrorCode::BadTopic, "{bad}");
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert_eq!(refused(b"caf\xe9"), ErrorCode::BadUtf8);
        assert_eq!(refused(b"/nick \xff"), ErrorCode::BadUtf8);
        // NUL is valid UTF-8: it is relayed like any other character.
        assert_eq!(cmd("a\0b"), Command::Chat("a\0b".into()));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap exhaustive sweep: every 1- and 2-byte line, plus prefixes.
        for a in 0..=255u8 {
            let _ = parse_line(&[a]);
            for b in 0..=255u8 {
                let _ = parse_line(&[a, b]);
                let _ = parse_line(&[b'/', a, b' ', b]);
            }
        }
    }
}

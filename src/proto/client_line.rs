//! Protocol v1 as plain functions: client lines in, server lines out.
//!
//! Nothing in this file touches a socket. A reader thread hands it one framed
//! line (bytes, line ending already removed) and gets back a [`Command`] or a
//! [`Refusal`]; the router hands it a [`Reply`] and gets back the exact bytes
//! to put on the wire. Because it is sans-IO, every rule of the contract
//! (`docs/protocol.md`) is unit-tested here without a single connection, and
//! any other server (the async twin, say) can reuse it unchanged.

use std::fmt;

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

/// The error codes of the contract, one per way a line can be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    LineTooLong,
    BadUtf8,
    UnknownCommand,
    Usage,
    BadNick,
    NickTaken,
    NoSuchNick,
    BadTopic,
    ServerFull,
}

impl ErrorCode {
    /// The code as it appears on the wire, after `ERR `.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::LineTooLong => "line-too-long",
            ErrorCode::BadUtf8 => "bad-utf8",
            ErrorCode::UnknownCommand => "unknown-command",
            ErrorCode::Usage => "usage",
            ErrorCode::BadNick => "bad-nick",
            ErrorCode::NickTaken => "nick-taken",
            ErrorCode::NoSuchNick => "no-such-nick",
            ErrorCode::BadTopic => "bad-topic",
            ErrorCode::ServerFull => "server-full",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

/// What a reader makes of one frame from the [`crate::proto::framing::LineFramer`]:
/// a too-long line becomes `ERR line-too-long`, anything else is parsed.
pub fn parse_frame(frame: crate::proto::framing::Frame<'_>, max_line: usize) -> Parsed {
    match frame {
        crate::proto::framing::Frame::TooLong => Parsed::Refused(Refusal::new(
            ErrorCode::LineTooLong,
            format!("lines are at most {max_line} bytes; the rest of this one is dropped"),
        )),
        crate::proto::framing::Frame::Line(line) => parse_line(line),
    }
}

/// Parses a non-empty UTF-8 line into a command.
///
/// The first space separates the command word from its argument; inside the
/// argument, the first space separates a name from free text (`/dm`, `/pub`).
/// Free text is kept byte for byte, leading and trailing spaces included.
pub fn parse_command(line: &str) -> Result<Command, Refusal> {
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
        "dm" => {
            let Some((to, text)) = arg.split_once(' ') else {
                return Err(Refusal::new(ErrorCode::Usage, "/dm <nick> <text>"));
            };
            if to.is_empty() || text.is_empty() {
                return Err(Refusal::new(ErrorCode::Usage, "/dm <nick> <text>"));
            }
            check_nick(to)?;
            Ok(Command::Dm {
                to: to.to_string(),
                text: text.to_string(),
            })
        }
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
        "pub" => {
            let (topic, payload) = match arg.split_once(' ') {
                Some((topic, payload)) => (topic, payload),
                None => (arg, ""),
            };
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
        "ping" => no_args(Command::Ping, "/ping"),
        "quit" => no_args(Command::Quit, "/quit"),
        "help" => no_args(Command::Help, "/help"),
        _ => Err(Refusal::new(
            ErrorCode::UnknownCommand,
            format!("/{word} is not a command; try /help"),
        )),
    }
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

/// One server line. The router builds these; [`Reply::encode`] turns each
/// into wire bytes exactly once, however many clients receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    Welcome {
        nick: &'a str,
    },
    Join {
        nick: &'a str,
    },
    Leave {
        nick: &'a str,
    },
    Msg {
        from: &'a str,
        text: &'a str,
    },
    Dm {
        from: &'a str,
        text: &'a str,
    },
    Event {
        topic: &'a str,
        from: &'a str,
        payload: &'a str,
    },
    Nick {
        old: &'a str,
        new: &'a str,
    },
    /// `LIST` followed by the nicks, which must already be sorted.
    List {
        nicks: &'a [&'a str],
    },
    /// `OK <command> <detail>`, e.g. `OK sub pickup`.
    Ok {
        command: &'a str,
        detail: &'a str,
    },
    Pong,
    Bye,
    Err {
        code: ErrorCode,
        text: &'a str,
    },
    Help {
        text: &'a str,
    },
}

impl Reply<'_> {
    /// Appends the line, with its single `\n`, to `out`.
    ///
    /// Fields are joined by one space and the last field is written verbatim,
    /// even when empty: `/pub t` (empty payload) gives `EVENT t bob ` with a
    /// trailing space, so a client that splits on the first three spaces
    /// always finds a payload field.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut fields = |parts: &[&str]| {
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(part.as_bytes());
            }
        };
        match *self {
            Reply::Welcome { nick } => fields(&["WELCOME", nick]),
            Reply::Join { nick } => fields(&["JOIN", nick]),
            Reply::Leave { nick } => fields(&["LEAVE", nick]),
            Reply::Msg { from, text } => fields(&["MSG", from, text]),
            Reply::Dm { from, text } => fields(&["DM", from, text]),
            Reply::Event {
                topic,
                from,
                payload,
            } => fields(&["EVENT", topic, from, payload]),
            Reply::Nick { old, new } => fields(&["NICK", old, new]),
            Reply::List { nicks } => {
                out.extend_from_slice(b"LIST");
                for nick in nicks {
                    out.push(b' ');
                    out.extend_from_slice(nick.as_bytes());
                }
            }
            Reply::Ok { command, detail } => fields(&["OK", command, detail]),
            Reply::Pong => fields(&["PONG"]),
            Reply::Bye => fields(&["BYE"]),
            Reply::Err { code, text } => fields(&["ERR", code.as_str(), text]),
            Reply::Help { text } => fields(&["HELP", text]),
        }
        out.push(b'\n');
    }

    /// The line as a `String` (with its `\n`), for tests and logs.
    pub fn to_line(&self) -> String {
        let mut out = Vec::new();
        self.encode(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// One line the server sent, split into its fields. Clients (the interactive
/// client, the scenario runner, the load generator) use this to understand
/// what the hub says; the hub itself never parses its own lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    Welcome {
        nick: String,
    },
    Join {
        nick: String,
    },
    Leave {
        nick: String,
    },
    Msg {
        from: String,
        text: String,
    },
    Dm {
        from: String,
        text: String,
    },
    Event {
        topic: String,
        from: String,
        payload: String,
    },
    Nick {
        old: String,
        new: String,
    },
    List {
        nicks: Vec<String>,
    },
    Ok {
        command: String,
        detail: String,
    },
    Pong,
    Bye,
    Err {
        code: String,
        text: String,
    },
    Help {
        text: String,
    },
}

impl ServerLine {
    /// Parses a server line (without its `\n`). `None` for anything that is
    /// not a protocol v1 server line.
    pub fn parse(line: &str) -> Option<ServerLine> {
        let (kind, rest) = match line.split_once(' ') {
            Some((kind, rest)) => (kind, rest),
            None => (line, ""),
        };
        let two = |rest: &str| -> Option<(String, String)> {
            let (a, b) = rest.split_once(' ')?;
            Some((a.to_string(), b.to_string()))
        };
        let word = |rest: &str| -> Option<String> {
            (!rest.is_empty() && !rest.contains(' ')).then(|| rest.to_string())
        };
        Some(match kind {
            "WELCOME" => ServerLine::Welcome { nick: word(rest)? },
            "JOIN" => ServerLine::Join { nick: word(rest)? },
            "LEAVE" => ServerLine::Leave { nick: word(rest)? },
            "MSG" => {
                let (from, text) = two(rest)?;
                ServerLine::Msg { from, text }
            }
            "DM" => {
                let (from, text) = two(rest)?;
                ServerLine::Dm { from, text }
            }
            "EVENT" => {
                let (topic, rest) = rest.split_once(' ')?;
                let (from, payload) = two(rest)?;
                ServerLine::Event {
                    topic: topic.to_string(),
                    from,
                    payload,
                }
            }
            "NICK" => {
                let (old, new) = two(rest)?;
                ServerLine::Nick { old, new }
            }
            "LIST" => ServerLine::List {
                nicks: rest
                    .split(' ')
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect(),
            },
            "OK" => match rest.split_once(' ') {
                Some((command, detail)) => ServerLine::Ok {
                    command: command.to_string(),
                    detail: detail.to_string(),
                },
                None => ServerLine::Ok {
                    command: rest.to_string(),
                    detail: String::new(),
                },
            },
            "PONG" if rest.is_empty() => ServerLine::Pong,
            "BYE" if rest.is_empty() => ServerLine::Bye,
            "ERR" => match rest.split_once(' ') {
                Some((code, text)) => ServerLine::Err {
                    code: code.to_string(),
                    text: text.to_string(),
                },
                None => ServerLine::Err {
                    code: rest.to_string(),
                    text: String::new(),
                },
            },
            "HELP" => ServerLine::Help {
                text: rest.to_string(),
            },
            _ => return None,
        })
    }
}

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
    fn replies_encode_exactly() {
        let cases: &[(Reply, &str)] = &[
            (Reply::Welcome { nick: "guest-1" }, "WELCOME guest-1\n"),
            (Reply::Join { nick: "a" }, "JOIN a\n"),
            (Reply::Leave { nick: "a" }, "LEAVE a\n"),
            (
                Reply::Msg {
                    from: "a",
                    text: " hi ",
                },
                "MSG a  hi \n",
            ),
            (
                Reply::Dm {
                    from: "a",
                    text: "x",
                },
                "DM a x\n",
            ),
            (
                Reply::Event {
                    topic: "t",
                    from: "a",
                    payload: "{}",
                },
                "EVENT t a {}\n",
            ),
            (
                Reply::Event {
                    topic: "t",
                    from: "a",
                    payload: "",
                },
                "EVENT t a \n",
            ),
            (Reply::Nick { old: "a", new: "b" }, "NICK a b\n"),
            (Reply::List { nicks: &["a", "b"] }, "LIST a b\n"),
            (
                Reply::Ok {
                    command: "sub",
                    detail: "t",
                },
                "OK sub t\n",
            ),
            (Reply::Pong, "PONG\n"),
            (Reply::Bye, "BYE\n"),
            (
                Reply::Err {
                    code: ErrorCode::NickTaken,
                    text: "bob is taken",
                },
                "ERR nick-taken bob is taken\n",
            ),
            (Reply::Help { text: "x" }, "HELP x\n"),
        ];
        for (reply, wire) in cases {
            assert_eq!(&reply.to_line(), wire);
            let parsed = ServerLine::parse(wire.trim_end_matches('\n'));
            assert!(parsed.is_some(), "{wire:?} does not parse back");
        }
    }

    #[test]
    fn server_lines_parse() {
        assert_eq!(
            ServerLine::parse("EVENT pickup vendor {\"a\": 1}"),
            Some(ServerLine::Event {
                topic: "pickup".into(),
                from: "vendor".into(),
                payload: "{\"a\": 1}".into()
            })
        );
        assert_eq!(
            ServerLine::parse("LIST a b"),
            Some(ServerLine::List {
                nicks: vec!["a".into(), "b".into()]
            })
        );
        assert_eq!(ServerLine::parse("NOPE x"), None);
        assert_eq!(ServerLine::parse("WELCOME"), None);
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

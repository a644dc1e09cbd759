//! The lines a server sends, defined once: encoded by the router, parsed by
//! every client (the terminal client, the agents, the scenario runner, the
//! load generator, `tcphub check`).
//!
//! One enum, [`ServerLine`], holds borrowed text, so the router formats a
//! line straight from the sender's nick without copying it, and a client
//! parses a line without allocating. [`ServerLine::encode`] and
//! [`ServerLine::parse`] are inverses, and a test below checks it for every
//! kind of line.

use std::borrow::Cow;
use std::fmt;

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
    TooManySubs,
    LineTimeout,
    IdleTimeout,
}

impl ErrorCode {
    /// Every code, for parsing and for tests.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::LineTooLong,
        ErrorCode::BadUtf8,
        ErrorCode::UnknownCommand,
        ErrorCode::Usage,
        ErrorCode::BadNick,
        ErrorCode::NickTaken,
        ErrorCode::NoSuchNick,
        ErrorCode::BadTopic,
        ErrorCode::ServerFull,
        ErrorCode::TooManySubs,
        ErrorCode::LineTimeout,
        ErrorCode::IdleTimeout,
    ];

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
            ErrorCode::TooManySubs => "too-many-subs",
            ErrorCode::LineTimeout => "line-timeout",
            ErrorCode::IdleTimeout => "idle-timeout",
        }
    }

    /// The code for its wire name; `None` for a code this contract lacks.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One server line. The router builds these and [`ServerLine::encode`]s
/// each exactly once, however many clients receive it; clients
/// [`ServerLine::parse`] what they read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine<'a> {
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
    /// `LIST` followed by the nicks, sorted. Borrowed when the router
    /// encodes, owned (a `Vec` of slices of the line) when a client parses.
    List {
        nicks: Cow<'a, [&'a str]>,
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
    /// `NOTICE <text>`: something the hub tells a person, not a program
    /// (that this session is recorded; that recording stopped). A
    /// compatible extension of protocol v1 (docs/protocol.md): only sent
    /// when a feature that needs it is on (`serve --record`), and a client
    /// that does not know it may show or skip it.
    Notice {
        text: &'a str,
    },
}

impl<'a> ServerLine<'a> {
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
        match self {
            ServerLine::Welcome { nick } => fields(&["WELCOME", nick]),
            ServerLine::Join { nick } => fields(&["JOIN", nick]),
            ServerLine::Leave { nick } => fields(&["LEAVE", nick]),
            ServerLine::Msg { from, text } => fields(&["MSG", from, text]),
            ServerLine::Dm { from, text } => fields(&["DM", from, text]),
            ServerLine::Event {
                topic,
                from,
                payload,
            } => fields(&["EVENT", topic, from, payload]),
            ServerLine::Nick { old, new } => fields(&["NICK", old, new]),
            ServerLine::List { nicks } => {
                fields(&["LIST"]);
                for nick in nicks.iter() {
                    out.push(b' ');
                    out.extend_from_slice(nick.as_bytes());
                }
            }
            ServerLine::Ok { command, detail } => fields(&["OK", command, detail]),
            ServerLine::Pong => fields(&["PONG"]),
            ServerLine::Bye => fields(&["BYE"]),
            ServerLine::Err { code, text } => fields(&["ERR", code.as_str(), text]),
            ServerLine::Help { text } => fields(&["HELP", text]),
            ServerLine::Notice { text } => fields(&["NOTICE", text]),
        }
        out.push(b'\n');
    }

    /// The line as a `String` (with its `\n`), for tests.
    #[cfg(test)]
    fn to_line(&self) -> String {
        let mut out = Vec::new();
        self.encode(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Parses a server line (without its `\n`). `None` for anything that is
    /// not a protocol v1 server line, an unknown error code included.
    pub fn parse(line: &'a str) -> Option<ServerLine<'a>> {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        // A one-word field: the nick of WELCOME, JOIN, LEAVE.
        let word = (!rest.is_empty() && !rest.contains(' ')).then_some(rest);
        Some(match kind {
            "WELCOME" => ServerLine::Welcome { nick: word? },
            "JOIN" => ServerLine::Join { nick: word? },
            "LEAVE" => ServerLine::Leave { nick: word? },
            "MSG" => {
                let (from, text) = rest.split_once(' ')?;
                ServerLine::Msg { from, text }
            }
            "DM" => {
                let (from, text) = rest.split_once(' ')?;
                ServerLine::Dm { from, text }
            }
            "EVENT" => {
                let (topic, rest) = rest.split_once(' ')?;
                let (from, payload) = rest.split_once(' ')?;
                ServerLine::Event {
                    topic,
                    from,
                    payload,
                }
            }
            "NICK" => {
                let (old, new) = rest.split_once(' ')?;
                ServerLine::Nick { old, new }
            }
            "LIST" => ServerLine::List {
                nicks: rest.split(' ').filter(|n| !n.is_empty()).collect(),
            },
            "OK" => {
                let (command, detail) = rest.split_once(' ').unwrap_or((rest, ""));
                ServerLine::Ok { command, detail }
            }
            "PONG" if rest.is_empty() => ServerLine::Pong,
            "BYE" if rest.is_empty() => ServerLine::Bye,
            "ERR" => {
                let (code, text) = rest.split_once(' ').unwrap_or((rest, ""));
                ServerLine::Err {
                    code: ErrorCode::parse(code)?,
                    text,
                }
            }
            "HELP" => ServerLine::Help { text: rest },
            "NOTICE" => ServerLine::Notice { text: rest },
            _ => return None,
        })
    }
}

/// The line a connection the hub cannot take gets, alone, before it is
/// closed; both servers send this same text.
pub fn server_full_line() -> Vec<u8> {
    let mut line = Vec::new();
    ServerLine::Err {
        code: ErrorCode::ServerFull,
        text: "the hub is at its --max-clients limit; try again later",
    }
    .encode(&mut line);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_encodes_exactly_and_parses_back() {
        let nicks = ["a", "b"];
        let cases: Vec<(ServerLine, &str)> = vec![
            (ServerLine::Welcome { nick: "guest-1" }, "WELCOME guest-1\n"),
            (ServerLine::Join { nick: "a" }, "JOIN a\n"),
            (ServerLine::Leave { nick: "a" }, "LEAVE a\n"),
            (
                ServerLine::Msg {
                    from: "a",
                    text: " hi ",
                },
                "MSG a  hi \n",
            ),
            (
                ServerLine::Dm {
                    from: "a",
                    text: "x",
                },
                "DM a x\n",
            ),
            (
                ServerLine::Event {
                    topic: "t",
                    from: "a",
                    payload: "{}",
                },
                "EVENT t a {}\n",
            ),
            (
                ServerLine::Event {
                    topic: "t",
                    from: "a",
                    payload: "",
                },
                "EVENT t a \n",
            ),
            (ServerLine::Nick { old: "a", new: "b" }, "NICK a b\n"),
            (
                ServerLine::List {
                    nicks: Cow::Borrowed(&nicks),
                },
                "LIST a b\n",
            ),
            (
                ServerLine::List {
                    nicks: Cow::Borrowed(&[]),
                },
                "LIST\n",
            ),
            (
                ServerLine::Ok {
                    command: "sub",
                    detail: "t",
                },
                "OK sub t\n",
            ),
            (ServerLine::Pong, "PONG\n"),
            (ServerLine::Bye, "BYE\n"),
            (
                ServerLine::Err {
                    code: ErrorCode::NickTaken,
                    text: "bob is taken",
                },
                "ERR nick-taken bob is taken\n",
            ),
            (ServerLine::Help { text: "x" }, "HELP x\n"),
            (
                ServerLine::Notice {
                    text: "this session is recorded",
                },
                "NOTICE this session is recorded\n",
            ),
        ];
        for (line, wire) in &cases {
            assert_eq!(&line.to_line(), wire);
            let parsed = ServerLine::parse(wire.trim_end_matches('\n'));
            assert_eq!(parsed.as_ref(), Some(line), "{wire:?} parses back");
        }
    }

    #[test]
    fn not_server_lines() {
        for line in [
            "NOPE x",
            "WELCOME",
            "WELCOME a b",
            "PONG x",
            "ERR no-such-code x",
        ] {
            assert_eq!(ServerLine::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn every_error_code_round_trips() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("server-full"), Some(ErrorCode::ServerFull));
    }

    #[test]
    fn the_full_line_is_one_err() {
        let line = server_full_line();
        let text = std::str::from_utf8(&line).unwrap().trim_end();
        assert!(matches!(
            ServerLine::parse(text),
            Some(ServerLine::Err {
                code: ErrorCode::ServerFull,
                ..
            })
        ));
    }
}

//! The hub-to-hub wire: the lines linked hubs send each other, defined once
//! (encode and parse), with no IO. `docs/linking.md` is the reference.
//!
//! It is a line protocol like the client one, readable with `nc`: every
//! line is a word and fields separated by one space, the last field being
//! the rest of the line. A client elsewhere in the network is always
//! written `<nick>@<hub>`, the very name clients see, so a relayed line
//! passes through a middle hub unchanged.
//!
//! ```text
//! HELLO 1 <hub> <key>              the handshake (version 1), both ways
//! HUB <hub>                        <hub> is reachable through the sender
//! SPLIT <hub>                      <hub> is not any more (nor its clients)
//! JOIN <nick>@<hub>                a client appeared (also the netjoin burst)
//! LEAVE <nick>@<hub>               a client left
//! NICK <nick>@<hub> <new>          a client renamed
//! MSG <nick>@<hub> <text>          a chat line
//! EVENT <topic> <nick>@<hub> <payload>
//! DM <nick>@<hub> <nick>@<hub> <text>   to, from, text
//! SUB <topic>                      someone beyond the sender wants <topic>
//! UNSUB <topic>                    nobody beyond the sender wants it any more
//! PING                             heartbeat: nothing else to say
//! PONG                             the answer to a PING
//! ERR <code> <text>                a refusal; the sender closes the link
//! ```

use std::fmt;

use crate::proto::client_line::{MAX_NICK, check_nick, check_topic};

/// The one version of the link protocol this hub speaks.
pub const LINK_VERSION: &str = "1";

/// How a link line can be refused: the code after `ERR` on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Not a link line at all (or a field breaks its rules).
    BadLine,
    /// The first line was not a well-formed `HELLO`.
    BadHello,
    /// A version this hub does not speak.
    BadVersion,
    /// No key, or not the key this hub was given.
    BadKey,
    /// This hub has no `--link-key`: it refuses every link.
    NoKey,
    /// The peer calls itself by this hub's own name.
    NameTaken,
    /// The peer (or a hub behind it) is already reachable: a loop.
    Loop,
}

impl LinkError {
    pub const ALL: [LinkError; 7] = [
        LinkError::BadLine,
        LinkError::BadHello,
        LinkError::BadVersion,
        LinkError::BadKey,
        LinkError::NoKey,
        LinkError::NameTaken,
        LinkError::Loop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkError::BadLine => "bad-line",
            LinkError::BadHello => "bad-hello",
            LinkError::BadVersion => "bad-version",
            LinkError::BadKey => "bad-key",
            LinkError::NoKey => "no-key",
            LinkError::NameTaken => "name-taken",
            LinkError::Loop => "loop",
        }
    }

    pub fn parse(text: &str) -> Option<LinkError> {
        LinkError::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused link line: the code and the human text of `ERR <code> <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRefusal {
    pub code: LinkError,
    pub text: String,
}

impl LinkRefusal {
    pub fn new(code: LinkError, text: impl Into<String>) -> Self {
        LinkRefusal {
            code,
            text: text.into(),
        }
    }

    /// The `ERR` line to send before closing.
    pub fn line(&self) -> LinkLine<&str> {
        LinkLine::Err {
            code: self.code,
            text: &self.text,
        }
    }
}

/// One link line. `S` is `&str` when encoding or parsing in place, and
/// `String` when a line crosses from a link's reader thread to the
/// dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkLine<S> {
    Hello { version: S, hub: S, key: S },
    Hub { hub: S },
    Split { hub: S },
    Join { who: S },
    Leave { who: S },
    Nick { who: S, new: S },
    Msg { from: S, text: S },
    Event { topic: S, from: S, payload: S },
    Dm { to: S, from: S, text: S },
    Sub { topic: S },
    Unsub { topic: S },
    Ping,
    Pong,
    Err { code: LinkError, text: S },
}

impl<S: AsRef<str>> LinkLine<S> {
    /// Appends the line, with its `\n`, to `out`.
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
            LinkLine::Hello { version, hub, key } => {
                fields(&["HELLO", version.as_ref(), hub.as_ref(), key.as_ref()])
            }
            LinkLine::Hub { hub } => fields(&["HUB", hub.as_ref()]),
            LinkLine::Split { hub } => fields(&["SPLIT", hub.as_ref()]),
            LinkLine::Join { who } => fields(&["JOIN", who.as_ref()]),
            LinkLine::Leave { who } => fields(&["LEAVE", who.as_ref()]),
            LinkLine::Nick { who, new } => fields(&["NICK", who.as_ref(), new.as_ref()]),
            LinkLine::Msg { from, text } => fields(&["MSG", from.as_ref(), text.as_ref()]),
            LinkLine::Event {
                topic,
                from,
                payload,
            } => fields(&["EVENT", topic.as_ref(), from.as_ref(), payload.as_ref()]),
            LinkLine::Dm { to, from, text } => {
                fields(&["DM", to.as_ref(), from.as_ref(), text.as_ref()])
            }
            LinkLine::Sub { topic } => fields(&["SUB", topic.as_ref()]),
            LinkLine::Unsub { topic } => fields(&["UNSUB", topic.as_ref()]),
            LinkLine::Ping => fields(&["PING"]),
            LinkLine::Pong => fields(&["PONG"]),
            LinkLine::Err { code, text } => fields(&["ERR", code.as_str(), text.as_ref()]),
        }
        out.push(b'\n');
    }

    /// The line as text (with its `\n`), for tests and logs.
    pub fn to_line(&self) -> String {
        let mut out = Vec::new();
        self.encode(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// An owned copy, to send through a channel.
    pub fn to_owned_line(&self) -> LinkLine<String> {
        let s = |x: &S| x.as_ref().to_string();
        match self {
            LinkLine::Hello { version, hub, key } => LinkLine::Hello {
                version: s(version),
                hub: s(hub),
                key: s(key),
            },
            LinkLine::Hub { hub } => LinkLine::Hub { hub: s(hub) },
            LinkLine::Split { hub } => LinkLine::Split { hub: s(hub) },
            LinkLine::Join { who } => LinkLine::Join { who: s(who) },
            LinkLine::Leave { who } => LinkLine::Leave { who: s(who) },
            LinkLine::Nick { who, new } => LinkLine::Nick {
                who: s(who),
                new: s(new),
            },
            LinkLine::Msg { from, text } => LinkLine::Msg {
                from: s(from),
                text: s(text),
            },
            LinkLine::Event {
                topic,
                from,
                payload,
            } => LinkLine::Event {
                topic: s(topic),
                from: s(from),
                payload: s(payload),
            },
            LinkLine::Dm { to, from, text } => LinkLine::Dm {
                to: s(to),
                from: s(from),
                text: s(text),
            },
            LinkLine::Sub { topic } => LinkLine::Sub { topic: s(topic) },
            LinkLine::Unsub { topic } => LinkLine::Unsub { topic: s(topic) },
            LinkLine::Ping => LinkLine::Ping,
            LinkLine::Pong => LinkLine::Pong,
            LinkLine::Err { code, text } => LinkLine::Err {
                code: *code,
                text: s(text),
            },
        }
    }
}

impl<'a> LinkLine<&'a str> {
    /// Parses one link line (without its `\n`). Every field is checked
    /// (names, topics, `nick@hub`), so what comes out can be routed as is.
    pub fn parse(line: &'a str) -> Result<LinkLine<&'a str>, LinkRefusal> {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        Ok(match kind {
            "HELLO" => {
                let (version, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                let (hub, key) = rest.split_once(' ').unwrap_or((rest, ""));
                LinkLine::Hello { version, hub, key }
            }
            "HUB" | "SPLIT" => {
                check_hub_name(rest).map_err(|why| bad(&why))?;
                if kind == "HUB" {
                    LinkLine::Hub { hub: rest }
                } else {
                    LinkLine::Split { hub: rest }
                }
            }
            "JOIN" | "LEAVE" => {
                split_who(rest).map_err(|why| bad(&why))?;
                if kind == "JOIN" {
                    LinkLine::Join { who: rest }
                } else {
                    LinkLine::Leave { who: rest }
                }
            }
            "NICK" => parse_nick(rest)?,
            "MSG" => {
                let (from, text) = two(rest, "MSG <nick>@<hub> <text>")?;
                split_who(from).map_err(|why| bad(&why))?;
                LinkLine::Msg { from, text }
            }
            "EVENT" => parse_event(rest)?,
            "DM" => parse_dm(rest)?,
            "SUB" | "UNSUB" => {
                if rest != "*" {
                    check_topic(rest).map_err(|r| bad(&r.text))?;
                }
                if kind == "SUB" {
                    LinkLine::Sub { topic: rest }
                } else {
                    LinkLine::Unsub { topic: rest }
                }
            }
            "PING" if rest.is_empty() => LinkLine::Ping,
            "PONG" if rest.is_empty() => LinkLine::Pong,
            "ERR" => {
                let (code, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let code = LinkError::parse(code).ok_or_else(|| bad("unknown ERR code"))?;
                LinkLine::Err { code, text }
            }
            _ => {
                return Err(bad(
                    "not a link line (HELLO HUB SPLIT JOIN LEAVE NICK MSG EVENT DM SUB UNSUB PING PONG ERR)",
                ));
            }
        })
    }
}

/// The refusal for a line that breaks the link protocol's rules: every
/// parse error is `bad-line`, only the text says what was wrong.
fn bad(why: &str) -> LinkRefusal {
    LinkRefusal::new(LinkError::BadLine, why.to_string())
}

/// The next field and the rest of the line; without a space the line is
/// too short, refused with its `usage`.
fn two<'a>(rest: &'a str, usage: &str) -> Result<(&'a str, &'a str), LinkRefusal> {
    rest.split_once(' ').ok_or_else(|| bad(usage))
}

/// The fields of `NICK <nick>@<hub> <new>` (after `NICK `), both names
/// checked, so the router can rename without looking again.
fn parse_nick(rest: &str) -> Result<LinkLine<&str>, LinkRefusal> {
    let (who, new) = two(rest, "NICK <nick>@<hub> <new>")?;
    split_who(who).map_err(|why| bad(&why))?;
    check_nick(new).map_err(|r| bad(&r.text))?;
    Ok(LinkLine::Nick { who, new })
}

/// The fields of `EVENT <topic> <nick>@<hub> <payload>`. Both spaces are
/// looked for before any field is checked, so a short line is refused with
/// the usage text.
fn parse_event(rest: &str) -> Result<LinkLine<&str>, LinkRefusal> {
    let usage = "EVENT <topic> <nick>@<hub> <payload>";
    let (topic, rest) = two(rest, usage)?;
    let (from, payload) = two(rest, usage)?;
    check_topic(topic).map_err(|r| bad(&r.text))?;
    split_who(from).map_err(|why| bad(&why))?;
    Ok(LinkLine::Event {
        topic,
        from,
        payload,
    })
}

/// The fields of `DM <nick>@<hub> <nick>@<hub> <text>` (to, then from),
/// both addresses checked, the text taken as it is.
fn parse_dm(rest: &str) -> Result<LinkLine<&str>, LinkRefusal> {
    let usage = "DM <nick>@<hub> <nick>@<hub> <text>";
    let (to, rest) = two(rest, usage)?;
    let (from, text) = two(rest, usage)?;
    split_who(to).map_err(|why| bad(&why))?;
    split_who(from).map_err(|why| bad(&why))?;
    Ok(LinkLine::Dm { to, from, text })
}

/// A hub's name follows the nick rules: 1 to 32 of `A-Z a-z 0-9 _ -`.
pub fn check_hub_name(name: &str) -> Result<(), String> {
    match check_nick(name) {
        Ok(()) => Ok(()),
        Err(_) => Err(format!(
            "a hub name is 1 to {MAX_NICK} of A-Z a-z 0-9 _ -, not {name:?}"
        )),
    }
}

/// `<nick>@<hub>` split in two, each part checked.
pub fn split_who(who: &str) -> Result<(&str, &str), String> {
    let (nick, hub) = who
        .split_once('@')
        .ok_or_else(|| format!("expected <nick>@<hub>, not {who:?}"))?;
    check_nick(nick).map_err(|r| r.text)?;
    check_hub_name(hub)?;
    Ok((nick, hub))
}

/// A well-formed, acceptable `HELLO`: what the handshake learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub hub: String,
}

/// Checks the first line a link peer sent: a `HELLO` of our version, a
/// valid hub name and our key. `our_key` `None` means this hub has no key
/// and refuses every link. A peer's `ERR` line comes back as the refusal it
/// carries (the dialler reads the answer with this too).
pub fn check_hello(line: &[u8], our_key: Option<&str>) -> Result<Hello, LinkRefusal> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(LinkRefusal::new(LinkError::BadHello, "not UTF-8"));
    };
    let parsed = LinkLine::parse(text);
    let (version, hub, key) = match parsed {
        Ok(LinkLine::Hello { version, hub, key }) => (version, hub, key),
        Ok(LinkLine::Err { code, text }) => return Err(LinkRefusal::new(code, text)),
        _ => {
            return Err(LinkRefusal::new(
                LinkError::BadHello,
                format!("expected HELLO {LINK_VERSION} <hub> <key>"),
            ));
        }
    };
    if version != LINK_VERSION {
        return Err(LinkRefusal::new(
            LinkError::BadVersion,
            format!("this hub speaks link version {LINK_VERSION} only, not {version:?}"),
        ));
    }
    check_hub_name(hub).map_err(|why| LinkRefusal::new(LinkError::BadHello, why))?;
    let Some(our_key) = our_key else {
        return Err(LinkRefusal::new(
            LinkError::NoKey,
            "this hub has no --link-key, so it refuses every link",
        ));
    };
    if key.is_empty() {
        return Err(LinkRefusal::new(
            LinkError::BadKey,
            "no key: HELLO 1 <hub> <key>",
        ));
    }
    if key != our_key {
        return Err(LinkRefusal::new(LinkError::BadKey, "wrong key"));
    }
    Ok(Hello {
        hub: hub.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(wire: &str) -> LinkLine<String> {
        let parsed = LinkLine::parse(wire).unwrap_or_else(|e| panic!("{wire:?}: {e:?}"));
        assert_eq!(parsed.to_line(), format!("{wire}\n"), "{wire:?} re-encodes");
        parsed.to_owned_line()
    }

    #[test]
    fn every_line_parses_and_encodes_back() {
        for wire in [
            "HELLO 1 hub-a secret with spaces",
            "HUB hub-b",
            "SPLIT hub-b",
            "JOIN bob@hub-b",
            "LEAVE bob@hub-b",
            "NICK bob@hub-b robert",
            "MSG bob@hub-b  hi there ",
            "MSG bob@hub-b ",
            "EVENT pickup bob@hub-b {\"id\":1}",
            "EVENT pickup bob@hub-b ",
            "DM ann@hub-a bob@hub-b psst",
            "SUB pickup",
            "SUB *",
            "UNSUB *",
            "PING",
            "PONG",
            "ERR loop hub-b is already reachable",
        ] {
            round_trip(wire);
        }
        assert_eq!(
            round_trip("EVENT t b@h x y"),
            LinkLine::Event {
                topic: "t".into(),
                from: "b@h".into(),
                payload: "x y".into()
            }
        );
    }

    #[test]
    fn garbage_is_refused_as_bad_line() {
        for wire in [
            "",
            "hello",
            "JOIN bob",
            "JOIN bob@",
            "JOIN @hub",
            "JOIN b.b@hub",
            "MSG bob hi",
            "NICK bob@h x.y",
            "EVENT * bob@h x",
            "SUB a b",
            "PING now",
            "ERR what x",
            "HUB a@b",
            "DM ann bob@h x",
        ] {
            let e = LinkLine::parse(wire).expect_err(wire);
            assert_eq!(e.code, LinkError::BadLine, "{wire:?}");
        }
    }

    #[test]
    fn the_handshake_checks_version_name_and_key() {
        let key = Some("sesame");
        assert_eq!(
            check_hello(b"HELLO 1 hub-b sesame", key),
            Ok(Hello {
                hub: "hub-b".into()
            })
        );
        let code = |line: &[u8], key| check_hello(line, key).unwrap_err().code;
        assert_eq!(code(b"HELLO 1 hub-b wrong", key), LinkError::BadKey);
        assert_eq!(code(b"HELLO 1 hub-b", key), LinkError::BadKey);
        assert_eq!(code(b"HELLO 2 hub-b sesame", key), LinkError::BadVersion);
        assert_eq!(code(b"HELLO 1 hub.b sesame", key), LinkError::BadHello);
        assert_eq!(code(b"JOIN a@b", key), LinkError::BadHello);
        assert_eq!(code(b"\xff\xfe", key), LinkError::BadHello);
        assert_eq!(code(b"HELLO 1 hub-b sesame", None), LinkError::NoKey);
        // the dialler reads the answer with the same check
        assert_eq!(code(b"ERR loop already there", key), LinkError::Loop);
    }

    #[test]
    fn every_error_code_round_trips() {
        for code in LinkError::ALL {
            assert_eq!(LinkError::parse(code.as_str()), Some(code));
        }
        assert_eq!(
            LinkRefusal::new(LinkError::NoKey, "x").line().to_line(),
            "ERR no-key x\n"
        );
    }

    #[test]
    fn names_split_at_the_at_sign() {
        assert_eq!(split_who("bob@hub-2"), Ok(("bob", "hub-2")));
        assert!(split_who("bob").is_err());
        assert!(split_who("bob@hub@x").is_err());
    }
}

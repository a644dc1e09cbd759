//! Where tcphub's lines live in NATS: the subject layout and the sender
//! convention, as plain functions (no sockets, no clocks).
//!
//! Why a module of its own: the layout is the contract between every hub of
//! a room *and* any other NATS client (`nats pub tcphub.main.topic.pickup hi`
//! must reach tcphub subscribers of `pickup`), so it is written once, here,
//! and documented in docs/nats.md. Everything under `tcphub.<room>.`:
//!
//! | subject | carries |
//! | --- | --- |
//! | `tcphub.<room>.chat` | a chat line, payload = the text |
//! | `tcphub.<room>.topic.<topic>` | a `/pub`, payload = the event's payload |
//! | `tcphub.<room>.dm.<hub>.<nick>` | a `/dm nick@hub`, payload = the text |
//! | `tcphub.<room>.presence` | hub presence lines ([`Presence`]) |
//!
//! The payload is always the bare text, so a foreign client can publish and
//! read it. Who sent it travels in the reply subject: a hub publishes with
//! reply = the sender's own DM subject (`tcphub.<room>.dm.<hub>.<nick>`),
//! which is also where a NATS client answers them. A message whose reply is
//! not such a subject came from outside tcphub and is shown as
//! [`FOREIGN_NICK`]`@`[`FOREIGN_HUB`]. NATS core does not authenticate
//! senders: a client allowed on the room's subjects can claim any name.

use crate::proto::client_line::{check_nick, check_topic};

/// The hub name foreign (non-tcphub) publishers are shown under, so a hub
/// may not be named this when it joins NATS.
pub const FOREIGN_HUB: &str = "nats";
/// The nick foreign publishers are shown with: `anon@nats`.
pub const FOREIGN_NICK: &str = "anon";
/// The token a topic's empty part (`a..b`, `.a`) becomes: NATS forbids empty
/// tokens, and `%` is not in a topic's alphabet, so the mapping stays
/// one-to-one.
const EMPTY_PART: &str = "%";

/// What a message on the room's subjects is, read from its subject alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A chat line for everyone in the room.
    Chat,
    /// An event on this (v1) topic.
    Topic(String),
    /// A direct message for `nick` on `hub`.
    Dm { hub: String, nick: String },
    /// A hub presence line.
    Presence,
}

/// The subjects of one room: every hub of a room must use the same room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// The layout of `room`, which is 1 to 32 of `A-Z a-z 0-9 _ -` (one
    /// NATS token, no wildcard). The message is for the command line.
    pub fn new(room: &str) -> Result<Self, String> {
        check_nick(room)
            .map_err(|_| format!("a room is 1 to 32 of A-Z a-z 0-9 _ -, not {room:?}"))?;
        Ok(Layout {
            prefix: format!("tcphub.{room}."),
        })
    }

    /// Where chat lines go.
    pub fn chat(&self) -> String {
        format!("{}chat", self.prefix)
    }

    /// Where presence lines go.
    pub fn presence(&self) -> String {
        format!("{}presence", self.prefix)
    }

    /// The subject of a v1 topic (already checked by the client parser):
    /// its dots are NATS token separators, so `pickup.north` can be matched
    /// by `tcphub.main.topic.pickup.>`; an empty part becomes `%`.
    pub fn topic(&self, topic: &str) -> String {
        let parts: Vec<&str> = topic
            .split('.')
            .map(|p| if p.is_empty() { EMPTY_PART } else { p })
            .collect();
        format!("{}topic.{}", self.prefix, parts.join("."))
    }

    /// The one subscription that receives every topic (a local `*`).
    pub fn every_topic(&self) -> String {
        format!("{}topic.>", self.prefix)
    }

    /// The subject a client `nick` of `hub` receives DMs on; also the reply
    /// subject that names it as a sender.
    pub fn dm(&self, hub: &str, nick: &str) -> String {
        format!("{}dm.{hub}.{nick}", self.prefix)
    }

    /// The one subscription that receives every DM for `hub`'s clients.
    pub fn dm_inbox(&self, hub: &str) -> String {
        format!("{}dm.{hub}.*", self.prefix)
    }

    /// What a received subject is, or `None` if it is not one of ours (or
    /// names a topic, hub or nick v1 would refuse: dropped, never shown).
    pub fn classify(&self, subject: &str) -> Option<Kind> {
        let rest = subject.strip_prefix(&self.prefix)?;
        match rest {
            "chat" => return Some(Kind::Chat),
            "presence" => return Some(Kind::Presence),
            _ => {}
        }
        if let Some(topic) = rest.strip_prefix("topic.") {
            let topic: Vec<&str> = topic
                .split('.')
                .map(|p| if p == EMPTY_PART { "" } else { p })
                .collect();
            let topic = topic.join(".");
            return check_topic(&topic).ok().map(|()| Kind::Topic(topic));
        }
        let (hub, nick) = rest.strip_prefix("dm.")?.split_once('.')?;
        check_nick(hub).ok()?;
        check_nick(nick).ok()?;
        Some(Kind::Dm {
            hub: hub.to_string(),
            nick: nick.to_string(),
        })
    }

    /// Who sent a message with this reply subject: `(hub, nick)`, or the
    /// foreign sender when the reply is absent or not a tcphub DM subject.
    pub fn sender(&self, reply: Option<&str>) -> (String, String) {
        match reply.and_then(|r| self.classify(r)) {
            Some(Kind::Dm { hub, nick }) => (hub, nick),
            _ => (FOREIGN_HUB.to_string(), FOREIGN_NICK.to_string()),
        }
    }
}

/// What hubs tell each other on the presence subject, one line a message.
///
/// `Hello` asks every hub to answer with a `Roster` (a hub that just joined,
/// or reconnected, learns everyone); `Roster` is also the heartbeat, sent
/// every interval: a hub not heard for the timeout is gone. `Join`/`Leave`/
/// `Nick` keep the others' lists current between heartbeats; `Bye` is the
/// goodbye of a hub that stops cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// `HELLO <hub>`: I am new here, everyone send me your roster.
    Hello { hub: String },
    /// `ROSTER <hub> <nick>...`: everyone on my hub right now (heartbeat).
    Roster { hub: String, nicks: Vec<String> },
    /// `JOIN <hub> <nick>`.
    Join { hub: String, nick: String },
    /// `LEAVE <hub> <nick>`.
    Leave { hub: String, nick: String },
    /// `NICK <hub> <old> <new>`.
    Nick {
        hub: String,
        old: String,
        new: String,
    },
    /// `BYE <hub>`: I am stopping; my users leave now.
    Bye { hub: String },
}

impl Presence {
    /// The line's bytes, the payload of one presence message.
    pub fn encode(&self) -> String {
        match self {
            Presence::Hello { hub } => format!("HELLO {hub}"),
            Presence::Roster { hub, nicks } if nicks.is_empty() => format!("ROSTER {hub}"),
            Presence::Roster { hub, nicks } => format!("ROSTER {hub} {}", nicks.join(" ")),
            Presence::Join { hub, nick } => format!("JOIN {hub} {nick}"),
            Presence::Leave { hub, nick } => format!("LEAVE {hub} {nick}"),
            Presence::Nick { hub, old, new } => format!("NICK {hub} {old} {new}"),
            Presence::Bye { hub } => format!("BYE {hub}"),
        }
    }

    /// A presence payload read back; `None` for anything malformed (a
    /// foreign client may publish there: such lines are dropped and logged
    /// by the caller, never trusted).
    pub fn parse(payload: &[u8]) -> Option<Presence> {
        let text = std::str::from_utf8(payload).ok()?;
        let mut words = text.split(' ');
        let verb = words.next()?;
        let hub = words.next().filter(|h| check_nick(h).is_ok())?.to_string();
        let rest: Vec<&str> = words.collect();
        if rest.iter().any(|n| check_nick(n).is_err()) {
            return None;
        }
        let one = |i: usize| rest.get(i).map(|s| s.to_string());
        let p = match (verb, rest.len()) {
            ("HELLO", 0) => Presence::Hello { hub },
            ("BYE", 0) => Presence::Bye { hub },
            ("ROSTER", _) => Presence::Roster {
                hub,
                nicks: rest.iter().map(|s| s.to_string()).collect(),
            },
            ("JOIN", 1) => Presence::Join { hub, nick: one(0)? },
            ("LEAVE", 1) => Presence::Leave { hub, nick: one(0)? },
            ("NICK", 2) => Presence::Nick {
                hub,
                old: one(0)?,
                new: one(1)?,
            },
            _ => return None,
        };
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main() -> Layout {
        Layout::new("main").unwrap()
    }

    #[test]
    fn subjects_of_the_main_room() {
        let l = main();
        assert_eq!(l.chat(), "tcphub.main.chat");
        assert_eq!(l.presence(), "tcphub.main.presence");
        assert_eq!(l.topic("pickup"), "tcphub.main.topic.pickup");
        assert_eq!(l.every_topic(), "tcphub.main.topic.>");
        assert_eq!(l.dm("b", "bob"), "tcphub.main.dm.b.bob");
        assert_eq!(l.dm_inbox("b"), "tcphub.main.dm.b.*");
    }

    #[test]
    fn bad_rooms_are_refused() {
        for room in ["", "a.b", "*", ">", "a b", &"x".repeat(33)] {
            assert!(Layout::new(room).is_err(), "{room:?}");
        }
    }

    #[test]
    fn every_topic_shape_round_trips_through_a_valid_subject() {
        let l = main();
        for topic in ["pickup", "a.b", ".a", "a.", "a..b", ".", "..", "_-9.Z"] {
            let subject = l.topic(topic);
            let tokens: Vec<&str> = subject.split('.').collect();
            assert!(tokens.iter().all(|t| !t.is_empty()), "{subject}");
            assert!(!subject.contains(['*', '>', ' ']), "{subject}");
            assert_eq!(l.classify(&subject), Some(Kind::Topic(topic.into())));
        }
    }

    #[test]
    fn classify_reads_each_kind_and_drops_the_rest() {
        let l = main();
        assert_eq!(l.classify("tcphub.main.chat"), Some(Kind::Chat));
        assert_eq!(l.classify("tcphub.main.presence"), Some(Kind::Presence));
        assert_eq!(
            l.classify("tcphub.main.dm.b.bob"),
            Some(Kind::Dm {
                hub: "b".into(),
                nick: "bob".into()
            })
        );
        for other in [
            "tcphub.other.chat",
            "tcphub.main.dm.b",
            "tcphub.main.dm.b.bob.x",
            "tcphub.main.topic.a%b",
            "tcphub.main.topic",
            "tcphub.main.nope",
            "elsewhere",
        ] {
            assert_eq!(l.classify(other), None, "{other}");
        }
    }

    #[test]
    fn the_sender_is_the_reply_subject_or_foreign() {
        let l = main();
        let who = l.sender(Some("tcphub.main.dm.a.ann"));
        assert_eq!(who, ("a".into(), "ann".into()));
        let foreign = (FOREIGN_HUB.to_string(), FOREIGN_NICK.to_string());
        assert_eq!(l.sender(None), foreign);
        assert_eq!(l.sender(Some("_INBOX.x1")), foreign);
        assert_eq!(l.sender(Some("tcphub.main.chat")), foreign);
        assert_eq!(l.sender(Some("tcphub.other.dm.a.ann")), foreign);
    }

    #[test]
    fn presence_lines_round_trip_and_garbage_is_dropped() {
        let s = |x: &str| x.to_string();
        for p in [
            Presence::Hello { hub: s("a") },
            Presence::Bye { hub: s("a") },
            Presence::Roster {
                hub: s("a"),
                nicks: vec![],
            },
            Presence::Roster {
                hub: s("a"),
                nicks: vec![s("ann"), s("bob")],
            },
            Presence::Join {
                hub: s("a"),
                nick: s("ann"),
            },
            Presence::Leave {
                hub: s("a"),
                nick: s("ann"),
            },
            Presence::Nick {
                hub: s("a"),
                old: s("ann"),
                new: s("anna"),
            },
        ] {
            assert_eq!(Presence::parse(p.encode().as_bytes()), Some(p));
        }
        for bad in [
            "",
            "HELLO",
            "HELLO a b",
            "JOIN a",
            "JOIN a b c",
            "NICK a b",
            "ROSTER a b!",
            "X a",
            "JOIN a.b c",
        ] {
            assert_eq!(Presence::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(Presence::parse(&[0xff, 0xfe]), None);
    }
}

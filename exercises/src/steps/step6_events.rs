//! Step 6: events. `/sub <topic>`, `/unsub <topic>`, `/pub <topic> <payload>`,
//! and `*` for every topic.
//!
//! Node: an `EventEmitter` across the network: `/sub` is `emitter.on(topic)`
//! for a remote client, `/pub` is `emitter.emit(topic, payload)`. This router
//! handles those three commands and hands every other line to your step 5
//! router, which it wraps.

use std::collections::{BTreeMap, BTreeSet};

use crate::shared::{ClientId, Out, Router};
use crate::steps::step5_commands::{ChatRouter, refuse, split_command};

/// Longest topic the protocol allows.
pub const MAX_TOPIC: usize = 64;

/// The chat router plus who subscribed to what.
#[derive(Debug, Default)]
pub struct EventRouter {
    /// Nicks and chat commands: step 5's work, reused.
    chat: ChatRouter,
    /// Each client's topics (`*` included), in id order so that the output
    /// is always in the same order.
    subs: BTreeMap<ClientId, BTreeSet<String>>,
}

impl EventRouter {
    /// An empty router.
    pub fn new() -> EventRouter {
        EventRouter::default()
    }

    /// `/sub` and `/unsub`: both take a topic or `*`.
    fn subscription(&mut self, id: ClientId, cmd: &str, arg: Option<&str>) -> Vec<Out> {
        let Some(topic) = arg.filter(|a| !a.is_empty()) else {
            return vec![refuse(id, "usage", &format!("{cmd} <topic>"))];
        };
        if topic != "*" && !valid_topic(topic) {
            return vec![refuse(id, "bad-topic", "1-64 of A-Z a-z 0-9 _ - . or *")];
        }
        let mine = self.subs.entry(id).or_default();
        if cmd == "/sub" {
            mine.insert(topic.to_string());
            vec![Out::line(id, format!("OK sub {topic}"))]
        } else {
            mine.remove(topic);
            vec![Out::line(id, format!("OK unsub {topic}"))]
        }
    }

    /// `/pub <topic> <payload>`: one `EVENT` to each subscriber of the topic
    /// or of `*`, never to the publisher. No reply.
    fn publish(&self, id: ClientId, arg: Option<&str>) -> Vec<Out> {
        let Some(arg) = arg.filter(|a| !a.is_empty()) else {
            return vec![refuse(id, "usage", "/pub <topic> <payload>")];
        };
        let (topic, payload) = arg.split_once(' ').unwrap_or((arg, ""));
        if !valid_topic(topic) {
            return vec![refuse(id, "bad-topic", "1-64 of A-Z a-z 0-9 _ - .")];
        }
        let Some(from) = self.chat.nick(id) else {
            return Vec::new();
        };
        let line = format!("EVENT {topic} {from} {payload}");
        self.subs
            .iter()
            .filter(|(to, topics)| **to != id && (topics.contains(topic) || topics.contains("*")))
            .map(|(to, _)| Out::line(*to, line.as_str()))
            .collect()
    }
}

impl Router for EventRouter {
    fn connect(&mut self, id: ClientId) -> Vec<Out> {
        self.chat.connect(id)
    }

    fn handle(&mut self, id: ClientId, line: &str) -> Vec<Out> {
        if self.chat.nick(id).is_none() {
            return Vec::new();
        }
        let outs = match split_command(line) {
            (cmd @ ("/sub" | "/unsub"), arg) => self.subscription(id, cmd, arg),
            ("/pub", arg) => self.publish(id, arg),
            _ => self.chat.handle(id, line),
        };
        if self.chat.nick(id).is_none() {
            self.subs.remove(&id); // it was a /quit
        }
        outs
    }

    fn disconnect(&mut self, id: ClientId) -> Vec<Out> {
        self.subs.remove(&id);
        self.chat.disconnect(id)
    }

    fn nick(&self, id: ClientId) -> Option<&str> {
        self.chat.nick(id)
    }
}

/// A topic is 1 to 64 of `A-Z a-z 0-9 _ - .` (`*` is checked separately:
/// it may be subscribed to, not published on).
pub fn valid_topic(topic: &str) -> bool {
    (1..=MAX_TOPIC).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

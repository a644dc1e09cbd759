//! Step 6: events. `/sub <topic>`, `/unsub <topic>`, `/pub <topic> <payload>`,
//! and `*` for every topic.
//!
//! Node: an `EventEmitter` across the network: `/sub` is `emitter.on(topic)`
//! for a remote client, `/pub` is `emitter.emit(topic, payload)`. This router
//! handles those three commands and hands every other line to your step 5
//! router, which it wraps.
//!
//! Grade it: `cargo test --test grade step6` (it needs your step 5).

// The bodies below are `todo!()`, so parameters and imports look unused
// until you write them. These lints would only be noise while you work;
// delete this line when the step is done to get them back.
#![allow(unused_variables, unused_imports, unused_mut, dead_code)]

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
}

impl Router for EventRouter {
    /// Connecting is all chat: hand it to `self.chat`.
    fn connect(&mut self, id: ClientId) -> Vec<Out> {
        todo!("self.chat.connect(id)")
    }

    /// `/sub <topic>` (topic or `*`): `OK sub <topic>`. `/unsub <topic>`:
    /// `OK unsub <topic>`, subscribed or not. `/pub <topic> <payload>`:
    /// `EVENT <topic> <nick> <payload>` once to each subscriber of the topic
    /// or of `*` except the publisher, no reply; the payload may be empty
    /// (`/pub t` gives `EVENT t <nick> ` with its trailing space). Refusals:
    /// `ERR usage` (no topic), `ERR bad-topic` (see [`valid_topic`];
    /// `/pub *` too). Every other line: `self.chat.handle`, and if that was a
    /// `/quit`, drop the client's subscriptions.
    fn handle(&mut self, id: ClientId, line: &str) -> Vec<Out> {
        todo!("split_command(line), then /sub, /unsub, /pub here and the rest to self.chat")
    }

    /// Drop the client's subscriptions, then let the chat router say `LEAVE`.
    fn disconnect(&mut self, id: ClientId) -> Vec<Out> {
        todo!("self.subs.remove(&id); self.chat.disconnect(id)")
    }

    fn nick(&self, id: ClientId) -> Option<&str> {
        todo!("self.chat.nick(id)")
    }
}

/// A topic is 1 to 64 of `A-Z a-z 0-9 _ - .` (`*` is checked separately:
/// it may be subscribed to, not published on).
pub fn valid_topic(topic: &str) -> bool {
    todo!("like valid_nick, with '.' allowed and 64 long")
}

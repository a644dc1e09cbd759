//! A hub's NATS connection, seen by the router as one more link: the
//! translation between link lines and NATS operations, and the presence of
//! the other hubs, as plain data (no sockets, no clocks: time comes in as
//! `now_ms`).
//!
//! Why a link: the router already knows how to share a hub's life with
//! hubs it cannot see directly ([`crate::proto::network`]): `HUB`, `JOIN`,
//! `MSG`, `EVENT`, `DM`, `SUB`, `SPLIT`. A NATS cluster is, to one hub, a
//! single neighbour named [`FOREIGN_HUB`] behind which every other hub of the
//! room lives. So the router needs no NATS code at all, and this file needs
//! no routing code: it turns what the router queues for the link into
//! `PUB`/`SUB`/`UNSUB` ([`NatsBridge::from_router`]), and what NATS delivers
//! into the link lines the router reads ([`NatsBridge::from_nats`]).
//!
//! What NATS does not give, this file adds:
//!
//! - **Presence.** NATS has no membership. Each hub publishes its roster on
//!   the room's presence subject every heartbeat (a third of the timeout)
//!   and its users' JOIN/LEAVE/NICK as they happen; a hub not heard from
//!   for the timeout is gone ([`NatsBridge::tick`]): its users LEAVE, as in
//!   a netsplit. A hub that stops cleanly says `BYE`.
//! - **At most once per client.** A local `*` and a local `pickup` would be
//!   two NATS subscriptions matching one message, so NATS would deliver it
//!   twice. Only one subscription is the *source* of a topic at a time
//!   (the `*` one while any local client wants `*`), and messages arriving
//!   through the other are dropped.
//! - **No echo.** The hub connects with `no_echo`, and a message that names
//!   this hub as its sender anyway (another hub with our name) is dropped.
//!
//! The subject layout is [`crate::proto::nats_subjects`]; docs/nats.md.

use std::collections::{BTreeMap, BTreeSet};

use log::{info, warn};

use crate::proto::link_line::{LinkLine, split_who};
use crate::proto::nats_subjects::{FOREIGN_HUB, Kind, Layout, Presence};
use crate::proto::nats_wire::{
    ServerOp, encode_ping, encode_pong, encode_pub, encode_sub, encode_unsub,
};

/// What every connection's bridge needs to know, fixed for the hub's life.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// The room's subjects (`--nats-room`).
    pub layout: Layout,
    /// This hub's name (`--name`): the `<hub>` of its users' `<nick>@<hub>`.
    pub hub: String,
    /// A hub not heard from for this long is gone (`--nats-timeout-ms`);
    /// the roster heartbeat goes out every third of it.
    pub timeout_ms: u64,
    /// The longest text a local client may send (`--max-line`): longer
    /// payloads from NATS are dropped, never cut (a cut line would be a
    /// line nobody sent).
    pub max_text: usize,
}

/// One other hub, as its presence lines described it.
#[derive(Debug, Default)]
struct Peer {
    nicks: BTreeSet<String>,
    heard_ms: u64,
}

/// The state of one NATS connection: made fresh by each (re)connect, since
/// subscriptions and what we learnt of the others die with the connection.
#[derive(Debug)]
pub struct NatsBridge {
    settings: BridgeSettings,
    max_payload: usize,
    next_sid: u64,
    /// The local topic subscriptions we hold on NATS (`*` included): sid.
    topics: BTreeMap<String, u64>,
    /// This hub's users as announced to NATS (bare nicks).
    roster: BTreeSet<String>,
    /// Every other hub heard on the presence subject (or as a sender).
    peers: BTreeMap<String, Peer>,
    last_beat_ms: u64,
    now_ms: u64,
    /// Messages from NATS dropped: not ours, or text a client could not send.
    pub dropped: u64,
}

/// The sid of the room's chat subscription; presence and DMs follow.
const CHAT_SID: u64 = 1;
const PRESENCE_SID: u64 = 2;
const DM_SID: u64 = 3;

impl NatsBridge {
    /// A bridge for a connection whose server said `max_payload`.
    pub fn new(settings: BridgeSettings, max_payload: usize, now_ms: u64) -> Self {
        NatsBridge {
            settings,
            max_payload,
            next_sid: DM_SID + 1,
            topics: BTreeMap::new(),
            roster: BTreeSet::new(),
            peers: BTreeMap::new(),
            last_beat_ms: now_ms,
            now_ms,
            dropped: 0,
        }
    }

    /// The first bytes after the handshake: the three subscriptions every
    /// hub holds (chat, presence, its own DM inbox), then `HELLO`, which
    /// asks every other hub for its roster. The returned line is for the
    /// router: the NATS side wants every topic (`SUB *`), because which hub
    /// wants which topic is NATS's business (a `PUB` nobody subscribed to
    /// costs the server a lookup, and nobody a byte).
    pub fn start(&mut self, out: &mut Vec<u8>) -> LinkLine<String> {
        let layout = &self.settings.layout;
        let subs = [
            (layout.chat(), CHAT_SID),
            (layout.presence(), PRESENCE_SID),
            (layout.dm_inbox(&self.settings.hub), DM_SID),
        ];
        for (subject, sid) in subs {
            // Our own subjects are valid by construction.
            let _ = encode_sub(&subject, None, sid, out);
        }
        let hello = Presence::Hello {
            hub: self.settings.hub.clone(),
        };
        self.publish_presence(&hello, out);
        LinkLine::Sub {
            topic: "*".to_string(),
        }
    }

    /// `BYE`, for a hub that stops cleanly: the others' users LEAVE now,
    /// not a timeout later.
    pub fn bye(&mut self, out: &mut Vec<u8>) {
        let bye = Presence::Bye {
            hub: self.settings.hub.clone(),
        };
        self.publish_presence(&bye, out);
    }

    /// How many other hubs this connection has heard of.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    // ---- router -> NATS ------------------------------------------------

    /// One link line the router queued for the NATS link, as NATS bytes.
    /// Lines with no meaning in a cluster (`HELLO`, `PONG`, `HUB`, `ERR`)
    /// give nothing.
    pub fn from_router(&mut self, line: &LinkLine<&str>, out: &mut Vec<u8>) {
        let layout = &self.settings.layout;
        match *line {
            LinkLine::Msg { from, text } => self.publish(&layout.chat(), from, text, out),
            LinkLine::Event {
                topic,
                from,
                payload,
            } => self.publish(&layout.topic(topic), from, payload, out),
            LinkLine::Dm { to, from, text } => {
                if let Ok((nick, hub)) = split_who(to) {
                    self.publish(&layout.dm(hub, nick), from, text, out);
                }
            }
            LinkLine::Join { who } => self.local_presence(who, None, true, out),
            LinkLine::Leave { who } => self.local_presence(who, None, false, out),
            LinkLine::Nick { who, new } => self.local_presence(who, Some(new), true, out),
            LinkLine::Sub { topic } => self.subscribe(topic, out),
            LinkLine::Unsub { topic } => {
                if let Some(sid) = self.topics.remove(topic) {
                    encode_unsub(sid, None, out);
                }
            }
            LinkLine::Ping => encode_ping(out),
            _ => {}
        }
    }

    /// `PUB subject` with the sender's DM subject as reply (which is how a
    /// receiving hub knows who sent it, and where a NATS client answers).
    fn publish(&self, subject: &str, from: &str, text: &str, out: &mut Vec<u8>) {
        let reply = split_who(from)
            .ok()
            .map(|(n, h)| self.settings.layout.dm(h, n));
        let encoded = encode_pub(
            subject,
            reply.as_deref(),
            text.as_bytes(),
            self.max_payload,
            out,
        );
        if let Err(e) = encoded {
            warn!("not published on {subject}: {e}");
        }
    }

    /// A local user joined, left or renamed: the roster follows, and the
    /// other hubs hear it now rather than at the next heartbeat.
    fn local_presence(&mut self, who: &str, new: Option<&str>, here: bool, out: &mut Vec<u8>) {
        let Ok((nick, hub)) = split_who(who) else {
            return;
        };
        if hub != self.settings.hub {
            return;
        }
        let hub = hub.to_string();
        let nick = nick.to_string();
        let line = match (new, here) {
            (Some(new), _) => {
                self.roster.remove(&nick);
                self.roster.insert(new.to_string());
                Presence::Nick {
                    hub,
                    old: nick,
                    new: new.to_string(),
                }
            }
            (None, true) => {
                self.roster.insert(nick.clone());
                Presence::Join { hub, nick }
            }
            (None, false) => {
                self.roster.remove(&nick);
                Presence::Leave { hub, nick }
            }
        };
        self.publish_presence(&line, out);
    }

    /// A local client wants `topic` (or `*`): one NATS subscription for it.
    fn subscribe(&mut self, topic: &str, out: &mut Vec<u8>) {
        if self.topics.contains_key(topic) {
            return;
        }
        let layout = &self.settings.layout;
        let subject = if topic == "*" {
            layout.every_topic()
        } else {
            layout.topic(topic)
        };
        let sid = self.next_sid;
        if encode_sub(&subject, None, sid, out).is_ok() {
            self.next_sid += 1;
            self.topics.insert(topic.to_string(), sid);
        }
    }

    fn publish_presence(&mut self, line: &Presence, out: &mut Vec<u8>) {
        let subject = self.settings.layout.presence();
        let payload = line.encode();
        if let Err(e) = encode_pub(&subject, None, payload.as_bytes(), self.max_payload, out) {
            warn!("presence not published: {e}");
        }
    }

    /// The heartbeat: everyone here right now. A roster longer than the
    /// server's `max_payload` (about 30,000 nicks at 1 MiB) is cut to fit,
    /// and the cut is logged: the others then miss the rest until they
    /// JOIN or LEAVE.
    fn publish_roster(&mut self, out: &mut Vec<u8>) {
        let mut nicks: Vec<String> = Vec::new();
        let mut len = "ROSTER ".len() + self.settings.hub.len();
        for nick in &self.roster {
            len += 1 + nick.len();
            if len > self.max_payload {
                warn!(
                    "roster cut at {} of {} nicks",
                    nicks.len(),
                    self.roster.len()
                );
                break;
            }
            nicks.push(nick.clone());
        }
        let roster = Presence::Roster {
            hub: self.settings.hub.clone(),
            nicks,
        };
        self.publish_presence(&roster, out);
    }

    // ---- NATS -> router ------------------------------------------------

    /// One operation the server sent: NATS bytes to answer with go to
    /// `out`, link lines for the router to `lines`.
    pub fn from_nats(
        &mut self,
        op: ServerOp,
        now_ms: u64,
        out: &mut Vec<u8>,
        lines: &mut Vec<LinkLine<String>>,
    ) {
        self.now_ms = now_ms;
        match op {
            ServerOp::Msg {
                subject,
                sid,
                reply,
                payload,
            } => self.on_msg(&subject, sid, reply.as_deref(), &payload, out, lines),
            ServerOp::Ping => encode_pong(out),
            ServerOp::Info(info) if info.max_payload > 0 => self.max_payload = info.max_payload,
            ServerOp::Err(text) => warn!("NATS server: -ERR {text}"),
            _ => {}
        }
    }

    fn on_msg(
        &mut self,
        subject: &str,
        sid: u64,
        reply: Option<&str>,
        payload: &[u8],
        out: &mut Vec<u8>,
        lines: &mut Vec<LinkLine<String>>,
    ) {
        let Some(kind) = self.settings.layout.classify(subject) else {
            self.dropped += 1;
            return;
        };
        if kind == Kind::Presence {
            return self.on_presence(payload, out, lines);
        }
        let (hub, nick) = self.settings.layout.sender(reply);
        let Some(text) = self.text(payload) else {
            self.dropped += 1;
            return;
        };
        if hub == self.settings.hub {
            // no_echo means our own lines never come back: this is another
            // hub using our name.
            warn!("a message on {subject} claims to be from this hub ({hub}): dropped");
            self.dropped += 1;
            return;
        }
        self.heard(&hub, lines);
        let from = format!("{nick}@{hub}");
        let line = match kind {
            Kind::Chat => LinkLine::Msg { from, text },
            Kind::Topic(topic) if self.source_of(&topic) == Some(sid) => LinkLine::Event {
                topic,
                from,
                payload: text,
            },
            Kind::Dm { hub: to_hub, nick } if to_hub == self.settings.hub => LinkLine::Dm {
                to: format!("{nick}@{to_hub}"),
                from,
                text,
            },
            _ => return,
        };
        lines.push(line);
    }

    /// Which of our subscriptions a message on `topic` is taken from: the
    /// `*` one while we hold it, else the topic's own. The other copy NATS
    /// delivers is dropped, so each local client gets the event once.
    fn source_of(&self, topic: &str) -> Option<u64> {
        self.topics
            .get("*")
            .or_else(|| self.topics.get(topic))
            .copied()
    }

    /// The payload as a line a client could have sent: UTF-8, no line
    /// break, not empty, not longer than `--max-line`.
    fn text(&self, payload: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(payload).ok()?;
        let fits = !text.is_empty() && text.len() <= self.settings.max_text;
        (fits && !text.contains(['\n', '\r'])).then(|| text.to_string())
    }

    /// `hub` is alive now; the first time, the router learns it exists.
    fn heard(&mut self, hub: &str, lines: &mut Vec<LinkLine<String>>) {
        if hub == FOREIGN_HUB {
            return;
        }
        let now = self.now_ms;
        // Once per message: a lookup, no allocation, unless the hub is new.
        if let Some(peer) = self.peers.get_mut(hub) {
            peer.heard_ms = now;
            return;
        }
        info!("hub {hub} is on NATS");
        lines.push(LinkLine::Hub {
            hub: hub.to_string(),
        });
        let peer = Peer {
            heard_ms: now,
            ..Peer::default()
        };
        self.peers.insert(hub.to_string(), peer);
    }

    fn on_presence(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
        lines: &mut Vec<LinkLine<String>>,
    ) {
        let Some(presence) = Presence::parse(payload) else {
            self.dropped += 1;
            return;
        };
        let hub = match &presence {
            Presence::Hello { hub }
            | Presence::Roster { hub, .. }
            | Presence::Join { hub, .. }
            | Presence::Leave { hub, .. }
            | Presence::Nick { hub, .. }
            | Presence::Bye { hub } => hub.clone(),
        };
        if hub == self.settings.hub || hub == FOREIGN_HUB {
            warn!("presence from a hub called {hub}, this hub's name or a reserved one: dropped");
            self.dropped += 1;
            return;
        }
        if let Presence::Bye { .. } = presence {
            if self.peers.remove(&hub).is_some() {
                info!("hub {hub} said BYE");
                lines.push(LinkLine::Split { hub });
            }
            return;
        }
        self.heard(&hub, lines);
        match presence {
            // A hub just (re)joined: it learns us now, not a heartbeat later.
            Presence::Hello { .. } => self.publish_roster(out),
            Presence::Roster { nicks, .. } => self.roster_of(&hub, nicks, lines),
            Presence::Join { nick, .. } => self.peer_join(&hub, nick, lines),
            Presence::Leave { nick, .. } => {
                if self.peer_nicks(&hub).remove(&nick) {
                    let who = format!("{nick}@{hub}");
                    lines.push(LinkLine::Leave { who });
                }
            }
            Presence::Nick { old, new, .. } => {
                if self.peer_nicks(&hub).remove(&old) {
                    self.peer_nicks(&hub).insert(new.clone());
                    let who = format!("{old}@{hub}");
                    lines.push(LinkLine::Nick { who, new });
                } else {
                    self.peer_join(&hub, new, lines);
                }
            }
            Presence::Bye { .. } => {}
        }
    }

    fn peer_nicks(&mut self, hub: &str) -> &mut BTreeSet<String> {
        &mut self.peers.entry(hub.to_string()).or_default().nicks
    }

    fn peer_join(&mut self, hub: &str, nick: String, lines: &mut Vec<LinkLine<String>>) {
        if self.peer_nicks(hub).insert(nick.clone()) {
            lines.push(LinkLine::Join {
                who: format!("{nick}@{hub}"),
            });
        }
    }

    /// A heartbeat's roster: whoever it adds JOINs, whoever it lacks
    /// LEAVEs (a LEAVE lost in a reconnect is mended here).
    fn roster_of(&mut self, hub: &str, nicks: Vec<String>, lines: &mut Vec<LinkLine<String>>) {
        let now: BTreeSet<String> = nicks.into_iter().collect();
        let known = std::mem::take(self.peer_nicks(hub));
        for gone in known.difference(&now) {
            lines.push(LinkLine::Leave {
                who: format!("{gone}@{hub}"),
            });
        }
        for came in now.difference(&known) {
            lines.push(LinkLine::Join {
                who: format!("{came}@{hub}"),
            });
        }
        *self.peer_nicks(hub) = now;
    }

    // ---- time ------------------------------------------------------------

    /// The clock moved to `now_ms`: the roster heartbeat and a `PING` to the
    /// server when due (the server answers `PONG`, so our read timeout only
    /// fires on a dead server), and every hub silent past the timeout is
    /// split off. Returns milliseconds until something is due again.
    pub fn tick(
        &mut self,
        now_ms: u64,
        out: &mut Vec<u8>,
        lines: &mut Vec<LinkLine<String>>,
    ) -> u64 {
        self.now_ms = now_ms;
        let every = (self.settings.timeout_ms / 3).max(1);
        if now_ms.saturating_sub(self.last_beat_ms) >= every {
            self.publish_roster(out);
            encode_ping(out);
            self.last_beat_ms = now_ms;
        }
        let timeout = self.settings.timeout_ms;
        let silent: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| now_ms.saturating_sub(p.heard_ms) >= timeout)
            .map(|(hub, _)| hub.clone())
            .collect();
        for hub in silent {
            warn!("hub {hub} silent on NATS for {timeout} ms: its users leave");
            self.peers.remove(&hub);
            lines.push(LinkLine::Split { hub });
        }
        let beat_in = (self.last_beat_ms + every).saturating_sub(now_ms);
        let expiry_in = self
            .peers
            .values()
            .map(|p| (p.heard_ms + timeout).saturating_sub(now_ms))
            .min()
            .unwrap_or(u64::MAX);
        beat_in.min(expiry_in).max(1)
    }
}

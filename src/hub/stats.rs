//! What `GET /stats` shows: the [`Snapshot`] the monitor takes of the
//! scoreboard ([`crate::hub::score`]), one view per thread, client and
//! link, and its JSON (the field names are in docs/live-view.md). Plain
//! data: the scoreboard fills it, this file only shapes and renders it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::hub::thread_state::State;
use crate::proto::router::ClientId;
use crate::support::json::push_string;

/// One thread, as the snapshot saw it.
#[derive(Debug, Clone)]
pub struct ThreadView {
    pub name: String,
    pub state: State,
    pub target: Option<ClientId>,
    pub for_ns: u64,
    /// The words after `doing` (link threads), or empty.
    pub note: String,
}

impl ThreadView {
    /// [`State::blocked`], except the `linker`'s back-off between two
    /// attempts: it holds up no client (the hub serves its own meanwhile).
    pub fn blocked(&self) -> bool {
        self.state.blocked() && !(self.state == State::BackOff && self.name == "linker")
    }
}

/// One link to a neighbour hub, as the snapshot saw it.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub id: ClientId,
    /// The neighbour's name.
    pub hub: String,
    /// Its reader thread (`link-<hub>`).
    pub thread: String,
    pub peer: SocketAddr,
    pub dialled: bool,
    pub connected_ns: u64,
    pub lines_in: u64,
    pub bytes_in: u64,
    pub lines_out: u64,
    pub bytes_out: u64,
    pub pending: u64,
    /// How long the oldest pending bytes have waited (0: none pending).
    pub pending_ns: u64,
    /// Since the link last sent us anything.
    pub heard_ns: u64,
    /// Topics the neighbour wants, and a few of them.
    pub wanted: usize,
    pub topics: Vec<String>,
}

/// One client, as the snapshot saw it.
#[derive(Debug, Clone)]
pub struct ClientView {
    pub id: ClientId,
    pub nick: String,
    pub peer: SocketAddr,
    pub connected_ns: u64,
    pub lines_in: u64,
    pub bytes_in: u64,
    pub lines_out: u64,
    pub bytes_out: u64,
    pub pending: u64,
    pub idle_ns: u64,
    pub subs: usize,
}

/// The scoreboard at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: u64,
    pub threads: Vec<ThreadView>,
    pub clients: Vec<ClientView>,
    pub links: Vec<LinkView>,
    pub accepted: u64,
    pub refused_full: u64,
    pub refused_line: u64,
    pub cut_off: u64,
    pub write_errors: u64,
}

/// What `/stats` says about the hub besides the scoreboard.
#[derive(Debug, Clone)]
pub struct HubFacts {
    pub addr: SocketAddr,
    pub max_clients: usize,
    pub write_timeout: Duration,
    pub channel_len: usize,
    pub channel_capacity: usize,
    pub clients: usize,
    /// This hub's name among linked hubs (`None`: not known, the twin).
    pub name: Option<String>,
    /// `--link-timeout-ms`.
    pub link_timeout: Duration,
}

/// A client is flagged `at_risk` once a write to it has been blocked for
/// this share of the write timeout (in percent).
pub const AT_RISK_PERCENT: u64 = 50;

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

impl Snapshot {
    /// The `/stats` body: one JSON object (fields in docs/live-view.md).
    pub fn to_json(&self, hub: &HubFacts) -> String {
        use std::fmt::Write;
        let timeout_ms = u64::try_from(hub.write_timeout.as_millis()).unwrap_or(u64::MAX);
        // Who the dispatcher is blocked on, and for how long.
        let blocked: Option<(ClientId, u64)> = self
            .threads
            .iter()
            .find(|t| t.state == State::Writev)
            .and_then(|t| t.target.map(|id| (id, ms(t.for_ns))));
        let nick_of = |id: ClientId| {
            let client = self.clients.iter().find(|c| c.id == id);
            let link = || self.links.iter().find(|l| l.id == id);
            client
                .map(|c| c.nick.as_str())
                .or_else(|| link().map(|l| l.hub.as_str()))
        };
        let mut o = String::with_capacity(512 + 256 * (self.threads.len() + self.clients.len()));
        let _ = write!(
            o,
            "{{\"version\":1,\"uptime_ms\":{},\"hub\":{{\"addr\":",
            ms(self.now)
        );
        push_string(&mut o, &hub.addr.to_string());
        o.push_str(",\"name\":");
        match &hub.name {
            Some(name) => push_string(&mut o, name),
            None => o.push_str("null"),
        }
        let link_timeout_ms = u64::try_from(hub.link_timeout.as_millis()).unwrap_or(u64::MAX);
        let _ = write!(
            o,
            ",\"links\":{},\"link_timeout_ms\":{link_timeout_ms}",
            self.links.len()
        );
        let _ = write!(
            o,
            ",\"clients\":{},\"max_clients\":{},\"write_timeout_ms\":{},\
             \"accepted\":{},\"refused_full\":{},\"refused_line\":{},\
             \"cut_off\":{},\"write_errors\":{}}},\
             \"channel\":{{\"len\":{},\"capacity\":{}}},\"threads\":[",
            hub.clients,
            hub.max_clients,
            timeout_ms,
            self.accepted,
            self.refused_full,
            self.refused_line,
            self.cut_off,
            self.write_errors,
            hub.channel_len,
            hub.channel_capacity,
        );
        for (i, t) in self.threads.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("{\"name\":");
            push_string(&mut o, &t.name);
            o.push_str(",\"state\":");
            push_string(&mut o, t.state.name());
            o.push_str(",\"doing\":");
            push_string(&mut o, &t.state.doing_with(&t.note));
            o.push_str(",\"waits_on\":");
            push_string(&mut o, t.state.waits_on());
            let _ = write!(
                o,
                ",\"blocked\":{},\"for_ms\":{},\"target\":",
                t.blocked(),
                ms(t.for_ns)
            );
            match t.target {
                Some(id) => {
                    let _ = write!(o, "{id},\"target_nick\":");
                    match nick_of(id) {
                        Some(nick) => push_string(&mut o, nick),
                        None => o.push_str("null"),
                    }
                }
                None => o.push_str("null,\"target_nick\":null"),
            }
            o.push('}');
        }
        o.push_str("],\"clients\":[");
        for (i, c) in self.clients.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{{\"id\":{},\"nick\":", c.id);
            push_string(&mut o, &c.nick);
            o.push_str(",\"peer\":");
            push_string(&mut o, &c.peer.to_string());
            let write_blocked_ms = match blocked {
                Some((id, ms)) if id == c.id => ms,
                _ => 0,
            };
            let at_risk = write_blocked_ms * 100 >= timeout_ms * AT_RISK_PERCENT;
            let _ = write!(
                o,
                ",\"thread\":\"client-{}\",\"connected_ms\":{},\"lines_in\":{},\"bytes_in\":{},\
                 \"lines_out\":{},\"bytes_out\":{},\"pending_bytes\":{},\"idle_ms\":{},\
                 \"subs\":{},\"write_blocked_ms\":{},\"cut_off_in_ms\":{},\"at_risk\":{}}}",
                c.id,
                ms(c.connected_ns),
                c.lines_in,
                c.bytes_in,
                c.lines_out,
                c.bytes_out,
                c.pending,
                ms(c.idle_ns),
                c.subs,
                write_blocked_ms,
                if write_blocked_ms > 0 {
                    timeout_ms.saturating_sub(write_blocked_ms).to_string()
                } else {
                    "null".to_string()
                },
                write_blocked_ms > 0 && at_risk,
            );
        }
        o.push_str("],\"links\":[");
        for (i, l) in self.links.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            l.push_json(&mut o, link_timeout_ms);
        }
        o.push_str("]}");
        o
    }
}

impl LinkView {
    /// How long until the link is declared down, by whichever comes first:
    /// the neighbour's silence (its reader's read timeout) or our oldest
    /// pending bytes (the write side's link timeout).
    pub fn down_in_ms(&self, timeout_ms: u64) -> u64 {
        let worst = ms(self.heard_ns.max(self.pending_ns));
        timeout_ms.saturating_sub(worst)
    }

    fn push_json(&self, o: &mut String, timeout_ms: u64) {
        use std::fmt::Write;
        let (heard, pending) = (ms(self.heard_ns), ms(self.pending_ns));
        let at_risk = heard.max(pending) * 100 >= timeout_ms * AT_RISK_PERCENT;
        let _ = write!(o, "{{\"id\":{},\"hub\":", self.id);
        push_string(o, &self.hub);
        o.push_str(",\"peer\":");
        push_string(o, &self.peer.to_string());
        o.push_str(",\"thread\":");
        push_string(o, &self.thread);
        let _ = write!(
            o,
            ",\"direction\":\"{}\",\"connected_ms\":{},\"lines_in\":{},\"bytes_in\":{},\
             \"lines_out\":{},\"bytes_out\":{},\"pending_bytes\":{},\"pending_ms\":{},\
             \"last_heard_ms\":{},\"down_in_ms\":{},\"at_risk\":{},\"interest\":{},\
             \"interest_topics\":[",
            if self.dialled { "dialled" } else { "incoming" },
            ms(self.connected_ns),
            self.lines_in,
            self.bytes_in,
            self.lines_out,
            self.bytes_out,
            self.pending,
            pending,
            heard,
            self.down_in_ms(timeout_ms),
            at_risk,
            self.wanted,
        );
        for (i, t) in self.topics.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            push_string(o, t);
        }
        o.push_str("]}");
    }
}

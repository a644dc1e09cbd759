//! The scoreboard: what every hub thread is doing now, and since when.
//!
//! Each thread (the `acceptor`, the `dispatcher`, the `monitor`, every
//! `client-<id>`) owns one [`Slot`] of atomics, registered once when the
//! thread is started. Before each blocking call the thread stores what it
//! is about to wait for ([`State`]), for whom (a client id) and since when
//! (nanoseconds since the hub started): a few relaxed stores and one clock
//! read. No reader thread ever takes a lock for it.
//!
//! A client's slot also holds its counters (lines and bytes in, written by
//! its reader thread; lines and bytes out and the bytes the hub still holds
//! for it, written by the dispatcher). Each counter has exactly one writer,
//! so they are plain load-then-store, not read-modify-write. The nick and
//! the subscription count are known only to the dispatcher: it publishes
//! them behind a small lock that only the monitor contends.
//!
//! The `monitor` thread ([`crate::hub::monitor`]) reads all of it to answer
//! `GET /stats`; nothing else reads it. The field names of that JSON are in
//! docs/live-view.md.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::proto::client_line::Command;
use crate::proto::framing::Inbound;
use crate::proto::ids::is_link;
use crate::proto::router::{ClientId, Router};

pub use crate::hub::stats::{
    AT_RISK_PERCENT, ClientView, HubFacts, LinkView, Snapshot, ThreadView,
};
pub use crate::hub::thread_state::State;

/// No target: the `target` of a slot whose state is about nobody.
const NO_TARGET: u64 = u64::MAX;

/// One thread's entry on the scoreboard.
#[derive(Debug)]
pub struct Slot {
    /// The thread's name (`client-7`).
    name: String,
    /// The hub's start, copied here so [`Slot::enter`] needs no other memory.
    epoch: Instant,
    state: AtomicU8,
    target: AtomicU64,
    since: AtomicU64,
    /// Only for `client-<id>` and `link-<hub>` slots.
    client: Option<ClientSlot>,
    /// Words `/stats` puts after `doing` (`from hub b`, `127.0.0.1:7001`),
    /// for the threads that have one: the link threads. A `link-<hub>`
    /// reader's is set once, when registered, and never locked by it; the
    /// `linker` and `link-acceptor` change theirs (they are not hot).
    note: Option<Box<Mutex<String>>>,
}

/// What the scoreboard keeps about one client (inside its thread's slot).
#[derive(Debug)]
pub struct ClientSlot {
    pub id: ClientId,
    pub peer: SocketAddr,
    /// When it was admitted, in nanoseconds since the hub started.
    connected: u64,
    // Written by the client's reader thread.
    lines_in: AtomicU64,
    bytes_in: AtomicU64,
    /// When its last read() returned bytes.
    last_in: AtomicU64,
    // Written by the dispatcher.
    lines_out: AtomicU64,
    bytes_out: AtomicU64,
    /// Bytes the hub holds for it and has not written yet.
    pending: AtomicU64,
    /// Links only: since when the oldest of those bytes have waited
    /// (0: nothing waits). Written by the dispatcher.
    behind_since: AtomicU64,
    /// Links only: true if this hub dialled it (`--link`), false if it
    /// came in on `--link-listen`.
    pub dialled: bool,
    /// Published by the dispatcher; read by the monitor.
    names: Mutex<Names>,
}

/// The parts of a client only the dispatcher knows. For a link: `nick` is
/// the neighbour hub's name, `subs` how many topics it wants (its
/// interest), `topics` a few of them.
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub nick: String,
    pub subs: usize,
    /// False once the dispatcher is done with it.
    pub open: bool,
    /// Links only: up to [`INTEREST_SHOWN`] of the topics it wants, sorted.
    pub topics: Vec<String>,
}

/// How many of a link's wanted topics `/stats` names.
pub const INTEREST_SHOWN: usize = 16;

/// Adds `n` to a counter that has one writer: a load and a store, no
/// locked instruction.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Slot {
    fn new(name: String, epoch: Instant, client: Option<ClientSlot>) -> Slot {
        Slot {
            name,
            epoch,
            state: AtomicU8::new(State::Starting as u8),
            target: AtomicU64::new(NO_TARGET),
            since: AtomicU64::new(nanos(epoch.elapsed())),
            client,
            note: None,
        }
    }

    fn with_note(mut self, note: String) -> Slot {
        self.note = Some(Box::new(Mutex::new(note)));
        self
    }

    /// Changes the slot's note (the words after `doing`), for the threads
    /// registered with one ([`Scoreboard::register_noted`]). Takes a lock
    /// only the monitor contends: not for hot paths.
    pub fn set_note(&self, note: &str) {
        if let Some(m) = &self.note {
            let mut n = lock(m);
            n.clear();
            n.push_str(note);
        }
    }

    /// [`Slot::enter`] and [`Slot::set_note`] together.
    pub fn enter_noted(&self, state: State, note: &str) {
        self.set_note(note);
        self.enter(state);
    }

    fn note(&self) -> String {
        self.note
            .as_ref()
            .map(|m| lock(m).clone())
            .unwrap_or_default()
    }

    /// Now, in nanoseconds since the hub started: the one clock read.
    #[inline]
    pub fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// `t` in nanoseconds since the hub started (for a time already read).
    #[inline]
    pub fn nanos_at(&self, t: Instant) -> u64 {
        nanos(t.saturating_duration_since(self.epoch))
    }

    /// The thread is about to do `state` (about nobody in particular).
    #[inline]
    pub fn enter(&self, state: State) {
        self.enter_at(state, NO_TARGET, self.now());
    }

    /// The thread is about to do `state` about client `target`.
    #[inline]
    pub fn enter_for(&self, state: State, target: ClientId) {
        self.enter_at(state, target, self.now());
    }

    /// [`Slot::enter`] with a time already read.
    #[inline]
    pub fn enter_at(&self, state: State, target: u64, now: u64) {
        self.since.store(now, Ordering::Relaxed);
        self.target.store(target, Ordering::Relaxed);
        self.state.store(state as u8, Ordering::Release);
    }

    /// Changes the state and keeps the time (no clock read).
    #[inline]
    pub fn switch(&self, state: State) {
        self.target.store(NO_TARGET, Ordering::Relaxed);
        self.state.store(state as u8, Ordering::Release);
    }

    /// The client's counters, for a `client-<id>` slot.
    pub fn client(&self) -> Option<&ClientSlot> {
        self.client.as_ref()
    }

    /// `read()` returned `n > 0` bytes: count them, and the thread now hands
    /// lines over. One clock read for both.
    #[inline]
    pub fn read_returned(&self, n: usize) {
        let now = self.now();
        if let Some(c) = &self.client {
            bump(&c.bytes_in, n as u64);
            c.last_in.store(now, Ordering::Relaxed);
        }
        self.enter_at(State::HandOver, NO_TARGET, now);
    }

    /// Lines handed to the channel (one hand-over's).
    #[inline]
    pub fn lines_in(&self, lines: usize) {
        if let Some(c) = &self.client {
            bump(&c.lines_in, lines as u64);
        }
    }

    fn read(&self) -> (State, Option<u64>, u64) {
        let state = State::from_u8(self.state.load(Ordering::Acquire));
        let target = self.target.load(Ordering::Relaxed);
        let since = self.since.load(Ordering::Relaxed);
        (state, (target != NO_TARGET).then_some(target), since)
    }
}

impl ClientSlot {
    fn new(id: ClientId, peer: SocketAddr, now: u64, nick: String) -> ClientSlot {
        ClientSlot {
            id,
            peer,
            connected: now,
            lines_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            last_in: AtomicU64::new(now),
            lines_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            behind_since: AtomicU64::new(0),
            dialled: false,
            names: Mutex::new(Names {
                nick,
                subs: 0,
                open: true,
                topics: Vec::new(),
            }),
        }
    }

    /// The dispatcher is about to write `bytes` to this client.
    #[inline]
    pub fn set_pending(&self, bytes: usize) {
        self.pending.store(bytes as u64, Ordering::Relaxed);
    }

    /// The dispatcher wrote `bytes` more to this client.
    #[inline]
    pub fn wrote_bytes(&self, bytes: usize) {
        bump(&self.bytes_out, bytes as u64);
    }

    /// The dispatcher finished writing a share of `lines` lines.
    #[inline]
    pub fn wrote_lines(&self, lines: usize) {
        bump(&self.lines_out, lines as u64);
    }

    /// Links only: the oldest pending bytes have waited since `t`
    /// (nanoseconds since the hub started; `None`: nothing is pending).
    #[inline]
    pub fn set_behind_since(&self, t: Option<u64>) {
        self.behind_since
            .store(t.map_or(0, |t| t.max(1)), Ordering::Relaxed);
    }

    /// Links only: publishes how many topics the neighbour wants and a few
    /// of them (`topics` is sorted and cut here).
    pub fn publish_interest(&self, wanted: usize, mut topics: Vec<String>) {
        topics.sort();
        topics.truncate(INTEREST_SHOWN);
        let mut names = lock(&self.names);
        names.subs = wanted;
        names.topics = topics;
    }

    /// Publishes what the dispatcher knows about this client.
    pub fn publish(&self, nick: &str, subs: usize, open: bool) {
        let mut names = lock(&self.names);
        if names.nick != nick {
            names.nick = nick.to_string();
        }
        names.subs = subs;
        names.open = open;
    }

    fn names(&self) -> Names {
        lock(&self.names).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Numbers about the whole hub (each an atomic a hub thread adds to).
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections admitted.
    pub accepted: AtomicU64,
    /// Connections refused with `ERR server-full`.
    pub refused_full: AtomicU64,
    /// Lines refused (too long, bad UTF-8, malformed command).
    pub refused_line: AtomicU64,
    /// Clients cut off because a write to them did not finish in time.
    pub cut_off: AtomicU64,
    /// Clients cut off for other write errors (reset, broken pipe).
    pub write_errors: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every slot of one hub.
#[derive(Debug)]
pub struct Scoreboard {
    epoch: Instant,
    pub counters: Counters,
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    /// `acceptor`, `dispatcher`, `monitor`.
    threads: Vec<Arc<Slot>>,
    /// Client threads, in the order they were started.
    clients: Vec<Arc<Slot>>,
    /// `link-<hub>` reader threads, in the order they were started (few:
    /// forgotten once their thread has ended).
    links: Vec<Arc<Slot>>,
    prune_at: usize,
}

impl Default for Scoreboard {
    fn default() -> Self {
        Scoreboard::new()
    }
}

impl Scoreboard {
    pub fn new() -> Scoreboard {
        Scoreboard {
            epoch: Instant::now(),
            counters: Counters::default(),
            registry: Mutex::new(Registry {
                prune_at: 64,
                ..Registry::default()
            }),
        }
    }

    /// Nanoseconds since the hub started.
    pub fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// A slot for a hub thread that is not a client's (`acceptor`, ...).
    pub fn register_thread(&self, name: &str) -> Arc<Slot> {
        let slot = Arc::new(Slot::new(name.to_string(), self.epoch, None));
        lock(&self.registry).threads.push(slot.clone());
        slot
    }

    /// A slot for a thread whose row says more than its state (the
    /// `linker`: `dialling 127.0.0.1:7001`): see [`Slot::set_note`].
    pub fn register_noted(&self, name: &str) -> Arc<Slot> {
        let slot = Slot::new(name.to_string(), self.epoch, None).with_note(String::new());
        let slot = Arc::new(slot);
        lock(&self.registry).threads.push(slot.clone());
        slot
    }

    /// A slot for the `link-<hub>` reader of link `id` to hub `hub`,
    /// registered (by the link-acceptor or the linker) once the handshake
    /// is read, before the dispatcher hears the link is up and before the
    /// thread starts. Its counters are a client's: the reader counts lines
    /// and bytes in, the dispatcher out (see [`ClientSlot`]).
    pub fn register_link(
        &self,
        id: ClientId,
        peer: SocketAddr,
        hub: &str,
        dialled: bool,
    ) -> Arc<Slot> {
        let mut client = ClientSlot::new(id, peer, self.now(), hub.to_string());
        client.dialled = dialled;
        let slot = Slot::new(format!("link-{hub}"), self.epoch, Some(client))
            .with_note(format!("from hub {hub}"));
        let slot = Arc::new(slot);
        let mut registry = lock(&self.registry);
        registry
            .links
            .retain(|s| State::from_u8(s.state.load(Ordering::Relaxed)) != State::Exited);
        registry.links.push(slot.clone());
        slot
    }

    /// A slot for client `id`'s thread, registered by the acceptor before
    /// the thread starts. Slots of ended threads are forgotten now and then.
    pub fn register_client(&self, id: ClientId, peer: SocketAddr) -> Arc<Slot> {
        let client = ClientSlot::new(id, peer, self.now(), format!("guest-{id}"));
        let slot = Arc::new(Slot::new(format!("client-{id}"), self.epoch, Some(client)));
        let mut registry = lock(&self.registry);
        if registry.clients.len() >= registry.prune_at {
            registry
                .clients
                .retain(|s| State::from_u8(s.state.load(Ordering::Relaxed)) != State::Exited);
            registry.prune_at = (registry.clients.len() * 2).max(64);
        }
        registry.clients.push(slot.clone());
        slot
    }

    /// The slot of client (or link) `id`, if its thread is registered (the
    /// dispatcher asks once per connection).
    pub fn client(&self, id: ClientId) -> Option<Arc<Slot>> {
        let registry = lock(&self.registry);
        let slots = if is_link(id) {
            &registry.links
        } else {
            &registry.clients
        };
        slots
            .iter()
            .rev()
            .find(|s| s.client.as_ref().is_some_and(|c| c.id == id))
            .cloned()
    }

    /// After the router took one line from client `id` (whose slot is
    /// `slot`): count a refusal, and publish the sender's nick and
    /// subscription count when the line may have changed them. The only
    /// lock the routing thread (or task) takes, contended by the monitor
    /// alone. Both servers call it.
    pub fn note_line(&self, slot: Option<&Slot>, router: &Router, id: ClientId, line: &Inbound) {
        match line {
            Inbound::Refused(_) => Counters::add(&self.counters.refused_line),
            Inbound::Command(Command::Nick(_) | Command::Sub(_) | Command::Unsub(_)) => {
                if let (Some(nick), Some(c)) = (router.nick(id), slot.and_then(Slot::client)) {
                    c.publish(nick, router.subscriptions(id), true);
                }
            }
            _ => {}
        }
    }

    /// Everything, copied out at one moment (each slot read without a lock).
    pub fn snapshot(&self) -> Snapshot {
        let (threads, clients, links) = {
            let registry = lock(&self.registry);
            (
                registry.threads.clone(),
                registry.clients.clone(),
                registry.links.clone(),
            )
        };
        let now = self.now();
        let mut snap = Snapshot {
            now,
            threads: Vec::new(),
            clients: Vec::new(),
            links: Vec::new(),
            accepted: self.counters.accepted.load(Ordering::Relaxed),
            refused_full: self.counters.refused_full.load(Ordering::Relaxed),
            refused_line: self.counters.refused_line.load(Ordering::Relaxed),
            cut_off: self.counters.cut_off.load(Ordering::Relaxed),
            write_errors: self.counters.write_errors.load(Ordering::Relaxed),
        };
        snap.threads = threads
            .iter()
            .chain(links.iter())
            .chain(clients.iter())
            .filter_map(|slot| thread_view(slot, now))
            .collect();
        snap.links = links
            .iter()
            .filter_map(|slot| link_view(slot, now))
            .collect();
        snap.clients = clients
            .iter()
            .filter_map(|slot| client_view(slot, now))
            .collect();
        snap
    }
}

/// What [`Scoreboard::snapshot`] shows of one thread's slot (any kind:
/// plain thread, link reader, client): `None` once the thread has exited,
/// so the view lists only live threads.
fn thread_view(slot: &Slot, now: u64) -> Option<ThreadView> {
    let (state, target, since) = slot.read();
    if state == State::Exited {
        return None;
    }
    Some(ThreadView {
        name: slot.name.clone(),
        state,
        target,
        for_ns: now.saturating_sub(since),
        note: slot.note(),
    })
}

/// What [`Scoreboard::snapshot`] shows of one link reader's slot: `None`
/// for a slot without link counters, a link the dispatcher is done with,
/// or a reader that has exited: the view lists only live links.
fn link_view(slot: &Slot, now: u64) -> Option<LinkView> {
    let c = slot.client.as_ref()?;
    let names = c.names();
    let (state, ..) = slot.read();
    if !names.open || state == State::Exited {
        return None;
    }
    let behind = c.behind_since.load(Ordering::Relaxed);
    Some(LinkView {
        id: c.id,
        hub: names.nick,
        thread: slot.name.clone(),
        peer: c.peer,
        dialled: c.dialled,
        connected_ns: now.saturating_sub(c.connected),
        lines_in: c.lines_in.load(Ordering::Relaxed),
        bytes_in: c.bytes_in.load(Ordering::Relaxed),
        lines_out: c.lines_out.load(Ordering::Relaxed),
        bytes_out: c.bytes_out.load(Ordering::Relaxed),
        pending: c.pending.load(Ordering::Relaxed),
        pending_ns: if behind == 0 {
            0
        } else {
            now.saturating_sub(behind)
        },
        heard_ns: now.saturating_sub(c.last_in.load(Ordering::Relaxed)),
        wanted: names.subs,
        topics: names.topics,
    })
}

/// What [`Scoreboard::snapshot`] shows of one client thread's slot: `None`
/// for a slot without client counters, a client the dispatcher is done
/// with, or a thread that has exited: the view lists only live clients.
fn client_view(slot: &Slot, now: u64) -> Option<ClientView> {
    let c = slot.client.as_ref()?;
    let names = c.names();
    if !names.open {
        return None;
    }
    let (state, ..) = slot.read();
    if state == State::Exited {
        return None;
    }
    Some(ClientView {
        id: c.id,
        nick: names.nick,
        peer: c.peer,
        connected_ns: now.saturating_sub(c.connected),
        lines_in: c.lines_in.load(Ordering::Relaxed),
        bytes_in: c.bytes_in.load(Ordering::Relaxed),
        lines_out: c.lines_out.load(Ordering::Relaxed),
        bytes_out: c.bytes_out.load(Ordering::Relaxed),
        pending: c.pending.load(Ordering::Relaxed),
        idle_ns: now.saturating_sub(c.last_in.load(Ordering::Relaxed)),
        subs: names.subs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_u8() {
        for s in State::ALL {
            assert_eq!(State::from_u8(s as u8), s);
        }
        assert_eq!(State::from_u8(200), State::Starting);
    }

    #[test]
    fn a_snapshot_shows_states_counters_and_names() {
        let board = Scoreboard::new();
        let d = board.register_thread("dispatcher");
        let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let c = board.register_client(3, peer);
        c.enter(State::Read);
        c.read_returned(10);
        c.lines_in(1);
        c.enter(State::Read);
        let cs = board.client(3).unwrap();
        let cs = cs.client().unwrap();
        cs.publish("ann", 2, true);
        cs.set_pending(100);
        cs.wrote_bytes(40);
        cs.wrote_lines(2);
        d.enter_for(State::Writev, 3);
        let snap = board.snapshot();
        assert_eq!(snap.threads.len(), 2);
        assert_eq!(snap.threads[0].state, State::Writev);
        assert_eq!(snap.threads[0].target, Some(3));
        assert_eq!(snap.threads[1].name, "client-3");
        assert_eq!(snap.threads[1].state, State::Read);
        let v = &snap.clients[0];
        assert_eq!(
            (v.nick.as_str(), v.lines_in, v.bytes_in, v.subs),
            ("ann", 1, 10, 2)
        );
        assert_eq!((v.lines_out, v.bytes_out, v.pending), (2, 40, 100));
        let facts = HubFacts {
            addr: "127.0.0.1:1".parse().unwrap(),
            max_clients: 10,
            write_timeout: Duration::from_millis(100),
            channel_len: 1,
            channel_capacity: 8,
            clients: 1,
            name: Some("a".into()),
            link_timeout: Duration::from_millis(1000),
        };
        let json = snap.to_json(&facts);
        assert!(json.contains("\"target_nick\":\"ann\""), "{json}");
        assert!(
            json.contains("\"channel\":{\"len\":1,\"capacity\":8}"),
            "{json}"
        );
        // An ended thread leaves the view.
        c.enter(State::Exited);
        assert_eq!(board.snapshot().threads.len(), 1);
        assert!(board.snapshot().clients.is_empty());
    }
}

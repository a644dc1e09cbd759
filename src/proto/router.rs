//! Who gets what: the hub's whole state, with no sockets in it.
//!
//! The [`Router`] knows every connected client (its nick, its subscriptions)
//! and decides, for each event, which lines go to which clients. It does not
//! send them: it formats each line once into a [`Batch`] and queues, per
//! recipient, the span that is theirs. At the end of a batch,
//! [`Router::flush`] hands each recipient's share to the server's
//! [`Outlet`] (a `writev` on a socket, or a writer task's channel), in the one
//! order both servers share.
//!
//! Because nothing here does IO, every routing rule is a unit test below, and
//! the threaded hub and the async twin run this file unchanged.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::IoSlice;
use std::sync::Arc;

use log::{debug, info, warn};

use crate::proto::admission::Admission;
use crate::proto::batch::{Batch, Pending, Span};
use crate::proto::client_line::{Command, HELP, Refusal};
use crate::proto::framing::Inbound;
use crate::proto::ids::is_link;
use crate::proto::link_line::LinkLine;
use crate::proto::link_state::Network;
use crate::proto::roster::Roster;
use crate::proto::server_line::{ErrorCode, ServerLine};

/// Re-exported so the servers (`src/hub/`, the async twin) can keep naming
/// it next to the router they feed; it lives in [`crate::proto::ids`].
pub use crate::proto::ids::ClientId;

/// Everything the router remembers about one connection.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) nick: String,
    subs: HashSet<String>,
    /// Spans of the batch waiting to be written to this client, in order.
    pending: Pending,
    /// False once the client quit or hung up: it receives no new lines, but
    /// what is already pending for it is still written (`BYE`, or the answers
    /// to what a half-closed client sent).
    pub(super) open: bool,
}

/// A server's half of a flush: how bytes reach a client. The threaded
/// dispatcher writes them to the socket; the async twin hands them to the
/// client's writer task.
pub trait Outlet {
    /// Hands `id` its whole share of the batch. `Err(why)` means the client
    /// cannot take it (it stopped reading, its socket failed): the router
    /// cuts it off, and the others see `LEAVE`.
    fn deliver(&mut self, id: ClientId, chunks: &mut [IoSlice<'_>]) -> Result<(), String>;
    /// The router is done with `id`: close its connection. Whatever
    /// `deliver` was given for it has been handed over first.
    fn close(&mut self, id: ClientId);
    /// Clients to cut off that `deliver` could not report in time (the
    /// twin's writer queues that stayed full). None by default.
    fn overdue(&mut self) -> Vec<(ClientId, String)> {
        Vec::new()
    }
    /// Told just before [`Outlet::deliver`] how many lines `id`'s share
    /// holds (the threaded hub's live view counts them). Nothing by default.
    fn share_lines(&mut self, _id: ClientId, _lines: usize) {}
}

/// The routing state, owned by exactly one thread (the dispatcher) or task.
#[derive(Debug)]
pub struct Router {
    /// Every connection, dense, in connect order ([`Roster`]): the hot
    /// paths walk it front to back.
    pub(super) clients: Roster<Client>,
    pub(super) nicks: HashMap<String, ClientId>,
    /// topic (or `*`) -> subscribers, in subscription order.
    pub(super) topics: HashMap<String, Vec<ClientId>>,
    admission: Arc<Admission>,
    /// The lines of the current batch.
    pub(super) batch: Batch,
    /// Clients to disconnect once their pending lines are written.
    closing: Vec<ClientId>,
    /// Linked hubs: links, remote hubs and clients, interest
    /// ([`crate::proto::network`]; empty when the hub is not linked).
    pub(super) net: Network,
    /// Topics one client may be subscribed to at once (`--max-subs`).
    max_subs: usize,
}

impl Router {
    pub fn new(admission: Arc<Admission>) -> Self {
        Router {
            clients: Roster::default(),
            nicks: HashMap::new(),
            topics: HashMap::new(),
            admission,
            batch: Batch::default(),
            closing: Vec::new(),
            net: Network::default(),
            max_subs: usize::MAX,
        }
    }

    /// At most `max_subs` subscriptions per client; one more is
    /// `ERR too-many-subs` (`--max-subs`). Unlimited by default.
    pub fn with_max_subs(mut self, max_subs: usize) -> Self {
        self.max_subs = max_subs;
        self
    }

    /// The nick of a connected client.
    pub fn nick(&self, id: ClientId) -> Option<&str> {
        self.clients
            .get(id)
            .filter(|c| c.open)
            .map(|c| c.nick.as_str())
    }

    /// True while the current batch may take another event (see
    /// [`Batch::has_room`]); `taken` is how many it has taken so far.
    pub fn batch_has_room(&self, taken: usize) -> bool {
        self.batch.has_room(taken)
    }

    // ---- events -------------------------------------------------------

    /// A new connection: `WELCOME` to it, `JOIN` to everyone else.
    /// Returns the nick it was given.
    pub fn connect(&mut self, id: ClientId) -> &str {
        let mut nick = format!("guest-{id}");
        // Only if someone renamed to `guest-<id>` before this client came:
        // skip it and take the next number (the thread keeps `client-<id>`).
        while self.nicks.contains_key(&nick) {
            nick = format!("guest-{}", self.admission.fresh_guest_number());
        }
        let join = self.batch.to_many(ServerLine::Join { nick: &nick });
        let others = self.deliver_to_all_but(id, join);
        debug!("route: {id} connects as {nick}; JOIN to {others} others");
        let welcome = self.batch.to_one(ServerLine::Welcome { nick: &nick });
        let mut client = Client {
            nick: nick.clone(),
            subs: HashSet::new(),
            pending: Pending::default(),
            open: true,
        };
        // Lines for everyone from now on are for it too (not its own JOIN).
        self.batch.enter_lane(&mut client.pending);
        self.batch.queue(id, &mut client.pending, welcome);
        if self.linked() {
            let who = self.shown(&nick);
            self.send_every_link(&LinkLine::Join { who: &who });
        }
        self.nicks.insert(nick, id);
        &self.clients.insert(id, client).nick
    }

    /// One line from client `id`'s reader: a command, or a refusal to answer.
    pub fn on_line(&mut self, id: ClientId, line: &Inbound) {
        match line {
            Inbound::Command(command) => self.handle(id, command),
            Inbound::Refused(refusal) => self.refuse(id, refusal),
        }
    }

    /// The connection ended (end of stream, reset, write timeout): `LEAVE` to
    /// everyone else. Lines already pending for it are still flushed, then
    /// the server closes it (see [`Router::flush`]).
    pub fn disconnect(&mut self, id: ClientId, why: &str) {
        let Some(client) = self.clients.get_mut(id).filter(|c| c.open) else {
            return;
        };
        client.open = false;
        // It keeps what was queued for everyone so far, and gets no more.
        self.batch.leave_lane(id, &mut client.pending);
        let nick = std::mem::take(&mut client.nick);
        let subs = std::mem::take(&mut client.subs);
        info!("{nick} ({id}) disconnected: {why}");
        self.nicks.remove(&nick);
        for topic in &subs {
            self.remove_subscriber(topic, id);
        }
        self.closing.push(id);
        let leave = self.batch.to_many(ServerLine::Leave { nick: &nick });
        let others = self.deliver_to_all_but(id, leave);
        debug!("route: {nick} ({id}) leaves; LEAVE to {others} others");
        if self.linked() {
            let who = self.shown(&nick);
            self.send_every_link(&LinkLine::Leave { who: &who });
            for topic in &subs {
                self.sync_interest(topic);
            }
        }
    }

    /// A line the reader refused (bad UTF-8, too long, malformed command):
    /// `ERR` back to the sender, nothing else.
    pub fn refuse(&mut self, id: ClientId, refusal: &Refusal) {
        if self.nick(id).is_some() {
            debug!("route: ERR {} to {id}", refusal.code);
            self.error(id, refusal.code, &refusal.text);
        }
    }

    /// One parsed command from client `id`: each has its own method below.
    pub fn handle(&mut self, id: ClientId, command: &Command) {
        match command {
            // The two hot paths look their sender up once, themselves.
            Command::Chat(text) => self.chat(id, text),
            Command::Pub { topic, payload } => self.publish(id, topic, payload),
            // It already quit or hung up; what it sent after that is ignored.
            _ if self.nick(id).is_none() => {}
            Command::Nick(new) => self.rename(id, new),
            Command::List => self.list(id),
            Command::Dm { to, text } => self.dm(id, to, text),
            Command::Sub(topic) => self.subscribe(id, topic),
            Command::Unsub(topic) => self.unsubscribe(id, topic),
            Command::Ping => self.reply(id, ServerLine::Pong),
            Command::Quit => {
                self.reply(id, ServerLine::Bye);
                self.disconnect(id, "quit");
            }
            Command::Help => {
                for text in HELP {
                    self.reply(id, ServerLine::Help { text });
                }
            }
        }
    }

    // ---- the end of a batch -------------------------------------------

    /// Hands every recipient its share of the batch through `out`, then
    /// forgets the batch. A recipient that cannot take its share is cut off,
    /// which queues `LEAVE` for the others, so this goes round until
    /// nothing is pending.
    pub fn flush(&mut self, out: &mut impl Outlet) {
        loop {
            // Free the slots of clients that left *before* telling the
            // others: whoever sees `LEAVE` can count on the room it made.
            for _ in &self.closing {
                self.admission.release();
            }
            let mut failed = Vec::new();
            // One list of slices, refilled for each recipient: no
            // allocation per recipient once it has grown to the longest.
            let mut slices = Vec::new();
            self.batch.seal_lane();
            // First whoever has lines of its own (and the lane's after them).
            for &id in self.batch.dirty() {
                // A recipient is a client, or a link to another hub.
                let pending = match self.clients.get_mut(id) {
                    Some(client) => &mut client.pending,
                    None => match self.net.links.get_mut(&id) {
                        Some(link) => &mut link.pending,
                        None => continue,
                    },
                };
                let lines = self.batch.share(id, pending, &mut slices);
                out.share_lines(id, lines);
                if let Err(why) = out.deliver(id, &mut slices) {
                    failed.push((id, why));
                }
                // Handed over: emptied now, with no second lookup.
                self.batch.delivered(pending);
            }
            // Then every other client: its share is the lane alone.
            if self.batch.has_lane() {
                for (id, client) in self.clients.iter_mut() {
                    let lines = self.batch.share(id, &client.pending, &mut slices);
                    if lines == 0 {
                        continue;
                    }
                    out.share_lines(id, lines);
                    if let Err(why) = out.deliver(id, &mut slices) {
                        failed.push((id, why));
                    }
                    self.batch.delivered(&mut client.pending);
                }
            }
            drop(slices);
            self.batch.finish();
            for id in std::mem::take(&mut self.closing) {
                self.clients.remove(id);
                out.close(id);
            }
            for id in std::mem::take(&mut self.net.closing) {
                self.net.links.remove(&id);
                out.close(id);
            }
            failed.extend(out.overdue());
            if failed.is_empty() {
                return;
            }
            for (id, why) in failed {
                if is_link(id) {
                    // Cut like a slow client: a netsplit, not a stall.
                    self.link_down(id, &why);
                    continue;
                }
                if let Some(nick) = self.nick(id) {
                    warn!("cutting off {nick} ({id}): {why}");
                }
                self.disconnect(id, &why);
            }
        }
    }

    /// How many topics (`*` included) a connected client subscribes to.
    pub fn subscriptions(&self, id: ClientId) -> usize {
        self.clients
            .get(id)
            .filter(|c| c.open)
            .map_or(0, |c| c.subs.len())
    }

    // ---- one method per command ---------------------------------------

    /// Chat: `MSG` to every other client. Formatted straight from the
    /// sender's nick, with no copy of it: this is the hot path.
    fn chat(&mut self, id: ClientId, text: &str) {
        let Some(sender) = self.clients.get(id).filter(|c| c.open) else {
            return;
        };
        let line = self.batch.to_many(ServerLine::Msg {
            from: &sender.nick,
            text,
        });
        let n = self.deliver_to_all_but(id, line);
        debug!("route: MSG from {id} to {n} clients");
        if self.linked() {
            let from = self.shown(&self.clients[&id].nick);
            self.send_every_link(&LinkLine::Msg { from: &from, text });
        }
    }

    /// `/pub`: `EVENT` to subscribers of `topic` and of `*`, each once,
    /// never the publisher. The other hot path.
    fn publish(&mut self, id: ClientId, topic: &str, payload: &str) {
        let Some(sender) = self.clients.get(id).filter(|c| c.open) else {
            return;
        };
        let line = self.batch.to_many(ServerLine::Event {
            topic,
            from: &sender.nick,
            payload,
        });
        let n = self.queue_event(id, topic, line);
        debug!("route: EVENT {topic} from {id} to {n} subscribers");
        if self.linked() {
            let from = self.shown(&self.clients[&id].nick);
            self.forward_event(None, topic, &from, payload);
        }
    }

    /// Queues an `EVENT` (already in the batch) for the subscribers of
    /// `topic` and of `*`, each once, never `id`; returns how many.
    pub(super) fn queue_event(&mut self, id: ClientId, topic: &str, line: Span) -> usize {
        let named = self.topics.get(topic).map(Vec::as_slice).unwrap_or(&[]);
        let star = self.topics.get("*").map(Vec::as_slice).unwrap_or(&[]);
        let mut n = 0;
        for &to in named {
            if to != id
                && let Some(client) = self.clients.get_mut(to)
            {
                self.batch.queue(to, &mut client.pending, line);
                n += 1;
            }
        }
        // `*` subscribers who did not get it as subscribers of the topic.
        for &to in star {
            if to != id
                && let Some(client) = self.clients.get_mut(to)
                && !client.subs.contains(topic)
            {
                self.batch.queue(to, &mut client.pending, line);
                n += 1;
            }
        }
        n
    }

    fn rename(&mut self, id: ClientId, new: &str) {
        let old = self.nick(id).unwrap_or_default().to_string();
        let ok = ServerLine::Ok {
            command: "nick",
            detail: new,
        };
        if old == new {
            return self.reply(id, ok);
        }
        if self.nicks.contains_key(new) {
            return self.error(
                id,
                ErrorCode::NickTaken,
                &format!("{new} is already in use"),
            );
        }
        self.nicks.remove(&old);
        self.nicks.insert(new.to_string(), id);
        if let Some(client) = self.clients.get_mut(id) {
            client.nick = new.to_string();
        }
        self.reply(id, ok);
        let line = self.batch.to_many(ServerLine::Nick { old: &old, new });
        self.deliver_to_all_but(id, line);
        debug!("route: {old} is now {new}");
        if self.linked() {
            let who = self.shown(&old);
            self.send_every_link(&LinkLine::Nick { who: &who, new });
        }
    }

    fn list(&mut self, id: ClientId) {
        if !self.net.hubs.is_empty() {
            return self.list_everyone(id);
        }
        let mut nicks: Vec<&str> = self.nicks.keys().map(String::as_str).collect();
        nicks.sort_unstable();
        let line = self.batch.to_one(ServerLine::List {
            nicks: Cow::Owned(nicks),
        });
        self.deliver(id, line);
    }

    fn dm(&mut self, id: ClientId, to: &str, text: &str) {
        if to.contains('@') {
            // `<nick>@<hub>`: a client of a linked hub (or of this one).
            return self.dm_remote(id, to, text);
        }
        self.dm_local(id, to, to, text);
    }

    /// A DM to local client `nick`; `to` is the name as the sender wrote it.
    pub(super) fn dm_local(&mut self, id: ClientId, to: &str, nick: &str, text: &str) {
        let Some(&target) = self.nicks.get(nick) else {
            return self.error(id, ErrorCode::NoSuchNick, &format!("nobody is called {to}"));
        };
        let from = self.clients.get(id).map_or("", |c| c.nick.as_str());
        let line = self.batch.to_one(ServerLine::Dm { from, text });
        self.deliver(target, line);
        self.reply(
            id,
            ServerLine::Ok {
                command: "dm",
                detail: to,
            },
        );
        debug!("route: DM from {id} to {to}");
    }

    fn subscribe(&mut self, id: ClientId, topic: &str) {
        if let Some(client) = self.clients.get(id)
            && client.subs.len() >= self.max_subs
            && !client.subs.contains(topic)
        {
            let text = format!("at most {} topics per client", self.max_subs);
            return self.error(id, ErrorCode::TooManySubs, &text);
        }
        if let Some(client) = self.clients.get_mut(id)
            && client.subs.insert(topic.to_string())
        {
            self.topics.entry(topic.to_string()).or_default().push(id);
        }
        debug!("route: {id} subscribes to {topic}");
        self.sync_interest(topic);
        let ok = ServerLine::Ok {
            command: "sub",
            detail: topic,
        };
        self.reply(id, ok);
    }

    fn unsubscribe(&mut self, id: ClientId, topic: &str) {
        if let Some(client) = self.clients.get_mut(id)
            && client.subs.remove(topic)
        {
            self.remove_subscriber(topic, id);
        }
        debug!("route: {id} unsubscribes from {topic}");
        self.sync_interest(topic);
        let ok = ServerLine::Ok {
            command: "unsub",
            detail: topic,
        };
        self.reply(id, ok);
    }

    // ---- helpers ------------------------------------------------------

    /// Formats a line for one recipient and queues it.
    pub(super) fn reply(&mut self, id: ClientId, line: ServerLine<'_>) {
        let line = self.batch.to_one(line);
        self.deliver(id, line);
    }

    /// `NOTICE <text>` to one client (`serve --record` says so after
    /// `WELCOME`); nothing if it is not connected.
    pub fn notice(&mut self, id: ClientId, text: &str) {
        if self.nick(id).is_some() {
            self.reply(id, ServerLine::Notice { text });
        }
    }

    /// `NOTICE <text>` to every connected client (recording stopped).
    pub fn notice_all(&mut self, text: &str) {
        let line = self.batch.to_one(ServerLine::Notice { text });
        for (id, client) in self.clients.iter_mut() {
            if client.open {
                self.batch.queue(id, &mut client.pending, line);
            }
        }
    }

    /// `ERR <code> <text>` to one recipient.
    pub(super) fn error(&mut self, id: ClientId, code: ErrorCode, text: &str) {
        self.reply(id, ServerLine::Err { code, text });
    }

    /// Queues a line (already in the batch) for one client.
    pub(super) fn deliver(&mut self, id: ClientId, line: Span) {
        if let Some(client) = self.clients.get_mut(id) {
            self.batch.queue(id, &mut client.pending, line);
        }
    }

    /// Queues a line for every open client except `except`, on the batch's
    /// lane (one push, however many clients); returns how many.
    pub(super) fn deliver_to_all_but(&mut self, except: ClientId, line: Span) -> usize {
        self.batch.to_all_but(except, line);
        // Every client is open but those closing at the end of this batch.
        let open = self.clients.len() - self.closing.len();
        open - usize::from(self.clients.get(except).is_some_and(|c| c.open))
    }

    fn remove_subscriber(&mut self, topic: &str, id: ClientId) {
        if let Some(subscribers) = self.topics.get_mut(topic) {
            subscribers.retain(|&s| s != id);
            if subscribers.is_empty() {
                self.topics.remove(topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::client_line::{Parsed, parse_line};
    use std::collections::BTreeMap;

    /// A router and the admission it shares, driven the way a server
    /// drives them, with an [`Outlet`] that records what each client got.
    struct Harness {
        router: Router,
        admission: Arc<Admission>,
    }

    /// Records every delivery as lines, and every close as `<closed>`.
    #[derive(Default)]
    struct Recorder(BTreeMap<ClientId, Vec<String>>);

    impl Outlet for Recorder {
        fn deliver(&mut self, id: ClientId, chunks: &mut [IoSlice<'_>]) -> Result<(), String> {
            let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            let text = String::from_utf8(bytes).unwrap();
            let lines = self.0.entry(id).or_default();
            lines.extend(text.lines().map(str::to_string));
            Ok(())
        }

        fn close(&mut self, id: ClientId) {
            self.0.entry(id).or_default().push("<closed>".into());
        }
    }

    impl Harness {
        fn new() -> Self {
            let admission = Arc::new(Admission::new(100));
            Harness {
                router: Router::new(admission.clone()),
                admission,
            }
        }

        fn connect(&mut self) -> ClientId {
            let id = self.admission.try_admit().unwrap();
            self.router.connect(id);
            id
        }

        /// Feeds one client line through the real framer and parser.
        fn say(&mut self, id: ClientId, line: &str) {
            match parse_line(line.as_bytes()) {
                Parsed::Empty => {}
                Parsed::Command(c) => self.router.on_line(id, &Inbound::Command(c)),
                Parsed::Refused(r) => self.router.on_line(id, &Inbound::Refused(r)),
            }
        }

        /// Everything written this batch, per client, as lines.
        fn flush(&mut self) -> BTreeMap<ClientId, Vec<String>> {
            let mut out = Recorder::default();
            self.router.flush(&mut out);
            out.0
        }

        fn lines(&mut self, id: ClientId) -> Vec<String> {
            self.flush().remove(&id).unwrap_or_default()
        }

        /// How many slices (one `writev`'s iovecs) `id`'s share is in.
        fn chunks(&mut self, id: ClientId) -> usize {
            let mut slices = Vec::new();
            let client = &self.router.clients[&id];
            self.router.batch.seal_lane();
            self.router.batch.share(id, &client.pending, &mut slices);
            slices.len()
        }
    }

    /// An outlet whose one client never takes anything.
    struct Stuck(ClientId, Recorder);

    impl Outlet for Stuck {
        fn deliver(&mut self, id: ClientId, chunks: &mut [IoSlice<'_>]) -> Result<(), String> {
            if id == self.0 {
                return Err("not reading".into());
            }
            self.1.deliver(id, chunks)
        }

        fn close(&mut self, id: ClientId) {
            self.1.close(id)
        }
    }

    #[test]
    fn a_client_that_cannot_take_its_share_is_cut_off_and_others_see_leave() {
        let mut hub = Harness::new();
        let (a, b) = (hub.connect(), hub.connect());
        hub.flush();
        hub.say(a, "hello");
        let mut out = Stuck(b, Recorder::default());
        hub.router.flush(&mut out);
        assert_eq!(out.1.0[&b], v(&["<closed>"]));
        assert_eq!(out.1.0[&a], v(&["LEAVE guest-2"]));
        assert_eq!(hub.admission.open(), 1, "its slot is free");
    }

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn welcome_then_nothing_and_join_to_others() {
        let mut hub = Harness::new();
        let a = hub.connect();
        assert_eq!(hub.flush()[&a], v(&["WELCOME guest-1"]));
        let b = hub.connect();
        let out = hub.flush();
        assert_eq!(out[&a], v(&["JOIN guest-2"]));
        assert_eq!(out[&b], v(&["WELCOME guest-2"]));
    }

    #[test]
    fn chat_goes_to_everyone_else_verbatim() {
        let mut hub = Harness::new();
        let (a, b, c) = (hub.connect(), hub.connect(), hub.connect());
        hub.flush();
        hub.say(a, "  hi there ");
        let out = hub.flush();
        assert!(!out.contains_key(&a));
        assert_eq!(out[&b], v(&["MSG guest-1   hi there "]));
        assert_eq!(out[&c], v(&["MSG guest-1   hi there "]));
    }

    #[test]
    fn rename_rules() {
        let mut hub = Harness::new();
        let (a, b) = (hub.connect(), hub.connect());
        hub.flush();
        hub.say(a, "/nick alice");
        let out = hub.flush();
        assert_eq!(out[&a], v(&["OK nick alice"]));
        assert_eq!(out[&b], v(&["NICK guest-1 alice"]));
        // same name again: OK, no broadcast
        hub.say(a, "/nick alice");
        let out = hub.flush();
        assert_eq!(out[&a], v(&["OK nick alice"]));
        assert!(!out.contains_key(&b));
        // taken
        hub.say(b, "/nick alice");
        assert_eq!(hub.lines(b), v(&["ERR nick-taken alice is already in use"]));
        // the old name is free again
        hub.say(b, "/nick guest-1");
        assert_eq!(hub.lines(b), v(&["OK nick guest-1"]));
        hub.say(a, "/nick Bad.Name");
        assert!(hub.lines(a)[0].starts_with("ERR bad-nick "));
    }

    #[test]
    fn guest_numbers_skip_names_in_use() {
        let mut hub = Harness::new();
        let a = hub.connect();
        hub.say(a, "/nick guest-2");
        hub.flush();
        let b = hub.connect();
        assert_eq!(hub.lines(b), v(&["WELCOME guest-3"]));
        // numbers not in use are not skipped
        hub.say(a, "/nick guest-5");
        hub.flush();
        let c = hub.connect();
        assert_eq!(hub.lines(c), v(&["WELCOME guest-4"]));
        let d = hub.connect();
        assert_eq!(hub.lines(d), v(&["WELCOME guest-6"]));
    }

    #[test]
    fn guest_collision_while_connecting_takes_a_fresh_number() {
        let mut hub = Harness::new();
        let a = hub.connect();
        // id 2 is admitted (its thread is starting) but not yet connected...
        let id = hub.admission.try_admit().unwrap();
        assert_eq!(id, 2);
        // ...when guest-1 renames to guest-2.
        hub.say(a, "/nick guest-2");
        hub.flush();
        hub.router.connect(id);
        assert_eq!(hub.lines(id), v(&["WELCOME guest-3"]));
    }

    #[test]
    fn list_is_sorted_by_bytes_and_includes_the_asker() {
        let mut hub = Harness::new();
        let (a, b, c) = (hub.connect(), hub.connect(), hub.connect());
        hub.say(a, "/nick zed");
        hub.say(b, "/nick Zed");
        hub.say(c, "/nick _x");
        hub.flush();
        hub.say(a, "/list");
        assert_eq!(hub.lines(a), v(&["LIST Zed _x zed"]));
    }

    #[test]
    fn direct_messages() {
        let mut hub = Harness::new();
        let (a, b, c) = (hub.connect(), hub.connect(), hub.connect());
        hub.say(b, "/nick bob");
        hub.flush();
        hub.say(a, "/dm bob  psst ");
        let out = hub.flush();
        assert_eq!(out[&a], v(&["OK dm bob"]));
        assert_eq!(out[&b], v(&["DM guest-1  psst "]));
        assert!(!out.contains_key(&c));
        hub.say(a, "/dm nobody hi");
        assert_eq!(
            hub.lines(a),
            v(&["ERR no-such-nick nobody is called nobody"])
        );
        // to yourself is allowed
        hub.say(a, "/dm guest-1 me");
        assert_eq!(hub.lines(a), v(&["DM guest-1 me", "OK dm guest-1"]));
    }

    #[test]
    fn pub_sub_with_star_delivers_once_and_never_to_the_publisher() {
        let mut hub = Harness::new();
        let (p, s1, s2, both, none) = (
            hub.connect(),
            hub.connect(),
            hub.connect(),
            hub.connect(),
            hub.connect(),
        );
        hub.flush();
        hub.say(s1, "/sub pickup");
        hub.say(s2, "/sub *");
        hub.say(both, "/sub pickup");
        hub.say(both, "/sub *");
        hub.say(p, "/sub pickup");
        hub.say(p, "/sub *");
        let out = hub.flush();
        assert_eq!(out[&s1], v(&["OK sub pickup"]));
        assert_eq!(out[&s2], v(&["OK sub *"]));
        hub.say(p, "/pub pickup {\"id\":1}");
        let out = hub.flush();
        let event = v(&["EVENT pickup guest-1 {\"id\":1}"]);
        assert_eq!(out[&s1], event);
        assert_eq!(out[&s2], event);
        assert_eq!(out[&both], event);
        assert!(!out.contains_key(&p));
        assert!(!out.contains_key(&none));
        // another topic reaches only `*`
        hub.say(p, "/pub other");
        let out = hub.flush();
        assert_eq!(out.keys().copied().collect::<Vec<_>>(), vec![s2, both]);
        assert_eq!(out[&s2], v(&["EVENT other guest-1 "]));
        // unsub, also when not subscribed
        hub.say(s1, "/unsub pickup");
        hub.say(none, "/unsub pickup");
        let out = hub.flush();
        assert_eq!(out[&s1], v(&["OK unsub pickup"]));
        assert_eq!(out[&none], v(&["OK unsub pickup"]));
        hub.say(p, "/pub pickup x");
        assert!(!hub.flush().contains_key(&s1));
    }

    #[test]
    fn ping_help_and_errors() {
        let mut hub = Harness::new();
        let a = hub.connect();
        hub.flush();
        hub.say(a, "/ping");
        assert_eq!(hub.lines(a), v(&["PONG"]));
        hub.say(a, "/help");
        let help = hub.lines(a);
        assert_eq!(help.len(), HELP.len());
        assert!(help.iter().all(|l| l.starts_with("HELP ")));
        hub.say(a, "/PING");
        assert!(hub.lines(a)[0].starts_with("ERR unknown-command "));
        hub.say(a, "/pub *");
        assert!(hub.lines(a)[0].starts_with("ERR bad-topic "));
        hub.say(a, "");
        assert!(hub.flush().is_empty());
    }

    #[test]
    fn quit_says_bye_then_closes_and_others_see_leave() {
        let mut hub = Harness::new();
        let (a, b) = (hub.connect(), hub.connect());
        hub.flush();
        hub.say(a, "/quit");
        // anything after /quit from the same client is ignored
        hub.say(a, "still here?");
        let out = hub.flush();
        assert_eq!(out[&a], v(&["BYE", "<closed>"]));
        assert_eq!(out[&b], v(&["LEAVE guest-1"]));
        assert_eq!(hub.router.nicks.len(), 1);
        assert_eq!(hub.admission.open(), 1);
    }

    #[test]
    fn half_close_answers_first_then_leaves() {
        let mut hub = Harness::new();
        let (a, b) = (hub.connect(), hub.connect());
        hub.flush();
        hub.say(a, "/ping");
        hub.say(a, "hello");
        hub.router.disconnect(a, "end of stream");
        let out = hub.flush();
        assert_eq!(out[&a], v(&["PONG", "<closed>"]));
        assert_eq!(out[&b], v(&["MSG guest-1 hello", "LEAVE guest-1"]));
        // the nick is free again
        hub.say(b, "/nick guest-1");
        assert_eq!(hub.lines(b), v(&["OK nick guest-1"]));
    }

    #[test]
    fn subscriptions_are_capped_per_client() {
        let admission = Arc::new(Admission::new(10));
        let mut hub = Harness {
            router: Router::new(admission.clone()).with_max_subs(2),
            admission,
        };
        let a = hub.connect();
        hub.flush();
        hub.say(a, "/sub x");
        hub.say(a, "/sub y");
        hub.say(a, "/sub x");
        hub.say(a, "/sub z");
        let lines = hub.lines(a);
        assert_eq!(lines[..3], v(&["OK sub x", "OK sub y", "OK sub x"]));
        assert!(lines[3].starts_with("ERR too-many-subs "), "{lines:?}");
        hub.say(a, "/unsub x");
        hub.say(a, "/sub z");
        assert_eq!(hub.lines(a), v(&["OK unsub x", "OK sub z"]));
    }

    #[test]
    fn leaving_drops_subscriptions() {
        let mut hub = Harness::new();
        let (a, b) = (hub.connect(), hub.connect());
        hub.say(b, "/sub t");
        hub.router.disconnect(b, "reset");
        hub.flush();
        assert!(hub.router.topics.is_empty());
        hub.say(a, "/pub t x");
        assert!(hub.flush().is_empty());
    }

    #[test]
    fn one_publisher_shares_one_chunk_per_reader() {
        let mut hub = Harness::new();
        let p = hub.connect();
        let readers: Vec<_> = (0..10).map(|_| hub.connect()).collect();
        hub.flush();
        for i in 0..100 {
            hub.say(p, &format!("line {i}"));
        }
        for &r in &readers {
            assert_eq!(hub.chunks(r), 1, "merged into one range");
        }
        let out = hub.flush();
        for r in readers {
            assert_eq!(out[&r].len(), 100);
            assert_eq!(out[&r][99], "MSG guest-1 line 99");
        }
    }

    #[test]
    fn a_burst_of_joins_is_one_chunk_for_each_old_client() {
        let mut hub = Harness::new();
        let old: Vec<_> = (0..5).map(|_| hub.connect()).collect();
        hub.flush();
        let new: Vec<_> = (0..50).map(|_| hub.connect()).collect();
        for &id in &old {
            assert_eq!(hub.chunks(id), 1);
        }
        // a newcomer: its WELCOME, then the later JOINs in one piece
        assert_eq!(hub.chunks(new[0]), 2);
        let out = hub.flush();
        assert_eq!(out[&old[0]].len(), 50);
        assert_eq!(out[&new[0]][0], "WELCOME guest-6");
        assert_eq!(out[&new[0]][1], "JOIN guest-7");
        assert_eq!(out[&new[0]].len(), 50);
    }

    #[test]
    fn everyone_sees_one_global_order() {
        let mut hub = Harness::new();
        let ids: Vec<_> = (0..4).map(|_| hub.connect()).collect();
        hub.flush();
        for round in 0..5 {
            for &id in &ids {
                hub.say(id, &format!("{id}:{round}"));
            }
        }
        let out = hub.flush();
        for &id in &ids {
            let expected: Vec<String> = (0..5)
                .flat_map(|round| {
                    ids.iter()
                        .filter(move |&&from| from != id)
                        .map(move |from| format!("MSG guest-{from} {from}:{round}"))
                })
                .collect();
            assert_eq!(out[&id], expected);
        }
    }
}

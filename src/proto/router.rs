//! Who gets what: the hub's whole state, with no sockets in it.
//!
//! The [`Router`] knows every connected client (its nick, its subscriptions)
//! and decides, for each event, which lines go to which clients. It does not
//! send them. It formats each line **once** into a batch buffer and records,
//! per recipient, which byte spans of that buffer are theirs. The dispatcher
//! then writes each recipient's spans with one `writev`, so 100 subscribers
//! of one topic cost 100 syscalls per batch, not 100 per line, and not one
//! copy of the line per subscriber.
//!
//! The batch has two buffers: `shared` for lines that go to many clients
//! (`MSG`, `EVENT`, `JOIN`, `LEAVE`, `NICK`) and `direct` for answers to one
//! client (`WELCOME`, `OK`, `ERR`, `DM`, ...). Keeping them apart keeps each
//! client's share of the shared buffer in one piece: during a burst of
//! connections, every `JOIN` lands next to the previous one instead of
//! between the newcomers' `WELCOME`s, so an old client's hundred `JOIN`s are
//! one span, not a hundred.
//!
//! Because nothing here does IO, every routing rule is a unit test below, and
//! the async twin reuses this file unchanged.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use log::debug;

use crate::proto::admission::Admission;
use crate::proto::client_line::{Command, ErrorCode, HELP, Refusal, Reply};

/// A connection's id, given by the acceptor; also the number in its first
/// nick (`guest-<id>`) and in its thread's name (`client-<id>`).
pub type ClientId = u64;

/// Everything the hub remembers about one connection.
#[derive(Debug)]
struct Client {
    nick: String,
    subs: HashSet<String>,
    /// Spans of the batch waiting to be written to this client, in order.
    pending: Vec<Span>,
    /// False once the client quit or hung up: it receives no new lines, but
    /// what is already pending for it is still written (`BYE`, or the answers
    /// to what a half-closed client sent).
    open: bool,
}

/// The routing state, owned by exactly one thread (the dispatcher).
#[derive(Debug)]
pub struct Router {
    clients: HashMap<ClientId, Client>,
    nicks: HashMap<String, ClientId>,
    /// topic (or `*`) -> subscribers, in subscription order.
    topics: HashMap<String, Vec<ClientId>>,
    admission: Arc<Admission>,
    /// Lines for many clients produced since the last flush, each once.
    shared: Vec<u8>,
    /// Lines for one client produced since the last flush.
    direct: Vec<u8>,
    /// Clients with something in `pending`, in the order they got it.
    dirty: Vec<ClientId>,
    /// Clients to disconnect once their pending lines are written.
    closing: Vec<ClientId>,
}

impl Router {
    pub fn new(admission: Arc<Admission>) -> Self {
        Router {
            clients: HashMap::new(),
            nicks: HashMap::new(),
            topics: HashMap::new(),
            admission,
            shared: Vec::new(),
            direct: Vec::new(),
            dirty: Vec::new(),
            closing: Vec::new(),
        }
    }

    /// Number of connected clients (those that have not quit or hung up).
    pub fn len(&self) -> usize {
        self.nicks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nicks.is_empty()
    }

    /// The nick of a connected client.
    pub fn nick(&self, id: ClientId) -> Option<&str> {
        self.clients
            .get(&id)
            .filter(|c| c.open)
            .map(|c| c.nick.as_str())
    }

    /// Bytes formatted in the current batch (the dispatcher flushes early
    /// when this grows large).
    pub fn batch_len(&self) -> usize {
        self.shared.len() + self.direct.len()
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
        let join = self.line(Reply::Join { nick: &nick });
        self.deliver_to_all_but(id, join);
        debug!(
            "route: {id} connects as {nick}; JOIN to {} others",
            self.len()
        );
        self.nicks.insert(nick.clone(), id);
        self.clients.insert(
            id,
            Client {
                nick,
                subs: HashSet::new(),
                pending: Vec::new(),
                open: true,
            },
        );
        let client = &self.clients[&id];
        let welcome = encode_into(
            &mut self.direct,
            true,
            Reply::Welcome { nick: &client.nick },
        );
        queue(
            client_mut(&mut self.clients, id),
            id,
            &mut self.dirty,
            welcome,
        );
        &self.clients[&id].nick
    }

    /// The connection ended (end of stream, reset, write timeout): `LEAVE` to
    /// everyone else. Lines already pending for it are still flushed, then
    /// the dispatcher closes it (see [`Router::finish_batch`]).
    pub fn disconnect(&mut self, id: ClientId, why: &str) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if !client.open {
            return;
        }
        client.open = false;
        let nick = std::mem::take(&mut client.nick);
        let subs = std::mem::take(&mut client.subs);
        self.nicks.remove(&nick);
        for topic in &subs {
            self.remove_subscriber(topic, id);
        }
        self.closing.push(id);
        let leave = self.line(Reply::Leave { nick: &nick });
        self.deliver_to_all_but(id, leave);
        debug!(
            "route: {nick} ({id}) leaves ({why}); LEAVE to {} others",
            self.len()
        );
    }

    /// A line the reader refused (bad UTF-8, too long, malformed command):
    /// `ERR` back to the sender, nothing else.
    pub fn refuse(&mut self, id: ClientId, refusal: &Refusal) {
        if self.nick(id).is_none() {
            return;
        }
        debug!("route: ERR {} to {id}", refusal.code);
        self.reply(
            id,
            Reply::Err {
                code: refusal.code,
                text: &refusal.text,
            },
        );
    }

    /// One parsed command from client `id`.
    pub fn handle(&mut self, id: ClientId, command: &Command) {
        let Some(sender) = self.clients.get(&id).filter(|c| c.open) else {
            // It already quit or hung up; what it sent after that is ignored.
            return;
        };
        // The two commands that fan out (chat and publish) format their line
        // straight from the sender's nick, with no copy of it: they are the
        // dispatcher's hot path. The others take a copy, for readability.
        match command {
            Command::Chat(text) => {
                let from = sender.nick.as_str();
                let line = encode_into(&mut self.shared, false, Reply::Msg { from, text });
                let n = self.deliver_to_all_but(id, line);
                debug!("route: MSG from {} to {n} clients", self.clients[&id].nick);
                return;
            }
            Command::Pub { topic, payload } => {
                let from = sender.nick.as_str();
                let event = Reply::Event {
                    topic,
                    from,
                    payload,
                };
                let line = encode_into(&mut self.shared, false, event);
                let n = self.publish(id, topic, line);
                debug!(
                    "route: EVENT {topic} from {} to {n} subscribers",
                    self.clients[&id].nick
                );
                return;
            }
            _ => {}
        }
        let me = sender.nick.clone();
        match command {
            Command::Chat(_) | Command::Pub { .. } => {}
            Command::Nick(new) => self.rename(id, &me, new),
            Command::List => {
                let mut nicks: Vec<&str> = self.nicks.keys().map(String::as_str).collect();
                nicks.sort_unstable();
                let line = encode_into(&mut self.direct, true, Reply::List { nicks: &nicks });
                self.deliver(id, line);
            }
            Command::Dm { to, text } => match self.nicks.get(to.as_str()).copied() {
                Some(target) => {
                    let dm = encode_into(&mut self.direct, true, Reply::Dm { from: &me, text });
                    self.deliver(target, dm);
                    self.reply(
                        id,
                        Reply::Ok {
                            command: "dm",
                            detail: to,
                        },
                    );
                    debug!("route: DM from {me} to {to}");
                }
                None => self.reply(
                    id,
                    Reply::Err {
                        code: ErrorCode::NoSuchNick,
                        text: &format!("nobody is called {to}"),
                    },
                ),
            },
            Command::Sub(topic) => {
                let client = self.clients.get_mut(&id).expect("checked open above");
                if client.subs.insert(topic.clone()) {
                    self.topics.entry(topic.clone()).or_default().push(id);
                }
                debug!("route: {me} subscribes to {topic}");
                self.reply(
                    id,
                    Reply::Ok {
                        command: "sub",
                        detail: topic,
                    },
                );
            }
            Command::Unsub(topic) => {
                let client = self.clients.get_mut(&id).expect("checked open above");
                if client.subs.remove(topic) {
                    self.remove_subscriber(topic, id);
                }
                debug!("route: {me} unsubscribes from {topic}");
                self.reply(
                    id,
                    Reply::Ok {
                        command: "unsub",
                        detail: topic,
                    },
                );
            }
            Command::Ping => self.reply(id, Reply::Pong),
            Command::Quit => {
                self.reply(id, Reply::Bye);
                self.disconnect(id, "quit");
            }
            Command::Help => {
                for text in HELP {
                    self.reply(id, Reply::Help { text });
                }
            }
        }
    }

    // ---- the batch ----------------------------------------------------

    /// Clients that quit or hung up in this batch: they are gone from the
    /// routing state, and their sockets close once their last lines are out.
    pub fn closing(&self) -> &[ClientId] {
        &self.closing
    }

    /// Clients with lines waiting, in the order they first got one.
    pub fn dirty(&self) -> &[ClientId] {
        &self.dirty
    }

    /// The byte chunks waiting for `id`, in order; together they are whole
    /// lines. Adjacent lines share one chunk.
    pub fn pending_for(&self, id: ClientId) -> impl Iterator<Item = &[u8]> {
        self.clients
            .get(&id)
            .into_iter()
            .flat_map(|c| c.pending.iter())
            .map(|span| {
                let buffer = if span.direct {
                    &self.direct
                } else {
                    &self.shared
                };
                &buffer[span.start..span.end]
            })
    }

    /// Ends a batch once every pending chunk has been written (or failed):
    /// forgets the batch, removes clients that quit or hung up, and returns
    /// their ids so the dispatcher closes their sockets.
    pub fn finish_batch(&mut self) -> Vec<ClientId> {
        for id in self.dirty.drain(..) {
            if let Some(client) = self.clients.get_mut(&id) {
                client.pending.clear();
                // A burst (many JOINs interleaved with WELCOMEs) can leave
                // a long list behind; 10,000 idle clients must not keep it.
                client.pending.shrink_to(4);
            }
        }
        // Keep the buffer's memory for the next batch, unless one huge batch
        // made it big: idle hubs should not sit on megabytes.
        for buffer in [&mut self.shared, &mut self.direct] {
            buffer.clear();
            buffer.shrink_to(1 << 20);
        }
        let closing = std::mem::take(&mut self.closing);
        for id in &closing {
            self.clients.remove(id);
        }
        closing
    }

    // ---- helpers ------------------------------------------------------

    /// Formats a line for many recipients, once, into the shared buffer.
    fn line(&mut self, reply: Reply<'_>) -> Span {
        encode_into(&mut self.shared, false, reply)
    }

    /// Formats a line for one recipient and queues it.
    fn reply(&mut self, id: ClientId, reply: Reply<'_>) {
        let line = encode_into(&mut self.direct, true, reply);
        self.deliver(id, line);
    }

    /// Queues a line (already in the batch) for one client.
    fn deliver(&mut self, id: ClientId, line: Span) {
        if let Some(client) = self.clients.get_mut(&id) {
            queue(client, id, &mut self.dirty, line);
        }
    }

    /// Queues a line for every open client except `except`; returns how many.
    fn deliver_to_all_but(&mut self, except: ClientId, line: Span) -> usize {
        let mut n = 0;
        for (&id, client) in self.clients.iter_mut() {
            if id != except && client.open {
                queue(client, id, &mut self.dirty, line);
                n += 1;
            }
        }
        n
    }

    /// Queues an `EVENT` for subscribers of `topic` and of `*`, each once,
    /// never the publisher. Returns how many.
    fn publish(&mut self, from: ClientId, topic: &str, line: Span) -> usize {
        let mut n = 0;
        let named = self.topics.get(topic).map(Vec::as_slice).unwrap_or(&[]);
        let star = self.topics.get("*").map(Vec::as_slice).unwrap_or(&[]);
        for &id in named {
            if id != from
                && let Some(client) = self.clients.get_mut(&id)
            {
                queue(client, id, &mut self.dirty, line);
                n += 1;
            }
        }
        for &id in star {
            if id != from
                && let Some(client) = self.clients.get_mut(&id)
                && !client.subs.contains(topic)
            {
                queue(client, id, &mut self.dirty, line);
                n += 1;
            }
        }
        n
    }

    fn remove_subscriber(&mut self, topic: &str, id: ClientId) {
        if let Some(subscribers) = self.topics.get_mut(topic) {
            subscribers.retain(|&s| s != id);
            if subscribers.is_empty() {
                self.topics.remove(topic);
            }
        }
    }

    fn rename(&mut self, id: ClientId, old: &str, new: &str) {
        if old == new {
            self.reply(
                id,
                Reply::Ok {
                    command: "nick",
                    detail: new,
                },
            );
            return;
        }
        if self.nicks.contains_key(new) {
            self.reply(
                id,
                Reply::Err {
                    code: ErrorCode::NickTaken,
                    text: &format!("{new} is already in use"),
                },
            );
            return;
        }
        self.nicks.remove(old);
        self.nicks.insert(new.to_string(), id);
        if let Some(client) = self.clients.get_mut(&id) {
            client.nick = new.to_string();
        }
        self.reply(
            id,
            Reply::Ok {
                command: "nick",
                detail: new,
            },
        );
        let line = self.line(Reply::Nick { old, new });
        self.deliver_to_all_but(id, line);
        debug!("route: {old} is now {new}");
    }
}

/// Where some bytes of the batch are: which buffer, which range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    direct: bool,
    start: usize,
    end: usize,
}

/// Appends one encoded line to a batch buffer and returns where it is.
fn encode_into(buffer: &mut Vec<u8>, direct: bool, reply: Reply<'_>) -> Span {
    let start = buffer.len();
    reply.encode(buffer);
    Span {
        direct,
        start,
        end: buffer.len(),
    }
}

fn client_mut(clients: &mut HashMap<ClientId, Client>, id: ClientId) -> &mut Client {
    clients.get_mut(&id).expect("client was just inserted")
}

/// Adds a span to a client's pending list, merging it with the previous
/// span when they touch (the common case: one publisher, many readers).
fn queue(client: &mut Client, id: ClientId, dirty: &mut Vec<ClientId>, line: Span) {
    match client.pending.last_mut() {
        Some(last) if last.direct == line.direct && last.end == line.start => last.end = line.end,
        Some(_) => client.pending.push(line),
        None => {
            dirty.push(id);
            client.pending.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::client_line::{Parsed, parse_line};
    use std::collections::BTreeMap;

    struct Hub {
        router: Router,
        admission: Arc<Admission>,
    }

    impl Hub {
        fn new() -> Self {
            let admission = Arc::new(Admission::new(100));
            Hub {
                router: Router::new(admission.clone()),
                admission,
            }
        }

        fn connect(&mut self) -> ClientId {
            let id = self.admission.try_admit().unwrap();
            self.router.connect(id);
            id
        }

        /// Feeds one client line through the real parser.
        fn say(&mut self, id: ClientId, line: &str) {
            match parse_line(line.as_bytes()) {
                Parsed::Empty => {}
                Parsed::Command(c) => self.router.handle(id, &c),
                Parsed::Refused(r) => self.router.refuse(id, &r),
            }
        }

        /// Everything written this batch, per client, as lines.
        fn flush(&mut self) -> BTreeMap<ClientId, Vec<String>> {
            let mut out: BTreeMap<ClientId, Vec<String>> = BTreeMap::new();
            for &id in self.router.dirty() {
                let bytes: Vec<u8> = self.router.pending_for(id).flatten().copied().collect();
                let text = String::from_utf8(bytes).unwrap();
                out.insert(id, text.lines().map(str::to_string).collect());
            }
            for id in self.router.finish_batch() {
                self.admission.release();
                out.entry(id).or_default().push("<closed>".into());
            }
            out
        }

        fn lines(&mut self, id: ClientId) -> Vec<String> {
            self.flush().remove(&id).unwrap_or_default()
        }
    }

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn welcome_then_nothing_and_join_to_others() {
        let mut hub = Hub::new();
        let a = hub.connect();
        assert_eq!(hub.flush()[&a], v(&["WELCOME guest-1"]));
        let b = hub.connect();
        let out = hub.flush();
        assert_eq!(out[&a], v(&["JOIN guest-2"]));
        assert_eq!(out[&b], v(&["WELCOME guest-2"]));
    }

    #[test]
    fn chat_goes_to_everyone_else_verbatim() {
        let mut hub = Hub::new();
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
        let mut hub = Hub::new();
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
        let mut hub = Hub::new();
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
        let mut hub = Hub::new();
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
        let mut hub = Hub::new();
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
        let mut hub = Hub::new();
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
        let mut hub = Hub::new();
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
        let mut hub = Hub::new();
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
        let mut hub = Hub::new();
        let (a, b) = (hub.connect(), hub.connect());
        hub.flush();
        hub.say(a, "/quit");
        // anything after /quit from the same client is ignored
        hub.say(a, "still here?");
        let out = hub.flush();
        assert_eq!(out[&a], v(&["BYE", "<closed>"]));
        assert_eq!(out[&b], v(&["LEAVE guest-1"]));
        assert_eq!(hub.router.len(), 1);
        assert_eq!(hub.admission.open(), 1);
    }

    #[test]
    fn half_close_answers_first_then_leaves() {
        let mut hub = Hub::new();
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
    fn leaving_drops_subscriptions() {
        let mut hub = Hub::new();
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
        let mut hub = Hub::new();
        let p = hub.connect();
        let readers: Vec<_> = (0..10).map(|_| hub.connect()).collect();
        hub.flush();
        for i in 0..100 {
            hub.say(p, &format!("line {i}"));
        }
        for &r in &readers {
            assert_eq!(
                hub.router.pending_for(r).count(),
                1,
                "merged into one range"
            );
        }
        let out = hub.flush();
        for r in readers {
            assert_eq!(out[&r].len(), 100);
            assert_eq!(out[&r][99], "MSG guest-1 line 99");
        }
    }

    #[test]
    fn a_burst_of_joins_is_one_chunk_for_each_old_client() {
        let mut hub = Hub::new();
        let old: Vec<_> = (0..5).map(|_| hub.connect()).collect();
        hub.flush();
        let new: Vec<_> = (0..50).map(|_| hub.connect()).collect();
        for &id in &old {
            assert_eq!(hub.router.pending_for(id).count(), 1);
        }
        // a newcomer: its WELCOME, then the later JOINs in one piece
        assert_eq!(hub.router.pending_for(new[0]).count(), 2);
        let out = hub.flush();
        assert_eq!(out[&old[0]].len(), 50);
        assert_eq!(out[&new[0]][0], "WELCOME guest-6");
        assert_eq!(out[&new[0]][1], "JOIN guest-7");
        assert_eq!(out[&new[0]].len(), 50);
    }

    #[test]
    fn everyone_sees_one_global_order() {
        let mut hub = Hub::new();
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

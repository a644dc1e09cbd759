//! Linked hubs, as the router sees them: which hubs are reachable through
//! which link, who is on them, and which topics each link wants. No IO.
//!
//! A link is one more recipient of the [`Router`]: it has an id (from
//! [`LINK_ID_BASE`](crate::proto::ids::LINK_ID_BASE) up, so it never meets a client's), a
//! [`Pending`](crate::proto::batch::Pending) list in
//! the batch, and the server's [`crate::proto::router::Outlet`] writes to
//! it like to a client. What is different is what it gets: link lines
//! ([`LinkLine`]), and only what must cross it. The rules
//! (`docs/linking.md`):
//!
//! - The hubs form a tree. A line from a client goes to every link; a line
//!   from a link goes to every link but the one it came from. So each line
//!   reaches each hub once, and a link that would close a loop (a hub name
//!   already reachable, or our own) is refused.
//! - A `/pub` crosses a link only if that link said `SUB` for its topic or
//!   for `*`. A hub tells each link the topics wanted on its side of it:
//!   its own clients' subscriptions plus what its *other* links want.
//! - When a link goes down, every hub behind it is gone: our clients get
//!   `LEAVE` for each of their clients, and the other links get `SPLIT`.
//! - Time comes in as plain milliseconds ([`Router::link_tick`]): when a
//!   link has been sent nothing for a third of the link timeout, it gets a
//!   `PING`, answered with `PONG`, so the read timeouts on both sides only
//!   fire on a dead link (whichever side has the shorter timeout).

use std::borrow::Cow;
use std::collections::BTreeSet;

use log::{info, warn};

use crate::proto::batch::Span;
use crate::proto::ids::ClientId;
use crate::proto::link_line::{LINK_VERSION, LinkError, LinkLine, LinkRefusal, split_who};
use crate::proto::link_state::{Link, RemoteHub};
use crate::proto::router::Router;
use crate::proto::server_line::{ErrorCode, ServerLine};

/// What became of a `HELLO` the dispatcher handed to the router.
pub type HelloOutcome = Result<(), LinkRefusal>;

impl Router {
    // ---- set-up and the handshake ----------------------------------------

    /// This hub's name, key and link timeout (a third of it between
    /// heartbeats).
    pub fn set_identity(&mut self, name: &str, key: Option<&str>, link_timeout_ms: u64) {
        self.net.name = name.to_string();
        self.net.key = key.unwrap_or_default().to_string();
        self.net.heartbeat_ms = (link_timeout_ms / 3).max(1);
    }

    /// This hub's name in the network.
    pub fn hub_name(&self) -> &str {
        &self.net.name
    }

    /// Names of the hubs reachable from here (not this one), sorted.
    pub fn reachable_hubs(&self) -> Vec<String> {
        let mut hubs: Vec<String> = self.net.hubs.keys().cloned().collect();
        hubs.sort();
        hubs
    }

    /// How many other hubs are reachable.
    pub fn reachable_count(&self) -> usize {
        self.net.hubs.len()
    }

    /// The name of the hub at the other end of link `id`, once known.
    pub fn link_peer(&self, id: ClientId) -> Option<&str> {
        self.net.links.get(&id).and_then(|l| l.hub.as_deref())
    }

    /// How many topics the neighbour on link `id` wants (said `SUB` for),
    /// and up to `at_most` of them (in no order): for the live view.
    pub fn link_wants(&self, id: ClientId, at_most: usize) -> (usize, Vec<String>) {
        match self.net.links.get(&id) {
            Some(link) => (
                link.wants.len(),
                link.wants.iter().take(at_most).cloned().collect(),
            ),
            None => (0, Vec::new()),
        }
    }

    /// We dialled a hub: our `HELLO` goes first; its answer comes to
    /// [`Router::link_hello`].
    pub fn link_dialled(&mut self, id: ClientId) {
        self.net.links.insert(id, new_link(self.net.now_ms));
        let hello = LinkLine::Hello {
            version: LINK_VERSION,
            hub: self.net.name.as_str(),
            key: self.net.key.as_str(),
        };
        let span = self.batch.to_links(&hello);
        self.queue_link(id, span);
    }

    /// A neighbour's `HELLO` passed the key and version checks (in its
    /// reader): accept it unless the name would close a loop. On success
    /// the link is up: for an `incoming` link our `HELLO` goes back first,
    /// then the burst (every hub, client and wanted topic on our side). On
    /// refusal, one `ERR` and the link is closed; the refusal is returned
    /// so the server can log it.
    pub fn link_hello(&mut self, id: ClientId, hub: &str, incoming: bool) -> HelloOutcome {
        if incoming {
            self.net.links.insert(id, new_link(self.net.now_ms));
        } else if !self.net.links.get(&id).is_some_and(|l| l.open) {
            return Err(LinkRefusal::new(LinkError::BadLine, "closed meanwhile"));
        }
        if let Err(refusal) = self.check_new_hub(hub) {
            self.link_refuse(id, &refusal);
            return Err(refusal);
        }
        if let Some(link) = self.net.links.get_mut(&id) {
            link.hub = Some(hub.to_string());
        }
        self.net.hubs.insert(
            hub.to_string(),
            RemoteHub {
                via: id,
                nicks: BTreeSet::new(),
            },
        );
        if incoming {
            let hello = LinkLine::Hello {
                version: LINK_VERSION,
                hub: self.net.name.as_str(),
                key: self.net.key.as_str(),
            };
            let span = self.batch.to_links(&hello);
            self.queue_link(id, span);
        }
        self.burst(id);
        // The rest of the network learns that `hub` is reachable through us.
        let span = self.batch.to_links(&LinkLine::Hub { hub });
        self.queue_links(Some(id), span);
        info!(
            "link to {hub} is up ({} hubs reachable)",
            self.net.hubs.len()
        );
        Ok(())
    }

    /// One `ERR` to link `id`, then it is closed (a netsplit if it was up).
    pub fn link_refuse(&mut self, id: ClientId, refusal: &LinkRefusal) {
        self.net
            .links
            .entry(id)
            .or_insert_with(|| new_link(self.net.now_ms));
        let span = self.batch.to_links(&refusal.line());
        self.queue_link(id, span);
        self.link_down(id, &format!("refused: {} {}", refusal.code, refusal.text));
    }

    /// Link `id` is gone (end of stream, silent too long, write timeout,
    /// refused). Every hub behind it is unreachable now: our clients get
    /// `LEAVE` for each of their clients, the other links `SPLIT`, and the
    /// topics it wanted may no longer be wanted through the other links.
    pub fn link_down(&mut self, id: ClientId, why: &str) {
        let Some(link) = self.net.links.get_mut(&id).filter(|l| l.open) else {
            return;
        };
        link.open = false;
        let peer = link.hub.clone();
        let wanted: Vec<String> = link.wants.drain().collect();
        self.net.closing.push(id);
        let Some(peer) = peer else {
            info!("link {id} closed before its handshake: {why}");
            return;
        };
        let mut gone: Vec<String> = self
            .net
            .hubs
            .iter()
            .filter(|(_, h)| h.via == id)
            .map(|(name, _)| name.clone())
            .collect();
        gone.sort();
        let mut clients = 0;
        for hub in &gone {
            clients += self.split_hub(hub, None);
        }
        for topic in &wanted {
            self.sync_interest(topic);
        }
        warn!(
            "link to {peer} is down: {why}; netsplit: {} hub(s), {clients} client(s) unreachable",
            gone.len()
        );
    }

    /// Heartbeats: `now_ms` is the server's clock. Queues a `PING` for every
    /// link that has been sent nothing for a third of the link timeout, and
    /// returns how long until the next one is due (`None`: no link up).
    pub fn link_tick(&mut self, now_ms: u64) -> Option<u64> {
        self.net.now_ms = now_ms;
        let every = self.net.heartbeat_ms;
        let due: Vec<ClientId> = self
            .net
            .links
            .iter()
            .filter(|(_, l)| l.is_up() && now_ms.saturating_sub(l.last_sent_ms) >= every)
            .map(|(&id, _)| id)
            .collect();
        if !due.is_empty() {
            let span = self.batch.to_links(&LinkLine::Ping);
            for id in due {
                self.queue_link(id, span);
            }
        }
        self.net
            .links
            .values()
            .filter(|l| l.is_up())
            .map(|l| (l.last_sent_ms + every).saturating_sub(now_ms).max(1))
            .min()
    }

    // ---- lines from a link -------------------------------------------------

    /// One parsed line from link `from` (its reader checked the fields).
    /// One method per kind of line, like [`Router::handle`] for commands.
    pub fn on_link_line(&mut self, from: ClientId, line: &LinkLine<String>) {
        if !self.net.links.get(&from).is_some_and(Link::is_up) {
            return;
        }
        match line {
            LinkLine::Hub { hub } => self.link_hub(from, hub),
            LinkLine::Split { hub } if self.via(hub) == Some(from) => {
                self.split_hub(hub, Some(from));
            }
            LinkLine::Join { who } => self.link_join(from, who),
            LinkLine::Leave { who } => self.link_leave(from, who),
            LinkLine::Nick { who, new } => self.link_nick(from, who, new),
            LinkLine::Msg { from: who, text } => self.link_msg(from, who, text),
            LinkLine::Event {
                topic,
                from: who,
                payload,
            } => self.link_event(from, topic, who, payload),
            LinkLine::Dm {
                to,
                from: who,
                text,
            } => self.dm_from_link(from, to, who, text),
            LinkLine::Sub { topic } => self.link_sub(from, topic),
            LinkLine::Unsub { topic } => self.link_unsub(from, topic),
            // Answered, so a neighbour with a shorter link timeout than
            // ours hears from us often enough too.
            LinkLine::Ping => {
                let span = self.batch.to_links(&LinkLine::Pong);
                self.queue_link(from, span);
            }
            LinkLine::Pong => {}
            LinkLine::Err { code, text } => self.link_err(from, *code, text),
            LinkLine::Hello { .. } => {
                let refusal = LinkRefusal::new(LinkError::BadLine, "HELLO twice");
                self.link_refuse(from, &refusal);
            }
            LinkLine::Split { hub } => {
                warn!("link {from}: SPLIT {hub}, which is not behind it: ignored");
            }
        }
    }

    /// `HUB <hub>`: one more hub behind link `from`. A name we can already
    /// reach (or our own) would close a loop, so it refuses the link;
    /// otherwise the other links hear of the hub too.
    fn link_hub(&mut self, from: ClientId, hub: &str) {
        if let Err(refusal) = self.check_new_hub(hub) {
            warn!("link {from}: {}", refusal.text);
            return self.link_refuse(from, &refusal);
        }
        self.net.hubs.insert(
            hub.to_string(),
            RemoteHub {
                via: from,
                nicks: BTreeSet::new(),
            },
        );
        let span = self.batch.to_links(&LinkLine::Hub { hub });
        self.queue_links(Some(from), span);
    }

    /// `JOIN <nick>@<hub>`: a client appeared behind link `from`. Only a
    /// nick new to its hub is told on, so a repeated JOIN changes nothing.
    fn link_join(&mut self, from: ClientId, who: &str) {
        let Some((nick, hub)) = self.behind(from, who) else {
            return;
        };
        let added = self
            .net
            .hubs
            .get_mut(hub)
            .is_some_and(|h| h.nicks.insert(nick.to_string()));
        if added {
            let span = self.batch.to_many(ServerLine::Join { nick: who });
            self.deliver_to_all_but(from, span);
            let span = self.batch.to_links(&LinkLine::Join { who });
            self.queue_links(Some(from), span);
        }
    }

    /// `LEAVE <nick>@<hub>`: a client behind link `from` left. Only a nick
    /// we knew is told on, so nobody sees a LEAVE without its JOIN.
    fn link_leave(&mut self, from: ClientId, who: &str) {
        let Some((nick, hub)) = self.behind(from, who) else {
            return;
        };
        let removed = self
            .net
            .hubs
            .get_mut(hub)
            .is_some_and(|h| h.nicks.remove(nick));
        if removed {
            let span = self.batch.to_many(ServerLine::Leave { nick: who });
            self.deliver_to_all_but(from, span);
            let span = self.batch.to_links(&LinkLine::Leave { who });
            self.queue_links(Some(from), span);
        }
    }

    /// `NICK <nick>@<hub> <new>`: a client behind link `from` renamed. Our
    /// clients see both names in full (`<nick>@<hub>`), the links the line
    /// as it came.
    fn link_nick(&mut self, from: ClientId, who: &str, new: &str) {
        let Some((nick, hub)) = self.behind(from, who) else {
            return;
        };
        let renamed = self.net.hubs.get_mut(hub).is_some_and(|h| {
            let known = h.nicks.remove(nick);
            if known {
                h.nicks.insert(new.to_string());
            }
            known
        });
        if renamed {
            let shown = format!("{new}@{hub}");
            let span = self.batch.to_many(ServerLine::Nick {
                old: who,
                new: &shown,
            });
            self.deliver_to_all_but(from, span);
            let span = self.batch.to_links(&LinkLine::Nick { who, new });
            self.queue_links(Some(from), span);
        }
    }

    /// `MSG <nick>@<hub> <text>`: a chat line from behind link `from`, for
    /// our clients and every other link (the tree: each hub gets it once).
    fn link_msg(&mut self, from: ClientId, who: &str, text: &str) {
        if self.behind(from, who).is_none() {
            return;
        }
        let span = self.batch.to_many(ServerLine::Msg { from: who, text });
        self.deliver_to_all_but(from, span);
        let span = self.batch.to_links(&LinkLine::Msg { from: who, text });
        self.queue_links(Some(from), span);
    }

    /// `EVENT <topic> <nick>@<hub> <payload>`: a `/pub` from behind link
    /// `from`, for our subscribers and the other links that want `topic`.
    fn link_event(&mut self, from: ClientId, topic: &str, who: &str, payload: &str) {
        if self.behind(from, who).is_none() {
            return;
        }
        let span = self.batch.to_many(ServerLine::Event {
            topic,
            from: who,
            payload,
        });
        self.queue_event(from, topic, span);
        self.forward_event(Some(from), topic, who, payload);
    }

    /// `SUB <topic>`: someone behind link `from` wants `topic` (or `*`);
    /// the other links may now need to hear that we want it too.
    fn link_sub(&mut self, from: ClientId, topic: &str) {
        if let Some(link) = self.net.links.get_mut(&from) {
            link.wants.insert(topic.to_string());
        }
        self.sync_interest(topic);
    }

    /// `UNSUB <topic>`: nobody behind link `from` wants `topic` any more.
    fn link_unsub(&mut self, from: ClientId, topic: &str) {
        if let Some(link) = self.net.links.get_mut(&from) {
            link.wants.remove(topic);
        }
        self.sync_interest(topic);
    }

    /// `ERR <code> <text>`: the peer refused something and closes the
    /// link, so it is down from here on (and every hub behind it).
    fn link_err(&mut self, from: ClientId, code: LinkError, text: &str) {
        let peer = self.link_peer(from).unwrap_or("?").to_string();
        warn!("{peer} closed our link: ERR {code} {text}");
        self.link_down(from, &format!("ERR {code} {text}"));
    }

    // ---- what the router's own clients do, for the links ------------------

    /// True if any link is up: the client paths skip the link work otherwise.
    pub(super) fn linked(&self) -> bool {
        self.net.links.values().any(Link::is_up)
    }

    /// A local client as the network sees it: `<nick>@<this hub>`.
    pub(super) fn shown(&self, nick: &str) -> String {
        format!("{nick}@{}", self.net.name)
    }

    /// A local client's line for every link: `JOIN`, `LEAVE`, `NICK`, `MSG`.
    pub(super) fn send_every_link(&mut self, line: &LinkLine<&str>) {
        let span = self.batch.to_links(line);
        self.queue_links(None, span);
    }

    /// `EVENT` to every link (but `except`) that wants `topic` or `*`.
    pub(super) fn forward_event(
        &mut self,
        except: Option<ClientId>,
        topic: &str,
        from: &str,
        payload: &str,
    ) {
        let wanted = |l: &Link| l.is_up() && (l.wants.contains(topic) || l.wants.contains("*"));
        if !self.net.links.values().any(wanted) {
            return;
        }
        let span = self.batch.to_links(&LinkLine::Event {
            topic,
            from,
            payload,
        });
        let now = self.net.now_ms;
        for (&id, link) in self.net.links.iter_mut() {
            if Some(id) != except && wanted(link) {
                self.batch.queue(id, &mut link.pending, span);
                link.last_sent_ms = now;
            }
        }
    }

    /// `/dm <nick>@<hub> <text>` from local client `id`.
    pub(super) fn dm_remote(&mut self, id: ClientId, to: &str, text: &str) {
        let Ok((nick, hub)) = split_who(to) else {
            return self.error(id, ErrorCode::BadNick, &format!("{to} is not a name"));
        };
        if hub == self.net.name {
            return self.dm_local(id, to, nick, text);
        }
        let reachable = self
            .net
            .hubs
            .get(hub)
            .filter(|h| h.nicks.contains(nick))
            .map(|h| h.via);
        let Some(via) = reachable else {
            return self.error(id, ErrorCode::NoSuchNick, &format!("nobody is called {to}"));
        };
        let from = self.shown(self.nick(id).unwrap_or_default());
        let span = self.batch.to_links(&LinkLine::Dm {
            to,
            from: &from,
            text,
        });
        self.queue_link(via, span);
        self.reply(
            id,
            ServerLine::Ok {
                command: "dm",
                detail: to,
            },
        );
    }

    /// Every remote client, as `<nick>@<hub>` (for `/list`).
    pub(super) fn remote_names(&self) -> Vec<String> {
        self.net
            .hubs
            .iter()
            .flat_map(|(hub, h)| h.nicks.iter().map(move |n| format!("{n}@{hub}")))
            .collect()
    }

    /// The subscriptions of this hub's clients changed on `topic`: tell
    /// each link whether its far side should now send it (`SUB`/`UNSUB`).
    /// Wanted through link L = one of our clients subscribes, or some other
    /// link than L wants it.
    pub(super) fn sync_interest(&mut self, topic: &str) {
        if self.net.links.is_empty() {
            return;
        }
        let local = self.topics.contains_key(topic);
        let wanting: Vec<ClientId> = self
            .net
            .links
            .iter()
            .filter(|(_, l)| l.is_up() && l.wants.contains(topic))
            .map(|(&id, _)| id)
            .collect();
        let up: Vec<ClientId> = self
            .net
            .links
            .iter()
            .filter(|(_, l)| l.is_up())
            .map(|(&id, _)| id)
            .collect();
        for id in up {
            let want = local || wanting.iter().any(|&w| w != id);
            let told = self.net.links[&id].told.contains(topic);
            if want == told {
                continue;
            }
            let line = if want {
                LinkLine::Sub { topic }
            } else {
                LinkLine::Unsub { topic }
            };
            let span = self.batch.to_links(&line);
            self.queue_link(id, span);
            if let Some(link) = self.net.links.get_mut(&id) {
                if want {
                    link.told.insert(topic.to_string());
                } else {
                    link.told.remove(topic);
                }
            }
        }
    }

    // ---- helpers ------------------------------------------------------------

    /// A hub name may join the network unless it is ours or already
    /// reachable (that would be a loop, or two hubs with one name).
    fn check_new_hub(&self, hub: &str) -> Result<(), LinkRefusal> {
        if hub == self.net.name {
            return Err(LinkRefusal::new(
                LinkError::NameTaken,
                format!("{hub} is this hub's own name"),
            ));
        }
        if let Some(known) = self.net.hubs.get(hub) {
            let through = self.link_peer(known.via).unwrap_or("?");
            return Err(LinkRefusal::new(
                LinkError::Loop,
                format!(
                    "{hub} is already reachable from {} through {through}: a link would close a loop",
                    self.net.name
                ),
            ));
        }
        Ok(())
    }

    /// Everything on our side, for a link that just came up: the hubs, the
    /// clients (ours and theirs), then the topics wanted on our side.
    fn burst(&mut self, id: ClientId) {
        let mut hubs: Vec<String> = self
            .net
            .hubs
            .iter()
            .filter(|(_, h)| h.via != id)
            .map(|(name, _)| name.clone())
            .collect();
        hubs.sort();
        for hub in &hubs {
            let span = self.batch.to_links(&LinkLine::Hub { hub });
            self.queue_link(id, span);
        }
        let mut clients: Vec<String> = self
            .clients
            .values()
            .filter(|c| c.open)
            .map(|c| self.shown(&c.nick))
            .collect();
        clients.sort();
        for hub in &hubs {
            let h = &self.net.hubs[hub];
            clients.extend(h.nicks.iter().map(|n| format!("{n}@{hub}")));
        }
        for who in &clients {
            let span = self.batch.to_links(&LinkLine::Join { who });
            self.queue_link(id, span);
        }
        let mut topics: BTreeSet<String> = self.topics.keys().cloned().collect();
        for link in self.net.links.values().filter(|l| l.is_up()) {
            topics.extend(link.wants.iter().cloned());
        }
        for topic in &topics {
            self.sync_interest(topic);
        }
    }

    /// `hub` and its clients are gone: `LEAVE` to our clients, `SPLIT` to
    /// every link but `except`. Returns how many clients it had.
    fn split_hub(&mut self, hub: &str, except: Option<ClientId>) -> usize {
        let Some(gone) = self.net.hubs.remove(hub) else {
            return 0;
        };
        for nick in &gone.nicks {
            let who = format!("{nick}@{hub}");
            let span = self.batch.to_many(ServerLine::Leave { nick: &who });
            self.deliver_to_all_but(gone.via, span);
        }
        let span = self.batch.to_links(&LinkLine::Split { hub });
        self.queue_links(except.or(Some(gone.via)), span);
        gone.nicks.len()
    }

    /// A DM that came over link `from`: ours to deliver, or to pass on.
    fn dm_from_link(&mut self, from: ClientId, to: &str, who: &str, text: &str) {
        let Ok((nick, hub)) = split_who(to) else {
            return;
        };
        if hub == self.net.name {
            match self.nicks.get(nick).copied() {
                Some(target) => {
                    let span = self.batch.to_one(ServerLine::Dm { from: who, text });
                    self.deliver(target, span);
                }
                None => info!("DM from {who} to {to}: no such client here any more"),
            }
            return;
        }
        match self.via(hub) {
            Some(via) if via != from => {
                let span = self.batch.to_links(&LinkLine::Dm {
                    to,
                    from: who,
                    text,
                });
                self.queue_link(via, span);
            }
            _ => info!("DM from {who} to {to}: {hub} is not reachable any more"),
        }
    }

    /// The link a hub is reached through.
    fn via(&self, hub: &str) -> Option<ClientId> {
        self.net.hubs.get(hub).map(|h| h.via)
    }

    /// `<nick>@<hub>` split, if `hub` is behind link `from` (anything else
    /// would be a line going the wrong way round the tree: dropped).
    fn behind<'w>(&self, from: ClientId, who: &'w str) -> Option<(&'w str, &'w str)> {
        let (nick, hub) = split_who(who).ok()?;
        if self.via(hub) == Some(from) {
            Some((nick, hub))
        } else {
            warn!("link {from}: a line for {who}, whose hub is not behind that link: dropped");
            None
        }
    }

    /// Queues a line for one link.
    fn queue_link(&mut self, id: ClientId, span: Span) {
        let now = self.net.now_ms;
        if let Some(link) = self.net.links.get_mut(&id).filter(|l| l.open) {
            self.batch.queue(id, &mut link.pending, span);
            link.last_sent_ms = now;
        }
    }

    /// Queues a line for every link that is up, but `except`.
    fn queue_links(&mut self, except: Option<ClientId>, span: Span) {
        let now = self.net.now_ms;
        for (&id, link) in self.net.links.iter_mut() {
            if Some(id) != except && link.is_up() {
                self.batch.queue(id, &mut link.pending, span);
                link.last_sent_ms = now;
            }
        }
    }

    /// `LIST` for `id`: our clients bare, everyone else as `<nick>@<hub>`.
    pub(super) fn list_everyone(&mut self, id: ClientId) {
        let remote = self.remote_names();
        let mut nicks: Vec<&str> = self.nicks.keys().map(String::as_str).collect();
        nicks.extend(remote.iter().map(String::as_str));
        nicks.sort_unstable();
        let line = self.batch.to_one(ServerLine::List {
            nicks: Cow::Owned(nicks),
        });
        self.deliver(id, line);
    }
}

fn new_link(now_ms: u64) -> Link {
    Link {
        open: true,
        last_sent_ms: now_ms,
        ..Link::default()
    }
}

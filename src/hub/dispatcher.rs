//! The dispatcher: the one thread that owns the routing state and writes to
//! every socket.
//!
//! It blocks on the hub's channel until something happens (a connection, a
//! parsed line, a hang-up), then takes everything else already queued
//! without waiting, lets the [`Router`] decide who gets what, and writes each
//! recipient's share of the batch with a single `writev`. Because only this
//! thread touches the routing state, it needs no lock; because only this
//! thread writes, every client sees lines in one global order.
//!
//! The price of a single writer: a `write` to a client that stopped reading
//! blocks once its kernel buffer is full, and while it blocks nobody else
//! gets anything. So every socket has a write timeout (`--write-timeout-ms`),
//! and a client that cannot take its lines within it is cut off.

use std::collections::HashMap;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{Level, debug, info, log_enabled, warn};

use crate::hub::link::LinkEvent;
use crate::hub::linker::LinkerMsg;
use crate::hub::score::{ClientSlot, Counters, Scoreboard, Slot, State};
use crate::proto::admission::Admission;
use crate::proto::framing::Inbound;
use crate::proto::network::is_link;
use crate::proto::router::{ClientId, Outlet, Router};
use crate::proto::server_line::server_full_line;
use crate::support::timeouts::is_timeout;

/// Everything that reaches the dispatcher comes as one of these, through one
/// channel, so it sees a single ordered story of the hub.
#[derive(Debug)]
pub enum Event {
    /// From the acceptor: a client was admitted. The dispatcher writes to
    /// `socket`; the client's reader thread reads from the same socket.
    Connected {
        id: ClientId,
        socket: Arc<TcpStream>,
        peer: SocketAddr,
    },
    /// From the acceptor: the hub is full; answer `ERR server-full` and close.
    Full { socket: TcpStream, peer: SocketAddr },
    /// From a reader: one line, parsed (a command, or a refusal to answer).
    Line { id: ClientId, line: Inbound },
    /// From a reader: its connection ended (end of stream, reset, ...).
    Closed { id: ClientId, why: String },
    /// From the link threads (`link-acceptor`, `linker`, `link-<hub>`):
    /// see [`crate::hub::link`].
    Link(LinkEvent),
    /// From [`crate::hub::Hub::shutdown`]: close everything and return.
    Shutdown,
}

/// The dispatcher's state: the router (who gets what) and the write halves
/// of all sockets (how to reach them).
pub struct Dispatcher {
    events: Receiver<Event>,
    router: Router,
    sockets: Sockets,
    /// The clock heartbeats are counted on (milliseconds since the start).
    clock: Instant,
    /// How long until a link is due a heartbeat (`None`: no link up).
    heartbeat_in: Option<Duration>,
    /// How many other hubs are reachable, for [`crate::hub::Hub`] to read.
    reachable: Arc<AtomicUsize>,
}

/// Every admitted client's socket, as the dispatcher writes to it: the
/// threaded hub's [`Outlet`].
struct Sockets {
    open: HashMap<ClientId, Arc<TcpStream>>,
    write_timeout: Duration,
    /// The scoreboard (src/hub/score.rs): this thread's slot, and each
    /// client's, whose out-counters only this thread writes.
    score: Arc<Scoreboard>,
    me: Arc<Slot>,
    slots: HashMap<ClientId, Arc<Slot>>,
    /// Lines in the share about to be delivered (see `share_lines`).
    share_lines: usize,
    /// `--link-timeout-ms`: how long a write to a link may block.
    link_timeout: Duration,
    /// Links we dialled: which `--link` each is, and since when, so the
    /// linker hears when one is gone.
    dialled: HashMap<ClientId, (usize, Instant)>,
    linker: Option<Sender<LinkerMsg>>,
}

impl Dispatcher {
    pub fn new(
        events: Receiver<Event>,
        admission: Arc<Admission>,
        write_timeout: Duration,
        score: Arc<Scoreboard>,
    ) -> Self {
        let me = score.register_thread("dispatcher");
        Dispatcher {
            events,
            router: Router::new(admission),
            sockets: Sockets {
                open: HashMap::new(),
                write_timeout,
                score,
                me,
                slots: HashMap::new(),
                share_lines: 0,
                link_timeout: Duration::from_millis(5000),
                dialled: HashMap::new(),
                linker: None,
            },
            clock: Instant::now(),
            heartbeat_in: None,
            reachable: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sets this hub up for links: its name and key, the link timeout, and
    /// the linker to tell when a dialled link is gone.
    pub fn linking(
        mut self,
        name: &str,
        key: Option<&str>,
        link_timeout: Duration,
        linker: Option<Sender<LinkerMsg>>,
    ) -> Self {
        let ms = link_timeout.as_millis().min(u64::MAX as u128) as u64;
        self.router.set_identity(name, key, ms);
        self.sockets.link_timeout = link_timeout;
        self.sockets.linker = linker;
        self
    }

    /// The count of reachable hubs this dispatcher keeps up to date.
    pub fn reachable(&self) -> Arc<AtomicUsize> {
        self.reachable.clone()
    }

    /// Waits for the next event, or until a link is due a heartbeat
    /// (`Ok(None)`). `Err` once every sender is gone.
    fn next_event(&self) -> Result<Option<Event>, ()> {
        match self.heartbeat_in {
            None => self.events.recv().map(Some).map_err(|_| ()),
            Some(wait) => match self.events.recv_timeout(wait) {
                Ok(event) => Ok(Some(event)),
                Err(RecvTimeoutError::Timeout) => Ok(None),
                Err(RecvTimeoutError::Disconnected) => Err(()),
            },
        }
    }

    /// Queues a `PING` for every link written nothing for a third of the
    /// link timeout, and notes when the next one is due.
    fn heartbeats(&mut self) {
        let now_ms = self.clock.elapsed().as_millis() as u64;
        self.heartbeat_in = self.router.link_tick(now_ms).map(Duration::from_millis);
        let reachable = self.router.reachable_count();
        self.reachable.store(reachable, Ordering::Relaxed);
    }

    /// The dispatcher thread's whole life: wait, route a batch, write it.
    pub fn run(mut self) {
        loop {
            // The one place this thread waits for work (with links up, at
            // most until a link is due a heartbeat).
            debug!("blocking in recv() on the channel");
            self.sockets.me.enter(State::Recv);
            let Ok(first) = self.next_event() else {
                break;
            };
            self.sockets.me.enter(State::Route);
            let Some(first) = first else {
                self.heartbeats();
                self.router.flush(&mut self.sockets);
                continue;
            };
            let mut stop = !self.apply(first);
            let mut taken = 1;
            // Take whatever else is already queued, without waiting, so many
            // lines for the same socket leave in one write.
            while !stop && self.router.batch_has_room(taken) {
                let Ok(event) = self.events.try_recv() else {
                    break;
                };
                stop = !self.apply(event);
                taken += 1;
            }
            debug!("batch of {taken} events");
            self.heartbeats();
            self.router.flush(&mut self.sockets);
            if stop {
                break;
            }
        }
        info!(
            "shutting down: closing {} connections",
            self.sockets.open.len()
        );
        for (_, socket) in self.sockets.open.drain() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        self.sockets.me.enter(State::Exited);
    }

    /// Applies one event to the routing state. Returns false on shutdown.
    fn apply(&mut self, event: Event) -> bool {
        match event {
            Event::Connected { id, socket, peer } => {
                self.sockets.open.insert(id, socket);
                let nick = self.router.connect(id);
                if let Some(slot) = self.sockets.score.client(id) {
                    if let Some(c) = slot.client() {
                        c.publish(nick, 0, true);
                    }
                    self.sockets.slots.insert(id, slot);
                }
                info!(
                    "{peer} connected as {nick} ({} clients)",
                    self.sockets.open.len()
                );
            }
            Event::Full { socket, peer } => {
                warn!("{peer} refused: server full");
                Counters::add(&self.sockets.score.counters.refused_full);
                self.sockets.refuse(socket);
            }
            Event::Line { id, line } => {
                debug!("{id}: {line:?}");
                self.router.on_line(id, &line);
                self.sockets.publish(&self.router, id, &line);
            }
            Event::Closed { id, why } => self.router.disconnect(id, &why),
            Event::Link(event) => self.apply_link(event),
            Event::Shutdown => return false,
        }
        true
    }

    /// A link event: the routing is the router's ([`crate::proto::network`]);
    /// this registers and forgets the sockets.
    fn apply_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Dialled { id, socket, target } => {
                self.sockets.open.insert(id, socket);
                self.sockets.dialled.insert(id, (target, Instant::now()));
                self.router.link_dialled(id);
            }
            LinkEvent::Answered { id, hub } => {
                if let Err(refusal) = self.router.link_hello(id, &hub, false) {
                    warn!(
                        "refusing the link to {hub}: {} {}",
                        refusal.code, refusal.text
                    );
                }
            }
            LinkEvent::Incoming { id, socket, hub } => {
                self.sockets.open.insert(id, socket);
                if let Err(refusal) = self.router.link_hello(id, &hub, true) {
                    warn!(
                        "refusing the link from {hub}: {} {}",
                        refusal.code, refusal.text
                    );
                }
            }
            LinkEvent::Refused {
                socket,
                peer,
                refusal,
            } => {
                let mut line = Vec::new();
                refusal.line().encode(&mut line);
                self.sockets.refuse_with(socket, &line);
                debug!("refused link from {peer}");
            }
            LinkEvent::Line { id, line } => {
                debug!("link {id}: {line:?}");
                self.router.on_link_line(id, &line);
            }
            LinkEvent::Bad { id, refusal } => {
                let peer = self.router.link_peer(id).unwrap_or("?").to_string();
                warn!(
                    "cutting the link to {peer}: {} {}",
                    refusal.code, refusal.text
                );
                self.router.link_refuse(id, &refusal);
            }
            LinkEvent::Closed { id, why } => self.router.link_down(id, &why),
        }
    }
}

impl Outlet for Sockets {
    /// One `writev` (or a few, if the kernel takes it in parts) per
    /// recipient per batch, within the write timeout.
    fn deliver(&mut self, id: ClientId, chunks: &mut [IoSlice<'_>]) -> Result<(), String> {
        let Some(socket) = self.open.get(&id) else {
            return Ok(());
        };
        if log_enabled!(Level::Debug) {
            let bytes: usize = chunks.iter().map(|c| c.len()).sum();
            debug!("writing {bytes} bytes to {id} ({} chunks)", chunks.len());
        }
        let client = self.slots.get(&id).and_then(|s| s.client());
        // The clock read the write timeout needs anyway, also the time
        // the live view shows the dispatcher blocked in writev() since.
        let start = Instant::now();
        self.me.enter_at(State::Writev, id, self.me.nanos_at(start));
        // A link has its own timeout (`--link-timeout-ms`).
        let timeout = if is_link(id) {
            self.link_timeout
        } else {
            self.write_timeout
        };
        let written = write_all_within(socket, chunks, timeout, start, client);
        if let (Ok(()), Some(c)) = (&written, client) {
            c.wrote_lines(self.share_lines);
        }
        // Keeps the time the write began: no second clock read per write.
        self.me.switch(State::Flush);
        written.map_err(|e| {
            if is_timeout(&e) {
                Counters::add(&self.score.counters.cut_off);
                let ms = timeout.as_millis();
                format!("not reading: write blocked past {ms} ms")
            } else {
                Counters::add(&self.score.counters.write_errors);
                format!("write error: {e}")
            }
        })
    }

    fn share_lines(&mut self, _id: ClientId, lines: usize) {
        self.share_lines = lines;
    }

    /// Closes a connection for good. Shutting it down also wakes its reader
    /// thread, whose blocking `read()` returns 0, so that thread ends too.
    fn close(&mut self, id: ClientId) {
        if let Some(socket) = self.open.remove(&id) {
            debug!("closing {id}");
            let _ = socket.shutdown(Shutdown::Both);
        }
        if let Some(c) = self.slots.remove(&id).as_deref().and_then(Slot::client) {
            c.set_pending(0);
            c.publish("", 0, false);
        }
        // A link we dialled: the linker dials it again.
        if let Some((target, since)) = self.dialled.remove(&id)
            && let Some(linker) = &self.linker
        {
            let lasted = since.elapsed();
            let _ = linker.send(LinkerMsg::Gone { target, lasted });
        }
    }
}

impl Sockets {
    /// After a line: see [`Scoreboard::note_line`].
    fn publish(&self, router: &Router, id: ClientId, line: &Inbound) {
        let slot = self.slots.get(&id).map(Arc::as_ref);
        self.score.note_line(slot, router, id, line);
    }

    /// `ERR server-full` to a connection that was never admitted, then close.
    fn refuse(&self, socket: TcpStream) {
        self.refuse_with(socket, &server_full_line());
    }

    /// One line to a connection that was never admitted, then close.
    fn refuse_with(&self, mut socket: TcpStream, line: &[u8]) {
        // A fresh socket's send buffer is empty, so this cannot block for
        // long; the write timeout bounds it anyway.
        let _ = socket.set_write_timeout(Some(self.write_timeout));
        let _ = socket.write_all(line);
        let _ = socket.shutdown(Shutdown::Both);
    }
}

/// Writes all `chunks`, giving up once `timeout` has passed in total.
///
/// The socket's own write timeout (`SO_SNDTIMEO`, set by the acceptor) ends a
/// write that makes no progress at all. A client that reads a trickle makes
/// some progress on every write, so the total time is checked here as well.
/// `start` is when the write began; `client` is where the bytes still held
/// for this client, and those written, are counted for the live view.
fn write_all_within(
    mut socket: &TcpStream,
    mut chunks: &mut [IoSlice<'_>],
    timeout: Duration,
    start: Instant,
    client: Option<&ClientSlot>,
) -> io::Result<()> {
    let mut shortened = false;
    let mut left_to_write: usize = chunks.iter().map(|c| c.len()).sum();
    if let Some(c) = client {
        c.set_pending(left_to_write);
    }
    let result = loop {
        if chunks.is_empty() {
            break Ok(());
        }
        // Blocks while the client's kernel buffer is full.
        match socket.write_vectored(chunks) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                if let Some(c) = client {
                    c.wrote_bytes(n);
                    left_to_write -= n;
                    c.set_pending(left_to_write);
                }
                IoSlice::advance_slices(&mut chunks, n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
        if chunks.is_empty() {
            break Ok(());
        }
        // A partial write: the buffer is full. Wait at most what is left.
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break Err(io::ErrorKind::TimedOut.into());
        }
        shortened = true;
        socket.set_write_timeout(Some(left))?;
    };
    if shortened {
        let _ = socket.set_write_timeout(Some(timeout));
    }
    result
}

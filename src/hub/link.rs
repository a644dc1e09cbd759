//! Links to other hubs, the threads that read them: `link-acceptor` (the
//! accept loop of `--link-listen`) and one `link-<hub>` reader per link.
//!
//! A link is one more registered socket. Like a client's, it is shared by
//! two threads: its `link-<hub>` thread only reads (blocking `read()` with a
//! read timeout of `--link-timeout-ms`), parses each line with
//! [`crate::proto::link_line`] and pushes it into the hub's one channel; the
//! dispatcher owns every bit of routing state and does every write. The
//! dispatcher sends a `PING` on a link it has written nothing to for a third
//! of the timeout, so a link whose reader hears nothing for the whole
//! timeout is dead (a laptop closed, a cable pulled): the reader's `read()`
//! times out, it reports `Closed`, and the dispatcher splits the network.
//!
//! The handshake is read by whoever made the connection: the
//! `link-acceptor` reads the first line of an incoming link (bounded by the
//! link timeout), the `linker` ([`crate::hub::linker`]) the answer to its
//! `HELLO`. Only once the peer's name is known does the link get its
//! `link-<hub>` thread.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::Sender;
use log::{debug, info, warn};

use crate::hub::events::{CLIENT_STACK_SIZE, Event, LinkEvent};
use crate::hub::reader::hand_over;
use crate::hub::score::{Scoreboard, Slot, State};
use crate::proto::framing::{Frame, LineFramer};
use crate::proto::link_line::{Hello, LinkError, LinkLine, LinkRefusal, check_hello};
use crate::proto::router::ClientId;
use crate::support::timeouts::is_timeout;

/// What every link thread needs to know; built by [`crate::hub::Hub::start`].
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// `--link-key`; `None` refuses every link.
    pub key: Option<String>,
    /// `--link-timeout-ms`: read timeout, write timeout, handshake timeout.
    pub timeout: Duration,
    /// Longest link line (a client line plus room for `<nick>@<hub>`).
    pub max_line: usize,
    /// Link ids, shared by the link-acceptor and the linker.
    pub next_id: Arc<AtomicU64>,
    /// The live view's scoreboard: every link thread has a slot on it.
    pub score: Arc<Scoreboard>,
}

impl LinkSettings {
    pub fn fresh_id(&self) -> ClientId {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Socket options of every link: no Nagle, and both timeouts.
    pub fn prepare(&self, socket: &TcpStream) -> io::Result<()> {
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(self.timeout))?;
        socket.set_write_timeout(Some(self.timeout))
    }
}

/// Reads the first line of a link (the peer's `HELLO`, or its `ERR`) and
/// checks it. Blocks at most the link timeout (the socket's read timeout).
pub fn read_hello(
    socket: &TcpStream,
    framer: &mut LineFramer,
    settings: &LinkSettings,
) -> Result<Hello, LinkRefusal> {
    loop {
        match framer.next_frame() {
            Some(Frame::Line(line)) => return check_hello(line, settings.key.as_deref()),
            Some(Frame::TooLong) => {
                return Err(LinkRefusal::new(LinkError::BadHello, "line too long"));
            }
            None => {}
        }
        let n = match { socket }.read(framer.spare()) {
            Ok(0) => return Err(LinkRefusal::new(LinkError::BadHello, "closed before HELLO")),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return Err(LinkRefusal::new(
                    LinkError::BadHello,
                    format!("no HELLO within {} ms", settings.timeout.as_millis()),
                ));
            }
            Err(e) => return Err(LinkRefusal::new(LinkError::BadHello, e.to_string())),
        };
        framer.filled(n);
    }
}

/// Starts the `link-<hub>` reader of a link whose handshake is done;
/// `slot` is its place on the scoreboard ([`Scoreboard::register_link`]).
pub fn spawn_reader(
    id: ClientId,
    hub: &str,
    socket: Arc<TcpStream>,
    framer: LineFramer,
    events: Sender<Event>,
    timeout: Duration,
    slot: Arc<Slot>,
) -> io::Result<JoinHandle<()>> {
    let run = {
        let slot = slot.clone();
        move || {
            run_reader(id, socket, framer, events, timeout, &slot);
            slot.enter(State::Exited);
        }
    };
    let spawned = thread::Builder::new()
        .name(format!("link-{hub}"))
        .stack_size(CLIENT_STACK_SIZE)
        .spawn(run);
    if spawned.is_err() {
        slot.enter(State::Exited);
    }
    spawned
}

/// The slot for the reader of link `id`, registered before the dispatcher
/// hears of it (so it finds the slot) and before the thread starts.
pub fn register_reader(
    settings: &LinkSettings,
    id: ClientId,
    socket: &TcpStream,
    hub: &str,
    dialled: bool,
) -> Arc<Slot> {
    let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
    let peer = socket.peer_addr().unwrap_or(unknown);
    settings.score.register_link(id, peer, hub, dialled)
}

/// A link's read loop: blocking reads, each line parsed and handed over,
/// until end of stream, an error, a bad line, or silence past the timeout.
fn run_reader(
    id: ClientId,
    socket: Arc<TcpStream>,
    mut framer: LineFramer,
    events: Sender<Event>,
    timeout: Duration,
    slot: &Slot,
) {
    // Like a client's reader: `channel_full` only when the send waits.
    let send = |event| hand_over(&events, Event::Link(event), slot);
    let why = loop {
        // Lines the handshake read along with the HELLO come first.
        while let Some(frame) = framer.next_frame() {
            let parsed = match frame {
                Frame::TooLong => Err(LinkRefusal::new(LinkError::BadLine, "line too long")),
                Frame::Line(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => LinkLine::parse(text).map(|l| l.to_owned_line()),
                    Err(_) => Err(LinkRefusal::new(LinkError::BadLine, "not UTF-8")),
                },
            };
            match parsed {
                Ok(line) => {
                    slot.lines_in(1);
                    if !send(LinkEvent::Line { id, line }) {
                        return;
                    }
                }
                Err(refusal) => {
                    debug!("bad line: {}", refusal.text);
                    send(LinkEvent::Bad { id, refusal });
                    return;
                }
            }
        }
        // Parked until the neighbour sends something (a PING at least
        // every third of the timeout), or the timeout says it is gone.
        debug!("blocking in read()");
        slot.enter(State::Read);
        match (&*socket).read(framer.spare()) {
            Ok(0) => break "end of stream".to_string(),
            Ok(n) => {
                slot.read_returned(n);
                framer.filled(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                break format!("silent for {} ms (link timeout)", timeout.as_millis());
            }
            Err(e) => break format!("read error: {e}"),
        }
    };
    debug!("link reader done: {why}");
    send(LinkEvent::Closed { id, why });
}

/// The `link-acceptor` thread: accepts links on `--link-listen`, reads and
/// checks each one's `HELLO`, and hands it to the dispatcher.
pub struct LinkAcceptor {
    pub listener: TcpListener,
    pub events: Sender<Event>,
    pub stop: Arc<AtomicBool>,
    pub settings: LinkSettings,
}

impl LinkAcceptor {
    /// Runs until `stop` is set and a connection wakes `accept()`. Returns
    /// the handles of the link readers it started.
    pub fn run(self) -> Vec<JoinHandle<()>> {
        let me = self.settings.score.register_noted("link-acceptor");
        let readers = self.accept_loop(&me);
        me.enter(State::Exited);
        readers
    }

    fn accept_loop(&self, me: &Slot) -> Vec<JoinHandle<()>> {
        let mut readers = Vec::new();
        loop {
            debug!("blocking in accept()");
            me.enter_noted(State::Accept, "");
            let accepted = self.listener.accept();
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let (socket, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!("accept failed: {e}");
                    me.enter_noted(State::BackOff, "for 50ms after a failed accept()");
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            debug!("link connection from {peer}");
            me.enter_noted(State::Hello, &peer.to_string());
            if let Err(e) = self.settings.prepare(&socket) {
                warn!("dropping link from {peer}: {e}");
                continue;
            }
            let mut framer = LineFramer::new(self.settings.max_line);
            // Bounded by the link timeout: a peer that says nothing holds
            // up the next incoming link that long at most, never a client.
            let hub = match read_hello(&socket, &mut framer, &self.settings) {
                Ok(hello) => hello.hub,
                Err(refusal) => {
                    warn!(
                        "refusing link from {peer}: {} {}",
                        refusal.code, refusal.text
                    );
                    let event = LinkEvent::Refused {
                        socket,
                        peer,
                        refusal,
                    };
                    if self.events.send(Event::Link(event)).is_err() {
                        break;
                    }
                    continue;
                }
            };
            info!("link from {peer} says it is {hub}");
            let id = self.settings.fresh_id();
            let slot = register_reader(&self.settings, id, &socket, &hub, false);
            let socket = Arc::new(socket);
            let event = LinkEvent::Incoming {
                id,
                socket: socket.clone(),
                hub: hub.clone(),
            };
            if self.events.send(Event::Link(event)).is_err() {
                break;
            }
            let events = self.events.clone();
            let timeout = self.settings.timeout;
            match spawn_reader(id, &hub, socket, framer, events, timeout, slot) {
                Ok(handle) => readers.push(handle),
                Err(e) => {
                    let why = format!("cannot start its thread: {e}");
                    let _ = self.events.send(Event::Link(LinkEvent::Closed { id, why }));
                }
            }
            readers.retain(|h: &JoinHandle<()>| !h.is_finished());
        }
        readers
    }
}

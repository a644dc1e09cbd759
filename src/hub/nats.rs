//! The `nats` thread: the one socket a hub keeps to a NATS cluster
//! (`--nats`), dialled, read, and dialled again when it breaks.
//!
//! Who owns the socket? Like a link's, it is shared by two threads: this
//! thread connects, does the handshake (`INFO` in, `CONNECT` + `PING` out,
//! `PONG` in) and then only *reads*, with blocking `read()`s; the
//! dispatcher does every write after the handshake, through the same
//! outbox rules as a link (with `--nats-timeout-ms` as the timeout), so a
//! slow NATS server can never stall local clients.
//!
//! The operations of each read are pushed into the hub's one channel as
//! one [`NatsEvent::Ops`]; the dispatcher hands it to the IO-free bridge
//! ([`crate::proto::nats_bridge`]), which turns it into link lines.
//!
//! When the connection ends (a node killed, a cable pulled, a server that
//! stopped answering our `PING`s), this thread says [`NatsEvent::Down`] and
//! at once tries the *next* server of the list (the `--nats` URLs plus the
//! `connect_urls` the cluster told us about), so a killed node costs one
//! connect to a neighbour. Only when every server failed does it back off
//! (250 ms, doubling up to 5 s).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use log::{debug, info, warn};

use crate::hub::NatsConfig;
use crate::hub::events::{Event, NatsEvent};
use crate::hub::linker::connect;
use crate::hub::reader::hand_over;
use crate::hub::score::{Scoreboard, Slot, State};
use crate::proto::ids::ClientId;
use crate::proto::nats_wire::{
    ConnectOptions, DEFAULT_MAX_PAYLOAD, NatsParser, NatsUrl, ServerInfo, ServerOp, encode_connect,
    encode_ping,
};
use crate::support::timeouts::is_timeout;

/// The first wait after every server of the list failed; it doubles.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two rounds of the list.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Who this hub is to NATS, and how to reach it: the `--nats*` flags, and
/// the name the server's monitoring (`/connz`) shows, `tcphub <hub name>`.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub config: NatsConfig,
    pub client_name: String,
}

/// What the hub keeps to stop the thread: see [`NatsThread::stop`].
pub struct NatsHandle {
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    current: Arc<Mutex<Option<Arc<TcpStream>>>>,
}

impl NatsHandle {
    /// Ends the thread: no new connection, the sleep cut short, the socket
    /// shut down so a blocked `read()` returns.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(socket) = current.as_ref() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// The `nats` thread's state.
pub struct NatsThread {
    settings: NatsSettings,
    events: Sender<Event>,
    next_id: Arc<AtomicU64>,
    score: Arc<Scoreboard>,
    stop: Arc<AtomicBool>,
    wake: Receiver<()>,
    current: Arc<Mutex<Option<Arc<TcpStream>>>>,
}

/// A finished handshake: the socket, what the server said, and the parser
/// holding whatever arrived after the `PONG`.
struct Session {
    socket: Arc<TcpStream>,
    info: ServerInfo,
    parser: NatsParser,
}

impl NatsThread {
    /// The thread's state and the handle that stops it.
    pub fn new(
        settings: NatsSettings,
        events: Sender<Event>,
        next_id: Arc<AtomicU64>,
        score: Arc<Scoreboard>,
    ) -> (NatsThread, NatsHandle) {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let current = Arc::new(Mutex::new(None));
        let handle = NatsHandle {
            stop: stop.clone(),
            wake: wake_tx,
            current: current.clone(),
        };
        let thread = NatsThread {
            settings,
            events,
            next_id,
            score,
            stop,
            wake: wake_rx,
            current,
        };
        (thread, handle)
    }

    /// The thread's whole life: dial, read until the connection ends, dial
    /// the next server, until stopped.
    pub fn run(self) {
        let me = self.score.register_noted("nats");
        let mut servers: Vec<NatsUrl> = self.settings.config.servers.clone();
        let mut next = 0;
        let mut backoff = FIRST_BACKOFF;
        let mut failed_in_a_row = 0;
        while !self.stop.load(Ordering::SeqCst) {
            let url = servers[next % servers.len()].clone();
            next += 1;
            let addr = format!("{}:{}", url.host, url.port);
            me.enter_noted(State::Connect, &addr);
            match self.handshake(&url, &addr) {
                Ok(session) => {
                    failed_in_a_row = 0;
                    backoff = FIRST_BACKOFF;
                    learn(&mut servers, &session.info.connect_urls, &url);
                    if !self.serve(session, &addr, &mut servers, &url, &me) {
                        break;
                    }
                }
                Err(why) => {
                    warn!("NATS server {addr}: {why}");
                    failed_in_a_row += 1;
                }
            }
            if failed_in_a_row >= servers.len() {
                failed_in_a_row = 0;
                info!("no NATS server answered; trying again in {backoff:?}");
                me.enter_noted(
                    State::BackOff,
                    &format!("{backoff:?} before the next round"),
                );
                // Parked until the next round, or until shutdown wakes us.
                let _ = self.wake.recv_timeout(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        me.enter(State::Exited);
    }

    /// Connects to one server and does the handshake, bounded by the
    /// timeout at every step.
    fn handshake(&self, url: &NatsUrl, addr: &str) -> Result<Session, String> {
        let timeout = self.settings.config.timeout;
        let socket = connect(addr, timeout)?;
        let io = |e: io::Error| e.to_string();
        socket.set_nodelay(true).map_err(io)?;
        socket.set_read_timeout(Some(timeout)).map_err(io)?;
        socket.set_write_timeout(Some(timeout)).map_err(io)?;
        let mut parser = NatsParser::new(DEFAULT_MAX_PAYLOAD);
        let info = match read_op(&socket, &mut parser)? {
            ServerOp::Info(info) => info,
            other => return Err(format!("expected INFO first, got {other:?}")),
        };
        parser.set_max_payload(info.max_payload.max(1));
        let options = self.connect_options(url);
        if info.auth_required && options.user.is_none() && options.auth_token.is_none() {
            return Err(
                "the server wants credentials: give --nats-user/--nats-pass or --nats-token".into(),
            );
        }
        let mut hello = Vec::new();
        encode_connect(&options, &mut hello);
        encode_ping(&mut hello);
        (&socket).write_all(&hello).map_err(io)?;
        // The PONG to our PING says the CONNECT was accepted; a -ERR says
        // why not (bad credentials, say).
        loop {
            match read_op(&socket, &mut parser)? {
                ServerOp::Pong => break,
                ServerOp::Err(text) => return Err(format!("refused: {text}")),
                ServerOp::Ping => (&socket).write_all(b"PONG\r\n").map_err(io)?,
                _ => {}
            }
        }
        Ok(Session {
            socket: Arc::new(socket),
            info,
            parser,
        })
    }

    /// What we say in `CONNECT`: credentials from the URL, else the flags.
    fn connect_options(&self, url: &NatsUrl) -> ConnectOptions {
        let s = &self.settings;
        let (user, pass, token) = match (&url.user, &url.pass) {
            (Some(u), Some(p)) => (Some(u.clone()), Some(p.clone()), None),
            // `nats://secret@host` carries a token, as nats.go reads it.
            (Some(t), None) => (None, None, Some(t.clone())),
            _ => (
                s.config.user.clone(),
                s.config.pass.clone(),
                s.config.token.clone(),
            ),
        };
        ConnectOptions {
            name: s.client_name.clone(),
            user,
            pass,
            auth_token: token,
            no_echo: true,
            ..ConnectOptions::default()
        }
    }

    /// Hands a fresh connection to the dispatcher and reads it until it
    /// ends. Returns false when the hub is stopping.
    fn serve(
        &self,
        session: Session,
        addr: &str,
        servers: &mut Vec<NatsUrl>,
        url: &NatsUrl,
        me: &Slot,
    ) -> bool {
        let id: ClientId = self.next_id.fetch_add(1, Ordering::SeqCst);
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let peer = session.socket.peer_addr().unwrap_or(unknown);
        let slot = self.score.register_link(id, peer, "nats", true);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(session.socket.clone());
        // This thread reads as `link-nats` from now on (that slot shows its
        // reads); its own slot says where.
        me.enter_noted(State::Read, &format!("{addr} (see link-nats)"));
        let name = &session.info.server_name;
        info!(
            "connected to NATS server {name} at {addr} (version {})",
            session.info.version
        );
        let up = NatsEvent::Up {
            id,
            socket: session.socket.clone(),
            info: session.info.clone(),
        };
        if !hand_over(&self.events, Event::Nats(Box::new(up)), me) {
            return false;
        }
        let why = self.read_loop(id, session, servers, url, &slot);
        slot.enter(State::Exited);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        warn!("NATS connection to {addr} lost: {why}");
        let down = NatsEvent::Down { id, why };
        hand_over(&self.events, Event::Nats(Box::new(down)), me)
            && !self.stop.load(Ordering::SeqCst)
    }

    /// Blocking reads until the connection ends; the operations of each
    /// read go to the dispatcher together, as one event. Returns why it
    /// ended.
    ///
    /// Why together: the dispatcher routes what it has, then writes each
    /// client's share with one `writev`. Handed over one by one, the
    /// operations of a 64 kB read trickled in and the dispatcher wrote
    /// after every few: 130 ns of hub CPU per delivery across NATS against
    /// 30 ns for one hub (`make nats-bench`, lead-limited 1 x 100).
    fn read_loop(
        &self,
        id: ClientId,
        mut session: Session,
        servers: &mut Vec<NatsUrl>,
        url: &NatsUrl,
        slot: &Slot,
    ) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut ops = Vec::new();
            loop {
                let op = match session.parser.next_op() {
                    Ok(Some(op)) => op,
                    Ok(None) => break,
                    Err(e) => return format!("bad bytes from the server: {e}"),
                };
                if let ServerOp::Info(info) = &op {
                    learn(servers, &info.connect_urls, url);
                }
                slot.lines_in(1);
                ops.push(op);
            }
            if !ops.is_empty() {
                let event = Event::Nats(Box::new(NatsEvent::Ops { id, ops }));
                if !hand_over(&self.events, event, slot) {
                    return "the hub is stopping".into();
                }
            }
            // Parked until the server sends something: a message, or at
            // least the PONG to the PING the dispatcher sends every third of
            // the timeout. Silence for the whole timeout means it is gone.
            debug!("blocking in read()");
            slot.enter(State::Read);
            match (&*session.socket).read(&mut buf) {
                Ok(0) => return "end of stream".into(),
                Ok(n) => {
                    slot.read_returned(n);
                    session.parser.push(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    let ms = self.settings.config.timeout.as_millis();
                    return format!("silent for {ms} ms (--nats-timeout-ms)");
                }
                Err(e) => return format!("read error: {e}"),
            }
        }
    }
}

/// Reads until one whole operation is parsed (the handshake's reads).
fn read_op(mut socket: &TcpStream, parser: &mut NatsParser) -> Result<ServerOp, String> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(op) = parser.next_op().map_err(|e| e.to_string())? {
            return Ok(op);
        }
        match socket.read(&mut buf) {
            Ok(0) => return Err("closed during the handshake".into()),
            Ok(n) => parser.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err("no answer within --nats-timeout-ms".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Adds the cluster members a server told us of (`host:port`) to the list,
/// with the credentials of the URL that led to them.
fn learn(servers: &mut Vec<NatsUrl>, urls: &[String], via: &NatsUrl) {
    for hostport in urls {
        let Some((host, port)) = hostport.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse() else {
            continue;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if servers.iter().any(|s| s.host == host && s.port == port) {
            continue;
        }
        debug!("learnt NATS server {host}:{port} from the cluster");
        servers.push(NatsUrl {
            host,
            port,
            user: via.user.clone(),
            pass: via.pass.clone(),
        });
    }
}

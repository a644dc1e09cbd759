//! Starting and stopping a hub: the one place that creates its threads.
//!
//! [`Hub::start`] binds the listener, creates the channel, and starts the
//! `dispatcher` and `acceptor` threads; the acceptor starts one `client-<id>`
//! thread per connection. [`Hub::shutdown`] undoes all of it and joins every
//! thread, so tests can start and stop hubs freely without leaking any.
//!
//! The files of this folder are the threads: [`acceptor`] (the `acceptor`
//! thread), [`reader`] (each `client-<id>` thread) and [`dispatcher`] (the
//! `dispatcher` thread). What they compute comes from [`crate::proto`].
//! A linked hub (`docs/linking.md`) has up to two more: `link-acceptor`
//! and `linker`, and one `link-<hub>` reader per link ([`link`], [`linker`]).

pub mod acceptor;
pub mod batch_gate;
pub mod budget;
pub mod dispatcher;
pub mod error;
pub mod events;
pub mod link;
pub mod linker;
pub mod monitor;
pub mod nats;
pub mod outbox;
pub mod reader;
pub mod recorder;
pub mod score;
pub mod stats;
pub mod thread_state;

pub use error::HubError;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use log::{debug, info, warn};

use crate::hub::acceptor::Acceptor;
use crate::hub::batch_gate::BatchGate;
use crate::hub::budget::Intake;
use crate::hub::dispatcher::Dispatcher;
use crate::hub::events::{Event, PerIp};
use crate::hub::link::{LinkAcceptor, LinkSettings};
use crate::hub::linker::{Linker, LinkerMsg};
use crate::hub::monitor::Monitor;
use crate::hub::nats::{NatsHandle, NatsSettings, NatsThread};
use crate::hub::recorder::Recorder;
use crate::hub::score::Scoreboard;
use crate::proto::admission::Admission;
use crate::proto::ids::LINK_ID_BASE;
use crate::proto::link_line::check_hub_name;
use crate::proto::nats_bridge::BridgeSettings;
use crate::proto::nats_subjects::{FOREIGN_HUB, Layout};
use crate::proto::nats_wire::NatsUrl;
use crate::proto::pending_limit::PendingLimits;
use crate::proto::recording::{HubSettings, header};

/// How a hub is set up; every field is a `tcphub serve` flag.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address or name to listen on (`--host`).
    pub host: String,
    /// Port to listen on; 0 lets the OS pick a free one (`--port`).
    pub port: u16,
    /// Connections beyond this many get `ERR server-full` (`--max-clients`).
    pub max_clients: usize,
    /// Longest line accepted, not counting the line ending (`--max-line`).
    pub max_line: usize,
    /// How long a write may block before its client is cut off
    /// (`--write-timeout-ms`).
    pub write_timeout: Duration,
    /// How many events may wait in the channel before readers block
    /// (`--channel-capacity`).
    pub channel_capacity: usize,
    /// This hub's name among linked hubs (`--name`); default
    /// `hub-<client port>`.
    pub name: Option<String>,
    /// Accept links from other hubs here (`--link-listen HOST:PORT`).
    pub link_listen: Option<String>,
    /// Link to these hubs' link ports (`--link HOST:PORT`, repeatable).
    pub links: Vec<String>,
    /// The shared link secret (`--link-key`, or `TCPHUB_LINK_KEY`); without
    /// it every link is refused.
    pub link_key: Option<String>,
    /// A link silent (or unable to take its lines) this long is down
    /// (`--link-timeout-ms`).
    pub link_timeout: Duration,
    /// Join a NATS cluster (`--nats` and its flags, docs/nats.md).
    pub nats: Option<NatsConfig>,
    /// Bytes of parsed lines the channel may hold, all readers together,
    /// before readers block (`--channel-bytes`).
    pub channel_bytes: usize,
    /// Bytes the dispatcher may keep for one client that does not take
    /// them fast enough; past it the client is cut off (`--max-pending`,
    /// the hard limit).
    pub max_pending: usize,
    /// Bytes one client may have waiting for a while: over this for
    /// `soft_pending_ms` without a break, it is cut off (`--soft-pending`).
    pub soft_pending: usize,
    /// How long a client may stay over `soft_pending`
    /// (`--soft-pending-ms`).
    pub soft_pending_ms: u64,
    /// The old single writer: every write blocks until the kernel takes it
    /// all, or `write_timeout` passes, and everyone waits (`--blocking-writes`).
    pub blocking_writes: bool,
    /// How long the dispatcher waits for more lines after a small batch
    /// written while more were arriving (`--linger-us`; zero: never).
    pub linger: Duration,
    /// Topics one client may be subscribed to at once (`--max-subs`).
    pub max_subs: usize,
    /// How long a line may stay unfinished (`--line-timeout-ms`; None: off).
    pub line_timeout: Option<Duration>,
    /// How long a client may send nothing (`--idle-timeout-ms`; None: off).
    pub idle_timeout: Option<Duration>,
    /// Connections from one IP address at once (`--max-per-ip`; None: off).
    pub max_per_ip: Option<usize>,
    /// Where the live view's HTTP server listens, `HOST:PORT` (or just a
    /// port, on loopback); `None` for no monitor (`--monitor`).
    pub monitor: Option<String>,
    /// `--record FILE`: write the session as a replayable scenario
    /// (src/hub/recorder.rs); `None`: no recording.
    pub record: Option<std::path::PathBuf>,
    /// `--record-max-bytes`: the recording stops at this size.
    pub record_max_bytes: u64,
}

/// Events the channel holds by default: 16 Ki. A burst of that many lines
/// is absorbed without any reader waiting; past it, readers block in
/// [`reader::hand_over`] until the dispatcher catches up.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 16 * 1024;
/// Bytes the channel holds by default, all readers together: 16 MiB.
pub const DEFAULT_CHANNEL_BYTES: usize = 16 * 1024 * 1024;
/// Bytes kept for one client that is behind, at most, by default: 32 MiB
/// (the hard limit). An unpaced 300,000-line burst of 64-byte lines is
/// 23.4 MB of `MSG` lines per subscriber, all of which may wait here
/// while a reader that keeps up on average catches up; docs/architecture.md
/// ("Pending limits") has the measurement.
pub const DEFAULT_MAX_PENDING: usize = 32 * 1024 * 1024;
/// Bytes one client may have waiting for up to
/// [`DEFAULT_SOFT_PENDING_MS`], by default: 8 MiB.
pub const DEFAULT_SOFT_PENDING: usize = 8 * 1024 * 1024;
/// How long a client may stay over the soft limit, by default: 30 s (the
/// burst above took 3-20 s to drain on this 2-core machine, busy or not).
pub const DEFAULT_SOFT_PENDING_MS: u64 = 30_000;
/// Subscriptions per client, by default.
pub const DEFAULT_MAX_SUBS: usize = 4096;
/// How long a line may stay unfinished, by default: 30 s.
pub const DEFAULT_LINE_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_string(),
            port: 3000,
            max_clients: 1024,
            max_line: 4096,
            write_timeout: Duration::from_millis(2000),
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            name: None,
            link_listen: None,
            links: Vec::new(),
            link_key: None,
            link_timeout: Duration::from_millis(DEFAULT_LINK_TIMEOUT_MS),
            nats: None,
            channel_bytes: DEFAULT_CHANNEL_BYTES,
            max_pending: DEFAULT_MAX_PENDING,
            soft_pending: DEFAULT_SOFT_PENDING,
            soft_pending_ms: DEFAULT_SOFT_PENDING_MS,
            blocking_writes: false,
            linger: DEFAULT_LINGER,
            max_subs: DEFAULT_MAX_SUBS,
            line_timeout: Some(DEFAULT_LINE_TIMEOUT),
            idle_timeout: None,
            max_per_ip: None,
            monitor: None,
            record: None,
            record_max_bytes: recorder::DEFAULT_MAX_BYTES,
        }
    }
}

/// `--link-timeout-ms` by default.
pub const DEFAULT_LINK_TIMEOUT_MS: u64 = 5000;

/// `--linger-us` by default: see `Dispatcher::linger` for the figures.
pub const DEFAULT_LINGER: Duration = Duration::from_micros(200);

/// `--nats-timeout-ms` by default: a NATS server or another hub silent this
/// long is gone.
pub const DEFAULT_NATS_TIMEOUT_MS: u64 = 5000;

/// How a hub joins a NATS cluster: `--nats URLS` and the flags beside it.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// The servers of `--nats`, tried in turn (more are learnt from them).
    pub servers: Vec<NatsUrl>,
    /// Credentials where a URL has none (`--nats-user`/`--nats-pass`,
    /// `--nats-token`, or `TCPHUB_NATS_USER`/`_PASS`/`_TOKEN`).
    pub user: Option<String>,
    pub pass: Option<String>,
    pub token: Option<String>,
    /// Every hub of a room shares its subjects (`--nats-room`).
    pub room: String,
    /// `--nats-timeout-ms`.
    pub timeout: Duration,
}

impl Config {
    /// The pending limits as the IO-free rule takes them.
    pub fn pending_limits(&self) -> PendingLimits {
        PendingLimits {
            hard: self.max_pending,
            soft: self.soft_pending,
            soft_ms: self.soft_pending_ms,
        }
    }

    /// The defaults, on a port the OS picks: what tests use.
    pub fn ephemeral() -> Self {
        Config {
            port: 0,
            ..Config::default()
        }
    }
}

/// A running hub. Dropping it shuts it down.
pub struct Hub {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    events: Sender<Event>,
    acceptor: Option<JoinHandle<Vec<JoinHandle<()>>>>,
    dispatcher: Option<JoinHandle<()>>,
    admission: Arc<Admission>,
    /// This hub's name among linked hubs.
    name: String,
    /// How many other hubs are reachable (kept by the dispatcher).
    reachable: Arc<AtomicUsize>,
    /// The link threads, if any (`link-acceptor`, `linker`); boxed, so a
    /// hub that is not linked stays small.
    links: Box<LinkThreads>,
    /// The `monitor` thread and its address, with `--monitor`.
    monitor: Option<(JoinHandle<()>, SocketAddr)>,
}

/// Every socket a hub listens on, bound before any thread starts, so a
/// port in use (or a bad flag) fails [`Hub::start`] with nothing to undo.
struct Listeners {
    /// The client port, and the address it got.
    clients: (TcpListener, SocketAddr),
    /// This hub's name among linked hubs.
    name: String,
    /// `--link-listen`, if given.
    links: Option<(TcpListener, SocketAddr)>,
    /// `--monitor`, if given.
    monitor: Option<(TcpListener, SocketAddr)>,
}

/// What the threads of one hub share, made before any of them starts.
struct Shared {
    /// What every thread is doing, for the live view (src/hub/score.rs).
    score: Arc<Scoreboard>,
    /// The sending end of the one channel into the dispatcher (its
    /// receiving end goes to the dispatcher alone, not in here).
    events: Sender<Event>,
    admission: Arc<Admission>,
    stop: Arc<AtomicBool>,
    /// The `linker` thread's inbox, both ends; with no `--link` the
    /// receiver is dropped unused.
    linker_tx: Sender<LinkerMsg>,
    linker_rx: Receiver<LinkerMsg>,
    intake: Arc<Intake>,
    per_ip: Arc<PerIp>,
    /// When the dispatcher's batch ends, for readers holding lines.
    gate: Arc<BatchGate>,
}

impl Hub {
    /// Binds, starts the dispatcher and acceptor threads, and returns at once.
    ///
    /// In phases, each its own function below: bind every socket, make the
    /// shared state, start `dispatcher`, start `acceptor`, then the optional
    /// `link-acceptor`, `linker` and `monitor`. If a thread cannot start,
    /// the ones before it are stopped and joined before the error returns.
    pub fn start(config: Config) -> Result<Hub, HubError> {
        let bound = bind_listeners(&config)?;
        let (shared, inbox) = Shared::new(&config);
        let dialling = !config.links.is_empty();
        let recorder = spawn_recorder(&config, bound.clients.1)?;
        let (dispatcher, reachable) =
            spawn_dispatcher(&config, &bound.name, &shared, inbox, dialling, recorder)?;
        let (listener, addr) = bound.clients;
        let (acceptor, dispatcher) = spawn_acceptor(&config, listener, &shared, dispatcher)?;
        let mut hub = Hub {
            addr,
            stop: shared.stop.clone(),
            events: shared.events.clone(),
            acceptor: Some(acceptor),
            dispatcher: Some(dispatcher),
            admission: shared.admission.clone(),
            monitor: None,
            name: bound.name,
            reachable,
            links: Box::default(),
        };
        let settings = LinkSettings {
            key: config.link_key.clone(),
            timeout: config.link_timeout,
            max_line: config.max_line + LINK_LINE_EXTRA,
            next_id: Arc::new(AtomicU64::new(LINK_ID_BASE)),
            score: shared.score.clone(),
        };
        // On failure, dropping `hub` stops what was started.
        if let Some(link_listener) = bound.links {
            hub.start_link_acceptor(link_listener, settings.clone())?;
        }
        if dialling {
            let linker_inbox = (shared.linker_tx.clone(), shared.linker_rx);
            hub.start_linker(&config, linker_inbox, settings.clone())?;
        }
        if let Some(nats) = &config.nats {
            hub.start_nats(nats, &settings)?;
        }
        if let Some(monitor_listener) = bound.monitor {
            let (score, events) = (shared.score, shared.events);
            hub.start_monitor(&config, monitor_listener, score, events)?;
        }
        Ok(hub)
    }

    /// Starts the `link-acceptor` thread on the `--link-listen` socket. On
    /// error the caller drops `self`, which stops what was started.
    fn start_link_acceptor(
        &mut self,
        (listener, link_addr): (TcpListener, SocketAddr),
        settings: LinkSettings,
    ) -> Result<(), HubError> {
        self.links.addr = Some(link_addr);
        let link_acceptor = LinkAcceptor {
            listener,
            events: self.events.clone(),
            stop: self.links.stop.clone(),
            settings,
        };
        let handle = thread::Builder::new()
            .name("link-acceptor".into())
            .spawn(move || link_acceptor.run())
            .map_err(|source| HubError::Spawn {
                thread: "link-acceptor",
                source,
            })?;
        self.links.acceptor = Some(handle);
        Ok(())
    }

    /// Starts the `linker` thread, which dials every `--link` target (and
    /// redials); `inbox` is how the dispatcher and shutdown talk to it. On
    /// error the caller drops `self`, which stops what was started.
    fn start_linker(
        &mut self,
        config: &Config,
        (linker_tx, linker_rx): (Sender<LinkerMsg>, Receiver<LinkerMsg>),
        settings: LinkSettings,
    ) -> Result<(), HubError> {
        let linker = Linker {
            targets: config.links.clone(),
            events: self.events.clone(),
            inbox: linker_rx,
            settings,
        };
        let handle = thread::Builder::new()
            .name("linker".into())
            .spawn(move || linker.run())
            .map_err(|source| HubError::Spawn {
                thread: "linker",
                source,
            })?;
        self.links.linker = Some((handle, linker_tx));
        Ok(())
    }

    /// Starts the `nats` thread, which dials the NATS cluster and reads it
    /// (src/hub/nats.rs). On error the caller drops `self`.
    fn start_nats(&mut self, nats: &NatsConfig, links: &LinkSettings) -> Result<(), HubError> {
        let settings = NatsSettings {
            config: nats.clone(),
            client_name: format!("tcphub {}", self.name),
        };
        let (thread, handle) = NatsThread::new(
            settings,
            self.events.clone(),
            links.next_id.clone(),
            links.score.clone(),
        );
        let joined = thread::Builder::new()
            .name("nats".into())
            .spawn(move || thread.run())
            .map_err(|source| HubError::Spawn {
                thread: "nats",
                source,
            })?;
        self.links.nats = Some((joined, handle));
        Ok(())
    }

    /// Starts the `monitor` thread (the live view's HTTP server, with
    /// `--monitor`). It reads the channel's fill through `events`. On
    /// error the caller drops `self`, which stops the others.
    fn start_monitor(
        &mut self,
        config: &Config,
        (listener, monitor_addr): (TcpListener, SocketAddr),
        score: Arc<Scoreboard>,
        events: Sender<Event>,
    ) -> Result<(), HubError> {
        let monitor = Monitor {
            listener,
            score,
            channel: Box::new(move || (events.len(), events.capacity().unwrap_or(0))),
            admission: self.admission.clone(),
            stop: self.stop.clone(),
            hub_addr: self.addr,
            max_clients: config.max_clients,
            write_timeout: config.write_timeout,
            hub_name: Some(self.name.clone()),
            link_timeout: config.link_timeout,
        };
        let handle = thread::Builder::new()
            .name("monitor".into())
            .spawn(move || monitor.run())
            .map_err(|source| HubError::Spawn {
                thread: "monitor",
                source,
            })?;
        self.monitor = Some((handle, monitor_addr));
        Ok(())
    }

    /// This hub's name among linked hubs (`--name`, or `hub-<port>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many other hubs are reachable through links right now.
    pub fn reachable_hubs(&self) -> usize {
        self.reachable.load(Ordering::Relaxed)
    }

    /// The address links are accepted on (`--link-listen`), if any.
    pub fn link_addr(&self) -> Option<SocketAddr> {
        self.links.addr
    }

    /// The address the hub listens on (with the real port when started with
    /// port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the live view (`--monitor`) listens, if it runs.
    pub fn monitor_addr(&self) -> Option<SocketAddr> {
        self.monitor.as_ref().map(|(_, addr)| *addr)
    }

    /// Clients currently admitted.
    pub fn clients(&self) -> usize {
        self.admission.open()
    }

    /// Blocks the calling thread for as long as the hub runs (for
    /// `tcphub serve`, that is until the process is killed).
    pub fn wait(mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.stop_threads(Vec::new());
    }

    /// Stops accepting, disconnects every client, and joins every thread
    /// (acceptor, dispatcher, and all client threads) before returning.
    pub fn shutdown(mut self) {
        self.shutdown_inner();
    }

    fn shutdown_inner(&mut self) {
        // No new links first: their threads hand sockets to the dispatcher.
        let link_readers = self.links.stop();
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        debug!("shutdown: waking the acceptor");
        self.stop.store(true, Ordering::SeqCst);
        self.stop_monitor();
        // accept() only returns when someone connects: so connect.
        let _ = TcpStream::connect_timeout(&wake_address(self.addr), Duration::from_secs(1));
        let mut readers = match acceptor.join() {
            Ok(readers) => readers,
            Err(_) => {
                warn!("the acceptor thread panicked");
                Vec::new()
            }
        };
        readers.extend(link_readers);
        self.stop_threads(readers);
    }

    /// Wakes the monitor's accept() (the stop flag is already set) and joins it.
    fn stop_monitor(&mut self) {
        if let Some((monitor, addr)) = self.monitor.take() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&wake_address(addr), Duration::from_secs(1));
            if monitor.join().is_err() {
                warn!("the monitor thread panicked");
            }
        }
    }

    fn stop_threads(&mut self, readers: Vec<JoinHandle<()>>) {
        self.stop_monitor();
        let _ = self.events.send(Event::Shutdown);
        if let Some(dispatcher) = self.dispatcher.take()
            && dispatcher.join().is_err()
        {
            warn!("the dispatcher thread panicked");
        }
        // After the dispatcher, which said BYE on the NATS socket.
        if let Some((nats, handle)) = self.links.nats.take() {
            handle.stop();
            if nats.join().is_err() {
                warn!("the nats thread panicked");
            }
        }
        // The dispatcher shut every socket down on its way out, so each
        // reader's blocking read() has returned, and they all end.
        for reader in readers {
            let _ = reader.join();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}

/// Room a link line needs beyond `--max-line`: `@<hub>` and the fields a
/// link line adds to a client's.
pub const LINK_LINE_EXTRA: usize = 256;

/// The `link-acceptor` and `linker` threads of a hub, when it has them.
#[derive(Default)]
struct LinkThreads {
    addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<Readers>>,
    linker: Option<(JoinHandle<Readers>, Sender<LinkerMsg>)>,
    /// The `nats` thread, with `--nats`.
    nats: Option<(JoinHandle<()>, NatsHandle)>,
}

/// What a thread that starts readers hands back when it ends.
type Readers = Vec<JoinHandle<()>>;

impl LinkThreads {
    /// Stops both threads and returns the link readers they started (they
    /// end once the dispatcher shuts their sockets down).
    fn stop(&mut self) -> Vec<JoinHandle<()>> {
        let mut readers = Vec::new();
        if let Some((linker, inbox)) = self.linker.take() {
            let _ = inbox.send(LinkerMsg::Stop);
            match linker.join() {
                Ok(r) => readers.extend(r),
                Err(_) => warn!("the linker thread panicked"),
            }
        }
        if let Some(acceptor) = self.acceptor.take() {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(addr) = self.addr {
                let _ = TcpStream::connect_timeout(&wake_address(addr), Duration::from_secs(1));
            }
            match acceptor.join() {
                Ok(r) => readers.extend(r),
                Err(_) => warn!("the link-acceptor thread panicked"),
            }
        }
        readers
    }
}

/// The bind phase of [`Hub::start`]: the client port first (its port
/// names the hub by default), then the link flags are checked, then the
/// `--link-listen` and `--monitor` sockets.
fn bind_listeners(config: &Config) -> Result<Listeners, HubError> {
    let (listener, addr) = bind(&config.host, config.port)?;
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| format!("hub-{}", addr.port()));
    check_link_config(config, &name)?;
    check_nats_config(config, &name)?;
    let links = match &config.link_listen {
        Some(at) => {
            let (host, port) = split_host_port(at);
            Some(bind(host, port)?)
        }
        None => None,
    };
    let monitor = match &config.monitor {
        Some(spec) => {
            let (host, port) = split_host_port(spec);
            Some(bind(host, port)?)
        }
        None => None,
    };
    Ok(Listeners {
        clients: (listener, addr),
        name,
        links,
        monitor,
    })
}

impl Shared {
    /// The shared state, and the receiving end of the channel for the
    /// dispatcher.
    fn new(config: &Config) -> (Shared, Receiver<Event>) {
        let score = Arc::new(Scoreboard::new());
        // The one channel: many senders (the acceptor, every reader), one
        // receiver (the dispatcher). Bounded, so a flood of input slows the
        // flooders instead of growing memory.
        let (events, inbox) = crossbeam_channel::bounded(config.channel_capacity);
        let (linker_tx, linker_rx) = crossbeam_channel::unbounded();
        let shared = Shared {
            score,
            events,
            admission: Arc::new(Admission::new(config.max_clients)),
            stop: Arc::new(AtomicBool::new(false)),
            linker_tx,
            linker_rx,
            intake: Arc::new(Intake::new(config.channel_bytes)),
            per_ip: Arc::new(PerIp::new(config.max_per_ip)),
            gate: Arc::new(BatchGate::default()),
        };
        (shared, inbox)
    }
}

/// With `--record FILE`: creates the file and starts the `recorder` thread
/// that writes it (src/hub/recorder.rs); returns the dispatcher's end.
/// Nothing else runs yet, so an error has nothing to undo.
fn spawn_recorder(config: &Config, addr: SocketAddr) -> Result<Option<Recorder>, HubError> {
    let Some(path) = &config.record else {
        return Ok(None);
    };
    let record_error = |source| HubError::Record {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::create(path).map_err(record_error)?;
    let settings = HubSettings {
        max_line: config.max_line,
        max_clients: config.max_clients,
        write_timeout: config.write_timeout,
        blocking_writes: config.blocking_writes,
    };
    let title = format!(
        "recording of tcphub serve on {addr}, started {}",
        recorder::utc_now()
    );
    let (recorder, thread) = recorder::new(
        file,
        header(&title, &settings),
        config.max_line,
        config.record_max_bytes,
    );
    let handle = thread::Builder::new()
        .name("recorder".into())
        .spawn(move || thread.run())
        .map_err(|source| HubError::Spawn {
            thread: "recorder",
            source,
        })?;
    info!(
        "recording to {} (at most {} bytes)",
        path.display(),
        config.record_max_bytes
    );
    Ok(Some(recorder.joined_with(handle)))
}

/// Starts the `dispatcher` thread, the one receiver of the channel, first:
/// every other thread sends to it. Returns its handle and the count of
/// reachable hubs it keeps. Nothing else runs yet, so an error has nothing
/// to undo.
fn spawn_dispatcher(
    config: &Config,
    name: &str,
    shared: &Shared,
    inbox: Receiver<Event>,
    dialling: bool,
    recorder: Option<Recorder>,
) -> Result<(JoinHandle<()>, Arc<AtomicUsize>), HubError> {
    let dispatcher = Dispatcher::new(
        inbox,
        shared.admission.clone(),
        shared.intake.clone(),
        shared.per_ip.clone(),
        config,
        shared.score.clone(),
    )
    .linking(
        name,
        config.link_key.as_deref(),
        // A hub is in a tree or in a NATS cluster, never both: the one
        // link timeout is NATS's when it is in a cluster.
        config
            .nats
            .as_ref()
            .map_or(config.link_timeout, |n| n.timeout),
        dialling.then(|| shared.linker_tx.clone()),
    )
    .recording(recorder)
    .with_nats(bridge_settings(config, name))
    .with_gate(shared.gate.clone());
    let reachable = dispatcher.reachable();
    let handle = thread::Builder::new()
        .name("dispatcher".into())
        .spawn(move || dispatcher.run())
        .map_err(|source| HubError::Spawn {
            thread: "dispatcher",
            source,
        })?;
    Ok((handle, reachable))
}

/// Starts the `acceptor` thread on the client port. Returns both handles;
/// if the thread cannot start, the dispatcher is told to shut down and
/// joined before the error returns, so no thread is left behind.
fn spawn_acceptor(
    config: &Config,
    listener: TcpListener,
    shared: &Shared,
    dispatcher: JoinHandle<()>,
) -> Result<(JoinHandle<Readers>, JoinHandle<()>), HubError> {
    let acceptor = Acceptor {
        listener,
        events: shared.events.clone(),
        admission: shared.admission.clone(),
        stop: shared.stop.clone(),
        max_line: config.max_line,
        write_timeout: config.write_timeout,
        line_timeout: config.line_timeout,
        idle_timeout: config.idle_timeout,
        intake: shared.intake.clone(),
        per_ip: shared.per_ip.clone(),
        score: shared.score.clone(),
        gate: shared.gate.clone(),
    };
    match thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || acceptor.run())
    {
        Ok(handle) => Ok((handle, dispatcher)),
        Err(source) => {
            let _ = shared.events.send(Event::Shutdown);
            let _ = dispatcher.join();
            Err(HubError::Spawn {
                thread: "acceptor",
                source,
            })
        }
    }
}

/// What each NATS connection's bridge is made with, with `--nats`.
fn bridge_settings(config: &Config, name: &str) -> Option<BridgeSettings> {
    let nats = config.nats.as_ref()?;
    Some(BridgeSettings {
        layout: Layout::new(&nats.room).ok()?,
        hub: name.to_string(),
        timeout_ms: nats.timeout.as_millis().min(u64::MAX as u128) as u64,
        max_text: config.max_line,
    })
}

/// The `--nats` flags that cannot work, refused before anything starts.
fn check_nats_config(config: &Config, name: &str) -> Result<(), HubError> {
    let Some(nats) = &config.nats else {
        return Ok(());
    };
    if !config.links.is_empty() || config.link_listen.is_some() {
        return Err(HubError::Nats(
            "--nats cannot be used with --link or --link-listen: a hub is in a tree of links or in a NATS cluster, not both (docs/scale-out.md)".into(),
        ));
    }
    if name == FOREIGN_HUB {
        return Err(HubError::Nats(format!(
            "--name {FOREIGN_HUB} is taken with --nats: it is what clients see for publishers outside tcphub"
        )));
    }
    if nats.servers.is_empty() {
        return Err(HubError::Nats("--nats: no server given".into()));
    }
    if nats.timeout < Duration::from_millis(30) {
        return Err(HubError::Nats(
            "--nats-timeout-ms must be at least 30".into(),
        ));
    }
    Layout::new(&nats.room)
        .map(|_| ())
        .map_err(|why| HubError::Nats(format!("--nats-room: {why}")))
}

/// The link flags that cannot work, refused before anything starts.
fn check_link_config(config: &Config, name: &str) -> Result<(), HubError> {
    if let Err(why) = check_hub_name(name) {
        return Err(HubError::Link(format!("--name: {why}")));
    }
    if !config.links.is_empty() && config.link_key.is_none() {
        return Err(HubError::Link(
            "--link needs --link-key (or TCPHUB_LINK_KEY): a hub without a key refuses every link"
                .into(),
        ));
    }
    if config.link_key.as_deref() == Some("") {
        return Err(HubError::Link("--link-key must not be empty".into()));
    }
    Ok(())
}

/// Listens on `host:port`, trying every address the name resolves to, with
/// the wide backlog below. Returns the listener and the address it got (the
/// real port when `port` is 0). An IPv6 address may be given in brackets,
/// as in a URL (`[::1]`): they are removed before resolving.
pub fn bind(host: &str, port: u16) -> Result<(TcpListener, SocketAddr), HubError> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let resolve_error = |source| HubError::Resolve {
        host: host.to_string(),
        port,
        source,
    };
    let addrs = (host, port).to_socket_addrs().map_err(resolve_error)?;
    let mut last_error = None;
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                widen_backlog(&listener);
                let bound = listener
                    .local_addr()
                    .map_err(|source| HubError::Bind { addr, source })?;
                return Ok((listener, bound));
            }
            Err(source) => last_error = Some(HubError::Bind { addr, source }),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        let none = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address found for this host",
        );
        resolve_error(none)
    }))
}

/// `HOST:PORT`, `[::1]:PORT` or a bare `PORT` (meaning loopback) as a
/// host and a port for [`bind`]; a port that is not a number is given as
/// port 0 with the whole text as host, so that resolving fails and says so.
pub fn split_host_port(spec: &str) -> (&str, u16) {
    if let Ok(port) = spec.parse::<u16>() {
        return ("127.0.0.1", port);
    }
    match spec.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port) => (host.trim_start_matches('[').trim_end_matches(']'), port),
            Err(_) => (spec, 0),
        },
        None => (spec, 0),
    }
}

/// How many finished handshakes the kernel may queue for `accept()`.
pub const ACCEPT_BACKLOG: i32 = 4096;

/// Raises the listen backlog from std's fixed 128 to [`ACCEPT_BACKLOG`]
/// (the kernel caps it at `net.core.somaxconn`).
///
/// Why it matters: when the accept queue is full, Linux drops the next SYN,
/// and the client only retries one second later. A client opening
/// connections in a tight loop outpaces an acceptor that spawns a thread per
/// connection, so with 128 places a burst of 10,000 connections stalls for a
/// second every ~130 connections. Calling `listen` again on a listening
/// socket just changes its backlog. std has no API for this, so this is the
/// one `unsafe` call in tcphub: `listen(2)` from the C library std already
/// links, on a descriptor we own.
#[cfg(unix)]
fn widen_backlog(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn listen(fd: std::ffi::c_int, backlog: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: plain syscall on a valid, open socket descriptor that the
    // listener owns for the duration of the call; no memory is shared.
    let rc = unsafe { listen(listener.as_raw_fd(), ACCEPT_BACKLOG) };
    if rc != 0 {
        warn!(
            "could not raise the listen backlog: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(unix))]
fn widen_backlog(_listener: &TcpListener) {}

/// Where to connect to wake our own `accept()`: the bound address, with a
/// wildcard (0.0.0.0 or ::) replaced by loopback.
fn wake_address(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

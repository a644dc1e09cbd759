//! The async twin: protocol v1 on tokio, for comparing IO models.
//!
//! Same flags as `tcphub serve`, same `listening on <addr>` line, and the
//! same IO-free core (`src/proto/`): [`LineFramer`] cuts and parses lines,
//! one [`Router`] decides who gets what, batches them with the same bounds
//! and flushes them in the same order, through this file's [`Outlet`]. What
//! is left here is only what differs, the IO model:
//!
//! - the `acceptor` task admits connections and starts two tasks for each;
//! - a reader task per client frames and parses what it reads, and sends the
//!   commands into one bounded channel;
//! - the routing task owns the [`Router`]: it takes everything queued, routes
//!   it, and copies each recipient's share of the batch into that client's
//!   bounded writer channel;
//! - a writer task per client writes what its channel holds, coalescing what
//!   has piled up into one write.
//!
//! Nobody waits on a slow client. A client whose writer channel is full gets
//! its lines parked in an overflow buffer (order kept); if the channel stays
//! full, or one write blocks, for longer than `--write-timeout-ms`, or more
//! than `--max-pending` bytes wait for it, or more than `--soft-pending`
//! for `--soft-pending-ms`, the client is cut off and the others see
//! `LEAVE`, as the contract says.
//!
//! The other limits are the threaded hub's too, by the same flags: a line
//! that does not arrive within `--line-timeout-ms`, a client silent for
//! `--idle-timeout-ms` (each reader task waits for its bytes *or* its
//! deadline), `--max-per-ip`, `--max-subs`, a spare descriptor to refuse a
//! client with when the process is out of them, and the same fair share of
//! the channel per client ([`Quota`]: 256 lines, 1 MiB) within
//! `--channel-bytes` for all.
//!
//! Run it with `cargo run --release --example async_hub -- --port 0`.

use std::fs::File;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use log::{debug, info};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Semaphore, mpsc, oneshot};

use tcphub::cli::ServeArgs;
use tcphub::hub::budget::{CLIENT_BYTES, CLIENT_LINES, cost};
use tcphub::hub::events::PerIp;
use tcphub::hub::monitor::Monitor;
use tcphub::hub::score::{Counters, Scoreboard, Slot, State};
use tcphub::proto::admission::Admission;
use tcphub::proto::framing::{Inbound, LineFramer};
use tcphub::proto::id_map::IdMap;
use tcphub::proto::pending_limit::{OverSoft, PendingLimits};
use tcphub::proto::quiet::Quiet;
use tcphub::proto::router::{ClientId, Outlet, Router};
use tcphub::proto::server_line::{ErrorCode, ServerLine, server_full_line};

/// The async twin of `tcphub serve`; it takes exactly the same flags.
#[derive(Debug, Parser)]
#[command(name = "async_hub", version)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// Events that reach the routing task, through one channel, so it sees one
/// ordered story of the hub (as the threaded dispatcher does).
#[derive(Debug)]
enum Event {
    /// From the acceptor: a client was admitted. Sent before its reader task
    /// exists, so the router always learns of a client before its first line.
    Connected {
        id: ClientId,
        peer: SocketAddr,
        /// The client's entry in the live view, shared by its two tasks.
        slot: Arc<Slot>,
        outbox: mpsc::Sender<Vec<u8>>,
        /// Bytes queued for its writer and not yet written (`--max-pending`).
        queued: Arc<AtomicUsize>,
        /// Its share of the channel, given back as its lines are applied.
        quota: Arc<Quota>,
        /// Dropped by the router when it is done with the client: that ends
        /// the reader task (and so releases the read half of the socket).
        stop_reader: oneshot::Sender<()>,
    },
    /// From a reader: one line, parsed.
    Line { id: ClientId, line: Inbound },
    /// From a reader (end of stream, error) or a writer (timeout, error).
    Closed { id: ClientId, why: String },
}

/// Capacity of each client's writer channel, in batches (one message holds
/// everything one routing batch had for that client).
const OUTBOX_BATCHES: usize = 64;
/// How often the router retries clients whose writer channel was full.
const RETRY_EVERY: Duration = Duration::from_millis(2);
/// A writer coalesces queued batches into one write up to this size.
const MAX_WRITE: usize = 256 * 1024;
/// A writer keeps its coalescing buffer between writes up to this size.
const KEEP_WRITE_BUFFER: usize = 4 * 1024;

/// One client's fair share of the routing channel, as the threaded hub's
/// `Quota` (src/hub/budget.rs): at most [`CLIENT_LINES`] lines and
/// [`CLIENT_BYTES`] bytes of it at once. The reader takes permits before it
/// sends a line and the router gives them back once the line is applied,
/// so a flooder waits on its own lines while everyone else's still get in.
#[derive(Debug)]
struct Quota {
    lines: Semaphore,
    bytes: Semaphore,
}

/// The channel's byte budget, all clients together (`--channel-bytes`).
struct Intake {
    bytes: Semaphore,
    max: usize,
}

impl Intake {
    fn new(max: usize) -> Intake {
        let max = max.min(Semaphore::MAX_PERMITS);
        Intake {
            bytes: Semaphore::new(max),
            max,
        }
    }

    /// Permits one line costs, of its client's quota and of the channel:
    /// the hub's [`cost`], capped at each budget, so that a line longer
    /// than a whole budget still passes, alone.
    fn costs(&self, line: &Inbound) -> (u32, u32) {
        let c = cost(line);
        let capped = |max: usize| u32::try_from(c.min(max)).unwrap_or(u32::MAX);
        (capped(CLIENT_BYTES), capped(self.max))
    }

    /// The reader's side: waits for room for `line` in `quota` (its own
    /// lines first, as the hub's reader does) and in the channel. False if
    /// the budgets are closed (never, while the twin runs).
    async fn take(&self, quota: &Quota, line: &Inbound) -> bool {
        let (mine, all) = self.costs(line);
        let taken = async {
            quota.lines.acquire().await?.forget();
            quota.bytes.acquire_many(mine).await?.forget();
            self.bytes.acquire_many(all).await?.forget();
            Ok::<(), tokio::sync::AcquireError>(())
        };
        taken.await.is_ok()
    }

    /// The router's side: `line` is applied; its room is free again.
    /// `quota` is `None` once its client is gone (nobody waits on it).
    fn give_back(&self, quota: Option<&Quota>, line: &Inbound) {
        let (mine, all) = self.costs(line);
        if let Some(quota) = quota {
            quota.lines.add_permits(1);
            quota.bytes.add_permits(mine as usize);
        }
        self.bytes.add_permits(all as usize);
    }
}

impl Quota {
    fn new() -> Quota {
        Quota {
            lines: Semaphore::new(CLIENT_LINES),
            bytes: Semaphore::new(CLIENT_BYTES),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tcphub::cli::init_logging();
    let args = cli.serve;
    let listener = match TcpListener::bind((args.host.as_str(), args.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "async_hub: cannot listen on {}:{}: {e}",
                args.host, args.port
            );
            return ExitCode::from(2);
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("async_hub: cannot read the bound address: {e}");
            return ExitCode::from(2);
        }
    };
    println!("listening on {addr}");

    let config = args.config();
    let admission = Arc::new(Admission::new(config.max_clients));
    let (events, inbox) = mpsc::channel(config.channel_capacity);
    // The live view: one slot per *task* here, where the hub has threads.
    let score = Arc::new(Scoreboard::new());
    if let Some(spec) = &args.monitor
        && let Err(e) = start_monitor(spec, &score, &events, &admission, addr, &config)
    {
        eprintln!("async_hub: {e}");
        return ExitCode::from(2);
    }
    let per_ip = Arc::new(PerIp::new(config.max_per_ip));
    let intake = Arc::new(Intake::new(config.channel_bytes));
    let routing = Routing {
        router: Router::new(admission.clone()).with_max_subs(config.max_subs),
        me: score.register_thread("router"),
        score: score.clone(),
        intake: intake.clone(),
        outboxes: Outboxes {
            open: IdMap::default(),
            stuck: Vec::new(),
            write_timeout: config.write_timeout,
            limits: config.pending_limits(),
            epoch: Instant::now(),
            over_soft: Vec::new(),
            per_ip: per_ip.clone(),
            share_lines: 0,
            score: score.clone(),
        },
    };
    let router = tokio::spawn(routing.run(inbox));
    let acceptor = Acceptor {
        events,
        admission,
        per_ip,
        intake,
        score,
        max_line: config.max_line,
        write_timeout: config.write_timeout,
        quiet: Quiet {
            line: config.line_timeout,
            idle: config.idle_timeout,
        },
    };
    acceptor.run(listener).await;
    let _ = router.await;
    ExitCode::SUCCESS
}

/// `--monitor`: the threaded hub's monitor, on a thread of its own (it is
/// blocking std code), reading this twin's scoreboard and tokio channel.
fn start_monitor(
    spec: &str,
    score: &Arc<Scoreboard>,
    events: &mpsc::Sender<Event>,
    admission: &Arc<Admission>,
    hub_addr: SocketAddr,
    config: &tcphub::Config,
) -> Result<(), String> {
    let (host, port) = tcphub::hub::split_host_port(spec);
    let (listener, monitor_addr) = tcphub::hub::bind(host, port).map_err(|e| e.to_string())?;
    let events = events.clone();
    let monitor = Monitor {
        listener,
        score: score.clone(),
        channel: Box::new(move || {
            let capacity = events.max_capacity();
            (capacity - events.capacity(), capacity)
        }),
        admission: admission.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        hub_addr,
        max_clients: config.max_clients,
        write_timeout: config.write_timeout,
        hub_name: None,
        link_timeout: config.link_timeout,
    };
    std::thread::Builder::new()
        .name("monitor".into())
        .spawn(move || monitor.run())
        .map_err(|e| format!("cannot start the monitor thread: {e}"))?;
    println!("monitor on http://{monitor_addr}/");
    Ok(())
}

/// The acceptor task: admission, socket options, and two tasks per client.
struct Acceptor {
    events: mpsc::Sender<Event>,
    admission: Arc<Admission>,
    per_ip: Arc<PerIp>,
    intake: Arc<Intake>,
    score: Arc<Scoreboard>,
    max_line: usize,
    write_timeout: Duration,
    quiet: Quiet,
}

impl Acceptor {
    async fn run(self, listener: TcpListener) {
        let me = self.score.register_thread("acceptor");
        let mut spare = spare_descriptor();
        loop {
            me.enter(State::Accept);
            let accepted = listener.accept().await;
            me.enter(State::Admit);
            let (socket, peer) = match accepted {
                Ok(pair) => {
                    Counters::add(&self.score.counters.accepted);
                    pair
                }
                Err(e) => {
                    if !self.accept_failed(&listener, &e, &mut spare).await {
                        return;
                    }
                    continue;
                }
            };
            if !self.admit(socket, peer).await {
                return;
            }
        }
    }

    /// Out of descriptors with the spare in hand: give it back, take the
    /// waiting client, and take the spare again. If that works, room came
    /// back (a client left meanwhile) and the client is admitted as usual;
    /// if not, it is told why it is refused and closed *here*, before the
    /// spare is taken again, so the descriptor it held is the spare's.
    /// (Refusing in a task of its own, as other refusals are, lost the
    /// spare 1 run in 4: the next client admitted took the descriptor the
    /// refusal freed, the spare could not be reopened, and every later
    /// client waited unanswered in the queue.) Otherwise back off instead
    /// of spinning. False if the router is gone.
    async fn accept_failed(
        &self,
        listener: &TcpListener,
        e: &std::io::Error,
        spare: &mut Option<File>,
    ) -> bool {
        log::warn!("accept failed: {e}");
        let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        if out_of_fds && spare.take().is_some() {
            if let Ok((socket, peer)) = listener.accept().await {
                *spare = spare_descriptor();
                if spare.is_some() {
                    return self.admit(socket, peer).await;
                }
                let text = "the hub is out of file descriptors; try again later";
                refuse_now(socket, peer, &err_line(ErrorCode::ServerFull, text));
                Counters::add(&self.score.counters.refused_full);
            }
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if spare.is_none() {
            *spare = spare_descriptor();
        }
        true
    }

    /// Room for its address (`--max-per-ip`), room in the hub, socket
    /// options, then `Connected` to the router and the client's two tasks.
    /// False if the router is gone.
    async fn admit(&self, socket: tokio::net::TcpStream, peer: SocketAddr) -> bool {
        if !self.per_ip.try_admit(peer.ip()) {
            let text = "too many connections from your address (--max-per-ip)";
            self.refuse(socket, peer, err_line(ErrorCode::ServerFull, text));
            return true;
        }
        let Some(id) = self.admission.try_admit() else {
            self.per_ip.release(peer.ip());
            self.refuse(socket, peer, server_full_line());
            return true;
        };
        // Lines are short and already batched: send them at once.
        if let Err(e) = socket.set_nodelay(true) {
            log::warn!("dropping {peer}: cannot set up its socket: {e}");
            self.admission.release();
            self.per_ip.release(peer.ip());
            return true;
        }
        let (read_half, write_half) = socket.into_split();
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_BATCHES);
        let (stop_reader, stop_rx) = oneshot::channel();
        let slot = self.score.register_client(id, peer);
        let queued = Arc::new(AtomicUsize::new(0));
        let quota = Arc::new(Quota::new());
        let connected = Event::Connected {
            id,
            peer,
            slot: slot.clone(),
            outbox,
            queued: queued.clone(),
            quota: quota.clone(),
            stop_reader,
        };
        if self.events.send(connected).await.is_err() {
            return false;
        }
        let writer = Writer {
            id,
            slot: slot.clone(),
            events: self.events.clone(),
            timeout: self.write_timeout,
            queued,
        };
        tokio::spawn(writer.run(write_half, outbox_rx));
        let reader = Reader {
            id,
            slot,
            events: self.events.clone(),
            quota,
            intake: self.intake.clone(),
            quiet: self.quiet,
        };
        tokio::spawn(reader.run(read_half, LineFramer::new(self.max_line), stop_rx));
        true
    }

    /// One `ERR` line to a connection the hub will not serve, then close,
    /// in a task of its own; nobody else hears of this connection.
    fn refuse(&self, mut socket: tokio::net::TcpStream, peer: SocketAddr, line: Vec<u8>) {
        log::warn!(
            "{peer} refused: {}",
            String::from_utf8_lossy(&line).trim_end()
        );
        Counters::add(&self.score.counters.refused_full);
        let timeout = self.write_timeout;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, async {
                socket.write_all(&line).await?;
                socket.shutdown().await
            })
            .await;
        });
    }
}

/// One line to a fresh connection without waiting (its send buffer is
/// empty, so the kernel takes a line whole), then close it at once: the
/// descriptor is free when this returns.
fn refuse_now(socket: tokio::net::TcpStream, peer: SocketAddr, line: &[u8]) {
    log::warn!(
        "{peer} refused: {}",
        String::from_utf8_lossy(line).trim_end()
    );
    // Out of tokio's hands: a plain write, which a fresh socket takes at
    // once (tokio's `try_write` would wait for a readiness event first).
    if let Ok(mut socket) = socket.into_std() {
        let _ = std::io::Write::write(&mut socket, line);
    }
}

/// `ERR <code> <text>` as bytes.
fn err_line(code: ErrorCode, text: &str) -> Vec<u8> {
    let mut line = Vec::new();
    ServerLine::Err { code, text }.encode(&mut line);
    line
}

/// One descriptor held in reserve for [`Acceptor::accept_failed`]. Opening
/// `/dev/null` does not wait on anything, so doing it in a task is fine.
fn spare_descriptor() -> Option<File> {
    File::open("/dev/null").ok()
}

/// One client's reader task.
struct Reader {
    id: ClientId,
    slot: Arc<Slot>,
    events: mpsc::Sender<Event>,
    /// Its share of the channel, and the channel's byte budget.
    quota: Arc<Quota>,
    intake: Arc<Intake>,
    /// `--line-timeout-ms` and `--idle-timeout-ms`.
    quiet: Quiet,
}

impl Reader {
    /// Reads into the framer, sends on every line it parsed. Ends at end of
    /// stream, on an error, after `/quit`, when a line or idle timeout
    /// passes (`ERR`, then the end), or when the router drops `stop`.
    async fn run(
        self,
        mut socket: OwnedReadHalf,
        framer: LineFramer,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut framer = framer.telnet(true);
        let mut last_read = Instant::now();
        let mut line_since: Option<Instant> = None;
        let why = loop {
            // Wait for bytes, or until the nearer of the two timeouts.
            let now = Instant::now();
            let line_age = line_since.map(|t| now.duration_since(t));
            let wait = self.quiet.wait(line_age, now.duration_since(last_read));
            self.slot.enter(State::Read);
            let n = tokio::select! {
                read = socket.read(framer.spare()) => match read {
                    Ok(0) => break "end of stream".to_string(),
                    Ok(n) => n,
                    Err(e) => break format!("read error: {e}"),
                },
                () = sleep_or_never(wait) => {
                    let now = Instant::now();
                    let line_age = line_since.map(|t| now.duration_since(t));
                    match self.quiet.expired(line_age, now.duration_since(last_read)) {
                        Some(refusal) => {
                            let why = format!("{}: {}", refusal.code, refusal.text);
                            self.send(Inbound::Refused(refusal)).await;
                            break why;
                        }
                        None => continue,
                    }
                },
                _ = &mut stop => {
                    self.slot.enter(State::Exited);
                    return;
                }
            };
            framer.filled(n);
            self.slot.read_returned(n);
            last_read = Instant::now();
            self.slot.enter(State::HandOver);
            while let Some(line) = framer.next_inbound() {
                let quit = line.is_quit();
                self.slot.lines_in(1);
                // Lines after /quit are ignored.
                if !self.send(line).await || quit {
                    self.slot.enter(State::Exited);
                    return;
                }
            }
            line_since = match line_since {
                _ if !framer.in_line() => None,
                None => Some(last_read),
                since => since,
            };
        };
        debug!("reader {} done: {why}", self.id);
        let _ = self.events.send(Event::Closed { id: self.id, why }).await;
        self.slot.enter(State::Exited);
    }

    /// One line to the router: room in this client's quota and the
    /// channel's budget first, then the channel. While either is full this
    /// client stops being read, and TCP slows its sender down. False if the
    /// router is gone.
    async fn send(&self, line: Inbound) -> bool {
        if !self.intake.take(&self.quota, &line).await {
            return false;
        }
        hand_over(&self.slot, &self.events, Event::Line { id: self.id, line }).await
    }
}

/// Sleeps for `wait`, or for ever (`None`: no timeout is set).
async fn sleep_or_never(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// One event into the routing task's channel, waiting while it is full (the
/// live view shows `channel_full` then). False if the router is gone.
async fn hand_over(slot: &Slot, events: &mpsc::Sender<Event>, event: Event) -> bool {
    match events.try_send(event) {
        Ok(()) => true,
        Err(TrySendError::Full(event)) => {
            slot.enter(State::ChannelFull);
            let sent = events.send(event).await.is_ok();
            slot.enter(State::HandOver);
            sent
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

/// One client's writer task: writes what the router queued, coalescing
/// batches that piled up. Ends when the router drops the channel (after
/// flushing what is left) or when a write fails or blocks past the timeout.
struct Writer {
    id: ClientId,
    /// The client's entry in the live view (this task counts bytes out).
    slot: Arc<Slot>,
    events: mpsc::Sender<Event>,
    timeout: Duration,
    /// Bytes queued for this writer and not yet written: counted up by the
    /// router, down here (`--max-pending`).
    queued: Arc<AtomicUsize>,
}

impl Writer {
    async fn run(self, mut socket: OwnedWriteHalf, mut outbox: mpsc::Receiver<Vec<u8>>) {
        let mut pending: Vec<u8> = Vec::new();
        while let Some(first) = outbox.recv().await {
            let mut bytes = first;
            while let Ok(more) = outbox.try_recv() {
                if pending.is_empty() {
                    std::mem::swap(&mut pending, &mut bytes);
                }
                pending.extend_from_slice(&more);
                if pending.len() >= MAX_WRITE {
                    break;
                }
            }
            let out = if pending.is_empty() { &bytes } else { &pending };
            if let Some(why) = self.write(&mut socket, out).await {
                let _ = self.events.send(Event::Closed { id: self.id, why }).await;
                return;
            }
            pending.clear();
            // Do not sit on a big buffer: with 10,000 mostly idle clients,
            // what one burst needed would otherwise stay allocated per client.
            if pending.capacity() > KEEP_WRITE_BUFFER {
                pending = Vec::new();
            }
        }
        // The router is done with this client: everything is written, close.
        let _ = tokio::time::timeout(self.timeout, socket.shutdown()).await;
    }

    /// One coalesced write, piece by piece as the kernel takes it; each
    /// piece counted off `queued` at once (so the router sees progress),
    /// and only a piece that waits past the timeout cuts the client off:
    /// a reader that is behind but reading is not timed out, as in the
    /// hub. `Some(why)` if it failed.
    async fn write(&self, socket: &mut OwnedWriteHalf, out: &[u8]) -> Option<String> {
        let client = self.slot.client();
        let mut left = out;
        while !left.is_empty() {
            if let Some(c) = client {
                c.set_pending(left.len());
            }
            let n = match tokio::time::timeout(self.timeout, socket.write(left)).await {
                Ok(Ok(0)) => return Some("write error: wrote 0 bytes".to_string()),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Some(format!("write error: {e}")),
                Err(_) => {
                    return Some(format!(
                        "not reading: write blocked past {} ms",
                        self.timeout.as_millis()
                    ));
                }
            };
            self.queued.fetch_sub(n, Ordering::AcqRel);
            if let Some(c) = client {
                c.wrote_bytes(n);
            }
            left = &left[n..];
        }
        if let Some(c) = client {
            c.set_pending(0);
        }
        None
    }
}

/// Where the routing task sends one client's lines.
struct Outbox {
    tx: mpsc::Sender<Vec<u8>>,
    /// Lines that did not fit in the channel, in order, waiting for room.
    overflow: Vec<u8>,
    /// When the channel was first found full, or its writer last wrote
    /// something while it stayed full: the write timeout counts from here,
    /// so only a writer that makes no progress is timed out (as the hub's
    /// outbox does).
    full_since: Option<Instant>,
    /// Bytes ever handed to its writer (counted here, by the router only),
    /// and how many of them were written when `full_since` was last set:
    /// written = added - `queued`.
    added: u64,
    written_at_mark: u64,
    /// Dropping this ends the client's reader task.
    _stop_reader: oneshot::Sender<()>,
    /// The client's entry in the live view.
    slot: Arc<Slot>,
    peer: SocketAddr,
    /// Bytes in its channel, its overflow and its writer's hands.
    queued: Arc<AtomicUsize>,
    /// Its share of the routing channel, given back line by line.
    quota: Arc<Quota>,
    /// Since when more than `--soft-pending` bytes have been queued.
    over_soft: OverSoft,
}

impl Outbox {
    /// Queues `bytes` after everything already queued; never waits.
    /// Returns true if the client is now stuck (bytes parked in overflow).
    fn push(&mut self, bytes: Vec<u8>) -> bool {
        if !self.overflow.is_empty() {
            self.overflow.extend_from_slice(&bytes);
            return true;
        }
        match self.tx.try_send(bytes) {
            Ok(()) => false,
            Err(TrySendError::Full(bytes)) => {
                self.overflow = bytes;
                if self.full_since.is_none() {
                    self.full_since = Some(Instant::now());
                    let queued = self.queued.load(Ordering::Acquire) as u64;
                    self.written_at_mark = self.added.saturating_sub(queued);
                }
                true
            }
            // The writer is gone; its Closed event is on the way.
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Tries to move the overflow into the channel. True if still stuck.
    fn retry(&mut self) -> bool {
        if self.overflow.is_empty() {
            return false;
        }
        match self.tx.try_send(std::mem::take(&mut self.overflow)) {
            Ok(()) => {
                self.full_since = None;
                false
            }
            Err(TrySendError::Full(bytes)) => {
                self.overflow = bytes;
                true
            }
            Err(TrySendError::Closed(_)) => {
                self.full_since = None;
                false
            }
        }
    }
}

/// Every client's outbox: the twin's [`Outlet`]. Nobody waits on a slow
/// client here; a client whose outbox stays full is reported as overdue.
struct Outboxes {
    open: IdMap<Outbox>,
    /// Clients with a non-empty overflow.
    stuck: Vec<ClientId>,
    write_timeout: Duration,
    /// `--max-pending` (hard), `--soft-pending` for `--soft-pending-ms`:
    /// bytes one client may have queued and unwritten, the same IO-free
    /// rule as the hub's (`tcphub::proto::pending_limit`).
    limits: PendingLimits,
    /// The clock the soft limit is counted on (`now_ms` is time since it).
    epoch: Instant,
    /// Clients whose soft-limit clock runs: checked by `overdue` even when
    /// they get nothing new.
    over_soft: Vec<ClientId>,
    /// Connections per address, released here when a client is closed.
    per_ip: Arc<PerIp>,
    /// Lines in the share about to be delivered (for the live view).
    share_lines: usize,
    /// The live view, to count the clients cut off here.
    score: Arc<Scoreboard>,
}

impl Outboxes {
    /// Clients over the soft limit for `--soft-pending-ms`, into `cut`; a
    /// client back under it leaves the list.
    fn over_soft_too_long(&mut self, cut: &mut Vec<(ClientId, String)>) {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let (open, limits) = (&mut self.open, &self.limits);
        self.over_soft.retain(|&id| {
            let Some(outbox) = open.get_mut(&id) else {
                return false;
            };
            let queued = outbox.queued.load(Ordering::Acquire);
            match limits.check(&mut outbox.over_soft, queued, now_ms) {
                Some(breach) if !cut.iter().any(|(c, _)| *c == id) => {
                    cut.push((id, breach.to_string()));
                    false
                }
                _ => outbox.over_soft.since_ms().is_some(),
            }
        });
    }

    /// Older lines first: retry what is parked before a batch adds more.
    fn retry_stuck(&mut self) {
        let open = &mut self.open;
        self.stuck
            .retain(|id| open.get_mut(id).is_some_and(|outbox| outbox.retry()));
    }
}

impl Outlet for Outboxes {
    fn deliver(&mut self, id: ClientId, chunks: &mut [IoSlice<'_>]) -> Result<(), String> {
        let Some(outbox) = self.open.get_mut(&id) else {
            return Ok(());
        };
        if let Some(c) = outbox.slot.client() {
            c.wrote_lines(self.share_lines);
        }
        // Past the hard limit, or over the soft one too long: cut off, as
        // the hub does.
        let len: usize = chunks.iter().map(|c| c.len()).sum();
        let queued = outbox.queued.load(Ordering::Acquire) + len;
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let running = outbox.over_soft.since_ms().is_some();
        if let Some(breach) = self.limits.check(&mut outbox.over_soft, queued, now_ms) {
            Counters::add(&self.score.counters.cut_off);
            return Err(breach.to_string());
        }
        if !running && outbox.over_soft.since_ms().is_some() {
            self.over_soft.push(id);
        }
        outbox.queued.fetch_add(len, Ordering::AcqRel);
        outbox.added += len as u64;
        // One copy per recipient per batch, chunk by chunk (not byte by
        // byte): the writer task owns its bytes, the batch is reused.
        let mut bytes = Vec::with_capacity(len);
        for chunk in chunks.iter() {
            bytes.extend_from_slice(chunk);
        }
        let was_stuck = !outbox.overflow.is_empty();
        if outbox.push(bytes) && !was_stuck {
            self.stuck.push(id);
        }
        Ok(())
    }

    /// The router is done with a client. Its writer ends once it has written
    /// what is queued (its channel is dropped here), and its reader ends now.
    /// Lines still parked in the overflow (`BYE`, say) go out first.
    fn close(&mut self, id: ClientId) {
        let Some(outbox) = self.open.remove(&id) else {
            return;
        };
        self.per_ip.release(outbox.peer.ip());
        if let Some(c) = outbox.slot.client() {
            c.publish("", 0, false);
        }
        self.stuck.retain(|&s| s != id);
        self.over_soft.retain(|&s| s != id);
        if outbox.overflow.is_empty() {
            return;
        }
        let timeout = self.write_timeout;
        tokio::spawn(async move {
            let Outbox {
                tx,
                overflow,
                _stop_reader,
                ..
            } = outbox;
            let _ = tokio::time::timeout(timeout, tx.send(overflow)).await;
        });
    }

    fn share_lines(&mut self, _id: ClientId, lines: usize) {
        self.share_lines = lines;
    }

    /// Clients whose outbox has stayed full, with nothing written by its
    /// writer, for the whole write timeout.
    fn overdue(&mut self) -> Vec<(ClientId, String)> {
        let now = Instant::now();
        let timeout = self.write_timeout;
        let why = format!(
            "not reading: its lines stayed queued, none written, for {} ms",
            timeout.as_millis()
        );
        let mut cut = Vec::new();
        for &id in &self.stuck {
            let Some(outbox) = self.open.get_mut(&id) else {
                continue;
            };
            let queued = outbox.queued.load(Ordering::Acquire) as u64;
            let written = outbox.added.saturating_sub(queued);
            if outbox.full_since.is_some() && written > outbox.written_at_mark {
                // Progress: still behind, but reading.
                outbox.full_since = Some(now);
                outbox.written_at_mark = written;
            }
            if outbox
                .full_since
                .is_some_and(|since| now.duration_since(since) >= timeout)
            {
                outbox.overflow = Vec::new();
                outbox.full_since = None;
                Counters::add(&self.score.counters.cut_off);
                cut.push((id, why.clone()));
            }
        }
        self.stuck.retain(|id| !cut.iter().any(|(c, _)| c == id));
        self.over_soft_too_long(&mut cut);
        cut
    }
}

/// The routing task's state: the sans-IO router and every client's outbox.
struct Routing {
    router: Router,
    outboxes: Outboxes,
    /// The routing task's entry in the live view.
    me: Arc<Slot>,
    score: Arc<Scoreboard>,
    /// The channel's byte budget: given back as each line is applied.
    intake: Arc<Intake>,
}

impl Routing {
    async fn run(mut self, mut inbox: mpsc::Receiver<Event>) {
        loop {
            self.me.enter(State::Recv);
            let waiting = self.outboxes.stuck.is_empty() && self.outboxes.over_soft.is_empty();
            let first = if waiting {
                match inbox.recv().await {
                    Some(event) => Some(event),
                    None => break,
                }
            } else {
                // Someone's channel is full, or someone's soft-limit clock
                // runs: come back soon, even if nothing else happens.
                match tokio::time::timeout(RETRY_EVERY, inbox.recv()).await {
                    Ok(Some(event)) => Some(event),
                    Ok(None) => break,
                    Err(_) => None,
                }
            };
            self.me.enter(State::Route);
            if let Some(event) = first {
                self.apply(event);
                let mut taken = 1;
                // Whatever else is queued, up to the batch bounds both
                // servers share.
                while self.router.batch_has_room(taken) {
                    let Ok(event) = inbox.try_recv() else { break };
                    self.apply(event);
                    taken += 1;
                }
            }
            self.me.enter(State::Flush);
            self.outboxes.retry_stuck();
            self.router.flush(&mut self.outboxes);
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Connected {
                id,
                peer,
                slot,
                outbox,
                queued,
                quota,
                stop_reader,
            } => {
                let outbox = Outbox {
                    slot,
                    peer,
                    queued,
                    quota,
                    tx: outbox,
                    overflow: Vec::new(),
                    full_since: None,
                    added: 0,
                    written_at_mark: 0,
                    _stop_reader: stop_reader,
                    over_soft: OverSoft::default(),
                };
                let nick = self.router.connect(id);
                info!("{peer} connected as {nick}");
                if let Some(c) = outbox.slot.client() {
                    c.publish(nick, 0, true);
                }
                self.outboxes.open.insert(id, outbox);
            }
            Event::Line { id, line } => {
                self.router.on_line(id, &line);
                let outbox = self.outboxes.open.get(&id);
                let slot = outbox.map(|o| o.slot.as_ref());
                self.score.note_line(slot, &self.router, id, &line);
                // Its room in the channel is free again: the reader may go on.
                self.intake
                    .give_back(outbox.map(|o| o.quota.as_ref()), &line);
            }
            Event::Closed { id, why } => {
                // A writer that failed: the live view counts it.
                if why.starts_with("not reading") {
                    Counters::add(&self.score.counters.cut_off);
                } else if why.starts_with("write error") {
                    Counters::add(&self.score.counters.write_errors);
                }
                self.router.disconnect(id, &why);
            }
        }
    }
}

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
//! full, or one write blocks, for longer than `--write-timeout-ms`, the client
//! is cut off and the others see `LEAVE`, as the contract says.
//!
//! Run it with `cargo run --release --example async_hub -- --port 0`.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use clap::Parser;
use log::{debug, info};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use tcphub::cli::ServeArgs;
use tcphub::hub::monitor::Monitor;
use tcphub::hub::score::{Counters, Scoreboard, Slot, State};
use tcphub::proto::admission::Admission;
use tcphub::proto::framing::{Inbound, LineFramer};
use tcphub::proto::id_map::IdMap;
use tcphub::proto::router::{ClientId, Outlet, Router};
use tcphub::proto::server_line::server_full_line;

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
    let routing = Routing {
        router: Router::new(admission.clone()).with_max_subs(config.max_subs),
        me: score.register_thread("router"),
        score: score.clone(),
        outboxes: Outboxes {
            open: IdMap::default(),
            stuck: Vec::new(),
            write_timeout: config.write_timeout,
            share_lines: 0,
            score: score.clone(),
        },
    };
    let router = tokio::spawn(routing.run(inbox));
    accept_loop(listener, events, admission, &score, &config).await;
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

/// The acceptor: admission, socket options, and two tasks per client.
async fn accept_loop(
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    admission: Arc<Admission>,
    score: &Scoreboard,
    config: &tcphub::Config,
) {
    let (max_line, write_timeout) = (config.max_line, config.write_timeout);
    let me = score.register_thread("acceptor");
    loop {
        me.enter(State::Accept);
        let accepted = listener.accept().await;
        me.enter(State::Admit);
        let (socket, peer) = match accepted {
            Ok(pair) => {
                Counters::add(&score.counters.accepted);
                pair
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(id) = admission.try_admit() else {
            Counters::add(&score.counters.refused_full);
            tokio::spawn(refuse_full(socket, peer, write_timeout));
            continue;
        };
        // Lines are short and already batched: send them at once.
        if let Err(e) = socket.set_nodelay(true) {
            log::warn!("dropping {peer}: cannot set up its socket: {e}");
            admission.release();
            continue;
        }
        let (read_half, write_half) = socket.into_split();
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_BATCHES);
        let (stop_reader, stop_rx) = oneshot::channel();
        let slot = score.register_client(id, peer);
        let connected = Event::Connected {
            id,
            peer,
            slot: slot.clone(),
            outbox,
            stop_reader,
        };
        if events.send(connected).await.is_err() {
            return;
        }
        let writer = Writer {
            id,
            slot: slot.clone(),
            events: events.clone(),
            timeout: write_timeout,
        };
        tokio::spawn(writer.run(write_half, outbox_rx));
        let reader = read_loop(id, slot, read_half, events.clone(), max_line, stop_rx);
        tokio::spawn(reader);
    }
}

/// `ERR server-full`, then close; nobody else hears of this connection.
async fn refuse_full(mut socket: tokio::net::TcpStream, peer: SocketAddr, timeout: Duration) {
    log::warn!("{peer} refused: server full");
    let _ = tokio::time::timeout(timeout, async {
        socket.write_all(&server_full_line()).await?;
        socket.shutdown().await
    })
    .await;
}

/// One client's reader: read into the framer, send on every line it
/// parsed. Ends at end of stream, on an error, after `/quit`, or when the
/// router drops `stop`.
async fn read_loop(
    id: ClientId,
    slot: Arc<Slot>,
    mut socket: OwnedReadHalf,
    events: mpsc::Sender<Event>,
    max_line: usize,
    mut stop: oneshot::Receiver<()>,
) {
    let mut framer = LineFramer::new(max_line).telnet(true);
    let why = loop {
        slot.enter(State::Read);
        let n = tokio::select! {
            read = socket.read(framer.spare()) => match read {
                Ok(0) => break "end of stream".to_string(),
                Ok(n) => n,
                Err(e) => break format!("read error: {e}"),
            },
            _ = &mut stop => {
                slot.enter(State::Exited);
                return;
            }
        };
        framer.filled(n);
        slot.read_returned(n);
        slot.enter(State::HandOver);
        while let Some(line) = framer.next_inbound() {
            let quit = line.is_quit();
            slot.line_in();
            // Waits while the channel is full: this client stops being read,
            // and TCP slows its sender down. Lines after /quit are ignored.
            if !hand_over(&slot, &events, Event::Line { id, line }).await || quit {
                slot.enter(State::Exited);
                return;
            }
        }
    };
    debug!("reader {id} done: {why}");
    let _ = events.send(Event::Closed { id, why }).await;
    slot.enter(State::Exited);
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

    /// One coalesced write within the timeout; `Some(why)` if it failed.
    async fn write(&self, socket: &mut OwnedWriteHalf, out: &[u8]) -> Option<String> {
        let client = self.slot.client();
        if let Some(c) = client {
            c.set_pending(out.len());
        }
        let why = match tokio::time::timeout(self.timeout, socket.write_all(out)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("write error: {e}")),
            Err(_) => Some(format!(
                "not reading: write blocked past {} ms",
                self.timeout.as_millis()
            )),
        };
        if let (Some(c), None) = (client, &why) {
            c.wrote_bytes(out.len());
            c.set_pending(0);
        }
        why
    }
}

/// Where the routing task sends one client's lines.
struct Outbox {
    tx: mpsc::Sender<Vec<u8>>,
    /// Lines that did not fit in the channel, in order, waiting for room.
    overflow: Vec<u8>,
    /// When the channel was first found full (and has not had room since).
    full_since: Option<Instant>,
    /// Dropping this ends the client's reader task.
    _stop_reader: oneshot::Sender<()>,
    /// The client's entry in the live view.
    slot: Arc<Slot>,
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
                self.full_since.get_or_insert_with(Instant::now);
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
    /// Lines in the share about to be delivered (for the live view).
    share_lines: usize,
    /// The live view, to count the clients cut off here.
    score: Arc<Scoreboard>,
}

impl Outboxes {
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
        // One copy per recipient per batch, chunk by chunk (not byte by
        // byte): the writer task owns its bytes, the batch is reused.
        let mut bytes = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
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
        if let Some(c) = outbox.slot.client() {
            c.publish("", 0, false);
        }
        self.stuck.retain(|&s| s != id);
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

    /// Clients whose outbox has stayed full for the whole write timeout.
    fn overdue(&mut self) -> Vec<(ClientId, String)> {
        let now = Instant::now();
        let timeout = self.write_timeout;
        let why = format!(
            "not reading: its lines stayed queued past {} ms",
            timeout.as_millis()
        );
        let mut cut = Vec::new();
        for &id in &self.stuck {
            if let Some(outbox) = self.open.get_mut(&id)
                && outbox
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
}

impl Routing {
    async fn run(mut self, mut inbox: mpsc::Receiver<Event>) {
        loop {
            self.me.enter(State::Recv);
            let first = if self.outboxes.stuck.is_empty() {
                match inbox.recv().await {
                    Some(event) => Some(event),
                    None => break,
                }
            } else {
                // Someone's channel is full: come back soon to retry it,
                // even if nothing else happens.
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
                stop_reader,
            } => {
                let outbox = Outbox {
                    slot,
                    tx: outbox,
                    overflow: Vec::new(),
                    full_since: None,
                    _stop_reader: stop_reader,
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
                let slot = self.outboxes.open.get(&id).map(|o| o.slot.as_ref());
                self.score.note_line(slot, &self.router, id, &line);
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

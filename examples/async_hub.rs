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

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use log::{debug, info};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use tcphub::cli::ServeArgs;
use tcphub::proto::admission::Admission;
use tcphub::proto::framing::{Inbound, LineFramer};
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
    if args.monitor.is_some() {
        // The live view reads the threaded hub's scoreboard (one slot per
        // thread); the twin has tasks, and no scoreboard yet.
        eprintln!(
            "async_hub: --monitor is not supported by the async twin (see docs/live-view.md)"
        );
        return ExitCode::from(2);
    }
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
    let routing = Routing {
        router: Router::new(admission.clone()).with_max_subs(config.max_subs),
        outboxes: Outboxes {
            open: HashMap::new(),
            stuck: Vec::new(),
            write_timeout: config.write_timeout,
        },
    };
    let router = tokio::spawn(routing.run(inbox));
    accept_loop(
        listener,
        events,
        admission,
        config.max_line,
        config.write_timeout,
    )
    .await;
    let _ = router.await;
    ExitCode::SUCCESS
}

/// The acceptor: admission, socket options, and two tasks per client.
async fn accept_loop(
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    admission: Arc<Admission>,
    max_line: usize,
    write_timeout: Duration,
) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(id) = admission.try_admit() else {
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
        let connected = Event::Connected {
            id,
            peer,
            outbox,
            stop_reader,
        };
        if events.send(connected).await.is_err() {
            return;
        }
        let closed = events.clone();
        tokio::spawn(write_loop(id, write_half, outbox_rx, closed, write_timeout));
        tokio::spawn(read_loop(id, read_half, events.clone(), max_line, stop_rx));
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
    mut socket: OwnedReadHalf,
    events: mpsc::Sender<Event>,
    max_line: usize,
    mut stop: oneshot::Receiver<()>,
) {
    let mut framer = LineFramer::new(max_line);
    let why = loop {
        let n = tokio::select! {
            read = socket.read(framer.spare()) => match read {
                Ok(0) => break "end of stream".to_string(),
                Ok(n) => n,
                Err(e) => break format!("read error: {e}"),
            },
            _ = &mut stop => return,
        };
        framer.filled(n);
        while let Some(line) = framer.next_inbound() {
            let quit = line.is_quit();
            // Waits while the channel is full: this client stops being read,
            // and TCP slows its sender down. Lines after /quit are ignored.
            if events.send(Event::Line { id, line }).await.is_err() || quit {
                return;
            }
        }
    };
    debug!("reader {id} done: {why}");
    let _ = events.send(Event::Closed { id, why }).await;
}

/// One client's writer: writes what the router queued, coalescing batches
/// that piled up. Ends when the router drops the channel (after flushing
/// what is left) or when a write fails or blocks past the write timeout.
async fn write_loop(
    id: ClientId,
    mut socket: OwnedWriteHalf,
    mut outbox: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<Event>,
    timeout: Duration,
) {
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
        let why = match tokio::time::timeout(timeout, socket.write_all(out)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("write error: {e}")),
            Err(_) => Some(format!(
                "not reading: write blocked past {} ms",
                timeout.as_millis()
            )),
        };
        if let Some(why) = why {
            let _ = events.send(Event::Closed { id, why }).await;
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
    let _ = tokio::time::timeout(timeout, socket.shutdown()).await;
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
    open: HashMap<ClientId, Outbox>,
    /// Clients with a non-empty overflow.
    stuck: Vec<ClientId>,
    write_timeout: Duration,
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
        let bytes = chunks.iter().flat_map(|c| c.iter().copied()).collect();
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
}

impl Routing {
    async fn run(mut self, mut inbox: mpsc::Receiver<Event>) {
        loop {
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
            self.outboxes.retry_stuck();
            self.router.flush(&mut self.outboxes);
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Connected {
                id,
                peer,
                outbox,
                stop_reader,
            } => {
                let outbox = Outbox {
                    tx: outbox,
                    overflow: Vec::new(),
                    full_since: None,
                    _stop_reader: stop_reader,
                };
                self.outboxes.open.insert(id, outbox);
                let nick = self.router.connect(id);
                info!("{peer} connected as {nick}");
            }
            Event::Line { id, line } => self.router.on_line(id, &line),
            Event::Closed { id, why } => self.router.disconnect(id, &why),
        }
    }
}

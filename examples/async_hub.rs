//! The async twin: protocol v1 on tokio, for comparing IO models.
//!
//! Same flags as `tcphub serve`, same `listening on <addr>` line, and the
//! same sans-IO code: [`LineFramer`] and [`parse_line`] cut and parse lines,
//! and one [`Router`] decides who gets what. Only the IO model differs:
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
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use log::{debug, info, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use tcphub::cli::ServeArgs;
use tcphub::proto::admission::Admission;
use tcphub::proto::client_line::{Command, ErrorCode, Parsed, Refusal, Reply, parse_frame};
use tcphub::proto::framing::LineFramer;
use tcphub::proto::router::{ClientId, Router};

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
    /// From a reader: one parsed command.
    Command { id: ClientId, command: Command },
    /// From a reader: a line it refused.
    Refused { id: ClientId, refusal: Refusal },
    /// From a reader (end of stream, error) or a writer (timeout, error).
    Closed { id: ClientId, why: String },
}

/// Bounds of one routing batch, as in the threaded dispatcher.
const MAX_BATCH_EVENTS: usize = 4096;
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Capacity of the hub's one event channel, as in the threaded hub.
const EVENT_CHANNEL: usize = 64 * 1024;
/// Capacity of each client's writer channel, in batches (one message holds
/// everything one routing batch had for that client).
const OUTBOX_BATCHES: usize = 64;
/// How often the router retries clients whose writer channel was full.
const RETRY_EVERY: Duration = Duration::from_millis(2);
/// The reader's buffer starts small (idle clients stay cheap) and doubles
/// when a read fills it, like the threaded reader's.
const FIRST_READ_BUFFER: usize = 512;
const MAX_READ_BUFFER: usize = 64 * 1024;
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

    let admission = Arc::new(Admission::new(args.max_clients as usize));
    let write_timeout = Duration::from_millis(args.write_timeout_ms);
    let (events, inbox) = mpsc::channel(EVENT_CHANNEL);
    let routing = Routing {
        router: Router::new(admission.clone()),
        outboxes: HashMap::new(),
        stuck: Vec::new(),
        admission: admission.clone(),
        write_timeout,
    };
    let router = tokio::spawn(routing.run(inbox));
    accept_loop(
        listener,
        events,
        admission,
        args.max_line as usize,
        write_timeout,
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
                warn!("accept failed: {e}");
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
            warn!("dropping {peer}: cannot set up its socket: {e}");
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
        tokio::spawn(write_loop(
            id,
            write_half,
            outbox_rx,
            events.clone(),
            write_timeout,
        ));
        tokio::spawn(read_loop(id, read_half, events.clone(), max_line, stop_rx));
    }
}

/// `ERR server-full`, then close; nobody else hears of this connection.
async fn refuse_full(mut socket: tokio::net::TcpStream, peer: SocketAddr, timeout: Duration) {
    warn!("{peer} refused: server full");
    let mut line = Vec::new();
    Reply::Err {
        code: ErrorCode::ServerFull,
        text: "the hub is at its --max-clients limit; try again later",
    }
    .encode(&mut line);
    let _ = tokio::time::timeout(timeout, async {
        socket.write_all(&line).await?;
        socket.shutdown().await
    })
    .await;
}

/// One client's reader: frame, parse, send on. Ends at end of stream, on an
/// error, after `/quit`, or when the router drops `stop`.
async fn read_loop(
    id: ClientId,
    mut socket: OwnedReadHalf,
    events: mpsc::Sender<Event>,
    max_line: usize,
    mut stop: oneshot::Receiver<()>,
) {
    let mut framer = LineFramer::new(max_line);
    let mut buffer = vec![0u8; FIRST_READ_BUFFER];
    let mut parsed = Vec::new();
    let why = loop {
        let n = tokio::select! {
            read = socket.read(&mut buffer) => match read {
                Ok(0) => break "end of stream".to_string(),
                Ok(n) => n,
                Err(e) => break format!("read error: {e}"),
            },
            _ = &mut stop => return,
        };
        let flow = framer.feed(&buffer[..n], |frame| {
            let event = match parse_frame(frame, max_line) {
                Parsed::Empty => return ControlFlow::Continue(()),
                Parsed::Command(command) => Event::Command { id, command },
                Parsed::Refused(refusal) => Event::Refused { id, refusal },
            };
            let quit = matches!(
                event,
                Event::Command {
                    command: Command::Quit,
                    ..
                }
            );
            parsed.push(event);
            // Lines after /quit in the same read are ignored.
            if quit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        for event in parsed.drain(..) {
            // Waits while the channel is full: this client stops being read,
            // and TCP slows its sender down.
            if events.send(event).await.is_err() {
                return;
            }
        }
        if flow.is_break() {
            return;
        }
        if n == buffer.len() && buffer.len() < MAX_READ_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
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

/// The routing task's state: the sans-IO router and every client's outbox.
struct Routing {
    router: Router,
    outboxes: HashMap<ClientId, Outbox>,
    /// Clients with a non-empty overflow.
    stuck: Vec<ClientId>,
    admission: Arc<Admission>,
    write_timeout: Duration,
}

impl Routing {
    async fn run(mut self, mut inbox: mpsc::Receiver<Event>) {
        loop {
            let first = if self.stuck.is_empty() {
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
                while taken < MAX_BATCH_EVENTS && self.router.batch_len() < MAX_BATCH_BYTES {
                    match inbox.try_recv() {
                        Ok(event) => {
                            self.apply(event);
                            taken += 1;
                        }
                        Err(_) => break,
                    }
                }
            }
            self.flush();
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
                self.outboxes.insert(
                    id,
                    Outbox {
                        tx: outbox,
                        overflow: Vec::new(),
                        full_since: None,
                        _stop_reader: stop_reader,
                    },
                );
                let nick = self.router.connect(id);
                info!("{peer} connected as {nick}");
            }
            Event::Command { id, command } => self.router.handle(id, &command),
            Event::Refused { id, refusal } => self.router.refuse(id, &refusal),
            Event::Closed { id, why } => {
                if let Some(nick) = self.router.nick(id) {
                    info!("{nick} ({id}) disconnected: {why}");
                }
                self.router.disconnect(id, &why);
            }
        }
    }

    /// Hands every recipient its share of the batch. Clients cut off for
    /// being stuck past the write timeout queue `LEAVE` for the others, so
    /// this loops until nothing is pending.
    fn flush(&mut self) {
        loop {
            // Free the slots of clients that left before telling the others.
            for _ in self.router.closing() {
                self.admission.release();
            }
            // Older lines first: retry what is parked before adding more.
            let mut still_stuck = Vec::new();
            for id in std::mem::take(&mut self.stuck) {
                if let Some(outbox) = self.outboxes.get_mut(&id)
                    && outbox.retry()
                {
                    still_stuck.push(id);
                }
            }
            self.stuck = still_stuck;
            for &id in self.router.dirty() {
                let Some(outbox) = self.outboxes.get_mut(&id) else {
                    continue;
                };
                let mut bytes = Vec::new();
                for chunk in self.router.pending_for(id) {
                    bytes.extend_from_slice(chunk);
                }
                let was_stuck = !outbox.overflow.is_empty();
                if outbox.push(bytes) && !was_stuck {
                    self.stuck.push(id);
                }
            }
            for id in self.router.finish_batch() {
                if let Some(outbox) = self.outboxes.remove(&id) {
                    self.close(outbox);
                }
            }
            let now = Instant::now();
            let timeout = self.write_timeout;
            let cut: Vec<ClientId> = self
                .stuck
                .iter()
                .copied()
                .filter(|id| {
                    self.outboxes
                        .get(id)
                        .and_then(|o| o.full_since)
                        .is_some_and(|since| now.duration_since(since) >= timeout)
                })
                .collect();
            if cut.is_empty() {
                return;
            }
            let why = format!(
                "not reading: its lines stayed queued past {} ms",
                timeout.as_millis()
            );
            for id in cut {
                if let Some(nick) = self.router.nick(id) {
                    warn!("cutting off {nick} ({id}): {why}");
                }
                if let Some(outbox) = self.outboxes.get_mut(&id) {
                    outbox.overflow = Vec::new();
                    outbox.full_since = None;
                }
                self.router.disconnect(id, &why);
            }
        }
    }

    /// The router is done with a client. Its writer ends once it has written
    /// what is queued (its channel is dropped here), and its reader ends now.
    /// Lines still parked in the overflow (`BYE`, say) go out first.
    fn close(&mut self, outbox: Outbox) {
        self.stuck.retain(|id| self.outboxes.contains_key(id));
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
}

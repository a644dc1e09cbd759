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
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use log::{debug, info, warn};

use crate::proto::admission::Admission;
use crate::proto::client_line::{Command, ErrorCode, Refusal, Reply};
use crate::proto::router::{ClientId, Router};

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
    /// From a reader: one parsed command.
    Command { id: ClientId, command: Command },
    /// From a reader: a line it refused (too long, bad UTF-8, malformed).
    Refused { id: ClientId, refusal: Refusal },
    /// From a reader: its connection ended (end of stream, reset, ...).
    Closed { id: ClientId, why: String },
    /// From [`crate::hub::Hub::shutdown`]: close everything and return.
    Shutdown,
}

/// How much one batch may grow before it is flushed, even if more events are
/// queued: bounds both the latency of the first line in a batch and memory.
const MAX_BATCH_EVENTS: usize = 4096;
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The dispatcher's state: the router (who gets what) and the write halves
/// of all sockets (how to reach them).
pub struct Dispatcher {
    events: Receiver<Event>,
    router: Router,
    sockets: HashMap<ClientId, Arc<TcpStream>>,
    admission: Arc<Admission>,
    write_timeout: Duration,
}

impl Dispatcher {
    pub fn new(
        events: Receiver<Event>,
        admission: Arc<Admission>,
        write_timeout: Duration,
    ) -> Self {
        Dispatcher {
            events,
            router: Router::new(admission.clone()),
            sockets: HashMap::new(),
            admission,
            write_timeout,
        }
    }

    /// The dispatcher thread's whole life: wait, route a batch, write it.
    pub fn run(mut self) {
        loop {
            // The one place this thread waits for work.
            debug!("blocking in recv() on the channel");
            let Ok(first) = self.events.recv() else {
                break;
            };
            let mut stop = !self.apply(first);
            let mut taken = 1;
            // Take whatever else is already queued, without waiting, so many
            // lines for the same socket leave in one write.
            while !stop && taken < MAX_BATCH_EVENTS && self.router.batch_len() < MAX_BATCH_BYTES {
                match self.events.try_recv() {
                    Ok(event) => {
                        stop = !self.apply(event);
                        taken += 1;
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            debug!("batch of {taken} events");
            self.flush();
            if stop {
                break;
            }
        }
        info!("shutting down: closing {} connections", self.sockets.len());
        for (_, socket) in self.sockets.drain() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Applies one event to the routing state. Returns false on shutdown.
    fn apply(&mut self, event: Event) -> bool {
        match event {
            Event::Connected { id, socket, peer } => {
                self.sockets.insert(id, socket);
                let nick = self.router.connect(id);
                info!(
                    "{peer} connected as {nick} ({} clients)",
                    self.sockets.len()
                );
            }
            Event::Full { mut socket, peer } => {
                warn!("{peer} refused: server full");
                let mut line = Vec::new();
                let text = "the hub is at its --max-clients limit; try again later";
                Reply::Err {
                    code: ErrorCode::ServerFull,
                    text,
                }
                .encode(&mut line);
                // A fresh socket's send buffer is empty, so this cannot block
                // for long; the write timeout bounds it anyway.
                let _ = socket.set_write_timeout(Some(self.write_timeout));
                let _ = socket.write_all(&line);
                let _ = socket.shutdown(Shutdown::Both);
            }
            Event::Command { id, command } => {
                debug!("{id}: {command:?}");
                self.router.handle(id, &command);
            }
            Event::Refused { id, refusal } => self.router.refuse(id, &refusal),
            Event::Closed { id, why } => {
                if let Some(nick) = self.router.nick(id) {
                    info!("{nick} ({id}) disconnected: {why}");
                }
                self.router.disconnect(id, &why);
            }
            Event::Shutdown => return false,
        }
        true
    }

    /// Writes every pending line, one `writev` per recipient. A recipient
    /// whose write fails or times out is disconnected, which queues `LEAVE`
    /// for the others, so this loops until nothing is pending.
    fn flush(&mut self) {
        loop {
            // Free the slots of clients that left *before* telling the
            // others: whoever sees `LEAVE` can count on the room it made.
            for _ in self.router.closing() {
                self.admission.release();
            }
            let mut failed = Vec::new();
            // One list of slices, refilled for each recipient: no allocation
            // per recipient once it has grown to the longest list.
            let mut chunks: Vec<IoSlice<'_>> = Vec::new();
            for &id in self.router.dirty() {
                let Some(socket) = self.sockets.get(&id) else {
                    continue;
                };
                chunks.clear();
                chunks.extend(self.router.pending_for(id).map(IoSlice::new));
                debug!(
                    "writing {} bytes to {id} ({} chunks)",
                    chunks.iter().map(|c| c.len()).sum::<usize>(),
                    chunks.len()
                );
                if let Err(e) = write_all_within(socket, &mut chunks, self.write_timeout) {
                    failed.push((id, e));
                }
            }
            for id in self.router.finish_batch() {
                self.close(id);
            }
            if failed.is_empty() {
                return;
            }
            for (id, e) in failed {
                let why = if is_timeout(&e) {
                    format!(
                        "not reading: write blocked past {} ms",
                        self.write_timeout.as_millis()
                    )
                } else {
                    format!("write error: {e}")
                };
                if let Some(nick) = self.router.nick(id) {
                    warn!("cutting off {nick} ({id}): {why}");
                }
                self.router.disconnect(id, &why);
            }
        }
    }

    /// Closes a connection for good. Shutting it down also wakes its reader
    /// thread, whose blocking `read()` returns 0, so that thread ends too.
    fn close(&mut self, id: ClientId) {
        if let Some(socket) = self.sockets.remove(&id) {
            debug!("closing {id}");
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes all `chunks`, giving up once `timeout` has passed in total.
///
/// The socket's own write timeout (`SO_SNDTIMEO`, set by the acceptor) ends a
/// write that makes no progress at all. A client that reads a trickle makes
/// some progress on every write, so the total time is checked here as well.
fn write_all_within(
    mut socket: &TcpStream,
    mut chunks: &mut [IoSlice<'_>],
    timeout: Duration,
) -> io::Result<()> {
    let start = Instant::now();
    let mut shortened = false;
    let result = loop {
        if chunks.is_empty() {
            break Ok(());
        }
        // Blocks while the client's kernel buffer is full.
        match socket.write_vectored(chunks) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut chunks, n),
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

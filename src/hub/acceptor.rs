//! The accept loop: the thread named `acceptor`.
//!
//! It blocks in `accept()` until a client connects, then does the little
//! that must happen before anyone else can know about the connection:
//! admission (is the hub full?), socket options, telling the dispatcher, and
//! spawning the client's reader thread. Then it goes straight back to
//! `accept()`; it never reads from or writes to a client.

use std::fs::File;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{debug, error, warn};

use crate::hub::batch_gate::BatchGate;
use crate::hub::budget::{Intake, Quota};
use crate::hub::events::{CLIENT_STACK_SIZE, Event, PerIp};
use crate::hub::reader::{self, ReaderSettings};
use crate::hub::score::{Counters, Scoreboard, Slot, State};
use crate::proto::admission::Admission;
use crate::proto::router::ClientId;
use crate::proto::server_line::{ErrorCode, ServerLine};

/// What the accept loop needs; built by [`crate::hub::Hub::start`].
pub struct Acceptor {
    pub listener: TcpListener,
    pub events: Sender<Event>,
    pub admission: Arc<Admission>,
    pub stop: Arc<AtomicBool>,
    pub max_line: usize,
    pub write_timeout: Duration,
    pub line_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub intake: Arc<Intake>,
    pub per_ip: Arc<PerIp>,
    /// Where this thread and each client thread say what they wait for.
    pub score: Arc<Scoreboard>,
    /// Given to every reader (src/hub/batch_gate.rs).
    pub gate: Arc<BatchGate>,
}

/// Logs repeated accept errors at most once a second, with a count.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl ErrorLog {
    fn failed(&mut self, e: &io::Error) {
        self.unlogged += 1;
        if self
            .last
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            warn!(
                "accept failed: {e} ({} times since the last report)",
                self.unlogged
            );
            self.last = Some(Instant::now());
            self.unlogged = 0;
        }
    }
}

/// True for "out of file descriptors" (this process's, or the system's).
fn out_of_descriptors(e: &io::Error) -> bool {
    // EMFILE and ENFILE on Linux and the BSDs.
    matches!(e.raw_os_error(), Some(24) | Some(23))
}

/// Forgets finished readers now and then: not on every accept (with
/// 10,000 clients that would be 10,000 checks per accept), but when the
/// list has doubled since the last time.
fn forget_finished(readers: &mut Vec<JoinHandle<()>>, prune_at: &mut usize) {
    if readers.len() >= *prune_at {
        readers.retain(|h| !h.is_finished());
        *prune_at = (readers.len() * 2).max(64);
    }
}

/// One descriptor held in reserve: with every other one in use, `accept()`
/// fails with EMFILE and the client waits in the queue, unanswered, for
/// ever. Closing the spare makes room to accept it and say why it is
/// refused.
fn spare_descriptor() -> Option<File> {
    File::open(if cfg!(windows) { "NUL" } else { "/dev/null" }).ok()
}

/// How one connection came out of [`Acceptor::admit`].
enum Admitted {
    /// It has a place: its id, and the socket with its options set.
    Client(ClientId, TcpStream),
    /// Refused or dropped; the loop goes back to `accept()`.
    Refused,
    /// The dispatcher is gone, so the hub is stopping: the loop ends.
    HubGone,
}

impl Acceptor {
    /// Runs until `stop` is set (and a connection wakes `accept()`), or the
    /// dispatcher is gone. Returns the handles of the reader threads still
    /// running, so shutdown can join them.
    ///
    /// `self.listener.accept()` below is the one call of the loop that
    /// blocks (a breakpoint there stops the thread between clients); all
    /// the rest is done by the helpers that follow, in order.
    pub fn run(self) -> Vec<JoinHandle<()>> {
        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        let mut prune_at = 64;
        let mut spare = spare_descriptor();
        let mut errors = ErrorLog::default();
        let me = self.score.register_thread("acceptor");
        loop {
            // Parked in the kernel until a client completes the TCP handshake.
            debug!("blocking in accept()");
            me.enter(State::Accept);
            let accepted = self.listener.accept();
            me.enter(State::Admit);
            if self.stop.load(Ordering::SeqCst) {
                debug!("stop requested");
                break;
            }
            let (socket, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => match self.accept_failed(&e, &mut spare, &mut errors, &me) {
                    _ if self.stop.load(Ordering::SeqCst) => break,
                    Some(pair) => pair,
                    None => continue,
                },
            };
            debug!("accepted {peer}");
            let (id, socket) = match self.admit(socket, peer) {
                Admitted::Client(id, socket) => (id, socket),
                Admitted::Refused => continue,
                Admitted::HubGone => break,
            };
            let Some((handle, socket, quota)) = self.spawn_reader(id, socket, peer) else {
                continue;
            };
            let sent = self.announce(id, socket, peer, &quota);
            handle.thread().unpark();
            readers.push(handle);
            if !sent {
                break;
            }
            forget_finished(&mut readers, &mut prune_at);
        }
        me.enter(State::Exited);
        readers
    }

    /// `accept()` failed. Out of descriptors, with the spare in hand: give
    /// the spare back and accept with it. Linux's `accept()` takes a
    /// descriptor *before* it waits, so with the table full it fails at
    /// once even with nobody waiting; with the spare given back it waits
    /// for the next client instead (no spinning). That client may come much
    /// later, after clients have left: so take the spare again first, and
    /// only if that fails (still full) refuse the client with one line and
    /// close it. Otherwise it is returned, to be admitted like any other:
    /// a newcomer is never refused for a shortage that is over.
    /// Any other error: back off 50 ms instead of spinning, and keep
    /// serving the clients already connected.
    fn accept_failed(
        &self,
        e: &io::Error,
        spare: &mut Option<File>,
        errors: &mut ErrorLog,
        me: &Slot,
    ) -> Option<(TcpStream, SocketAddr)> {
        errors.failed(e);
        if out_of_descriptors(e) && spare.is_some() {
            drop(spare.take());
            me.enter(State::Accept);
            let accepted = self.listener.accept();
            me.enter(State::Admit);
            if let Ok((socket, peer)) = accepted {
                *spare = spare_descriptor();
                if spare.is_some() {
                    debug!("accepted {peer} with the spare descriptor; room again");
                    return Some((socket, peer));
                }
                self.refuse(
                    socket,
                    ErrorCode::ServerFull,
                    "the hub is out of file descriptors; try again later",
                );
            }
            *spare = spare_descriptor();
        } else {
            me.enter(State::BackOff);
            thread::sleep(Duration::from_millis(50));
            if spare.is_none() {
                *spare = spare_descriptor();
            }
        }
        None
    }

    /// Admission, before anyone else hears of the connection: room for its
    /// address (`--max-per-ip`, refused here), room in the hub (a full hub
    /// is the dispatcher's to answer and count), then its socket options.
    /// Whatever was taken is given back when a later step fails.
    fn admit(&self, socket: TcpStream, peer: SocketAddr) -> Admitted {
        if !self.per_ip.try_admit(peer.ip()) {
            warn!("{peer} refused: too many connections from its address");
            let text = "too many connections from your address (--max-per-ip)";
            self.refuse(socket, ErrorCode::ServerFull, text);
            return Admitted::Refused;
        }
        let Some(id) = self.admission.try_admit() else {
            self.per_ip.release(peer.ip());
            // Counted by the dispatcher, which answers it.
            if self.events.send(Event::Full { socket, peer }).is_err() {
                return Admitted::HubGone;
            }
            return Admitted::Refused;
        };
        if let Err(e) = self.prepare(&socket) {
            warn!("dropping {peer}: cannot set up its socket: {e}");
            self.admission.release();
            self.per_ip.release(peer.ip());
            return Admitted::Refused;
        }
        Admitted::Client(id, socket)
    }

    /// Starts the `client-<id>` reader thread of an admitted client, with
    /// its scoreboard slot and its quota. The thread comes before
    /// `Connected`: a client the hub cannot give a thread to gets one ERR
    /// and nobody hears of it (no WELCOME, no JOIN, no LEAVE); then this
    /// returns `None` with its places given back.
    fn spawn_reader(
        &self,
        id: ClientId,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> Option<(JoinHandle<()>, Arc<TcpStream>, Arc<Quota>)> {
        // One socket, two owners: the reader thread reads through its
        // `Arc`, the dispatcher writes through its own. Sharing the one
        // descriptor (rather than `try_clone`, which dups it) keeps each
        // client at one file descriptor: 10,000 clients, 10,000 fds.
        let socket = Arc::new(socket);
        // Its place on the scoreboard exists before the dispatcher hears
        // of it, so the dispatcher can find it on Connected.
        let slot = self.score.register_client(id, peer);
        let slot_if_no_thread = slot.clone();
        Counters::add(&self.score.counters.accepted);
        let quota = Arc::new(Quota::default());
        let settings = ReaderSettings {
            max_line: self.max_line,
            line_timeout: self.line_timeout,
            idle_timeout: self.idle_timeout,
            quota: quota.clone(),
            intake: self.intake.clone(),
            slot,
            gate: self.gate.clone(),
        };
        let (events, reader_half) = (self.events.clone(), Arc::clone(&socket));
        // The reader hands no line over before `quota.start()`, so the
        // dispatcher still learns of a client before its first line.
        let spawned = thread::Builder::new()
            .name(format!("client-{id}"))
            .stack_size(CLIENT_STACK_SIZE)
            .spawn(move || reader::run(id, reader_half, events, settings));
        match spawned {
            Ok(handle) => Some((handle, socket, quota)),
            Err(e) => {
                error!("cannot start a thread for {peer}: {e}");
                slot_if_no_thread.enter(State::Exited);
                self.admission.release();
                self.per_ip.release(peer.ip());
                if let Ok(socket) = Arc::try_unwrap(socket) {
                    let text = "the hub cannot start a thread for you; try again later";
                    self.refuse(socket, ErrorCode::ServerFull, text);
                }
                None
            }
        }
    }

    /// Tells the dispatcher of the new client (`Connected`), then lets its
    /// reader hand lines over (`quota.start()`), or, with the dispatcher
    /// gone, tells the reader to end (`quota.close()`). False if the
    /// dispatcher is gone.
    fn announce(
        &self,
        id: ClientId,
        socket: Arc<TcpStream>,
        peer: SocketAddr,
        quota: &Arc<Quota>,
    ) -> bool {
        let connected = Event::Connected {
            id,
            socket,
            peer,
            quota: quota.clone(),
        };
        let sent = self.events.send(connected).is_ok();
        if sent {
            quota.start();
        } else {
            quota.close();
        }
        sent
    }

    /// One `ERR` line to a connection the hub will not serve, then close.
    /// Nobody else hears of it. A fresh socket's send buffer is empty, so
    /// the write cannot block for long; the write timeout bounds it anyway.
    fn refuse(&self, mut socket: TcpStream, code: ErrorCode, text: &str) {
        Counters::add(&self.score.counters.refused_full);
        let mut line = Vec::new();
        ServerLine::Err { code, text }.encode(&mut line);
        let _ = socket.set_write_timeout(Some(self.write_timeout));
        let _ = socket.write_all(&line);
        let _ = socket.shutdown(Shutdown::Both);
    }

    /// Socket options for an admitted client.
    fn prepare(&self, socket: &TcpStream) -> io::Result<()> {
        // Nagle's algorithm would hold a short line back until the previous
        // one is acknowledged (up to 40 ms with delayed ACKs). Our lines are
        // short and batched already, so send them at once.
        socket.set_nodelay(true)?;
        // Bounds how long the dispatcher can block on this client with
        // --blocking-writes (otherwise its sends never wait): see
        // dispatcher.rs for why a single writer needs it.
        socket.set_write_timeout(Some(self.write_timeout))
    }
}

//! The accept loop: the thread named `acceptor`.
//!
//! It blocks in `accept()` until a client connects, then does the little
//! that must happen before anyone else can know about the connection:
//! admission (is the hub full?), socket options, telling the dispatcher, and
//! spawning the client's reader thread. Then it goes straight back to
//! `accept()`; it never reads from or writes to a client.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::Sender;
use log::{debug, error, warn};

use crate::hub::dispatcher::Event;
use crate::hub::reader;
use crate::hub::score::{Counters, Scoreboard, State};
use crate::proto::admission::Admission;

/// Stack size of each client thread. A reader needs little stack, and only
/// the pages it touches cost memory; a small stack keeps 10,000 threads
/// within a few tens of megabytes of address space per thousand clients.
pub const CLIENT_STACK_SIZE: usize = 128 * 1024;

/// What the accept loop needs; built by [`crate::hub::Hub::start`].
pub struct Acceptor {
    pub listener: TcpListener,
    pub events: Sender<Event>,
    pub admission: Arc<Admission>,
    pub stop: Arc<AtomicBool>,
    pub max_line: usize,
    pub write_timeout: Duration,
    /// Where this thread and each client thread say what they wait for.
    pub score: Arc<Scoreboard>,
}

impl Acceptor {
    /// Runs until `stop` is set (and a connection wakes `accept()`), or the
    /// dispatcher is gone. Returns the handles of the reader threads still
    /// running, so shutdown can join them.
    pub fn run(self) -> Vec<JoinHandle<()>> {
        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        let mut prune_at = 64;
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
                Err(e) => {
                    // Typically EMFILE (out of file descriptors): back off
                    // instead of spinning, and keep serving who is connected.
                    warn!("accept failed: {e}");
                    me.enter(State::BackOff);
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            debug!("accepted {peer}");

            let Some(id) = self.admission.try_admit() else {
                // Counted by the dispatcher, which answers it.
                if self.events.send(Event::Full { socket, peer }).is_err() {
                    break;
                }
                continue;
            };
            if let Err(e) = self.prepare(&socket) {
                warn!("dropping {peer}: cannot set up its socket: {e}");
                self.admission.release();
                continue;
            }
            // One socket, two owners: the reader thread reads through its
            // `Arc`, the dispatcher writes through its own. Sharing the one
            // descriptor (rather than `try_clone`, which dups it) keeps each
            // client at one file descriptor: 10,000 clients, 10,000 fds.
            let socket = Arc::new(socket);
            let reader_half = Arc::clone(&socket);
            // Its place on the scoreboard exists before the dispatcher hears
            // of it, so the dispatcher can find it on Connected.
            let slot = self.score.register_client(id, peer);
            let slot_if_no_thread = slot.clone();
            Counters::add(&self.score.counters.accepted);
            // Connected goes into the channel *before* the reader exists, so
            // the dispatcher always learns of a client before its first line.
            if self
                .events
                .send(Event::Connected { id, socket, peer })
                .is_err()
            {
                break;
            }
            let events = self.events.clone();
            let max_line = self.max_line;
            let spawned = thread::Builder::new()
                .name(format!("client-{id}"))
                .stack_size(CLIENT_STACK_SIZE)
                .spawn(move || reader::run(id, reader_half, events, max_line, slot));
            match spawned {
                Ok(handle) => readers.push(handle),
                Err(e) => {
                    error!("cannot start a thread for {peer}: {e}");
                    slot_if_no_thread.enter(State::Exited);
                    let why = format!("the hub could not start its thread: {e}");
                    let _ = self.events.send(Event::Closed { id, why });
                }
            }
            // Forget finished readers now and then (not on every accept:
            // with 10,000 clients that would be 10,000 checks per accept).
            if readers.len() >= prune_at {
                readers.retain(|h| !h.is_finished());
                prune_at = (readers.len() * 2).max(64);
            }
        }
        me.enter(State::Exited);
        readers
    }

    /// Socket options for an admitted client.
    fn prepare(&self, socket: &TcpStream) -> io::Result<()> {
        // Nagle's algorithm would hold a short line back until the previous
        // one is acknowledged (up to 40 ms with delayed ACKs). Our lines are
        // short and batched already, so send them at once.
        socket.set_nodelay(true)?;
        // Bounds how long the dispatcher can block on this client: see
        // dispatcher.rs for why a single writer needs it.
        socket.set_write_timeout(Some(self.write_timeout))
    }
}

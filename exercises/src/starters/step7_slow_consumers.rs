//! Step 7: slow consumers. The whole hub: your framer (step 4) in each
//! reader thread, your router (step 6) in the dispatcher, and a write
//! timeout so that one client that stops reading cannot stop everyone.
//!
//! Node: `socket.write()` never blocks; a client that stops reading makes
//! Node queue its bytes in memory, without limit (watch
//! `socket.writableLength` grow). Here a write blocks when the kernel's
//! buffers are full, so the dispatcher gives every write a deadline and
//! cuts off the client that misses it; the others get `LEAVE <nick>`.
//!
//! Grade it: `cargo test --test grade step7` (it needs steps 4, 5 and 6).
//! Then try it by hand: `serve` it from a `main` and connect with `nc`.

// The bodies below are `todo!()`, so parameters and imports look unused
// until you write them. These lints would only be noise while you work;
// delete this line when the step is done to get them back.
#![allow(unused_variables, unused_imports, unused_mut, dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::shared::{ClientId, Frame, Framer, Out, Router};
use crate::steps::step4_framing::LineFramer;
use crate::steps::step6_events::EventRouter;

/// Longest line a client may send (docs/protocol.md's default).
pub const MAX_LINE: usize = 4096;
/// How many events may wait in the channel (see step 3).
pub const QUEUE: usize = 1024;

/// What the acceptor and the reader threads tell the dispatcher.
#[derive(Debug)]
pub enum Event {
    /// A client connected; the stream is the dispatcher's to write to.
    Connected(ClientId, TcpStream),
    /// One framed, UTF-8 line from a client.
    Line(ClientId, String),
    /// The reader refused a line (`ERR line-too-long`, `ERR bad-utf8`):
    /// send this `ERR` line back. Readers never write themselves.
    Refused(ClientId, String),
    /// The client is done (`read()` returned 0, or failed).
    Closed(ClientId),
}

/// Starts the `dispatcher` thread (a [`Dispatcher`] with this write
/// timeout) and runs [`accept_loop`] on the calling thread.
pub fn serve(listener: TcpListener, write_timeout: Duration) {
    todo!("as in step 3, with Dispatcher::new(write_timeout).run(receiver) on the thread")
}

/// As in step 3: number each client, `Event::Connected`, then a
/// `client-<n>` thread running [`read_client`]. Set `TCP_NODELAY`
/// (`set_nodelay(true)`), so a short line is sent at once.
pub fn accept_loop(listener: TcpListener, events: Sender<Event>) {
    todo!("your step 3 accept_loop, plus set_nodelay")
}

/// Reads one client until it is done: every chunk goes through a
/// [`LineFramer`] of [`MAX_LINE`], every frame becomes an event
/// ([`frame_event`]). Ends with `Event::Closed`.
pub fn read_client(id: ClientId, mut stream: TcpStream, events: Sender<Event>) {
    todo!("read loop; for frame in framer.feed(&buf[..n]) send frame_event(id, frame)")
}

/// A frame as the event to send: `Event::Line` if it is UTF-8, else
/// `Event::Refused` with `ERR bad-utf8 ...`; `TooLong` is
/// `Event::Refused` with `ERR line-too-long ...`.
pub fn frame_event(id: ClientId, frame: Frame) -> Event {
    todo!("String::from_utf8 tells you whether the bytes are UTF-8")
}

/// The one thread that writes: the router, every socket, and the deadline.
#[derive(Debug)]
pub struct Dispatcher {
    router: EventRouter,
    sockets: BTreeMap<ClientId, TcpStream>,
    write_timeout: Duration,
}

impl Dispatcher {
    /// A dispatcher with no clients yet.
    pub fn new(write_timeout: Duration) -> Dispatcher {
        todo!("an EventRouter::new(), an empty map, the timeout")
    }

    /// Takes events off the channel, in order, until every sender is gone.
    /// For each: ask the router what to send (`Connected`: keep the socket,
    /// `router.connect`; `Line`: `router.handle`; `Refused`: the `ERR` line
    /// to that client if it is still here; `Closed`: drop the socket,
    /// `router.disconnect`), then write it all.
    ///
    /// Writing: each `Out::Line` gets a `\n` and goes out with
    /// [`write_all_within`]. If that fails, the client is too slow: remove
    /// its socket, `shutdown(Shutdown::Both)` (its reader's `read()` then
    /// returns 0), and write the router's `disconnect` lines too (a queue,
    /// `VecDeque`, makes that easy). `Out::Close` (after `/quit`): remove the
    /// socket and `shutdown(Shutdown::Write)`, so the client still reads `BYE`.
    pub fn run(mut self, events: Receiver<Event>) {
        todo!("for event in events {{ ... }}; two private methods (apply, deliver) keep it short")
    }
}

/// Writes all of `bytes`, or fails with `TimedOut` once `limit` has passed.
/// The socket's own write timeout counts per `write()` call; this counts the
/// whole line, so a client reading a trickle is cut off too.
pub fn write_all_within(
    mut stream: &TcpStream,
    mut bytes: &[u8],
    limit: Duration,
) -> io::Result<()> {
    todo!(
        "deadline = Instant::now() + limit; loop: set_write_timeout(Some(time left)), \
         write(), advance; TimedOut when no time is left"
    )
}

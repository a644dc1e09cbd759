//! Step 7: slow consumers. The whole hub: your framer (step 4) in each
//! reader thread, your router (step 6) in the dispatcher, and a write
//! timeout so that one client that stops reading cannot stop everyone.
//!
//! Node: `socket.write()` never blocks; a client that stops reading makes
//! Node queue its bytes in memory, without limit (watch
//! `socket.writableLength` grow). Here a write blocks when the kernel's
//! buffers are full, so the dispatcher gives every write a deadline and
//! cuts off the client that misses it; the others get `LEAVE <nick>`.

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
    let (events, queue) = crossbeam_channel::bounded(QUEUE);
    let dispatcher = Dispatcher::new(write_timeout);
    let spawned = thread::Builder::new()
        .name("dispatcher".to_string())
        .spawn(move || dispatcher.run(queue));
    if let Err(e) = spawned {
        eprintln!("could not start the dispatcher: {e}");
        return;
    }
    accept_loop(listener, events);
}

/// As in step 3: number each client, `Event::Connected`, then a
/// `client-<n>` thread running [`read_client`]. Sets `TCP_NODELAY`, so a
/// short line is sent at once instead of waiting to be merged with more.
pub fn accept_loop(listener: TcpListener, events: Sender<Event>) {
    for (n, conn) in listener.incoming().enumerate() {
        let id = n as ClientId + 1;
        let Ok(stream) = conn else { continue };
        let _ = stream.set_nodelay(true);
        let Ok(reader) = stream.try_clone() else {
            continue;
        };
        if events.send(Event::Connected(id, stream)).is_err() {
            return;
        }
        let events = events.clone();
        let spawned = thread::Builder::new()
            .name(format!("client-{id}"))
            .spawn(move || read_client(id, reader, events));
        if let Err(e) = spawned {
            eprintln!("could not start a reader thread: {e}");
        }
    }
}

/// Reads one client until it is done: every chunk goes through a
/// [`LineFramer`], every frame becomes an event ([`frame_event`]). Ends
/// with `Event::Closed`.
pub fn read_client(id: ClientId, mut stream: TcpStream, events: Sender<Event>) {
    let mut framer = LineFramer::new(MAX_LINE);
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for frame in framer.feed(&buf[..n]) {
            if events.send(frame_event(id, frame)).is_err() {
                return;
            }
        }
    }
    let _ = events.send(Event::Closed(id));
}

/// A frame as the event to send: a line if it is UTF-8, else the `ERR`.
pub fn frame_event(id: ClientId, frame: Frame) -> Event {
    match frame {
        Frame::TooLong => Event::Refused(
            id,
            format!("ERR line-too-long lines are at most {MAX_LINE} bytes"),
        ),
        Frame::Line(bytes) => match String::from_utf8(bytes) {
            Ok(line) => Event::Line(id, line),
            Err(_) => Event::Refused(id, "ERR bad-utf8 lines must be UTF-8".to_string()),
        },
    }
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
        Dispatcher {
            router: EventRouter::new(),
            sockets: BTreeMap::new(),
            write_timeout,
        }
    }

    /// Takes events off the channel, in order, until every sender is gone.
    pub fn run(mut self, events: Receiver<Event>) {
        for event in events {
            let outs = self.apply(event);
            self.deliver(outs);
        }
    }

    /// What the router says to send for one event.
    fn apply(&mut self, event: Event) -> Vec<Out> {
        match event {
            Event::Connected(id, stream) => {
                self.sockets.insert(id, stream);
                self.router.connect(id)
            }
            Event::Line(id, line) => self.router.handle(id, &line),
            Event::Refused(id, err) if self.sockets.contains_key(&id) => vec![Out::Line(id, err)],
            Event::Refused(..) => Vec::new(),
            Event::Closed(id) => {
                self.sockets.remove(&id);
                self.router.disconnect(id)
            }
        }
    }

    /// Writes every line, each within the write timeout. A client that
    /// misses it is cut off, and the router's `LEAVE` lines for it are
    /// delivered too (which may cut off more).
    fn deliver(&mut self, outs: Vec<Out>) {
        let mut queue = VecDeque::from(outs);
        while let Some(out) = queue.pop_front() {
            match out {
                Out::Line(to, line) => {
                    let Some(stream) = self.sockets.get(&to) else {
                        continue;
                    };
                    let bytes = format!("{line}\n");
                    if write_all_within(stream, bytes.as_bytes(), self.write_timeout).is_err() {
                        if let Some(stream) = self.sockets.remove(&to) {
                            // Both ways: the reader's read() returns 0 too.
                            let _ = stream.shutdown(Shutdown::Both);
                        }
                        queue.extend(self.router.disconnect(to));
                    }
                }
                Out::Close(to) => {
                    if let Some(stream) = self.sockets.remove(&to) {
                        // Only our side: the client still reads its `BYE`.
                        let _ = stream.shutdown(Shutdown::Write);
                    }
                }
            }
        }
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
    let deadline = Instant::now() + limit;
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

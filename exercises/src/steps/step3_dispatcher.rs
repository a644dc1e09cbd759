//! Step 3: the hub's way. Reader threads -> one channel -> one dispatcher.
//!
//! Node: the event loop. In Node one thread runs every callback, so only
//! one piece of code touches `connectedSockets` at a time. Here that thread
//! is made visible: the dispatcher owns the sockets (no lock: nobody else
//! has them), and the reader threads only read and send what they read
//! down a channel, which is the event queue Node keeps out of sight.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use crate::shared::ClientId;

/// What a reader thread or the acceptor tells the dispatcher.
#[derive(Debug)]
pub enum Event {
    /// A client connected; the stream is the dispatcher's to write to.
    Connected(ClientId, TcpStream),
    /// One `read()`'s worth of bytes from a client.
    Data(ClientId, Vec<u8>),
    /// The client is done (`read()` returned 0, or failed).
    Closed(ClientId),
}

/// How many events may wait in the channel. When it is full, readers wait
/// in `send`, stop reading, and TCP slows their clients down.
pub const QUEUE: usize = 1024;

/// Makes the channel, starts the `dispatcher` thread running [`dispatch`],
/// and runs [`accept_loop`] on the calling thread.
pub fn serve(listener: TcpListener) {
    let (events, queue) = crossbeam_channel::bounded(QUEUE);
    let spawned = thread::Builder::new()
        .name("dispatcher".to_string())
        .spawn(move || dispatch(queue));
    if let Err(e) = spawned {
        eprintln!("could not start the dispatcher: {e}");
        return;
    }
    accept_loop(listener, events);
}

/// Accepts clients forever. Numbers each one (1, 2, ...), gives the
/// dispatcher a handle to write to it (`Event::Connected`), then starts its
/// `client-<n>` reader thread. Connected goes first, so the dispatcher
/// never gets data from a client it does not know.
pub fn accept_loop(listener: TcpListener, events: Sender<Event>) {
    for (n, conn) in listener.incoming().enumerate() {
        let id = n as ClientId + 1;
        let Ok(stream) = conn else { continue };
        let Ok(reader) = stream.try_clone() else {
            continue;
        };
        if events.send(Event::Connected(id, stream)).is_err() {
            return; // the dispatcher is gone: nothing left to serve
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

/// Reads one client until it is done, sending each chunk as
/// `Event::Data`, then `Event::Closed`. Never writes to the socket.
pub fn read_client(id: ClientId, mut stream: TcpStream, events: Sender<Event>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if events.send(Event::Data(id, buf[..n].to_vec())).is_err() {
            return;
        }
    }
    let _ = events.send(Event::Closed(id));
}

/// The one thread that writes. Owns every socket in a map; for each event,
/// in the order they come out of the channel: `Connected` writes
/// `WELCOME\n` and keeps the socket, `Data` is written to every client but
/// its sender (a client whose write fails is dropped), `Closed` drops it.
pub fn dispatch(events: Receiver<Event>) {
    let mut sockets: BTreeMap<ClientId, TcpStream> = BTreeMap::new();
    for event in events {
        match event {
            Event::Connected(id, mut stream) => {
                if stream.write_all(b"WELCOME\n").is_ok() {
                    sockets.insert(id, stream);
                }
            }
            Event::Data(from, bytes) => {
                sockets.retain(|id, stream| *id == from || stream.write_all(&bytes).is_ok());
            }
            Event::Closed(id) => {
                sockets.remove(&id);
            }
        }
    }
}

//! Step 3: the hub's way. Reader threads -> one channel -> one dispatcher.
//!
//! Node: the event loop. In Node one thread runs every callback, so only
//! one piece of code touches `connectedSockets` at a time. Here that thread
//! is made visible: the dispatcher owns the sockets (no lock: nobody else
//! has them), and the reader threads only read and send what they read
//! down a channel, which is the event queue Node keeps out of sight.
//!
//! Grade it: `cargo test --test grade step3`.

// The bodies below are `todo!()`, so parameters and imports look unused
// until you write them. These lints would only be noise while you work;
// delete this line when the step is done to get them back.
#![allow(unused_variables, unused_imports, unused_mut, dead_code)]

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
    todo!(
        "crossbeam_channel::bounded(QUEUE); a named thread for dispatch(receiver); accept_loop(listener, sender)"
    )
}

/// Accepts clients forever. Numbers each one (1, 2, ...), gives the
/// dispatcher a handle to write to it (`Event::Connected`), then starts its
/// `client-<n>` reader thread. Connected goes first, so the dispatcher
/// never gets data from a client it does not know.
pub fn accept_loop(listener: TcpListener, events: Sender<Event>) {
    todo!(
        "for each stream: try_clone() one handle for the reader, send Connected with the other, spawn read_client with events.clone()"
    )
}

/// Reads one client until it is done, sending each chunk as
/// `Event::Data`, then `Event::Closed`. Never writes to the socket.
pub fn read_client(id: ClientId, mut stream: TcpStream, events: Sender<Event>) {
    todo!(
        "read loop; send Data(id, buf[..n].to_vec()); stop if send fails; finally send Closed(id)"
    )
}

/// The one thread that writes. Owns every socket in a map; for each event,
/// in the order they come out of the channel: `Connected` writes
/// `WELCOME\n` and keeps the socket, `Data` is written to every client but
/// its sender (a client whose write fails is dropped), `Closed` drops it.
pub fn dispatch(events: Receiver<Event>) {
    todo!("let mut sockets = BTreeMap::new(); for event in events {{ match event {{ ... }} }}")
}

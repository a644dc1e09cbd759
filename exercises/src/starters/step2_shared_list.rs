//! Step 2: broadcast the Node lesson's way, a shared list of sockets.
//!
//! Node: `connectedSockets.push(socket)`, then in `'data'`, write to every
//! socket in the array. In Rust the list is shared by every client thread,
//! so it sits behind a `Mutex`. Build it, then read the check
//! (`src/checks/step2.rs`): it shows what one client that stops reading
//! does to everybody else.
//!
//! Grade it: `cargo test --test grade step2`.

// The bodies below are `todo!()`, so parameters and imports look unused
// until you write them. These lints would only be noise while you work;
// delete this line when the step is done to get them back.
#![allow(unused_variables, unused_imports, unused_mut, dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

/// Every connected client: its number and a handle to write to it.
pub type Clients = Arc<Mutex<Vec<(u64, TcpStream)>>>;

/// Accepts clients forever. For each: write `WELCOME\n`, add it to the list
/// (both while holding the lock, so nothing is broadcast between the two),
/// and start a `client-<n>` thread running [`relay`].
pub fn serve(listener: TcpListener) {
    todo!(
        "let clients: Clients = Arc::default(); for each accepted stream: give it \
         a number, stream.try_clone() for the list, lock, write WELCOME, push, \
         unlock, spawn a named thread running relay(id, stream, Arc::clone(&clients))"
    )
}

/// Reads from one client until it is done, and sends every chunk to all
/// the others with [`broadcast`]. At the end, removes the client from the
/// list (Node: you would splice it out of `connectedSockets` in `'end'`).
pub fn relay(id: u64, mut stream: TcpStream, clients: Clients) {
    todo!("read in a loop until Ok(0) or an error; broadcast each chunk; then retain() the others")
}

/// Writes `bytes` to every client but `from`, holding the lock throughout,
/// with a plain blocking `write_all` (ignore its errors: a client that has
/// gone away is removed by its own thread).
pub fn broadcast(clients: &Clients, from: u64, bytes: &[u8]) {
    todo!("lock, then write_all to every socket whose id is not from")
}

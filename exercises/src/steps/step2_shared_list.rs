//! Step 2: broadcast the Node lesson's way, a shared list of sockets.
//!
//! Node: `connectedSockets.push(socket)`, then in `'data'`, write to every
//! socket in the array. In Rust the list is shared by every client thread,
//! so it sits behind a `Mutex`. This works, until one client stops reading:
//! its `write` blocks, with the lock held, and everybody waits (the step's
//! check shows it). Node hides the same problem differently: its `write`
//! never blocks, it queues the bytes in memory without limit.

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
    let clients: Clients = Arc::default();
    let mut next_id = 0;
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        next_id += 1;
        let id = next_id;
        let Ok(mut writer) = stream.try_clone() else {
            continue;
        };
        {
            let mut list = lock(&clients);
            if writer.write_all(b"WELCOME\n").is_err() {
                continue;
            }
            list.push((id, writer));
        }
        let clients = Arc::clone(&clients);
        let spawned = thread::Builder::new()
            .name(format!("client-{id}"))
            .spawn(move || relay(id, stream, clients));
        if let Err(e) = spawned {
            eprintln!("could not start a client thread: {e}");
        }
    }
}

/// Reads from one client until it is done, and sends every chunk to all
/// the others with [`broadcast`]. At the end, removes the client from the
/// list (Node: you would splice it out of `connectedSockets` in `'end'`).
pub fn relay(id: u64, mut stream: TcpStream, clients: Clients) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => broadcast(&clients, id, &buf[..n]),
        }
    }
    lock(&clients).retain(|(other, _)| *other != id);
}

/// Writes `bytes` to every client but `from`, holding the lock throughout.
/// A plain blocking `write_all`: if a client's buffers are full, this waits,
/// and so does every other thread that wants the lock. That is the flaw.
pub fn broadcast(clients: &Clients, from: u64, bytes: &[u8]) {
    let mut list = lock(clients);
    for (id, socket) in list.iter_mut() {
        if *id != from {
            // A client that has gone away is removed by its own thread.
            let _ = socket.write_all(bytes);
        }
    }
}

/// Takes the lock. If a thread panicked while holding it, the list is still
/// usable, so carry on instead of panicking too.
fn lock(clients: &Clients) -> MutexGuard<'_, Vec<(u64, TcpStream)>> {
    clients.lock().unwrap_or_else(PoisonError::into_inner)
}

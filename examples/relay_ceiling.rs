//! The speed of light for fan-out: a relay that does nothing but copy bytes.
//!
//! No framing, no parsing, no protocol: each chunk read from a connection
//! is written to every other connection, one `write_all` per recipient,
//! exactly as the Node lesson's relay does with `socket.write(chunk)`. It
//! cannot be a chat server (lines of two senders could interleave mid-line,
//! nobody is welcomed or named), so it is only good for one thing: with one
//! publisher, how fast *can* a server on this machine fan bytes out to N
//! sockets? `tcphub bench fanout --raw` measures it (`make compare` draws
//! it as the ceiling); every real server pays at least this much.
//!
//! Plain threads, like the hub: an acceptor, and one thread per connection
//! that reads and, holding the lock on the list of connections, writes the
//! chunk to all the others. Blocking writes: a client that stops reading
//! stops everyone (this is a yardstick, not a server to deploy).
//!
//!     cargo run --release --example relay_ceiling -- --port 0
//!
//! Takes the serve flags `make compare` passes (`--host`, `--port`,
//! `--max-clients`) and prints `listening on <addr>` like the others.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;

/// Largest chunk read at once (Node reads up to 64 KiB too).
const CHUNK: usize = 64 * 1024;

type Peers = Arc<Mutex<Vec<(u64, Arc<TcpStream>)>>>;

struct Flags {
    host: String,
    port: u16,
}

fn flags() -> Result<Flags, String> {
    let mut flags = Flags {
        host: "127.0.0.1".into(),
        port: 3000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let value = args
            .next()
            .ok_or(format!("a value is required for {name}"))?;
        match name.as_str() {
            "--host" => flags.host = value,
            "--port" => flags.port = value.parse().map_err(|e| format!("--port: {e}"))?,
            // Accepted for the same command line as the other servers; the
            // relay has no limits.
            "--max-clients" | "--max-line" | "--write-timeout-ms" => {}
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    Ok(flags)
}

fn main() -> ExitCode {
    let flags = match flags() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("relay_ceiling: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind((flags.host.as_str(), flags.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "relay_ceiling: cannot listen on {}:{}: {e}",
                flags.host, flags.port
            );
            return ExitCode::from(2);
        }
    };
    let Ok(addr) = listener.local_addr() else {
        return ExitCode::from(2);
    };
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    let peers: Peers = Arc::new(Mutex::new(Vec::new()));
    for (id, stream) in (0u64..).zip(listener.incoming()) {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let stream = Arc::new(stream);
        peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, stream.clone()));
        let peers = peers.clone();
        let spawned = thread::Builder::new()
            .name(format!("relay-{id}"))
            .stack_size(128 * 1024)
            .spawn(move || relay(id, &stream, &peers));
        if let Err(e) = spawned {
            eprintln!("relay_ceiling: cannot start a thread: {e}");
        }
    }
    ExitCode::SUCCESS
}

/// One connection: every chunk it sends goes to every other connection.
fn relay(id: u64, stream: &TcpStream, peers: &Peers) {
    let mut buffer = vec![0u8; CHUNK];
    let mut reader = stream;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut peers = peers.lock().unwrap_or_else(|e| e.into_inner());
        // A peer whose write fails is gone: drop it from the list.
        peers.retain(|(other, peer)| *other == id || (&**peer).write_all(&buffer[..n]).is_ok());
    }
    peers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(other, _)| *other != id);
}

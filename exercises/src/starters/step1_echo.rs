//! Step 1: an echo server, one thread per connection.
//!
//! Node: `net.createServer()`, `server.listen()`, `server.on('connection')`,
//! `socket.on('data', buf => socket.write(buf))`, `socket.on('end')`.
//! Here nothing calls you back: a thread waits in `accept()`, and each
//! connection gets its own thread that waits in `read()`.
//!
//! Grade it: `cargo test --test grade step1`.

// The bodies below are `todo!()`, so parameters and imports look unused
// until you write them. These lints would only be noise while you work;
// delete this line when the step is done to get them back.
#![allow(unused_variables, unused_imports, unused_mut, dead_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

/// Accepts connections forever and starts one thread per client (named
/// `client-<n>`), which runs [`echo`]. Node's `server.on('connection', ...)`
/// is this loop: `accept()` blocks until a client has connected.
pub fn serve(listener: TcpListener) {
    todo!(
        "loop over listener.incoming(); skip (do not stop on) a failed accept; \
         for each stream, thread::Builder::new().name(format!(\"client-{{n}}\")) \
         .spawn(move || echo(stream))"
    )
}

/// Writes back every byte the client sends, until the client is done.
/// `read()` returning `Ok(0)` is the end of the stream: the client closed or
/// shut down its sending side (Node's `'end'` event). Returning drops the
/// stream, which closes our side of the connection.
pub fn echo(mut stream: TcpStream) -> io::Result<()> {
    todo!(
        "loop: let n = stream.read(&mut buf)?; if n == 0 return Ok(()); \
         stream.write_all(&buf[..n])?"
    )
}

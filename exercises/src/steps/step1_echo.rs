//! Step 1: an echo server, one thread per connection.
//!
//! Node: `net.createServer()`, `server.listen()`, `server.on('connection')`,
//! `socket.on('data', buf => socket.write(buf))`, `socket.on('end')`.
//! Here nothing calls you back: a thread waits in `accept()`, and each
//! connection gets its own thread that waits in `read()`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

/// Accepts connections forever and starts one thread per client (named
/// `client-<n>`), which runs [`echo`]. Node's `server.on('connection', ...)`
/// is this loop: `accept()` blocks until a client has connected.
pub fn serve(listener: TcpListener) {
    for (n, conn) in listener.incoming().enumerate() {
        let stream = match conn {
            Ok(stream) => stream,
            // A failed accept (the client gave up, no file descriptors
            // left) is no reason to stop serving the others.
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let spawned = thread::Builder::new()
            .name(format!("client-{}", n + 1))
            .spawn(move || echo(stream));
        if let Err(e) = spawned {
            eprintln!("could not start a client thread: {e}");
        }
    }
}

/// Writes back every byte the client sends, until the client is done.
/// `read()` returning `Ok(0)` is the end of the stream: the client closed or
/// shut down its sending side (Node's `'end'` event). Returning drops the
/// stream, which closes our side of the connection.
pub fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

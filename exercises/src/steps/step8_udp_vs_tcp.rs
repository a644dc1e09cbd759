//! Step 8: TCP versus UDP, hands on.
//!
//! The same numbered messages go once over UDP and once over TCP, through a
//! relay in the middle that misbehaves like a bad network (seeded, so it
//! misbehaves the same way every time). What arrives tells the difference:
//! UDP keeps each message whole but loses and reorders some; TCP loses
//! nothing and keeps the order, but the reads do not match the writes.
//!
//! Node: `dgram.createSocket('udp4')` and `socket.send()` versus the `net`
//! module of the lesson; `'message'` events (one per datagram) versus
//! `'data'` events (any number of bytes).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use crate::shared::Rng;

/// How long a receiver waits for more before deciding it has everything.
pub const QUIET: Duration = Duration::from_millis(100);
/// The pause between two chunks the TCP relay sends (its "delay").
pub const PAUSE: Duration = Duration::from_millis(10);

/// Sends each message as one datagram through [`udp_relay`] and returns the
/// datagrams that reached the receiver, in arrival order.
pub fn run_udp(seed: u64, messages: &[String]) -> Vec<Vec<u8>> {
    let bind = || UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
    let (receiver, relay, sender) = (bind(), bind(), bind());
    let (Ok(to), Ok(via)) = (receiver.local_addr(), relay.local_addr()) else {
        return Vec::new();
    };
    let count = messages.len();
    let relay = thread::Builder::new()
        .name("udp-relay".to_string())
        .spawn(move || udp_relay(relay, to, seed, count));
    for m in messages {
        // UDP has no connection: each send names where it goes.
        if sender.send_to(m.as_bytes(), via).is_err() {
            break;
        }
    }
    if let Ok(relay) = relay {
        let _ = relay.join();
    }
    receive_datagrams(&receiver)
}

/// Receives `count` datagrams and forwards them to `to`, misbehaving: each
/// one, by the seeded dice (`rng.below(5)`), is dropped (0), held back and
/// sent after the next one (1, so the two swap), or forwarded after a pause
/// of 0 to 2 ms (anything else).
pub fn udp_relay(socket: UdpSocket, to: SocketAddr, seed: u64, count: usize) -> io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut held: Option<Vec<u8>> = None;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 2048];
    for _ in 0..count {
        let (n, _from) = socket.recv_from(&mut buf)?;
        let datagram = buf[..n].to_vec();
        match rng.below(5) {
            0 => {} // lost
            1 if held.is_none() => held = Some(datagram),
            _ => {
                thread::sleep(Duration::from_millis(rng.below(3)));
                socket.send_to(&datagram, to)?;
                if let Some(late) = held.take() {
                    socket.send_to(&late, to)?;
                }
            }
        }
    }
    if let Some(late) = held {
        socket.send_to(&late, to)?;
    }
    Ok(())
}

/// Every datagram waiting on `socket`, one entry each, until [`QUIET`]
/// passes with nothing new. Each `recv` returns exactly one datagram.
pub fn receive_datagrams(socket: &UdpSocket) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    if socket.set_read_timeout(Some(QUIET)).is_err() {
        return got;
    }
    while let Ok(n) = socket.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

/// Writes each message with its own `write()` through [`tcp_relay`], and
/// returns what each `read()` on the receiving side returned.
pub fn run_tcp(seed: u64, messages: &[String]) -> Vec<Vec<u8>> {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind a TCP listener on 127.0.0.1");
    let (receiver, relay) = (bind(), bind());
    let (Ok(to), Ok(via)) = (receiver.local_addr(), relay.local_addr()) else {
        return Vec::new();
    };
    let relay = thread::Builder::new()
        .name("tcp-relay".to_string())
        .spawn(move || tcp_relay(relay, to, seed));
    let messages = messages.to_vec();
    let sender = thread::Builder::new()
        .name("tcp-sender".to_string())
        .spawn(move || send_writes(via, &messages));
    let reads = match receiver.accept() {
        Ok((stream, _)) => receive_reads(stream),
        Err(_) => Vec::new(),
    };
    if let Ok(relay) = relay {
        let _ = relay.join();
    }
    if let Ok(sender) = sender {
        let _ = sender.join();
    }
    reads
}

/// Connects to `to` and writes each message with its own `write_all`, then
/// shuts down the sending side (the relay's `read()` returns 0).
pub fn send_writes(to: SocketAddr, messages: &[String]) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    for m in messages {
        stream.write_all(m.as_bytes())?;
    }
    stream.shutdown(Shutdown::Write)
}

/// Accepts one connection, reads everything from it (a long delay), then
/// forwards it to `to` in chunks of 1 to 24 bytes (sizes from the seeded
/// dice), pausing [`PAUSE`] between chunks. TCP's promise holds (every
/// byte, in order); only where the stream is cut changes.
pub fn tcp_relay(listener: TcpListener, to: SocketAddr, seed: u64) -> io::Result<()> {
    let (mut from, _) = listener.accept()?;
    from.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut all = Vec::new();
    from.read_to_end(&mut all)?;
    let mut out = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    out.set_nodelay(true)?;
    let mut rng = Rng::new(seed);
    let mut rest = &all[..];
    while !rest.is_empty() {
        let size = (1 + rng.below(24) as usize).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        out.write_all(chunk)?;
        rest = tail;
        thread::sleep(PAUSE);
    }
    out.shutdown(Shutdown::Write)
}

/// Reads until the end of the stream, one entry per `read()` that returned
/// bytes. Gives up (returning what it has) after 5 s of silence.
pub fn receive_reads(mut stream: TcpStream) -> Vec<Vec<u8>> {
    let mut reads = Vec::new();
    let mut buf = [0u8; 4096];
    if stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .is_err()
    {
        return reads;
    }
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        reads.push(buf[..n].to_vec());
    }
    reads
}

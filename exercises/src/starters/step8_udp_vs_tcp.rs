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
//!
//! Grade it: `cargo test --test grade step8`. See the story:
//! `cargo run --example udp_vs_tcp`.

// The bodies below are `todo!()`, so parameters and imports look unused
// until you write them. These lints would only be noise while you work;
// delete this line when the step is done to get them back.
#![allow(unused_variables, unused_imports, unused_mut, dead_code)]

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
/// datagrams that reached the receiver, in arrival order. Three UDP sockets
/// on `127.0.0.1:0` (sender, relay, receiver); the relay on a `udp-relay`
/// thread; send everything; join the relay; then [`receive_datagrams`].
pub fn run_udp(seed: u64, messages: &[String]) -> Vec<Vec<u8>> {
    todo!("UdpSocket::bind, send_to the relay's local_addr(), join, receive")
}

/// Receives `count` datagrams and forwards them to `to`, misbehaving: each
/// one, by the seeded dice (`rng.below(5)`), is dropped (0), held back and
/// sent after the next one (1, so the two swap), or forwarded after a pause
/// of 0 to 2 ms (anything else). Send one still held back at the end.
pub fn udp_relay(socket: UdpSocket, to: SocketAddr, seed: u64, count: usize) -> io::Result<()> {
    todo!("let mut rng = Rng::new(seed); recv_from, roll, send_to")
}

/// Every datagram waiting on `socket`, one entry each, until [`QUIET`]
/// passes with nothing new. Each `recv` returns exactly one datagram.
pub fn receive_datagrams(socket: &UdpSocket) -> Vec<Vec<u8>> {
    todo!("set_read_timeout(Some(QUIET)); recv until it fails")
}

/// Writes each message with its own `write()` through [`tcp_relay`], and
/// returns what each `read()` on the receiving side returned. Two listeners
/// (relay, receiver), a `tcp-relay` and a `tcp-sender` thread
/// ([`send_writes`]); accept on the receiver, then [`receive_reads`].
pub fn run_tcp(seed: u64, messages: &[String]) -> Vec<Vec<u8>> {
    todo!("TcpListener::bind twice, two named threads, accept, receive_reads, join")
}

/// Connects to `to` and writes each message with its own `write_all`, then
/// shuts down the sending side (the relay's `read()` returns 0).
pub fn send_writes(to: SocketAddr, messages: &[String]) -> io::Result<()> {
    todo!("connect_timeout, set_nodelay(true), write_all each, shutdown(Shutdown::Write)")
}

/// Accepts one connection, reads everything from it (a long delay), then
/// forwards it to `to` in chunks of 1 to 24 bytes (sizes from the seeded
/// dice), pausing [`PAUSE`] between chunks.
pub fn tcp_relay(listener: TcpListener, to: SocketAddr, seed: u64) -> io::Result<()> {
    todo!("accept, read_to_end, connect to `to`, write random-sized chunks, shutdown")
}

/// Reads until the end of the stream, one entry per `read()` that returned
/// bytes. Gives up (returning what it has) after 5 s of silence.
pub fn receive_reads(mut stream: TcpStream) -> Vec<Vec<u8>> {
    todo!("read in a loop; push buf[..n].to_vec(); stop at Ok(0) or an error")
}

//! The live view's server: the thread named `monitor` (`--monitor`).
//!
//! It speaks just enough HTTP/1.1 ([`crate::proto::http`]) to answer
//! `GET /stats` (the scoreboard as JSON) and `GET /` (a page that polls it).
//! One request per connection, then `Connection: close`.
//!
//! It must never hurt the hub, whatever its own clients do, so:
//!
//! - It only *reads* the scoreboard (atomics, and a lock only it and the
//!   dispatcher take briefly); it never sends into the hub's channel.
//! - When nobody is talking to it, it blocks in `accept()`. While some
//!   requests are in progress it serves at most [`MAX_CONNECTIONS`] at once
//!   with non-blocking sockets, sweeping them every few milliseconds; one
//!   more connection gets `503` at once.
//! - A request head must arrive within [`REQUEST_DEADLINE`] (or `408`), and
//!   be at most 16 KiB (or `414` / `431`); a response write may block for at
//!   most [`WRITE_TIMEOUT`]. A slow or hostile client is simply cut off.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::hub::score::{HubFacts, Scoreboard, Slot, State};
use crate::proto::admission::Admission;
use crate::proto::http::{self, Head, Route, Status};
use crate::support::timeouts::is_timeout;

/// The page `GET /` serves: self-contained, no external resources.
pub const PAGE: &str = include_str!("monitor_page.html");

/// Requests served at once; one more connection gets `503`.
pub const MAX_CONNECTIONS: usize = 8;
/// How long a client has to send its whole request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How long writing a response may block.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// After answering, how long to read (and drop) what the client still
/// sends, so that closing does not reset the connection under the answer.
const LINGER: Duration = Duration::from_millis(500);
/// How often connections in progress are looked at.
const SWEEP: Duration = Duration::from_millis(5);

/// What the monitor thread needs; built by [`crate::hub::Hub::start`].
pub struct Monitor {
    pub listener: TcpListener,
    pub score: Arc<Scoreboard>,
    /// The channel's length and capacity, read when `/stats` is asked.
    pub channel: ChannelGauge,
    pub admission: Arc<Admission>,
    pub stop: Arc<AtomicBool>,
    pub hub_addr: SocketAddr,
    pub max_clients: usize,
    pub write_timeout: Duration,
    /// This hub's name among linked hubs (`None` where there is none).
    pub hub_name: Option<String>,
    /// `--link-timeout-ms`, which the `links` of `/stats` are measured by.
    pub link_timeout: Duration,
}

/// Reads the hub's one channel: `(events queued, capacity)`. A closure, so
/// the threaded hub (a crossbeam channel) and the async twin (a tokio one)
/// both fit.
pub type ChannelGauge = Box<dyn Fn() -> (usize, usize) + Send>;

struct Conn {
    socket: TcpStream,
    buf: Vec<u8>,
    deadline: Instant,
    /// Set once answered: drop what comes until then, then close.
    lingering: bool,
}

impl Monitor {
    /// Serves until `stop` is set (and a connection wakes `accept()`).
    pub fn run(self) {
        let me = self.score.register_thread("monitor");
        let mut conns: Vec<Conn> = Vec::new();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if conns.is_empty() {
                // Nobody to serve: park in accept() like the acceptor does.
                me.enter(State::Accept);
                if self.listener.set_nonblocking(false).is_err() {
                    thread::sleep(SWEEP);
                }
                let accepted = self.listener.accept();
                if self.stop.load(Ordering::SeqCst) {
                    break;
                }
                me.enter(State::Serve);
                match accepted {
                    Ok((socket, peer)) => self.admit(&mut conns, socket, peer),
                    Err(e) => {
                        warn!("monitor: accept failed: {e}");
                        me.enter(State::BackOff);
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            } else {
                me.enter(State::Serve);
                self.accept_waiting(&mut conns);
            }
            conns.retain_mut(|c| self.step(c, &me));
            if !conns.is_empty() {
                thread::sleep(SWEEP);
            }
        }
        me.enter(State::Exited);
    }

    /// Takes every connection the kernel has queued, without waiting.
    fn accept_waiting(&self, conns: &mut Vec<Conn>) {
        if self.listener.set_nonblocking(true).is_err() {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((socket, peer)) => self.admit(conns, socket, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("monitor: accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&self, conns: &mut Vec<Conn>, socket: TcpStream, peer: SocketAddr) {
        debug!("monitor: connection from {peer}");
        let mut conn = Conn {
            socket,
            buf: Vec::new(),
            deadline: Instant::now() + REQUEST_DEADLINE,
            lingering: false,
        };
        if conn.socket.set_nonblocking(true).is_err() {
            return;
        }
        if conns.len() >= MAX_CONNECTIONS {
            debug!("monitor: {peer} refused: {MAX_CONNECTIONS} requests in progress");
            answer(&mut conn, &http::error_response(Status::ServiceUnavailable));
            // No lingering for these: the point is to spend nothing on them.
            return;
        }
        conns.push(conn);
    }

    /// Moves one connection on; false once it is done with.
    fn step(&self, conn: &mut Conn, me: &Slot) -> bool {
        let mut chunk = [0u8; 4096];
        let mut ended = false;
        loop {
            // Never hold more than one head's worth: past that it is 414/431.
            if !conn.lingering && conn.buf.len() > http::MAX_HEAD {
                break;
            }
            match conn.socket.read(&mut chunk) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) if conn.lingering => {
                    let _ = n;
                }
                Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => break,
                Err(_) => return false,
            }
        }
        let now = Instant::now();
        if conn.lingering {
            return !ended && now < conn.deadline;
        }
        let reply = match http::parse_head(&conn.buf) {
            Head::Incomplete if ended => return false,
            Head::Incomplete if now >= conn.deadline => {
                http::error_response(Status::RequestTimeout)
            }
            Head::Incomplete => return true,
            Head::Invalid(status) => http::error_response(status),
            Head::Request(request) => {
                let head_only = request.method == "HEAD";
                match http::route(&request) {
                    Route::Page => http::response(
                        Status::Ok,
                        "text/html; charset=utf-8",
                        PAGE.as_bytes(),
                        head_only,
                    ),
                    Route::Stats => {
                        let body = self.stats_json();
                        http::response(Status::Ok, "application/json", body.as_bytes(), head_only)
                    }
                    Route::Error(status) => http::error_response(status),
                }
            }
        };
        me.enter(State::Serve);
        if !answer(conn, &reply) || ended {
            return false;
        }
        conn.lingering = true;
        conn.deadline = now + LINGER;
        true
    }

    /// The scoreboard and the hub's numbers, as `/stats` JSON.
    pub fn stats_json(&self) -> String {
        let facts = HubFacts {
            addr: self.hub_addr,
            max_clients: self.max_clients,
            write_timeout: self.write_timeout,
            channel_len: (self.channel)().0,
            channel_capacity: (self.channel)().1,
            clients: self.admission.open(),
            name: self.hub_name.clone(),
            link_timeout: self.link_timeout,
        };
        self.score.snapshot().to_json(&facts)
    }
}

/// Writes a whole response (blocking, within [`WRITE_TIMEOUT`]) and shuts
/// our side down. False if the client could not take it.
fn answer(conn: &mut Conn, bytes: &[u8]) -> bool {
    let socket = &mut conn.socket;
    let sent = socket.set_nonblocking(false).is_ok()
        && socket.set_write_timeout(Some(WRITE_TIMEOUT)).is_ok()
        && socket.write_all(bytes).is_ok();
    let _ = socket.shutdown(Shutdown::Write);
    sent && socket.set_nonblocking(true).is_ok()
}

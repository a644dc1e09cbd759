//! `--monitor` inside the loop: the live view's `GET /stats` and `GET /`,
//! served by the same thread and the same `poll` as the clients.
//!
//! The threaded hub gives this a thread of its own (src/hub/monitor.rs);
//! here the monitor's listener and its connections are a few more entries
//! in the poll list. The HTTP is the hub's ([`tcphub::proto::http`]): one
//! request per connection, answered, then closed. Its bounds are the
//! hub's monitor's: [`MAX_CONNECTIONS`] at once, [`REQUEST_DEADLINE`] for
//! the head, [`http::MAX_HEAD`] bytes of it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tcphub::Config;
use tcphub::hub::monitor::{MAX_CONNECTIONS, PAGE, REQUEST_DEADLINE};
use tcphub::hub::score::{HubFacts, Scoreboard};
use tcphub::proto::admission::Admission;
use tcphub::proto::http::{self, Head, Route, Status};

/// The monitor's listener and the requests in progress.
pub struct Monitor {
    listener: TcpListener,
    addr: SocketAddr,
    conns: Vec<Conn>,
    facts: Facts,
}

/// What `/stats` says about the hub besides the scoreboard.
struct Facts {
    hub_addr: SocketAddr,
    max_clients: usize,
    write_timeout: Duration,
    link_timeout: Duration,
    admission: Arc<Admission>,
}

/// One HTTP connection: the head read so far, then the answer being sent.
struct Conn {
    socket: TcpStream,
    head: Vec<u8>,
    /// The response, once known, and how much of it is written.
    answer: Option<(Vec<u8>, usize)>,
    deadline: Instant,
}

impl Monitor {
    /// Binds `HOST:PORT` (or a port, on loopback), non-blocking.
    pub fn bind(
        spec: &str,
        hub_addr: SocketAddr,
        config: &Config,
        admission: Arc<Admission>,
    ) -> Result<Monitor, String> {
        let (host, port) = tcphub::hub::split_host_port(spec);
        let (listener, addr) = tcphub::hub::bind(host, port).map_err(|e| e.to_string())?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot set up the monitor's listener: {e}"))?;
        Ok(Monitor {
            listener,
            addr,
            conns: Vec::new(),
            facts: Facts {
                hub_addr,
                max_clients: config.max_clients,
                write_timeout: config.write_timeout,
                link_timeout: config.link_timeout,
                admission,
            },
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds the listener and each connection to the poll list (reading a
    /// head: `POLLIN`; sending the answer: `POLLOUT`); returns how long
    /// until the nearest request deadline.
    pub fn poll_list(&self, fds: &mut Vec<libc::pollfd>, now: Instant) -> Option<Duration> {
        fds.push(super::pollfd(self.listener.as_raw_fd(), libc::POLLIN));
        for conn in &self.conns {
            let events = if conn.answer.is_some() {
                libc::POLLOUT
            } else {
                libc::POLLIN
            };
            fds.push(super::pollfd(conn.socket.as_raw_fd(), events));
        }
        let nearest = self.conns.iter().map(|c| c.deadline).min()?;
        Some(nearest.saturating_duration_since(now))
    }

    /// One step for each of its entries (`ready` is its part of the poll
    /// list, in [`Monitor::poll_list`]'s order).
    pub fn on_ready(&mut self, ready: &[libc::pollfd], score: &Scoreboard) {
        let now = Instant::now();
        let facts = &self.facts;
        let stats = || facts.stats_json(score);
        let mut done = vec![false; self.conns.len()];
        for (i, conn) in self.conns.iter_mut().enumerate() {
            let revents = ready.get(i + 1).map_or(0, |p| p.revents);
            done[i] = !conn.step(revents != 0, now, &stats);
        }
        let mut done = done.into_iter();
        self.conns.retain(|_| !done.next().unwrap_or(true));
        if ready.first().is_some_and(|p| p.revents & libc::POLLIN != 0) {
            self.accept_waiting(now);
        }
    }

    /// Takes every connection queued, without waiting; one past
    /// [`MAX_CONNECTIONS`] gets `503` at once.
    fn accept_waiting(&mut self, now: Instant) {
        while let Ok((socket, _)) = self.listener.accept() {
            if socket.set_nonblocking(true).is_err() {
                continue;
            }
            let full = self.conns.len() >= MAX_CONNECTIONS;
            let answer = full.then(|| (http::error_response(Status::ServiceUnavailable), 0));
            let mut conn = Conn {
                socket,
                head: Vec::new(),
                answer,
                deadline: now + REQUEST_DEADLINE,
            };
            if full {
                // One try, no waiting: the point is to spend nothing on it.
                let _ = conn.send();
            } else {
                self.conns.push(conn);
            }
        }
    }
}

impl Facts {
    /// The scoreboard and the hub's numbers, as `/stats` JSON: the same
    /// shape as the threaded hub's. There is no channel (a line is routed
    /// as soon as it is read), so it is shown empty, of capacity 0.
    fn stats_json(&self, score: &Scoreboard) -> String {
        let facts = HubFacts {
            addr: self.hub_addr,
            max_clients: self.max_clients,
            write_timeout: self.write_timeout,
            channel_len: 0,
            channel_capacity: 0,
            clients: self.admission.open(),
            name: None,
            link_timeout: self.link_timeout,
        };
        score.snapshot().to_json(&facts)
    }
}

impl Conn {
    /// Moves the request on; false once the connection is done with.
    fn step(&mut self, ready: bool, now: Instant, stats: &dyn Fn() -> String) -> bool {
        if self.answer.is_none() {
            if ready && !self.read_head() {
                return false;
            }
            self.answer = self.answer_for(now, stats);
        }
        if self.answer.is_none() {
            return true;
        }
        // Past the deadline with the answer still not taken: give up.
        now < self.deadline + REQUEST_DEADLINE && self.send()
    }

    /// Reads what is there (non-blocking: until WouldBlock). False if the
    /// peer closed or failed before its head was complete.
    fn read_head(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        while self.head.len() <= http::MAX_HEAD {
            match self.socket.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => self.head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        true
    }

    /// The response, once the head says what it is (or the deadline passed).
    fn answer_for(&self, now: Instant, stats: &dyn Fn() -> String) -> Option<(Vec<u8>, usize)> {
        let bytes = match http::parse_head(&self.head) {
            Head::Incomplete if now >= self.deadline => {
                http::error_response(Status::RequestTimeout)
            }
            Head::Incomplete => return None,
            Head::Invalid(status) => http::error_response(status),
            Head::Request(request) => {
                let head_only = request.method == "HEAD";
                match http::route(&request) {
                    Route::Page => {
                        let html = "text/html; charset=utf-8";
                        http::response(Status::Ok, html, PAGE.as_bytes(), head_only)
                    }
                    Route::Stats => {
                        let body = stats();
                        http::response(Status::Ok, "application/json", body.as_bytes(), head_only)
                    }
                    Route::Error(status) => http::error_response(status),
                }
            }
        };
        Some((bytes, 0))
    }

    /// Writes what the send buffer takes now; true while there is more.
    /// Once all is written, shuts our side down (the end of the answer).
    fn send(&mut self) -> bool {
        let Some((bytes, written)) = &mut self.answer else {
            return false;
        };
        while *written < bytes.len() {
            match self.socket.write(&bytes[*written..]) {
                Ok(0) => return false,
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        let _ = self.socket.shutdown(Shutdown::Write);
        false
    }
}

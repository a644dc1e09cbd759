//! Every client of the loop, and how bytes reach them: the twin's
//! [`Outlet`].
//!
//! The write side is the threaded hub's [`Outbox`], unchanged: it hands
//! the kernel what it takes *now* (the socket is non-blocking, so a full
//! send buffer means a short write, never a wait) and keeps the rest, up to
//! `--max-pending` bytes. The difference is who says when to try again:
//! the hub's dispatcher retries every few milliseconds; here the socket is
//! in the poll list with `POLLOUT`, and `poll` wakes the loop when its send
//! buffer has room ([`Clients::drain`]).

use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;

use tcphub::Config;
use tcphub::hub::events::PerIp;
use tcphub::hub::outbox::Outbox;
use tcphub::hub::score::{Counters, Scoreboard, Slot, State};
use tcphub::proto::framing::LineFramer;
use tcphub::proto::id_map::{IdMap, IdSet};
use tcphub::proto::pending_limit::PendingLimits;
use tcphub::proto::router::{ClientId, Outlet};

/// One admitted client.
pub struct Client {
    /// Its input, while the loop still reads it (`None` after `/quit`, end
    /// of stream, or a timeout: the router is done with what it sends).
    pub reading: Option<Reading>,
    /// Its socket, and the bytes the kernel has not taken yet.
    pub outbox: Outbox,
    /// Its row in the live view.
    pub slot: Arc<Slot>,
}

/// What the loop keeps about a client's input between two reads: in the
/// threaded hub, the locals of its reader thread.
pub struct Reading {
    pub framer: LineFramer,
    /// When the last bytes arrived (or it connected): the idle timeout.
    pub last_read: Instant,
    /// When the unfinished line in the framer began: the line timeout.
    line_since: Option<Instant>,
}

impl Reading {
    pub fn new(framer: LineFramer) -> Self {
        Reading {
            framer,
            last_read: Instant::now(),
            line_since: None,
        }
    }

    /// After the framer gave out every whole line of a read: a line is in
    /// progress since the read that brought its first bytes, or none is.
    pub fn note_line_progress(&mut self) {
        self.line_since = match self.line_since {
            _ if !self.framer.in_line() => None,
            None => Some(self.last_read),
            since => since,
        };
    }

    /// How long ago the unfinished line began (if one is), and how long
    /// ago the last bytes came: what [`tcphub::proto::quiet::Quiet`] asks.
    pub fn ages(&self, now: Instant) -> (Option<Duration>, Duration) {
        let line = self.line_since.map(|t| now.saturating_duration_since(t));
        (line, now.saturating_duration_since(self.last_read))
    }
}

/// Every client, keyed by id, with the limits of its write side.
pub struct Clients {
    pub open: IdMap<Client>,
    /// Clients with bytes pending: the only ones [`Outlet::overdue`] looks at.
    behind: IdSet,
    /// Clients whose socket failed while draining, to be cut off.
    failed: Vec<(ClientId, String)>,
    pub write_timeout: Duration,
    /// `--max-pending`, `--soft-pending`, `--soft-pending-ms`, as the hub.
    limits: PendingLimits,
    /// The clock the soft limit is counted on (`now_ms` is time since it).
    epoch: Instant,
    pub per_ip: Arc<PerIp>,
    score: Arc<Scoreboard>,
    /// Lines in the share about to be delivered (for the live view).
    share_lines: usize,
}

impl Clients {
    pub fn new(config: &Config, score: Arc<Scoreboard>, per_ip: Arc<PerIp>) -> Self {
        Clients {
            open: IdMap::default(),
            behind: IdSet::default(),
            failed: Vec::new(),
            write_timeout: config.write_timeout,
            limits: config.pending_limits(),
            epoch: Instant::now(),
            per_ip,
            score,
            share_lines: 0,
        }
    }

    /// `poll` said `id`'s send buffer has room (or its socket failed):
    /// hand the kernel what is pending. A client the router was done with
    /// is closed once everything is written.
    pub fn drain(&mut self, id: ClientId) {
        let Some(client) = self.open.get_mut(&id) else {
            return;
        };
        let before = client.outbox.written();
        let drained = client.outbox.drain();
        if let Some(c) = client.slot.client() {
            c.wrote_bytes((client.outbox.written() - before) as usize);
            c.set_pending(client.outbox.pending());
        }
        match drained {
            Ok(false) => {}
            Ok(true) if client.outbox.closing => self.forget(id),
            Ok(true) => {
                self.behind.remove(&id);
            }
            Err(why) => {
                Counters::add(&self.score.counters.write_errors);
                client.outbox.discard();
                if client.outbox.closing {
                    self.forget(id);
                } else {
                    self.failed.push((id, why));
                }
            }
        }
    }

    /// Closes `id`'s socket and forgets it (the router already has).
    fn forget(&mut self, id: ClientId) {
        self.behind.remove(&id);
        if let Some(client) = self.open.remove(&id) {
            debug!("closing {id}");
            client.slot.enter(State::Exited);
            let _ = client.outbox.socket.shutdown(Shutdown::Both);
        }
    }
}

impl Outlet for Clients {
    /// What the kernel takes now goes now; the rest waits in the outbox
    /// (and the socket gets `POLLOUT` in the next poll list).
    fn deliver(&mut self, id: ClientId, chunks: &mut [std::io::IoSlice<'_>]) -> Result<(), String> {
        let Some(client) = self.open.get_mut(&id) else {
            return Ok(());
        };
        let before = client.outbox.written();
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let result = client.outbox.deliver(chunks, &self.limits, now_ms);
        if let Some(c) = client.slot.client() {
            c.wrote_bytes((client.outbox.written() - before) as usize);
            c.set_pending(client.outbox.pending());
            if result.is_ok() {
                c.wrote_lines(self.share_lines);
            }
        }
        if client.outbox.pending() > 0 {
            self.behind.insert(id);
        }
        if result.is_err() {
            Counters::add(&self.score.counters.cut_off);
        }
        result
    }

    fn share_lines(&mut self, _id: ClientId, lines: usize) {
        self.share_lines = lines;
    }

    /// The router is done with `id`: stop reading it, free its place per
    /// address, and close it once its last lines (`BYE`) are written.
    fn close(&mut self, id: ClientId) {
        let Some(client) = self.open.get_mut(&id) else {
            return;
        };
        client.reading = None;
        self.per_ip.release(client.outbox.peer.ip());
        if let Some(c) = client.slot.client() {
            c.set_pending(client.outbox.pending());
            c.publish("", 0, false);
        }
        if client.outbox.pending() > 0 {
            client.outbox.closing = true;
        } else {
            self.forget(id);
        }
    }

    /// Clients whose oldest pending bytes waited past the write timeout,
    /// or whose socket failed while draining.
    fn overdue(&mut self) -> Vec<(ClientId, String)> {
        let mut cut = std::mem::take(&mut self.failed);
        if self.behind.is_empty() {
            return cut;
        }
        let now = Instant::now();
        let mut late = Vec::new();
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        for &id in &self.behind {
            let Some(client) = self.open.get_mut(&id) else {
                continue;
            };
            let late_or_over = match client.outbox.overdue(now, self.write_timeout) {
                Some(why) => Some(why),
                None => client.outbox.over_limit(&self.limits, now_ms),
            };
            if let Some(why) = late_or_over {
                late.push((id, why, client.outbox.closing));
            }
        }
        for (id, why, closing) in late {
            Counters::add(&self.score.counters.cut_off);
            if let Some(client) = self.open.get_mut(&id) {
                client.outbox.discard();
            }
            self.behind.remove(&id);
            if closing {
                self.forget(id);
            } else {
                cut.push((id, why));
            }
        }
        cut
    }
}

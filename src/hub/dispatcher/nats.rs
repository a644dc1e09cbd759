//! The dispatcher's side of `--nats`: what it does with the `nats` thread's
//! events, and how it writes to the NATS socket.
//!
//! The NATS connection is one more link for the router (its neighbour is
//! called `nats`, and every other hub of the room is behind it); the
//! IO-free [`NatsBridge`] translates between the link lines the router
//! queues and the NATS operations on the wire. What is here is only the
//! plumbing: registering the socket, feeding the bridge, and writing its
//! bytes through the link's outbox (non-blocking, `--max-pending`,
//! `--nats-timeout-ms`), like every other write of the dispatcher.

use std::io::IoSlice;
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::{Dispatcher, Sockets};
use crate::hub::events::NatsEvent;
use crate::proto::ids::ClientId;
use crate::proto::link_line::LinkLine;
use crate::proto::nats_bridge::NatsBridge;
use crate::proto::nats_subjects::FOREIGN_HUB;

/// The hub's NATS connection while it is up.
pub(super) struct NatsLink {
    pub(super) id: ClientId,
    pub(super) bridge: NatsBridge,
}

impl Dispatcher {
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// One event from the `nats` thread.
    pub(super) fn apply_nats(&mut self, event: NatsEvent) {
        match event {
            NatsEvent::Up { id, socket, info } => {
                let Some(settings) = self.nats.clone() else {
                    return;
                };
                self.sockets.open_link(id, socket);
                self.sockets.watch_link(id);
                let mut bridge = NatsBridge::new(settings, info.max_payload, self.now_ms());
                let mut out = Vec::new();
                let wants = bridge.start(&mut out);
                self.sockets.nats = Some(NatsLink { id, bridge });
                // To the router, NATS is a link we dialled whose far end
                // answered as the hub `nats` (where foreign publishers live).
                self.router.link_dialled(id);
                let _ = self.router.link_hello(id, FOREIGN_HUB, false);
                self.router.on_link_line(id, &wants);
                self.write_nats(&out);
                if self.nats_lost {
                    let text = format!("NATS is back ({}): remote users rejoin", info.server_name);
                    self.router.notice_all(&text);
                    self.nats_lost = false;
                }
            }
            NatsEvent::Ops { id, ops } => {
                let now = self.now_ms();
                let Some(nats) = self.sockets.nats.as_mut().filter(|n| n.id == id) else {
                    return;
                };
                let (mut out, mut lines) = (Vec::new(), Vec::new());
                for op in ops {
                    nats.bridge.from_nats(op, now, &mut out, &mut lines);
                }
                for line in &lines {
                    if let LinkLine::Split { hub } = line {
                        self.router
                            .notice_all(&format!("hub {hub} stopped: its users leave"));
                    }
                    self.router.on_link_line(id, line);
                }
                self.write_nats(&out);
            }
            NatsEvent::Down { id, why } => {
                if self.sockets.nats.as_ref().is_some_and(|n| n.id == id) {
                    self.sockets.nats = None;
                }
                self.nats_down(id, &why);
            }
        }
    }

    /// Heartbeats and presence timeouts; how long until the next is due.
    pub(super) fn nats_tick(&mut self) -> Option<Duration> {
        let now = self.now_ms();
        let nats = self.sockets.nats.as_mut()?;
        let id = nats.id;
        let (mut out, mut lines) = (Vec::new(), Vec::new());
        let due = nats.bridge.tick(now, &mut out, &mut lines);
        let silent_ms = self.nats.as_ref().map_or(0, |s| s.timeout_ms);
        for line in &lines {
            if let LinkLine::Split { hub } = line {
                let text = format!("hub {hub} silent on NATS for {silent_ms} ms: its users leave");
                self.router.notice_all(&text);
            }
            self.router.on_link_line(id, line);
        }
        self.write_nats(&out);
        Some(Duration::from_millis(due))
    }

    /// On shutdown: `BYE` on the presence subject, so the other hubs'
    /// clients see our users leave now rather than a timeout later. Waits at
    /// most 200 ms for the kernel to take it.
    pub(super) fn nats_bye(&mut self) {
        let Some(nats) = self.sockets.nats.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        nats.bridge.bye(&mut out);
        let id = nats.id;
        if self.sockets.write_nats(&out).is_err() {
            return;
        }
        let until = Instant::now() + Duration::from_millis(200);
        while let Some(outbox) = self.sockets.open.get_mut(&id) {
            match outbox.drain() {
                Ok(false) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => break,
            }
        }
    }

    /// The NATS connection `id` is gone: clients hear why (a `NOTICE`),
    /// then see every remote user `LEAVE`, as in a netsplit. Once, however
    /// many ways the loss is noticed (a failed write, then end of stream).
    fn nats_down(&mut self, id: ClientId, why: &str) {
        if !self.nats_lost {
            let text = format!("lost NATS ({why}): remote users leave until it is back");
            self.router.notice_all(&text);
            self.nats_lost = true;
        }
        self.router.link_down(id, why);
    }

    /// Writes bytes the bridge made outside a flush; a failure (the server
    /// cannot take them within the limits) takes the link down.
    fn write_nats(&mut self, bytes: &[u8]) {
        if let Err(why) = self.sockets.write_nats(bytes)
            && let Some(id) = self.sockets.nats.as_ref().map(|n| n.id)
        {
            warn!("cutting the NATS connection: {why}");
            self.nats_down(id, &why);
        }
    }
}

impl Sockets {
    /// True if `id` is the NATS connection.
    pub(super) fn is_nats(&self, id: ClientId) -> bool {
        self.nats.as_ref().is_some_and(|n| n.id == id)
    }

    /// The router's share for the NATS link: link lines, one per `\n`,
    /// each translated by the bridge, then written as NATS bytes.
    pub(super) fn deliver_nats(&mut self, chunks: &[IoSlice<'_>]) -> Result<(), String> {
        let Some(nats) = self.nats.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        for chunk in chunks {
            for line in chunk.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                // The router wrote these lines itself: they always parse.
                match std::str::from_utf8(line).map(LinkLine::parse) {
                    Ok(Ok(parsed)) => nats.bridge.from_router(&parsed, &mut out),
                    _ => debug!("not a link line for NATS: {line:?}"),
                }
            }
        }
        self.write_nats(&out)
    }

    /// Hands NATS bytes to the kernel, keeping what it does not take yet
    /// (retried like any pending bytes; cut past the timeout).
    fn write_nats(&mut self, bytes: &[u8]) -> Result<(), String> {
        let Some(id) = self.nats.as_ref().map(|n| n.id) else {
            return Ok(());
        };
        if bytes.is_empty() {
            return Ok(());
        }
        let Some(outbox) = self.open.get_mut(&id) else {
            return Ok(());
        };
        let before = outbox.written();
        let now_ms = super::millis_since(self.epoch, Instant::now());
        let result = outbox.deliver(&[IoSlice::new(bytes)], &self.limits, now_ms);
        if let Some(c) = self.slots.get(&id).and_then(|s| s.client()) {
            c.wrote_bytes((outbox.written() - before) as usize);
            c.set_pending(outbox.pending());
        }
        if outbox.pending() > 0 {
            self.behind.insert(id);
        }
        result
    }
}

//! The dispatcher: the one thread that owns the routing state and writes to
//! every socket.
//!
//! It blocks on the hub's channel until something happens (a connection, a
//! parsed line, a hang-up), then takes everything else already queued
//! without waiting, lets the [`Router`] decide who gets what, and writes each
//! recipient's share of the batch with a single `writev`. Because only this
//! thread touches the routing state, it needs no lock; because only this
//! thread writes, every client sees lines in one global order.
//!
//! The price of a single writer: a `write` to a client that stopped reading
//! blocks once its kernel buffer is full, and while it blocks nobody else
//! gets anything. So every socket has a write timeout (`--write-timeout-ms`),
//! and a client that cannot take its lines within it is cut off.

use std::io::{IoSlice, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{Level, debug, info, log_enabled, warn};

use crate::hub::Config;
use crate::hub::batch_gate::BatchGate;
use crate::hub::budget::{Intake, Quota};
use crate::hub::events::{Event, LinkEvent, PerIp};
use crate::hub::linker::LinkerMsg;
use crate::hub::outbox::{Outbox, write_all_within};
use crate::hub::recorder::{self, RECORDED_NOTICE, Recorder};
use crate::hub::score::{Counters, INTEREST_SHOWN, Scoreboard, Slot, State};
use crate::proto::admission::Admission;
use crate::proto::framing::Inbound;
use crate::proto::id_map::{IdMap, IdSet};
use crate::proto::ids::is_link;
use crate::proto::link_line::LinkLine;
use crate::proto::nats_bridge::BridgeSettings;
use crate::proto::pending_limit::PendingLimits;
use crate::proto::router::{ClientId, Outlet, Router};
use crate::proto::server_line::server_full_line;
use crate::support::timeouts::is_timeout;

mod nats;

/// While some client has bytes pending, the dispatcher wakes at least this
/// often to hand them to the kernel, even if no event arrives.
pub const RETRY_EVERY: Duration = Duration::from_millis(5);

/// A batch of fewer lines than this, written while more kept arriving, is
/// followed by a linger (`--linger-us`). At 100,000 lines/s the batches
/// are ~84 lines already, and lingering after them saved little CPU (69
/// to 64 ns per delivery) for a p99 that went from ~5 ms to ~20 ms in
/// half the runs, so the hub lingers only after the smallest batches.
pub const LINGER_BELOW: usize = 64;

/// The dispatcher's state: the router (who gets what) and the write halves
/// of all sockets (how to reach them).
pub struct Dispatcher {
    events: Receiver<Event>,
    router: Router,
    sockets: Sockets,
    /// The clock heartbeats are counted on (milliseconds since the start).
    clock: Instant,
    /// How long until a link is due a heartbeat (`None`: no link up).
    heartbeat_in: Option<Duration>,
    /// How many other hubs are reachable, for [`crate::hub::Hub`] to read.
    reachable: Arc<AtomicUsize>,
    /// With `--nats`: what each NATS connection's bridge is made with.
    nats: Option<BridgeSettings>,
    /// True from losing the NATS connection until the next one is up, so
    /// clients are told once that it went, and once that it is back.
    nats_lost: bool,
    /// Told when a batch begins and ends, so readers that hold lines meanwhile
    /// hand them over once per batch (src/hub/batch_gate.rs).
    gate: Arc<BatchGate>,
    /// `--linger-us`: see [`Dispatcher::linger`].
    linger: Duration,
    /// Client lines applied in the batch under way.
    batch_lines: usize,
}

/// Every admitted client's socket, as the dispatcher writes to it: the
/// threaded hub's [`Outlet`].
struct Sockets {
    open: IdMap<Outbox>,
    /// Clients with bytes pending (or closing once drained).
    behind: IdSet,
    /// Clients whose socket failed while retrying, for [`Outlet::overdue`].
    failed: Vec<(ClientId, String)>,
    /// When [`Sockets::retry`] and [`Outlet::overdue`] last went round
    /// everyone behind.
    last_retry: Instant,
    last_overdue: Instant,
    /// Each client's share of the channel.
    quotas: IdMap<Arc<Quota>>,
    intake: Arc<Intake>,
    per_ip: Arc<PerIp>,
    write_timeout: Duration,
    /// `--max-pending`, `--soft-pending`, `--soft-pending-ms`.
    limits: PendingLimits,
    /// The clock the soft limit is counted on: `now_ms` is time since this.
    epoch: Instant,
    blocking_writes: bool,
    /// The scoreboard (src/hub/score.rs): this thread's slot, and each
    /// client's, whose out-counters only this thread writes.
    score: Arc<Scoreboard>,
    me: Arc<Slot>,
    slots: IdMap<Arc<Slot>>,
    /// Lines in the share about to be delivered (see `share_lines`).
    share_lines: usize,
    /// `--link-timeout-ms`: how long a link's bytes may wait to be taken.
    link_timeout: Duration,
    /// Links we dialled: which `--link` each is, and since when, so the
    /// linker hears when one is gone.
    dialled: IdMap<(usize, Instant)>,
    linker: Option<Sender<LinkerMsg>>,
    /// `--record FILE`: the recording, fed from here so its order is the
    /// one clients see (src/hub/recorder.rs).
    recorder: Option<Recorder>,
    /// The NATS connection, while it is up (`--nats`, [`nats`]).
    nats: Option<nats::NatsLink>,
}

impl Dispatcher {
    pub fn new(
        events: Receiver<Event>,
        admission: Arc<Admission>,
        intake: Arc<Intake>,
        per_ip: Arc<PerIp>,
        config: &Config,
        score: Arc<Scoreboard>,
    ) -> Self {
        let me = score.register_thread("dispatcher");
        Dispatcher {
            events,
            router: Router::new(admission).with_max_subs(config.max_subs),
            sockets: Sockets {
                open: IdMap::default(),
                behind: IdSet::default(),
                failed: Vec::new(),
                last_retry: Instant::now(),
                last_overdue: Instant::now(),
                quotas: IdMap::default(),
                intake,
                per_ip,
                write_timeout: config.write_timeout,
                limits: config.pending_limits(),
                epoch: Instant::now(),
                blocking_writes: config.blocking_writes,
                score,
                me,
                slots: IdMap::default(),
                share_lines: 0,
                link_timeout: Duration::from_millis(5000),
                dialled: IdMap::default(),
                linker: None,
                recorder: None,
                nats: None,
            },
            clock: Instant::now(),
            heartbeat_in: None,
            reachable: Arc::new(AtomicUsize::new(0)),
            nats: None,
            nats_lost: false,
            gate: Arc::new(BatchGate::default()),
            linger: config.linger,
            batch_lines: 0,
        }
    }

    /// The gate the readers wait at (the hub's; a lone dispatcher in a
    /// test makes its own).
    pub fn with_gate(mut self, gate: Arc<BatchGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Sets this hub up for links: its name and key, the link timeout, and
    /// the linker to tell when a dialled link is gone.
    pub fn linking(
        mut self,
        name: &str,
        key: Option<&str>,
        link_timeout: Duration,
        linker: Option<Sender<LinkerMsg>>,
    ) -> Self {
        let ms = link_timeout.as_millis().min(u64::MAX as u128) as u64;
        self.router.set_identity(name, key, ms);
        self.sockets.link_timeout = link_timeout;
        self.sockets.linker = linker;
        self
    }

    /// Records the session (`--record`), if `recorder` is given.
    pub fn recording(mut self, recorder: Option<Recorder>) -> Self {
        self.sockets.recorder = recorder;
        self
    }

    /// Sets this hub up for `--nats`: the NATS connection is a link whose
    /// lines the bridge translates (src/hub/dispatcher/nats.rs).
    pub fn with_nats(mut self, settings: Option<BridgeSettings>) -> Self {
        self.nats = settings;
        self
    }

    /// The count of reachable hubs this dispatcher keeps up to date.
    pub fn reachable(&self) -> Arc<AtomicUsize> {
        self.reachable.clone()
    }

    /// Waits for the next event: for ever when nothing else is due; while
    /// someone has bytes pending, at most [`RETRY_EVERY`]; with links up, at
    /// most until a link is due a heartbeat. `Timeout` when it waited out.
    fn next_event(&self) -> Result<Event, RecvTimeoutError> {
        let retry = (!self.sockets.behind.is_empty()).then_some(RETRY_EVERY);
        let wait = match (retry, self.heartbeat_in) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match wait {
            None => {
                debug!("blocking in recv() on the channel");
                self.events
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected)
            }
            Some(wait) => self.events.recv_timeout(wait),
        }
    }

    /// Queues a `PING` for every link written nothing for a third of the
    /// link timeout, and notes when the next one is due.
    fn heartbeats(&mut self) {
        let now_ms = self.clock.elapsed().as_millis() as u64;
        self.heartbeat_in = self.router.link_tick(now_ms).map(Duration::from_millis);
        if let Some(nats) = self.nats_tick() {
            self.heartbeat_in = Some(self.heartbeat_in.map_or(nats, |h| h.min(nats)));
        }
        let reachable = self.router.reachable_count();
        self.reachable.store(reachable, Ordering::Relaxed);
    }

    /// The dispatcher thread's whole life: wait, route a batch, write it.
    pub fn run(mut self) {
        loop {
            // The one place this thread waits for work. While someone has
            // bytes pending, it waits only a little, to retry them.
            self.sockets.me.enter(State::Recv);
            let first = self.next_event();
            self.sockets.me.enter(State::Route);
            let mut stop = false;
            match first {
                Ok(first) => {
                    self.gate.begin();
                    stop = !self.apply(first);
                    let mut taken = 1;
                    // Take whatever else is already queued, without waiting,
                    // so many lines for the same socket leave in one write.
                    while !stop && self.router.batch_has_room(taken) {
                        let Ok(event) = self.events.try_recv() else {
                            break;
                        };
                        stop = !self.apply(event);
                        taken += 1;
                    }
                    debug!("batch of {taken} events");
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.heartbeats();
            // Older bytes first: what is pending goes before the new batch.
            self.sockets.retry();
            self.router.flush(&mut self.sockets);
            self.record_batch_end();
            self.linger();
            // Readers that held their lines while this batch was written
            // hand them over now, for the next.
            self.gate.end();
            if stop {
                break;
            }
        }
        self.gate.close();
        if let Some(recorder) = &mut self.sockets.recorder {
            recorder.finish();
        }
        self.nats_bye();
        info!(
            "shutting down: closing {} connections",
            self.sockets.open.len()
        );
        for (_, outbox) in self.sockets.open.drain() {
            let _ = outbox.socket.shutdown(Shutdown::Both);
        }
        // Readers waiting for room in the channel must not wait for ever.
        for (_, quota) in self.sockets.quotas.drain() {
            quota.close();
        }
        self.sockets.me.enter(State::Exited);
    }

    /// Applies one event to the routing state. Returns false on shutdown.
    fn apply(&mut self, event: Event) -> bool {
        match event {
            Event::Connected {
                id,
                socket,
                peer,
                quota,
            } => {
                self.sockets.open.insert(id, Outbox::new(socket, peer));
                self.sockets.quotas.insert(id, quota);
                let nick = self.router.connect(id);
                if let Some(slot) = self.sockets.score.client(id) {
                    if let Some(c) = slot.client() {
                        c.publish(nick, 0, true);
                    }
                    self.sockets.slots.insert(id, slot);
                }
                info!(
                    "{peer} connected as {nick} ({} clients)",
                    self.sockets.open.len()
                );
                self.record_connect(id, peer);
            }
            Event::Full { socket, peer } => {
                warn!("{peer} refused: server full");
                Counters::add(&self.sockets.score.counters.refused_full);
                self.sockets.refuse(socket);
            }
            Event::Lines { id, lines, bytes } => self.apply_lines(id, lines, bytes),
            Event::Closed { id, why } => {
                if let (Some(recorder), Some(_)) =
                    (&mut self.sockets.recorder, self.router.nick(id))
                {
                    recorder.peer_closed(id, &why);
                }
                self.router.disconnect(id, &why);
            }
            Event::Link(event) => self.apply_link(event),
            Event::Nats(event) => self.apply_nats(*event),
            Event::Shutdown => return false,
        }
        true
    }

    /// After a small batch written while lines kept arriving (readers hold
    /// some at the gate): waits `--linger-us` before taking the next, so it
    /// holds more lines. A batch costs one `writev` per recipient however
    /// many lines it has, so at 50,000 lines/s to 100 subscribers the hub
    /// made 3,600 batches in 2.5 s (35 lines each) where a relay that is
    /// busy writing while lines pile up made 2,700 (46 lines a read).
    /// Measured, 3 runs each (`tcphub bench fanout --rate 50000`, AMD EPYC,
    /// 2 cores): 142-170 ns of CPU per delivery without lingering, 124-128
    /// ns with 200 us; p99 latency 1.6-19 ms without, 2.6-3.5 ms with.
    /// A lone line never waits: with nobody at the gate there is no linger.
    fn linger(&mut self) {
        let lines = std::mem::take(&mut self.batch_lines);
        if self.linger.is_zero() || lines >= LINGER_BELOW || !self.gate.waiting() {
            return;
        }
        self.sockets.me.enter(State::Linger);
        thread::sleep(self.linger);
    }

    /// One read's lines from client `id`, in order, then their room in the
    /// channel (`bytes`) given back in one go.
    fn apply_lines(&mut self, id: ClientId, lines: Vec<Inbound>, bytes: usize) {
        self.batch_lines += lines.len();
        for line in &lines {
            debug!("{id}: {line:?}");
            self.record_line(id, line);
            self.router.on_line(id, line);
            self.sockets.publish(&self.router, id, line);
        }
        // Their room in the channel is free again: the reader may go on.
        let quota = self.sockets.quotas.get(&id).map(Arc::as_ref);
        self.sockets.intake.give_back(quota, lines.len(), bytes);
    }

    /// `--record`: a client connected; it is told it is recorded.
    fn record_connect(&mut self, id: ClientId, peer: SocketAddr) {
        let Some(recorder) = &mut self.sockets.recorder else {
            return;
        };
        if let Some(nick) = self.router.nick(id) {
            recorder.connected(id, nick, &peer.to_string());
            self.router.notice(id, RECORDED_NOTICE);
        }
    }

    /// `--record`: a client's line, with its nick before the line applies.
    fn record_line(&mut self, id: ClientId, line: &Inbound) {
        if let (Some(recorder), Some(nick)) = (&mut self.sockets.recorder, self.router.nick(id)) {
            recorder.sent(id, nick, line);
        }
    }

    /// `--record`: the batch's story goes to the recorder thread; if the
    /// recording stopped just now, every client is told at once.
    fn record_batch_end(&mut self) {
        let Some(recorder) = &mut self.sockets.recorder else {
            return;
        };
        if let Some(notice) = recorder.end_batch() {
            self.router.notice_all(&notice);
            self.router.flush(&mut self.sockets);
        }
    }

    /// A link event: the routing is the router's ([`crate::proto::network`]);
    /// this registers and forgets the sockets.
    fn apply_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Dialled { id, socket, target } => {
                self.sockets.open_link(id, socket);
                self.sockets.dialled.insert(id, (target, Instant::now()));
                self.router.link_dialled(id);
            }
            LinkEvent::Answered { id, hub } => {
                self.sockets.watch_link(id);
                if let Err(refusal) = self.router.link_hello(id, &hub, false) {
                    warn!(
                        "refusing the link to {hub}: {} {}",
                        refusal.code, refusal.text
                    );
                }
            }
            LinkEvent::Incoming { id, socket, hub } => {
                self.sockets.open_link(id, socket);
                self.sockets.watch_link(id);
                if let Err(refusal) = self.router.link_hello(id, &hub, true) {
                    warn!(
                        "refusing the link from {hub}: {} {}",
                        refusal.code, refusal.text
                    );
                }
            }
            LinkEvent::Refused {
                socket,
                peer,
                refusal,
            } => {
                let mut line = Vec::new();
                refusal.line().encode(&mut line);
                self.sockets.refuse_with(socket, &line);
                debug!("refused link from {peer}");
            }
            LinkEvent::Line { id, line } => {
                debug!("link {id}: {line:?}");
                self.router.on_link_line(id, &line);
                if matches!(line, LinkLine::Sub { .. } | LinkLine::Unsub { .. }) {
                    self.sockets.publish_interest(&self.router, id);
                }
            }
            LinkEvent::Bad { id, refusal } => {
                let peer = self.router.link_peer(id).unwrap_or("?").to_string();
                warn!(
                    "cutting the link to {peer}: {} {}",
                    refusal.code, refusal.text
                );
                self.router.link_refuse(id, &refusal);
            }
            LinkEvent::Closed { id, why } => self.router.link_down(id, &why),
        }
    }
}

impl Outlet for Sockets {
    /// Hands the kernel what it takes now, keeps the rest (see
    /// [`Outbox::deliver`]); or, with `--blocking-writes`, one `writev` that
    /// may block for up to the write timeout while everyone waits.
    fn deliver(&mut self, id: ClientId, chunks: &mut [IoSlice<'_>]) -> Result<(), String> {
        if self.is_nats(id) {
            return self.deliver_nats(chunks);
        }
        let Some(outbox) = self.open.get_mut(&id) else {
            return Ok(());
        };
        if log_enabled!(Level::Debug) {
            let bytes: usize = chunks.iter().map(|c| c.len()).sum();
            debug!("writing {bytes} bytes to {id} ({} chunks)", chunks.len());
        }
        // Before the write, which consumes `chunks`.
        if let Some(recorder) = &mut self.recorder {
            recorder.received(id, chunks);
        }
        let client = self.slots.get(&id).and_then(|s| s.client());
        // The clock read the write timeout needs anyway, also the time
        // the live view shows the dispatcher in writev() since.
        let start = Instant::now();
        self.me.enter_at(State::Writev, id, self.me.nanos_at(start));
        // A link has its own timeout (`--link-timeout-ms`).
        let link = is_link(id);
        let timeout = timeout_for(id, self.write_timeout, self.link_timeout);
        let result = if self.blocking_writes {
            write_all_within(&outbox.socket, chunks, timeout, start, client).map_err(|e| {
                if is_timeout(&e) {
                    Counters::add(&self.score.counters.cut_off);
                    let ms = timeout.as_millis();
                    format!("not reading: write blocked past {ms} ms")
                } else {
                    Counters::add(&self.score.counters.write_errors);
                    format!("write error: {e}")
                }
            })
        } else {
            let before = outbox.written();
            let now_ms = millis_since(self.epoch, start);
            let result = outbox.deliver(chunks, &self.limits, now_ms);
            if let Some(c) = client {
                c.wrote_bytes((outbox.written() - before) as usize);
                c.set_pending(outbox.pending());
                if link {
                    c.set_behind_since(outbox.waiting_since().map(|t| self.me.nanos_at(t)));
                }
            }
            if outbox.pending() > 0 {
                self.behind.insert(id);
            }
            if result.is_err() {
                Counters::add(&self.score.counters.cut_off);
            }
            result
        };
        if let (Ok(()), Some(c)) = (&result, client) {
            c.wrote_lines(self.share_lines);
        }
        if let Some(recorder) = &mut self.recorder
            && !link
        {
            // A blocking write that waited means the kernel was full too.
            let behind = if self.blocking_writes {
                start.elapsed() >= recorder::BLOCKED
            } else {
                self.open.get(&id).is_some_and(|o| o.pending() > 0)
            };
            recorder.behind(id, behind);
        }
        // Keeps the time the write began: no second clock read per write.
        self.me.switch(State::Flush);
        result
    }

    fn share_lines(&mut self, _id: ClientId, lines: usize) {
        self.share_lines = lines;
    }

    /// Closes a connection for good, once what is pending for it (`BYE`,
    /// say) is written, or the write timeout passes. Shutting it down also
    /// wakes its reader thread, whose blocking `read()` returns 0, so that
    /// thread ends too.
    fn close(&mut self, id: ClientId) {
        if let Some(recorder) = &mut self.recorder {
            recorder.hub_closed(id);
        }
        if self.is_nats(id) {
            self.nats = None;
        }
        if let Some(quota) = self.quotas.remove(&id) {
            quota.close();
        }
        if let Some(c) = self.slots.remove(&id).as_deref().and_then(Slot::client) {
            c.set_pending(0);
            c.publish("", 0, false);
        }
        // A link we dialled: the linker dials it again.
        if let Some((target, since)) = self.dialled.remove(&id)
            && let Some(linker) = &self.linker
        {
            let lasted = since.elapsed();
            let _ = linker.send(LinkerMsg::Gone { target, lasted });
        }
        let Some(outbox) = self.open.get_mut(&id) else {
            return;
        };
        // Links are not counted per address (`--max-per-ip`).
        if !is_link(id) {
            self.per_ip.release(outbox.peer.ip());
        }
        if outbox.pending() > 0 {
            debug!(
                "closing {id} once its {} bytes are written",
                outbox.pending()
            );
            outbox.closing = true;
            return;
        }
        if let Some(outbox) = self.open.remove(&id) {
            debug!("closing {id}");
            let _ = outbox.socket.shutdown(Shutdown::Both);
        }
    }

    /// Clients whose oldest pending bytes waited past the write timeout, or
    /// whose socket failed while retrying.
    fn overdue(&mut self) -> Vec<(ClientId, String)> {
        let mut cut = std::mem::take(&mut self.failed);
        // Once per RETRY_EVERY is precise enough, and keeps thousands of
        // clients behind from costing a sweep per batch.
        let now = Instant::now();
        if self.behind.is_empty() || now.duration_since(self.last_overdue) < RETRY_EVERY {
            return cut;
        }
        self.last_overdue = now;
        let mut done = Vec::new();
        for &id in &self.behind {
            let Some(outbox) = self.open.get_mut(&id) else {
                done.push(id);
                continue;
            };
            let timeout = timeout_for(id, self.write_timeout, self.link_timeout);
            let late_or_over = match outbox.overdue(now, timeout) {
                Some(why) => Some(why),
                None => outbox.over_limit(&self.limits, millis_since(self.epoch, now)),
            };
            let why = match late_or_over {
                Some(why) => why,
                None if outbox.pending() == 0 => {
                    done.push(id);
                    continue;
                }
                None => continue,
            };
            outbox.discard();
            done.push(id);
            Counters::add(&self.score.counters.cut_off);
            if outbox.closing {
                // The router is done with it already: just close.
                if let Some(outbox) = self.open.remove(&id) {
                    let _ = outbox.socket.shutdown(Shutdown::Both);
                }
            } else {
                cut.push((id, why));
            }
        }
        for id in done {
            self.behind.remove(&id);
        }
        cut
    }
}

impl Sockets {
    /// After a line: see [`Scoreboard::note_line`].
    fn publish(&self, router: &Router, id: ClientId, line: &Inbound) {
        let slot = self.slots.get(&id).map(Arc::as_ref);
        self.score.note_line(slot, router, id, line);
    }

    /// A link is up (or about to be): its reader's slot, registered by the
    /// thread that read the handshake, gets the out-counters, like a
    /// client's.
    fn watch_link(&mut self, id: ClientId) {
        if let Some(slot) = self.score.client(id) {
            self.slots.insert(id, slot);
        }
    }

    /// After a `SUB` or `UNSUB` from link `id`: what it wants, for the
    /// live view (a few names; the monitor alone contends the lock).
    fn publish_interest(&self, router: &Router, id: ClientId) {
        if let Some(c) = self.slots.get(&id).and_then(|s| s.client()) {
            let (wanted, topics) = router.link_wants(id, INTEREST_SHOWN);
            c.publish_interest(wanted, topics);
        }
    }

    /// A link's socket, registered like a client's (links are written the
    /// same way, with the link timeout).
    fn open_link(&mut self, id: ClientId, socket: Arc<TcpStream>) {
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let peer = socket.peer_addr().unwrap_or(unknown);
        self.open.insert(id, Outbox::new(socket, peer));
    }

    /// Hands the kernel what it takes now of every pending buffer; closes
    /// the clients that were only waiting for theirs to drain. A socket
    /// that fails is reported by [`Outlet::overdue`], to be cut off.
    ///
    /// At most once per [`RETRY_EVERY`], not once per batch: with thousands
    /// of clients behind (a join storm to slow readers), a send to each of
    /// them after every small batch would be most of the dispatcher's work.
    /// Recipients of a batch are retried anyway, by `deliver`.
    fn retry(&mut self) {
        if self.behind.is_empty() || self.last_retry.elapsed() < RETRY_EVERY {
            return;
        }
        self.last_retry = Instant::now();
        let mut drained = Vec::new();
        for &id in &self.behind {
            let Some(outbox) = self.open.get_mut(&id) else {
                drained.push(id);
                continue;
            };
            let before = outbox.written();
            let drained_now = outbox.drain();
            if let Some(c) = self.slots.get(&id).and_then(|s| s.client()) {
                c.wrote_bytes((outbox.written() - before) as usize);
                c.set_pending(outbox.pending());
                if is_link(id) {
                    c.set_behind_since(outbox.waiting_since().map(|t| self.me.nanos_at(t)));
                }
            }
            match drained_now {
                Ok(true) => drained.push(id),
                Ok(false) => {}
                Err(why) => {
                    outbox.discard();
                    drained.push(id);
                    Counters::add(&self.score.counters.write_errors);
                    if !outbox.closing {
                        self.failed.push((id, why));
                    }
                }
            }
        }
        for id in drained {
            self.behind.remove(&id);
            if self
                .open
                .get(&id)
                .is_some_and(|o| o.closing && o.pending() == 0)
                && let Some(outbox) = self.open.remove(&id)
            {
                debug!("closing {id}: its last bytes are written");
                let _ = outbox.socket.shutdown(Shutdown::Both);
            }
        }
    }

    /// `ERR server-full` to a connection that was never admitted, then close.
    fn refuse(&self, socket: TcpStream) {
        self.refuse_with(socket, &server_full_line());
    }

    /// One line to a connection that was never admitted, then close.
    fn refuse_with(&self, mut socket: TcpStream, line: &[u8]) {
        // A fresh socket's send buffer is empty, so this cannot block for
        // long; the write timeout bounds it anyway.
        let _ = socket.set_write_timeout(Some(self.write_timeout));
        let _ = socket.write_all(line);
        let _ = socket.shutdown(Shutdown::Both);
    }
}

/// Milliseconds from `epoch` to `now`: the `now_ms` the IO-free soft-limit
/// rule takes.
fn millis_since(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_millis() as u64
}

/// How long `id`'s bytes may wait to be taken: a link has its own timeout
/// (`--link-timeout-ms`), a client the write timeout.
fn timeout_for(id: ClientId, write_timeout: Duration, link_timeout: Duration) -> Duration {
    if is_link(id) {
        link_timeout
    } else {
        write_timeout
    }
}

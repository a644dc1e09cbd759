//! `tcphub bench fanout`: many receivers, every line to every one.
//!
//! The script, one function per phase:
//!
//! 1. [`Run::connect`]: P publishers and S subscribers; readers run from
//!    the first connect on, so the `JOIN` storm is read.
//! 2. [`Run::sync`]: each must get `WELCOME`, then everyone sends `/ping`
//!    and waits for `PONG`: the server handles lines in one global order, so
//!    after `PONG` no `JOIN` noise is left. A raw relay (`--raw`) has no
//!    protocol: the publisher repeats a `SYNC` line until every subscriber
//!    has one, so each is known to be connected.
//! 3. [`Run::publish`]: the publishers send lines stamped with publisher,
//!    sequence number and send time: `--messages` each, or for a timed run
//!    (`--duration-s`) until the window is long enough. The first
//!    `--warmup-s` seconds are delivered and checked but not measured; the
//!    measured window is sampled for CPU ([`super::cpu`]).
//! 4. [`Run::collect`]: every other connection must have received every
//!    line, each publisher's in order.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::balance::Receivers;
use super::cpu::{PathCpu, Sample, Usage, path_between, path_ticks};
use super::publish::{Flow, Plan, Published, publish};
use super::recv::{
    Conn, End, Expect, Pace, SYNC_LINE, Shared, Swept, Tally, UNTIL_TOLD, stage, sweep,
};
use super::report::{FanoutReport, duration, si};
use super::stats::Histogram;
use super::target::{ServerUnderTest, check_fd_limit, connect, remaining};
use super::{BenchError, FanoutArgs, Progress};

/// Runs the fan-out bench and reports; errors only when it cannot start.
pub fn run(args: &FanoutArgs) -> Result<FanoutReport, BenchError> {
    check_args(args)?;
    let clients = (args.publishers + args.subscribers) as usize;
    let target = match (&args.addr, &args.pub_addr) {
        (Some(addr), _) | (None, Some(addr)) => ServerUnderTest::external(addr, args.pid)?,
        (None, None) => ServerUnderTest::in_process(clients + 16)?,
    };
    // Across linked hubs, subscribers connect to the other hub.
    let sub_addr = match &args.sub_addr {
        Some(addr) => ServerUnderTest::external(addr, None)?.addr(),
        None => target.addr(),
    };
    // Each connection is one descriptor here, and one more in an
    // in-process hub; plus some slack for the process itself.
    let per_client = if target.in_this_process() { 2 } else { 1 };
    check_fd_limit((clients * per_client + 64) as u64)?;
    let mut progress = Progress::new();
    let mut run = Run::new(args, &target, &mut progress);
    run.sub_addr = sub_addr;
    let report = run.measure();
    let streams = std::mem::take(&mut run.streams);
    drop(run);
    progress.done();
    // Stop a hub we started before hanging up on it, so it does not log a
    // write error for every client that goes.
    drop(target);
    drop(streams);
    Ok(report)
}

fn check_args(args: &FanoutArgs) -> Result<(), BenchError> {
    let usage = |why: &str| Err(BenchError::Usage(why.to_string()));
    if args.publishers + args.subscribers < 2 {
        return usage("a fan-out needs at least two clients: add --subscribers or --publishers");
    }
    let seconds = [Some(args.warmup_s), args.duration_s, args.max_duration_s];
    if seconds.iter().flatten().any(|s| !s.is_finite() || *s < 0.0) {
        return usage("--warmup-s, --duration-s and --max-duration-s take seconds, 0 or more");
    }
    if args.raw && args.publishers != 1 {
        return usage(
            "--raw measures one publisher: a byte relay interleaves the chunks of several",
        );
    }
    if args.raw && args.addr.is_none() {
        return usage("--raw needs --addr: the relay to measure (examples/relay_ceiling.rs)");
    }
    Ok(())
}

/// What the measured window saw.
#[derive(Debug, Default)]
struct Window {
    /// When the first line was sent (ns since the epoch).
    publish_start_ns: u64,
    /// When it started (ns since the epoch): the warm-up's end.
    start_ns: u64,
    /// Deliveries already counted when it started.
    received_at_start: u64,
    /// CPU shares over it.
    usage: Option<Usage>,
    /// The `--path-pid` processes' CPU over the same window.
    path: Vec<PathCpu>,
    /// When the bench stopped waiting (ns since the epoch).
    stopped_ns: u64,
    /// When the last publisher finished writing.
    finished_ns: u64,
    /// Lines each publisher sent.
    sent: Vec<u64>,
    /// A timed run's window ends when the publishers stop: then, and the
    /// deliveries counted by then.
    end_ns: Option<u64>,
    received_at_end: Option<u64>,
}

/// One fan-out run: the state its phases share.
struct Run<'a> {
    args: &'a FanoutArgs,
    target: &'a ServerUnderTest,
    progress: &'a mut Progress,
    addr: SocketAddr,
    /// Where subscribers connect: `addr`, or the other hub (`--sub-addr`).
    sub_addr: SocketAddr,
    deadline: Instant,
    shared: Arc<Shared>,
    /// The subscribers' reader threads, as many as keep each under 70 %
    /// of a core.
    receivers: Option<Receivers>,
    /// The publishers' reader threads, one per publisher.
    sweepers: Vec<JoinHandle<Swept>>,
    /// The publishers' write halves, until they publish.
    writers: Vec<(usize, TcpStream)>,
    /// Connections that were opened.
    connected: usize,
    /// The first thing that went wrong.
    failure: Option<String>,
    /// Every connection, kept open until the run is over.
    streams: Vec<TcpStream>,
    /// The publishers' lead over the deliveries.
    flow: Arc<Flow>,
    /// When publishing started (ns since the epoch).
    publish_start_ns: Option<u64>,
}

/// What a hub adds in front of each line it delivers in a fan-out:
/// `MSG guest-1 ` (the publisher connects first, so it is `guest-1`).
pub const HUB_PREFIX: &str = "MSG guest-1 ";

/// Bytes of each line the publisher writes. A raw relay's lines are longer
/// by [`HUB_PREFIX`], so it delivers as many bytes per delivery as a hub
/// (76 for `--size 64`): CPU per delivery is mostly bytes copied, and a
/// ceiling that copies 16 % fewer is no floor (measured: the relay's cost
/// per delivery, sustained 1 x 100, went from 10 ns to 14 ns with the
/// longer lines).
fn line_size(args: &FanoutArgs) -> u64 {
    match args.raw {
        true => args.size + HUB_PREFIX.len() as u64,
        false => args.size,
    }
}

impl<'a> Run<'a> {
    fn new(args: &'a FanoutArgs, target: &'a ServerUnderTest, progress: &'a mut Progress) -> Self {
        Run {
            args,
            target,
            progress,
            addr: target.addr(),
            sub_addr: target.addr(),
            deadline: Instant::now() + Duration::from_secs(args.timeout_s),
            shared: Arc::new(Shared::new()),
            receivers: None,
            sweepers: Vec::new(),
            writers: Vec::new(),
            connected: 0,
            failure: None,
            streams: Vec::new(),
            flow: Arc::new(Flow::new(
                args.publishers + args.subscribers - 1,
                line_size(args),
                args.unpaced,
            )),
            publish_start_ns: None,
        }
    }

    /// The server as the report names it; `A -> B` across linked hubs.
    fn describe(&self) -> String {
        match self.sub_addr == self.addr {
            true => self.target.describe(),
            false => format!(
                "{} -> subscribers on {}",
                self.target.describe(),
                self.sub_addr
            ),
        }
    }

    fn clients(&self) -> usize {
        (self.args.publishers + self.args.subscribers) as usize
    }

    fn timed(&self) -> bool {
        self.args.duration_s.is_some()
    }

    /// The phases in turn; each does nothing once something failed.
    fn measure(&mut self) -> FanoutReport {
        let args = self.args;
        let mut report = FanoutReport {
            server: self.describe(),
            raw: args.raw,
            publishers: args.publishers as usize,
            subscribers: args.subscribers as usize,
            messages: if self.timed() { 0 } else { args.messages },
            size: args.size as usize,
            rate: args.rate,
            unpaced: args.unpaced,
            warmup: Duration::from_secs_f64(args.warmup_s),
            timed: self.timed(),
            ..FanoutReport::default()
        };
        self.connect();
        self.sync();
        let window = self.publish();
        self.shared.set_stage(stage::STOP);
        self.collect(&mut report, window);
        report
    }

    /// What connection `own` (a publisher's, or `None`) must receive.
    fn expect(&self, own: Option<usize>) -> Expect {
        let publishers = self.args.publishers;
        let lines = if self.timed() {
            UNTIL_TOLD
        } else if own.is_some() {
            self.args.messages * (publishers - 1)
        } else {
            self.args.messages * publishers
        };
        Expect {
            publishers: publishers as usize,
            lines,
            own,
            text_len: line_size(self.args) as usize - 1,
            raw: self.args.raw,
        }
    }

    /// Phase 1: start the readers, connect publishers (blocking sockets,
    /// each with its own reader thread; none on a raw relay, which sends
    /// the only publisher nothing), then the subscribers (non-blocking,
    /// swept).
    fn connect(&mut self) {
        let subscribers = self.args.subscribers as usize;
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let readers = self
            .args
            .readers
            .map(|r| r as usize)
            .unwrap_or(if subscribers <= 100 { 1 } else { cores })
            .min(subscribers.max(1));
        // `--readers` fixes the count; without it, more start as needed.
        let balanced = self.args.readers.is_none();
        let mut feeds: Vec<Sender<Conn>> = Vec::new();
        match Receivers::start(readers, balanced, &self.shared) {
            Ok((receivers, f)) => {
                self.receivers = Some(receivers);
                feeds = f;
            }
            Err(e) => self.failure = Some(e),
        }
        for p in 0..self.args.publishers as usize {
            if self.failure.is_some() {
                return;
            }
            let expect = (!self.args.raw).then(|| self.expect(Some(p)));
            match connect_publisher(self.addr, self.deadline, p, expect, &self.shared) {
                Ok((writer, reader)) => {
                    self.writers.push((p, writer));
                    // `connected` counts the connections that are read.
                    self.connected += usize::from(reader.is_some());
                    self.sweepers.extend(reader);
                }
                Err(e) => self.failure = Some(e),
            }
        }
        self.connect_subscribers(&feeds);
    }

    fn connect_subscribers(&mut self, feeds: &[Sender<Conn>]) {
        let subscribers = self.args.subscribers as usize;
        let expect = self.expect(None);
        let addr = self.sub_addr;
        for s in 0..subscribers {
            if self.failure.is_some() || feeds.is_empty() {
                return;
            }
            let opened = remaining(self.deadline)
                .ok_or_else(|| "timed out while connecting".to_string())
                .and_then(|left| connect(addr, left).map_err(|e| format!("connect to {addr}: {e}")))
                .and_then(|stream| {
                    stream
                        .set_nonblocking(true)
                        .map(|()| stream)
                        .map_err(|e| format!("socket setup: {e}"))
                });
            match opened {
                Ok(stream) => {
                    let _ = feeds[s % feeds.len()].send(Conn::new(stream, Tally::counting(expect)));
                    self.connected += 1;
                }
                Err(e) => self.failure = Some(e),
            }
            if s % 64 == 0 {
                self.progress
                    .show(|| format!("fanout: connecting {s}/{subscribers}"));
            }
        }
    }

    /// Waits until `done`, showing `line` as progress; records a timeout as
    /// the failure. Does nothing once something failed.
    fn wait(
        &mut self,
        what: &str,
        done: impl Fn(&Shared) -> bool,
        line: impl Fn(&Shared) -> String,
    ) {
        // While publishing, every check also resizes the publishers' lead;
        // and every check may add a receiver thread.
        let (flow, start) = (self.flow.clone(), self.publish_start_ns);
        let receivers = &mut self.receivers;
        let done = |s: &Shared| {
            if let Some(start) = start {
                flow.update(s, start);
            }
            if let Some(r) = receivers.as_mut() {
                r.tick();
            }
            done(s)
        };
        if self.failure.is_none() {
            self.failure = wait_for(&self.shared, self.deadline, self.progress, done, line, what);
        }
    }

    /// Phase 2: everyone welcomed, then past the join noise.
    fn sync(&mut self) {
        let clients = self.clients();
        let connected = self.connected;
        if self.args.raw {
            self.raw_sync();
            return;
        }
        self.wait(
            "waiting for WELCOME",
            |s| s.welcomed.load(Ordering::Relaxed) + s.ended.load(Ordering::Relaxed) >= connected,
            |s| {
                format!(
                    "fanout: {} of {clients} welcomed",
                    s.welcomed.load(Ordering::Relaxed)
                )
            },
        );
        if self.failure.is_none() && self.shared.ended.load(Ordering::Relaxed) > 0 {
            self.failure = Some("connections were refused or closed before the run".into());
        }
        if self.failure.is_none() {
            self.shared.set_stage(stage::SYNC);
        }
        self.wait(
            "draining the join noise (/ping)",
            |s| s.synced.load(Ordering::Relaxed) + s.ended.load(Ordering::Relaxed) >= connected,
            |s| {
                format!(
                    "fanout: {} of {clients} past the join noise",
                    s.synced.load(Ordering::Relaxed)
                )
            },
        );
    }

    /// Phase 2 on a raw relay: the publisher says `SYNC` every 5 ms until
    /// every subscriber has heard one (a relay forwards only to the
    /// connections it has accepted by then).
    fn raw_sync(&mut self) {
        let subscribers = self.args.subscribers as usize;
        let mut line = SYNC_LINE.to_vec();
        line.push(b'\n');
        while self.failure.is_none() {
            let synced = self.shared.synced.load(Ordering::Relaxed);
            if synced >= subscribers {
                return;
            }
            if self.shared.ended.load(Ordering::Relaxed) > 0 {
                self.failure = Some("the relay closed connections before the run".into());
            } else if Instant::now() >= self.deadline {
                self.failure = Some("timed out while syncing with the relay".into());
            } else if let Some((_, writer)) = self.writers.first_mut()
                && let Err(e) = writer.write_all(&line)
            {
                self.failure = Some(format!("publisher: write failed: {e}"));
            }
            self.progress
                .show(|| format!("fanout: {synced} of {subscribers} synced with the relay"));
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Phase 3: publish, warm up, measure the window, drain.
    fn publish(&mut self) -> Window {
        let mut window = Window::default();
        if self.failure.is_some() {
            return window;
        }
        let shared = self.shared.clone();
        if self.args.warmup_s > 0.0 {
            shared.record_from_ns.store(u64::MAX, Ordering::Relaxed);
        }
        shared.set_stage(stage::MEASURE);
        let start_ns = shared.now_ns();
        window.publish_start_ns = start_ns;
        self.publish_start_ns = Some(start_ns);
        let stop = Arc::new(AtomicBool::new(false));
        let mut publishing = self.start_publishers(start_ns, &stop);
        self.warm_up(start_ns);
        window.start_ns = shared.now_ns();
        shared
            .record_from_ns
            .store(window.start_ns, Ordering::Relaxed);
        window.received_at_start = shared.received.load(Ordering::Relaxed);
        let pid = self.target.pid();
        let path_start = path_ticks(&self.args.path_pids);
        let cpu_start = Sample::take(pid);
        let in_process = self.target.in_this_process();
        if self.timed() {
            // The window is the publishing time: what is still queued when
            // the publishers stop is delivered and checked, not measured.
            self.wait_for_window(&window);
            stop.store(true, Ordering::Relaxed);
            let cpu_end = Sample::take(pid);
            window.path = path_between(&path_start, &path_ticks(&self.args.path_pids));
            window.end_ns = Some(shared.now_ns());
            window.received_at_end = Some(shared.received.load(Ordering::Relaxed));
            window.usage = Some(Usage::between(&cpu_start, &cpu_end, in_process));
            self.join_publishers(&mut publishing, &mut window);
            let _ = shared.sent.set(window.sent.clone());
        }
        self.drain(&window);
        if window.usage.is_none() {
            let cpu_end = Sample::take(pid);
            window.path = path_between(&path_start, &path_ticks(&self.args.path_pids));
            window.usage = Some(Usage::between(&cpu_start, &cpu_end, in_process));
        }
        window.stopped_ns = shared.now_ns();
        shared.set_stage(stage::STOP);
        self.join_publishers(&mut publishing, &mut window);
        window
    }

    fn start_publishers(
        &mut self,
        start_ns: u64,
        stop: &Arc<AtomicBool>,
    ) -> Vec<JoinHandle<Published>> {
        let mut publishing = Vec::new();
        let flow = self.flow.clone();
        for (p, stream) in self.writers.drain(..) {
            let plan = Plan {
                index: p,
                messages: if self.args.duration_s.is_some() {
                    u64::MAX
                } else {
                    self.args.messages
                },
                size: line_size(self.args) as usize,
                rate: self.args.rate,
                start_ns,
                deadline: self.deadline,
                stop: stop.clone(),
                flow: flow.clone(),
            };
            let shared = self.shared.clone();
            let spawned = thread::Builder::new()
                .name(format!("bench-pub-{p}"))
                .spawn(move || publish(stream, &plan, &shared));
            match spawned {
                Ok(handle) => publishing.push(handle),
                Err(e) => {
                    self.failure = Some(format!("cannot start a publisher thread: {e}"));
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        publishing
    }

    fn warm_up(&mut self, start_ns: u64) {
        let warmup_ns = (self.args.warmup_s * 1e9) as u64;
        self.wait(
            "warming up",
            |s| s.now_ns() >= start_ns + warmup_ns || s.failed.load(Ordering::Relaxed),
            |s| {
                format!(
                    "fanout: warming up, {} deliveries",
                    si(s.received.load(Ordering::Relaxed) as f64)
                )
            },
        );
    }

    /// A timed run: until the window is long enough and has enough
    /// deliveries, or has reached its longest.
    fn wait_for_window(&mut self, window: &Window) {
        let min_ns = (self.args.duration_s.unwrap_or(0.0) * 1e9) as u64;
        let max_s = self
            .args
            .max_duration_s
            .unwrap_or(2.0 * self.args.duration_s.unwrap_or(0.0));
        let max_ns = (max_s * 1e9) as u64;
        let min_deliveries = self.args.min_deliveries;
        let (start, before) = (window.start_ns, window.received_at_start);
        let connected = self.connected;
        self.wait(
            "measuring",
            |s| {
                let elapsed = s.now_ns().saturating_sub(start);
                let got = s.received.load(Ordering::Relaxed) - before;
                (elapsed >= min_ns && (got >= min_deliveries || elapsed >= max_ns))
                    || s.failed.load(Ordering::Relaxed)
                    || s.ended.load(Ordering::Relaxed) >= connected
            },
            |s| {
                let secs = s.now_ns().saturating_sub(start) as f64 / 1e9;
                let got = s.received.load(Ordering::Relaxed) - before;
                format!(
                    "fanout: {secs:.1} s measured, {} deliveries/s",
                    si(got as f64 / secs.max(1e-9))
                )
            },
        );
    }

    /// Until every connection has every line (or is gone).
    fn drain(&mut self, window: &Window) {
        let connected = self.connected;
        let start = window.start_ns;
        self.wait(
            "delivering",
            |s| {
                s.complete.load(Ordering::Relaxed) + s.ended.load(Ordering::Relaxed) >= connected
                    || s.failed.load(Ordering::Relaxed)
            },
            |s| {
                let got = s.received.load(Ordering::Relaxed);
                let secs = s.now_ns().saturating_sub(start) as f64 / 1e9;
                format!("fanout: {} deliveries, {secs:.1} s", si(got as f64))
            },
        );
    }

    fn join_publishers(
        &mut self,
        publishing: &mut Vec<JoinHandle<Published>>,
        window: &mut Window,
    ) {
        for handle in publishing.drain(..) {
            match handle.join() {
                Ok(p) => {
                    window.finished_ns = window.finished_ns.max(p.finished_ns);
                    window.sent.push(p.sent);
                    if let Some(e) = p.error {
                        self.failure.get_or_insert(e);
                    }
                }
                Err(_) => {
                    self.failure
                        .get_or_insert("a publisher thread panicked".into());
                }
            }
        }
    }

    /// Phase 4: join the readers and add up what every connection saw.
    fn collect(&mut self, report: &mut FanoutReport, window: Window) {
        let mut latency = Histogram::new();
        let mut last_ns = window.start_ns;
        let mut joined: Vec<thread::Result<Swept>> =
            self.sweepers.drain(..).map(JoinHandle::join).collect();
        if let Some(receivers) = self.receivers.take() {
            report.receivers = receivers.count();
            report.receivers_fixed = self.args.readers.is_some();
            joined.extend(receivers.join());
        }
        for swept in joined {
            let Ok(swept) = swept else {
                self.failure
                    .get_or_insert("a reader thread panicked".into());
                continue;
            };
            latency.merge(&swept.latency);
            self.streams.extend(swept.streams);
            for t in &swept.tallies {
                report.received += t.received;
                report.out_of_order += t.out_of_order;
                report.other_lines += t.other_lines;
                last_ns = last_ns.max(t.last_ns);
                match &t.end {
                    Some(End::Refused) => report.refused += 1,
                    Some(End::Closed(_)) => report.disconnected += 1,
                    None => {}
                }
            }
        }
        let sent: u64 = if self.timed() {
            window.sent.iter().sum()
        } else {
            self.args.messages * self.args.publishers
        };
        report.sent = sent;
        // Every line is for every other client (a raw relay's only
        // publisher gets nothing: subscribers = clients - 1 there too).
        report.expected = sent * (self.clients() as u64 - 1);
        report.lost = report.expected.saturating_sub(report.received);
        let end_ns = if report.received >= report.expected {
            last_ns
        } else {
            window.stopped_ns
        };
        report.elapsed = Duration::from_nanos(end_ns.saturating_sub(window.publish_start_ns));
        let window_end = window.end_ns.unwrap_or(end_ns);
        report.window = Duration::from_nanos(window_end.saturating_sub(window.start_ns));
        report.window_deliveries = window
            .received_at_end
            .unwrap_or(report.received)
            .saturating_sub(window.received_at_start);
        report.publish_elapsed =
            Duration::from_nanos(window.finished_ns.saturating_sub(window.publish_start_ns));
        report.latency_p50 = latency.percentile_duration(50.0);
        report.latency_p99 = latency.percentile_duration(99.0);
        report.latency_max = Duration::from_nanos(latency.max());
        report.latency_samples = latency.count();
        report.usage = window.usage;
        report.path = window.path;
        report.failure = self.failure.take();
    }
}

fn spawn_sweeper(
    name: String,
    incoming: Receiver<Conn>,
    shared: &Arc<Shared>,
    pace: Pace,
) -> Result<JoinHandle<Swept>, String> {
    let shared = shared.clone();
    thread::Builder::new()
        .name(name)
        .spawn(move || sweep(incoming, shared, pace))
        .map_err(|e| format!("cannot start a reader thread: {e}"))
}

/// Connects publisher `p`: returns its write half, and starts the reader
/// thread of its read half (it receives the other publishers' lines) if it
/// is to `expect` anything.
fn connect_publisher(
    addr: SocketAddr,
    deadline: Instant,
    p: usize,
    expect: Option<Expect>,
    shared: &Arc<Shared>,
) -> Result<(TcpStream, Option<JoinHandle<Swept>>), String> {
    let left = remaining(deadline).ok_or("timed out while connecting")?;
    let stream = connect(addr, left).map_err(|e| format!("connect to {addr}: {e}"))?;
    let Some(expect) = expect else {
        return Ok((stream, None));
    };
    let reader = stream
        .try_clone()
        .map_err(|e| format!("socket setup: {e}"))?;
    // Blocking, but never for long: the reader checks the stage between
    // reads.
    reader
        .set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| format!("socket setup: {e}"))?;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let _ = tx.send(Conn::new(reader, Tally::counting(expect)));
    drop(tx);
    let handle = spawn_sweeper(format!("bench-pub-rx-{p}"), rx, shared, Pace::Blocking)?;
    Ok((stream, Some(handle)))
}

/// Waits until `done`, showing progress; `Some(reason)` on timeout.
fn wait_for(
    shared: &Shared,
    deadline: Instant,
    progress: &mut Progress,
    mut done: impl FnMut(&Shared) -> bool,
    line: impl Fn(&Shared) -> String,
    what: &str,
) -> Option<String> {
    loop {
        if done(shared) {
            return None;
        }
        if Instant::now() >= deadline {
            return Some(format!("timed out while {what}"));
        }
        progress.show(|| line(shared));
        thread::sleep(Duration::from_millis(2));
    }
}

/// A one-line summary for logs.
pub fn summary(r: &FanoutReport) -> String {
    format!(
        "{}x{}: {} deliveries/s, p99 {}, {}",
        r.publishers,
        r.subscribers,
        si(r.deliveries_per_s()),
        duration(r.latency_p99),
        if r.ok() { "ok" } else { "FAILED" }
    )
}

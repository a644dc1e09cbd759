//! `tcphub bench fanout`: many receivers, every line to every one.
//!
//! The script:
//!
//! 1. Connect P publishers and S subscribers; each must get `WELCOME`.
//!    Readers run from the first connect on, so the `JOIN` storm is read.
//! 2. Everyone sends `/ping` and waits for `PONG`: the server handles lines
//!    in one global order, so after `PONG` no `JOIN` noise is left.
//! 3. The publishers send M lines each (rate-limited with `--rate`), each
//!    line stamped with publisher, sequence number and send time.
//! 4. Every other connection must receive P×M lines (a publisher: (P-1)×M),
//!    each publisher's in order. Done when all have them, or at the timeout.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::recv::{Conn, End, Expect, Pace, Shared, Swept, Tally, stage, sweep};
use super::report::{FanoutReport, duration, si};
use super::stats::Histogram;
use super::target::{Target, check_fd_limit, connect};
use super::wire::encode_chat;
use super::{BenchError, FanoutArgs, Progress};

/// A publisher's outcome.
#[derive(Debug)]
struct Published {
    /// When its last line was written (ns since the bench's epoch).
    finished_ns: u64,
    error: Option<String>,
}

/// Runs the fan-out bench and reports; errors only when it cannot start.
pub fn run(args: &FanoutArgs) -> Result<FanoutReport, BenchError> {
    let publishers = args.publishers as usize;
    let subscribers = args.subscribers as usize;
    let clients = publishers + subscribers;
    if clients < 2 {
        return Err(BenchError::Usage(
            "a fan-out needs at least two clients: add --subscribers or --publishers".into(),
        ));
    }
    let target = match &args.addr {
        Some(addr) => Target::external(addr, None)?,
        None => Target::in_process(clients + 16)?,
    };
    // Each connection is one descriptor here, and one more in an
    // in-process hub; plus some slack for the process itself.
    let per_client = if target.shares_fd_limit() { 2 } else { 1 };
    check_fd_limit((clients * per_client + 64) as u64)?;
    let mut progress = Progress::new();
    let (report, streams) = measure(args, &target, &mut progress);
    progress.done();
    // Stop a hub we started before hanging up on it, so it does not log a
    // write error for every client that goes.
    drop(target);
    drop(streams);
    Ok(report)
}

fn measure(
    args: &FanoutArgs,
    target: &Target,
    progress: &mut Progress,
) -> (FanoutReport, Vec<TcpStream>) {
    let publishers = args.publishers as usize;
    let subscribers = args.subscribers as usize;
    let clients = publishers + subscribers;
    let messages = args.messages;
    let size = args.size as usize;
    let addr = target.addr();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_s);
    let shared = Arc::new(Shared::new());
    let mut report = FanoutReport {
        server: target.describe(),
        publishers,
        subscribers,
        messages,
        size,
        rate: args.rate,
        expected: messages * publishers as u64 * (clients as u64 - 1),
        ..FanoutReport::default()
    };

    let readers = args
        .readers
        .map(|r| r as usize)
        .unwrap_or(if subscribers <= 100 { 1 } else { 2 })
        .min(subscribers.max(1));
    let mut feeds: Vec<Sender<Conn>> = Vec::new();
    let mut sweepers: Vec<JoinHandle<Swept>> = Vec::new();
    let mut spawn_failure = None;
    for i in 0..readers {
        let (tx, rx) = crossbeam_channel::unbounded();
        match spawn_sweeper(format!("bench-rx-{i}"), rx, &shared, Pace::Eager) {
            Ok(handle) => {
                feeds.push(tx);
                sweepers.push(handle);
            }
            Err(e) => spawn_failure = Some(e),
        }
    }

    // Phase 1: connect. Publishers first (blocking sockets, each with its
    // own reader thread), then the subscribers (non-blocking, swept).
    let mut writers: Vec<(usize, TcpStream)> = Vec::new();
    let mut failure: Option<String> = spawn_failure;
    let text_len = size - 1;
    for p in 0..publishers {
        if failure.is_some() {
            break;
        }
        let expect = Expect {
            publishers,
            lines: messages * (publishers as u64 - 1),
            own: Some(p),
            text_len,
        };
        match connect_publisher(addr, deadline, p, expect, &shared) {
            Ok((writer, reader)) => {
                writers.push((p, writer));
                sweepers.push(reader);
            }
            Err(e) => failure = Some(e),
        }
    }
    let expect = Expect {
        publishers,
        lines: messages * publishers as u64,
        own: None,
        text_len,
    };
    for s in 0..subscribers {
        if failure.is_some() || feeds.is_empty() {
            break;
        }
        let opened = remaining(deadline)
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
            }
            Err(e) => failure = Some(e),
        }
        if s % 64 == 0 {
            progress.show(|| format!("fanout: connecting {s}/{subscribers}"));
        }
    }
    drop(feeds);

    // Phase 2: everyone welcomed, then everyone synced.
    let connected = writers.len() + subscribers;
    if failure.is_none() {
        failure = wait_for(
            &shared,
            deadline,
            progress,
            |s| s.welcomed.load(Ordering::Relaxed) + s.ended.load(Ordering::Relaxed) >= connected,
            |s| {
                format!(
                    "fanout: {} of {clients} welcomed",
                    s.welcomed.load(Ordering::Relaxed)
                )
            },
            "waiting for WELCOME",
        );
    }
    if failure.is_none() && shared.ended.load(Ordering::Relaxed) > 0 {
        failure = Some("connections were refused or closed before the run".into());
    }
    if failure.is_none() {
        shared.set_stage(stage::SYNC);
        failure = wait_for(
            &shared,
            deadline,
            progress,
            |s| s.synced.load(Ordering::Relaxed) + s.ended.load(Ordering::Relaxed) >= connected,
            |s| {
                format!(
                    "fanout: {} of {clients} past the join noise",
                    s.synced.load(Ordering::Relaxed)
                )
            },
            "draining the join noise (/ping)",
        );
    }

    // Phase 3: publish and count.
    let mut publishing: Vec<JoinHandle<Published>> = Vec::new();
    let start_ns = shared.now_ns();
    if failure.is_none() {
        shared.set_stage(stage::MEASURE);
        for (p, stream) in writers.drain(..) {
            let shared = shared.clone();
            let rate = args.rate;
            let spawned = thread::Builder::new()
                .name(format!("bench-pub-{p}"))
                .spawn(move || {
                    publish(stream, p, messages, size, rate, &shared, start_ns, deadline)
                });
            match spawned {
                Ok(handle) => publishing.push(handle),
                Err(e) => {
                    failure = Some(format!("cannot start a publisher thread: {e}"));
                    break;
                }
            }
        }
        let expected = report.expected;
        let run_failure = wait_for(
            &shared,
            deadline,
            progress,
            |s| {
                s.complete.load(Ordering::Relaxed) + s.ended.load(Ordering::Relaxed) >= connected
                    || s.failed.load(Ordering::Relaxed)
            },
            |s| {
                let got = s.received.load(Ordering::Relaxed);
                let secs = (s.now_ns() - start_ns) as f64 / 1e9;
                format!(
                    "fanout: {got} of {expected} deliveries ({:.0}%), {secs:.1} s, {} deliveries/s",
                    100.0 * got as f64 / expected.max(1) as f64,
                    si(got as f64 / secs.max(1e-9))
                )
            },
            "delivering",
        );
        failure = failure.or(run_failure);
    }
    let stopped_ns = shared.now_ns();
    shared.set_stage(stage::STOP);

    // Collect.
    let mut finished_ns = start_ns;
    for handle in publishing {
        match handle.join() {
            Ok(p) => {
                finished_ns = finished_ns.max(p.finished_ns);
                if let Some(e) = p.error {
                    failure.get_or_insert(e);
                }
            }
            Err(_) => {
                failure.get_or_insert("a publisher thread panicked".into());
            }
        }
    }
    let mut latency = Histogram::new();
    let mut last_ns = start_ns;
    let mut streams = Vec::new();
    for handle in sweepers {
        let Ok(swept) = handle.join() else {
            failure.get_or_insert("a reader thread panicked".into());
            continue;
        };
        latency.merge(&swept.latency);
        streams.extend(swept.streams);
        for t in &swept.tallies {
            report.received += t.received;
            report.lost += t.lost();
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
    // Connections never opened lost everything they should have received.
    let counted_expected: u64 = report.received + report.lost;
    if counted_expected < report.expected && failure.is_some() {
        report.lost = report.expected - report.received;
    }
    let end_ns = if report.received == report.expected {
        last_ns
    } else {
        stopped_ns
    };
    report.elapsed = Duration::from_nanos(end_ns.saturating_sub(start_ns));
    report.publish_elapsed = Duration::from_nanos(finished_ns.saturating_sub(start_ns));
    report.latency_p50 = latency.percentile_duration(50.0);
    report.latency_p99 = latency.percentile_duration(99.0);
    report.latency_max = Duration::from_nanos(latency.max());
    report.failure = failure;
    (report, streams)
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
/// thread of its read half (it receives the other publishers' lines).
fn connect_publisher(
    addr: std::net::SocketAddr,
    deadline: Instant,
    p: usize,
    expect: Expect,
    shared: &Arc<Shared>,
) -> Result<(TcpStream, JoinHandle<Swept>), String> {
    let left = remaining(deadline).ok_or("timed out while connecting")?;
    let stream = connect(addr, left).map_err(|e| format!("connect to {addr}: {e}"))?;
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
    Ok((stream, handle))
}

/// Waits until `done`, showing progress; `Some(reason)` on timeout.
fn wait_for(
    shared: &Shared,
    deadline: Instant,
    progress: &mut Progress,
    done: impl Fn(&Shared) -> bool,
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

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Lines per write when the rate is unlimited: about 16 KiB.
const BATCH_BYTES: usize = 16 * 1024;

/// One publisher: M lines, as fast as the server takes them, or at `rate`
/// lines per second (each line stamped when it is written).
#[allow(clippy::too_many_arguments)]
fn publish(
    mut stream: TcpStream,
    index: usize,
    messages: u64,
    size: usize,
    rate: Option<u64>,
    shared: &Shared,
    start_ns: u64,
    deadline: Instant,
) -> Published {
    let per_write = match rate {
        Some(_) => 1,
        None => (BATCH_BYTES / size).max(1) as u64,
    };
    let mut buffer = Vec::with_capacity(size * per_write as usize);
    let mut seq = 0;
    let mut error = None;
    while seq < messages {
        if shared.stage() == stage::STOP {
            break;
        }
        if let Some(rate) = rate {
            // Line `seq` is due at start + seq/rate; if late, send at once.
            let due = start_ns + seq.saturating_mul(1_000_000_000) / rate;
            let now = shared.now_ns();
            if due > now {
                thread::sleep(Duration::from_nanos(due - now));
            }
        }
        let Some(left) = remaining(deadline) else {
            error = Some(format!(
                "publisher {index} timed out with {} lines unsent",
                messages - seq
            ));
            break;
        };
        let _ = stream.set_write_timeout(Some(left));
        buffer.clear();
        let now = shared.now_ns();
        let n = per_write.min(messages - seq);
        for s in seq..seq + n {
            encode_chat(&mut buffer, index, s, now, size);
        }
        if let Err(e) = stream.write_all(&buffer) {
            error = Some(format!("publisher {index}: write failed: {e}"));
            shared.failed.store(true, Ordering::Relaxed);
            break;
        }
        seq += n;
    }
    Published {
        finished_ns: shared.now_ns(),
        error,
    }
}

/// A one-line summary for logs (used by `make compare`'s driver).
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

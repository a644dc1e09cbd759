//! `tcphub bench conns`: many idle clients at once.
//!
//! Opens N connections as fast as it can and times how long until every
//! one has its `WELCOME`. Idle is not quiet: every connect is announced to
//! everyone already there, so the server sends N²/2 `JOIN` lines, and the
//! bench keeps reading all of them (and throwing them away unread) so no
//! client looks like a slow consumer. Then it holds them for `--hold-s`
//! seconds and reads the server's memory and threads from /proc.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use std::net::TcpStream;

use super::recv::{Conn, End, Pace, Shared, Swept, Tally, stage, sweep};
use super::report::{ConnsReport, duration};
use super::target::{ServerUnderTest, check_fd_limit, connect, proc_status};
use super::{BenchError, ConnsArgs, Progress};

/// Connections per reader thread before another one is started.
const CONNS_PER_READER: usize = 2500;
/// At most this many reader threads (the machine has few cores).
const MAX_READERS: usize = 2;
/// Waiting for `WELCOME`s ends early when none has come for this long.
const STALL: Duration = Duration::from_secs(10);

/// Runs the idle-connections bench and reports; errors only when it
/// cannot start.
pub fn run(args: &ConnsArgs) -> Result<ConnsReport, BenchError> {
    let count = args.count as usize;
    let target = match &args.addr {
        Some(addr) => ServerUnderTest::external(addr, args.pid)?,
        None => ServerUnderTest::child(count + 16)?,
    };
    check_fd_limit(count as u64 + 64)?;
    let mut progress = Progress::new();
    let (report, streams) = measure(args, &target, &mut progress);
    progress.done();
    // Stop a server we started before hanging up on it: N clients leaving
    // one by one would make it announce N²/2 `LEAVE` lines for nothing.
    drop(target);
    drop(streams);
    Ok(report)
}

/// The phases in turn: readers, connects, welcomes, hold, tally.
fn measure(
    args: &ConnsArgs,
    target: &ServerUnderTest,
    progress: &mut Progress,
) -> (ConnsReport, Vec<TcpStream>) {
    let shared = Arc::new(Shared::new());
    let mut report = ConnsReport {
        server: target.describe(),
        count: args.count as usize,
        ..ConnsReport::default()
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let (feeds, sweepers) = start_readers(args.count as usize, &shared, &mut report);
    let start_ns = shared.now_ns();
    open_all(
        args,
        target,
        &shared,
        feeds,
        deadline,
        &mut report,
        progress,
    );
    await_welcomes(args, &shared, deadline, start_ns, &mut report, progress);
    let ramp_ns = shared.now_ns();
    let pid = target.pid();
    report.after_ramp = pid.and_then(proc_status);
    hold(args, &shared, &mut report, progress);
    report.after_hold = pid.and_then(proc_status);
    shared.set_stage(stage::STOP);
    let streams = collect(sweepers, start_ns, ramp_ns, &mut report);
    log::info!(
        "conns: {} welcomed in {}",
        report.welcomed,
        duration(report.ramp)
    );
    (report, streams)
}

fn start_readers(
    count: usize,
    shared: &Arc<Shared>,
    report: &mut ConnsReport,
) -> (Vec<Sender<Conn>>, Vec<JoinHandle<Swept>>) {
    let readers = count.div_ceil(CONNS_PER_READER).clamp(1, MAX_READERS);
    let mut feeds = Vec::new();
    let mut sweepers = Vec::new();
    for i in 0..readers {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = shared.clone();
        match thread::Builder::new()
            .name(format!("bench-rx-{i}"))
            .spawn(move || sweep(rx, shared, Pace::Lazy))
        {
            Ok(handle) => {
                feeds.push(tx);
                sweepers.push(handle);
            }
            Err(e) => report.failure = Some(format!("cannot start a reader thread: {e}")),
        }
    }
    (feeds, sweepers)
}

/// Connects as fast as the server welcomes; readers take each connection
/// at once.
fn open_all(
    args: &ConnsArgs,
    target: &ServerUnderTest,
    shared: &Shared,
    feeds: Vec<Sender<Conn>>,
    deadline: Instant,
    report: &mut ConnsReport,
    progress: &mut Progress,
) {
    let addr = target.addr();
    let in_flight = args.in_flight as usize;
    let start_ns = shared.now_ns();
    for i in 0..args.count as usize {
        if feeds.is_empty() {
            break;
        }
        // A connect completes in the kernel before the server accepts it.
        // Past the server's listen backlog the kernel drops the SYN, and the
        // client retries only after a second: keep fewer than that waiting.
        while report.opened
            >= shared.welcomed.load(Ordering::Relaxed)
                + shared.ended.load(Ordering::Relaxed)
                + in_flight
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_micros(100));
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            report.failure = Some("timed out while connecting".into());
            break;
        };
        match connect(addr, left).and_then(|s| s.set_nonblocking(true).map(|()| s)) {
            Ok(stream) => {
                report.opened += 1;
                let _ = feeds[i % feeds.len()].send(Conn::new(stream, Tally::discarding()));
            }
            Err(e) => {
                report.connect_failures += 1;
                report
                    .first_error
                    .get_or_insert_with(|| format!("connect #{}: {e}", i + 1));
                // Out of descriptors or ports: more attempts fail the same.
                break;
            }
        }
        if i % 100 == 0 {
            progress.show(|| {
                format!(
                    "conns: {} opened, {} welcomed, {:.1} s",
                    i + 1,
                    shared.welcomed.load(Ordering::Relaxed),
                    (shared.now_ns() - start_ns) as f64 / 1e9
                )
            });
        }
    }
}

/// Waits for every WELCOME (or refusal, or close); gives up early if
/// nothing moves for a while (a server out of file descriptors never
/// accepts the last few).
fn await_welcomes(
    args: &ConnsArgs,
    shared: &Shared,
    deadline: Instant,
    start_ns: u64,
    report: &mut ConnsReport,
    progress: &mut Progress,
) {
    let (opened, count) = (report.opened, report.count);
    let mut last_progress = (0, Instant::now());
    loop {
        let welcomed = shared.welcomed.load(Ordering::Relaxed);
        let ended = shared.ended.load(Ordering::Relaxed);
        if welcomed + ended >= opened {
            return;
        }
        if Instant::now() >= deadline {
            report.failure.get_or_insert(format!(
                "timed out after {} s with {welcomed} of {count} welcomed",
                args.timeout_s
            ));
            return;
        }
        if welcomed + ended != last_progress.0 {
            last_progress = (welcomed + ended, Instant::now());
        } else if last_progress.1.elapsed() >= STALL {
            report.failure.get_or_insert(format!(
                "stalled: no WELCOME for {} s with {welcomed} of {count} welcomed",
                STALL.as_secs()
            ));
            return;
        }
        progress.show(|| {
            format!(
                "conns: {opened} opened, {welcomed} welcomed, {:.1} s",
                (shared.now_ns() - start_ns) as f64 / 1e9
            )
        });
        thread::sleep(Duration::from_millis(5));
    }
}

fn hold(args: &ConnsArgs, shared: &Shared, report: &mut ConnsReport, progress: &mut Progress) {
    let hold = Duration::from_secs(args.hold_s);
    let hold_start = Instant::now();
    while hold_start.elapsed() < hold {
        progress.show(|| {
            format!(
                "conns: holding {} clients, {:.0} s left",
                shared.welcomed.load(Ordering::Relaxed),
                hold.saturating_sub(hold_start.elapsed()).as_secs_f64()
            )
        });
        thread::sleep(Duration::from_millis(50));
    }
    report.hold = hold_start.elapsed();
}

/// Joins the readers and counts welcomes, refusals and closes.
fn collect(
    sweepers: Vec<JoinHandle<Swept>>,
    start_ns: u64,
    ramp_ns: u64,
    report: &mut ConnsReport,
) -> Vec<TcpStream> {
    let mut last_welcome = start_ns;
    let mut streams = Vec::new();
    for handle in sweepers {
        let Ok(swept) = handle.join() else {
            report
                .failure
                .get_or_insert("a reader thread panicked".into());
            continue;
        };
        streams.extend(swept.streams);
        for t in swept.tallies {
            if let Some(at) = t.welcome_ns {
                report.welcomed += 1;
                last_welcome = last_welcome.max(at);
            }
            match t.end {
                Some(End::Refused) => report.refused += 1,
                Some(End::Closed(_)) => report.closed += 1,
                None => {}
            }
        }
    }
    let ramp_end = if report.welcomed == report.count {
        last_welcome
    } else {
        ramp_ns
    };
    report.ramp = Duration::from_nanos(ramp_end.saturating_sub(start_ns));
    streams
}

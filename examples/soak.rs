//! `make soak`: one `tcphub serve` child process under every kind of abuse at
//! once, for a long time, while two canary clients check that the contract
//! still holds for them, and at the end that the hub gave everything back.
//!
//! The abuse, each in its own thread, in a loop until the time is up:
//! - **churn**: connect, get `WELCOME`, then `/quit`, hang up, half-close,
//!   or say something and hang up;
//! - **flood**: publishers sending `/pub flood ...` as fast as the hub lets
//!   them, read by one fast subscriber (which checks order and loss per
//!   publisher);
//! - **slow readers**: subscribed to the flood, reading a trickle: cut off
//!   (by `--max-pending`: they keep reading, and `--write-timeout-ms` counts
//!   only while the hub can hand a client nothing), then back;
//! - **dead readers**: subscribed to the flood, never reading: cut off, then
//!   back;
//! - **garbage**: bad UTF-8, over-long lines, unknown commands, control
//!   bytes, telnet negotiation; each gets its `ERR` (or is relayed, or
//!   removed) and the connection carries on (`/ping`).
//!
//! The canaries `canary-a` and `canary-b` DM each other numbered lines
//! (every one must arrive, in order) and `/ping` (round trips recorded;
//! p99 must stay under a generous bound). At the end, with only the
//! canaries left, the hub's threads and file descriptors must be back to
//! what they were with only the canaries connected, and its resident memory
//! within a tolerance of it (/proc/PID/task, fd, status).
//!
//! ```text
//! cargo build --release --bins --examples
//! SOAK_SECONDS=60 target/release/examples/soak      # default 600
//! target/release/examples/soak --seconds 60 --hub target/release/tcphub
//! ```
//!
//! Exit status 0 if everything held, 1 otherwise. Everything is bounded:
//! one thread per role, connections closed at each cycle, 127.0.0.1 only.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tcphub::bench::stats::Histogram;
use tcphub::bench::target::proc_status;
use tcphub::support::server_process::ServerProcess;

/// The hub's flags: small limits, so the slow and dead readers are cut off
/// within seconds and the over-long lines are cheap to make.
const SERVE_FLAGS: &[&str] = &[
    "--write-timeout-ms",
    "1000",
    "--max-pending",
    "262144",
    "--max-line",
    "1024",
    "--line-timeout-ms",
    "5000",
];
/// A canary's `/ping` p99 must stay under this (the machine may be busy:
/// generous on purpose).
const PING_P99_BOUND: Duration = Duration::from_secs(2);
/// Resident memory at the end may exceed the baseline by this much (the
/// allocator keeps some freed memory for reuse).
const RSS_TOLERANCE_KIB: u64 = 32 * 1024;
/// How long the hub may take to give threads and descriptors back.
const SETTLE: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Counters {
    connects: AtomicU64,
    churned: AtomicU64,
    flood_lines: AtomicU64,
    flood_received: AtomicU64,
    flood_gaps: AtomicU64,
    flood_subscriber_cut: AtomicU64,
    slow_cut: AtomicU64,
    dead_cut: AtomicU64,
    dead_cycles: AtomicU64,
    garbage_errs: AtomicU64,
    garbage_cycles: AtomicU64,
    /// Things that break the contract: a garbage client closed on, a canary
    /// line lost, ...
    violations: AtomicU64,
    /// Connections the hub could not take (`connect` or `WELCOME` failed).
    connect_failures: AtomicU64,
}

fn bump(n: &AtomicU64) {
    n.fetch_add(1, Ordering::Relaxed);
}

fn get(n: &AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

/// A tiny deterministic random source (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr, c: &Counters) -> Option<(Conn, String)> {
        bump(&c.connects);
        let stream = match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(s) => s,
            Err(_) => {
                bump(&c.connect_failures);
                return None;
            }
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let mut conn = Conn {
            writer: stream.try_clone().ok()?,
            reader: BufReader::new(stream),
        };
        match conn.line() {
            Some(l) if l.starts_with("WELCOME ") => Some((conn, l[8..].to_string())),
            _ => {
                bump(&c.connect_failures);
                None
            }
        }
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes())
    }

    /// The next line (lossy UTF-8), `None` at end of stream, error or
    /// timeout.
    fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                buf.pop();
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
        }
    }

    /// Reads lines until one satisfies `want`; false on close or timeout.
    fn until(&mut self, mut want: impl FnMut(&str) -> bool) -> bool {
        while let Some(line) = self.line() {
            if want(&line) {
                return true;
            }
        }
        false
    }

    /// Reads and drops everything until the hub closes (true) or `within`
    /// passes (false).
    fn drain_to_eof(&mut self, within: Duration) -> bool {
        let end = Instant::now() + within;
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 64 * 1024];
        while Instant::now() < end {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => {}
            }
        }
        false
    }
}

/// Sleeps `d` unless `stop` comes first (checked every 50 ms).
fn nap(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

// ---- the abuse --------------------------------------------------------------

fn churn(addr: SocketAddr, stop: &AtomicBool, c: &Counters, seed: u64) {
    let mut rng = Rng(seed);
    while !stop.load(Ordering::Relaxed) {
        if let Some((mut conn, _)) = Conn::open(addr, c) {
            match rng.below(4) {
                0 => {
                    let _ = conn.send("/quit");
                    conn.until(|l| l == "BYE");
                }
                1 => {}
                2 => {
                    let _ = conn.send("/sub churn");
                    let _ = conn.send("hello from churn");
                }
                _ => {
                    let _ = conn.send("/ping");
                    let _ = conn.writer.shutdown(Shutdown::Write);
                    conn.drain_to_eof(Duration::from_secs(5));
                }
            }
            bump(&c.churned);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Publishes as fast as the hub takes it; a drain thread reads what the hub
/// sends it (JOIN, LEAVE, chat), so only its writing is under test.
fn flooder(addr: SocketAddr, stop: &AtomicBool, c: &Counters) {
    while !stop.load(Ordering::Relaxed) {
        let Some((conn, nick)) = Conn::open(addr, c) else {
            nap(stop, Duration::from_millis(200));
            continue;
        };
        let mut writer = conn.writer;
        let mut reader = conn.reader;
        let drain = thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
        });
        let padding = "f".repeat(150);
        let mut seq = 0u64;
        let mut chunk = Vec::new();
        'connection: while !stop.load(Ordering::Relaxed) {
            chunk.clear();
            for _ in 0..50 {
                chunk.extend_from_slice(format!("/pub flood {nick}:{seq} {padding}\n").as_bytes());
                seq += 1;
            }
            if writer.write_all(&chunk).is_err() {
                break 'connection;
            }
            c.flood_lines.fetch_add(50, Ordering::Relaxed);
        }
        let _ = writer.shutdown(Shutdown::Both);
        let _ = drain.join();
    }
}

/// Reads the flood as fast as it can; checks each publisher's numbers come
/// one after the other.
fn flood_subscriber(addr: SocketAddr, stop: &AtomicBool, c: &Counters) {
    while !stop.load(Ordering::Relaxed) {
        let Some((mut conn, _)) = Conn::open(addr, c) else {
            nap(stop, Duration::from_millis(200));
            continue;
        };
        let _ = conn.send("/sub flood");
        let _ = conn
            .reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(500)));
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            buf.clear();
            match conn.reader.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    bump(&c.flood_subscriber_cut);
                    break;
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(_) => {
                    bump(&c.flood_subscriber_cut);
                    break;
                }
            }
            let Some(rest) = buf.strip_prefix(b"EVENT flood ") else {
                continue;
            };
            bump(&c.flood_received);
            // EVENT flood <from> <from>:<seq> <padding>
            let text = String::from_utf8_lossy(rest);
            let mut words = text.split(' ');
            let (Some(_), Some(tag)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((from, seq)) = tag.split_once(':') else {
                continue;
            };
            let Ok(seq) = seq.parse::<u64>() else {
                continue;
            };
            if let Some(&prev) = last.get(from)
                && seq != prev + 1
            {
                bump(&c.flood_gaps);
            }
            last.insert(from.to_string(), seq);
        }
    }
}

/// Subscribed to the flood, reading 1 KiB every 50 ms: far slower than the
/// flood, so the hub cuts it off; then it comes back.
fn slow_reader(addr: SocketAddr, stop: &AtomicBool, c: &Counters) {
    while !stop.load(Ordering::Relaxed) {
        let Some((mut conn, _)) = Conn::open(addr, c) else {
            nap(stop, Duration::from_millis(200));
            continue;
        };
        let _ = conn.send("/sub flood");
        let end = Instant::now() + Duration::from_secs(6);
        let mut buf = [0u8; 1024];
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            match conn.reader.read(&mut buf) {
                Ok(0) => {
                    bump(&c.slow_cut);
                    break;
                }
                Ok(_) => thread::sleep(Duration::from_millis(50)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    bump(&c.slow_cut);
                    break;
                }
                Err(_) => break,
            }
        }
        // Its kernel buffers hold megabytes the trickle has not reached:
        // read them fast to see whether the hub closed it.
        if Instant::now() >= end && conn.drain_to_eof(Duration::from_secs(3)) {
            bump(&c.slow_cut);
        }
    }
}

/// Subscribed to the flood, never reading; after 4 s, looks whether the hub
/// closed it (it should have), then comes back.
fn dead_reader(addr: SocketAddr, stop: &AtomicBool, c: &Counters) {
    while !stop.load(Ordering::Relaxed) {
        let Some((mut conn, _)) = Conn::open(addr, c) else {
            nap(stop, Duration::from_millis(200));
            continue;
        };
        let _ = conn.send("/sub flood");
        nap(stop, Duration::from_secs(4));
        bump(&c.dead_cycles);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if conn.drain_to_eof(Duration::from_secs(2)) {
            bump(&c.dead_cut);
        }
    }
}

/// Lines the hub must refuse (or relay) without closing the connection.
fn garbage(addr: SocketAddr, stop: &AtomicBool, c: &Counters, seed: u64) {
    let mut rng = Rng(seed);
    while !stop.load(Ordering::Relaxed) {
        let Some((mut conn, _)) = Conn::open(addr, c) else {
            nap(stop, Duration::from_millis(200));
            continue;
        };
        let mut bytes: Vec<u8> = Vec::new();
        for _ in 0..20 {
            match rng.below(8) {
                // (0xFF on this raw connection is just another byte that
                // is not UTF-8; see case 7.)
                0 => bytes.extend_from_slice(b"\xc3\x28 bad utf-8\n\xfe\xfe\n"),
                1 => {
                    bytes.extend(std::iter::repeat_n(b'g', 1024 + rng.below(4000) as usize));
                    bytes.push(b'\n');
                }
                2 => bytes.extend_from_slice(b"/bogus\n/NICK x\n/nick bad.name\n/pub *\n"),
                3 => bytes.extend_from_slice(b"/dm nobody-here hi\n/sub\n/quit now\n"),
                4 => bytes.extend_from_slice(b"\r\r\n\x00\x01\x02 control\n\n\r\n"),
                5 => {
                    // random bytes, never a `/` (no accidental /quit) nor
                    // 0xFF (kept out so the mix stays as it was), then \n
                    for _ in 0..rng.below(200) {
                        let b = (rng.next() & 0xff) as u8;
                        let odd = matches!(b, b'/' | b'\n' | 0xff);
                        bytes.push(if odd { b'.' } else { b });
                    }
                    bytes.push(b'\n');
                }
                6 => bytes.extend_from_slice(b"/list\n/help\n"),
                // telnet negotiation (IAC WILL ECHO) in the middle of a raw
                // connection: not telnet, so kept, and the line is ERR bad-utf8
                _ => bytes.extend_from_slice(b"\xff\xfb\x01telnet says hi\n"),
            }
        }
        bytes.extend_from_slice(b"/ping\n");
        if conn.writer.write_all(&bytes).is_err() {
            bump(&c.violations);
            eprintln!("soak: a garbage client could not write (closed?)");
            continue;
        }
        let mut errs = 0;
        let mut last = String::new();
        let sent_at = Instant::now();
        let ponged = loop {
            let mut buf = Vec::new();
            match conn.reader.read_until(b'\n', &mut buf) {
                Ok(0) => break Err("closed".to_string()),
                Ok(_) => {}
                Err(e) => break Err(e.to_string()),
            }
            let line = String::from_utf8_lossy(&buf);
            if line.starts_with("ERR ") {
                errs += 1;
            }
            if line == "PONG\n" {
                break Ok(());
            }
            last = line.chars().take(100).collect();
        };
        c.garbage_errs.fetch_add(errs, Ordering::Relaxed);
        bump(&c.garbage_cycles);
        if let Err(why) = ponged {
            bump(&c.violations);
            eprintln!(
                "soak: a garbage client got no PONG ({why} after {:?}; last line {last:?})",
                sent_at.elapsed()
            );
        }
        let _ = conn.send("/quit");
        conn.until(|l| l == "BYE");
        nap(stop, Duration::from_millis(20));
    }
}

// ---- the canaries -----------------------------------------------------------

struct Canary {
    name: &'static str,
    peer: &'static str,
    /// DMs sent to the peer.
    sent: AtomicU64,
    /// The next number expected from the peer.
    next_expected: AtomicU64,
    lost_or_reordered: AtomicU64,
    pings: Mutex<VecDeque<Instant>>,
    latency: Mutex<Histogram>,
    closed: AtomicBool,
    errors: AtomicU64,
}

fn canary(addr: SocketAddr, name: &'static str, peer: &'static str) -> (Arc<Canary>, Conn) {
    let c = Counters::default();
    let (mut conn, _) = Conn::open(addr, &c).expect("a canary connects");
    conn.send(&format!("/nick {name}")).expect("canary writes");
    assert!(
        conn.until(|l| l == format!("OK nick {name}")),
        "{name} renames"
    );
    let state = Arc::new(Canary {
        name,
        peer,
        sent: AtomicU64::new(0),
        next_expected: AtomicU64::new(0),
        lost_or_reordered: AtomicU64::new(0),
        pings: Mutex::new(VecDeque::new()),
        latency: Mutex::new(Histogram::new()),
        closed: AtomicBool::new(false),
        errors: AtomicU64::new(0),
    });
    (state, conn)
}

/// The canary's reader: DMs from the peer must count up by one; each PONG
/// answers the oldest outstanding ping.
fn canary_reader(state: Arc<Canary>, mut conn: Conn) {
    let _ = conn
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(30)));
    let dm = format!("DM {} ", state.peer);
    while let Some(line) = conn.line() {
        if line == "PONG" {
            if let Some(sent) = state.pings.lock().unwrap().pop_front() {
                let ns = sent.elapsed().as_nanos() as u64;
                state.latency.lock().unwrap().record(ns);
            }
        } else if let Some(n) = line.strip_prefix(&dm) {
            let n: u64 = n.parse().unwrap_or(u64::MAX);
            let want = state.next_expected.load(Ordering::SeqCst);
            if n != want {
                state.lost_or_reordered.fetch_add(1, Ordering::SeqCst);
                eprintln!("soak: {} expected DM {want}, got {n}", state.name);
            }
            state
                .next_expected
                .store(n.wrapping_add(1), Ordering::SeqCst);
        } else if line.starts_with("ERR ") {
            state.errors.fetch_add(1, Ordering::SeqCst);
            eprintln!("soak: {} got {line}", state.name);
        }
    }
    state.closed.store(true, Ordering::SeqCst);
}

/// The canary's writer: a numbered DM every 20 ms, a ping every 100 ms.
fn canary_writer(state: &Canary, mut writer: TcpStream, stop: &AtomicBool) {
    let mut tick = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = state.sent.load(Ordering::SeqCst);
        if writer
            .write_all(format!("/dm {} {n}\n", state.peer).as_bytes())
            .is_err()
        {
            break;
        }
        state.sent.store(n + 1, Ordering::SeqCst);
        if tick.is_multiple_of(5) {
            state.pings.lock().unwrap().push_back(Instant::now());
            if writer.write_all(b"/ping\n").is_err() {
                break;
            }
        }
        tick += 1;
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- the hub's resources ----------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Resources {
    threads: u64,
    fds: u64,
    rss_kib: u64,
    peak_rss_kib: u64,
}

fn resources(pid: u32) -> Resources {
    let s = proc_status(pid).expect("the hub's /proc is readable");
    Resources {
        threads: s.threads,
        fds: s.fds.unwrap_or(0),
        rss_kib: s.rss_kib,
        peak_rss_kib: s.peak_rss_kib,
    }
}

fn settings() -> (Duration, PathBuf) {
    let mut seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let exe = std::env::current_exe().expect("own path");
    // target/<profile>/examples/soak -> target/<profile>/tcphub
    let mut hub = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("tcphub"))
        .unwrap_or_else(|| PathBuf::from("tcphub"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            "--hub" => hub = PathBuf::from(args.next().expect("--hub PATH")),
            _ => {
                eprintln!("usage: soak [--seconds N] [--hub PATH]  (or SOAK_SECONDS=N)");
                std::process::exit(2);
            }
        }
    }
    (Duration::from_secs(seconds.max(1)), hub)
}

fn main() -> ExitCode {
    let (duration, hub_path) = settings();
    let hub = match start_hub(&hub_path, duration) {
        Ok(hub) => hub,
        Err(code) => return code,
    };
    let (addr, pid) = (hub.addr(), hub.pid());

    let (a, conn_a) = canary(addr, "canary-a", "canary-b");
    let (b, conn_b) = canary(addr, "canary-b", "canary-a");
    let writer_a = conn_a.writer.try_clone().expect("clone");
    let writer_b = conn_b.writer.try_clone().expect("clone");
    thread::sleep(Duration::from_millis(300));
    let baseline = resources(pid);
    eprintln!("soak: baseline with the two canaries: {baseline:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut handles = Vec::new();
    {
        let (a, b) = (a.clone(), b.clone());
        handles.push(thread::spawn(move || canary_reader(a, conn_a)));
        handles.push(thread::spawn(move || canary_reader(b, conn_b)));
    }
    let writers: Vec<_> = [(a.clone(), writer_a), (b.clone(), writer_b)]
        .into_iter()
        .map(|(state, writer)| {
            let stop = stop.clone();
            thread::spawn(move || canary_writer(&state, writer, &stop))
        })
        .collect();
    let workers = spawn_abuse(addr, &stop, &counters);

    let peak = watch(pid, duration, baseline, &counters);
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }
    for w in writers {
        let _ = w.join();
    }
    wait_for_last_dms(&a, &b);
    let (end, settled_in) = settle(pid, baseline);
    let usage = Usage {
        baseline,
        peak,
        end,
        settled_in,
    };

    let latency = ping_latency(&a, &b);
    let failures = failures(&a, &b, &latency, &counters, &usage);
    print_summary(duration, pid, &counters, (&a, &b), &latency, &usage);
    drop(hub);
    for h in handles {
        let _ = h.join();
    }
    if failures.is_empty() {
        println!("soak: OK");
        ExitCode::SUCCESS
    } else {
        for f in &failures {
            println!("soak: FAIL {f}");
        }
        ExitCode::from(1)
    }
}

/// Starts the `tcphub serve` child on a free port with the small limits of
/// [`SERVE_FLAGS`]; on failure, the exit code (2) to return.
fn start_hub(hub_path: &Path, duration: Duration) -> Result<ServerProcess, ExitCode> {
    let mut command = Command::new(hub_path);
    command
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .args(SERVE_FLAGS)
        .env("RUST_LOG", "error");
    let hub = match ServerProcess::spawn(command, Duration::from_secs(20)) {
        Ok(hub) => hub,
        Err(e) => {
            eprintln!("soak: cannot start {}: {e}", hub_path.display());
            return Err(ExitCode::from(2));
        }
    };
    eprintln!(
        "soak: {} serve on {} (pid {}) for {duration:?}",
        hub_path.display(),
        hub.addr(),
        hub.pid()
    );
    Ok(hub)
}

/// Starts one thread per abuse role (see the module doc), each with its
/// own seed, all running until `stop`.
fn spawn_abuse(
    addr: SocketAddr,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Counters>,
) -> Vec<thread::JoinHandle<()>> {
    type Role = fn(SocketAddr, &AtomicBool, &Counters, u64);
    let roles: Vec<(&str, Role)> = vec![
        ("churn", |a, s, c, seed| churn(a, s, c, seed)),
        ("churn", |a, s, c, seed| churn(a, s, c, seed)),
        ("flooder", |a, s, c, _| flooder(a, s, c)),
        ("flooder", |a, s, c, _| flooder(a, s, c)),
        ("flood-subscriber", |a, s, c, _| flood_subscriber(a, s, c)),
        ("slow", |a, s, c, _| slow_reader(a, s, c)),
        ("slow", |a, s, c, _| slow_reader(a, s, c)),
        ("dead", |a, s, c, _| dead_reader(a, s, c)),
        ("dead", |a, s, c, _| dead_reader(a, s, c)),
        ("dead", |a, s, c, _| dead_reader(a, s, c)),
        ("garbage", |a, s, c, seed| garbage(a, s, c, seed)),
        ("garbage", |a, s, c, seed| garbage(a, s, c, seed)),
    ];
    roles
        .into_iter()
        .enumerate()
        .map(|(i, (name, role))| {
            let (stop, counters) = (stop.clone(), counters.clone());
            thread::Builder::new()
                .name(format!("soak-{name}-{i}"))
                .spawn(move || {
                    role(
                        addr,
                        &stop,
                        &counters,
                        0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1),
                    )
                })
                .expect("start a soak thread")
        })
        .collect()
}

/// The soak itself: samples the hub's resources every 250 ms for
/// `duration` (a progress line every 10 s); returns the peaks.
fn watch(pid: u32, duration: Duration, baseline: Resources, counters: &Counters) -> Resources {
    let start = Instant::now();
    let mut peak = baseline;
    let mut next_report = Instant::now() + Duration::from_secs(10);
    while start.elapsed() < duration {
        thread::sleep(Duration::from_millis(250).min(duration.saturating_sub(start.elapsed())));
        let now = resources(pid);
        peak.threads = peak.threads.max(now.threads);
        peak.fds = peak.fds.max(now.fds);
        peak.rss_kib = peak.rss_kib.max(now.rss_kib);
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(10);
            eprintln!(
                "soak: {:>4.0}s connects {} flood lines {} cut off slow {} dead {} | hub threads {} fds {} rss {} kB",
                start.elapsed().as_secs_f64(),
                get(&counters.connects),
                get(&counters.flood_lines),
                get(&counters.slow_cut),
                get(&counters.dead_cut),
                now.threads,
                now.fds,
                now.rss_kib
            );
        }
    }
    peak
}

/// Every DM sent must arrive: waits (at most 15 s) until each canary has
/// read all the other sent, so the check after does not race the last ones.
fn wait_for_last_dms(a: &Canary, b: &Canary) {
    let drained = Instant::now() + Duration::from_secs(15);
    while Instant::now() < drained
        && (a.next_expected.load(Ordering::SeqCst) < b.sent.load(Ordering::SeqCst)
            || b.next_expected.load(Ordering::SeqCst) < a.sent.load(Ordering::SeqCst))
    {
        thread::sleep(Duration::from_millis(50));
    }
}

/// Only the canaries are left: the hub must give the rest back. Waits (at
/// most [`SETTLE`]) for threads and descriptors to fall back to the
/// baseline; returns the resources then and how long that took.
fn settle(pid: u32, baseline: Resources) -> (Resources, Duration) {
    let settle_start = Instant::now();
    let mut end = resources(pid);
    while settle_start.elapsed() < SETTLE
        && (end.threads > baseline.threads || end.fds > baseline.fds)
    {
        thread::sleep(Duration::from_millis(200));
        end = resources(pid);
    }
    (end, settle_start.elapsed())
}

/// The hub's resources over the soak: with only the canaries (baseline),
/// at their highest, and at the end once settled.
struct Usage {
    baseline: Resources,
    peak: Resources,
    end: Resources,
    settled_in: Duration,
}

/// Both canaries' `/ping` round trips in one histogram.
fn ping_latency(a: &Canary, b: &Canary) -> Histogram {
    let mut latency = Histogram::new();
    for canary in [a, b] {
        latency.merge(&canary.latency.lock().unwrap());
    }
    latency
}

/// What broke the contract, one sentence each; empty if everything held.
fn failures(
    a: &Canary,
    b: &Canary,
    latency: &Histogram,
    counters: &Counters,
    usage: &Usage,
) -> Vec<String> {
    let mut failures = canary_failures(a, b);
    let p99 = latency.percentile_duration(99.0);
    if latency.count() == 0 {
        failures.push("no ping came back".into());
    } else if p99 > PING_P99_BOUND {
        failures.push(format!("ping p99 {p99:?} > {PING_P99_BOUND:?}"));
    }
    if get(&counters.flood_gaps) > 0 {
        failures.push(format!(
            "the flood subscriber saw {} gaps or reorders",
            get(&counters.flood_gaps)
        ));
    }
    if get(&counters.violations) > 0 {
        failures.push(format!(
            "{} garbage clients closed on or stalled",
            get(&counters.violations)
        ));
    }
    let (baseline, end) = (usage.baseline, usage.end);
    if end.threads > baseline.threads {
        failures.push(format!(
            "threads {} > baseline {}",
            end.threads, baseline.threads
        ));
    }
    if end.fds > baseline.fds {
        failures.push(format!("fds {} > baseline {}", end.fds, baseline.fds));
    }
    if end.rss_kib > baseline.rss_kib + RSS_TOLERANCE_KIB {
        failures.push(format!(
            "rss {} kB > baseline {} kB + {} kB",
            end.rss_kib, baseline.rss_kib, RSS_TOLERANCE_KIB
        ));
    }
    if get(&counters.dead_cycles) > 1 && get(&counters.dead_cut) == 0 {
        failures.push("no dead reader was ever cut off".into());
    }
    failures
}

/// The canaries' side of the contract: every DM arrived, in order, and
/// neither was disconnected or sent an `ERR`.
fn canary_failures(a: &Canary, b: &Canary) -> Vec<String> {
    let mut failures = Vec::new();
    for canary in [a, b] {
        let sent = canary.sent.load(Ordering::SeqCst);
        let other = if canary.name == "canary-a" { b } else { a };
        let got = other.next_expected.load(Ordering::SeqCst);
        if got != sent {
            failures.push(format!(
                "{} sent {sent} DMs, {} got up to {got}",
                canary.name, other.name
            ));
        }
        if canary.lost_or_reordered.load(Ordering::SeqCst) > 0 {
            failures.push(format!("{} saw DMs lost or out of order", canary.name));
        }
        if canary.closed.load(Ordering::SeqCst) {
            failures.push(format!("{} was disconnected", canary.name));
        }
        if canary.errors.load(Ordering::SeqCst) > 0 {
            failures.push(format!("{} got ERR lines", canary.name));
        }
    }
    failures
}

/// The summary on stdout: what each kind of abuse did, what the canaries
/// saw, and the hub's resources (baseline, peak, end).
fn print_summary(
    duration: Duration,
    pid: u32,
    counters: &Counters,
    (a, b): (&Canary, &Canary),
    latency: &Histogram,
    usage: &Usage,
) {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    let Usage {
        baseline,
        peak,
        end,
        settled_in,
    } = usage;
    println!(
        "soak summary ({:.0} s against pid {pid})",
        duration.as_secs_f64()
    );
    println!(
        "  connections opened       {} ({} churned, {} refused or unanswered)",
        get(&counters.connects),
        get(&counters.churned),
        get(&counters.connect_failures)
    );
    println!(
        "  flood                    {} lines published, {} received by the fast subscriber ({} gaps, cut off {} times)",
        get(&counters.flood_lines),
        get(&counters.flood_received),
        get(&counters.flood_gaps),
        get(&counters.flood_subscriber_cut)
    );
    println!(
        "  slow readers cut off     {}; dead readers cut off {} of {} cycles",
        get(&counters.slow_cut),
        get(&counters.dead_cut),
        get(&counters.dead_cycles)
    );
    println!(
        "  garbage                  {} cycles, {} ERR lines, {} closed on or stalled",
        get(&counters.garbage_cycles),
        get(&counters.garbage_errs),
        get(&counters.violations)
    );
    println!(
        "  canary DMs               a->b {} sent / {} in order; b->a {} sent / {} in order",
        a.sent.load(Ordering::SeqCst),
        b.next_expected.load(Ordering::SeqCst),
        b.sent.load(Ordering::SeqCst),
        a.next_expected.load(Ordering::SeqCst)
    );
    println!(
        "  canary /ping             {} round trips: p50 {}, p99 {}, max {} (bound p99 < {})",
        latency.count(),
        ms(latency.percentile_duration(50.0)),
        ms(latency.percentile_duration(99.0)),
        ms(Duration::from_nanos(latency.max())),
        ms(PING_P99_BOUND)
    );
    println!(
        "  hub threads              baseline {}, peak {}, end {} (must be <= baseline)",
        baseline.threads, peak.threads, end.threads
    );
    println!(
        "  hub fds                  baseline {}, peak {}, end {} (must be <= baseline)",
        baseline.fds, peak.fds, end.fds
    );
    println!(
        "  hub rss                  baseline {} kB, peak {} kB (VmHWM {} kB), end {} kB (must be <= baseline + {} kB); settled in {:.1} s",
        baseline.rss_kib,
        peak.rss_kib,
        end.peak_rss_kib,
        end.rss_kib,
        RSS_TOLERANCE_KIB,
        settled_in.as_secs_f64()
    );
}

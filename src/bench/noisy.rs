//! `tcphub bench noisy`: what a light client feels while its neighbours
//! flood.
//!
//! N flooders publish `/pub noisy ...` as fast as the server takes it, to
//! M subscribers that read everything, while K more subscribers never read
//! at all. One light client, not subscribed, sends `/ping` every
//! `--ping-interval-ms` and times each round trip. The report: the light
//! client's latency (p50/p99/max), the flooders' throughput, and whether
//! the non-readers were cut off (the light client sees their `LEAVE`).
//!
//! A flooder's lines are counted once the server has routed them: at the
//! end each flooder sends `/ping` and waits for `PONG`, and the server
//! handles a client's lines in order. Plain threads, like the rest of the
//! bench: one per flooder (and one reading its socket), one per reading
//! subscriber.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use clap::Args;

use super::BenchError;
use super::report::{Json, si};
use super::stats::Histogram;
use super::target::{ServerUnderTest, check_fd_limit, connect};

/// Flags of `tcphub bench noisy`.
#[derive(Debug, Clone, Args)]
pub struct NoisyArgs {
    /// Server to measure (host:port); without it, the threaded hub is
    /// started in this process on a free port.
    #[arg(long)]
    pub addr: Option<String>,
    /// Clients publishing as fast as they can.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub flooders: u64,
    /// Subscribers that read everything.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub subscribers: u64,
    /// Subscribers that never read (the server should cut them off).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub non_readers: u64,
    /// Seconds of flooding (and of pinging).
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Bytes of payload per published line.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub size: u64,
    /// The light client's pause between two pings.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub ping_interval_ms: u64,
    /// Give up waiting for any one reply (connect, WELCOME, PONG) after
    /// this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_s: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// What a noisy-neighbour run measured.
#[derive(Debug, Clone)]
pub struct NoisyReport {
    pub server: String,
    pub flooders: usize,
    pub subscribers: usize,
    pub non_readers: usize,
    pub size: usize,
    /// From the first flood write to the last flooder's final `PONG`.
    pub flood_elapsed: Duration,
    /// Lines the flooders published (all routed: see the module doc).
    pub published: u64,
    /// `EVENT` lines the reading subscribers received: every one of the
    /// `published` lines each, unless one was cut off.
    pub deliveries: u64,
    /// The light client's round trips.
    pub pings: u64,
    pub ping_p50: Duration,
    pub ping_p99: Duration,
    pub ping_max: Duration,
    /// Non-readers whose `LEAVE` the light client saw.
    pub non_readers_cut_off: usize,
    /// Flooders whose connection failed before the end.
    pub flooders_failed: usize,
    /// The first thing that went wrong (the light client lost, say).
    pub failure: Option<String>,
}

impl NoisyReport {
    /// Lines per second the flooders got through, all together.
    pub fn published_per_s(&self) -> f64 {
        self.published as f64 / self.flood_elapsed.as_secs_f64().max(1e-9)
    }

    /// `EVENT` lines per second the reading subscribers got.
    pub fn deliveries_per_s(&self) -> f64 {
        self.deliveries as f64 / self.flood_elapsed.as_secs_f64().max(1e-9)
    }

    /// A run where the light client stayed connected and got its pongs.
    pub fn ok(&self) -> bool {
        self.failure.is_none() && self.pings > 0
    }

    pub fn to_text(&self) -> String {
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        let mut out = format!(
            "noisy neighbours against {}\n  \
             {} flooders, {} reading subscribers, {} non-readers, {} B payloads, {:.1} s of flood\n  \
             flooders published    {} lines ({} lines/s); subscribers got {} of {} EVENT lines ({}/s)\n  \
             light client /ping    {} round trips: p50 {}, p99 {}, max {}\n  \
             non-readers cut off   {} of {}\n",
            self.server,
            self.flooders,
            self.subscribers,
            self.non_readers,
            self.size,
            self.flood_elapsed.as_secs_f64(),
            self.published,
            si(self.published_per_s()),
            self.deliveries,
            self.published * self.subscribers as u64,
            si(self.deliveries_per_s()),
            self.pings,
            ms(self.ping_p50),
            ms(self.ping_p99),
            ms(self.ping_max),
            self.non_readers_cut_off,
            self.non_readers,
        );
        if self.flooders_failed > 0 {
            out.push_str(&format!(
                "  flooders failed       {}\n",
                self.flooders_failed
            ));
        }
        if let Some(why) = &self.failure {
            out.push_str(&format!("  FAILED: {why}\n"));
        }
        out
    }

    pub fn to_json(&self) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mut j = Json::new();
        j.str("server", &self.server);
        j.bool("ok", self.ok());
        j.num("flooders", self.flooders as f64);
        j.num("subscribers", self.subscribers as f64);
        j.num("non_readers", self.non_readers as f64);
        j.num("size", self.size as f64);
        j.num("flood_s", self.flood_elapsed.as_secs_f64());
        j.num("published", self.published as f64);
        j.num("published_per_s", self.published_per_s().round());
        j.num("deliveries", self.deliveries as f64);
        j.num("deliveries_per_s", self.deliveries_per_s().round());
        j.num("pings", self.pings as f64);
        j.num("ping_p50_us", us(self.ping_p50));
        j.num("ping_p99_us", us(self.ping_p99));
        j.num("ping_max_us", us(self.ping_max));
        j.num("non_readers_cut_off", self.non_readers_cut_off as f64);
        j.num("flooders_failed", self.flooders_failed as f64);
        match &self.failure {
            Some(why) => j.str("failure", why),
            None => j.null("failure"),
        }
        j.finish()
    }
}

/// One connection read line by line with a timeout.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    nick: String,
}

impl Client {
    fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let stream = connect(addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut client = Client {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
            nick: String::new(),
        };
        let first = client.line()?;
        match first.strip_prefix("WELCOME ") {
            Some(nick) => client.nick = nick.to_string(),
            None => return Err(io::Error::other(format!("expected WELCOME, got {first:?}"))),
        }
        Ok(client)
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes())
    }

    fn line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        if self.reader.read_until(b'\n', &mut buf)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        buf.pop();
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Reads until `want`; every other line goes to `other`.
    fn until(&mut self, want: &str, mut other: impl FnMut(&str)) -> io::Result<()> {
        loop {
            let line = self.line()?;
            if line == want {
                return Ok(());
            }
            other(&line);
        }
    }
}

/// A flooder's result: lines published (and routed), whether it failed.
struct Flooded {
    lines: u64,
    pong_at: Option<Instant>,
    error: Option<String>,
}

fn flood(mut client: Client, size: usize, stop: Arc<AtomicBool>, timeout: Duration) -> Flooded {
    let payload = "n".repeat(size);
    let chunk = format!("/pub noisy {payload}\n").repeat(64);
    // Read what the server sends meanwhile (JOIN, LEAVE), so the flooder
    // is never a slow reader itself; the final PONG says all was routed.
    let mut reader = client.reader;
    let (pong_tx, pong_rx) = crossbeam_channel::bounded(1);
    let drain = thread::spawn(move || {
        let mut buf = Vec::new();
        loop {
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) if buf == b"PONG\n" => {
                    let _ = pong_tx.send(Instant::now());
                    break;
                }
                Ok(_) if buf.ends_with(b"\n") => buf.clear(),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => break,
            }
        }
    });
    let mut lines = 0;
    let mut error = None;
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = client.writer.write_all(chunk.as_bytes()) {
            error = Some(format!("flooder {}: {e}", client.nick));
            break;
        }
        lines += 64;
    }
    let mut pong_at = None;
    if error.is_none() {
        match client.writer.write_all(b"/ping\n") {
            Ok(()) => match pong_rx.recv_timeout(timeout) {
                Ok(at) => pong_at = Some(at),
                Err(_) => error = Some(format!("flooder {}: no PONG", client.nick)),
            },
            Err(e) => error = Some(format!("flooder {}: {e}", client.nick)),
        }
    }
    let _ = client.writer.shutdown(std::net::Shutdown::Both);
    let _ = drain.join();
    Flooded {
        lines,
        pong_at,
        error,
    }
}

/// A subscriber that reads everything until it has `expected` `EVENT`s
/// (known once the flood is over) or `stop`; returns its count.
fn subscriber(mut client: Client, expected: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> u64 {
    let _ = client
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)));
    let mut events = 0;
    // A line cut by a read timeout stays in `buf` until its end arrives.
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) && events < expected.load(Ordering::Acquire) {
        match client.reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => continue,
            Err(_) => break,
        }
        if buf.ends_with(b"\n") {
            if buf.starts_with(b"EVENT ") {
                events += 1;
            }
            buf.clear();
        }
    }
    events
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Runs the noisy-neighbour bench; errors only when it cannot start.
pub fn run(args: &NoisyArgs) -> Result<NoisyReport, BenchError> {
    if !args.duration_s.is_finite() || args.duration_s <= 0.0 {
        return Err(BenchError::Usage(
            "--duration-s takes seconds, more than 0".into(),
        ));
    }
    let clients = (args.flooders + args.subscribers + args.non_readers + 1) as usize;
    let target = match &args.addr {
        Some(addr) => ServerUnderTest::external(addr, None)?,
        None => ServerUnderTest::in_process(clients + 16)?,
    };
    let per_client = if target.in_this_process() { 2 } else { 1 };
    check_fd_limit((clients * per_client + 64) as u64)?;
    let report = measure(args, &target);
    drop(target);
    Ok(report)
}

fn measure(args: &NoisyArgs, target: &ServerUnderTest) -> NoisyReport {
    let mut run = NoisyRun::new(args, target);
    let outcome = run
        .connect()
        .and_then(|(light, flooding, nicks)| run.flood_and_ping(light, flooding, &nicks));
    if let Err(e) = outcome {
        run.report.failure = Some(e.to_string());
    }
    run.finish()
}

/// One noisy-neighbour run: the state its phases share.
struct NoisyRun<'a> {
    args: &'a NoisyArgs,
    addr: SocketAddr,
    timeout: Duration,
    report: NoisyReport,
    stop_subscribers: Arc<AtomicBool>,
    /// What each reading subscriber must receive: set once the flood is over.
    expected: Arc<AtomicU64>,
    stop_flood: Arc<AtomicBool>,
    subscribers: Vec<JoinHandle<u64>>,
    flooders: Vec<JoinHandle<Flooded>>,
    /// Held open, never read, until the end.
    non_readers: Vec<Client>,
}

impl<'a> NoisyRun<'a> {
    fn new(args: &'a NoisyArgs, target: &ServerUnderTest) -> Self {
        NoisyRun {
            args,
            addr: target.addr(),
            timeout: Duration::from_secs(args.timeout_s),
            report: NoisyReport {
                server: target.describe(),
                flooders: args.flooders as usize,
                subscribers: args.subscribers as usize,
                non_readers: args.non_readers as usize,
                size: args.size as usize,
                flood_elapsed: Duration::ZERO,
                published: 0,
                deliveries: 0,
                pings: 0,
                ping_p50: Duration::ZERO,
                ping_p99: Duration::ZERO,
                ping_max: Duration::ZERO,
                non_readers_cut_off: 0,
                flooders_failed: 0,
                failure: None,
            },
            stop_subscribers: Arc::new(AtomicBool::new(false)),
            expected: Arc::new(AtomicU64::new(u64::MAX)),
            stop_flood: Arc::new(AtomicBool::new(false)),
            subscribers: Vec::new(),
            flooders: Vec::new(),
            non_readers: Vec::new(),
        }
    }

    /// Phase 1: non-readers, reading subscribers (a thread each), the light
    /// client and the flooders' connections. Returns the light client, the
    /// flooders' connections and the non-readers' nicks.
    fn connect(&mut self) -> io::Result<(Client, Vec<Client>, HashSet<String>)> {
        let (addr, timeout) = (self.addr, self.timeout);
        let subscribe = |client: &mut Client| -> io::Result<()> {
            client.send("/sub noisy")?;
            client.until("OK sub noisy", |_| {})
        };
        for _ in 0..self.args.non_readers {
            let mut client = Client::open(addr, timeout)?;
            subscribe(&mut client)?;
            self.non_readers.push(client);
        }
        let nicks = self.non_readers.iter().map(|c| c.nick.clone()).collect();
        for _ in 0..self.args.subscribers {
            let mut client = Client::open(addr, timeout)?;
            subscribe(&mut client)?;
            let (expected, stop) = (self.expected.clone(), self.stop_subscribers.clone());
            let reader = thread::spawn(move || subscriber(client, expected, stop));
            self.subscribers.push(reader);
        }
        let mut light = Client::open(addr, timeout)?;
        let mut flooding = Vec::new();
        for _ in 0..self.args.flooders {
            flooding.push(Client::open(addr, timeout)?);
        }
        // Everyone is in: skip the JOIN lines the light client was sent.
        light.send("/ping")?;
        light.until("PONG", |_| {})?;
        Ok((light, flooding, nicks))
    }

    /// Phase 2: the flood, while the light client times `/ping` round trips
    /// and notes which non-readers the hub cut off (their `LEAVE`s).
    fn flood_and_ping(
        &mut self,
        mut light: Client,
        flooding: Vec<Client>,
        non_reader_nicks: &HashSet<String>,
    ) -> io::Result<()> {
        let mut cut_off = HashSet::new();
        let mut note = |line: &str| {
            if let Some(nick) = line.strip_prefix("LEAVE ")
                && non_reader_nicks.contains(nick)
            {
                cut_off.insert(nick.to_string());
            }
        };
        let started = Instant::now();
        for client in flooding {
            let (stop, size, timeout) = (
                self.stop_flood.clone(),
                self.args.size as usize,
                self.timeout,
            );
            self.flooders
                .push(thread::spawn(move || flood(client, size, stop, timeout)));
        }
        let duration = Duration::from_secs_f64(self.args.duration_s);
        let interval = Duration::from_millis(self.args.ping_interval_ms);
        let mut latency = Histogram::new();
        let result = (|| -> io::Result<()> {
            while started.elapsed() < duration {
                let sent = Instant::now();
                light.send("/ping")?;
                light.until("PONG", &mut note)?;
                latency.record(sent.elapsed().as_nanos() as u64);
                thread::sleep(interval.min(duration.saturating_sub(started.elapsed())));
            }
            Ok(())
        })();
        self.collect_flooders(started);
        let r = &mut self.report;
        r.pings = latency.count();
        r.ping_p50 = latency.percentile_duration(50.0);
        r.ping_p99 = latency.percentile_duration(99.0);
        r.ping_max = Duration::from_nanos(latency.max());
        result.map_err(|e| io::Error::new(e.kind(), format!("the light client: {e}")))?;
        // The flood is over: one more round trip collects the last LEAVEs.
        light.send("/ping")?;
        light.until("PONG", &mut note)?;
        self.report.non_readers_cut_off = cut_off.len();
        Ok(())
    }

    /// Stops the flood and counts what the flooders published, up to the
    /// last `PONG` any of them got (every line before it was routed).
    fn collect_flooders(&mut self, started: Instant) {
        self.stop_flood.store(true, Ordering::SeqCst);
        let mut last_pong = started;
        for flooder in self.flooders.drain(..) {
            let flooded = flooder.join().unwrap_or(Flooded {
                lines: 0,
                pong_at: None,
                error: Some("a flooder thread panicked".into()),
            });
            self.report.published += flooded.lines;
            if let Some(at) = flooded.pong_at {
                last_pong = last_pong.max(at);
            }
            if flooded.error.is_some() {
                self.report.flooders_failed += 1;
            }
        }
        self.report.flood_elapsed = last_pong - started;
    }

    /// Phase 3: every line was routed before the flooders' last PONG, so
    /// the reading subscribers must get them all: wait (bounded) for them.
    fn finish(mut self) -> NoisyReport {
        self.stop_flood.store(true, Ordering::SeqCst);
        for flooder in self.flooders.drain(..) {
            let _ = flooder.join();
        }
        self.expected
            .store(self.report.published, Ordering::Release);
        let waited = Instant::now();
        while self.subscribers.iter().any(|s| !s.is_finished()) && waited.elapsed() < self.timeout {
            thread::sleep(Duration::from_millis(20));
        }
        self.stop_subscribers.store(true, Ordering::SeqCst);
        for subscriber in self.subscribers.drain(..) {
            self.report.deliveries += subscriber.join().unwrap_or(0);
        }
        self.non_readers.clear();
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_reads_and_parses_as_json() {
        let report = NoisyReport {
            server: "x \"y\"".into(),
            flooders: 2,
            subscribers: 3,
            non_readers: 1,
            size: 10,
            flood_elapsed: Duration::from_secs(2),
            published: 1000,
            deliveries: 3000,
            pings: 10,
            ping_p50: Duration::from_micros(100),
            ping_p99: Duration::from_millis(2),
            ping_max: Duration::from_millis(3),
            non_readers_cut_off: 1,
            flooders_failed: 0,
            failure: None,
        };
        assert_eq!(report.published_per_s(), 500.0);
        let text = report.to_text();
        assert!(text.contains("1 of 1"), "{text}");
        let parsed = crate::support::json::parse(&report.to_json()).expect("valid JSON");
        assert!(parsed.field("ok").is_true());
        assert_eq!(parsed.field("non_readers_cut_off").u64(), Some(1));
        assert!(parsed.field("failure").is_null());
    }
}

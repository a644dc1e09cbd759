//! Ten thousand idle clients against the real `tcphub serve` binary.
//!
//! The hub runs as its own process so that its resident memory is its own.
//! Every join is announced to everyone already there, so opening 10,000
//! clients makes the hub write about 50 million `JOIN` lines: this test
//! drains them all (non-blocking reads swept by a few threads), or the hub
//! would rightly cut the silent clients off as slow consumers.
//!
//! Needs about 10,100 file descriptors in this process and as many in the
//! hub: `make test` raises `ulimit -n` first.

use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tcphub::support::server_process::ServerProcess;

const CLIENTS: usize = 10_000;
const DRAINERS: usize = 4;
/// Hang guard, not a speed target (`tcphub bench conns` measures speed).
const GIVE_UP: Duration = Duration::from_secs(240);
const MAX_RSS_KB: u64 = 150 * 1024;

fn soft_nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn start_hub() -> (ServerProcess, SocketAddr) {
    // TCPHUB_BIN runs another build (e.g. target/release/tcphub) instead.
    let bin = std::env::var("TCPHUB_BIN").unwrap_or(env!("CARGO_BIN_EXE_tcphub").to_string());
    let mut command = Command::new(bin);
    command
        .args(["serve", "--port", "0", "--max-clients", "20000"])
        .env("RUST_LOG", "warn");
    let hub = ServerProcess::spawn(command, Duration::from_secs(30)).expect("start tcphub serve");
    let addr = hub.addr();
    (hub, addr)
}

/// One drained connection: has it seen `WELCOME` yet?
struct Conn {
    stream: TcpStream,
    first: Vec<u8>,
    welcomed: bool,
}

#[test]
fn ten_thousand_idle_clients_fit_in_150_mb() {
    let limit = soft_nofile_limit();
    assert!(
        limit >= (CLIENTS + 200) as u64,
        "this test needs {} open files but `ulimit -n` is {limit}: run it with `make test`, \
         which raises the limit, or `ulimit -n 20000` first",
        CLIENTS + 200
    );
    let (hub, addr) = start_hub();
    let pid = hub.pid();

    let welcomed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (to_drainers, from_connector) = crossbeam_channel::unbounded::<TcpStream>();
    let drainers: Vec<_> = (0..DRAINERS)
        .map(|i| {
            let inbox = from_connector.clone();
            let welcomed = welcomed.clone();
            let done = done.clone();
            thread::Builder::new()
                .name(format!("drainer-{i}"))
                .spawn(move || drain(inbox, welcomed, done))
                .unwrap()
        })
        .collect();

    let start = Instant::now();
    let mut slow_connects = 0;
    for i in 0..CLIENTS {
        let t = Instant::now();
        let stream = TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("connection {i} of {CLIENTS} failed: {e}"));
        if t.elapsed() > Duration::from_millis(200) {
            slow_connects += 1;
        }
        stream.set_nonblocking(true).unwrap();
        to_drainers.send(stream).unwrap();
    }
    let connected = start.elapsed();
    eprintln!(
        "connected in {connected:?}; {slow_connects} connects took over 200 ms (SYN retried)"
    );
    while welcomed.load(Ordering::SeqCst) < CLIENTS {
        assert!(
            start.elapsed() < GIVE_UP,
            "only {} of {CLIENTS} clients got WELCOME in {GIVE_UP:?}",
            welcomed.load(Ordering::SeqCst)
        );
        thread::sleep(Duration::from_millis(20));
    }
    let all_welcomed = start.elapsed();

    // Let the JOIN storm finish: a last client's /ping is answered only
    // after the dispatcher has written everything queued before it.
    let mut probe = TcpStream::connect(addr).unwrap();
    probe.set_read_timeout(Some(GIVE_UP)).unwrap();
    std::io::Write::write_all(&mut probe, b"/ping\n").unwrap();
    let mut reader = BufReader::new(probe);
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the hub closed the probe");
        if line == "PONG\n" {
            break;
        }
    }
    let settled = start.elapsed();
    let rss_kb = proc_status(pid, "VmRSS:");
    if std::env::var("CAPACITY_PAUSE").is_ok() {
        eprintln!("pausing 30 s: hub pid {pid}");
        thread::sleep(Duration::from_secs(30));
    }
    let threads = proc_status(pid, "Threads:");
    eprintln!(
        "{CLIENTS} clients: connected in {connected:?}, all WELCOME after {all_welcomed:?}, \
         JOIN storm written after {settled:?}; hub RSS {rss_kb} kB ({:.1} kB per client), \
         {threads} threads",
        rss_kb as f64 / CLIENTS as f64
    );
    assert!(
        threads as usize > CLIENTS,
        "one thread per client expected, hub has {threads}"
    );
    assert!(
        rss_kb <= MAX_RSS_KB,
        "hub resident memory {rss_kb} kB exceeds {MAX_RSS_KB} kB with {CLIENTS} clients"
    );

    // Stop the hub first, so its side of each connection closes first.
    drop(hub);
    done.store(true, Ordering::SeqCst);
    drop(to_drainers);
    for d in drainers {
        d.join().unwrap();
    }
}

/// Sweeps its share of the connections with non-blocking reads, discarding
/// everything after the first line (which must be `WELCOME`).
fn drain(
    inbox: crossbeam_channel::Receiver<TcpStream>,
    welcomed: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !done.load(Ordering::SeqCst) {
        while let Ok(stream) = inbox.try_recv() {
            conns.push(Conn {
                stream,
                first: Vec::new(),
                welcomed: false,
            });
        }
        let mut idle = true;
        for conn in &mut conns {
            loop {
                match conn.stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        idle = false;
                        if !conn.welcomed {
                            conn.first.extend_from_slice(&buf[..n]);
                            if let Some(end) = conn.first.iter().position(|&b| b == b'\n') {
                                let line = &conn.first[..end];
                                assert!(
                                    line.starts_with(b"WELCOME guest-"),
                                    "first line {:?}",
                                    String::from_utf8_lossy(line)
                                );
                                conn.welcomed = true;
                                conn.first = Vec::new();
                                welcomed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
        }
        if idle {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

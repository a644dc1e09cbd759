//! One client cannot grow the hub's memory by more than its share.
//!
//! docs/architecture.md states a client's share as a formula of the flags:
//! about 12 kB of thread, `max_line + 64 KiB` of read buffer, `max_pending`
//! bytes waiting for the kernel, `max_subs x ~164 B` of subscriptions, and
//! its quota of the channel (1 MiB). This test runs the hub in its own
//! process, has one client do its worst at all of them at once, and reads
//! the hub's resident memory from /proc.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use tcphub::support::server_process::ServerProcess;

/// Resident memory of a process, in kB (Linux only).
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads whatever the hub sends for `for_how_long`, so its replies never
/// pile up in its pending buffer (that share is tested by tests/hostile.rs).
fn drain(socket: &mut TcpStream, for_how_long: Duration) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let end = Instant::now() + for_how_long;
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0;
    while Instant::now() < end {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(_) => {}
        }
    }
    total
}

#[test]
fn one_client_at_every_limit_stays_within_its_share() {
    let Some(_) = rss_kb(std::process::id()) else {
        eprintln!("skipped: no /proc here to read the hub's memory from");
        return;
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_tcphub"));
    command
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .env("RUST_LOG", "error");
    let hub = ServerProcess::spawn(command, Duration::from_secs(30)).expect("the hub starts");
    let mut client = TcpStream::connect(hub.addr()).expect("connect");
    drain(&mut client, Duration::from_millis(200));
    let before = rss_kb(hub.pid()).expect("the hub's RSS");

    // 50,000 different topics, in a few large writes: only --max-subs
    // (4096) are kept, the rest get ERR too-many-subs.
    let mut subs = String::new();
    for i in 0..50_000 {
        subs.push_str(&format!("/sub topic-{i:06}-{}\n", "x".repeat(40)));
        if subs.len() > 256 * 1024 {
            client.write_all(subs.as_bytes()).expect("send /sub");
            subs.clear();
            drain(&mut client, Duration::from_millis(5));
        }
    }
    client.write_all(subs.as_bytes()).expect("send /sub");
    // And 20 MB of a line that never ends: the framer keeps max_line of it.
    let chunk = vec![b'y'; 1024 * 1024];
    for _ in 0..20 {
        client.write_all(&chunk).expect("send the long line");
        drain(&mut client, Duration::from_millis(5));
    }
    client.write_all(b"\n/ping\n").expect("end it");
    let got = drain(&mut client, Duration::from_secs(3));
    assert!(got > 0, "the hub answered nothing");
    let after = rss_kb(hub.pid()).expect("the hub's RSS");
    let grew = after.saturating_sub(before);
    // The share by the formula: 12 kB + 4 KiB + 64 KiB + 1 MiB (pending,
    // unused here: we read) + 4096 x 164 B + 1 MiB of channel quota, about
    // 2.8 MB. Allocators round up and keep freed memory: allow 3x. Before
    // --max-subs, this client alone grew the hub by about 10 MB.
    let share_kb = 12 + 4 + 64 + 1024 + 4096 * 164 / 1024 + 1024;
    assert!(
        grew <= 3 * share_kb,
        "one client grew the hub by {grew} kB ({before} -> {after}), over 3 x its {share_kb} kB share"
    );
    eprintln!(
        "one client at every limit: hub RSS {before} -> {after} kB (+{grew} kB, share {share_kb} kB)"
    );
    hub.kill();
}

//! Same work everywhere: the limits of `tcphub serve`, told to every
//! server by the same flags, and checked from outside over real sockets.
//!
//! Each test starts a fresh server (a child process: `tcphub serve`, the
//! async twin, the readiness-loop twin, the Node twin) with one limit set
//! small, and asserts what a client sees: a reader too far behind is cut
//! off (`--max-pending`), and so is one that stays behind
//! (`--soft-pending` for `--soft-pending-ms`), an unfinished line is timed out
//! (`--line-timeout-ms`), a silent client is closed and a chatty one is not
//! (`--idle-timeout-ms`), one connection too many from an address is
//! refused (`--max-per-ip`), one subscription too many is refused
//! (`--max-subs`). Generous bounds on time only; never speed.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Limits, Peer, Server};

/// A way to start one server with extra serve flags.
type Start = fn(Limits, &[&str]) -> Box<dyn Server>;

fn threaded(limits: Limits, extra: &[&str]) -> Box<dyn Server> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tcphub"));
    command.arg("serve");
    common::spawn_server_with(command, limits, extra)
}

fn async_twin(limits: Limits, extra: &[&str]) -> Box<dyn Server> {
    let command = std::process::Command::new(common::async_twin_binary());
    common::spawn_server_with(command, limits, extra)
}

fn poll_twin(limits: Limits, extra: &[&str]) -> Box<dyn Server> {
    let command = std::process::Command::new(common::poll_twin_binary());
    common::spawn_server_with(command, limits, extra)
}

fn node_twin(limits: Limits, extra: &[&str]) -> Box<dyn Server> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node_hub.js");
    let mut command = std::process::Command::new("node");
    command.arg(script);
    common::spawn_server_with(command, limits, extra)
}

/// For servers that need nothing beyond this crate.
fn runs_everywhere() -> Option<String> {
    None
}

/// One `#[test]` per limit and server, as in tests/conformance.rs.
macro_rules! limits {
    ($name:ident, $start:path) => {
        limits!($name, $start, skip_if = runs_everywhere);
    };
    ($name:ident, $start:path, skip_if = $missing:path) => {
        mod $name {
            use super::*;
            limits!(@tests $start, $missing;
                max_pending_cuts_off_a_reader_too_far_behind,
                soft_pending_cuts_off_a_reader_that_stays_behind,
                an_unfinished_line_is_timed_out,
                a_silent_client_is_closed_and_a_chatty_one_is_not,
                max_per_ip_refuses_one_too_many_and_frees_the_place,
                max_subs_refuses_one_too_many,
            );
        }
    };
    (@tests $start:path, $missing:path; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                if let Some(reason) = $missing() {
                    eprintln!("skipped: {reason}");
                    return;
                }
                super::$test($start);
            }
        )*
    };
}

limits!(threaded_hub, threaded);
limits!(async_hub, async_twin);
limits!(poll_hub, poll_twin);
limits!(node_hub, node_twin, skip_if = common::node_missing);

/// A subscriber of `topic` that reads up to `OK sub`, then never again.
fn non_reader(addr: SocketAddr, topic: &str) -> Peer {
    let (mut peer, _) = Peer::join(addr, "non-reader");
    peer.send(&format!("/sub {topic}"));
    while !peer.recv().starts_with("OK sub") {}
    peer
}

/// Publishes 30 kB rounds of big lines on `topic` from another thread,
/// until `stop`, 3000 rounds or 20 s, whichever comes first.
fn flood(addr: SocketAddr, topic: &str, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let lines = format!("/pub {topic} {}\n", "x".repeat(3000)).repeat(10);
    let (publisher, _) = Peer::join(addr, "publisher");
    let mut socket = publisher.stream().try_clone().expect("a second handle");
    thread::spawn(move || {
        let _publisher = publisher;
        let start = Instant::now();
        for _ in 0..3000 {
            if stop.load(Ordering::SeqCst) || start.elapsed() > Duration::from_secs(20) {
                break;
            }
            if socket.write_all(lines.as_bytes()).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
    })
}

fn max_pending_cuts_off_a_reader_too_far_behind(start: Start) {
    // The write timeout alone would take a minute: only the size can cut.
    let limits = Limits {
        write_timeout_ms: 60_000,
        ..Limits::default()
    };
    let server = start(limits, &["--max-pending", "65536"]);
    non_reader_cut_off(server.as_ref());
}

fn soft_pending_cuts_off_a_reader_that_stays_behind(start: Start) {
    // Neither the write timeout (a minute) nor the hard limit (1 GiB) can
    // cut here: only 64 KiB held for 300 ms can.
    let limits = Limits {
        write_timeout_ms: 60_000,
        ..Limits::default()
    };
    let flags = [
        "--max-pending",
        "1073741824",
        "--soft-pending",
        "65536",
        "--soft-pending-ms",
        "300",
    ];
    let server = start(limits, &flags);
    non_reader_cut_off(server.as_ref());
}

/// A bystander, a subscriber that never reads (guest-2) and a flood on
/// its topic: the non-reader must be cut off (the bystander sees its
/// `LEAVE`) within the flood's 20 s.
fn non_reader_cut_off(server: &dyn Server) {
    let addr = server.addr();
    let (mut bystander, _) = Peer::join(addr, "bystander");
    // guest-2 (the bystander is guest-1, the publisher will be guest-3).
    let _stuck = non_reader(addr, "firehose");
    bystander.settle();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = flood(addr, "firehose", stop.clone());
    let began = Instant::now();
    let mut left = None;
    // Bounded: the flood itself stops after 20 s, and so does this.
    while left.is_none() && began.elapsed() < Duration::from_secs(20) {
        bystander.send("/ping");
        loop {
            let line = bystander.recv();
            if line == "PONG" {
                break;
            }
            if let Some(nick) = line.strip_prefix("LEAVE ") {
                left = Some(nick.to_string());
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    publisher.join().expect("the publisher thread");
    assert_eq!(
        left.as_deref(),
        Some("guest-2"),
        "the non-reader is cut off by the pending limit, long before the write timeout"
    );
}

fn an_unfinished_line_is_timed_out(start: Start) {
    let server = start(Limits::default(), &["--line-timeout-ms", "300"]);
    let addr = server.addr();
    let (mut other, _) = Peer::join(addr, "other");
    let (mut slowloris, nick) = Peer::join(addr, "slowloris");
    other.settle();
    // Whole lines keep working; a trickle of one unfinished line does not.
    slowloris.call("/ping", "PONG");
    let began = Instant::now();
    for byte in b"/pi" {
        slowloris.send_raw(&[*byte]);
        thread::sleep(Duration::from_millis(150));
    }
    slowloris.expect_err("line-timeout");
    slowloris.expect_closed();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    other.expect(&format!("LEAVE {nick}"));
}

fn a_silent_client_is_closed_and_a_chatty_one_is_not(start: Start) {
    let server = start(Limits::default(), &["--idle-timeout-ms", "300"]);
    let addr = server.addr();
    let (mut ghost, ghost_nick) = Peer::join(addr, "ghost");
    let (chatty, _) = Peer::join(addr, "chatty");
    // chatty pings every 100 ms, well within every idle period, for 900 ms.
    let chatting = common::ping_every_100ms(chatty, 9);
    // The ghost receives (chatty's JOIN) but sends nothing: idle all the same.
    let began = Instant::now();
    while !ghost.recv().starts_with("ERR idle-timeout ") {}
    ghost.expect_closed();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    let chatty_saw = chatting.join().expect("chatty's thread");
    assert!(
        chatty_saw.contains(&format!("LEAVE {ghost_nick}")),
        "the others see the ghost leave, and chatty stays: {chatty_saw:?}"
    );
}

fn max_per_ip_refuses_one_too_many_and_frees_the_place(start: Start) {
    let server = start(Limits::default(), &["--max-per-ip", "2"]);
    let addr = server.addr();
    let (mut a, _) = Peer::join(addr, "a");
    let (b, b_nick) = Peer::join(addr, "b");
    a.settle();
    let mut third = Peer::connect(addr, "third");
    third.expect_err("server-full");
    third.expect_closed();
    drop(b);
    a.expect(&format!("LEAVE {b_nick}"));
    // Nobody heard of the refused one (no JOIN, no LEAVE), and b's place
    // is free again.
    a.sync();
    let (mut again, _) = Peer::join(addr, "again");
    again.sync();
}

fn max_subs_refuses_one_too_many(start: Start) {
    let server = start(Limits::default(), &["--max-subs", "3"]);
    let (mut a, _) = Peer::join(server.addr(), "a");
    for topic in ["t1", "t2", "t3"] {
        a.call(&format!("/sub {topic}"), &format!("OK sub {topic}"));
    }
    a.send("/sub t4");
    a.expect_err("too-many-subs");
    a.call("/unsub t1", "OK unsub t1");
    a.call("/sub t4", "OK sub t4");
}

// ---- out of file descriptors ---------------------------------------------

/// `program args...` with room for 40 open files (far fewer than the
/// clients below), started like the others.
fn under_ulimit(program: &std::path::Path, args: &[&str]) -> Box<dyn Server> {
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -n 40 && exec \"$@\"")
        .arg("sh")
        .arg(program)
        .args(args);
    common::spawn_server(command, Limits::default())
}

/// 60 connections against 40 descriptors: what the first line of each is
/// (`WELCOME`, `ERR server-full`, or `end` when the server closed it
/// without a word). None may be left hanging.
fn sixty_first_lines(server: &dyn Server) -> (Vec<Peer>, Vec<String>) {
    let mut welcomed = Vec::new();
    let mut others = Vec::new();
    for i in 0..60 {
        let mut peer = Peer::connect(server.addr(), &format!("c{i}"));
        match peer.try_recv() {
            Ok(Some(line)) if line.starts_with("WELCOME ") => welcomed.push(peer),
            Ok(Some(line)) => others.push(line),
            Ok(None) => others.push("end".to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                others.push("end".to_string());
            }
            Err(e) => panic!("connection {i}: no first line: {e}"),
        }
    }
    (welcomed, others)
}

/// The twins that keep a spare descriptor, as the threaded hub does
/// (tests/hostile.rs): every extra client is told why, and the welcomed
/// ones are still served.
fn out_of_descriptors_the_extra_clients_are_told_server_full(binary: std::path::PathBuf) {
    let server = under_ulimit(&binary, &[]);
    let (mut welcomed, others) = sixty_first_lines(server.as_ref());
    assert!(!others.is_empty(), "60 clients fit in 40 descriptors?");
    assert!(welcomed.len() >= 20, "only {} welcomed", welcomed.len());
    for line in &others {
        assert!(
            line.starts_with("ERR server-full "),
            "every extra client hears why: {others:?}"
        );
    }
    welcomed[0].settle();
    welcomed[1].settle();
    welcomed[0].send("still here");
    welcomed[1].expect("MSG guest-1 still here");
}

/// This once left a connection with no byte for 10 s, 1 full run in 4: the
/// twin refused in a task of its own, the next client admitted took the
/// descriptor that refusal freed, the spare could not be reopened, and the
/// clients after it waited in the queue for ever (examples/async_hub.rs,
/// `Acceptor::accept_failed`, now refuses in place first).
#[test]
fn async_twin_out_of_descriptors_tells_the_extra_clients_server_full() {
    out_of_descriptors_the_extra_clients_are_told_server_full(common::async_twin_binary());
}

#[test]
fn poll_twin_out_of_descriptors_tells_the_extra_clients_server_full() {
    out_of_descriptors_the_extra_clients_are_told_server_full(common::poll_twin_binary());
}

/// Node cannot keep a descriptor of its own for this: libuv keeps one
/// instead, and on EMFILE accepts the waiting connection with it and
/// closes it at once (`uv__emfile_trick`). So the extra clients are not
/// left hanging either, but they hear nothing: the connection just ends.
#[test]
fn node_twin_out_of_descriptors_ends_the_extra_connections_without_a_word() {
    if let Some(reason) = common::node_missing() {
        eprintln!("skipped: {reason}");
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node_hub.js");
    let server = under_ulimit(
        std::path::Path::new("node"),
        &[script.to_str().expect("UTF-8 path")],
    );
    let (mut welcomed, others) = sixty_first_lines(server.as_ref());
    assert!(!others.is_empty(), "60 clients fit in 40 descriptors?");
    assert!(welcomed.len() >= 10, "only {} welcomed", welcomed.len());
    assert!(others.iter().all(|l| l == "end"), "{others:?}");
    welcomed[0].settle();
}

// ---- the same defaults ------------------------------------------------------

/// The async and poll twins take `tcphub serve`'s own flags (`ServeArgs`);
/// the Node twin writes its defaults down, and prints them with --help.
/// They must stay the hub's.
#[test]
fn the_node_twin_has_the_hubs_defaults() {
    if let Some(reason) = common::node_missing() {
        eprintln!("skipped: {reason}");
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node_hub.js");
    let out = std::process::Command::new("node")
        .arg(script)
        .arg("--help")
        .output()
        .expect("node runs");
    let usage = String::from_utf8_lossy(&out.stdout);
    let hub = tcphub::Config::default();
    let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis());
    for flag in [
        format!("[--max-clients {}]", hub.max_clients),
        format!("[--max-line {}]", hub.max_line),
        format!("[--write-timeout-ms {}]", hub.write_timeout.as_millis()),
        format!("[--channel-capacity {}]", hub.channel_capacity),
        format!("[--channel-bytes {}]", hub.channel_bytes),
        format!("[--max-pending {}]", hub.max_pending),
        format!("[--soft-pending {}]", hub.soft_pending),
        format!("[--soft-pending-ms {}]", hub.soft_pending_ms),
        format!("[--max-subs {}]", hub.max_subs),
        format!("[--line-timeout-ms {}]", ms(hub.line_timeout)),
        format!("[--idle-timeout-ms {}]", ms(hub.idle_timeout)),
        format!("[--max-per-ip {}]", hub.max_per_ip.unwrap_or(0)),
    ] {
        assert!(
            usage.contains(&flag),
            "node_hub.js --help lacks {flag}:\n{usage}"
        );
    }
}

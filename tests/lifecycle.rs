//! The hub as a library and as a command: start, name threads, stop cleanly,
//! and fail with one human line and exit code 2 on bad input.
//!
//! The thread test is alone in this file on purpose: it counts this
//! process's threads, and tests in one file run in parallel.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Peer;
use tcphub::{Config, Hub};

/// Names of this process's threads (Linux truncates them to 15 bytes).
fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc is mounted") {
        let comm = task.unwrap().path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            names.push(name.trim().to_string());
        }
    }
    names
}

fn hub_threads() -> Vec<String> {
    let mut names: Vec<String> = thread_names()
        .into_iter()
        .filter(|n| {
            n == "acceptor" || n == "dispatcher" || n == "monitor" || n.starts_with("client-")
        })
        .collect();
    names.sort();
    names
}

#[test]
fn threads_are_named_and_all_joined_on_shutdown() {
    assert!(hub_threads().is_empty(), "{:?}", hub_threads());
    // With the live view on, so its `monitor` thread is counted too.
    let hub = Hub::start(Config {
        monitor: Some("127.0.0.1:0".into()),
        ..Config::ephemeral()
    })
    .unwrap();
    let addr = hub.local_addr();
    let monitor = hub.monitor_addr().expect("the monitor runs");
    assert!(monitor.ip().is_loopback());
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let mut peers: Vec<Peer> = (1..=5)
        .map(|i| Peer::join(addr, &format!("p{i}")).0)
        .collect();
    // everyone has its WELCOME, so every reader thread exists
    for p in &mut peers {
        p.settle();
    }
    let mut expected: Vec<String> = ["acceptor", "dispatcher", "monitor"]
        .into_iter()
        .map(String::from)
        .chain((1..=5).map(|i| format!("client-{i}")))
        .collect();
    expected.sort();
    assert_eq!(hub_threads(), expected);
    assert_eq!(hub.clients(), 5);

    hub.shutdown();
    // shutdown() joined every thread before returning. A joined thread can
    // still be listed in /proc/self/task for a moment: the kernel wakes the
    // joiner when it clears the thread's id, before it removes the task
    // (seen 1 run in 8 here). So wait up to 1 s; a leaked thread stays.
    let deadline = Instant::now() + Duration::from_secs(1);
    while !hub_threads().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(hub_threads().is_empty(), "{:?}", hub_threads());
    // and the clients see the connection closed
    for p in &mut peers {
        p.expect_closed();
    }
    // the port is free again
    TcpListener::bind(addr).expect("the listener was closed");
    TcpListener::bind(monitor).expect("the monitor's listener was closed");
}

fn tcphub(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tcphub"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tcphub")
}

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {out:?}");
}

#[test]
fn serve_prints_one_listening_line_with_the_real_port() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcphub"))
        .args(["serve", "--port", "0"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line
        .strip_prefix("listening on ")
        .and_then(|a| a.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("first line {line:?}"));
    // the hub works on that address
    let (mut a, nick) = Peer::join(addr, "a");
    assert_eq!(nick, "guest-1");
    a.sync();
    child.kill().unwrap();
    child.wait().unwrap();
    // and nothing else was printed on stdout (logs go to stderr)
    let mut rest = String::new();
    let start = Instant::now();
    while stdout.read_line(&mut rest).unwrap_or(0) > 0 {
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(rest, "", "stdout carries only the listening line");
}

#[test]
fn a_port_in_use_is_a_one_line_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = tcphub(&["serve", "--port", &port]);
    assert_one_line_error(&out, "cannot listen on 127.0.0.1:");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port 0"));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn a_bad_address_is_a_one_line_error() {
    let out = tcphub(&["serve", "--host", "not an address", "--port", "0"]);
    assert_one_line_error(&out, "cannot use address not an address:0");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        &["serve", "--port", "70000"][..],
        &["serve", "--max-line", "0"],
        &["serve", "--max-clients", "zero"],
        &["serve", "--write-timeout-ms", "-1"],
        &["serve", "--nope"],
        &["nope"],
    ] {
        let out = tcphub(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

#[test]
fn help_explains_every_flag() {
    let top = tcphub(&["--help"]);
    let text = String::from_utf8_lossy(&top.stdout);
    for word in ["serve", "client", "agent", "simulate", "bench", "top"] {
        assert!(text.contains(word), "tcphub --help lacks {word}: {text}");
    }
    let serve = tcphub(&["serve", "--help"]);
    let text = String::from_utf8_lossy(&serve.stdout);
    for flag in [
        "--host",
        "--port",
        "--max-clients",
        "--max-line",
        "--write-timeout-ms",
        "--monitor",
        "[default: 3000]",
        "[default: 1024]",
        "[default: 4096]",
        "[default: 2000]",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}: {text}");
    }
}

//! The live view (`serve --monitor`, `GET /stats`, `GET /`, `tcphub top`):
//! what it shows is what the threads really do, and nothing a monitor
//! client does disturbs the hub's own clients.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::Peer;
use tcphub::support::json::{self, Value};
use tcphub::{Config, Hub};

fn hub_with_monitor(config: Config) -> (Hub, SocketAddr) {
    let hub = Hub::start(Config {
        monitor: Some("127.0.0.1:0".into()),
        ..config
    })
    .expect("hub starts");
    let monitor = hub.monitor_addr().expect("the monitor runs");
    (hub, monitor)
}

/// Sends `request` as is and reads the whole answer (the monitor closes).
fn raw_request(monitor: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(monitor).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(monitor: SocketAddr, path: &str) -> (u16, String) {
    let answer = raw_request(
        monitor,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    );
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

fn stats(monitor: SocketAddr) -> Value {
    let (status, body) = get(monitor, "/stats");
    assert_eq!(status, 200, "{body}");
    json::parse(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn thread<'a>(stats: &'a Value, name: &str) -> Option<&'a Value> {
    stats
        .field("threads")
        .items()
        .iter()
        .find(|t| t.field("name").as_str() == Some(name))
}

fn client<'a>(stats: &'a Value, nick: &str) -> Option<&'a Value> {
    stats
        .field("clients")
        .items()
        .iter()
        .find(|c| c.field("nick").as_str() == Some(nick))
}

/// Polls `/stats` until `check` holds (returns that snapshot), for at most
/// `within`.
fn until(
    monitor: SocketAddr,
    within: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let s = stats(monitor);
        if check(&s) {
            return s;
        }
        assert!(
            start.elapsed() < within,
            "never saw {what}; last /stats:\n{s:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Publishes `line` on its own socket as fast as the hub takes it, until
/// stopped; the hub's backpressure is what slows it down.
fn flood(addr: SocketAddr, line: String, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let (peer, _) = Peer::join(addr, "flooder");
    thread::spawn(move || {
        let mut s = peer.stream().try_clone().unwrap();
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let bytes = format!("{line}\n").repeat(16);
        let mut sent = 0usize;
        while !stop.load(Ordering::SeqCst) && sent < 64 << 20 {
            match s.write(bytes.as_bytes()) {
                Ok(n) => sent += n,
                Err(e) if tcphub::support::timeouts::is_timeout(&e) => {}
                Err(_) => break,
            }
        }
        // Keeps the peer (and so the connection) until the flood ends.
        let _ = peer.stream();
    })
}

#[test]
fn stats_shows_each_thread_blocked_where_it_really_is() {
    // The old blocking writer (the hub otherwise never waits on a socket)
    // with a long write timeout, so the dispatcher visibly sits in
    // writev(), and a channel of 2 so the flooder's thread visibly waits on
    // it.
    let (hub, monitor) = hub_with_monitor(Config {
        write_timeout: Duration::from_secs(5),
        blocking_writes: true,
        channel_capacity: 2,
        ..Config::ephemeral()
    });
    let addr = hub.local_addr();
    let mut idle = Peer::named(addr, "idle");
    let mut slow = Peer::named(addr, "slow");
    slow.send("/sub t");
    slow.expect("OK sub t");
    idle.settle();

    // An idle client's thread sits in read().
    let s = until(monitor, Duration::from_secs(5), "client-1 in read()", |s| {
        thread(s, "client-1").is_some_and(|t| t.field("state").as_str() == Some("read"))
    });
    let c = client(&s, "slow").expect("slow is listed");
    assert_eq!(c.field("subs").u64(), Some(1));
    assert_eq!(c.field("thread").as_str(), Some("client-2"));
    // The acceptor is back in accept() a moment after it announced slow
    // (on a busy machine the snapshot can catch it still in "admit").
    until(
        monitor,
        Duration::from_secs(5),
        "acceptor in accept()",
        |s| thread(s, "acceptor").is_some_and(|t| t.field("state").as_str() == Some("accept")),
    );

    // `slow` stops reading while events for it pour in.
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(addr, format!("/pub t {}", "x".repeat(1000)), stop.clone());
    let in_writev = |s: &Value| {
        thread(s, "dispatcher").is_some_and(|t| {
            t.field("state").as_str() == Some("writev")
                && t.field("target_nick").as_str() == Some("slow")
        })
    };
    let first = until(
        monitor,
        Duration::from_secs(20),
        "the dispatcher in writev() to slow",
        in_writev,
    );
    let first_ms = thread(&first, "dispatcher")
        .unwrap()
        .field("for_ms")
        .u64()
        .unwrap();
    // Still the same write, a while later: the duration grows.
    thread::sleep(Duration::from_millis(600));
    let later = stats(monitor);
    let d = thread(&later, "dispatcher").unwrap();
    assert!(in_writev(&later), "{d:?}");
    assert!(d.field("blocked").is_true());
    assert!(
        d.field("for_ms").u64().unwrap() > first_ms,
        "{first_ms} then {d:?}"
    );
    let c = client(&later, "slow").unwrap();
    assert!(c.field("pending_bytes").u64().unwrap() > 0, "{c:?}");
    assert!(c.field("write_blocked_ms").u64().unwrap() > 0, "{c:?}");
    // The channel is full, and the flooder's thread waits for room in it.
    let s = until(monitor, Duration::from_secs(5), "a full channel", |s| {
        let ch = s.field("channel");
        ch.field("len").u64() == Some(2)
            && thread(s, "client-3")
                .is_some_and(|t| t.field("state").as_str() == Some("channel_full"))
    });
    assert_eq!(s.field("channel").field("capacity").u64(), Some(2));
    // Past half the write timeout `slow` is flagged, before it is cut off.
    until(monitor, Duration::from_secs(5), "slow at risk", |s| {
        client(s, "slow").is_some_and(|c| c.field("at_risk").is_true())
    });
    // Then it is cut off, and counted.
    let s = until(monitor, Duration::from_secs(15), "slow cut off", |s| {
        s.field("hub").field("cut_off").u64() == Some(1)
    });
    assert!(client(&s, "slow").is_none());
    stop.store(true, Ordering::SeqCst);
    flooder.join().unwrap();
    // The hub goes on: idle sees slow leave and its /ping is answered.
    while idle.recv() != "LEAVE slow" {} // after JOIN guest-3, the flooder
    idle.settle();
    drop(slow);
    hub.shutdown();
}

#[test]
fn counters_count_lines_refusals_and_bytes() {
    let (hub, monitor) = hub_with_monitor(Config {
        max_clients: 2,
        max_line: 16,
        ..Config::ephemeral()
    });
    let addr = hub.local_addr();
    let mut a = Peer::named(addr, "ann");
    let mut b = Peer::named(addr, "bob");
    a.settle();
    a.send("hello bob");
    b.expect("MSG ann hello bob");
    a.send(&"y".repeat(40));
    a.expect_err("line-too-long");
    // A third connection is refused: the hub is full.
    let mut c = Peer::connect(addr, "c");
    c.expect_err("server-full");
    a.sync();
    let s = stats(monitor);
    let hub_stats = s.field("hub");
    assert_eq!(hub_stats.field("refused_line").u64(), Some(1), "{s:?}");
    assert_eq!(hub_stats.field("refused_full").u64(), Some(1), "{s:?}");
    assert_eq!(hub_stats.field("accepted").u64(), Some(2), "{s:?}");
    let ann = client(&s, "ann").unwrap();
    // /nick, /ping (settle), chat, too long, /ping (sync)
    assert_eq!(ann.field("lines_in").u64(), Some(5), "{ann:?}");
    let bob = client(&s, "bob").unwrap();
    assert!(bob.field("lines_out").u64().unwrap() >= 3, "{bob:?}"); // WELCOME, OK nick, MSG
    assert!(bob.field("bytes_out").u64().unwrap() >= "MSG ann hello bob\n".len() as u64);
    hub.shutdown();
}

#[test]
fn bad_http_is_answered_4xx_and_never_disturbs_hub_clients() {
    let (hub, monitor) = hub_with_monitor(Config::ephemeral());
    let mut p = Peer::named(hub.local_addr(), "p");
    let status = |answer: String| answer.split(' ').nth(1).unwrap_or("").to_string();

    assert_eq!(status(raw_request(monitor, b"hello there\r\n\r\n")), "400");
    assert_eq!(get(monitor, "/nope").0, 404);
    assert_eq!(
        status(raw_request(
            monitor,
            b"POST /stats HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        )),
        "405"
    );
    p.sync();
    // A 1 MB request line.
    let mut huge = b"GET /".to_vec();
    huge.extend(vec![b'a'; 1 << 20]);
    huge.extend(b" HTTP/1.1\r\n\r\n");
    assert_eq!(status(raw_request(monitor, &huge)), "414");
    p.sync();

    // Headers that never end: 408, while the hub serves its client.
    let mut never = TcpStream::connect(monitor).unwrap();
    never
        .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    p.sync();
    never
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = never.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");

    // 50 connections at once, saying nothing: some wait, the rest get 503.
    let crowd: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(monitor).unwrap())
        .collect();
    p.sync();
    p.sync();
    drop(crowd);
    // And the monitor serves again.
    let start = Instant::now();
    loop {
        if get(monitor, "/stats").0 == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the monitor stays busy"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let (status, page) = get(monitor, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<title>tcphub live view</title>"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );
    p.sync();
    hub.shutdown();
}

// ---- tcphub top, and the page in a browser: against `tcphub serve` ------

struct Served {
    child: Child,
    addr: SocketAddr,
    monitor: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(monitor: &str, extra: &[&str]) -> Served {
    let mut hub = Command::new(env!("CARGO_BIN_EXE_tcphub"));
    hub.arg("serve");
    serve_with(hub, monitor, extra)
}

/// `program` (the hub's `serve`, or the async twin) with a monitor.
fn serve_with(mut program: Command, monitor: &str, extra: &[&str]) -> Served {
    let mut child = program
        .args(["--port", "0", "--monitor", monitor])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line").expect("UTF-8");
    let addr = next()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let monitor = next()
        .strip_prefix("monitor on http://")
        .and_then(|m| m.strip_suffix('/'))
        .unwrap()
        .parse()
        .unwrap();
    Served {
        child,
        addr,
        monitor,
    }
}

fn top(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tcphub"))
        .arg("top")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn top_once_prints_every_thread_labelled() {
    let hub = serve("127.0.0.1:0", &[]);
    let mut a = Peer::named(hub.addr, "ann");
    let mut b = Peer::named(hub.addr, "bob");
    a.settle();
    b.settle();
    let out = top(&[&hub.monitor.to_string(), "--once"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for label in [
        "THREAD",
        "acceptor",
        "dispatcher",
        "monitor",
        "client-1",
        "client-2",
        "in read()",
        "in accept()",
        "ann",
        "bob",
        "channel 0/16384",
    ] {
        assert!(text.contains(label), "top --once lacks {label:?}:\n{text}");
    }
    assert!(!text.contains('\x1b'), "--once is plain text");
}

/// The async twin serves the same `/stats` shape: its rows are tasks (a
/// `router` task instead of the `dispatcher` thread), what each awaits.
#[test]
fn the_async_twin_shows_its_tasks_in_the_same_shape() {
    let twin = serve_with(
        Command::new(common::async_twin_binary()),
        "127.0.0.1:0",
        &[],
    );
    let mut a = Peer::named(twin.addr, "ann");
    a.send("/sub pickup");
    a.expect("OK sub pickup");
    let mut b = Peer::named(twin.addr, "bob");
    b.settle();
    a.settle();
    let s = until(
        twin.monitor,
        Duration::from_secs(10),
        "ann's subscription published and the acceptor back in accept",
        // The acceptor task goes back to accept() a moment after bob's
        // WELCOME may already be out (it starts bob's tasks first).
        |s| {
            client(s, "ann").is_some_and(|c| c.field("subs").u64() == Some(1))
                && thread(s, "acceptor")
                    .is_some_and(|t| t.field("state").as_str() == Some("accept"))
        },
    );
    for (name, state) in [
        ("router", "recv"),
        ("acceptor", "accept"),
        ("client-1", "read"),
    ] {
        let t = thread(&s, name).unwrap_or_else(|| panic!("no {name} in {s:?}"));
        assert_eq!(t.field("state").as_str(), Some(state), "{name}: {t:?}");
    }
    assert!(
        thread(&s, "dispatcher").is_none(),
        "the twin has no dispatcher thread"
    );
    let out = top(&[&twin.monitor.to_string(), "--once"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for label in ["router", "client-2", "in read()", "ann", "bob"] {
        assert!(text.contains(label), "top --once lacks {label:?}:\n{text}");
    }
}

/// The readiness-loop twin serves the same `/stats` shape from inside its
/// one `poll` loop: one thread row (`poll-loop`, which is answering this
/// very request), and a row per client, waiting for its bytes.
#[test]
fn the_poll_twin_shows_its_one_loop_in_the_same_shape() {
    let twin = serve_with(Command::new(common::poll_twin_binary()), "127.0.0.1:0", &[]);
    let mut a = Peer::named(twin.addr, "ann");
    a.send("/sub pickup");
    a.expect("OK sub pickup");
    let mut b = Peer::named(twin.addr, "bob");
    b.settle();
    a.settle();
    let s = until(
        twin.monitor,
        Duration::from_secs(10),
        "ann's subscription published",
        |s| client(s, "ann").is_some_and(|c| c.field("subs").u64() == Some(1)),
    );
    let names: Vec<&str> = s
        .field("threads")
        .items()
        .iter()
        .filter_map(|t| t.field("name").as_str())
        .collect();
    assert!(names.contains(&"poll-loop"), "{names:?}");
    assert!(
        !names.contains(&"dispatcher") && !names.contains(&"acceptor"),
        "one thread does it all: {names:?}"
    );
    for name in ["client-1", "client-2"] {
        let t = thread(&s, name).unwrap_or_else(|| panic!("no {name} in {s:?}"));
        assert_eq!(t.field("state").as_str(), Some("read"), "{name}: {t:?}");
    }
    let out = top(&[&twin.monitor.to_string(), "--once"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for label in ["poll-loop", "client-2", "ann", "bob"] {
        assert!(text.contains(label), "top --once lacks {label:?}:\n{text}");
    }
}

#[test]
fn top_says_when_the_monitor_is_unreachable_and_recovers() {
    // A port nobody listens on (for the moment).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let monitor = format!("127.0.0.1:{port}");
    let out = top(&[&monitor, "--once"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the monitor at 127.0.0.1:"),
        "{err}"
    );

    // The redrawing view keeps trying, and shows the hub once it is there.
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_tcphub"))
        .args(["top", &monitor, "--interval", "200ms", "--count", "40"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = watcher.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("retrying") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "top ended early: {}", String::from_utf8_lossy(&seen));
        seen.extend(&buf[..n]);
    }
    let _hub = serve(&monitor, &[]);
    while !String::from_utf8_lossy(&seen).contains("dispatcher") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "top never showed the hub: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend(&buf[..n]);
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(
        String::from_utf8_lossy(&seen).contains("\x1b[H"),
        "redrawn in place"
    );
}

/// Headless Chromium, if this machine has it.
fn chromium() -> Option<&'static str> {
    let path = "/usr/bin/chromium";
    if std::path::Path::new(path).exists() {
        Some(path)
    } else {
        println!("SKIPPED: {path} is missing (apt-get install chromium)");
        None
    }
}

/// `chromium --headless ... URL` with a fresh profile; returns stdout.
pub fn headless(browser: &str, extra: &[&str], url: &str) -> String {
    let profile = std::env::temp_dir().join(format!(
        "tcphub-chromium-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_page_in_a_browser_shows_the_threads_and_updates() {
    let Some(browser) = chromium() else { return };
    let hub = serve("127.0.0.1:0", &[]);
    let mut a = Peer::named(hub.addr, "ann");
    a.settle();
    let url = format!("http://{}/", hub.monitor);
    let dom = headless(browser, &["--virtual-time-budget=3000", "--dump-dom"], &url);
    assert!(dom.contains("tcphub live view"), "{dom}");
    for thread in ["acceptor", "dispatcher", "monitor", "client-1"] {
        assert!(
            dom.contains(&format!("data-thread=\"{thread}\"")),
            "no row for {thread}:\n{dom}"
        );
    }
    assert!(dom.contains("data-nick=\"ann\""), "{dom}");
    assert!(dom.contains("data-state=\"read\""), "{dom}");
    // It polled, and redrew, at least twice.
    let polls: u32 = dom
        .split("<span id=\"polls\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no poll counter:\n{dom}"));
    assert!(polls >= 2, "polled {polls} times:\n{dom}");
}

// ---- links: two linked hubs, each with a monitor -----------------------

const LINK_KEY: &str = "classroom";

/// A hub named `name` with a monitor: accepting links if `listen`,
/// dialling `links`.
fn linked_hub(name: &str, listen: bool, links: &[String]) -> (Hub, SocketAddr) {
    hub_with_monitor(Config {
        name: Some(name.to_string()),
        link_listen: listen.then(|| "127.0.0.1:0".to_string()),
        links: links.to_vec(),
        link_key: Some(LINK_KEY.into()),
        link_timeout: Duration::from_millis(2000),
        ..Config::ephemeral()
    })
}

fn link<'a>(stats: &'a Value, hub: &str) -> Option<&'a Value> {
    stats
        .field("links")
        .items()
        .iter()
        .find(|l| l.field("hub").as_str() == Some(hub))
}

fn link_num(stats: &Value, hub: &str, field: &str) -> u64 {
    link(stats, hub)
        .and_then(|l| l.field(field).u64())
        .unwrap_or(0)
}

/// Skips lines until one equal to `line` (bounded by the peer's timeout).
fn skip_to(peer: &mut Peer, line: &str) {
    while peer.recv() != line {}
}

#[test]
fn stats_and_top_show_a_link_on_both_sides_with_moving_counters() {
    let (a, mon_a) = linked_hub("a", true, &[]);
    let link_addr = a.link_addr().unwrap().to_string();
    let (b, mon_b) = linked_hub("b", false, &[link_addr]);
    let long = Duration::from_secs(10);
    // Both sides see the link, with the right peer name and direction.
    let sa = until(mon_a, long, "a's link to b", |s| link(s, "b").is_some());
    let sb = until(mon_b, long, "b's link to a", |s| link(s, "a").is_some());
    let (la, lb) = (link(&sa, "b").unwrap(), link(&sb, "a").unwrap());
    assert_eq!(la.field("direction").as_str(), Some("incoming"), "{la:?}");
    assert_eq!(lb.field("direction").as_str(), Some("dialled"), "{lb:?}");
    assert_eq!(la.field("thread").as_str(), Some("link-b"));
    assert_eq!(sa.field("hub").field("name").as_str(), Some("a"));
    assert_eq!(sa.field("hub").field("links").u64(), Some(1));
    assert_eq!(sa.field("hub").field("link_timeout_ms").u64(), Some(2000));
    assert!(la.field("last_heard_ms").u64().unwrap() < 2000, "{la:?}");
    assert!(!la.field("at_risk").is_true(), "{la:?}");
    // The link threads, with what they wait for.
    let sa = until(mon_a, long, "a's reader of b in read()", |s| {
        thread(s, "link-b")
            .is_some_and(|t| t.field("doing").as_str() == Some("in read() from hub b"))
    });
    let reader = thread(&sa, "link-b").unwrap();
    assert_eq!(reader.field("waits_on").as_str(), Some("peer"));
    let acceptor = thread(&sa, "link-acceptor").expect("a has a link-acceptor");
    assert_eq!(acceptor.field("state").as_str(), Some("accept"));
    let sb = until(mon_b, long, "b's reader of a in read()", |s| {
        thread(s, "link-a")
            .is_some_and(|t| t.field("doing").as_str() == Some("in read() from hub a"))
    });
    let linker = thread(&sb, "linker").expect("b has a linker");
    assert_eq!(linker.field("state").as_str(), Some("recv"), "{linker:?}");

    // Interest: bob on b wants `pickup`; a sees it on its link to b.
    // Netjoin lines may come before the answers: skip them.
    let named = |addr, name: &str| {
        let (mut p, _) = Peer::join(addr, name);
        p.send(&format!("/nick {name}"));
        skip_to(&mut p, &format!("OK nick {name}"));
        p
    };
    let mut ann = named(a.local_addr(), "ann");
    let mut bob = named(b.local_addr(), "bob");
    bob.send("/sub pickup");
    skip_to(&mut bob, "OK sub pickup");
    let sa = until(mon_a, long, "b's interest in pickup", |s| {
        link_num(s, "b", "interest") == 1
    });
    let topics = link(&sa, "b").unwrap().field("interest_topics").items();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].as_str(), Some("pickup"));

    // Chat: a's lines and bytes out on the link grow, and so do b's in.
    let (out_a, in_b) = (
        link_num(&sa, "b", "lines_out"),
        link_num(&stats(mon_b), "a", "lines_in"),
    );
    let bytes_out_a = link_num(&sa, "b", "bytes_out");
    for i in 0..5 {
        ann.send(&format!("hello {i}"));
    }
    ann.send("/pub pickup {\"id\":1}");
    skip_to(&mut bob, "EVENT pickup ann@a {\"id\":1}");
    let sa = until(mon_a, long, "a's link counters moving", |s| {
        link_num(s, "b", "lines_out") >= out_a + 6
    });
    assert!(link_num(&sa, "b", "bytes_out") > bytes_out_a);
    assert!(link_num(&sa, "b", "lines_in") > 0, "b's SUB and heartbeats");
    until(mon_b, long, "b's link counters moving", |s| {
        link_num(s, "a", "lines_in") >= in_b + 6 && link_num(s, "a", "bytes_in") > 0
    });

    // top --once lists the link, on both sides.
    for (mon, peer, dir) in [(mon_a, "b", "incoming"), (mon_b, "a", "dialled")] {
        let out = top(&[&mon.to_string(), "--once"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("{peer:<16} ")) && l.contains(dir))
            .unwrap_or_else(|| panic!("no LINKS row for {peer}:\n{text}"));
        assert!(row.contains("127.0.0.1:"), "{row}");
        for label in ["LINK ", "HEARD", "WANTS", &format!("link-{peer}")] {
            assert!(text.contains(label), "top --once lacks {label:?}:\n{text}");
        }
    }
    let text = String::from_utf8_lossy(&top(&[&mon_a.to_string(), "--once"]).stdout).into_owned();
    assert!(text.contains("wants pickup"), "{text}");

    // The page has the table.
    let (_, page) = get(mon_a, "/");
    assert!(page.contains("id=\"linklist\""));
    drop((ann, bob));
    b.shutdown();
    a.shutdown();
}

#[test]
fn the_linker_shows_it_backs_off_while_its_target_is_down() {
    // A port where nothing listens: connect() is refused at once.
    let nobody = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let (hub, mon) = linked_hub("c", false, std::slice::from_ref(&target));
    let s = until(
        mon,
        Duration::from_secs(10),
        "the linker backing off",
        |s| thread(s, "linker").is_some_and(|t| t.field("state").as_str() == Some("back_off")),
    );
    let linker = thread(&s, "linker").unwrap();
    let doing = linker.field("doing").as_str().unwrap();
    assert!(
        doing.starts_with("backing off for ")
            && doing.ends_with(&format!(" before dialling {target}")),
        "{doing}"
    );
    assert_eq!(linker.field("waits_on").as_str(), Some("clock"));
    assert!(!linker.field("blocked").is_true(), "it holds nobody up");
    assert!(s.field("links").items().is_empty());
    let out = top(&[&mon.to_string(), "--once"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("linker"), "{text}");
    assert!(text.contains("backing off for"), "{text}");
    assert!(text.contains("(no links up)"), "{text}");
    hub.shutdown();
}

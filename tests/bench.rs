//! `tcphub bench` end to end, small: against the threaded hub on a free
//! loopback port, it must count every delivery, in order. Asserts behaviour
//! (nothing lost, nothing reordered, everyone welcomed), never speed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tcphub::bench::noisy::{self, NoisyArgs};
use tcphub::bench::{ConnsArgs, FanoutArgs, conns, fanout};
use tcphub::{Config, Hub};

fn fanout_args() -> FanoutArgs {
    FanoutArgs {
        addr: None,
        pub_addr: None,
        sub_addr: None,
        publishers: 2,
        subscribers: 20,
        messages: 500,
        size: 64,
        rate: None,
        unpaced: false,
        timeout_s: 60,
        readers: None,
        duration_s: None,
        min_deliveries: 0,
        max_duration_s: None,
        warmup_s: 0.0,
        pid: None,
        path_pids: Vec::new(),
        raw: false,
        json: false,
    }
}

#[test]
fn fanout_against_the_in_process_hub_loses_nothing() {
    let report = fanout::run(&fanout_args()).expect("the bench starts");
    assert_eq!(report.expected, 2 * 500 * 21);
    assert_eq!(report.received, report.expected, "{}", report.to_text());
    assert_eq!(report.lost, 0);
    assert_eq!(report.out_of_order, 0);
    assert_eq!(report.other_lines, 0, "{}", report.to_text());
    assert!(report.ok(), "{}", report.to_text());
    assert!(report.latency_max >= report.latency_p99);
    assert!(report.latency_p99 >= report.latency_p50);
}

#[test]
fn readers_fixes_the_receiver_threads_and_the_report_says_how_many() {
    let args = FanoutArgs {
        readers: Some(3),
        ..fanout_args()
    };
    let report = fanout::run(&args).expect("the bench starts");
    assert!(report.ok(), "{}", report.to_text());
    assert_eq!((report.receivers, report.receivers_fixed), (3, true));
    let text = report.to_text();
    assert!(
        text.contains("receivers    3 thread(s) read the subscribers (--readers)"),
        "{text}"
    );
    assert!(report.to_json().contains("\"receiver_threads\":3"));
    // Without --readers: balanced, starting from one.
    let report = fanout::run(&fanout_args()).expect("the bench starts");
    assert!(report.receivers >= 1 && !report.receivers_fixed);
    assert!(report.to_text().contains("above 70 % of a core"));
}

#[test]
fn an_unpaced_burst_is_delivered_whole_and_the_report_says_unpaced() {
    let args = FanoutArgs {
        unpaced: true,
        messages: 2_000,
        ..fanout_args()
    };
    let report = fanout::run(&args).expect("the bench starts");
    assert!(report.ok(), "{}", report.to_text());
    assert_eq!(report.received, 2 * 2_000 * 21);
    assert!(
        report
            .to_text()
            .contains("unpaced (no cap on the publishers' lead)")
    );
    assert!(report.to_json().contains("\"unpaced\":true"));
    let lead_limited = fanout::run(&fanout_args()).expect("the bench starts");
    assert!(
        lead_limited
            .to_text()
            .contains("unlimited rate, lead-limited")
    );
}

#[test]
fn rate_limited_fanout_against_a_running_hub() {
    let hub = Hub::start(Config::ephemeral()).expect("hub starts");
    let args = FanoutArgs {
        addr: Some(hub.local_addr().to_string()),
        publishers: 1,
        subscribers: 5,
        messages: 50,
        rate: Some(500),
        ..fanout_args()
    };
    let report = fanout::run(&args).expect("the bench starts");
    assert!(report.ok(), "{}", report.to_text());
    // 50 lines at 500 per second cannot be published in less than ~0.1 s
    assert!(
        report.publish_elapsed.as_millis() >= 90,
        "{}",
        report.to_text()
    );
    let json = report.to_json();
    assert!(
        json.contains("\"ok\":true") && json.contains("\"rate\":500"),
        "{json}"
    );
    hub.shutdown();
}

#[test]
fn conns_welcomes_everyone_and_reads_the_hub_from_proc() {
    let hub = Hub::start(Config::ephemeral()).expect("hub starts");
    let args = ConnsArgs {
        addr: Some(hub.local_addr().to_string()),
        count: 50,
        hold_s: 0,
        pid: Some(std::process::id()),
        timeout_s: 60,
        in_flight: 100,
        json: false,
    };
    let report = conns::run(&args).expect("the bench starts");
    assert!(report.ok(), "{}", report.to_text());
    assert_eq!(report.welcomed, 50);
    let status = report.after_hold.expect("our own /proc is readable");
    assert!(status.threads >= 50, "{status:?}");
    hub.shutdown();
}

#[test]
fn an_unreachable_server_is_an_error_not_a_hang() {
    // Bind and drop: nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let args = FanoutArgs {
        addr: Some(format!("127.0.0.1:{port}")),
        timeout_s: 5,
        ..fanout_args()
    };
    let report = fanout::run(&args).expect("the bench starts");
    assert!(!report.ok());
    assert!(
        report.failure.as_deref().unwrap_or("").contains("connect"),
        "{}",
        report.to_text()
    );
}

#[test]
fn a_timed_run_with_warm_up_measures_a_window_and_the_cpu() {
    // Tiny and bounded: 0.2 s of warm-up, a window of 0.3 s (at most 1 s),
    // 200 lines/s: a few hundred lines in all.
    let args = FanoutArgs {
        publishers: 1,
        subscribers: 4,
        rate: Some(200),
        duration_s: Some(0.3),
        max_duration_s: Some(1.0),
        min_deliveries: 10,
        warmup_s: 0.2,
        timeout_s: 30,
        ..fanout_args()
    };
    let report = fanout::run(&args).expect("the bench starts");
    assert!(report.ok(), "{}", report.to_text());
    assert!(report.timed && report.sent > 0);
    assert_eq!(report.expected, report.sent * 4);
    assert!(report.window.as_secs_f64() >= 0.3, "{}", report.to_text());
    assert!(report.window < report.elapsed, "{}", report.to_text());
    assert!(report.window_deliveries >= 10 && report.window_deliveries < report.received);
    // the warm-up's lines are delivered but not measured
    assert!(
        report.latency_samples < report.received,
        "{}",
        report.to_text()
    );
    let usage = report.usage.as_ref().expect("CPU sampled");
    assert!(
        usage.server_cpu_s.is_some(),
        "in-process: the hub's threads"
    );
    let json = report.to_json();
    for field in [
        "\"window_s\":",
        "\"window_deliveries\":",
        "\"server_ns_per_delivery\":",
        "\"generator_cores\":",
        "\"steal_cores\":",
        "\"others_cores\":",
        "\"timed\":true",
    ] {
        assert!(json.contains(field), "{field} in {json}");
    }
}

/// A stand-in for examples/relay_ceiling.rs: relays the first client's
/// bytes to every later one, but drops the line with sequence number
/// `drop_seq` (each line is 64 bytes, so it is found by its bytes).
fn fake_relay(drop_seq: Option<u64>) -> (std::net::SocketAddr, Arc<Mutex<bool>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(Mutex::new(false));
    let done = stop.clone();
    std::thread::spawn(move || {
        let mut conns: Vec<TcpStream> = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        let needle = drop_seq.map(|s| format!(" {s:010} "));
        // bounded: at most 30 s
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while !*done.lock().unwrap() && std::time::Instant::now() < until {
            if let Ok((s, _)) = listener.accept() {
                s.set_nonblocking(true).unwrap();
                conns.push(s);
            }
            let Some(publisher) = conns.first_mut() else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            match publisher.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
            // forward whole lines, minus the dropped one
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                if needle.as_deref().is_some_and(|n| text.contains(n)) {
                    continue;
                }
                for c in conns.iter_mut().skip(1) {
                    c.set_nonblocking(false).unwrap();
                    let _ = c.write_all(&line);
                    c.set_nonblocking(true).unwrap();
                }
            }
        }
    });
    (addr, stop)
}

fn raw_args(addr: std::net::SocketAddr) -> FanoutArgs {
    FanoutArgs {
        addr: Some(addr.to_string()),
        publishers: 1,
        subscribers: 3,
        messages: 50,
        raw: true,
        timeout_s: 10,
        ..fanout_args()
    }
}

#[test]
fn raw_mode_counts_every_line_through_a_relay() {
    let (addr, stop) = fake_relay(None);
    let report = fanout::run(&raw_args(addr)).expect("the bench starts");
    *stop.lock().unwrap() = true;
    assert!(report.ok(), "{}", report.to_text());
    assert_eq!((report.expected, report.received), (150, 150));
    assert_eq!(report.other_lines, 0, "SYNC lines are not noise");
}

#[test]
fn raw_mode_finds_a_line_the_relay_lost() {
    let (addr, stop) = fake_relay(Some(7));
    let args = FanoutArgs {
        timeout_s: 2,
        ..raw_args(addr)
    };
    let report = fanout::run(&args).expect("the bench starts");
    *stop.lock().unwrap() = true;
    assert!(!report.ok());
    // each of the 3 subscribers missed line 7, and saw 8 after a gap
    assert_eq!(report.lost, 3, "{}", report.to_text());
    assert_eq!(report.out_of_order, 3, "{}", report.to_text());
    assert_eq!(report.received, 147);
}

#[test]
fn raw_mode_needs_one_publisher_and_an_address() {
    let args = FanoutArgs {
        addr: None,
        ..raw_args("127.0.0.1:1".parse().unwrap())
    };
    assert!(
        fanout::run(&args)
            .unwrap_err()
            .to_string()
            .contains("--addr")
    );
    let args = FanoutArgs {
        publishers: 2,
        ..raw_args("127.0.0.1:1".parse().unwrap())
    };
    assert!(
        fanout::run(&args)
            .unwrap_err()
            .to_string()
            .contains("one publisher")
    );
}

/// Across two linked hubs (`--pub-addr A --sub-addr B`): every line crosses
/// the link, and nothing is lost or reordered on the way.
#[test]
fn fanout_across_a_link_loses_nothing() {
    let a = Hub::start(Config {
        name: Some("a".into()),
        link_listen: Some("127.0.0.1:0".into()),
        link_key: Some("k".into()),
        ..Config::ephemeral()
    })
    .expect("hub a");
    let link = a.link_addr().expect("a listens for links").to_string();
    let b = Hub::start(Config {
        name: Some("b".into()),
        links: vec![link],
        link_key: Some("k".into()),
        ..Config::ephemeral()
    })
    .expect("hub b");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while a.reachable_hubs() == 0 || b.reachable_hubs() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the hubs never linked"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let args = FanoutArgs {
        pub_addr: Some(a.local_addr().to_string()),
        sub_addr: Some(b.local_addr().to_string()),
        publishers: 1,
        ..fanout_args()
    };
    let report = fanout::run(&args).expect("the bench runs");
    assert_eq!(report.expected, 20 * 500, "{report:?}");
    assert_eq!(report.received, report.expected, "{report:?}");
    assert_eq!((report.lost, report.out_of_order), (0, 0), "{report:?}");
    assert!(
        report.server.contains("subscribers on"),
        "{}",
        report.server
    );
    b.shutdown();
    a.shutdown();
}

#[test]
fn noisy_neighbours_a_light_client_is_answered_and_non_readers_are_cut_off() {
    // Small limits so the two non-readers are cut off within the second of
    // flood; tiny counts, bounded time. 4 MiB, not less: with 64 KiB a
    // reading subscriber that fell 64 KiB behind on a busy 2-core machine
    // was cut too (131,444 of 187,776 lines, in full runs under load).
    let hub = Hub::start(Config {
        write_timeout: Duration::from_millis(300),
        max_pending: 4 * 1024 * 1024,
        ..Config::ephemeral()
    })
    .expect("hub starts");
    let args = NoisyArgs {
        addr: Some(hub.local_addr().to_string()),
        flooders: 2,
        subscribers: 2,
        non_readers: 2,
        duration_s: 1.5,
        size: 500,
        ping_interval_ms: 20,
        timeout_s: 30,
        json: false,
    };
    let report = noisy::run(&args).expect("the bench starts");
    let text = report.to_text();
    assert!(report.ok(), "{text}");
    assert!(report.pings > 0, "{text}");
    assert!(report.published > 0 && report.deliveries > 0, "{text}");
    assert_eq!(report.flooders_failed, 0, "{text}");
    assert_eq!(report.non_readers_cut_off, 2, "{text}");
    assert!(report.ping_max >= report.ping_p99 && report.ping_p99 >= report.ping_p50);
    // Both reading subscribers got every line routed before the flooders'
    // final PONG (they read on until the end).
    assert_eq!(report.deliveries, 2 * report.published, "{text}");
    let json = tcphub::support::json::parse(&report.to_json()).expect("JSON");
    assert!(json.field("ok").is_true());
    hub.shutdown();
}

#[test]
fn path_pids_cpu_is_in_the_report_beside_the_servers() {
    // This process stands in for a hop's process (a NATS node, the other
    // hub): it certainly uses CPU during the run.
    let me = std::process::id();
    let args = FanoutArgs {
        path_pids: vec![me, u32::MAX],
        // Enough work for the CPU clock (100 ticks a second) to see it.
        messages: 5000,
        ..fanout_args()
    };
    let report = fanout::run(&args).expect("the bench starts");
    assert_eq!(report.path.len(), 2, "{}", report.to_text());
    assert_eq!(report.path[0].pid, me);
    assert!(
        report.path[0].cpu_s.is_some_and(|s| s > 0.0),
        "{:?}",
        report.path
    );
    // A pid that does not exist is reported as unknown, not as zero.
    assert_eq!(report.path[1].cpu_s, None);
    let text = report.to_text();
    assert!(
        text.contains(&format!("(pid {me})")) && text.contains("path cpu"),
        "{text}"
    );
    assert!(text.contains("unknown (gone?)"), "{text}");
    let json = tcphub::support::json::parse(&report.to_json()).expect("JSON");
    let path = json.field("path_cpu").items();
    assert_eq!(path[0].field("pid").u64(), Some(me as u64));
    assert!(path[1].field("cpu_s").is_null());
}

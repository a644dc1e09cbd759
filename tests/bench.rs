//! `tcphub bench` end to end, small: against the threaded hub on a free
//! loopback port, it must count every delivery, in order. Asserts behaviour
//! (nothing lost, nothing reordered, everyone welcomed), never speed.

use tcphub::bench::{ConnsArgs, FanoutArgs, conns, fanout};
use tcphub::{Config, Hub};

fn fanout_args() -> FanoutArgs {
    FanoutArgs {
        addr: None,
        publishers: 2,
        subscribers: 20,
        messages: 500,
        size: 64,
        rate: None,
        timeout_s: 60,
        readers: None,
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

//! `tcphub agent ...`, run as the built binary against an in-process hub,
//! with the test playing the other roles through a hand-driven socket.

mod common;
mod procs;

use std::time::Instant;

use common::Peer;
use procs::{dead_addr, line_containing, tcphub};
use tcphub::agent::order::json_field;
use tcphub::{Config, Hub};

fn hub() -> (Hub, String) {
    let hub = Hub::start(Config::ephemeral()).expect("start hub");
    let addr = hub.local_addr().to_string();
    (hub, addr)
}

const ORDER: &str =
    r#"{"store":"Test Shop","orderId":"T-001","customer":"Ada","address":"1 Elm St"}"#;

#[test]
fn driver_turns_a_pickup_into_in_transit_then_delivered() {
    let (_hub, addr) = hub();
    let mut test = Peer::join(addr.parse().unwrap(), "test").0;
    test.call("/nick vendor", "OK nick vendor");
    test.call("/sub in-transit", "OK sub in-transit");
    test.call("/sub delivered", "OK sub delivered");

    // --speed 20: 50 ms to the store, 150 ms to the customer.
    let driver = tcphub(&["agent", "driver", "--addr", &addr, "--speed", "20"]);
    // The driver logs the hub's answer to its /sub: from then on it hears pickups.
    line_containing(&driver.stderr, "OK sub pickup");

    let sent = Instant::now();
    test.send(&format!("/pub pickup {ORDER}"));
    // JOIN/NICK of the driver arrived before; skip to the events.
    let mut line = test.recv();
    while !line.starts_with("EVENT") {
        line = test.recv();
    }
    assert_eq!(line, format!("EVENT in-transit driver {ORDER}"));
    let in_transit = sent.elapsed();
    assert_eq!(test.recv(), format!("EVENT delivered driver {ORDER}"));
    let delivered = sent.elapsed();
    // It waited: 50 ms before in-transit, 150 ms more before delivered.
    // Lower bounds measured from our send only: a reply cannot arrive before
    // the driver sent it, however slow the machine. (A gap between two
    // arrivals is no such bound: our own reads may be late.)
    assert!(in_transit.as_millis() >= 50, "{in_transit:?}");
    assert!(delivered.as_millis() >= 200, "{delivered:?}");
    line_containing(&driver.stdout, "pickup T-001 from vendor");
    line_containing(&driver.stdout, "in transit: T-001 to 1 Elm St");
    line_containing(&driver.stdout, "delivered: T-001");
}

#[test]
fn vendor_with_count_publishes_orders_and_stops_once_they_are_delivered() {
    let (_hub, addr) = hub();
    let mut test = Peer::join(addr.parse().unwrap(), "test").0;
    test.call("/nick driver", "OK nick driver");
    test.call("/sub pickup", "OK sub pickup");

    let mut vendor = tcphub(&[
        "agent",
        "vendor",
        "--addr",
        &addr,
        "--count",
        "2",
        "--interval",
        "100ms",
        "--seed",
        "7",
    ]);
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let line = test.recv();
        let Some(payload) = line.strip_prefix("EVENT pickup vendor ") else {
            continue; // JOIN and NICK of the vendor
        };
        for field in ["store", "orderId", "customer", "address"] {
            assert!(json_field(payload, field).is_some(), "{field} in {payload}");
        }
        ids.push(json_field(payload, "orderId").expect("orderId"));
        test.send(&format!("/pub delivered {payload}"));
    }
    assert_ne!(ids[0], ids[1], "every order has its own id");
    let status = vendor.wait();
    assert_eq!(status.code(), Some(0), "stderr: {:?}", vendor.all_stderr());
    let out = vendor.all_stdout();
    for id in &ids {
        let thanks = format!("thank you for delivering {id}");
        assert!(out.contains(&thanks), "{thanks:?} not in {out:?}");
    }
    // Exactly two orders, not a third.
    assert_eq!(out.iter().filter(|l| l.starts_with("order ")).count(), 2);
}

#[test]
fn vendor_gives_up_on_orders_nobody_delivers() {
    let (_hub, addr) = hub();
    let mut vendor = tcphub(&[
        "agent",
        "vendor",
        "--addr",
        &addr,
        "--count",
        "1",
        "--interval",
        "50ms",
        "--wait",
        "300ms",
    ]);
    let status = vendor.wait();
    assert_eq!(status.code(), Some(1));
    let err = vendor.all_stderr().join("\n");
    assert!(err.contains("gave up after waiting 300ms"), "{err}");
}

#[test]
fn logger_prints_every_event_with_a_timestamp() {
    let (_hub, addr) = hub();
    let logger = tcphub(&["agent", "logger", "--addr", &addr]);
    line_containing(&logger.stderr, "OK sub *");
    let mut test = Peer::join(addr.parse().unwrap(), "test").0;
    test.call("/nick tester", "OK nick tester");
    test.send("/pub pickup {\"a\":1}");
    test.send("not an event, not logged");
    test.send("/pub whatever.else  spaced ");

    let first = line_containing(&logger.stdout, "[pickup]");
    // `HH:MM:SS.mmm [pickup] tester: {"a":1}`
    let (time, rest) = first.split_once(' ').expect("a time first");
    assert_eq!(rest, "[pickup] tester: {\"a\":1}");
    assert_eq!(time.len(), 12, "{time}");
    assert!(
        time.chars().enumerate().all(|(i, c)| match i {
            2 | 5 => c == ':',
            8 => c == '.',
            _ => c.is_ascii_digit(),
        }),
        "{time}"
    );
    let second = logger
        .stdout
        .recv_timeout(procs::PATIENCE)
        .expect("a second event line");
    assert!(
        second.ends_with(" [whatever.else] tester:  spaced "),
        "{second:?}"
    );
}

#[test]
fn every_agent_exits_with_a_message_when_the_hub_goes_away() {
    for role in ["logger", "driver", "vendor"] {
        let (hub, addr) = hub();
        let mut agent = tcphub(&["agent", role, "--addr", &addr]);
        line_containing(&agent.stderr, "OK sub");
        hub.shutdown();
        let status = agent.wait();
        assert_eq!(status.code(), Some(1), "{role}");
        let err = agent.all_stderr().join("\n");
        assert!(
            err.contains(&format!("tcphub agent {role}: the hub at {addr} went away")),
            "{err}"
        );
    }
}

#[test]
fn an_agent_without_a_hub_says_so() {
    let addr = dead_addr();
    let mut agent = tcphub(&["agent", "driver", "--addr", &addr]);
    assert_eq!(agent.wait().code(), Some(1));
    let err = agent.all_stderr().join("\n");
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn the_nick_defaults_to_the_role_and_can_be_changed() {
    let (_hub, addr) = hub();
    let _a = tcphub(&["agent", "logger", "--addr", &addr]);
    let b = tcphub(&["agent", "logger", "--addr", &addr, "--nick", "audit"]);
    line_containing(&b.stderr, "OK sub *");
    let mut test = Peer::join(addr.parse().unwrap(), "test").0;
    // Wait until both renames went through, then check the names.
    for _ in 0..100 {
        test.send("/list");
        let mut list = test.recv();
        while !list.starts_with("LIST") {
            list = test.recv(); // JOIN or NICK of an agent arriving
        }
        if list.contains("audit") && list.contains("logger") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the agents never showed up as logger and audit");
}

#[test]
fn an_agent_gives_up_on_a_server_that_never_speaks() {
    // Accepts, then says nothing: no WELCOME ever comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let holder = std::thread::spawn(move || listener.accept().map(|(socket, _)| socket));
    let started = Instant::now();
    let mut agent = tcphub(&["agent", "logger", "--addr", &addr]);
    assert_eq!(agent.wait().code(), Some(1));
    let waited = started.elapsed();
    assert!(waited.as_secs_f64() >= 4.5, "gave up too soon: {waited:?}");
    let err = agent.all_stderr().join("\n");
    assert!(
        err.contains(&format!(
            "tcphub agent logger: connected to {addr}, but it sent no WELCOME within 5s"
        )),
        "{err}"
    );
    drop(holder.join());
}

#[test]
fn an_agent_prints_network_text_escaped() {
    let (_hub, addr) = hub();
    let logger = tcphub(&["agent", "logger", "--addr", &addr]);
    line_containing(&logger.stderr, "OK sub *");
    let mut test = Peer::join(addr.parse().unwrap(), "test").0;
    test.send("/pub t \u{1b}[2J\r\u{202e}x");
    let line = line_containing(&logger.stdout, "[t]");
    assert!(
        line.ends_with("[t] guest-2: \\e[2J\\r\\u{202e}x"),
        "{line:?}"
    );
}

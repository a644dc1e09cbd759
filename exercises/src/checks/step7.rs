//! Step 7 check: the whole hub, with a write timeout that cuts off a client
//! that stops reading.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Peer, is_timeout, spawn_named, start_server};

/// The write timeout the check starts your hub with.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest line the hub must accept (docs/protocol.md's default).
pub const MAX_LINE: usize = 4096;
/// The flood gives up after this much (the cut-off should come far sooner).
const FLOOD_CAP: usize = 64 * 1024 * 1024;

/// Grades the hub. `serve(listener, write_timeout)` is your step 7 entry
/// point and must never return while the hub runs.
///
/// First the hub over real sockets: `WELCOME`, `JOIN`, `/nick`, `/sub`,
/// `/pub`, `ERR line-too-long` (then the connection carries on),
/// `ERR bad-utf8`, `/quit`. Then the slow consumer: `stalled` stops reading
/// while bob floods chat lines. Within a bounded time ann must get
/// `LEAVE <stalled>`, the hub must close `stalled`'s connection, and ann and
/// bob must carry on. Compare with step 2, where the same client stalled
/// everyone for as long as it liked.
pub fn check(serve: fn(TcpListener, Duration)) {
    let addr = start_server("step7-hub", move |l| serve(l, WRITE_TIMEOUT));
    let mut ann = Peer::connect("ann", addr);
    ann.expect("WELCOME guest-1");
    let mut bob = Peer::connect("bob", addr);
    bob.expect("WELCOME guest-2");
    ann.expect("JOIN guest-2");
    bob.send("/nick bob");
    bob.expect("OK nick bob");
    ann.expect("NICK guest-2 bob");
    ann.send("/sub news");
    ann.expect("OK sub news");
    bob.send("/pub news hi");
    ann.expect("EVENT news bob hi");

    bob.send(&"y".repeat(MAX_LINE + 1000));
    bob.expect_prefix("ERR line-too-long");
    bob.send(&"y".repeat(MAX_LINE));
    ann.expect(&format!("MSG bob {}", "y".repeat(MAX_LINE)));
    bob.send_bytes(b"\xff\xfe\n");
    bob.expect_prefix("ERR bad-utf8");
    bob.send("/ping");
    bob.expect("PONG");

    let mut quitter = Peer::connect("quitter", addr);
    quitter.expect("WELCOME guest-3");
    ann.expect("JOIN guest-3");
    bob.expect("JOIN guest-3");
    quitter.send("/quit");
    quitter.expect("BYE");
    quitter.expect_closed();
    ann.expect("LEAVE guest-3");
    bob.expect("LEAVE guest-3");

    slow_consumer(addr, ann, bob);
}

fn slow_consumer(addr: std::net::SocketAddr, mut ann: Peer, mut bob: Peer) {
    let mut stalled = Peer::connect("stalled", addr);
    stalled.expect("WELCOME guest-4");
    ann.expect("JOIN guest-4");
    bob.expect("JOIN guest-4");
    // From here on `stalled` reads nothing until we check it was closed.

    let stop = Arc::new(AtomicBool::new(false));
    let mut flood_stream = bob.stream().try_clone().expect("clone");
    let flood_stop = Arc::clone(&stop);
    let flood = spawn_named("step7-flood", move || {
        let line = format!("{}\n", "x".repeat(999));
        let mut written = 0;
        while !flood_stop.load(Ordering::Relaxed) && written < FLOOD_CAP {
            if flood_stream.write_all(line.as_bytes()).is_err() {
                return Err(written);
            }
            written += line.len();
        }
        Ok(written)
    });

    // ann reads all the time (so ann is never the slow one): it reports the
    // LEAVE, then reads on until bob's line from after the cut-off.
    let started = Instant::now();
    let (leave_tx, leave_rx) = mpsc::channel();
    let ann_reads = spawn_named("step7-ann-reads", move || {
        let mut leave_tx = Some(leave_tx);
        while let Some(line) = ann.try_line(Duration::from_secs(10)) {
            if line == "LEAVE guest-4" {
                if let Some(tx) = leave_tx.take() {
                    let _ = tx.send(());
                }
            } else if line == "MSG bob after the cut-off" {
                return leave_tx.is_none();
            }
        }
        false
    });
    let left = leave_rx.recv_timeout(Duration::from_secs(15));
    stop.store(true, Ordering::Relaxed);
    let flooded = flood.join();
    assert!(
        left.is_ok(),
        "ann never got `LEAVE guest-4`: a client that stops reading must be cut off"
    );
    let took = started.elapsed();
    assert!(
        matches!(flooded, Ok(Ok(_))),
        "bob's flood could not be written ({flooded:?}): the hub stopped reading bob"
    );

    // The hub closed the stalled connection (after the bytes it had queued).
    let mut raw = stalled.stream().try_clone().expect("clone");
    let closed = read_to_end_within(&mut raw, Duration::from_secs(10));
    assert!(
        closed,
        "the hub did not close the cut-off client's connection"
    );

    // Everyone else carries on: bob's later lines reach ann.
    bob.send("/ping");
    skip_until(&mut bob, "PONG");
    bob.send("after the cut-off");
    let ann_ok = ann_reads.join();
    assert!(
        matches!(ann_ok, Ok(true)),
        "ann did not get bob's line from after the cut-off ({ann_ok:?})"
    );
    assert!(took < Duration::from_secs(15), "the cut-off took {took:?}");
}

/// Reads lines until `want`, skipping others (the tail of the flood).
fn skip_until(peer: &mut Peer, want: &str) {
    for _ in 0..100_000 {
        if peer.line() == want {
            return;
        }
    }
    panic!("{}: never got {want:?}", peer.name);
}

/// Reads and discards until end of stream (true) or `within` passes (false).
/// A reset counts as closed too.
fn read_to_end_within(stream: &mut std::net::TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .is_err()
        {
            return true;
        }
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return false,
            Err(_) => return true,
        }
    }
    false
}

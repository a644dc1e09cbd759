//! Step 1 check: an echo server, one thread per connection.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use crate::support::{Peer, WAIT, spawn_named, start_server};

/// Grades an echo server. `serve` is your step 1 entry point: it is given a
/// listening socket and must never return while the server runs.
///
/// Checks that every connection gets back exactly the bytes it sent, that
/// two clients are served at the same time (an idle client must not block
/// another one), that 200 kB written at once come back whole, and that when
/// a client stops sending (its `read()` returns 0) the server closes the
/// connection.
pub fn check(serve: fn(TcpListener)) {
    let addr = start_server("step1-server", serve);
    let mut ann = Peer::connect("ann", addr);
    let mut bob = Peer::connect("bob", addr);

    // ann is connected but silent: bob must still be answered. A server that
    // handles one connection at a time (no thread per client) fails here.
    bob.send("hello from bob");
    bob.expect("hello from bob");
    ann.send("hello from ann");
    ann.expect("hello from ann");

    // One write of 200 kB arrives as many reads on the server; the echo must
    // still be every byte, in order. Written from another thread, because
    // the echo comes back while we are still writing.
    let big: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut writer = bob.stream().try_clone().expect("clone");
    let sent = big.clone();
    let w = spawn_named("step1-big-writer", move || writer.write_all(&sent));
    let mut back = vec![0u8; big.len()];
    let mut reader = bob.stream().try_clone().expect("clone");
    reader.set_read_timeout(Some(WAIT)).expect("timeout");
    reader
        .read_exact(&mut back)
        .unwrap_or_else(|e| panic!("bob: 200 kB sent, not all came back: {e}"));
    assert!(back == big, "bob: the 200 kB came back changed");
    let written = w.join().expect("writer thread");
    assert!(written.is_ok(), "bob: writing 200 kB failed: {written:?}");

    // End of stream: read() == 0 on the server means "this client is done".
    ann.finish_sending();
    ann.expect_closed();

    // Still serving the others afterwards.
    bob.send("still there?");
    bob.expect("still there?");
    bob.expect_nothing(Duration::from_millis(100));
}

//! Step 3 check: reader threads, one channel, one dispatcher.

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use crate::support::{Peer, WAIT, spawn_named, start_server};

/// Lines each of the two senders sends at once.
const BURST: usize = 200;

/// Grades the dispatcher server (same outside behaviour as step 2, built the
/// hub's way).
///
/// Checks `WELCOME` on connecting and relaying to everyone else; then ann and
/// bob each send 200 lines at the same time, and cat and dan, who only
/// listen, must receive **the same bytes in the same order** (one dispatcher
/// decides one order for everybody); then dan hangs up and the others carry
/// on.
pub fn check(serve: fn(TcpListener)) {
    let addr = start_server("step3-server", serve);
    let mut peers: Vec<Peer> = ["ann", "bob", "cat", "dan"]
        .into_iter()
        .map(|name| {
            let mut p = Peer::connect(name, addr);
            p.expect("WELCOME");
            p
        })
        .collect();

    peers[0].send("hi from ann");
    for p in &mut peers[1..] {
        p.expect("hi from ann");
    }
    peers[0].expect_nothing(Duration::from_millis(200));

    // Two senders at once; two listeners must agree on the order.
    let lines = |who: &str| -> Vec<u8> {
        (0..BURST)
            .flat_map(|i| format!("{who} {i:03}\n").into_bytes())
            .collect()
    };
    let (ann_bytes, bob_bytes) = (lines("ann"), lines("bob"));
    let total = ann_bytes.len() + bob_bytes.len();
    let senders: Vec<_> = [(0, ann_bytes), (1, bob_bytes)]
        .into_iter()
        .map(|(i, bytes)| {
            let mut stream = peers[i].stream().try_clone().expect("clone");
            spawn_named("step3-sender", move || {
                use std::io::Write;
                for line in bytes.split_inclusive(|&b| b == b'\n') {
                    stream.write_all(line)?;
                }
                Ok::<(), std::io::Error>(())
            })
        })
        .collect();
    let mut heard = Vec::new();
    for p in &peers[2..] {
        let mut stream = p.stream().try_clone().expect("clone");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut got = vec![0u8; total];
        stream
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{}: did not get all {total} bytes: {e}", p.name));
        heard.push(got);
    }
    for s in senders {
        assert!(matches!(s.join(), Ok(Ok(()))), "a sender failed to write");
    }
    assert!(
        heard[0] == heard[1],
        "cat and dan got the lines in different orders: only one thread (the \
         dispatcher) may write, in the order events come out of the channel"
    );

    // dan hangs up: the dispatcher forgets him, the others carry on.
    let dan = peers.pop().expect("dan");
    drop(dan);
    std::thread::sleep(Duration::from_millis(100));
    let mut cat = peers.pop().expect("cat");
    cat.send("after dan left");
    let mut ann_stream = peers[0].stream().try_clone().expect("clone");
    let want = b"after dan left\n";
    ann_stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut tail = Vec::new();
    let mut buf = [0u8; 4096];
    while !tail.ends_with(want) {
        match ann_stream.read(&mut buf) {
            Ok(0) | Err(_) => panic!("ann: never got cat's line after dan left"),
            Ok(n) => tail.extend_from_slice(&buf[..n]),
        }
    }
}

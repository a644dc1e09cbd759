//! Step 2 check: broadcast the Node lesson's way, and watch it go wrong.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::{Peer, is_timeout, read_until_seen, spawn_named, start_server};

/// The line cat sends while the stalled client's buffers are full.
const MARKER: &[u8] = b"MARKER-FROM-CAT";
/// How long the bystander must go without cat's line to count as stalled.
const STALLED_FOR: Duration = Duration::from_millis(1500);
/// A flood that never blocks after this much means the server did not stall.
const FLOOD_CAP: usize = 64 * 1024 * 1024;

/// Grades the shared-list broadcast server, and shows its flaw.
///
/// First the part that works: each client gets `WELCOME` once it is in the
/// list, and a chunk one client sends reaches every *other* client.
///
/// Then the flaw. A client (`stalled`) connects and never reads. ann floods
/// the server. The server writes every chunk to every socket, `stalled`'s
/// included, while holding the lock on the list; once `stalled`'s buffers
/// are full that write blocks, with the lock held. Now cat sends a line and
/// the bystander bob does **not** get it (checked for 1.5 s), though bob
/// reads everything he is sent. As soon as `stalled` reads, bob gets cat's
/// line. One client that stops reading stops everyone: the check passes when
/// your server shows exactly this.
pub fn check(serve: fn(TcpListener)) {
    let addr = start_server("step2-server", serve);
    let mut ann = Peer::connect("ann", addr);
    ann.expect("WELCOME");
    let mut bob = Peer::connect("bob", addr);
    bob.expect("WELCOME");
    let mut cat = Peer::connect("cat", addr);
    cat.expect("WELCOME");

    ann.send("hi from ann");
    bob.expect("hi from ann");
    cat.expect("hi from ann");
    ann.expect_nothing(Duration::from_millis(200));

    let mut stalled = Peer::connect("stalled", addr);
    stalled.expect("WELCOME");
    // From here on, nobody reads `stalled`'s socket until the very end.

    let stop = Arc::new(AtomicBool::new(false));
    let (seen_tx, seen_rx) = mpsc::channel();
    let mut bob_stream = bob.stream().try_clone().expect("clone");
    let bob_reader = spawn_named("step2-bob-reads", move || {
        let seen = read_until_seen(&mut bob_stream, MARKER, Duration::from_secs(40));
        let _ = seen_tx.send(seen.is_some());
    });
    let cat_reader = drain("step2-cat-reads", cat.stream(), &stop);

    let (written, blocked) = flood(ann.stream());
    assert!(
        blocked,
        "ann wrote {written} bytes and the server kept reading them all: a client \
         that never reads should have stalled the server (write to every socket, \
         with plain blocking writes, while holding the list's lock)"
    );

    cat.send(std::str::from_utf8(MARKER).expect("ascii"));
    match seen_rx.recv_timeout(STALLED_FOR) {
        Err(mpsc::RecvTimeoutError::Timeout) => {} // the symptom: bob waits too
        Ok(true) => panic!(
            "bob got cat's line while the stalled client's buffers were full: \
             this step's server is meant to show the stall"
        ),
        Ok(false) | Err(_) => panic!("bob's connection ended early"),
    }

    // The stalled client reads at last: everyone gets going again.
    let stalled_reader = drain("step2-stalled-reads", stalled.stream(), &stop);
    let got = seen_rx.recv_timeout(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    let _ = (stalled_reader.join(), cat_reader.join(), bob_reader.join());
    assert_eq!(
        got,
        Ok(true),
        "bob never got cat's line, even after the stalled client read its data"
    );
}

/// Writes 1000-byte lines from ann until a write has been blocked for a
/// second (the server stopped reading ann), or [`FLOOD_CAP`] bytes went
/// through. Returns (bytes written, whether it blocked).
fn flood(stream: &TcpStream) -> (usize, bool) {
    let mut stream = stream.try_clone().expect("clone");
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .expect("write timeout");
    let mut line = vec![b'x'; 999];
    line.push(b'\n');
    let mut written = 0;
    while written < FLOOD_CAP {
        match stream.write(&line) {
            Ok(n) => written += n,
            Err(e) if is_timeout(&e) => return (written, true),
            Err(e) => panic!("ann: flood write failed: {e}"),
        }
    }
    (written, false)
}

/// Reads and throws away everything sent to `stream` until `stop` is set,
/// so this client never stalls the server itself.
fn drain(name: &str, stream: &TcpStream, stop: &Arc<AtomicBool>) -> JoinHandle<()> {
    let mut stream = stream.try_clone().expect("clone");
    let stop = Arc::clone(stop);
    spawn_named(name, move || {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => return,
            }
        }
    })
}

//! `telnet` in character mode against the real hub: the bytes a telnet
//! client sends (option negotiation at connect, `\r\0` line ends, one byte
//! per write as keys are pressed) must work like `nc` does.

mod common;

use std::thread;
use std::time::Duration;

use common::Peer;
use tcphub::{Config, Hub};

const IAC: u8 = 0xFF;
const DO: u8 = 253;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const ECHO: u8 = 1;
const SGA: u8 = 3;
const TTYPE: u8 = 24;
const NAWS: u8 = 31;
const LINEMODE: u8 = 34;

/// What `telnet` sends after `mode character` (and what several telnets
/// send at connect): it asks the server to echo and to suppress go-ahead,
/// offers to tell its terminal type and window size, and sends the window
/// size (80x24) as a subnegotiation.
fn negotiation() -> Vec<u8> {
    let mut bytes = vec![
        IAC, DO, SGA, IAC, WILL, TTYPE, IAC, WILL, NAWS, IAC, DO, ECHO, IAC, WILL, LINEMODE,
    ];
    bytes.extend_from_slice(&[IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE]);
    bytes
}

/// Sends `bytes` one write each, as a person typing in character mode.
fn type_slowly(peer: &mut Peer, bytes: &[u8]) {
    for b in bytes {
        peer.send_raw(&[*b]);
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn telnet_in_character_mode_gets_pong() {
    let hub = Hub::start(Config::ephemeral()).expect("start hub");
    let addr = hub.local_addr();
    let mut telnet = Peer::connect(addr, "telnet");
    telnet.send_raw(&negotiation());
    // The hub ignores the negotiation (it answers nothing): the first line
    // is still WELCOME, with no telnet bytes before it (recv() insists on
    // UTF-8 lines).
    assert_eq!(telnet.recv(), "WELCOME guest-1");
    type_slowly(&mut telnet, b"/ping\r\0");
    telnet.expect("PONG");
}

#[test]
fn telnet_lines_reach_others_without_telnet_bytes() {
    let hub = Hub::start(Config::ephemeral()).expect("start hub");
    let addr = hub.local_addr();
    let (mut other, _) = Peer::join(addr, "other");
    let mut telnet = Peer::connect(addr, "telnet");
    telnet.send_raw(&negotiation());
    telnet.expect("WELCOME guest-2");
    other.expect("JOIN guest-2");
    // A command byte in the middle of a word (IAC NOP), as some telnets send
    // to keep a connection alive, and Ctrl-C (IAC IP) between two lines.
    let mut keys = b"/nick tel\r\0hel".to_vec();
    keys.extend_from_slice(&[IAC, 241]);
    keys.extend_from_slice(b"lo\r\0");
    keys.extend_from_slice(&[IAC, 244]);
    type_slowly(&mut telnet, &keys);
    telnet.expect("OK nick tel");
    other.expect("NICK guest-2 tel");
    other.expect("MSG tel hello");
    // Line mode (`\r\n`) still works on the same connection.
    telnet.send_raw(b"/ping\r\n");
    telnet.expect("PONG");
}

/// Sends each of the raw lines in every two-way split (a pause
/// between the pieces so they arrive as separate reads) from a raw client:
/// each is `ERR bad-utf8`, and the listener gets nothing of it.
fn raw_0xff_lines_are_refused_not_rewritten(server: &dyn common::Server) {
    let addr = server.addr();
    let (mut listener, _) = Peer::join(addr, "listener");
    let mut raw = Peer::named(addr, "raw");
    listener.settle();
    for line in [&b"\xff\xfe bad bytes\n"[..], b"\xff\xff\n", b"tail\xff\n"] {
        for cut in 0..line.len() {
            let (a, b) = line.split_at(cut);
            raw.send_raw(a);
            thread::sleep(Duration::from_millis(5));
            raw.send_raw(b);
            raw.expect_err("bad-utf8");
        }
    }
    raw.send("still here");
    listener.expect("MSG raw still here");
    listener.sync();
}

#[test]
fn raw_0xff_on_the_hub_is_bad_utf8() {
    raw_0xff_lines_are_refused_not_rewritten(&*common::start_threaded(Default::default()));
}

#[test]
fn raw_0xff_on_the_async_twin_is_bad_utf8() {
    raw_0xff_lines_are_refused_not_rewritten(&*common::start_async(Default::default()));
}

/// A raw client whose very first bytes are 0xFF but no negotiation
/// (`IAC IAC`) stays raw: its later telnet-looking bytes are kept too.
#[test]
fn a_connection_that_does_not_open_with_a_negotiation_stays_raw() {
    let hub = Hub::start(Config::ephemeral()).expect("start hub");
    let addr = hub.local_addr();
    let (mut other, _) = Peer::join(addr, "other");
    let mut raw = Peer::connect(addr, "raw");
    raw.send_raw(b"\xff\xff\n");
    raw.expect("WELCOME guest-2");
    raw.expect_err("bad-utf8");
    raw.send_raw(&[IAC, WILL, ECHO, b'h', b'i', b'\n']);
    raw.expect_err("bad-utf8");
    raw.send_raw(b"a\r\0b\n");
    other.expect("JOIN guest-2");
    other.expect("MSG guest-2 a\r\0b");
}

/// On a telnet connection (it opened with a negotiation), `IAC IAC` and
/// an `IAC` before a non-command byte are kept, so those lines are refused.
#[test]
fn on_a_telnet_connection_a_0xff_data_byte_is_bad_utf8() {
    let hub = Hub::start(Config::ephemeral()).expect("start hub");
    let mut telnet = Peer::connect(hub.local_addr(), "telnet");
    telnet.send_raw(&negotiation());
    telnet.expect("WELCOME guest-1");
    for line in [&b"\xff\xff\r\0"[..], b"x\xff\r\0"] {
        type_slowly(&mut telnet, line);
        telnet.expect_err("bad-utf8");
    }
    type_slowly(&mut telnet, b"/ping\r\0");
    telnet.expect("PONG");
}

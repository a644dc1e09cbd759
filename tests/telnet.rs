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

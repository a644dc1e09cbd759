//! `tcphub client`, run as the built binary against an in-process hub.

mod common;
mod procs;

use common::Peer;
use procs::{dead_addr, line_containing, tcphub};
use tcphub::{Config, Hub};

fn hub() -> (Hub, String) {
    let hub = Hub::start(Config::ephemeral()).expect("start hub");
    let addr = hub.local_addr().to_string();
    (hub, addr)
}

/// Runs the client with `input` piped in; returns (exit code, stdout lines).
fn piped(args: &[&str], input: &str) -> (Option<i32>, Vec<String>, Vec<String>) {
    let mut client = tcphub(args);
    {
        use std::io::Write;
        let stdin = client.stdin.as_mut().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    client.close_stdin();
    let status = client.wait();
    (status.code(), client.all_stdout(), client.all_stderr())
}

#[test]
fn piped_lines_get_every_reply_before_the_client_exits() {
    let (_hub, addr) = hub();
    // No /quit: the client half-closes at end of input and still prints the
    // replies to everything it sent (the LIST and PONG come after that).
    let (code, out, err) = piped(&["client", &addr], "/nick ann\n/list\n/ping\n");
    assert_eq!(code, Some(0), "stderr: {err:?}");
    assert_eq!(out, ["WELCOME guest-1", "OK nick ann", "LIST ann", "PONG"]);
    assert!(err.is_empty(), "{err:?}");
}

#[test]
fn nick_flag_goes_first_and_bye_ends_the_session() {
    let (_hub, addr) = hub();
    let (code, out, _) = piped(&["client", "--nick", "zed", &addr], "/list\n/quit\n/list\n");
    assert_eq!(code, Some(0));
    assert_eq!(out, ["WELCOME guest-1", "OK nick zed", "LIST zed", "BYE"]);
}

#[test]
fn pretty_renders_server_lines_for_people() {
    let (_hub, addr) = hub();
    let (code, out, _) = piped(
        &["client", "--pretty", &addr],
        "/nick ann\n/dm ann hi me\n/sub pickup\n/bogus\n",
    );
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        [
            "* connected; you are guest-1",
            "* you are now ann",
            "[dm] <ann> hi me",
            "* dm sent to ann",
            "* subscribed to pickup",
            "! /bogus is not a command; try /help (unknown-command)",
        ]
    );
}

#[test]
fn lines_from_others_are_printed_while_input_is_still_open() {
    let (_hub, addr) = hub();
    let mut client = tcphub(&["client", "--nick", "ann", &addr]);
    line_containing(&client.stdout, "OK nick ann");
    let mut bob = Peer::join(addr.parse().unwrap(), "test").0;
    bob.call("/nick bob", "OK nick bob");
    bob.send("hello ann");
    assert_eq!(line_containing(&client.stdout, "JOIN"), "JOIN guest-2");
    assert_eq!(line_containing(&client.stdout, "NICK"), "NICK guest-2 bob");
    assert_eq!(line_containing(&client.stdout, "MSG"), "MSG bob hello ann");
    // Typed (not piped all at once): a line sent while the session runs.
    client.type_line("hi bob");
    assert_eq!(bob.recv(), "MSG ann hi bob");
    client.close_stdin();
    assert_eq!(client.wait().code(), Some(0));
}

#[test]
fn the_hub_going_away_ends_the_client() {
    let (hub, addr) = hub();
    let mut client = tcphub(&["client", &addr]);
    line_containing(&client.stdout, "WELCOME");
    hub.shutdown();
    // Stdin is still open: it is the hub closing that ends the session.
    // Without a BYE that is a failure: exit 1, and one line saying why.
    let status = client.wait();
    assert_eq!(status.code(), Some(1));
    let err = client.all_stderr();
    assert!(
        err.iter()
            .any(|l| l.contains("the hub closed the connection (no BYE)")),
        "{err:?}"
    );
}

#[test]
fn a_refused_connection_is_one_line_and_exit_code_1() {
    let addr = dead_addr();
    let (code, out, err) = piped(&["client", &addr], "");
    assert_eq!(code, Some(1));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].contains("connection refused"), "{err:?}");
}

#[test]
fn a_full_hub_is_a_refusal_too() {
    let hub = Hub::start(Config {
        max_clients: 1,
        ..Config::ephemeral()
    })
    .expect("start hub");
    let addr = hub.local_addr().to_string();
    let _first = Peer::join(addr.parse().unwrap(), "test").0;
    let (code, out, err) = piped(&["client", &addr], "");
    assert_eq!(code, Some(1));
    assert!(out[0].starts_with("ERR server-full"), "{out:?}");
    assert!(err[0].contains("refused"), "{err:?}");
}

#[test]
fn a_bad_nick_is_refused_before_connecting() {
    let addr = dead_addr();
    let (code, _, err) = piped(&["client", "--nick", "a b", &addr], "");
    assert_eq!(code, Some(1));
    assert!(err[0].contains("--nick"), "{err:?}");
}

/// A line with what a hostile peer might send: clear the screen, set the
/// clipboard (OSC 52), rewind the line, reverse the text.
const INJECTED: &str = "\u{1b}[2J\u{1b}]52;c;ZXZpbA==\u{7}hi\rroot: ok\u{8}\u{202e}txt.exe";

#[test]
fn control_characters_from_the_network_are_shown_escaped() {
    let (_hub, addr) = hub();
    let client = tcphub(&["client", "--nick", "ann", &addr]);
    line_containing(&client.stdout, "OK nick ann");
    let mut bob = Peer::named(addr.parse().unwrap(), "bob");
    bob.send(&format!("{INJECTED} café 🎉"));
    bob.sync();
    assert_eq!(
        line_containing(&client.stdout, "MSG"),
        "MSG bob \\e[2J\\e]52;c;ZXZpbA==\\ahi\\rroot: ok\\x08\\u{202e}txt.exe café 🎉"
    );

    let pretty = tcphub(&["client", "--pretty", "--nick", "cy", &addr]);
    line_containing(&pretty.stdout, "you are now cy");
    bob.send(INJECTED);
    assert_eq!(
        line_containing(&pretty.stdout, "<bob>"),
        "<bob> \\e[2J\\e]52;c;ZXZpbA==\\ahi\\rroot: ok\\x08\\u{202e}txt.exe"
    );
}

#[test]
fn raw_passes_the_bytes_through() {
    let (_hub, addr) = hub();
    let client = tcphub(&["client", "--raw", "--nick", "ann", &addr]);
    line_containing(&client.stdout, "OK nick ann");
    let mut bob = Peer::named(addr.parse().unwrap(), "bob");
    bob.send(INJECTED);
    assert_eq!(
        line_containing(&client.stdout, "MSG"),
        format!("MSG bob {INJECTED}")
    );
}

#[test]
fn quit_exits_0_after_bye() {
    let (_hub, addr) = hub();
    let (code, out, _) = piped(&["client", &addr], "/quit\n");
    assert_eq!(
        (code, out.last().map(String::as_str)),
        (Some(0), Some("BYE"))
    );
}

#[test]
fn a_long_line_without_newline_is_streamed_not_gathered() {
    let (_hub, addr) = hub();
    let mut client = tcphub(&["client", &addr]);
    line_containing(&client.stdout, "WELCOME");
    // 8 MB and no newline, stdin left open: had the client waited for the
    // end of the line, the hub would not have seen any of it yet. It has
    // seen more than --max-line (4096) bytes, so it says so now.
    let mut stdin = client.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..128 {
            if stdin.write_all(&chunk).is_err() {
                return None;
            }
        }
        Some(stdin)
    });
    assert!(line_containing(&client.stdout, "ERR").starts_with("ERR line-too-long"));
    let stdin = writer
        .join()
        .expect("writer")
        .expect("the client read it all");
    client.stdin = Some(stdin);
    // The newline ends the long line (thrown away); the next is a command.
    client.type_line("");
    client.type_line("/ping");
    assert_eq!(line_containing(&client.stdout, "PONG"), "PONG");
    client.close_stdin();
    assert_eq!(client.wait().code(), Some(0));
}

/// A server that accepts and never writes: the client gives up after
/// `--welcome-timeout-ms`, with one line saying why, stdin still open.
#[test]
fn no_welcome_within_the_timeout_is_one_line_and_exit_1() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut client = tcphub(&["client", "--welcome-timeout-ms", "300", &addr]);
    let (_silent, _) = listener.accept().expect("the client connects");
    let status = client.wait(); // stdin is still open: only the timeout ends it
    assert_eq!(status.code(), Some(1));
    assert!(client.all_stdout().is_empty());
    let err = client.all_stderr();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("tcphub client: connected, but no WELCOME within 300 ms"),
        "{err:?}"
    );
}

/// The timeout is for the first line only: a quiet hub after WELCOME is fine.
#[test]
fn silence_after_welcome_is_not_a_timeout() {
    let (_hub, addr) = hub();
    let mut client = tcphub(&["client", "--welcome-timeout-ms", "200", &addr]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    client.type_line("/ping");
    client.close_stdin();
    assert_eq!(client.wait().code(), Some(0));
    assert_eq!(client.all_stdout(), ["WELCOME guest-1", "PONG"]);
}

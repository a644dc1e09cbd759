//! Protocol v1, row by row, over real sockets.
//!
//! Every test here is written against a [`Server`] started by a launcher, so
//! the same suite checks every server in the project: the `conformance!`
//! macro at the bottom instantiates it once per server.

mod common;

use std::io::Write;
use std::thread;
use std::time::Duration;

use common::{Limits, Peer, Server};

type Start = fn(Limits) -> Box<dyn Server>;

fn start(start: Start) -> Box<dyn Server> {
    start(Limits::default())
}

// ---- connection lifecycle --------------------------------------------------

pub fn welcome_join_and_nothing_else(start_server: Start) {
    let server = start(start_server);
    let (mut a, nick_a) = Peer::join(server.addr(), "a");
    assert!(nick_a.starts_with("guest-"), "{nick_a}");
    let (mut b, nick_b) = Peer::join(server.addr(), "b");
    assert_ne!(nick_a, nick_b);
    a.expect(&format!("JOIN {nick_b}"));
    // b gets nothing after WELCOME: no JOIN for those already there.
    b.sync();
    a.sync();
}

pub fn guest_numbers_count_up_and_skip_names_in_use(start_server: Start) {
    let server = start(start_server);
    let (mut a, nick) = Peer::join(server.addr(), "a");
    assert_eq!(nick, "guest-1");
    let (mut b, nick) = Peer::join(server.addr(), "b");
    assert_eq!(nick, "guest-2");
    a.expect("JOIN guest-2");
    b.send("/quit");
    b.expect("BYE");
    a.expect("LEAVE guest-2");
    // numbers are not reused, and a name in use is skipped
    a.send("/nick guest-4");
    a.expect("OK nick guest-4");
    let (_c, nick) = Peer::join(server.addr(), "c");
    assert_eq!(nick, "guest-3");
    a.expect("JOIN guest-3");
    let (_d, nick) = Peer::join(server.addr(), "d");
    assert_eq!(nick, "guest-5");
}

pub fn quit_says_bye_closes_and_others_see_leave(start_server: Start) {
    let server = start(start_server);
    let (mut a, _) = Peer::join(server.addr(), "a");
    let (mut b, nick_b) = Peer::join(server.addr(), "b");
    a.expect(&format!("JOIN {nick_b}"));
    // lines after /quit in the same segment are ignored
    b.send_raw(b"/quit\nhello after quit\n/nick ghost\n");
    b.expect("BYE");
    b.expect_closed();
    a.expect(&format!("LEAVE {nick_b}"));
    a.sync();
}

pub fn end_of_stream_and_reset_give_leave(start_server: Start) {
    let server = start(start_server);
    let (mut a, _) = Peer::join(server.addr(), "a");
    let (b, nick_b) = Peer::join(server.addr(), "b");
    a.expect(&format!("JOIN {nick_b}"));
    drop(b);
    a.expect(&format!("LEAVE {nick_b}"));

    // Abrupt reset: closing a socket with unread data makes the kernel send
    // RST instead of FIN.
    let (mut c, nick_c) = Peer::join(server.addr(), "c");
    a.expect(&format!("JOIN {nick_c}"));
    c.send("/help");
    thread::sleep(Duration::from_millis(100)); // let the HELP lines arrive unread
    drop(c);
    a.expect(&format!("LEAVE {nick_c}"));
    a.sync();
}

pub fn half_close_answers_everything_then_closes(start_server: Start) {
    let server = start(start_server);
    let (mut a, _) = Peer::join(server.addr(), "a");
    let (mut b, nick_b) = Peer::join(server.addr(), "b");
    a.expect(&format!("JOIN {nick_b}"));
    b.send_raw(b"/ping\none\n/list\ntwo\n");
    b.half_close();
    b.expect("PONG");
    b.expect_prefix("LIST ");
    b.expect_closed();
    a.expect(&format!("MSG {nick_b} one"));
    a.expect(&format!("MSG {nick_b} two"));
    a.expect(&format!("LEAVE {nick_b}"));
}

pub fn server_full_refuses_without_join_or_leave(start_server: Start) {
    let server = start_server(Limits {
        max_clients: 2,
        ..Limits::default()
    });
    let (mut a, _) = Peer::join(server.addr(), "a");
    let (mut b, nick_b) = Peer::join(server.addr(), "b");
    a.expect(&format!("JOIN {nick_b}"));
    let mut c = Peer::connect(server.addr(), "c");
    c.expect_err("server-full");
    c.expect_closed();
    // nobody saw a JOIN or LEAVE for c, and the hub keeps serving
    a.sync();
    b.sync();
    a.send("still here");
    b.expect("MSG guest-1 still here");
    // a slot frees up when someone leaves
    b.send("/quit");
    b.expect("BYE");
    b.expect_closed();
    a.expect(&format!("LEAVE {nick_b}"));
    let (_d, nick_d) = Peer::join(server.addr(), "d");
    a.expect(&format!("JOIN {nick_d}"));
}

// ---- commands ----------------------------------------------------------------

pub fn chat_reaches_everyone_else_verbatim(start_server: Start) {
    let server = start(start_server);
    let mut a = Peer::named(server.addr(), "ann");
    let mut b = Peer::named(server.addr(), "bob");
    a.expect("JOIN guest-2");
    a.expect("NICK guest-2 bob");
    let mut c = Peer::named(server.addr(), "cat");
    for p in [&mut a, &mut b] {
        p.expect("JOIN guest-3");
        p.expect("NICK guest-3 cat");
    }
    a.send("  hello,   world  ");
    b.expect("MSG ann   hello,   world  ");
    c.expect("MSG ann   hello,   world  ");
    // not echoed to the sender
    a.sync();
    // NUL and other control bytes are just text
    a.send_raw(b"nul\0byte\ttab\n");
    b.expect("MSG ann nul\0byte\ttab");
}

pub fn nick_rules(start_server: Start) {
    let server = start(start_server);
    let (mut a, _) = Peer::join(server.addr(), "a");
    let (mut b, _) = Peer::join(server.addr(), "b");
    a.expect("JOIN guest-2");
    a.send("/nick alice");
    a.expect("OK nick alice");
    b.expect("NICK guest-1 alice");
    a.send("/nick alice");
    a.expect("OK nick alice");
    b.send("/nick alice");
    b.expect_err("nick-taken");
    for bad in [
        "/nick al ice",
        "/nick al.ice",
        "/nick é",
        &format!("/nick {}", "x".repeat(33)),
    ] {
        b.send(bad);
        b.expect_err("bad-nick");
    }
    b.send(&format!("/nick {}", "x".repeat(32)));
    b.expect(&format!("OK nick {}", "x".repeat(32)));
    a.expect(&format!("NICK guest-2 {}", "x".repeat(32)));
    // nothing was broadcast for the refused or same-name renames
    a.sync();
}

pub fn list_is_sorted_and_includes_the_asker(start_server: Start) {
    let server = start(start_server);
    let mut z = Peer::named(server.addr(), "zed");
    let mut big = Peer::named(server.addr(), "Zed");
    let mut u = Peer::named(server.addr(), "_u");
    u.send("/list");
    u.expect("LIST Zed _u zed");
    z.settle();
    big.settle();
    z.send("/list");
    z.expect("LIST Zed _u zed");
}

pub fn direct_messages(start_server: Start) {
    let server = start(start_server);
    let mut a = Peer::named(server.addr(), "ann");
    let mut b = Peer::named(server.addr(), "bob");
    let mut c = Peer::named(server.addr(), "cat");
    a.settle();
    b.settle();
    a.send("/dm bob  psst, bob ");
    a.expect("OK dm bob");
    b.expect("DM ann  psst, bob ");
    a.send("/dm nobody hi");
    a.expect_err("no-such-nick");
    a.send("/dm ann note to self");
    a.expect("DM ann note to self");
    a.expect("OK dm ann");
    for bad in ["/dm", "/dm bob", "/dm bob "] {
        a.send(bad);
        a.expect_err("usage");
    }
    c.sync();
}

pub fn publish_and_subscribe(start_server: Start) {
    let server = start(start_server);
    let mut vendor = Peer::named(server.addr(), "vendor");
    let mut driver = Peer::named(server.addr(), "driver");
    let mut logger = Peer::named(server.addr(), "logger");
    let mut both = Peer::named(server.addr(), "both");
    let mut idle = Peer::named(server.addr(), "idle");
    for p in [&mut vendor, &mut driver, &mut logger, &mut both] {
        p.send("/list");
        while !p.recv().starts_with("LIST ") {}
    }
    driver.send("/sub pickup");
    driver.expect("OK sub pickup");
    logger.send("/sub *");
    logger.expect("OK sub *");
    both.send("/sub pickup");
    both.expect("OK sub pickup");
    both.send("/sub *");
    both.expect("OK sub *");
    vendor.send("/sub pickup");
    vendor.expect("OK sub pickup");

    vendor.send("/pub pickup {\"orderId\": 7,  \"x\": \" y \"} ");
    let event = "EVENT pickup vendor {\"orderId\": 7,  \"x\": \" y \"} ";
    driver.expect(event);
    logger.expect(event);
    both.expect(event); // once, although subscribed twice over
    vendor.sync(); // never to the publisher
    both.sync();

    // another topic reaches only `*`; an empty payload is allowed
    driver.send("/pub delivered");
    logger.expect("EVENT delivered driver ");
    both.expect("EVENT delivered driver ");
    vendor.sync();
    driver.sync();

    // unsub, also when not subscribed
    driver.send("/unsub pickup");
    driver.expect("OK unsub pickup");
    idle.send("/unsub pickup");
    while !idle.recv().starts_with("OK unsub pickup") {}
    vendor.send("/pub pickup again");
    logger.expect("EVENT pickup vendor again");
    both.expect("EVENT pickup vendor again");
    driver.sync();
    idle.sync();
}

pub fn topic_rules(start_server: Start) {
    let server = start(start_server);
    let (mut a, _) = Peer::join(server.addr(), "a");
    for bad in [
        "/sub a b",
        "/sub a/b",
        "/pub *",
        "/pub * x",
        "/pub a/b x",
        &format!("/sub {}", "t".repeat(65)),
    ] {
        a.send(bad);
        a.expect_err("bad-topic");
    }
    let longest = "t".repeat(64);
    a.send(&format!("/sub {longest}"));
    a.expect(&format!("OK sub {longest}"));
    a.send("/unsub *");
    a.expect("OK unsub *");
}

pub fn ping_help_and_command_errors(start_server: Start) {
    let server = start(start_server);
    let (mut a, _) = Peer::join(server.addr(), "a");
    a.send("/ping");
    a.expect("PONG");
    a.send("/help");
    let first = a.expect_prefix("HELP ");
    assert!(first.len() > 5);
    // more HELP lines may follow; /ping marks the end
    a.send("/ping");
    loop {
        let line = a.recv();
        if line == "PONG" {
            break;
        }
        assert!(line.starts_with("HELP "), "{line}");
    }
    for bad in ["/NICK a", "/Ping", "/nope", "/", "//x"] {
        a.send(bad);
        a.expect_err("unknown-command");
    }
    for bad in ["/nick", "/sub", "/unsub", "/pub", "/dm"] {
        a.send(bad);
        a.expect_err("usage");
    }
}

// ---- framing -------------------------------------------------------------------

pub fn line_endings_empty_lines_and_splits(start_server: Start) {
    let server = start(start_server);
    let mut a = Peer::named(server.addr(), "ann");
    let mut b = Peer::named(server.addr(), "bob");
    a.expect("JOIN guest-2");
    a.expect("NICK guest-2 bob");
    // \r\n works; empty lines (also "\r\n" alone) are ignored
    a.send_raw(b"one\r\n\n\r\ntwo\n");
    b.expect("MSG ann one");
    b.expect("MSG ann two");
    // only the \r right before \n is dropped
    a.send_raw(b"a\rb\r\r\n");
    b.expect("MSG ann a\rb\r");
    // many lines in one segment
    let many: String = (0..50).map(|i| format!("m{i}\n")).collect();
    a.send_raw(many.as_bytes());
    for i in 0..50 {
        b.expect(&format!("MSG ann m{i}"));
    }
    // one byte per segment
    for byte in b"/pub t x\r\nfrag\n" {
        a.send_raw(&[*byte]);
        thread::sleep(Duration::from_millis(2));
    }
    b.expect("MSG ann frag");
    a.sync();
}

pub fn over_long_lines_are_refused_and_the_connection_stays(start_server: Start) {
    let server = start_server(Limits {
        max_line: 16,
        ..Limits::default()
    });
    let mut a = Peer::named(server.addr(), "ann");
    let mut b = Peer::named(server.addr(), "bob");
    a.expect("JOIN guest-2");
    a.expect("NICK guest-2 bob");
    // exactly the limit, with \n and with \r\n (the \r does not count)
    a.send_raw(b"0123456789abcdef\n0123456789abcdef\r\n");
    b.expect("MSG ann 0123456789abcdef");
    b.expect("MSG ann 0123456789abcdef");
    // one over
    a.send_raw(b"0123456789abcdefg\nafter\n");
    a.expect_err("line-too-long");
    b.expect("MSG ann after");
    // a long line arriving in many pieces, then more lines
    for _ in 0..20 {
        a.send_raw(b"xxxxxxxxxx");
        thread::sleep(Duration::from_millis(1));
    }
    a.send_raw(b"yyy\nok\n");
    a.expect_err("line-too-long");
    b.expect("MSG ann ok");
    a.sync();
    b.sync();
}

pub fn invalid_utf8_is_refused_and_the_connection_stays(start_server: Start) {
    let server = start(start_server);
    let mut a = Peer::named(server.addr(), "ann");
    let mut b = Peer::named(server.addr(), "bob");
    a.expect("JOIN guest-2");
    a.expect("NICK guest-2 bob");
    a.send_raw(b"caf\xe9\n\xff\xfe\x00\n/nick \xc3\x28\n");
    a.expect_err("bad-utf8");
    a.expect_err("bad-utf8");
    a.expect_err("bad-utf8");
    a.send("caf\u{e9} ok");
    b.expect("MSG ann caf\u{e9} ok");
    a.sync();
    b.sync();
}

pub fn garbage_from_one_client_does_not_disturb_another(start_server: Start) {
    let server = start(start_server);
    let mut a = Peer::named(server.addr(), "ann");
    let mut b = Peer::named(server.addr(), "bob");
    a.expect("JOIN guest-2");
    a.expect("NICK guest-2 bob");
    // pseudo-random bytes, some newlines among them
    let mut x: u32 = 0x9e37_79b9;
    let garbage: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let mut g = Peer::connect(server.addr(), "garbage");
    g.send_raw(&garbage);
    g.send_raw(b"\n/quit\n");
    drop(g);
    // a and b still talk, whatever b saw of the garbage client
    a.send("still fine");
    loop {
        let line = b.recv();
        if line == "MSG ann still fine" {
            break;
        }
    }
}

// ---- guarantees ----------------------------------------------------------------

/// N publishers x M lines to K receivers: no loss, per-sender order, and the
/// same global order at every receiver.
pub fn no_loss_and_order(start_server: Start) {
    const PUBLISHERS: usize = 5;
    const LINES: usize = 2000;
    const RECEIVERS: usize = 5;
    let server = start(start_server);
    let addr = server.addr();
    let mut receivers: Vec<Peer> = (0..RECEIVERS)
        .map(|i| Peer::named(addr, &format!("r{i}")))
        .collect();
    let mut publishers: Vec<Peer> = (0..PUBLISHERS)
        .map(|i| Peer::named(addr, &format!("p{i}")))
        .collect();
    // drain the join noise: everyone /list, read up to LIST
    for p in receivers.iter_mut().chain(publishers.iter_mut()) {
        p.send("/list");
        while !p.recv().starts_with("LIST ") {}
    }
    // Each publisher writes from one thread and reads from another: it
    // receives the other publishers' lines and must keep reading them, or
    // it would become a slow consumer itself.
    let senders: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (mut p, mut w) = p.split();
            let writer = thread::spawn(move || {
                // batches of lines per write, so segments carry many lines
                for chunk in (0..LINES).collect::<Vec<_>>().chunks(50) {
                    let text: String = chunk.iter().map(|n| format!("{i}:{n}\n")).collect();
                    w.write_all(text.as_bytes()).unwrap();
                }
            });
            thread::spawn(move || {
                for _ in 0..(PUBLISHERS - 1) * LINES {
                    let line = p.recv();
                    assert!(line.starts_with("MSG p"), "{}: {line}", p.name);
                }
                writer.join().unwrap();
                p
            })
        })
        .collect();
    let readers: Vec<_> = receivers
        .into_iter()
        .map(|mut r| {
            thread::spawn(move || {
                let mut next = [0usize; PUBLISHERS];
                let mut order = Vec::with_capacity(PUBLISHERS * LINES);
                for _ in 0..PUBLISHERS * LINES {
                    let line = r.recv();
                    let rest = line.strip_prefix("MSG p").expect("only MSG lines");
                    let (from, text) = rest.split_once(' ').unwrap();
                    let from: usize = from.parse().unwrap();
                    let (i, n) = text.split_once(':').unwrap();
                    assert_eq!(i.parse::<usize>().unwrap(), from);
                    let n: usize = n.parse().unwrap();
                    assert_eq!(n, next[from], "{}: out of order from p{from}", r.name);
                    next[from] += 1;
                    order.push(from as u8);
                }
                r.sync();
                (order, r)
            })
        })
        .collect();
    // keep every peer connected until all are done (a LEAVE is noise)
    let (orders, _peers): (Vec<Vec<u8>>, Vec<Peer>) =
        readers.into_iter().map(|h| h.join().unwrap()).unzip();
    for o in &orders[1..] {
        assert!(o == &orders[0], "receivers saw different global orders");
    }
    let mut publishers: Vec<Peer> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    for p in &mut publishers {
        p.sync();
    }
}

/// A client that stops reading is cut off after the write timeout; the
/// others see LEAVE and keep receiving everything.
pub fn slow_consumer_is_cut_off(start_server: Start) {
    let server = start_server(Limits {
        write_timeout_ms: 300,
        ..Limits::default()
    });
    let addr = server.addr();
    let mut talker = Peer::named(addr, "talker");
    let mut reader = Peer::named(addr, "reader");
    let mut sleeper = Peer::named(addr, "sleeper");
    for p in [&mut talker, &mut reader] {
        p.send("/list");
        while !p.recv().starts_with("LIST ") {}
    }
    // sleeper reads nothing from now on. The talker floods 8 MiB, more
    // than any loopback socket buffers, so writes to sleeper must block.
    let flood = thread::spawn(move || {
        let line = format!("{}\n", "f".repeat(1000));
        let chunk = line.repeat(64);
        for _ in 0..128 {
            talker.send_raw(chunk.as_bytes());
        }
        talker.send("done");
        talker
    });
    let mut got = 0;
    let mut saw_leave = false;
    let mut saw_done = false;
    // A hub with one writer (the threaded one) stalls everyone while it
    // waits on the sleeper, so LEAVE comes before "done"; a hub that queues
    // per client (the twins) delivers "done" at once and cuts the sleeper
    // off when its timeout runs out. Both keep the contract.
    while !(saw_leave && saw_done) {
        let line = reader.recv();
        if line == "LEAVE sleeper" {
            saw_leave = true;
        } else if line == "MSG talker done" {
            saw_done = true;
        } else {
            assert!(line.starts_with("MSG talker f"), "{line}");
            got += 1;
        }
    }
    assert!(saw_leave, "the slow consumer was not cut off");
    assert_eq!(got, 128 * 64, "the reader lost lines");
    let mut talker = flood.join().unwrap();
    talker.expect("LEAVE sleeper");
    talker.sync();
    reader.sync();
    // the sleeper's connection is closed (after whatever was buffered)
    sleeper.drain_for(Duration::from_secs(5));
    assert!(sleeper.try_recv().map(|l| l.is_none()).unwrap_or(true));
}

/// Instantiates the whole suite for one server launcher. With `skip_if`,
/// each test first asks that function whether the server can run here (the
/// Node twin needs `node`) and, if not, prints the reason and returns.
#[macro_export]
macro_rules! conformance {
    ($name:ident, $start:path) => {
        conformance!($name, $start, skip_if = runs_everywhere);
    };
    ($name:ident, $start:path, skip_if = $missing:path) => {
        mod $name {
            use super::*;
            conformance!(@tests $start, $missing;
                welcome_join_and_nothing_else,
                guest_numbers_count_up_and_skip_names_in_use,
                quit_says_bye_closes_and_others_see_leave,
                end_of_stream_and_reset_give_leave,
                half_close_answers_everything_then_closes,
                server_full_refuses_without_join_or_leave,
                chat_reaches_everyone_else_verbatim,
                nick_rules,
                list_is_sorted_and_includes_the_asker,
                direct_messages,
                publish_and_subscribe,
                topic_rules,
                ping_help_and_command_errors,
                line_endings_empty_lines_and_splits,
                over_long_lines_are_refused_and_the_connection_stays,
                invalid_utf8_is_refused_and_the_connection_stays,
                garbage_from_one_client_does_not_disturb_another,
                no_loss_and_order,
                slow_consumer_is_cut_off,
            );
        }
    };
    (@tests $start:path, $missing:path; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                if let Some(reason) = $missing() {
                    eprintln!("skipped: {reason}");
                    return;
                }
                super::$test($start);
            }
        )*
    };
}

/// For servers that need nothing beyond this crate.
fn runs_everywhere() -> Option<String> {
    None
}

conformance!(threaded, common::start_threaded);
conformance!(async_twin, common::start_async);
conformance!(
    node_twin,
    common::start_node,
    skip_if = common::node_missing
);

//! Connections: welcome, guest numbers, leaving (quit, close, reset,
//! half-close) and the full hub.

use std::thread;
use std::time::Duration;

use super::Check;
use super::{CheckFailure, CheckResult, Ctx, Hint, Kind, NOTHING, ONE_DATA_EVENT_HINT, Wants};

/// `WELCOME` first, `JOIN` to the others, nothing else to the newcomer.
pub const WELCOME: Check = Check {
    name: "welcome",
    about: "WELCOME guest-N first; the others get JOIN; the newcomer gets nothing else",
    wants: NOTHING,
    kind: Kind::Required,
    run: welcome,
};

fn welcome(ctx: &mut Ctx) -> CheckResult {
    let mut a = ctx.join("a")?;
    if !a.guest.starts_with("guest-") {
        let got = format!("WELCOME {}", a.guest);
        return Err(
            CheckFailure::new("a", "\"WELCOME guest-<N>\"", super::escape(got.as_bytes()))
                .with_hint("every connection is welcomed as guest-<N>, N counting up from 1"),
        );
    }
    let mut b = ctx.join("b")?;
    if a.guest == b.guest {
        let expected = format!("a nick other than {}", a.guest);
        return Err(
            CheckFailure::new("b", expected, format!("WELCOME {}", b.guest)).with_hint(
                "two connections got the same guest nick: count connections, per server",
            ),
        );
    }
    a.expect(&format!("JOIN {}", b.guest))
        .hint("when someone connects, everyone else gets JOIN <their nick>")?;
    b.sync()
        .hint("a newcomer gets nothing after WELCOME: no JOIN lines for those already there")?;
    a.sync()
}

/// Guest numbers count up, are never reused, and skip names in use.
pub const GUEST_NUMBERS: Check = Check {
    name: "guest-numbers",
    about: "newcomers are welcomed as guest-<N>, N counting up from 1",
    wants: Wants {
        clients: 2,
        ..NOTHING
    },
    kind: Kind::Required,
    run: guest_numbers,
};

/// The contract's part: `guest-<N>`, from 1 on a fresh server, counting up.
fn guest_numbers(ctx: &mut Ctx) -> CheckResult {
    let number = |p: &super::Peer| {
        p.guest
            .strip_prefix("guest-")
            .and_then(|n| n.parse::<u64>().ok())
    };
    let a = ctx.join("a")?;
    let hint = "guest numbers start at 1 and count up with every accepted connection";
    match number(&a) {
        Some(1) => {}
        Some(_) if !ctx.fresh => {}
        _ => {
            let expected = if ctx.fresh {
                "\"WELCOME guest-1\" (nobody connected before)"
            } else {
                "\"WELCOME guest-<N>\""
            };
            let got = super::escape(format!("WELCOME {}", a.guest).as_bytes());
            return Err(CheckFailure::new("a", expected, got).with_hint(hint));
        }
    }
    let b = ctx.join("b")?;
    if number(&b) <= number(&a) {
        let expected = format!("a number above {}'s", a.guest);
        let got = super::escape(format!("WELCOME {}", b.guest).as_bytes());
        return Err(CheckFailure::new("b", expected, got).with_hint(hint));
    }
    Ok(())
}

/// *Choice:* numbers never reused, a number whose name is taken skipped.
pub const GUEST_NO_REUSE: Check = Check {
    name: "guest-no-reuse",
    about: "a guest number is never reused, and one whose name is in use is skipped",
    wants: Wants {
        clients: 3,
        ..NOTHING
    },
    kind: Kind::Choice,
    run: guest_no_reuse,
};

fn guest_no_reuse(ctx: &mut Ctx) -> CheckResult {
    let fresh = ctx.fresh;
    let mut a = ctx.join("a")?;
    let number = a
        .guest
        .strip_prefix("guest-")
        .and_then(|n| n.parse::<u64>().ok());
    let base = match number {
        Some(1) => 1,
        Some(n) if !fresh => n,
        _ => {
            let got = super::escape(format!("WELCOME {}", a.guest).as_bytes());
            let expected = if fresh {
                "\"WELCOME guest-1\" (nobody connected before)"
            } else {
                "\"WELCOME guest-<N>\""
            };
            return Err(CheckFailure::new("a", expected, got)
                .with_hint("guest numbers start at 1 and count every accepted connection"));
        }
    };
    let guest = |k: u64| format!("guest-{}", base + k);
    let mut b = ctx.connect("b")?;
    b.expect(&format!("WELCOME {}", guest(1)))
        .hint("each new connection gets the next number")?;
    a.expect(&format!("JOIN {}", guest(1)))?;
    b.call("/quit", "BYE")?;
    a.expect(&format!("LEAVE {}", guest(1)))
        .hint(LEAVE_AT_ONCE)?;
    a.call(
        &format!("/nick {}", guest(3)),
        &format!("OK nick {}", guest(3)),
    )?;
    let mut c = ctx.connect("c")?;
    let reuse = format!(
        "numbers are never reused: after {} left, the next newcomer is {}",
        guest(1),
        guest(2)
    );
    c.expect(&format!("WELCOME {}", guest(2))).hint(&reuse)?;
    a.expect(&format!("JOIN {}", guest(2)))?;
    let mut d = ctx.connect("d")?;
    let skip = format!(
        "a number whose name is in use is skipped: someone renamed to {}, so the next is {}",
        guest(3),
        guest(4)
    );
    d.expect(&format!("WELCOME {}", guest(4))).hint(&skip)
}

/// The hint when `LEAVE` does not follow a `/quit`.
const LEAVE_AT_ONCE: &str = "after /quit the server sends BYE, closes the connection itself, and \
    the others get LEAVE at once, without waiting for the quitting client to close its side (in \
    Node, 'close' waits for both sides: send LEAVE when you handle /quit)";

/// `/quit`: `BYE`, close, `LEAVE`; later lines in the segment ignored.
pub const QUIT: Check = Check {
    name: "quit",
    about: "/quit gets BYE then a close, others get LEAVE; lines after it in the segment are ignored",
    wants: NOTHING,
    kind: Kind::Required,
    run: quit,
};

fn quit(ctx: &mut Ctx) -> CheckResult {
    let mut a = ctx.join("a")?;
    let mut b = ctx.join("b")?;
    a.expect(&format!("JOIN {}", b.guest))?;
    b.send_raw(b"/quit\nhello after quit\n/nick ghost\n")?;
    b.expect("BYE")
        .map_err(|f| {
            f.with_context("after \"/quit\\nhello after quit\\n/nick ghost\\n\" in one segment")
        })
        .hint(ONE_DATA_EVENT_HINT)?;
    b.expect_closed()
        .hint("after BYE the server closes the connection")?;
    a.expect(&format!("LEAVE {}", b.guest))
        .hint(LEAVE_AT_ONCE)?;
    a.sync()
        .hint("lines after /quit in the same segment are ignored: nothing of them is relayed")
}

/// End of stream and a reset both make the others see `LEAVE`.
pub const EOF_AND_RESET: Check = Check {
    name: "eof-and-reset",
    about: "a client closing (FIN) or resetting (RST) its connection gives LEAVE to the others",
    wants: NOTHING,
    kind: Kind::Required,
    run: eof_and_reset,
};

fn eof_and_reset(ctx: &mut Ctx) -> CheckResult {
    let mut a = ctx.join("a")?;
    let b = ctx.join("b")?;
    a.expect(&format!("JOIN {}", b.guest))?;
    let nick_b = b.guest.clone();
    drop(b);
    a.expect(&format!("LEAVE {nick_b}"))
        .hint("when a client closes its connection (end of stream), the others get LEAVE")?;
    // Closing a socket with unread data makes the kernel send RST, not FIN.
    let mut c = ctx.join("c")?;
    a.expect(&format!("JOIN {}", c.guest))?;
    c.send("/ping")?;
    thread::sleep(Duration::from_millis(100)); // let the PONG arrive unread
    let nick_c = c.guest.clone();
    drop(c);
    a.expect(&format!("LEAVE {nick_c}")).hint(
        "a reset connection (ECONNRESET) is a client leaving too: handle the error, send LEAVE, \
         and do not crash",
    )?;
    a.sync()
}

/// A half-closed client is answered in full, then closed.
pub const HALF_CLOSE: Check = Check {
    name: "half-close",
    about: "after a client shuts down its sending side, all it sent is answered, then it is closed",
    wants: NOTHING,
    kind: Kind::Required,
    run: half_close,
};

fn half_close(ctx: &mut Ctx) -> CheckResult {
    const HINT: &str = "a client that half-closes (sends FIN) still reads: answer every line it \
        sent first, then close (in Node: net.createServer({ allowHalfOpen: true }) and \
        socket.end() once the last line is handled)";
    let mut a = ctx.join("a")?;
    let mut b = ctx.join("b")?;
    a.expect(&format!("JOIN {}", b.guest))?;
    b.send_raw(b"/ping\none\n/list\ntwo\n")?;
    b.half_close()?;
    let context = "after \"/ping\\none\\n/list\\ntwo\\n\" in one segment, then FIN";
    b.expect("PONG")
        .map_err(|f| f.with_context(context))
        .hint(HINT)?;
    b.expect_prefix("LIST ").hint(HINT)?;
    b.expect_closed().hint(HINT)?;
    a.expect(&format!("MSG {} one", b.guest))
        .hint(ONE_DATA_EVENT_HINT)?;
    a.expect(&format!("MSG {} two", b.guest))?;
    a.expect(&format!("LEAVE {}", b.guest))
}

/// One connection over `--max-clients` is refused, silently for the others.
pub const SERVER_FULL: Check = Check {
    name: "server-full",
    about: "with --max-clients open, one more gets ERR server-full and is closed; no JOIN/LEAVE",
    wants: Wants {
        clients: 1,
        max_clients: Some(2),
        ..NOTHING
    },
    kind: Kind::Required,
    run: server_full,
};

/// Joins as many clients as `--max-clients` allows and lets each settle:
/// the full server that `server-full` and `slot-free-at-leave` both start
/// from.
fn fill_to_max_clients(ctx: &mut Ctx) -> CheckResult<(usize, Vec<super::Peer>)> {
    let Some(max) = ctx.limits.max_clients else {
        return Err(CheckFailure::new("grader", "--max-clients", "not given"));
    };
    let mut peers = Vec::with_capacity(max);
    for i in 0..max {
        peers.push(ctx.join(&format!("p{i}"))?);
    }
    for p in &mut peers {
        p.settle()?;
    }
    Ok((max, peers))
}

fn server_full(ctx: &mut Ctx) -> CheckResult {
    let (max, mut peers) = fill_to_max_clients(ctx)?;
    let mut extra = ctx.connect("extra")?;
    let full = format!(
        "with --max-clients {max} connections open, one more gets \"ERR server-full ...\" and is \
         closed, with no WELCOME"
    );
    extra.expect_err("server-full").hint(&full)?;
    extra.expect_closed().hint(&full)?;
    for p in &mut peers {
        p.sync()
            .hint("nobody sees a JOIN or LEAVE for a refused connection")?;
    }
    if let [first, others @ ..] = &mut peers[..] {
        first.send("still here")?;
        for other in others {
            other
                .expect(&format!("MSG {} still here", first.guest))
                .hint("a refused connection must not disturb those already there")?;
        }
    }
    Ok(())
}

/// *Choice:* a slot is free again as soon as its client's `LEAVE` is sent.
pub const SLOT_FREE_AT_LEAVE: Check = Check {
    name: "slot-free-at-leave",
    about: "on a full server, whoever sees a LEAVE can connect at once",
    wants: Wants {
        clients: 1,
        max_clients: Some(2),
        ..NOTHING
    },
    kind: Kind::Choice,
    run: slot_free_at_leave,
};

fn slot_free_at_leave(ctx: &mut Ctx) -> CheckResult {
    let (_, mut peers) = fill_to_max_clients(ctx)?;
    if let Some(mut last) = peers.pop() {
        last.call("/quit", "BYE")?;
        last.expect_closed()?;
        if let Some(first) = peers.first_mut() {
            first.expect(&format!("LEAVE {}", last.guest))?;
        }
    }
    let freed = "a slot is free again as soon as its client's LEAVE is sent";
    let newcomer = ctx.join("newcomer").hint(freed)?;
    if let Some(first) = peers.first_mut() {
        first
            .expect(&format!("JOIN {}", newcomer.guest))
            .hint(freed)?;
    }
    Ok(())
}

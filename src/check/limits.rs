//! The hub's limits, checked from outside against any server: a reader too
//! far behind is cut off (`--max-pending`), an unfinished line is timed out
//! (`--line-timeout-ms`), a silent client is closed and a chatty one is not
//! (`--idle-timeout-ms`), one connection too many from an address is
//! refused (`--max-per-ip`), one subscription too many is refused
//! (`--max-subs`), and a server out of file descriptors leaves no
//! connection hanging (`--fd-limit`: the server's `ulimit -n`).
//!
//! A grader cannot ask a server what it was started with, so each check
//! runs only when told the limit (the same flag on `tcphub check`), and is
//! `SKIP` otherwise. A launcher (tests/conformance.rs) starts each server
//! with the small value the check's [`Wants`] names, so every check takes
//! well under a second or two.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::peer::Got;
use super::{Check, CheckFailure, CheckResult, Ctx, Kind, NOTHING, Peer, Wants};

/// A limit a check needs to be told, with the value a launcher should
/// start the server with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `--max-pending BYTES`.
    MaxPending(u64),
    /// `--line-timeout-ms MS`.
    LineTimeoutMs(u64),
    /// `--idle-timeout-ms MS`.
    IdleTimeoutMs(u64),
    /// `--max-per-ip N`.
    MaxPerIp(usize),
    /// `--max-subs N`.
    MaxSubs(usize),
    /// The server's descriptor limit (`ulimit -n N`), not a serve flag.
    FdLimit(usize),
}

impl Limit {
    /// The `tcphub check` flag that tells it.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::MaxPending(_) => "--max-pending",
            Limit::LineTimeoutMs(_) => "--line-timeout-ms",
            Limit::IdleTimeoutMs(_) => "--idle-timeout-ms",
            Limit::MaxPerIp(_) => "--max-per-ip",
            Limit::MaxSubs(_) => "--max-subs",
            Limit::FdLimit(_) => "--fd-limit",
        }
    }

    /// The serve flags that set it on tcphub and its twins (none for the
    /// descriptor limit: that is the shell's `ulimit -n`).
    pub fn serve_args(self) -> Vec<String> {
        let value = match self {
            Limit::MaxPending(n) | Limit::LineTimeoutMs(n) | Limit::IdleTimeoutMs(n) => n,
            Limit::MaxPerIp(n) | Limit::MaxSubs(n) => n as u64,
            Limit::FdLimit(_) => return Vec::new(),
        };
        vec![self.flag().to_string(), value.to_string()]
    }

    /// Whether `limits` holds this limit's value (the grader was told it).
    pub fn known_in(self, limits: &super::Limits) -> bool {
        match self {
            Limit::MaxPending(_) => limits.max_pending.is_some(),
            Limit::LineTimeoutMs(_) => limits.line_timeout.is_some(),
            Limit::IdleTimeoutMs(_) => limits.idle_timeout.is_some(),
            Limit::MaxPerIp(_) => limits.max_per_ip.is_some(),
            Limit::MaxSubs(_) => limits.max_subs.is_some(),
            Limit::FdLimit(_) => limits.fd_limit.is_some(),
        }
    }

    /// The SKIP line's reason when it was not told.
    pub fn skip_reason(self) -> String {
        match self {
            Limit::FdLimit(n) => format!(
                "needs the server's descriptor limit: start it under `ulimit -n {n}` and pass --fd-limit {n}"
            ),
            other => format!(
                "needs the server's {flag}: start it with one ({}, say) and pass the same {flag} here",
                other.serve_args()[1],
                flag = other.flag()
            ),
        }
    }
}

/// What the grader was not told is a bug in the check, not the server's.
fn told<T>(value: Option<T>, flag: &str) -> CheckResult<T> {
    value.ok_or_else(|| CheckFailure::new("grader", format!("to know {flag}"), "nothing"))
}

pub const MAX_PENDING: Check = Check {
    name: "max-pending",
    about: "a subscriber that stops reading is cut off once --max-pending bytes wait for it, before the write timeout",
    wants: Wants {
        clients: 3,
        // the write timeout alone would take a minute: only the size can cut
        write_timeout_ms: Some(60_000),
        limit: Some(Limit::MaxPending(65_536)),
        ..NOTHING
    },
    kind: Kind::Required,
    run: max_pending,
};

fn max_pending(ctx: &mut Ctx) -> CheckResult {
    let write_timeout = told(ctx.limits.write_timeout, "--write-timeout-ms")?;
    let mut bystander = ctx.join("bystander")?;
    let mut stuck = ctx.join("non-reader")?;
    stuck.call("/sub firehose", "OK sub firehose")?;
    let publisher = ctx.join("publisher")?;
    bystander.settle()?;
    let stop = Arc::new(AtomicBool::new(false));
    // Flooding for at most 20 s, and less than the write timeout (and the
    // idle timeout, if any: the non-reader sends nothing): a cut after
    // that may be a timeout's.
    let flood_for = [Some(write_timeout), ctx.limits.idle_timeout]
        .into_iter()
        .flatten()
        .fold(Duration::from_secs(20), Duration::min);
    let flooding = flood(&publisher, "firehose", flood_for, stop.clone())?;
    let began = Instant::now();
    let gone = format!("LEAVE {}", stuck.guest);
    let mut seen = false;
    while !seen && began.elapsed() < flood_for {
        bystander.send("/ping")?;
        loop {
            let line = bystander.recv("PONG, or the non-reader's LEAVE")?;
            seen |= line == gone;
            if line == "PONG" {
                break;
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let _ = flooding.join();
    if !seen {
        return Err(CheckFailure::new(
            &bystander.name,
            format!(
                "{gone} once --max-pending {} bytes waited for it (a flood of 15 MB/s on its topic)",
                ctx.limits.max_pending.unwrap_or(0)
            ),
            format!(
                "no LEAVE within {} ms, shorter than the write (and idle) timeout",
                flood_for.as_millis()
            ),
        ));
    }
    Ok(())
}

/// Publishes 30 kB rounds of 3000-byte lines on `topic` every 2 ms from
/// another thread, until `stop` or `how_long`.
fn flood(
    publisher: &Peer,
    topic: &str,
    how_long: Duration,
    stop: Arc<AtomicBool>,
) -> CheckResult<thread::JoinHandle<()>> {
    let lines = format!("/pub {topic} {}\n", "x".repeat(3000)).repeat(10);
    let mut socket = publisher.writer()?;
    Ok(thread::spawn(move || {
        let start = Instant::now();
        while !stop.load(Ordering::SeqCst) && start.elapsed() < how_long {
            if socket.write_all(lines.as_bytes()).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }))
}

pub const LINE_TIMEOUT: Check = Check {
    name: "line-timeout",
    about: "a line trickled slower than --line-timeout-ms gets ERR line-timeout and is closed; the others see it LEAVE",
    wants: Wants {
        clients: 2,
        limit: Some(Limit::LineTimeoutMs(300)),
        ..NOTHING
    },
    kind: Kind::Required,
    run: line_timeout,
};

fn line_timeout(ctx: &mut Ctx) -> CheckResult {
    let limit = told(ctx.limits.line_timeout, "--line-timeout-ms")?;
    let mut other = ctx.join("other")?;
    let mut slowloris = ctx.join("slowloris")?;
    other.settle()?;
    // Whole lines are fine; one byte of an unfinished line every half a
    // limit, for one and a half limits, is not.
    slowloris.call("/ping", "PONG")?;
    for byte in b"/pi" {
        if slowloris.send_raw(&[*byte]).is_err() {
            break; // closed already: what follows says whether it was right
        }
        thread::sleep(limit / 2);
    }
    slowloris.expect_err("line-timeout")?;
    slowloris.expect_closed()?;
    other.expect(&format!("LEAVE {}", slowloris.guest))
}

pub const IDLE_TIMEOUT: Check = Check {
    name: "idle-timeout",
    about: "a client silent for --idle-timeout-ms gets ERR idle-timeout and is closed; one sending all along stays",
    wants: Wants {
        clients: 2,
        limit: Some(Limit::IdleTimeoutMs(300)),
        ..NOTHING
    },
    kind: Kind::Required,
    run: idle_timeout,
};

fn idle_timeout(ctx: &mut Ctx) -> CheckResult {
    let limit = told(ctx.limits.idle_timeout, "--idle-timeout-ms")?;
    let mut ghost = ctx.join("ghost")?;
    let mut chatty = ctx.join("chatty")?;
    // chatty pings every third of the limit for three limits; the ghost
    // only receives (chatty's JOIN), which is idle all the same.
    let gone = format!("LEAVE {}", ghost.guest);
    let mut seen = false;
    let began = Instant::now();
    while began.elapsed() < limit * 3 {
        chatty.send("/ping")?;
        loop {
            let line = chatty.recv("PONG (it is not idle: it pings)")?;
            seen |= line == gone;
            if line == "PONG" {
                break;
            }
        }
        thread::sleep(limit / 3);
    }
    ghost.skip_until("ERR idle-timeout ...", |l| {
        l.starts_with(b"ERR idle-timeout")
    })?;
    ghost.expect_closed()?;
    if !seen {
        chatty.expect(&gone)?;
    }
    chatty.call("/ping", "PONG")
}

pub const PER_IP_CAP: Check = Check {
    name: "per-ip-cap",
    about: "one connection more than --max-per-ip from one address gets ERR server-full; a place freed is free again",
    wants: Wants {
        clients: 3,
        limit: Some(Limit::MaxPerIp(2)),
        ..NOTHING
    },
    kind: Kind::Required,
    run: per_ip_cap,
};

fn per_ip_cap(ctx: &mut Ctx) -> CheckResult {
    let cap = told(ctx.limits.max_per_ip, "--max-per-ip")?;
    let mut held = (0..cap)
        .map(|i| ctx.join(&format!("c{i}")))
        .collect::<CheckResult<Vec<_>>>()?;
    held[0].settle()?;
    let mut extra = ctx.connect("one-too-many")?;
    extra.expect_err("server-full")?;
    extra.expect_closed()?;
    if let Some(last) = held.pop()
        && cap > 1
    {
        let left = format!("LEAVE {}", last.guest);
        drop(last);
        held[0].expect(&left)?;
        // The threaded hub frees the place just after it says LEAVE (the
        // reader thread's exit): a round trip later it is free.
        held[0].sync()?;
    } else {
        drop(held.pop());
    }
    let mut again = ctx.join("again")?;
    again.sync()
}

pub const MAX_SUBS: Check = Check {
    name: "max-subs",
    about: "one /sub more than --max-subs gets ERR too-many-subs; after an /unsub there is room again",
    wants: Wants {
        clients: 1,
        limit: Some(Limit::MaxSubs(3)),
        ..NOTHING
    },
    kind: Kind::Required,
    run: max_subs,
};

/// Past this many the check would spend its time subscribing: SKIP.
const MOST_SUBS: usize = 100_000;

fn max_subs(ctx: &mut Ctx) -> CheckResult {
    let max = told(ctx.limits.max_subs, "--max-subs")?;
    if max > MOST_SUBS {
        return Err(CheckFailure::new(
            "grader",
            format!("--max-subs {MOST_SUBS} or fewer (start the server with a small one)"),
            format!("--max-subs {max}"),
        ));
    }
    let mut a = ctx.join("a")?;
    for t in 1..=max {
        a.call(&format!("/sub t{t}"), &format!("OK sub t{t}"))?;
    }
    a.send("/sub one-more")?;
    a.expect_err("too-many-subs")?;
    a.call("/unsub t1", "OK unsub t1")?;
    a.call("/sub one-more", "OK sub one-more")
}

pub const OUT_OF_DESCRIPTORS: Check = Check {
    name: "out-of-descriptors",
    about: "a server out of file descriptors (ulimit -n, --fd-limit) leaves no connection hanging, and serves the ones it has",
    wants: Wants {
        clients: 60,
        limit: Some(Limit::FdLimit(40)),
        ..NOTHING
    },
    kind: Kind::Required,
    run: out_of_descriptors,
};

fn out_of_descriptors(ctx: &mut Ctx) -> CheckResult {
    let fds = told(ctx.limits.fd_limit, "--fd-limit")?;
    // Twenty more than the server can have open, counting none of its own.
    let mut welcomed = Vec::new();
    let mut refused = 0;
    for i in 0..fds + 20 {
        let mut peer = ctx.connect(&format!("c{i}"))?;
        match peer.read() {
            Got::Line(line) if line.starts_with(b"WELCOME ") => {
                peer.guest = String::from_utf8_lossy(&line[8..]).into_owned();
                welcomed.push(peer);
            }
            Got::Line(line) if line.starts_with(b"ERR server-full") => refused += 1,
            Got::Closed | Got::Reset => refused += 1,
            other => {
                return Err(CheckFailure::new(
                    &peer.name,
                    "WELCOME, ERR server-full, or the connection closed (the server is out of descriptors)",
                    other.to_string(),
                ));
            }
        }
    }
    if refused == 0 {
        return Err(CheckFailure::new(
            "grader",
            format!(
                "some of {} connections refused under --fd-limit {fds}",
                fds + 20
            ),
            "every one welcomed: is --fd-limit the server's ulimit -n?",
        ));
    }
    let [first, second, ..] = &mut welcomed[..] else {
        return Err(CheckFailure::new(
            "grader",
            "two connections welcomed",
            format!("{}", welcomed.len()),
        ));
    };
    first.settle()?;
    second.settle()?;
    first.send("still here")?;
    second.expect(&format!("MSG {} still here", first.guest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_their_flags_and_say_how_to_run_them() {
        assert_eq!(
            Limit::MaxPending(65_536).serve_args(),
            ["--max-pending", "65536"]
        );
        assert_eq!(Limit::MaxSubs(3).serve_args(), ["--max-subs", "3"]);
        assert!(Limit::FdLimit(40).serve_args().is_empty());
        assert_eq!(
            Limit::IdleTimeoutMs(300).skip_reason(),
            "needs the server's --idle-timeout-ms: start it with one (300, say) and pass the same --idle-timeout-ms here"
        );
        assert!(
            Limit::FdLimit(40)
                .skip_reason()
                .contains("`ulimit -n 40` and pass --fd-limit 40")
        );
        let mut limits = super::super::Limits::default();
        assert!(!Limit::MaxPerIp(2).known_in(&limits));
        limits.max_per_ip = Some(2);
        assert!(Limit::MaxPerIp(2).known_in(&limits));
    }
}

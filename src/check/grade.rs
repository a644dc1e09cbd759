//! The command line's side of the checks: one address, limits the user
//! states, and a report a student can read (`PASS`, `FAIL` with expected
//! and got, `SKIP` with why, then a score).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use super::{CHECKS, Check, Ctx, Kind, Limits, Outcome, Target, run_check};

/// A server the grader did not start: always the same address, with the
/// limits the user says it has. Between checks it waits until the server
/// has seen the last check's clients leave, so they cannot disturb the next.
pub struct Address {
    addr: SocketAddr,
    limits: Limits,
    timeout: Duration,
    /// `--fresh`, until the first check that runs has used it.
    fresh: bool,
    /// False once the server did not answer the `/list` used to wait.
    quiesce: bool,
    /// `LEAVE <nick>` of the last probe, which the next check ignores.
    probe_leave: Option<String>,
}

impl Address {
    /// A target at `addr`; `fresh` says nobody has connected to it yet.
    pub fn new(addr: SocketAddr, limits: Limits, timeout: Duration, fresh: bool) -> Address {
        Address {
            addr,
            limits,
            timeout,
            fresh,
            quiesce: true,
            probe_leave: None,
        }
    }

    /// Waits (at most one timeout) until `/list` shows only a probe
    /// connection, then quits the probe: the last check's peers are gone.
    fn wait_until_idle(&mut self) {
        let ctx = Ctx::new(self.addr, self.limits, false, self.timeout);
        let end = Instant::now() + self.timeout;
        // Right after `server-full` the server may still be full while the
        // last check's peers close: the probe itself is refused then, so
        // try again until there is room (or the timeout runs out).
        let mut probe = loop {
            match ctx.join("probe") {
                Ok(probe) => break probe,
                Err(_) if Instant::now() < end => thread::sleep(Duration::from_millis(25)),
                Err(_) => return,
            }
        };
        let alone = format!("LIST {}", probe.guest);
        self.probe_leave = Some(format!("LEAVE {}", probe.guest));
        loop {
            let answered = probe
                .send("/list")
                .and_then(|()| probe.skip_until("LIST", |l| l.starts_with(b"LIST")))
                .map(|l| l == alone.as_bytes());
            match answered {
                Ok(true) => break,
                Ok(false) if Instant::now() < end => thread::sleep(Duration::from_millis(25)),
                Ok(false) => break,
                Err(_) => {
                    self.quiesce = false; // no /list: do not wait again
                    break;
                }
            }
        }
        if probe.call("/quit", "BYE").is_ok() {
            let _ = probe.expect_closed();
        }
    }
}

impl Target for Address {
    fn prepare(&mut self, check: &Check) -> Result<Ctx, String> {
        if let Some(limit) = check.wants.limit
            && !limit.known_in(&self.limits)
        {
            return Err(match check.wants.write_timeout_ms {
                Some(ms) => format!(
                    "needs the server's {flag} and --write-timeout-ms: start it with {flag} {} --write-timeout-ms {ms}, say, and pass the same here",
                    limit.serve_args().get(1).map_or("N", String::as_str),
                    flag = limit.flag()
                ),
                None => limit.skip_reason(),
            });
        }
        if check.wants.max_clients.is_some() && self.limits.max_clients.is_none() {
            return Err(
                "needs the server's --max-clients: start it with a small one (2, say) \
                        and pass the same --max-clients N here"
                    .into(),
            );
        }
        if check.wants.write_timeout_ms.is_some() && self.limits.write_timeout.is_none() {
            return Err(
                "needs the server's --write-timeout-ms: pass the value it was started \
                        with (--write-timeout-ms 2000 for the default)"
                    .into(),
            );
        }
        if let Some(max) = self.limits.max_clients
            && check.wants.max_clients.is_none()
            && max < check.wants.clients
        {
            return Err(format!(
                "opens {} connections at once, more than --max-clients {max}; start the server \
                 with --max-clients 10 or more to run every check in one go",
                check.wants.clients
            ));
        }
        let fresh = std::mem::take(&mut self.fresh);
        let ctx = Ctx::new(self.addr, self.limits, fresh, self.timeout);
        Ok(ctx.ignoring(self.probe_leave.clone()))
    }

    fn finish(&mut self) {
        if self.quiesce {
            self.wait_until_idle();
        }
    }
}

/// How a run went, for the score line and the exit code.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    /// Checks that passed.
    pub passed: usize,
    /// Checks that failed: required ones (and, with `--strict`, choices).
    pub failed: usize,
    /// Choice checks where the server chose otherwise (`NOTE`): not
    /// failures, not in the fraction.
    pub noted: usize,
    /// Checks not run (a limit the grader was not told).
    pub skipped: usize,
}

impl Score {
    /// `17/19 checks passed`, plus `, 2 skipped` when some were: skipped
    /// checks are not in the fraction, so a skip never looks like a pass.
    pub fn line(&self) -> String {
        let run = self.passed + self.failed;
        let mut line = format!("{}/{run} checks passed", self.passed);
        if self.noted > 0 {
            line.push_str(&format!(", {} choices made otherwise", self.noted));
        }
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        line
    }
}

/// Why a run stopped before grading anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable(pub String);

/// Runs `checks` on `target`, writing one `PASS`/`FAIL`/`NOTE`/`SKIP` block
/// per check as it finishes, then the score. A choice check that does not
/// pass is a `NOTE` (the server chose otherwise), or with `strict` a
/// `FAIL`. If the very first connection of
/// the run fails, nothing is graded: the address is wrong or nothing is
/// listening, and that is reported as [`Unreachable`] instead.
pub fn grade(
    target: &mut dyn Target,
    checks: &[&Check],
    strict: bool,
    out: &mut dyn Write,
) -> Result<Score, Unreachable> {
    let mut score = Score::default();
    let mut reached = false;
    for check in checks {
        let outcome = match target.prepare(check) {
            Ok(mut ctx) => {
                let outcome = run_check(check, &mut ctx);
                if let Outcome::Fail(f) = &outcome
                    && f.unreachable
                    && !reached
                {
                    return Err(Unreachable(f.got.clone()));
                }
                reached |= ctx.reached();
                drop(ctx);
                target.finish();
                outcome
            }
            Err(reason) => Outcome::Skip(reason),
        };
        let note = check.kind == Kind::Choice && !strict;
        let _ = write_outcome(out, check, &outcome, note);
        match outcome {
            Outcome::Pass => score.passed += 1,
            Outcome::Fail(_) if note => score.noted += 1,
            Outcome::Fail(_) => score.failed += 1,
            Outcome::Skip(_) => score.skipped += 1,
        }
    }
    let _ = writeln!(out, "{}", score.line());
    let _ = out.flush();
    Ok(score)
}

fn write_outcome(
    out: &mut dyn Write,
    check: &Check,
    outcome: &Outcome,
    note: bool,
) -> io::Result<()> {
    match outcome {
        Outcome::Pass => writeln!(out, "PASS {}", check.name)?,
        Outcome::Fail(failure) if note => {
            writeln!(out, "NOTE {}: chose otherwise than tcphub", check.name)?;
            writeln!(out, "{failure}")?;
        }
        Outcome::Fail(failure) => {
            writeln!(out, "FAIL {}", check.name)?;
            writeln!(out, "{failure}")?;
        }
        Outcome::Skip(why) => writeln!(out, "SKIP {}: {why}", check.name)?,
    }
    out.flush()
}

/// `--list`: every check, `required` or `choice`, with its one-line
/// description and what it needs to be told on the command line.
pub fn list(out: &mut dyn Write) -> io::Result<()> {
    for check in CHECKS {
        let needs = match (
            check.wants.max_clients,
            check.wants.write_timeout_ms,
            check.wants.limit,
        ) {
            (_, Some(_), Some(limit)) => {
                format!(" [needs {} and --write-timeout-ms]", limit.flag())
            }
            (_, _, Some(limit)) => format!(" [needs {}]", limit.flag()),
            (Some(_), _, _) => " [needs --max-clients]".into(),
            (_, Some(_), _) => " [needs --write-timeout-ms]".into(),
            _ if check.name == "guest-numbers" => " [from 1 only with --fresh]".into(),
            _ => String::new(),
        };
        let kind = check.kind.label();
        writeln!(out, "{:<24} {kind:<8} {}{needs}", check.name, check.about)?;
    }
    Ok(())
}

//! `tcphub check`: the protocol v1 contract (docs/protocol.md) as a list of
//! named checks that grade any server, in any language, by its address.
//!
//! There is one list, [`CHECKS`]. The command line runs it against an
//! address ([`grade::Address`]); the project's own conformance suite
//! (`tests/conformance.rs`) runs the same checks against each server it
//! starts, one `#[test]` per check and server. A check gets a [`Ctx`]: the
//! server's address, the limits the grader knows it was started with, and
//! whether nobody has connected to it yet. Where the context lacks what a
//! check needs (the command line was not told `--max-clients`), the check is
//! skipped rather than guessed at.
//!
//! Every check is a plain function returning [`CheckResult`]: a failure is a
//! value saying what was expected and what came back ([`CheckFailure`]),
//! never a panic, because the server under test may send anything.

pub mod choices;
pub mod commands;
pub mod framing;
pub mod grade;
pub mod guarantees;
pub mod lifecycle;
pub mod limits;
pub mod peer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use peer::{CheckFailure, CheckResult, Hint, Peer, PeerSettings, escape};

/// One rule of the contract, checked over real sockets.
pub struct Check {
    /// Its name on the command line and in the output (`half-close`).
    pub name: &'static str,
    /// One line saying what it tests, for `--list`.
    pub about: &'static str,
    /// Limits the check needs to know, and would like a test server to be
    /// started with.
    pub wants: Wants,
    /// Whether the contract requires what it tests, or tcphub chose it.
    pub kind: Kind,
    /// The check itself.
    pub run: fn(&mut Ctx) -> CheckResult,
}

/// What a check tests: a rule of protocol v1, or tcphub's answer to a
/// point the contract leaves open (docs/protocol.md's *Choice*). A grader
/// used on students' servers must fail only the first kind: a server that
/// read the contract and chose otherwise is not wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The contract requires it: a failure is `FAIL`, and exit code 1.
    Required,
    /// tcphub's choice: a difference is `NOTE`, and never changes the exit
    /// code (unless `--strict`).
    Choice,
}

impl Kind {
    /// `required` or `choice`, as `--list` shows it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Required => "required",
            Kind::Choice => "choice",
        }
    }
}

/// What a check needs beyond an address. A launcher (the test suite)
/// starts a server with these limits; the command line must be told the
/// server's real limits, or the check is skipped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wants {
    /// How many connections the check holds open at once: a server whose
    /// `--max-clients` is known to be lower cannot run it.
    pub clients: usize,
    /// The check needs to know `--max-clients`; a launcher should use this
    /// small value so filling the server is cheap.
    pub max_clients: Option<usize>,
    /// A launcher should use this `--max-line` (the default, 4096, is
    /// assumed otherwise, so this is never a reason to skip).
    pub max_line: Option<usize>,
    /// The check needs to know `--write-timeout-ms`; a launcher should use
    /// this short one so the check is quick.
    pub write_timeout_ms: Option<u64>,
    /// One of the hub's limits the check needs to know (SKIP without
    /// it), with the value a launcher should start the server with.
    pub limit: Option<limits::Limit>,
}

/// A check that needs nothing beyond an address.
pub const NOTHING: Wants = Wants {
    clients: 2,
    max_clients: None,
    max_line: None,
    write_timeout_ms: None,
    limit: None,
};

/// What the grader knows about the server's limits (its serve flags).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--max-clients`, if known.
    pub max_clients: Option<usize>,
    /// `--max-line` (the protocol's default is 4096).
    pub max_line: usize,
    /// `--write-timeout-ms`, if known.
    pub write_timeout: Option<Duration>,
    /// `--max-pending`, if known.
    pub max_pending: Option<u64>,
    /// `--line-timeout-ms`, if known (and not 0: off).
    pub line_timeout: Option<Duration>,
    /// `--idle-timeout-ms`, if known (and not 0: off).
    pub idle_timeout: Option<Duration>,
    /// `--max-per-ip`, if known (and not 0: off).
    pub max_per_ip: Option<usize>,
    /// `--max-subs`, if known.
    pub max_subs: Option<usize>,
    /// The server's descriptor limit (`ulimit -n`), if known.
    pub fd_limit: Option<usize>,
}

impl Default for Limits {
    /// The protocol's default line limit; the others unknown.
    fn default() -> Self {
        Limits {
            max_clients: None,
            max_line: 4096,
            write_timeout: None,
            max_pending: None,
            line_timeout: None,
            idle_timeout: None,
            max_per_ip: None,
            max_subs: None,
            fd_limit: None,
        }
    }
}

/// Everything one check may use: where the server is, what is known about
/// it, and how long to wait.
pub struct Ctx {
    /// The server's address.
    pub addr: SocketAddr,
    /// Its limits, as far as the grader knows them.
    pub limits: Limits,
    /// True if nobody has connected to this server yet, so guest numbers
    /// start at 1. A launcher starts a fresh server for every check; on the
    /// command line only `--fresh` says so, and only for the first check.
    pub fresh: bool,
    /// Longest wait for one line.
    pub timeout: Duration,
    /// When this check must be over.
    pub deadline: Instant,
    reached: Arc<AtomicBool>,
    noise: Option<Arc<[u8]>>,
    /// Keeps a server started for this check alive until the check ends.
    _server: Option<Box<dyn std::any::Any>>,
}

impl Ctx {
    /// A context for one check against `addr`, with a time budget of
    /// [`budget`] from now.
    pub fn new(addr: SocketAddr, limits: Limits, fresh: bool, timeout: Duration) -> Ctx {
        Ctx {
            addr,
            limits,
            fresh,
            timeout,
            deadline: Instant::now() + budget(timeout, &limits),
            reached: Arc::new(AtomicBool::new(false)),
            noise: None,
            _server: None,
        }
    }

    /// Keeps `server` (whatever stops it when dropped) alive as long as
    /// this context: how a launcher ties a server to one check.
    pub fn keeping(mut self, server: Box<dyn std::any::Any>) -> Ctx {
        self._server = Some(server);
        self
    }

    /// Tells every peer of this check to skip `line` wherever it comes
    /// (see [`PeerSettings::noise`]).
    pub fn ignoring(mut self, line: Option<String>) -> Ctx {
        self.noise = line.map(|l| Arc::from(l.into_bytes()));
        self
    }

    /// Whether any connection of this check reached the server.
    pub fn reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }

    /// What each peer of this check is told about time.
    pub fn settings(&self) -> PeerSettings {
        PeerSettings {
            timeout: self.timeout,
            deadline: self.deadline,
            reached: self.reached.clone(),
            noise: self.noise.clone(),
        }
    }

    /// A connection that has read nothing yet.
    pub fn connect(&self, name: &str) -> CheckResult<Peer> {
        Peer::connect(self.addr, name, &self.settings())
    }

    /// A connection that has read its `WELCOME`.
    pub fn join(&self, name: &str) -> CheckResult<Peer> {
        Peer::join(self.addr, name, &self.settings())
    }

    /// A connection renamed to `name` (see [`Peer::named`]).
    pub fn named(&self, name: &str) -> CheckResult<Peer> {
        Peer::named(self.addr, name, &self.settings())
    }
}

/// How long one check may run in all: generous (ten line timeouts, plus the
/// write timeout the slow-consumer check must wait out), but finite, so a
/// server that trickles noise cannot keep the grader busy forever.
pub fn budget(timeout: Duration, limits: &Limits) -> Duration {
    let waits = [
        limits.write_timeout,
        limits.line_timeout,
        limits.idle_timeout,
    ];
    timeout * 10
        + waits.iter().flatten().max().copied().unwrap_or_default() * 3
        + Duration::from_secs(5)
}

/// How one check went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step behaved as the contract says.
    Pass,
    /// A step did not; the failure says which and how.
    Fail(CheckFailure),
    /// Not run, and why (a limit the grader was not told).
    Skip(String),
}

/// Where checks find their server: started fresh for each check (the test
/// suite's launchers) or always the same address (the command line).
pub trait Target {
    /// A context to run `check` in, or the reason it must be skipped.
    fn prepare(&mut self, check: &Check) -> Result<Ctx, String>;

    /// Called after each check; the command line uses it to wait until the
    /// check's connections are gone before the next check starts.
    fn finish(&mut self) {}
}

/// Runs one check in `ctx`.
pub fn run_check(check: &Check, ctx: &mut Ctx) -> Outcome {
    match (check.run)(ctx) {
        Ok(()) => Outcome::Pass,
        Err(failure) => Outcome::Fail(failure),
    }
}

/// Prepares and runs one check on `target`.
pub fn run_on(target: &mut dyn Target, check: &Check) -> Outcome {
    let outcome = match target.prepare(check) {
        Ok(mut ctx) => run_check(check, &mut ctx),
        Err(reason) => Outcome::Skip(reason),
    };
    target.finish();
    outcome
}

/// Every check, in the order they run: the contract's first, then
/// tcphub's choices. `guest-numbers` comes first so that on the command
/// line with `--fresh` it meets a server nobody has used.
pub const CHECKS: &[Check] = &[
    lifecycle::GUEST_NUMBERS,
    lifecycle::WELCOME,
    lifecycle::QUIT,
    lifecycle::EOF_AND_RESET,
    lifecycle::HALF_CLOSE,
    lifecycle::SERVER_FULL,
    commands::CHAT_VERBATIM,
    commands::NICK_RULES,
    commands::LIST_SORTED,
    commands::DM,
    commands::PUBSUB,
    commands::TOPIC_RULES,
    commands::PING_HELP_ERRORS,
    framing::LINE_ENDINGS_AND_SPLITS,
    framing::LINE_TOO_LONG,
    framing::BAD_UTF8,
    framing::GARBAGE_ISOLATED,
    guarantees::NO_LOSS_AND_ORDER,
    guarantees::SLOW_CONSUMER,
    limits::MAX_PENDING,
    limits::LINE_TIMEOUT,
    limits::IDLE_TIMEOUT,
    limits::PER_IP_CAP,
    limits::MAX_SUBS,
    limits::OUT_OF_DESCRIPTORS,
    lifecycle::GUEST_NO_REUSE,
    lifecycle::SLOT_FREE_AT_LEAVE,
    choices::DM_NEEDS_TEXT,
    choices::DM_TEXT_AFTER_ONE_SPACE,
    choices::DM_TO_SELF,
    choices::QUIT_TAKES_NO_ARGUMENTS,
    choices::COMMANDS_EXACT,
    choices::SPACES_IN_NAMES,
    choices::PUB_STAR,
    choices::NICK_SAME_NAME,
    choices::SUB_OVERLAP_ONCE,
    choices::EVENT_EMPTY_PAYLOAD,
    choices::TOO_LONG_AT_ONCE,
];

/// The check called `name`.
pub fn find(name: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.name == name)
}

/// The checks named in a comma-separated list (in the canonical order), or
/// an error naming the unknown ones and listing the valid names.
pub fn select(only: &str) -> Result<Vec<&'static Check>, String> {
    let wanted: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let unknown: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|n| find(n).is_none())
        .collect();
    if !unknown.is_empty() || wanted.is_empty() {
        let valid: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
        return Err(format!(
            "unknown check {}; valid names: {}",
            if unknown.is_empty() {
                "list \"\"".to_string()
            } else {
                unknown.join(", ")
            },
            valid.join(", ")
        ));
    }
    Ok(CHECKS.iter().filter(|c| wanted.contains(&c.name)).collect())
}

/// The hint for every step that two lines sent in one segment break: the
/// mistake the lesson's chat server makes.
pub const ONE_DATA_EVENT_HINT: &str = "lines sent together in one TCP segment were not handled \
    as separate lines: if your server treats one `data` event (one read()) as one message, \
    split what arrives on \\n and keep the rest for the next event";

/// Two peers, `ann` then `bob`, with ann's view of bob's arrival (JOIN and
/// NICK) already read: the start of most checks.
pub fn ann_and_bob(ctx: &Ctx) -> CheckResult<(Peer, Peer)> {
    let mut ann = ctx.named("ann")?;
    let bob = ctx.named("bob")?;
    ann.expect(&format!("JOIN {}", bob.guest))?;
    ann.expect(&format!("NICK {} bob", bob.guest))?;
    Ok((ann, bob))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_select_keeps_the_canonical_order() {
        let mut names: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
        let picked: Vec<&str> = select("dm, quit").unwrap().iter().map(|c| c.name).collect();
        assert_eq!(picked, ["quit", "dm"]);
        let err = select("quit,nope").err().unwrap();
        assert!(
            err.starts_with("unknown check nope; valid names: guest-numbers, "),
            "{err}"
        );
    }
}

//! Running a scenario: one thread per actor, a shared timeline, and the
//! first unmet expectation as the verdict.
//!
//! Each actor thread (`actor-<name>`) walks its steps in order with plain
//! blocking IO. An actor reads its socket **only** while it runs an
//! `expect` (or `expect-closed`): between those, lines the hub sends it wait
//! in the kernel's buffers. That is what makes `wait` a faithful "stopped
//! reading" for the slow-consumer lesson, and it is why the timeline shows
//! when an actor *read* a line, which for a blocked `expect` is the moment it
//! arrived.
//!
//! The actors share three things, all behind one `Shared`:
//! the timeline (one lock, so lines never interleave and times only grow),
//! the raised signals (a mutex and a condition variable, so `await` sleeps
//! until a `signal`), and the verdict: the first failure is kept, every
//! socket is shut down so blocked reads return at once, and the other
//! actors stop at their next step.

use std::collections::HashSet;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use log::debug;

use super::{Action, Actor, Pattern, Scenario, ScenarioError, Settings, Step};
use crate::client::hub_connection::{self, LineReader, Received};
use crate::hub::{Config, Hub};
use crate::support::duration;
use crate::support::terminal::escape;

/// Where the actors connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubToUse {
    /// Start a hub in this process on a free port (with the scenario's
    /// `set` values), and stop it afterwards.
    InProcess,
    /// A hub already running at this `host:port`.
    Addr(String),
}

/// How fast `at` steps (a recording's pace) run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// At the recorded times divided by this (`--speed N`; 1 is as
    /// recorded).
    Speed(f64),
    /// `--as-fast`: `at` steps do not wait at all.
    AsFast,
}

impl Default for Pace {
    fn default() -> Self {
        Pace::Speed(1.0)
    }
}

/// The first expectation that was not met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The scenario's file (or built-in name).
    pub source: String,
    /// Whose step it was.
    pub actor: String,
    /// Which of the actor's steps, counting from 1.
    pub step: usize,
    /// Line in the file.
    pub line: usize,
    /// The step as written.
    pub text: String,
    /// What the step needed, in words (`PING`, `signal ready`).
    pub expected: String,
    /// What happened instead (`PONG`, `nothing within 2s`).
    pub got: String,
}

/// Why one step failed: what it needed and what happened instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    /// What the step needed.
    pub expected: String,
    /// What happened instead.
    pub got: String,
}

fn unmet(expected: impl Into<String>, got: impl Into<String>) -> Unmet {
    Unmet {
        expected: expected.into(),
        got: got.into(),
    }
}

/// The hub closed the connection while `expected` was awaited.
fn closed(expected: &str) -> Unmet {
    unmet(expected, "nothing: the hub closed the connection")
}

/// Nothing matched `expected` within `timeout`; `skipped` lines were
/// ignored meanwhile (said, since one of them may be what was meant).
fn nothing_within(expected: &str, timeout: Duration, skipped: usize) -> Unmet {
    let also = if skipped > 0 {
        format!(" ({skipped} ignored line(s) did)")
    } else {
        String::new()
    };
    unmet(
        expected,
        format!("nothing within {}{also}", duration::show(timeout)),
    )
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} line {}: {}, step {}: {}\n  expected {}\n  got      {}",
            self.source,
            self.line,
            self.actor,
            self.step,
            escape(&self.text),
            escape(&self.expected),
            // What came back is the network's text: escaped for the terminal.
            escape(&self.got)
        )
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step of every actor ran and every expectation was met.
    Passed {
        /// How many actors took part.
        actors: usize,
        /// How many steps they ran, in all.
        steps: usize,
    },
    /// Every step ran, but none was an `expect` or `expect-closed`: the run
    /// proved nothing (an exercise with its expectations deleted, say).
    Unchecked {
        /// How many actors took part.
        actors: usize,
        /// How many steps they ran, in all.
        steps: usize,
    },
    /// The first unmet expectation (later ones are consequences of it).
    Failed(Failure),
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Passed, or the first unmet expectation.
    pub outcome: Outcome,
    /// From the start of the run to the last actor finishing.
    pub elapsed: Duration,
    /// With `set order per-sender`: how many runs of `expect` steps were
    /// met in another order than written (allowed: the order of lines from
    /// different senders depends on timing).
    pub reordered: usize,
}

/// Runs `scenario` against `target`, writing the timeline to `out` as it
/// happens. Returns once every actor has finished or stopped.
///
/// `Err` only if the run could not start (the hub, a thread); a scenario
/// that runs and fails is `Ok` with [`Outcome::Failed`].
pub fn run(
    scenario: &Scenario,
    target: &HubToUse,
    out: Box<dyn Write + Send>,
) -> Result<Report, ScenarioError> {
    run_paced(scenario, target, Pace::default(), out)
}

/// [`run`], with `at` steps at `pace`.
pub fn run_paced(
    scenario: &Scenario,
    target: &HubToUse,
    pace: Pace,
    out: Box<dyn Write + Send>,
) -> Result<Report, ScenarioError> {
    let width = scenario
        .actors
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(0);
    let shared = Shared {
        start: Instant::now(),
        out: Mutex::new(out),
        width,
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
        sockets: Mutex::new(Vec::new()),
        hubs: Mutex::new(Vec::new()),
        pace,
    };
    match &scenario.title {
        Some(title) => shared.header(&format!("scenario {}: {title}", scenario.source)),
        None => shared.header(&format!("scenario {}", scenario.source)),
    }

    let linked = !scenario.settings.hubs.is_empty() && *target == HubToUse::InProcess;
    let (hub, addr, named) = if linked {
        let named = start_linked(&scenario.settings, &shared)?;
        (None, named[0].1.clone(), named)
    } else {
        let (hub, addr) = start_hub(target, &scenario.settings, &shared)?;
        (hub, addr, Vec::new())
    };
    let spawned = run_actors(scenario, &addr, &named, &shared);
    // Close every connection that is still open, then stop the hub(s).
    shared.shutdown_sockets();
    if let Some(hub) = hub {
        hub.shutdown();
    }
    shared.stop_hubs();
    spawned.map_err(ScenarioError::Spawn)?;
    let elapsed = shared.start.elapsed();
    let reordered = shared.lock().reordered;
    Ok(Report {
        outcome: outcome(scenario, &shared),
        elapsed,
        reordered,
    })
}

/// The hub the actors talk to: one started here with the scenario's
/// settings, or the one at the address given. Returns it (if it is ours to
/// stop) and its address.
fn start_hub(
    target: &HubToUse,
    settings: &Settings,
    shared: &Shared,
) -> Result<(Option<Hub>, String), ScenarioError> {
    match target {
        HubToUse::InProcess => {
            let mut config = Config::ephemeral();
            if let Some(t) = settings.write_timeout {
                config.write_timeout = t;
            }
            if let Some(n) = settings.max_clients {
                config.max_clients = n;
            }
            if let Some(n) = settings.max_line {
                config.max_line = n;
            }
            config.blocking_writes = settings.blocking_writes;
            let hub = Hub::start(config.clone()).map_err(ScenarioError::Hub)?;
            let addr = hub.local_addr().to_string();
            shared.header(&format!(
                "hub {addr} (in-process, write timeout {}{})",
                duration::show(config.write_timeout),
                if config.blocking_writes {
                    ", blocking writes"
                } else {
                    ""
                }
            ));
            Ok((Some(hub), addr))
        }
        HubToUse::Addr(addr) => {
            let note = if settings.configures_hub() {
                " (the scenario's hub settings apply only to an in-process hub: ignored)"
            } else {
                ""
            };
            shared.header(&format!("hub {addr}{note}"));
            Ok((None, addr.clone()))
        }
    }
}

/// `set hubs a b c`: one in-process hub per name, each dialling the one
/// before it (a chain: a - b - c), all linked before any actor starts.
/// Returns each hub's name and client address; the hubs go into `shared`
/// (so `stop-hub` can stop one).
fn start_linked(
    settings: &Settings,
    shared: &Shared,
) -> Result<Vec<(String, String)>, ScenarioError> {
    let mut named = Vec::new();
    let mut previous: Option<String> = None;
    for name in &settings.hubs {
        let mut config = Config::ephemeral();
        if let Some(t) = settings.write_timeout {
            config.write_timeout = t;
        }
        if let Some(n) = settings.max_clients {
            config.max_clients = n;
        }
        if let Some(n) = settings.max_line {
            config.max_line = n;
        }
        config.name = Some(name.clone());
        config.link_listen = Some("127.0.0.1:0".into());
        config.links = previous.take().into_iter().collect();
        config.link_key = Some("simulate".into());
        config.link_timeout = Duration::from_secs(2);
        let hub = Hub::start(config).map_err(ScenarioError::Hub)?;
        previous = hub.link_addr().map(|a| a.to_string());
        named.push((name.clone(), hub.local_addr().to_string()));
        shared.lock_hubs().push((name.clone(), Some(hub)));
    }
    // Every hub reaches every other one before the story starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let others = settings.hubs.len() - 1;
    while !shared
        .lock_hubs()
        .iter()
        .all(|(_, h)| h.as_ref().is_some_and(|h| h.reachable_hubs() == others))
    {
        if Instant::now() > deadline {
            shared.stop_hubs();
            return Err(ScenarioError::Hub(crate::HubError::Link(
                "the in-process hubs did not link within 10 s".into(),
            )));
        }
        thread::sleep(Duration::from_millis(10));
    }
    let list: Vec<String> = named.iter().map(|(n, a)| format!("{n} {a}")).collect();
    shared.header(&format!(
        "hubs {} (in-process, linked {})",
        list.join(", "),
        settings.hubs.join(" - ")
    ));
    Ok(named)
}

/// One thread per actor, named `actor-<name>`, all joined before returning.
fn run_actors(
    scenario: &Scenario,
    addr: &str,
    named: &[(String, String)],
    shared: &Shared,
) -> std::io::Result<()> {
    thread::scope(|scope| {
        let mut handles = Vec::new();
        for actor in &scenario.actors {
            let handle = thread::Builder::new()
                .name(format!("actor-{}", actor.name))
                .spawn_scoped(scope, move || {
                    ActorRun::new(actor, scenario, addr, named, shared).run();
                });
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.abort();
                    return Err(e);
                }
            }
        }
        for handle in handles {
            // An actor thread does not panic on anything a peer sends; if
            // it did, the others still finish and the run reports it.
            if handle.join().is_err() {
                shared.abort();
            }
        }
        Ok(())
    })
}

/// Passed, or the first failure an actor recorded.
fn outcome(scenario: &Scenario, shared: &Shared) -> Outcome {
    let state = shared.lock();
    match &state.failure {
        Some(f) => Outcome::Failed(f.clone()),
        None if state.aborted => Outcome::Failed(Failure {
            source: scenario.source.clone(),
            actor: "?".into(),
            step: 0,
            line: 0,
            text: String::new(),
            expected: "every actor thread to finish".into(),
            got: "an actor thread stopped unexpectedly".into(),
        }),
        None => {
            let steps = scenario.actors.iter().flat_map(|a| &a.steps);
            let checks = steps
                .clone()
                .filter(|s| matches!(s.action, Action::Expect(_) | Action::ExpectClosed))
                .count();
            let (actors, steps) = (scenario.actors.len(), steps.count());
            if checks == 0 {
                Outcome::Unchecked { actors, steps }
            } else {
                Outcome::Passed { actors, steps }
            }
        }
    }
}

/// What all actor threads share.
struct Shared {
    start: Instant,
    out: Mutex<Box<dyn Write + Send>>,
    /// Longest actor name, to line the timeline up.
    width: usize,
    state: Mutex<State>,
    /// Notified when a signal is raised or the run is aborted.
    changed: Condvar,
    /// A clone of every connection, to shut them all down on failure (which
    /// wakes any actor blocked reading) and at the end.
    sockets: Mutex<Vec<TcpStream>>,
    /// `set hubs`: the in-process hubs by name (`None` once stopped).
    hubs: Mutex<Vec<(String, Option<Hub>)>>,
    /// How fast `at` steps go.
    pace: Pace,
}

#[derive(Default)]
struct State {
    raised: HashSet<String>,
    failure: Option<Failure>,
    aborted: bool,
    /// Runs of expectations met in another order (`set order per-sender`).
    reordered: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another actor panicked; the state is
        // still usable for reporting.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One timeline line: `  0.103s  vendor  -> /pub pickup {...}`. The time
    /// is taken under the lock, so printed times never go backwards.
    fn say(&self, actor: &str, mark: &str, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let t = self.start.elapsed().as_secs_f64();
        let width = self.width;
        // Lines from the hub are the network's text: escaped for the terminal.
        let shown = escape(&shorten(text));
        let _ = writeln!(out, "{t:>7.3}s  {actor:<width$}  {mark} {shown}");
        let _ = out.flush();
    }

    fn header(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn lock_hubs(&self) -> MutexGuard<'_, Vec<(String, Option<Hub>)>> {
        self.hubs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `stop-hub`: stops one named hub; false if there is none running.
    fn stop_hub(&self, name: &str) -> bool {
        let hub = self
            .lock_hubs()
            .iter_mut()
            .find(|(n, _)| n == name)
            .and_then(|(_, h)| h.take());
        match hub {
            Some(hub) => {
                hub.shutdown();
                true
            }
            None => false,
        }
    }

    fn stop_hubs(&self) {
        let hubs: Vec<Hub> = self
            .lock_hubs()
            .iter_mut()
            .filter_map(|(_, h)| h.take())
            .collect();
        for hub in hubs {
            hub.shutdown();
        }
    }

    fn aborted(&self) -> bool {
        self.lock().aborted
    }

    fn abort(&self) {
        self.lock().aborted = true;
        self.changed.notify_all();
        self.shutdown_sockets();
    }

    /// Records `failure` if it is the first, and stops the run.
    fn fail(&self, failure: Failure) {
        {
            let mut state = self.lock();
            if state.aborted {
                // A consequence of the first failure (its sockets were shut
                // down under us), not news.
                return;
            }
            let text = format!("expected {}, got {}", failure.expected, failure.got);
            self.say(&failure.actor, "!!", &text);
            state.failure = Some(failure);
        }
        self.abort();
    }

    fn shutdown_sockets(&self) {
        let sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        for socket in sockets.iter() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn raise(&self, name: &str) {
        self.lock().raised.insert(name.to_string());
        self.changed.notify_all();
    }

    /// Blocks until `name` is raised (true), or `timeout` passes or the run
    /// is aborted (false).
    fn await_signal(&self, name: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if state.raised.contains(name) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.aborted || left.is_zero() {
                return false;
            }
            // Sleeps until notified (a signal, an abort) or `left` passes.
            state = match self.changed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Sleeps for `d`, waking early if the run is aborted.
    fn sleep(&self, d: Duration) {
        let deadline = Instant::now() + d;
        let mut state = self.lock();
        while !state.aborted {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = match self.changed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// Long lines (a flood's) are cut in the timeline, with their length.
fn shorten(text: &str) -> String {
    const KEEP: usize = 120;
    if text.len() <= KEEP + 40 {
        return text.to_string();
    }
    let mut cut = KEEP;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} bytes)", &text[..cut], text.len())
}

/// An open connection: the socket to write, a line reader on a clone.
struct Conn {
    writer: TcpStream,
    reader: LineReader<TcpStream>,
}

/// One actor's run through its steps.
struct ActorRun<'a> {
    actor: &'a Actor,
    source: &'a str,
    addr: &'a str,
    /// `set hubs`: each hub's name and client address.
    named: &'a [(String, String)],
    shared: &'a Shared,
    timeout: Duration,
    ignores: Vec<Pattern>,
    conn: Option<Conn>,
    /// `set order per-sender`: runs of expectations are matched by
    /// [`ActorRun::expect_run`].
    per_sender: bool,
}

impl<'a> ActorRun<'a> {
    fn new(
        actor: &'a Actor,
        scenario: &'a Scenario,
        addr: &'a str,
        named: &'a [(String, String)],
        shared: &'a Shared,
    ) -> Self {
        ActorRun {
            actor,
            source: &scenario.source,
            addr,
            named,
            shared,
            timeout: scenario.settings.timeout,
            ignores: Vec::new(),
            conn: None,
            per_sender: scenario.settings.order_per_sender,
        }
    }

    fn run(mut self) {
        let steps = &self.actor.steps;
        let mut index = 0;
        while index < steps.len() {
            if self.shared.aborted() {
                debug!("stopping: another actor failed");
                return;
            }
            let (next, result) =
                if self.per_sender && matches!(steps[index].action, Action::Expect(_)) {
                    self.expect_run(index)
                } else {
                    (index + 1, self.step(&steps[index]).map_err(|u| (index, u)))
                };
            if let Err((at, Unmet { expected, got })) = result {
                let step = &steps[at];
                self.shared.fail(Failure {
                    source: self.source.to_string(),
                    actor: self.actor.name.clone(),
                    step: at + 1,
                    line: step.line,
                    text: step.text.clone(),
                    expected,
                    got,
                });
                return;
            }
            index = next;
        }
    }

    fn say(&self, mark: &str, text: &str) {
        self.shared.say(&self.actor.name, mark, text);
    }

    /// The connection; the parser guarantees one is open for steps that
    /// need it, so `Err` here means a bug in that check, not in the file.
    fn conn(&mut self) -> Result<&mut Conn, Unmet> {
        self.conn.as_mut().ok_or_else(|| {
            unmet(
                "an open connection",
                "none (add a `connect` step before this one)",
            )
        })
    }

    /// Runs one step: a dispatch on its action, the longer actions each in
    /// a helper below so this reads as the list of what a step can be.
    fn step(&mut self, step: &Step) -> Result<(), Unmet> {
        match &step.action {
            Action::Connect => self.connect(self.addr, None),
            Action::ConnectTo(hub) => self.connect_to(hub),
            Action::StopHub(hub) => self.stop_hub(hub),
            Action::Send(bytes) => self.send(bytes),
            Action::At(t) => {
                self.at(*t);
                Ok(())
            }
            Action::Flood {
                count,
                bytes,
                prefix,
            } => self.flood(*count, *bytes, prefix),
            Action::Expect(pattern) => self.expect(pattern),
            Action::ExpectClosed => self.expect_closed(),
            Action::Ignore(pattern) => {
                self.ignores.push(pattern.clone());
                Ok(())
            }
            Action::Timeout(d) => {
                self.set_timeout(*d);
                Ok(())
            }
            Action::Wait(d) => {
                self.say("..", &format!("wait {}", duration::show(*d)));
                self.shared.sleep(*d);
                Ok(())
            }
            Action::Signal(name) => {
                self.say("..", &format!("signal {name}"));
                self.shared.raise(name);
                Ok(())
            }
            Action::Await(name) => self.await_signal(name),
            Action::Note(text) => {
                self.say("#", text);
                Ok(())
            }
            Action::Close => {
                self.close();
                Ok(())
            }
        }
    }

    /// `connect to HUB`: looks the hub's client address up among the named
    /// hubs (only in-process runs have them), then connects as `connect`.
    fn connect_to(&mut self, hub: &str) -> Result<(), Unmet> {
        let Some((_, addr)) = self.named.iter().find(|(n, _)| n == hub) else {
            return Err(unmet(
                format!("hub {hub}"),
                "no such hub here: named hubs are in-process only (run without --addr)",
            ));
        };
        self.connect(addr, Some(hub))
    }

    /// `stop hub HUB`: stops one in-process hub; unmet if it is not running.
    fn stop_hub(&mut self, hub: &str) -> Result<(), Unmet> {
        self.say("..", &format!("stop hub {hub}"));
        if self.shared.stop_hub(hub) {
            Ok(())
        } else {
            Err(unmet(format!("hub {hub} running"), "it is not"))
        }
    }

    /// `send TEXT`: writes the line (with its `\n`) and shows it in the
    /// timeline once written.
    fn send(&mut self, bytes: &[u8]) -> Result<(), Unmet> {
        let mut line = bytes.to_vec();
        line.push(b'\n');
        // Not UTF-8 (a recording of a bad line): shown as it is written.
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => crate::proto::escape::encode(bytes, crate::proto::escape::Context::Send),
        };
        // Blocks only if the hub stopped reading us (then for at
        // most the actor's timeout: the socket's write timeout).
        self.conn()?
            .writer
            .write_all(&line)
            .map_err(|e| unmet("to send the line", format!("a write error: {e}")))?;
        self.say("->", &text);
        Ok(())
    }

    /// `at T`: sleeps until the run is `T` old (divided by the speed),
    /// reading nothing meanwhile; at once with `--as-fast`.
    fn at(&self, t: Duration) {
        let Pace::Speed(speed) = self.shared.pace else {
            return;
        };
        let due = t.div_f64(speed);
        let left = due.saturating_sub(self.shared.start.elapsed());
        if !left.is_zero() {
            self.shared.sleep(left);
        }
    }

    /// `timeout D`: the new bound for later expects and awaits, and for the
    /// open connection's writes (a later `connect` uses it too).
    fn set_timeout(&mut self, d: Duration) {
        self.timeout = d;
        if let Some(conn) = &self.conn {
            let _ = conn.writer.set_write_timeout(Some(d));
        }
    }

    /// `await NAME`: waits (at most the timeout) for another actor's
    /// `signal NAME`.
    fn await_signal(&mut self, name: &str) -> Result<(), Unmet> {
        if self.shared.await_signal(name, self.timeout) {
            self.say("..", &format!("got signal {name}"));
            Ok(())
        } else {
            Err(unmet(
                format!("signal {name}"),
                format!("nothing within {}", duration::show(self.timeout)),
            ))
        }
    }

    /// `close`: hangs up the connection, if one is open.
    fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Shutdown, not just drop: the run keeps a clone of the
            // socket, so dropping ours would not close it.
            let _ = conn.writer.shutdown(Shutdown::Both);
        }
        self.say("..", "close");
    }

    fn connect(&mut self, addr: &str, hub: Option<&str>) -> Result<(), Unmet> {
        let socket =
            hub_connection::connect(addr).map_err(|e| unmet("a connection", e.to_string()))?;
        let setup = || -> std::io::Result<(TcpStream, TcpStream)> {
            socket.set_write_timeout(Some(self.timeout))?;
            Ok((socket.try_clone()?, socket.try_clone()?))
        };
        let (reading, registered) =
            setup().map_err(|e| unmet("a connection", format!("socket setup failed: {e}")))?;
        let local = socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        self.shared
            .sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(registered);
        self.conn = Some(Conn {
            writer: socket,
            reader: LineReader::new(reading),
        });
        match hub {
            Some(hub) => self.say("..", &format!("connect to hub {hub} (from {local})")),
            None => self.say("..", &format!("connect (from {local})")),
        }
        Ok(())
    }

    fn flood(&mut self, count: usize, bytes: usize, prefix: &str) -> Result<(), Unmet> {
        let mut sample = flood_line(prefix, 1, bytes);
        if sample.len() > 60 {
            sample.truncate(prefix.len() + 30);
            sample.push_str("...");
        }
        self.say(
            "->",
            &format!("flood of {count} lines, {bytes} bytes each: {sample}"),
        );
        let started = Instant::now();
        let conn = self.conn()?;
        let mut batch = Vec::with_capacity(256 * 1024);
        for n in 1..=count {
            batch.extend_from_slice(flood_line(prefix, n, bytes).as_bytes());
            batch.push(b'\n');
            if batch.len() >= 256 * 1024 || n == count {
                // Blocks whenever the hub reads us slower than we write.
                conn.writer.write_all(&batch).map_err(|e| {
                    unmet(
                        format!("to send {count} lines"),
                        format!("a write error at line {n}: {e}"),
                    )
                })?;
                batch.clear();
            }
        }
        let total = count * (bytes + 1);
        self.say(
            "..",
            &format!(
                "flood sent: {:.1} MB in {:.2}s",
                total as f64 / 1e6,
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    fn expect(&mut self, pattern: &Pattern) -> Result<(), Unmet> {
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        let mut skipped = 0;
        loop {
            // Blocks until a line arrives, the hub closes, or the deadline.
            let got = self.conn()?.reader.read_line_by(deadline);
            match got {
                Ok(Received::Line(line)) if pattern.matches(&line) => {
                    self.say("<-", &line);
                    return Ok(());
                }
                Ok(Received::Line(line)) if self.skips(&line) => {
                    self.say("<-", &format!("{line}   (ignored)"));
                    skipped += 1;
                }
                Ok(Received::Line(line)) => {
                    self.say("<-", &line);
                    return Err(unmet(pattern.as_str(), line));
                }
                Ok(Received::Closed) => return Err(closed(pattern.as_str())),
                Ok(Received::TimedOut) => {
                    return Err(nothing_within(pattern.as_str(), timeout, skipped));
                }
                Err(e) => {
                    return Err(unmet(pattern.as_str(), format!("a read error: {e}")));
                }
            }
        }
    }

    /// `set order per-sender`: the run of `expect` steps from `first` on
    /// (with the `at` steps among them, which then do not wait), at most
    /// [`WINDOW`] of them, is met in any order that keeps each sender's
    /// lines in theirs: a line may match a later expectation only if no
    /// earlier unmet one is from the same sender ([`sender_of`]). Returns
    /// the index after the run, or the step that failed.
    fn expect_run(&mut self, first: usize) -> (usize, Result<(), (usize, Unmet)>) {
        let steps = &self.actor.steps;
        let mut pending: Vec<(usize, &Pattern)> = Vec::new();
        // Ends after its last `expect`: an `at` after it waits as usual.
        let mut end = first;
        let mut i = first;
        while i < steps.len() && pending.len() < WINDOW {
            match &steps[i].action {
                Action::Expect(p) => {
                    pending.push((i, p));
                    end = i + 1;
                }
                Action::At(_) => {}
                _ => break,
            }
            i += 1;
        }
        let mut reordered = false;
        while let Some(&(step, want)) = pending.first() {
            let timeout = self.timeout;
            let deadline = Instant::now() + timeout;
            let line = match self.next_line(deadline, want) {
                Ok(line) => line,
                Err(unmet) => return (end, Err((step, unmet))),
            };
            let sender = sender_of(&line);
            let found = pending.iter().enumerate().find_map(|(k, (_, p))| {
                let blocked = pending[..k]
                    .iter()
                    .any(|(_, q)| sender_of(q.as_str()) == sender);
                (p.matches(&line) && !blocked).then_some(k)
            });
            self.say("<-", &line);
            match found {
                Some(k) => {
                    reordered |= k > 0;
                    pending.remove(k);
                }
                None => return (end, Err((step, unmet(want.as_str(), line)))),
            }
        }
        if reordered {
            self.say("..", "order across senders differed (allowed)");
            self.shared.lock().reordered += 1;
        }
        (end, Ok(()))
    }

    /// True for a line `expect` skips: one matching an `ignore` pattern,
    /// or a `NOTICE` (words for people, docs/protocol.md: a hub started
    /// with `--record` says so after `WELCOME`) that was not expected.
    fn skips(&self, line: &str) -> bool {
        line.starts_with("NOTICE ") || self.ignores.iter().any(|p| p.matches(line))
    }

    /// The next line not ignored, by `deadline`; `want` says what was
    /// expected, for the failure.
    fn next_line(&mut self, deadline: Instant, want: &Pattern) -> Result<String, Unmet> {
        let mut skipped = 0;
        loop {
            match self.conn()?.reader.read_line_by(deadline) {
                Ok(Received::Line(line)) if self.skips(&line) => {
                    self.say("<-", &format!("{line}   (ignored)"));
                    skipped += 1;
                }
                Ok(Received::Line(line)) => return Ok(line),
                Ok(Received::Closed) => return Err(closed(want.as_str())),
                Ok(Received::TimedOut) => {
                    return Err(nothing_within(want.as_str(), self.timeout, skipped));
                }
                Err(e) => return Err(unmet(want.as_str(), format!("a read error: {e}"))),
            }
        }
    }

    fn expect_closed(&mut self) -> Result<(), Unmet> {
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        let mut lines = 0usize;
        let mut bytes = 0usize;
        let how = loop {
            let got = self.conn()?.reader.read_line_by(deadline);
            match got {
                Ok(Received::Line(line)) => {
                    lines += 1;
                    bytes += line.len() + 1;
                }
                Ok(Received::Closed) => break "closed by the hub",
                Ok(Received::TimedOut) => {
                    return Err(unmet(
                        "the hub to close the connection",
                        format!(
                            "still open after {} ({lines} line(s) read)",
                            duration::show(timeout)
                        ),
                    ));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    break "reset by the hub";
                }
                Err(e) => {
                    return Err(unmet(
                        "the hub to close the connection",
                        format!("a read error: {e}"),
                    ));
                }
            }
        };
        self.conn = None;
        if lines == 0 {
            self.say("<-", &format!("({how})"));
        } else {
            self.say(
                "<-",
                &format!(
                    "({how}, after {lines} unread line(s), {:.1} MB, that were still buffered)",
                    bytes as f64 / 1e6
                ),
            );
        }
        Ok(())
    }
}

/// Most `expect` steps [`ActorRun::expect_run`] matches as one run.
pub const WINDOW: usize = 64;

pub use crate::proto::recording::sender_of;

/// Line `n` of a flood: `<prefix> <n> ` then `x` up to `bytes` bytes (the
/// line is longer only if the prefix and number alone are).
pub fn flood_line(prefix: &str, n: usize, bytes: usize) -> String {
    let mut line = format!("{prefix} {n} ");
    while line.len() < bytes {
        line.push('x');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_lines_have_the_asked_length() {
        assert_eq!(flood_line("/pub t", 7, 12), "/pub t 7 xxx");
        assert_eq!(flood_line("/pub t", 7, 3), "/pub t 7 ");
        assert_eq!(flood_line("hi", 12, 4000).len(), 4000);
    }

    #[test]
    fn long_text_is_shortened_on_a_char_boundary() {
        assert_eq!(shorten("short"), "short");
        let long = "é".repeat(200);
        let s = shorten(&long);
        assert!(s.ends_with("... (400 bytes)"), "{s}");
    }
}

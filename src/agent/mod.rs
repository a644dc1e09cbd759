//! `tcphub agent <role>`: small services that react to events through the
//! hub, the lab's "event-driven system": a vendor publishes orders, a driver
//! delivers them, a logger writes everything down. None of them knows the
//! others exist; they only know topics.
//!
//! ## How an agent is built
//!
//! Each role ([`vendor`], [`driver`], [`logger`]) is a [`Behaviour`]: plain
//! code that is *told* what happened (a line arrived, a timer fired) and
//! *answers* with [`Action`]s (send this line, print that, wake me up at
//! this time). It does no IO and never sleeps, so its tests need no sockets
//! and no waiting.
//!
//! [`run`] does the IO, with two threads:
//!
//! - `<role>-reader` blocks reading the socket and passes each line into a
//!   channel (like a hub reader thread).
//! - the main thread is an event loop: it blocks on that channel, but only
//!   until the next timer is due (`recv_deadline`), then hands whatever
//!   happened to the behaviour and carries out its actions.
//!
//! Everything an agent prints that came from the network (its output and
//! its logs) goes through [`crate::support::terminal::escape`] first, so a
//! payload with `\e[2J` in it is shown, not obeyed.
//!
//! A server that accepts the connection but never says `WELCOME` (not a
//! tcphub hub, or one that is stuck) is given up on after
//! [`WELCOME_WAIT`]: the agent says so and fails.
//!
//! Why not just `thread::sleep(1s)` in the driver? Because while it sleeps
//! it cannot notice a second order, or the hub going away. Waiting for "a
//! line *or* a deadline, whichever comes first" is the heart of every event
//! loop, from `select()` to async runtimes.

pub mod driver;
pub mod logger;
pub mod order;
pub mod vendor;

use std::fmt;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{debug, info, warn};

use crate::client::hub_connection::{self, ConnectError, LineReader, Received};
use crate::proto::server_line::{ErrorCode, ServerLine};
use crate::support::terminal::escape;

/// The moment something happened, as both clocks: `instant` to schedule
/// timers (it never jumps), `wall` to print a time of day (the logger).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time: for deadlines.
    pub instant: Instant,
    /// Wall-clock time: for printing.
    pub wall: SystemTime,
}

impl Now {
    /// The current time on both clocks.
    pub fn current() -> Now {
        Now {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// What a behaviour asks the runner to do. `T` is the behaviour's own kind
/// of timer (for a driver: "publish in-transit for this order").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<T> {
    /// Send this line to the hub (without `\n`; the runner adds it).
    Send(String),
    /// Print this line on standard output: the agent's actual output.
    Say(String),
    /// Call [`Behaviour::on_timer`] with this timer at that time.
    At(Instant, T),
    /// The agent's work is done: quit the hub and return `Ok`.
    Finish,
    /// The agent gave up: quit the hub and return this error.
    Fail(AgentError),
}

/// One role's reactions. Every method appends actions to `out`.
pub trait Behaviour {
    /// This role's timers.
    type Timer;

    /// The role's name (`vendor`, ...): the default nick, and thread names.
    fn role(&self) -> &'static str;

    /// Right after connecting and sending `/nick`: subscribe, set timers.
    fn start(&mut self, now: Now, out: &mut Vec<Action<Self::Timer>>);

    /// A line from the hub, already parsed.
    fn on_line(&mut self, line: &ServerLine, now: Now, out: &mut Vec<Action<Self::Timer>>);

    /// A timer set with [`Action::At`] is due.
    fn on_timer(&mut self, timer: Self::Timer, now: Now, out: &mut Vec<Action<Self::Timer>>);
}

/// Why an agent stopped, other than finishing its work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// Could not connect at all. Kept as text so the error is `Clone`.
    Connect(String),
    /// The hub closed the connection, or writing to it failed: the hub was
    /// stopped, crashed, or cut this agent off.
    HubGone { addr: String, why: String },
    /// A vendor with `--count` waited `waited` after its last order and
    /// these orders were still not delivered.
    Undelivered {
        missing: Vec<String>,
        waited: Duration,
    },
    /// The server accepted the connection but sent no first line (a hub
    /// says `WELCOME`) within `waited`.
    Silent { addr: String, waited: Duration },
    /// Standard output is gone (closed pipe).
    Output(String),
    /// A thread could not be started.
    Spawn(String),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Connect(text) => f.write_str(text),
            AgentError::HubGone { addr, why } => {
                write!(f, "the hub at {addr} went away ({why}); stopping")
            }
            AgentError::Undelivered { missing, waited } => write!(
                f,
                "gave up after waiting {} for {} undelivered order(s): {}",
                crate::support::duration::show(*waited),
                missing.len(),
                missing.join(", ")
            ),
            AgentError::Silent { addr, waited } => write!(
                f,
                "connected to {addr}, but it sent no WELCOME within {}: is it a tcphub hub? giving up",
                crate::support::duration::show(*waited)
            ),
            AgentError::Output(text) => write!(f, "cannot write output: {text}"),
            AgentError::Spawn(text) => write!(f, "cannot start a thread: {text}"),
        }
    }
}

impl std::error::Error for AgentError {}

impl From<ConnectError> for AgentError {
    fn from(e: ConnectError) -> Self {
        AgentError::Connect(e.to_string())
    }
}

/// What the reader thread passes to the event loop.
enum Incoming {
    Line(String),
    Closed(String),
}

/// How many lines may wait between the reader thread and the event loop.
/// Bounded on purpose: if the agent falls behind, the reader stops reading,
/// the socket fills, and the hub cuts the agent off after its write timeout
/// instead of buffering without limit.
const INBOX: usize = 1024;

/// How long an agent waits for the hub's first line (`WELCOME`) after
/// connecting, before it gives up with [`AgentError::Silent`]. A hub sends
/// it at once; this only catches a server that never speaks.
pub const WELCOME_WAIT: Duration = Duration::from_secs(5);

/// After finishing, how long to wait for the hub's `BYE` and close.
const QUIT_WAIT: Duration = Duration::from_secs(1);

/// Connects to the hub at `addr` as `nick`, and runs `behaviour` until it
/// finishes, fails, or the hub goes away. The agent's output (its
/// [`Action::Say`] lines) goes to `out`.
pub fn run<B: Behaviour>(
    addr: &str,
    nick: &str,
    mut behaviour: B,
    out: &mut dyn Write,
) -> Result<(), AgentError> {
    let role = behaviour.role();
    let socket = hub_connection::connect(addr)?;
    info!("{role}: connected to {addr}");
    let reading = socket
        .try_clone()
        .map_err(|e| AgentError::Spawn(e.to_string()))?;
    let (lines, inbox) = crossbeam_channel::bounded(INBOX);
    let reader = thread::Builder::new()
        .name(format!("{role}-reader"))
        .spawn(move || read_lines(reading, &lines))
        .map_err(|e| AgentError::Spawn(e.to_string()))?;

    let mut agent = Runner {
        addr: addr.to_string(),
        nick: nick.to_string(),
        socket,
        out,
        timers: Vec::new(),
    };
    let result = agent.event_loop(&mut behaviour, &inbox);
    if result.is_ok() {
        agent.quit(&inbox);
    }
    // Wakes the reader thread's blocking read (it returns 0), so it ends.
    let _ = agent.socket.shutdown(Shutdown::Both);
    let _ = reader.join();
    result
}

/// The `<role>-reader` thread: socket lines into the channel.
fn read_lines(socket: TcpStream, lines: &Sender<Incoming>) {
    let mut reader = LineReader::new(socket);
    let why = loop {
        // Blocks until the hub sends a line or closes.
        match reader.read_line() {
            Ok(Received::Line(line)) => {
                // Blocks if the event loop is INBOX lines behind.
                if lines.send(Incoming::Line(line)).is_err() {
                    return;
                }
            }
            Ok(Received::Closed | Received::TimedOut) => break "connection closed".to_string(),
            Err(e) => break format!("read error: {e}"),
        }
    };
    debug!("reader done: {why}");
    let _ = lines.send(Incoming::Closed(why));
}

/// The event loop's state: the connection, the output, the pending timers.
struct Runner<'a, T> {
    addr: String,
    nick: String,
    socket: TcpStream,
    out: &'a mut dyn Write,
    /// Timers not yet due, in no particular order (an agent has a handful,
    /// so finding the earliest by a scan is simpler than a heap).
    timers: Vec<(Instant, T)>,
}

impl<T> Runner<'_, T> {
    fn event_loop<B: Behaviour<Timer = T>>(
        &mut self,
        behaviour: &mut B,
        inbox: &Receiver<Incoming>,
    ) -> Result<(), AgentError> {
        let mut actions = Vec::new();
        // A hub speaks first. Wait for that (with a bound) before anything.
        let mut first = match inbox.recv_deadline(Instant::now() + WELCOME_WAIT) {
            Ok(Incoming::Line(line)) => Some(line),
            Ok(Incoming::Closed(why)) => return Err(self.gone(why)),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(self.gone("reader stopped".to_string()));
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(AgentError::Silent {
                    addr: self.addr.clone(),
                    waited: WELCOME_WAIT,
                });
            }
        };
        self.send(&format!("/nick {}", self.nick))?;
        behaviour.start(Now::current(), &mut actions);
        if self.apply(&mut actions)? {
            return Ok(());
        }
        loop {
            // Timers first, every time round: a steady stream of lines must
            // not keep a due timer waiting (a channel with a line ready
            // returns it at once, even past the deadline).
            let now = Now::current();
            while let Some(i) = self.earliest_due(now.instant) {
                let (_, timer) = self.timers.swap_remove(i);
                behaviour.on_timer(timer, now, &mut actions);
            }
            if self.apply(&mut actions)? {
                return Ok(());
            }
            let next = self.timers.iter().map(|(at, _)| *at).min();
            // The one place the agent waits: for a line, or the next timer.
            // (The first line was already waited for, above.)
            let incoming = match (first.take(), next) {
                (Some(line), _) => Ok(Incoming::Line(line)),
                (None, Some(deadline)) => inbox.recv_deadline(deadline),
                (None, None) => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match incoming {
                Ok(Incoming::Line(line)) => {
                    debug!("<- {}", escape(&line));
                    let Some(parsed) = ServerLine::parse(&line) else {
                        warn!("not a protocol line, ignored: {}", escape(&line));
                        continue;
                    };
                    self.notice(&parsed);
                    behaviour.on_line(&parsed, Now::current(), &mut actions);
                }
                Ok(Incoming::Closed(why)) => return Err(self.gone(why)),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.gone("reader stopped".to_string()));
                }
                // A timer is due: handled at the top of the loop.
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.apply(&mut actions)? {
                return Ok(());
            }
        }
    }

    fn earliest_due(&self, now: Instant) -> Option<usize> {
        self.timers
            .iter()
            .enumerate()
            .filter(|(_, (at, _))| *at <= now)
            .min_by_key(|(_, (at, _))| *at)
            .map(|(i, _)| i)
    }

    /// Carries out (and empties) `actions`. True once the agent is finished.
    fn apply(&mut self, actions: &mut Vec<Action<T>>) -> Result<bool, AgentError> {
        for action in actions.drain(..) {
            match action {
                Action::Send(line) => self.send(&line)?,
                Action::Say(text) => {
                    // What a role says quotes the network (payloads, nicks).
                    writeln!(self.out, "{}", escape(&text))
                        .and_then(|()| self.out.flush())
                        .map_err(|e| AgentError::Output(e.to_string()))?;
                }
                Action::At(at, timer) => self.timers.push((at, timer)),
                Action::Finish => return Ok(true),
                Action::Fail(e) => return Err(e),
            }
        }
        Ok(false)
    }

    fn send(&mut self, line: &str) -> Result<(), AgentError> {
        debug!("-> {line}");
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        // Blocks only if the hub stopped reading us and our buffer is full.
        self.socket
            .write_all(&bytes)
            .map_err(|e| self.gone(format!("write failed: {e}")))
    }

    /// What every role does with a few lines, so behaviours need not.
    fn notice(&mut self, line: &ServerLine) {
        match line {
            ServerLine::Welcome { nick } => debug!("the hub calls us {} for now", escape(nick)),
            ServerLine::Ok { command, detail } => {
                info!("hub: OK {} {}", escape(command), escape(detail));
            }
            ServerLine::Err { code, text } if *code == ErrorCode::NickTaken => warn!(
                "the nick {} is taken ({}); carrying on with the guest nick",
                self.nick,
                escape(text)
            ),
            ServerLine::Err { code, text } => {
                warn!("the hub refused a line: {code} {}", escape(text));
            }
            // For people: that the session is recorded, say.
            ServerLine::Notice { text } => info!("hub: NOTICE {}", escape(text)),
            _ => {}
        }
    }

    fn gone(&self, why: String) -> AgentError {
        AgentError::HubGone {
            addr: self.addr.clone(),
            why,
        }
    }

    /// Says goodbye: `/quit`, then waits (briefly) for the hub to close, so
    /// the hub sees a clean quit rather than a reset.
    fn quit(&mut self, inbox: &Receiver<Incoming>) {
        if self.send("/quit").is_err() {
            return;
        }
        let deadline = Instant::now() + QUIT_WAIT;
        while let Ok(incoming) = inbox.recv_deadline(deadline) {
            if let Incoming::Closed(_) = incoming {
                return;
            }
        }
    }
}

/// `Duration` scaled down by `speed` (2.0 = twice as fast). Shared by the
/// roles so `--speed` means the same everywhere. A speed that would make
/// the result unrepresentable (0, negative, NaN, absurdly small) leaves the
/// duration unscaled rather than panicking.
pub fn scaled(d: Duration, speed: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() / speed)
        .ok()
        .filter(|_| speed > 0.0)
        .unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::scaled;
    use std::time::Duration;

    #[test]
    fn scaling_never_panics() {
        let s = Duration::from_secs(1);
        assert_eq!(scaled(s, 10.0), Duration::from_millis(100));
        assert_eq!(scaled(s, 0.5), Duration::from_secs(2));
        for odd in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300] {
            let _ = scaled(s, odd);
        }
        assert_eq!(scaled(s, 0.0), s);
        assert_eq!(scaled(s, -2.0), s);
    }
}

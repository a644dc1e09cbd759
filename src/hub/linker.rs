//! The `linker` thread: dials every `--link` target, and dials it again
//! whenever its link is gone.
//!
//! It hands each connection to the dispatcher the way the acceptor hands
//! over a client ([`LinkEvent::Dialled`]); the dispatcher writes our
//! `HELLO`; the linker reads the answer (bounded by the link timeout) and,
//! if it is a good `HELLO`, starts the link's `link-<hub>` reader. From then
//! on the link is the dispatcher's; when it closes it, for any reason, it
//! sends [`LinkerMsg::Gone`] back here.
//!
//! While a target is unreachable the linker waits 1 s, then 2, 4, ... up to
//! 30 s between attempts (the hub serves its own clients meanwhile). A link
//! that was up for longer than the link timeout and went down is dialled
//! again 1 s later; one refused at once (a loop, a wrong key) keeps doubling.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{debug, info, warn};

use crate::hub::events::{Event, LinkEvent};
use crate::hub::link::{LinkSettings, read_hello, register_reader, spawn_reader};
use crate::hub::score::{self, Slot};
use crate::proto::framing::LineFramer;

/// First wait after a failed attempt (and after a link went down).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The wait doubles up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the linker hears, from the dispatcher and from shutdown.
#[derive(Debug)]
pub enum LinkerMsg {
    /// The link dialled for target `target` is closed, after it was
    /// registered for `lasted`: dial again.
    Gone { target: usize, lasted: Duration },
    /// The hub is shutting down.
    Stop,
}

/// The waits between attempts: 1 s, 2 s, 4 s, ... 30 s, 30 s, ...
pub fn next_backoff(previous: Duration) -> Duration {
    (previous * 2).min(MAX_BACKOFF)
}

/// Where one target is.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Dial at `at`; if that fails, wait `backoff`.
    Waiting { at: Instant, backoff: Duration },
    /// Handed to the dispatcher; `up` once its HELLO was good.
    Handed { up: bool, backoff: Duration },
}

/// The dialler; built by [`crate::hub::Hub::start`].
pub struct Linker {
    pub targets: Vec<String>,
    pub events: Sender<Event>,
    pub inbox: Receiver<LinkerMsg>,
    pub settings: LinkSettings,
}

impl Linker {
    /// Runs until [`LinkerMsg::Stop`]; returns the handles of the link
    /// readers it started.
    pub fn run(self) -> Vec<JoinHandle<()>> {
        let me = self.settings.score.register_noted("linker");
        let readers = self.dial_loop(&me);
        me.enter(score::State::Exited);
        readers
    }

    fn dial_loop(&self, me: &Slot) -> Vec<JoinHandle<()>> {
        let now = Instant::now();
        let mut states: Vec<State> = self
            .targets
            .iter()
            .map(|_| State::Waiting {
                at: now,
                backoff: FIRST_BACKOFF,
            })
            .collect();
        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        loop {
            let now = Instant::now();
            for (target, state) in states.iter_mut().enumerate() {
                if let State::Waiting { at, backoff } = *state
                    && at <= now
                {
                    *state = self.dial(target, backoff, &mut readers, me);
                }
            }
            let next = states
                .iter()
                .enumerate()
                .filter_map(|(target, s)| match s {
                    State::Waiting { at, .. } => Some((*at, target)),
                    State::Handed { .. } => None,
                })
                .min();
            match next {
                Some((at, target)) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    let addr = &self.targets[target];
                    let note = format!("for {} before dialling {addr}", seconds(wait));
                    me.enter_noted(score::State::BackOff, &note);
                }
                None => me.enter_noted(score::State::Recv, "until a link is gone"),
            }
            let next = next.map(|(at, _)| at);
            // Parked until a link is gone, shutdown, or the next attempt.
            let msg = match next {
                Some(at) => self
                    .inbox
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
                None => self
                    .inbox
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(LinkerMsg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
                Ok(LinkerMsg::Gone { target, lasted }) => {
                    if let Some(State::Handed { up, backoff }) = states.get(target).copied() {
                        // Up for a while (not refused at once, say for a
                        // loop): start again from the first wait.
                        let up = up && lasted >= self.settings.timeout;
                        let wait = if up { FIRST_BACKOFF } else { backoff };
                        let addr = &self.targets[target];
                        info!("link to {addr} is gone; dialling again in {wait:?}");
                        states[target] = State::Waiting {
                            at: Instant::now() + wait,
                            backoff: next_backoff(wait),
                        };
                    }
                }
            }
            readers.retain(|h| !h.is_finished());
        }
        readers
    }

    /// One attempt at `target`: connect, hand over, read the answer.
    fn dial(
        &self,
        target: usize,
        backoff: Duration,
        readers: &mut Vec<JoinHandle<()>>,
        me: &Slot,
    ) -> State {
        let addr = &self.targets[target];
        let failed = |why: String| {
            warn!("cannot link to {addr}: {why}; next attempt in {backoff:?}");
            State::Waiting {
                at: Instant::now() + backoff,
                backoff: next_backoff(backoff),
            }
        };
        debug!("dialling {addr}");
        me.enter_noted(score::State::Connect, addr);
        let socket = match connect(addr, self.settings.timeout) {
            Ok(socket) => socket,
            Err(why) => return failed(why),
        };
        if let Err(e) = self.settings.prepare(&socket) {
            return failed(e.to_string());
        }
        let id = self.settings.fresh_id();
        let socket = Arc::new(socket);
        let dialled = LinkEvent::Dialled {
            id,
            socket: socket.clone(),
            target,
        };
        if self.events.send(Event::Link(dialled)).is_err() {
            return State::Handed { up: false, backoff };
        }
        let handed = State::Handed {
            up: false,
            backoff: next_backoff(backoff),
        };
        let mut framer = LineFramer::new(self.settings.max_line);
        me.enter_noted(score::State::Hello, addr);
        let hub = match read_hello(&socket, &mut framer, &self.settings) {
            Ok(hello) => hello.hub,
            Err(refusal) => {
                warn!(
                    "link to {addr} refused: {} {}; next attempt in {backoff:?}",
                    refusal.code, refusal.text
                );
                let why = format!("{} {}", refusal.code, refusal.text);
                let _ = self.events.send(Event::Link(LinkEvent::Closed { id, why }));
                // The dispatcher closes it and says Gone: then we wait.
                return State::Handed { up: false, backoff };
            }
        };
        info!("{addr} answered: it is {hub}");
        let slot = register_reader(&self.settings, id, &socket, &hub, true);
        let answered = LinkEvent::Answered {
            id,
            hub: hub.clone(),
        };
        let _ = self.events.send(Event::Link(answered));
        match spawn_reader(
            id,
            &hub,
            socket,
            framer,
            self.events.clone(),
            self.settings.timeout,
            slot,
        ) {
            Ok(handle) => readers.push(handle),
            Err(e) => {
                let why = format!("cannot start its thread: {e}");
                let _ = self.events.send(Event::Link(LinkEvent::Closed { id, why }));
                return handed;
            }
        }
        State::Handed { up: true, backoff }
    }
}

/// A wait as the live view words it: `4s` (whole seconds), `300ms`.
fn seconds(d: Duration) -> String {
    match d.as_millis() {
        ms @ 0..1000 => format!("{ms}ms"),
        ms => format!("{}s", (ms + 500) / 1000),
    }
}

/// Connects to `host:port`, trying each address it resolves to, each for at
/// most `timeout`.
pub fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addrs = addr.to_socket_addrs().map_err(|e| e.to_string())?;
    let mut last = "the name resolves to no address".to_string();
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_thirty() {
        let mut wait = FIRST_BACKOFF;
        let mut waits = vec![wait.as_secs()];
        for _ in 0..6 {
            wait = next_backoff(wait);
            waits.push(wait.as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    }
}

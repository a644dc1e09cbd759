//! What `tcphub serve --record FILE` writes: the hub's story as a scenario
//! (docs/scenarios.md), so `tcphub simulate FILE` can replay it. No IO: the
//! dispatcher calls these with the time since recording began and writes
//! the text they return (src/hub/recorder.rs).
//!
//! Each client is one actor, `c<id>` (a nick changes, an id does not):
//!
//! - a connect is `at`, `connect`, `ignore NOTICE *`, then the `WELCOME`
//!   it got and a `signal c<id>-in`; the next client to connect first
//!   `await`s it, so a replay hands out the same `guest-<n>` nicks;
//! - a line it sent is `at <time> as <nick>` then `send <line>`, the line
//!   as the hub understood it after framing ([`send_step`]);
//! - what the hub sent it is `expect <line>`, with `at` before it when time
//!   has passed. These are held back ([`Actor::held`]) until the client
//!   next sends, hangs up or quits, or until they are a second old while
//!   its socket had nothing pending: a client the hub cuts off for not
//!   reading got lines that, on replay, reach it or not depending on kernel
//!   buffers, so for it they are dropped and replaced by `wait` and
//!   `expect-closed`, as a hand-written slow-consumer scenario does;
//! - a hang-up is `close`, a close by the hub `expect-closed`.
//!
//! Network text goes through [`crate::proto::escape`] (`set escapes on`).

use std::fmt::Write as _;
use std::time::Duration;

use crate::proto::client_line::{Command, Refusal};
use crate::proto::escape::{Context, encode};
use crate::proto::framing::Inbound;
use crate::proto::id_map::IdMap;
use crate::proto::ids::ClientId;
use crate::proto::server_line::ErrorCode;

/// Expectations held back longer than this, for a client whose socket had
/// nothing pending at its last write, are written out: a listener that
/// never sends still shows up in the file as it goes.
pub const HOLD: Duration = Duration::from_secs(1);

/// An `at` step is written when an actor's clock moved at least this much
/// since its last one: finer steps would only make the file longer.
pub const AT_EVERY: Duration = Duration::from_millis(10);

/// The hub settings a recording starts with, so that an in-process replay
/// runs with the same limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    pub max_line: usize,
    pub max_clients: usize,
    pub write_timeout: Duration,
    pub blocking_writes: bool,
}

/// The first lines of a recording: what it is, and its `set` lines.
pub fn header(title: &str, settings: &HubSettings) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}", encode(title.as_bytes(), Context::Send));
    out.push_str(
        "# replay: tcphub simulate <this file> [--speed N | --as-fast] [--addr HOST:PORT]\n",
    );
    out.push_str("set escapes on\nset order per-sender\n");
    let _ = writeln!(out, "set max-line {}", settings.max_line);
    let _ = writeln!(out, "set max-clients {}", settings.max_clients);
    let _ = writeln!(
        out,
        "set write-timeout {}ms",
        settings.write_timeout.as_millis().max(1)
    );
    if settings.blocking_writes {
        out.push_str("set blocking-writes on\n");
    }
    out
}

/// The recording's state: one entry per connected client.
#[derive(Debug, Default)]
pub struct Recording {
    actors: IdMap<Actor>,
    /// `--max-line`, to replay a too-long line with one as long.
    max_line: usize,
    /// The signal the last client to connect raised once welcomed.
    last_in: Option<String>,
}

#[derive(Debug)]
struct Actor {
    name: String,
    /// When its last `at` was written.
    last_at: Option<Duration>,
    /// When its last step other than an expectation was.
    last_step: Duration,
    /// Expectations not written yet, and since when they wait.
    held: String,
    held_lines: usize,
    held_since: Option<Duration>,
    /// Its socket had bytes pending at the hub's last write to it.
    behind: bool,
    /// It sent `/quit`: the close that follows is the expected one.
    quitting: bool,
}

impl Actor {
    fn at(&mut self, at: Duration, out: &mut String, force: bool) {
        let due = self.last_at.is_none_or(|last| at >= last + AT_EVERY);
        if force || due {
            let _ = writeln!(out, "{}: at {}", self.name, seconds(at));
            self.last_at = Some(at);
        }
    }

    fn release(&mut self, out: &mut String) {
        out.push_str(&self.held);
        self.held.clear();
        self.held_lines = 0;
        self.held_since = None;
    }
}

/// `1.204s`: what an `at` step takes.
fn seconds(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

impl Recording {
    /// A recording of a hub whose lines are at most `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Recording {
            max_line,
            ..Recording::default()
        }
    }

    /// How many clients the recording follows now.
    pub fn clients(&self) -> usize {
        self.actors.len()
    }

    /// Client `id` connected from `peer` and was named `nick`.
    pub fn connected(
        &mut self,
        id: ClientId,
        nick: &str,
        peer: &str,
        at: Duration,
        out: &mut String,
    ) {
        let mut actor = Actor {
            name: format!("c{id}"),
            last_at: None,
            last_step: at,
            held: String::new(),
            held_lines: 0,
            held_since: None,
            behind: false,
            quitting: false,
        };
        let _ = writeln!(out, "# {} connected from {peer} as {nick}", actor.name);
        actor.at(at, out, true);
        if let Some(previous) = self.last_in.replace(format!("{}-in", actor.name)) {
            let _ = writeln!(out, "{}: await {previous}", actor.name);
        }
        let _ = writeln!(out, "{0}: connect\n{0}: ignore NOTICE *", actor.name);
        self.actors.insert(id, actor);
    }

    /// Client `id`, named `nick`, sent `line` (as framed and parsed).
    pub fn sent(
        &mut self,
        id: ClientId,
        nick: &str,
        line: &Inbound,
        at: Duration,
        out: &mut String,
    ) {
        let max_line = self.max_line;
        let Some(actor) = self.actors.get_mut(&id) else {
            return;
        };
        actor.release(out);
        let _ = writeln!(out, "{}: at {} as {nick}", actor.name, seconds(at));
        actor.last_at = Some(at);
        actor.last_step = at;
        actor.quitting = line.is_quit();
        let _ = writeln!(out, "{}: {}", actor.name, send_step(line, max_line));
    }

    /// Whether client `id`'s socket has bytes pending after the hub's last
    /// write to it (a client not reading is never written out early).
    pub fn behind(&mut self, id: ClientId, pending: bool) {
        if let Some(actor) = self.actors.get_mut(&id) {
            actor.behind = pending;
        }
    }

    /// The hub wrote `bytes` (whole lines) to client `id`.
    pub fn received(&mut self, id: ClientId, bytes: &[u8], at: Duration, out: &mut String) {
        let Some(actor) = self.actors.get_mut(&id) else {
            return;
        };
        for line in bytes.split(|&b| b == b'\n') {
            if line.is_empty() || line.starts_with(b"NOTICE ") {
                continue;
            }
            let mut held = std::mem::take(&mut actor.held);
            actor.at(at, &mut held, false);
            let pattern = encode(line, Context::Pattern);
            let _ = writeln!(held, "{}: expect {pattern}", actor.name);
            actor.held = held;
            actor.held_lines += 1;
            actor.held_since.get_or_insert(at);
            if line.starts_with(b"WELCOME ") {
                let _ = writeln!(actor.held, "{0}: signal {0}-in", actor.name);
                // The next client's `await` needs this in the file.
                actor.release(out);
            }
        }
    }

    /// Client `id` hung up (or its connection failed): `why`.
    pub fn peer_closed(&mut self, id: ClientId, why: &str, at: Duration, out: &mut String) {
        let Some(mut actor) = self.actors.remove(&id) else {
            return;
        };
        actor.release(out);
        let why = encode(why.as_bytes(), Context::Send);
        let _ = writeln!(out, "# {} hung up: {why}", actor.name);
        actor.at(at, out, true);
        let _ = writeln!(out, "{}: close", actor.name);
    }

    /// The hub closed client `id`: after its `/quit`, or cutting it off.
    pub fn hub_closed(&mut self, id: ClientId, at: Duration, out: &mut String) {
        let Some(mut actor) = self.actors.remove(&id) else {
            return;
        };
        if actor.quitting {
            actor.release(out);
        } else {
            let _ = writeln!(
                out,
                "# {} was closed by the hub: {} line(s) sent to it since its last step are \
                 not checked (how many reach it depends on kernel buffers)",
                actor.name, actor.held_lines
            );
            let idle = at.saturating_sub(actor.last_step);
            if idle >= AT_EVERY {
                let _ = writeln!(out, "{}: wait {}ms", actor.name, idle.as_millis());
            }
        }
        let _ = writeln!(out, "{}: expect-closed", actor.name);
    }

    /// Writes out expectations held longer than [`HOLD`] by clients that
    /// were keeping up. Call it now and then (once per batch is plenty).
    pub fn tick(&mut self, at: Duration, out: &mut String) {
        for actor in self.actors.values_mut() {
            let old = actor
                .held_since
                .is_some_and(|since| at.saturating_sub(since) >= HOLD);
            if old && !actor.behind {
                actor.release(out);
            }
        }
    }

    /// The recording ends (the hub stops, or the size limit): everything
    /// held is written out.
    pub fn finish(&mut self, out: &mut String) {
        let mut ids: Vec<ClientId> = self.actors.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(actor) = self.actors.get_mut(&id) {
                actor.release(out);
            }
        }
    }
}

/// The step that makes a replay's hub see `line` again: `send` with the
/// command as text, or, for a line the hub refused, one it refuses the
/// same way (a too-long line becomes a `flood` of one longer line).
pub fn send_step(line: &Inbound, max_line: usize) -> String {
    let bytes = match line {
        Inbound::Command(command) => command_text(command).into_bytes(),
        Inbound::Refused(refusal) if refusal.code == ErrorCode::LineTooLong => {
            return format!("flood 1 {} x", max_line + 1);
        }
        Inbound::Refused(refusal) => match provoking_line(refusal) {
            Some(bytes) => bytes,
            None => {
                let code = refusal.code;
                return format!("note (a line the hub refused with ERR {code}: not replayable)");
            }
        },
    };
    if bytes.is_empty() {
        return "send".into();
    }
    format!("send {}", encode(&bytes, Context::Send))
}

/// A command as a client would type it (`/pub pickup {...}`); parsing it
/// gives the same command back.
pub fn command_text(command: &Command) -> String {
    match command {
        Command::Chat(text) => text.clone(),
        Command::Nick(nick) => format!("/nick {nick}"),
        Command::List => "/list".into(),
        Command::Dm { to, text } => format!("/dm {to} {text}"),
        Command::Sub(topic) => format!("/sub {topic}"),
        Command::Unsub(topic) => format!("/unsub {topic}"),
        Command::Pub { topic, payload } if payload.is_empty() => format!("/pub {topic}"),
        Command::Pub { topic, payload } => format!("/pub {topic} {payload}"),
        Command::Ping => "/ping".into(),
        Command::Quit => "/quit".into(),
        Command::Help => "/help".into(),
    }
}

/// A line the reader refuses with exactly `refusal` (code and text), for
/// the refusals a reader makes while parsing; `None` for one that needs
/// time rather than bytes (line and idle timeouts).
pub fn provoking_line(refusal: &Refusal) -> Option<Vec<u8>> {
    let text = refusal.text.as_str();
    let line: String = match refusal.code {
        ErrorCode::BadUtf8 => return Some(vec![0xff]),
        ErrorCode::UnknownCommand => text.strip_suffix(" is not a command; try /help")?.into(),
        ErrorCode::Usage => match text.strip_suffix(" takes no arguments") {
            Some(command) => format!("{command} x"),
            // `/nick <name>`, `/dm <nick> <text>`, ...: the bare command.
            None => text.split(' ').next()?.into(),
        },
        ErrorCode::BadNick => "/nick !".into(),
        ErrorCode::BadTopic if text.starts_with("* is for /sub") => "/pub * x".into(),
        ErrorCode::BadTopic => "/sub !".into(),
        _ => return None,
    };
    Some(line.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::client_line::{Parsed, parse_line};

    #[test]
    fn every_refusal_a_reader_makes_is_provoked_again() {
        for line in [
            &b"\xff\xfeoops"[..],
            b"/frob x",
            b"/nick",
            b"/list now",
            b"/ping x",
            b"/quit x",
            b"/help me",
            b"/sub",
            b"/unsub",
            b"/dm",
            b"/dm bob",
            b"/pub",
            b"/nick bad nick",
            b"/dm b@d! hi",
            b"/sub no/slash",
            b"/pub * x",
            b"/pub bad/topic x",
            b"/\x1b[2J",
        ] {
            let Parsed::Refused(refusal) = parse_line(line) else {
                panic!("{line:?} is not refused");
            };
            let again = provoking_line(&refusal).expect("provokable");
            assert_eq!(
                parse_line(&again),
                Parsed::Refused(refusal),
                "{line:?} -> {again:?}"
            );
        }
    }

    #[test]
    fn commands_round_trip_through_their_text() {
        for line in [
            "hello *world*",
            "  leading spaces",
            "/nick ann",
            "/list",
            "/dm bob hi  there ",
            "/sub *",
            "/unsub t",
            "/pub t {\"a\": 1}",
            "/pub t",
            "/ping",
            "/quit",
            "/help",
        ] {
            let Parsed::Command(command) = parse_line(line.as_bytes()) else {
                panic!("{line:?}");
            };
            let text = command_text(&command);
            assert_eq!(parse_line(text.as_bytes()), Parsed::Command(command));
        }
    }

    fn cmd(text: &str) -> Inbound {
        match parse_line(text.as_bytes()) {
            Parsed::Command(c) => Inbound::Command(c),
            Parsed::Refused(r) => Inbound::Refused(r),
            Parsed::Empty => panic!("empty"),
        }
    }

    #[test]
    fn a_session_becomes_steps() {
        let ms = Duration::from_millis;
        let mut rec = Recording::new(4096);
        let mut out = String::new();
        rec.connected(1, "guest-1", "127.0.0.1:5000", ms(0), &mut out);
        rec.received(1, b"WELCOME guest-1\nNOTICE recorded\n", ms(0), &mut out);
        rec.connected(2, "guest-2", "127.0.0.1:5001", ms(500), &mut out);
        rec.received(2, b"WELCOME guest-2\n", ms(500), &mut out);
        rec.received(1, b"JOIN guest-2\n", ms(500), &mut out);
        rec.sent(2, "guest-2", &cmd("hi *\x1b[2J"), ms(700), &mut out);
        rec.received(1, b"MSG guest-2 hi *\x1b[2J\n", ms(700), &mut out);
        rec.sent(1, "guest-1", &cmd("/quit"), ms(900), &mut out);
        rec.received(1, b"BYE\n", ms(900), &mut out);
        rec.hub_closed(1, ms(900), &mut out);
        rec.received(2, b"LEAVE guest-1\n", ms(900), &mut out);
        rec.behind(2, true);
        rec.hub_closed(2, ms(1500), &mut out);
        let want = "\
# c1 connected from 127.0.0.1:5000 as guest-1
c1: at 0.000s
c1: connect
c1: ignore NOTICE *
c1: expect WELCOME guest-1
c1: signal c1-in
# c2 connected from 127.0.0.1:5001 as guest-2
c2: at 0.500s
c2: await c1-in
c2: connect
c2: ignore NOTICE *
c2: expect WELCOME guest-2
c2: signal c2-in
c2: at 0.700s as guest-2
c2: send hi *\\e[2J
c1: at 0.500s
c1: expect JOIN guest-2
c1: at 0.700s
c1: expect MSG guest-2 hi \\*\\e[2J
c1: at 0.900s as guest-1
c1: send /quit
c1: expect BYE
c1: expect-closed
# c2 was closed by the hub: 1 line(s) sent to it since its last step are not checked (how many reach it depends on kernel buffers)
c2: wait 800ms
c2: expect-closed
";
        assert_eq!(out, want);
    }

    #[test]
    fn a_too_long_line_is_replayed_as_one() {
        let long = Inbound::Refused(Refusal::new(ErrorCode::LineTooLong, "x"));
        assert_eq!(send_step(&long, 10), "flood 1 11 x");
        assert_eq!(send_step(&cmd("a  "), 10), "send a \\x20");
    }
}

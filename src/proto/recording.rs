//! What `tcphub serve --record FILE` writes: the hub's story as a scenario
//! (docs/scenarios.md), so `tcphub simulate FILE` can replay it. No IO: the
//! dispatcher calls these with the time since recording began and writes
//! the text they return (src/hub/recorder.rs).
//!
//! Each client is one actor, `c<id>` (a nick changes, an id does not):
//!
//! - a connect is `at`, `await c<id>-go`, `connect`, `ignore NOTICE *`;
//!   the client that connected before raises `c<id>-go` in its own steps
//!   at that moment (after its `WELCOME`), so on replay clients connect in
//!   the same order (the same `guest-<n>` nicks) and after what the one
//!   before did (its `/sub`, say);
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
    /// The client whose connect or line was recorded last: the next
    /// other client to connect or send first `await`s its signal.
    last_actor: Option<ClientId>,
    /// Signals handed out so far (`s1`, `s2`...).
    signals: usize,
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
    /// Lines it sent that make a `flood` so far (`<prefix> 1 xxx`, then 2,
    /// 3...): written as one step, not thousands.
    fold: Option<Fold>,
    /// Its `WELCOME` is recorded.
    welcomed: bool,
    /// Signals to raise once it can: after its `WELCOME` (another client
    /// went on before it was welcomed), or after the `flood` it is sending.
    signals_later: Vec<String>,
    /// Signals to raise at the end of this batch, after what the hub
    /// sends it in the batch in answer to its own lines: each with the
    /// nick of the client that awaits it and where [`Actor::held`] was then.
    signals_at_batch_end: Vec<(String, String, usize)>,
}

/// A `flood` being recognised: its first line's time and sender's nick.
#[derive(Debug)]
struct Fold {
    at: Duration,
    /// When its last line came.
    last: Duration,
    nick: String,
    prefix: String,
    bytes: usize,
    count: usize,
    /// The signal to await before it (see [`Recording::handoff`]).
    after: Option<String>,
}

/// `(prefix, n)` if `line` is line `n` of a `flood` with that prefix (see
/// `crate::scenario::run::flood_line`: `<prefix> <n> ` padded with `x`)
/// and the prefix needs no escape (a `flood` prefix is taken as written).
fn flood_shape(line: &str) -> Option<(&str, usize)> {
    let head = line.trim_end_matches('x').strip_suffix(' ')?;
    let (prefix, n) = head.rsplit_once(' ')?;
    let plain = n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0');
    let n: usize = n.parse().ok().filter(|_| plain)?;
    let safe = !prefix.trim().is_empty() && encode(prefix.as_bytes(), Context::Send) == prefix;
    safe.then_some((prefix, n))
}

impl Actor {
    fn at(&mut self, at: Duration, out: &mut String, force: bool) {
        let due = self.last_at.is_none_or(|last| at >= last + AT_EVERY);
        if force || due {
            let _ = writeln!(out, "{}: at {}", self.name, seconds(at));
            self.last_at = Some(at);
        }
    }

    /// True if `line` is the next line of the `flood` being folded (then
    /// it is taken into it).
    fn extends_fold(&mut self, line: &Inbound, at: Duration) -> bool {
        let (Some(fold), Inbound::Command(command)) = (&mut self.fold, line) else {
            return false;
        };
        let text = command_text(command);
        let extends = flood_shape(&text).is_some_and(|(prefix, n)| {
            fold.prefix == prefix && fold.bytes == text.len() && n == fold.count + 1
        });
        if extends {
            fold.count += 1;
            fold.last = at;
        }
        extends
    }

    /// True if `line` is line 1 of a `flood`: a fold starts (written once
    /// it ends), after the signal `after`.
    fn starts_fold(
        &mut self,
        line: &Inbound,
        nick: &str,
        at: Duration,
        after: Option<String>,
    ) -> bool {
        let Inbound::Command(command) = line else {
            return false;
        };
        let text = command_text(command);
        let Some((prefix, 1)) = flood_shape(&text) else {
            return false;
        };
        self.fold = Some(Fold {
            at,
            last: at,
            nick: nick.to_string(),
            prefix: prefix.to_string(),
            bytes: text.len(),
            count: 1,
            after,
        });
        self.last_at = Some(at);
        true
    }

    /// Raises the signals of [`Recording::handoff`] due now: in what it
    /// was sent since, each goes before the first line that the awaiting
    /// client caused (from its nick: its `JOIN`, `MSG`, ...), which on
    /// replay can only come after; then everything held is written out.
    fn raise_pending(&mut self, out: &mut String) {
        if self.signals_at_batch_end.is_empty() {
            return;
        }
        if self.fold.is_some() {
            let pending = std::mem::take(&mut self.signals_at_batch_end);
            self.signals_later
                .extend(pending.into_iter().map(|(go, _, _)| go));
            return;
        }
        // Latest first, so earlier insertion points stay where they were.
        let mut pending = std::mem::take(&mut self.signals_at_batch_end);
        pending.sort_by_key(|(_, _, mark)| std::cmp::Reverse(*mark));
        for (go, nick, mark) in pending {
            let from = mark.min(self.held.len());
            let mut at = self.held.len();
            let mut offset = from;
            for line in self.held[from..].split_inclusive('\n') {
                let pattern = line.split_once(": expect ").map(|(_, p)| p.trim_end());
                if pattern.is_some_and(|p| sender_of(p) == nick) {
                    at = offset;
                    break;
                }
                offset += line.len();
            }
            self.held
                .insert_str(at, &format!("{}: signal {go}\n", self.name));
        }
        self.release(out);
    }

    /// Raises the signals it owes others (it is closing, or its `flood`
    /// is written).
    fn go_now(&mut self, out: &mut String) {
        let pending = std::mem::take(&mut self.signals_at_batch_end);
        self.signals_later
            .extend(pending.into_iter().map(|(go, _, _)| go));
        for go in std::mem::take(&mut self.signals_later) {
            let _ = writeln!(out, "{}: signal {go}", self.name);
        }
    }

    /// Writes out the `flood` being folded, if any.
    fn end_fold(&mut self, out: &mut String) {
        let Some(fold) = self.fold.take() else {
            return;
        };
        let _ = writeln!(
            out,
            "{}: at {} as {}",
            self.name,
            seconds(fold.at),
            fold.nick
        );
        if let Some(go) = &fold.after {
            let _ = writeln!(out, "{}: await {go}", self.name);
        }
        if fold.count == 1 {
            let line = format!("{} 1 ", fold.prefix);
            let line = format!(
                "{line}{}",
                "x".repeat(fold.bytes.saturating_sub(line.len()))
            );
            let _ = writeln!(
                out,
                "{}: send {}",
                self.name,
                encode(line.as_bytes(), Context::Send)
            );
        } else {
            let _ = writeln!(
                out,
                "{}: flood {} {} {}",
                self.name, fold.count, fold.bytes, fold.prefix
            );
        }
        self.go_now(out);
    }

    fn release(&mut self, out: &mut String) {
        self.end_fold(out);
        out.push_str(&self.held);
        self.held.clear();
        self.held_lines = 0;
        self.held_since = None;
    }
}

/// Padding longer than this (a run of `x` ending a line, as a `flood`'s
/// lines end) is written as `xxxxxxxx*` in an expectation.
pub const PADDING: usize = 64;

/// The `expect` pattern for a line the hub sent: the line, escaped, except
/// that a `flood`'s padding (a run of more than [`PADDING`] `x` at its
/// end) becomes `xxxxxxxx*`: 16 MB of `x` say nothing a reader needs.
fn pattern_of(line: &[u8]) -> String {
    let padding = line.iter().rev().take_while(|&&b| b == b'x').count();
    if padding <= PADDING {
        return encode(line, Context::Pattern);
    }
    // One `x` kept in the escaped part, so a space before it stays a space.
    let head = &line[..line.len() - padding + 1];
    format!("{}xxxxxxx*", encode(head, Context::Pattern))
}

/// Who a server line (or its escaped pattern) is from: the nick of `MSG`,
/// `DM`, `EVENT`, `JOIN`, `LEAVE`, `NICK`; `""` for the hub's answers.
/// Nicks need no escapes, so the pattern's field is the nick itself.
pub fn sender_of(line: &str) -> &str {
    let mut fields = line.split(' ');
    match fields.next().unwrap_or("") {
        "MSG" | "DM" | "JOIN" | "LEAVE" | "NICK" => fields.next().unwrap_or(""),
        "EVENT" => fields.nth(1).unwrap_or(""),
        _ => "",
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
            fold: None,
            welcomed: false,
            signals_later: Vec::new(),
            signals_at_batch_end: Vec::new(),
        };
        let _ = writeln!(out, "# {} connected from {peer} as {nick}", actor.name);
        actor.at(at, out, true);
        if let Some(go) = self.handoff(id, nick) {
            let _ = writeln!(out, "{}: await {go}", actor.name);
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
        actor.last_step = at;
        actor.raise_pending(out);
        if actor.extends_fold(line, at) {
            return;
        }
        let go = self.handoff(id, nick);
        let Some(actor) = self.actors.get_mut(&id) else {
            return;
        };
        actor.release(out);
        if actor.starts_fold(line, nick, at, go.clone()) {
            return;
        }
        let _ = writeln!(out, "{}: at {} as {nick}", actor.name, seconds(at));
        if let Some(go) = go {
            let _ = writeln!(out, "{}: await {go}", actor.name);
        }
        actor.last_at = Some(at);
        actor.quitting = line.is_quit();
        let _ = writeln!(out, "{}: {}", actor.name, send_step(line, max_line));
    }

    /// Client `next` is about to connect or send: the client that did so
    /// last (if another, and still here) raises a new signal at this point
    /// of its steps, after what it was sent so far, and `next` awaits it.
    /// On replay, then, connects and lines reach the hub in the recorded
    /// order, each after what came before it had its effect (a `/sub`
    /// before the `/pub` it was there for).
    fn handoff(&mut self, next: ClientId, nick: &str) -> Option<String> {
        let previous = self.last_actor.replace(next)?;
        if previous == next {
            return None;
        }
        let prev = self.actors.get_mut(&previous)?;
        self.signals += 1;
        let go = format!("s{}", self.signals);
        if prev.welcomed && prev.fold.is_none() {
            let mark = prev.held.len();
            prev.signals_at_batch_end
                .push((go.clone(), nick.to_string(), mark));
        } else {
            prev.signals_later.push(go.clone());
        }
        Some(go)
    }

    /// Whether client `id` looked behind at the hub's last write to it:
    /// bytes left pending, or (with `--blocking-writes`) a write that had
    /// to wait. A client not reading is never written out early.
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
            let pattern = pattern_of(line);
            let _ = writeln!(held, "{}: expect {pattern}", actor.name);
            actor.held = held;
            actor.held_lines += 1;
            actor.held_since.get_or_insert(at);
            if line.starts_with(b"WELCOME ") {
                actor.welcomed = true;
                let mut held = std::mem::take(&mut actor.held);
                actor.go_now(&mut held);
                actor.held = held;
                // The next client's `await` needs its signal in the file.
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
        actor.go_now(out);
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
            actor.end_fold(out);
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
        actor.go_now(out);
        let _ = writeln!(out, "{}: expect-closed", actor.name);
    }

    /// At the end of each batch: raises the signals of [`Recording::handoff`]
    /// (after what the batch sent), and writes out expectations held longer
    /// than [`HOLD`] by clients that were keeping up.
    pub fn tick(&mut self, at: Duration, out: &mut String) {
        for actor in self.actors.values_mut() {
            // The hub has answered what it sent this batch: now the signal.
            actor.raise_pending(out);
            let old = actor
                .held_since
                .is_some_and(|since| at.saturating_sub(since) >= HOLD);
            // Not while it floods: its `flood` step must come first.
            if old && !actor.behind && actor.fold.is_none() {
                actor.release(out);
            }
            // A flood that has ended (no line for a while) is written.
            if actor
                .fold
                .as_ref()
                .is_some_and(|f| at.saturating_sub(f.last) >= HOLD)
            {
                actor.end_fold(out);
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
        rec.tick(ms(0), &mut out);
        rec.connected(2, "guest-2", "127.0.0.1:5001", ms(500), &mut out);
        rec.received(2, b"WELCOME guest-2\n", ms(500), &mut out);
        rec.received(1, b"JOIN guest-2\n", ms(500), &mut out);
        rec.tick(ms(500), &mut out);
        rec.sent(2, "guest-2", &cmd("hi *\x1b[2J"), ms(700), &mut out);
        rec.received(1, b"MSG guest-2 hi *\x1b[2J\n", ms(700), &mut out);
        rec.tick(ms(700), &mut out);
        rec.sent(1, "guest-1", &cmd("/quit"), ms(900), &mut out);
        rec.received(1, b"BYE\n", ms(900), &mut out);
        rec.hub_closed(1, ms(900), &mut out);
        rec.received(2, b"LEAVE guest-1\n", ms(900), &mut out);
        rec.behind(2, true);
        rec.tick(ms(900), &mut out);
        rec.hub_closed(2, ms(1500), &mut out);
        let want = "\
# c1 connected from 127.0.0.1:5000 as guest-1
c1: at 0.000s
c1: connect
c1: ignore NOTICE *
c1: expect WELCOME guest-1
# c2 connected from 127.0.0.1:5001 as guest-2
c2: at 0.500s
c2: await s1
c2: connect
c2: ignore NOTICE *
c2: expect WELCOME guest-2
c1: at 0.500s
c1: signal s1
c1: expect JOIN guest-2
c2: at 0.700s as guest-2
c2: send hi *\\e[2J
c1: at 0.700s
c1: expect MSG guest-2 hi \\*\\e[2J
c1: at 0.900s as guest-1
c1: await s2
c1: send /quit
c1: expect BYE
c1: expect-closed
c2: at 0.900s
c2: signal s2
c2: expect LEAVE guest-1
# c2 was closed by the hub: 0 line(s) sent to it since its last step are not checked (how many reach it depends on kernel buffers)
c2: wait 800ms
c2: expect-closed
";
        assert_eq!(out, want);
    }

    #[test]
    fn flood_lines_fold_into_one_flood_step() {
        let ms = Duration::from_millis;
        let mut rec = Recording::new(4096);
        let mut out = String::new();
        rec.connected(1, "guest-1", "p", ms(0), &mut out);
        out.clear();
        for n in 1..=3 {
            let line = format!("/pub firehose {n} xxxxxxxxxx");
            rec.sent(1, "guest-1", &cmd(&line[..25]), ms(10), &mut out);
        }
        rec.sent(1, "guest-1", &cmd("/ping"), ms(20), &mut out);
        rec.sent(1, "guest-1", &cmd("hi 1 x"), ms(30), &mut out);
        rec.finish(&mut out);
        assert_eq!(
            out,
            "c1: at 0.010s as guest-1\nc1: flood 3 25 /pub firehose\n\
             c1: at 0.020s as guest-1\nc1: send /ping\n\
             c1: at 0.030s as guest-1\nc1: send hi 1 x\n"
        );
        assert_eq!(flood_shape("/pub t 12 xxx"), Some(("/pub t", 12)));
        assert_eq!(flood_shape("/pub t 012 xxx"), None);
        assert_eq!(flood_shape("a\\b 1 xx"), None);
    }

    #[test]
    fn flood_padding_is_a_star() {
        let line = format!("EVENT firehose flood 7 {}", "x".repeat(4000));
        assert_eq!(
            pattern_of(line.as_bytes()),
            "EVENT firehose flood 7 xxxxxxxx*"
        );
        assert_eq!(pattern_of(b"MSG a xx *"), "MSG a xx \\*");
    }

    #[test]
    fn a_too_long_line_is_replayed_as_one() {
        let long = Inbound::Refused(Refusal::new(ErrorCode::LineTooLong, "x"));
        assert_eq!(send_step(&long, 10), "flood 1 11 x");
        assert_eq!(send_step(&cmd("a  "), 10), "send a \\x20");
    }
}

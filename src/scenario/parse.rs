//! Scenario text in, [`Scenario`] out. No IO.
//!
//! Every line is one of:
//!
//! - blank, or a comment starting with `#` (only at the start of a line:
//!   a `#` inside a payload is data);
//! - `set <key> <value>`, before the first step;
//! - `<actor>: <step> [arguments]`.
//!
//! Besides the syntax, the parser checks what can be known without running:
//! an actor cannot send before it connects, every `await` has a matching
//! `signal`, numbers and durations are in range. So a typo is reported with
//! its line number, before any connection is made.

use std::collections::HashMap;
use std::time::Duration;

use super::{Action, Actor, ParseError, Pattern, Scenario, Settings, Step};
use crate::support::duration;

/// Longest actor or signal name.
pub const MAX_NAME: usize = crate::proto::client_line::MAX_NICK;
/// Most lines one `flood` may send.
pub const MAX_FLOOD_LINES: usize = 1_000_000;
/// Most bytes one `flood` may send in all: bounds a typo's memory and time.
pub const MAX_FLOOD_BYTES: usize = 256 * 1024 * 1024;

/// Every step keyword, for the "unknown step" message.
const STEPS: &str = "connect, stop-hub, send, flood, expect, expect-closed, ignore, timeout, wait, at, signal, await, note, close";

/// Parses a scenario. `source` names it in errors (a path, or a built-in name).
pub fn parse(source: &str, text: &str) -> Result<Scenario, ParseError> {
    let mut parser = Parser {
        source,
        settings: Settings::default(),
        set_on: HashMap::new(),
        actors: Vec::new(),
        connected: HashMap::new(),
        signals: HashMap::new(),
        awaits: Vec::new(),
    };
    let mut title = None;
    let mut seen_content = false;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        // Windows line endings: `lines()` leaves the `\r`.
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim();
            if !seen_content && title.is_none() && !comment.is_empty() {
                title = Some(comment.to_string());
            }
            continue;
        }
        seen_content = true;
        parser
            .line(line_no, trimmed)
            .map_err(|problem| ParseError {
                source: source.to_string(),
                line: line_no,
                problem,
            })?;
    }
    parser.finish(title)
}

struct Parser<'a> {
    source: &'a str,
    settings: Settings,
    /// Setting key -> line it was set on (a second `set` is an error).
    set_on: HashMap<String, usize>,
    actors: Vec<Actor>,
    /// Actor -> is its connection open at this point of its steps?
    connected: HashMap<String, bool>,
    /// Signal name -> first line that raises it.
    signals: HashMap<String, usize>,
    /// (line, signal) of every `await`, checked once all signals are known.
    awaits: Vec<(usize, String)>,
}

impl Parser<'_> {
    fn line(&mut self, line_no: usize, line: &str) -> Result<(), String> {
        if let Some(rest) = line.strip_prefix("set ") {
            return self.set(line_no, rest);
        }
        let Some((actor, step)) = line.split_once(':') else {
            return Err(format!(
                "expected `<actor>: <step>` or `set <key> <value>`, found {line:?}"
            ));
        };
        let actor = actor.trim_end();
        check_name("actor", actor)?;
        // One space after the colon is the separator; more is allowed, and
        // trailing text is kept as written (payloads may end in spaces).
        let step = step.trim_start();
        let (word, arg) = match step.split_once(' ') {
            Some((word, arg)) => (word, Some(arg)),
            None => (step, None),
        };
        let action = self.action(actor, word, arg)?;
        self.track(line_no, actor, &action)?;
        let step = Step {
            line: line_no,
            text: step.to_string(),
            action,
        };
        match self.actors.iter_mut().find(|a| a.name == actor) {
            Some(a) => a.steps.push(step),
            None => self.actors.push(Actor {
                name: actor.to_string(),
                steps: vec![step],
            }),
        }
        Ok(())
    }

    fn set(&mut self, line_no: usize, rest: &str) -> Result<(), String> {
        if !self.actors.is_empty() {
            return Err("`set` lines go before the first step".into());
        }
        let (key, value) = rest
            .trim()
            .split_once(' ')
            .map(|(k, v)| (k, v.trim()))
            .ok_or_else(|| format!("`set {}` needs a value: `set <key> <value>`", rest.trim()))?;
        if let Some(first) = self.set_on.get(key) {
            return Err(format!("{key} is already set on line {first}"));
        }
        match key {
            "timeout" => self.settings.timeout = positive_duration(value)?,
            "write-timeout" => self.settings.write_timeout = Some(positive_duration(value)?),
            "max-clients" => self.settings.max_clients = Some(number(value, 1, 1_000_000)?),
            "max-line" => self.settings.max_line = Some(number(value, 1, 16 * 1024 * 1024)?),
            "hubs" => self.settings.hubs = hub_names(value)?,
            "escapes" => self.settings.escapes = on_off(key, value)?,
            "order" => {
                self.settings.order_per_sender = match value {
                    "strict" => false,
                    "per-sender" => true,
                    _ => return Err(format!("order is strict or per-sender, not {value:?}")),
                }
            }
            "blocking-writes" => {
                self.settings.blocking_writes = match value {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("blocking-writes is on or off, not {value:?}")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown setting {key:?} (settings: timeout, write-timeout, max-clients, \
                     max-line, hubs, blocking-writes, escapes, order)"
                ));
            }
        }
        self.set_on.insert(key.to_string(), line_no);
        Ok(())
    }

    fn action(&self, actor: &str, word: &str, arg: Option<&str>) -> Result<Action, String> {
        let none = |action: Action| match arg {
            Some(a) if !a.trim().is_empty() => Err(format!("`{word}` takes no argument")),
            _ => Ok(action),
        };
        let needs = |what: &str| -> Result<&str, String> {
            match arg {
                Some(a) if !a.trim().is_empty() => Ok(a),
                _ => Err(format!("`{word}` needs {what}")),
            }
        };
        Ok(match word {
            "connect" if self.settings.hubs.is_empty() => none(Action::Connect)
                .map_err(|e| format!("{e} (name hubs first: `set hubs a b`)"))?,
            "connect" => match arg.map(str::trim).filter(|a| !a.is_empty()) {
                None => Action::Connect,
                Some(hub) => Action::ConnectTo(self.known_hub(hub)?),
            },
            "stop-hub" => Action::StopHub(self.known_hub(needs("a hub name")?.trim())?),
            "close" => none(Action::Close)?,
            "expect-closed" => none(Action::ExpectClosed)?,
            // An empty `send` sends an empty line (the hub ignores it).
            "send" => Action::Send(self.bytes(arg.unwrap_or(""))?),
            "expect" => Action::Expect(self.pattern(needs("a line or pattern to expect")?)?),
            "ignore" => Action::Ignore(self.pattern(needs("a pattern of lines to skip")?)?),
            "at" => Action::At(at(needs("a time since the start, like 1.5s")?)?),
            "timeout" => Action::Timeout(positive_duration(needs("a duration, like 2s")?)?),
            "wait" => Action::Wait(duration::parse(needs("a duration, like 500ms")?)?),
            "signal" | "await" => {
                let name = needs("a signal name")?.trim();
                check_name("signal", name)?;
                if word == "signal" {
                    Action::Signal(name.to_string())
                } else {
                    Action::Await(name.to_string())
                }
            }
            "note" => Action::Note(arg.unwrap_or("").to_string()),
            "flood" => flood(needs("`<count> <bytes> <prefix>`")?)?,
            "" => return Err(format!("{actor}: what step? ({STEPS})")),
            other => return Err(format!("unknown step {other:?} (steps: {STEPS})")),
        })
    }

    /// A `send` argument: as written, or decoded with `set escapes on`.
    fn bytes(&self, arg: &str) -> Result<Vec<u8>, String> {
        if self.settings.escapes {
            crate::proto::escape::decode(arg)
        } else {
            Ok(arg.as_bytes().to_vec())
        }
    }

    /// An `expect` or `ignore` pattern, with escapes if they are on.
    fn pattern(&self, arg: &str) -> Result<Pattern, String> {
        if self.settings.escapes {
            Pattern::escaped(arg)
        } else {
            Ok(Pattern::new(arg))
        }
    }

    /// A hub of `set hubs`, for `connect <hub>` and `stop-hub <hub>`.
    fn known_hub(&self, hub: &str) -> Result<String, String> {
        if self.settings.hubs.iter().any(|h| h == hub) {
            Ok(hub.to_string())
        } else if self.settings.hubs.is_empty() {
            Err(format!(
                "no hub is called {hub:?}: name the hubs first, `set hubs a b`"
            ))
        } else {
            Err(format!(
                "no hub is called {hub:?} (set hubs: {})",
                self.settings.hubs.join(" ")
            ))
        }
    }

    /// Follows each actor's connection through its steps, to refuse a
    /// `send` before `connect` and the like.
    fn track(&mut self, line_no: usize, actor: &str, action: &Action) -> Result<(), String> {
        let connected = self.connected.entry(actor.to_string()).or_insert(false);
        match action {
            Action::Connect | Action::ConnectTo(_) if *connected => {
                return Err(format!(
                    "{actor} is already connected (`close` first to reconnect)"
                ));
            }
            Action::Connect | Action::ConnectTo(_) => *connected = true,
            Action::Send(_)
            | Action::Flood { .. }
            | Action::Expect(_)
            | Action::ExpectClosed
            | Action::Close
                if !*connected =>
            {
                return Err(format!(
                    "{actor} is not connected here: add `{actor}: connect` before this step"
                ));
            }
            Action::ExpectClosed | Action::Close => *connected = false,
            Action::Signal(name) => {
                self.signals.entry(name.clone()).or_insert(line_no);
            }
            Action::Await(name) => self.awaits.push((line_no, name.clone())),
            _ => {}
        }
        Ok(())
    }

    fn finish(self, title: Option<String>) -> Result<Scenario, ParseError> {
        let error = |line: usize, problem: String| ParseError {
            source: self.source.to_string(),
            line,
            problem,
        };
        for (line, name) in &self.awaits {
            if !self.signals.contains_key(name) {
                return Err(error(
                    *line,
                    format!("no actor ever signals {name:?}, so this would wait forever"),
                ));
            }
        }
        if self.actors.is_empty() {
            return Err(error(
                0,
                "no steps: a scenario needs at least one `<actor>: <step>` line".into(),
            ));
        }
        Ok(Scenario {
            source: self.source.to_string(),
            title,
            settings: self.settings,
            actors: self.actors,
        })
    }
}

/// Actor and signal names follow the nick rules (1 to 32 of
/// `A-Z a-z 0-9 _ -`), so an actor can `/nick` itself by its own name.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    crate::proto::client_line::check_nick(name)
        .map_err(|_| format!("{what} name {name:?} must be 1 to {MAX_NAME} of A-Z a-z 0-9 _ -"))
}

/// `set hubs a b c`: two or more distinct hub names.
fn hub_names(value: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = value.split_whitespace().map(str::to_string).collect();
    if names.len() < 2 {
        return Err("`set hubs` needs two or more hub names, like `set hubs a b`".into());
    }
    for (i, name) in names.iter().enumerate() {
        crate::proto::link_line::check_hub_name(name)?;
        if names[..i].contains(name) {
            return Err(format!("hub {name} is named twice"));
        }
    }
    Ok(names)
}

/// `on` or `off`, for a yes-or-no setting.
fn on_off(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{key} is on or off, not {value:?}")),
    }
}

/// `at <time> [as <nick>]`: the time; the nick is for the reader.
fn at(arg: &str) -> Result<Duration, String> {
    let (time, who) = match arg.split_once(" as ") {
        Some((time, who)) => (time, Some(who.trim())),
        None => (arg, None),
    };
    if let Some(who) = who {
        check_name("nick", who)?;
    }
    duration::parse(time)
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = duration::parse(text)?;
    if d.is_zero() {
        return Err(format!("{text} is zero; a limit must be longer than that"));
    }
    Ok(d)
}

fn number(text: &str, min: usize, max: usize) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is not a number from {min} to {max}")),
    }
}

fn flood(arg: &str) -> Result<Action, String> {
    let usage = "flood needs `<count> <bytes> <prefix>`, e.g. `flood 1000 4000 /pub firehose`";
    let mut parts = arg.splitn(3, ' ');
    let (Some(count), Some(bytes), Some(prefix)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(usage.into());
    };
    if prefix.trim().is_empty() {
        return Err(usage.into());
    }
    let count = number(count, 1, MAX_FLOOD_LINES).map_err(|e| format!("flood count: {e}"))?;
    let bytes = number(bytes, 1, 16 * 1024 * 1024).map_err(|e| format!("flood bytes: {e}"))?;
    if count.saturating_mul(bytes) > MAX_FLOOD_BYTES {
        return Err(format!(
            "flood of {count} x {bytes} bytes is more than {} MiB in all",
            MAX_FLOOD_BYTES / (1024 * 1024)
        ));
    }
    Ok(Action::Flood {
        count,
        bytes,
        prefix: prefix.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Scenario {
        match parse("test.scenario", text) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// The error for `text`, as `(line, problem)`.
    fn err(text: &str) -> (usize, String) {
        match parse("test.scenario", text) {
            Ok(s) => panic!("parsed, but should not have: {s:?}"),
            Err(e) => {
                assert_eq!(e.source, "test.scenario");
                (e.line, e.problem)
            }
        }
    }

    #[test]
    fn a_good_scenario() {
        let s = ok("# two friends say hi\n\
                    # more words\n\
                    set timeout 3s\n\
                    set write-timeout 300ms\n\
                    \n\
                    ann: connect\n\
                    ann: expect WELCOME guest-*\n\
                    ann: signal ready\n\
                    bob: await ready\n\
                    bob:   connect\n\
                    ann: expect JOIN *\n\
                    bob: send  hi there \n\
                    ann: ignore LEAVE *\n\
                    ann: timeout 5s\n\
                    ann: wait 100ms\n\
                    ann: note # not a comment\n\
                    bob: flood 10 100 /pub t\n\
                    bob: close\n\
                    bob: connect\n\
                    bob: expect-closed\n");
        assert_eq!(s.title.as_deref(), Some("two friends say hi"));
        assert_eq!(s.settings.timeout, Duration::from_secs(3));
        assert_eq!(s.settings.write_timeout, Some(Duration::from_millis(300)));
        assert!(s.settings.configures_hub());
        let names: Vec<_> = s.actors.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["ann", "bob"]);
        let ann: Vec<_> = s.actors[0].steps.iter().map(|s| s.action.clone()).collect();
        assert_eq!(
            ann,
            [
                Action::Connect,
                Action::Expect(Pattern::new("WELCOME guest-*")),
                Action::Signal("ready".into()),
                Action::Expect(Pattern::new("JOIN *")),
                Action::Ignore(Pattern::new("LEAVE *")),
                Action::Timeout(Duration::from_secs(5)),
                Action::Wait(Duration::from_millis(100)),
                Action::Note("# not a comment".into()),
            ]
        );
        let bob = &s.actors[1].steps;
        assert_eq!(bob[0].line, 9);
        assert_eq!(bob[2].action, Action::Send(b" hi there ".to_vec()));
        assert_eq!(bob[2].text, "send  hi there ");
        assert_eq!(
            bob[3].action,
            Action::Flood {
                count: 10,
                bytes: 100,
                prefix: "/pub t".into()
            }
        );
    }

    #[test]
    fn defaults_and_crlf() {
        let s = ok("a: connect\r\na: send /ping\r\na: expect PONG\r\n");
        assert_eq!(s.title, None);
        assert_eq!(s.settings, Settings::default());
        assert!(!s.settings.configures_hub());
        assert_eq!(
            s.actors[0].steps[2].action,
            Action::Expect(Pattern::new("PONG"))
        );
        // `send` with nothing sends an empty line.
        let s = ok("a: connect\na: send\n");
        assert_eq!(s.actors[0].steps[1].action, Action::Send(Vec::new()));
    }

    #[test]
    fn named_hubs_connect_and_stop_by_name() {
        let s = ok("set hubs a b\nx: connect b\nx: stop-hub a\ny: connect\n");
        assert_eq!(s.settings.hubs, ["a", "b"]);
        assert!(s.settings.configures_hub());
        assert_eq!(s.actors[0].steps[0].action, Action::ConnectTo("b".into()));
        assert_eq!(s.actors[0].steps[1].action, Action::StopHub("a".into()));
        assert_eq!(s.actors[1].steps[0].action, Action::Connect);
        for (text, problem) in [
            ("set hubs a\nx: connect\n", "two or more"),
            ("set hubs a a\nx: connect\n", "named twice"),
            ("set hubs a b\nx: connect c\n", "no hub is called \"c\""),
            ("x: stop-hub a\n", "set hubs a b"),
        ] {
            let e = parse("t", text).unwrap_err();
            assert!(e.problem.contains(problem), "{text:?}: {e}");
        }
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_problem() {
        let cases: &[(&str, usize, &str)] = &[
            ("a: connect\njust words\n", 2, "expected `<actor>: <step>`"),
            ("a: connect\na: expekt PONG\n", 2, "unknown step \"expekt\""),
            ("a b: connect\n", 1, "actor name \"a b\""),
            (": connect\n", 1, "actor name \"\""),
            ("a:\n", 1, "what step?"),
            ("a: connect now\n", 1, "`connect` takes no argument"),
            ("a: connect\na: expect\n", 2, "`expect` needs"),
            ("a: connect\na: expect   \n", 2, "`expect` needs"),
            ("a: wait 5\n", 1, "not a duration"),
            ("a: wait soon\n", 1, "not a duration"),
            ("a: timeout 0ms\n", 1, "zero"),
            ("a: signal\n", 1, "needs a signal name"),
            ("a: signal two words\n", 1, "signal name"),
            ("a: connect\na: flood 10\n", 2, "flood needs"),
            ("a: connect\na: flood x 10 /pub t\n", 2, "flood count"),
            ("a: connect\na: flood 10 0 /pub t\n", 2, "flood bytes"),
            ("a: connect\na: flood 100000 10000 hi\n", 2, "MiB in all"),
            ("set timeout\na: connect\n", 1, "needs a value"),
            (
                "set colour blue\na: connect\n",
                1,
                "unknown setting \"colour\"",
            ),
            ("set max-clients 0\na: connect\n", 1, "not a number from 1"),
            (
                "set timeout 1s\nset timeout 2s\na: connect\n",
                2,
                "already set on line 1",
            ),
            ("a: connect\nset timeout 1s\n", 2, "before the first step"),
        ];
        for (text, line, problem) in cases {
            let (got_line, got_problem) = err(text);
            assert_eq!(got_line, *line, "{text:?}: {got_problem}");
            assert!(
                got_problem.contains(problem),
                "{text:?}: {got_problem:?} does not mention {problem:?}"
            );
        }
    }

    #[test]
    fn connection_state_is_checked() {
        let (line, problem) = err("a: send hi\n");
        assert_eq!(line, 1);
        assert!(problem.contains("add `a: connect`"), "{problem}");
        let (line, problem) = err("a: connect\na: connect\n");
        assert_eq!(line, 2);
        assert!(problem.contains("already connected"), "{problem}");
        let (line, _) = err("a: connect\na: close\na: expect PONG\n");
        assert_eq!(line, 3);
        let (line, _) = err("a: connect\na: expect-closed\na: send x\n");
        assert_eq!(line, 3);
        // Each actor has its own connection.
        let (line, _) = err("a: connect\nb: send hi\n");
        assert_eq!(line, 2);
    }

    #[test]
    fn every_await_needs_a_signal() {
        let (line, problem) = err("a: connect\na: await ready\nb: signal steady\n");
        assert_eq!(line, 2);
        assert!(problem.contains("\"ready\""), "{problem}");
        // A signal raised later in the file is fine: actors run concurrently.
        ok("a: await ready\nb: signal ready\n");
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let e = parse("empty.scenario", "# only a comment\n\n").unwrap_err();
        assert_eq!(e.line, 0);
        assert_eq!(
            e.to_string(),
            "empty.scenario: no steps: a scenario needs at least one `<actor>: <step>` line"
        );
        let e = parse("x.scenario", "a: bogus\n").unwrap_err();
        assert!(
            e.to_string().starts_with("x.scenario line 1: unknown step"),
            "{e}"
        );
    }
}

//! `tcphub simulate`: the built-in scenarios against the real hub, and the
//! reports of scenarios that fail or do not parse.

mod procs;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use procs::tcphub;
use tcphub::scenario::run::{HubToUse, Outcome, run};
use tcphub::scenario::{self, builtin, parse::parse};
use tcphub::{Config, Hub};

/// A timeline sink the test can read afterwards.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs scenario text; returns the outcome and the timeline.
fn run_text(text: &str, target: &HubToUse) -> (Outcome, String) {
    let scenario = parse("test.scenario", text).expect("the test scenario parses");
    let timeline = Captured::default();
    let report = run(&scenario, target, Box::new(timeline.clone())).expect("run starts");
    (report.outcome, timeline.text())
}

fn run_builtin(name: &str, target: &HubToUse) -> (Outcome, String) {
    let scenario = scenario::load(name).expect("built-in loads");
    let timeline = Captured::default();
    let report = run(&scenario, target, Box::new(timeline.clone())).expect("run starts");
    (report.outcome, timeline.text())
}

/// The timeline lines of `actor` with `mark` (`->`, `<-`), without times.
fn entries(timeline: &str, actor: &str, mark: &str) -> Vec<String> {
    timeline
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let _time = words.next()?;
            (words.next()? == actor && words.next()? == mark)
                .then(|| words.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

#[test]
fn chat_passes_and_its_timeline_tells_the_story() {
    let (outcome, timeline) = run_builtin("chat", &HubToUse::InProcess);
    assert!(
        matches!(outcome, Outcome::Passed { actors: 3, .. }),
        "{outcome:?}\n{timeline}"
    );
    assert_eq!(
        entries(&timeline, "carol", "<-"),
        [
            "WELCOME guest-3",
            "ERR nick-taken bob is already in use",
            "OK nick carol",
            "MSG bob yes, on my way",
            "LIST ann bob carol",
            "LEAVE bob",
            "LEAVE ann",
            "BYE",
        ]
    );
}

#[test]
fn caps_passes_with_every_order_delivered() {
    let (outcome, timeline) = run_builtin("caps", &HubToUse::InProcess);
    assert!(
        matches!(outcome, Outcome::Passed { .. }),
        "{outcome:?}\n{timeline}"
    );
    let logged = entries(&timeline, "logger", "<-");
    let events: Vec<_> = logged
        .iter()
        .filter(|l| l.starts_with("EVENT"))
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let one_order = [
        "EVENT pickup vendor",
        "EVENT in-transit driver",
        "EVENT delivered driver",
    ];
    assert_eq!(events, one_order.repeat(3));
}

#[test]
fn slow_consumer_is_cut_off_and_the_others_carry_on() {
    let (outcome, timeline) = run_builtin("slow-consumer", &HubToUse::InProcess);
    assert!(
        matches!(outcome, Outcome::Passed { .. }),
        "{outcome:?}\n{timeline}"
    );
    assert!(timeline.contains("write timeout 300ms"), "{timeline}");
    let carol = entries(&timeline, "carol", "<-");
    assert!(carol.contains(&"LEAVE slow".to_string()), "{carol:?}");
    assert_eq!(
        carol.last().map(String::as_str),
        Some("MSG flood yes: the hub stalled us all until it cut slow off, then carried on")
    );
    let slow = entries(&timeline, "slow", "<-");
    assert!(
        slow.last()
            .is_some_and(|l| l.starts_with("(closed by the hub")),
        "{slow:?}"
    );
}

#[test]
fn a_scenario_runs_against_a_hub_given_by_address() {
    let hub = Hub::start(Config::ephemeral()).expect("hub");
    let target = HubToUse::Addr(hub.local_addr().to_string());
    let (outcome, timeline) = run_builtin("chat", &target);
    assert!(
        matches!(outcome, Outcome::Passed { .. }),
        "{outcome:?}\n{timeline}"
    );
    assert!(timeline.contains(&format!("hub {}", hub.local_addr())));
}

#[test]
fn the_first_unmet_expectation_is_reported_with_what_arrived_instead() {
    let text = "\
# a scenario that is wrong on purpose
a: connect
a: expect WELCOME guest-*
a: send /ping
a: expect PING
a: send never sent
";
    let (outcome, timeline) = run_text(text, &HubToUse::InProcess);
    let Outcome::Failed(failure) = outcome else {
        panic!("passed, but PONG is not PING:\n{timeline}");
    };
    assert_eq!(failure.actor, "a");
    assert_eq!(failure.step, 4);
    assert_eq!(failure.line, 5);
    assert_eq!(failure.text, "expect PING");
    assert_eq!(failure.expected, "PING");
    assert_eq!(failure.got, "PONG");
    let shown = failure.to_string();
    assert!(
        shown.starts_with("test.scenario line 5: a, step 4: expect PING"),
        "{shown}"
    );
    // The steps after the failure did not run.
    assert!(!timeline.contains("never sent"), "{timeline}");
}

#[test]
fn a_missing_line_times_out_and_a_failure_stops_the_other_actors() {
    let text = "\
set timeout 60s
a: connect
a: expect WELCOME *
a: timeout 200ms
a: expect MSG nobody says this
a: signal never
b: await never
";
    let started = Instant::now();
    let (outcome, timeline) = run_text(text, &HubToUse::InProcess);
    let Outcome::Failed(failure) = outcome else {
        panic!("passed:\n{timeline}");
    };
    assert_eq!((failure.actor.as_str(), failure.line), ("a", 5));
    assert_eq!(failure.expected, "MSG nobody says this");
    assert_eq!(failure.got, "nothing within 200ms");
    // b would wait up to 60 s for its signal; the failure woke it instead.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn ignored_lines_are_skipped_and_closing_is_checked() {
    let text = "\
a: connect
a: expect WELCOME *
a: ignore JOIN *
a: signal a-in
b: await a-in
b: connect
b: expect WELCOME *
b: send /quit
b: expect BYE
b: expect-closed
a: expect LEAVE *
a: close
";
    let (outcome, timeline) = run_text(text, &HubToUse::InProcess);
    assert!(
        matches!(outcome, Outcome::Passed { .. }),
        "{outcome:?}\n{timeline}"
    );
    assert!(timeline.contains("(ignored)"), "{timeline}");

    // Without the ignore, the JOIN is an unmet expectation.
    let strict = text.replace("a: ignore JOIN *\n", "");
    let (outcome, _) = run_text(&strict, &HubToUse::InProcess);
    let Outcome::Failed(failure) = outcome else {
        panic!("passed without the ignore");
    };
    assert!(failure.got.starts_with("JOIN guest-"), "{failure}");
}

#[test]
fn every_builtin_is_shipped_as_the_same_file_in_docs() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/scenarios");
    for (name, text) in builtin::BUILTINS {
        let file = std::fs::read_to_string(dir.join(format!("{name}.scenario")))
            .expect("docs/scenarios/<name>.scenario exists");
        assert_eq!(&file, text, "{name}");
    }
}

// ---- the command line ---------------------------------------------------

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tcphub-test-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write temp scenario");
    path
}

#[test]
fn cli_lists_and_runs_builtins() {
    let mut list = tcphub(&["simulate", "--list"]);
    assert_eq!(list.wait().code(), Some(0));
    let names: Vec<String> = list
        .all_stdout()
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(
        names,
        ["chat", "caps", "slow-consumer", "caps-linked", "netsplit"]
    );

    let mut caps = tcphub(&["simulate", "caps"]);
    assert_eq!(caps.wait().code(), Some(0));
    let out = caps.all_stdout();
    assert!(
        out.last().is_some_and(|l| l.starts_with("PASSED caps")),
        "{out:?}"
    );
    assert!(out.iter().any(|l| l.contains("vendor  -> /pub pickup")));
    assert!(
        out.iter()
            .any(|l| l.contains("driver  <- EVENT pickup vendor"))
    );
}

#[test]
fn cli_reports_a_failing_file_with_exit_code_1() {
    let path = temp_file(
        "fails.scenario",
        "a: connect\na: expect WELCOME *\na: send /ping\na: expect PING\n",
    );
    let mut sim = tcphub(&["simulate", path.to_str().expect("utf-8 path")]);
    let code = sim.wait().code();
    let out = sim.all_stdout().join("\n");
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("fails.scenario line 4: a, step 4: expect PING"),
        "{out}"
    );
    assert!(out.contains("got      PONG"), "{out}");
}

#[test]
fn cli_reports_a_malformed_file_with_its_line_and_exit_code_2() {
    let path = temp_file("bad.scenario", "a: connect\na: expekt PONG\n");
    let mut sim = tcphub(&["simulate", path.to_str().expect("utf-8 path")]);
    let code = sim.wait().code();
    let err = sim.all_stderr().join("\n");
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bad.scenario line 2: unknown step \"expekt\""),
        "{err}"
    );

    let mut missing = tcphub(&["simulate", "no-such-scenario"]);
    assert_eq!(missing.wait().code(), Some(2));
    let err = missing.all_stderr().join("\n");
    assert!(err.contains("chat, caps, slow-consumer"), "{err}");
}

#[test]
fn a_scenario_without_expectations_is_not_a_pass() {
    // An exercise with its `expect` lines deleted proves nothing: say so.
    let (outcome, timeline) = run_text("a: connect\na: send /ping\n", &HubToUse::InProcess);
    assert_eq!(
        outcome,
        Outcome::Unchecked {
            actors: 1,
            steps: 2
        },
        "{timeline}"
    );
    let (outcome, _) = run_text("a: connect\na: expect WELCOME *\n", &HubToUse::InProcess);
    assert!(matches!(outcome, Outcome::Passed { .. }), "{outcome:?}");
}

#[test]
fn the_timeline_shows_control_characters_escaped() {
    let text = "set timeout 5s\n\
        bob: connect\n\
        bob: expect WELCOME guest-*\n\
        bob: signal in\n\
        ann: await in\n\
        ann: connect\n\
        ann: expect WELCOME guest-*\n\
        ann: send \u{1b}[2Jhi\u{202e}\n\
        ann: signal sent\n\
        bob: expect JOIN guest-*\n\
        bob: await sent\n\
        bob: expect MSG guest-* *\n";
    let (outcome, timeline) = run_text(text, &HubToUse::InProcess);
    assert!(matches!(outcome, Outcome::Passed { .. }), "{outcome:?}");
    assert!(!timeline.contains('\u{1b}'), "{timeline}");
    assert!(!timeline.contains('\u{202e}'), "{timeline}");
    assert!(
        timeline.contains("<- MSG guest-2 \\e[2Jhi\\u{202e}"),
        "{timeline}"
    );
}

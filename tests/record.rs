//! `tcphub serve --record`: a real session recorded in this test, replayed
//! green against the hub and the async twin; hostile bytes that neither
//! break the file nor reach a terminal; the `--record-max-bytes` cut; and
//! the escapes read back byte for byte (property test).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Limits, Peer};
use proptest::prelude::*;
use tcphub::proto::escape::{self, Context};
use tcphub::scenario::run::{HubToUse, Outcome, Pace, Report};
use tcphub::scenario::{Action, Pattern, parse};
use tcphub::{Config, Hub};

/// A file of this test's own under the system's temporary folder.
fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tcphub-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir.join(name)
}

const MAX_LINE: usize = 256;

fn recording_hub(path: &Path, max_bytes: u64) -> Hub {
    let config = Config {
        max_line: MAX_LINE,
        record: Some(path.to_path_buf()),
        record_max_bytes: max_bytes,
        ..Config::ephemeral()
    };
    Hub::start(config).expect("hub starts")
}

/// Connects and reads `WELCOME` and the recording's `NOTICE`.
fn join(hub: &Hub, name: &str) -> Peer {
    let mut peer = Peer::connect(hub.local_addr(), name);
    peer.expect_prefix("WELCOME ");
    peer.expect_prefix("NOTICE this session is recorded");
    peer
}

/// The chat line with everything a terminal or a scenario file could
/// trip on: ESC sequences (clear screen, OSC 52 clipboard), NUL, a bidi
/// override, a CR inside the line, stars, a backslash, `#`, trailing space.
const HOSTILE: &[u8] =
    b"\x1b[2J\x1b]52;c;ZXZpbA==\x07 nul\x00 \xe2\x80\xae rtl *star* \\x41 # hash \r cr trailing ";

/// Records one session of two clients, every kind of line included, and
/// returns the file's text once the hub has stopped.
fn record_a_session(path: &Path) -> String {
    let hub = recording_hub(path, tcphub::hub::recorder::DEFAULT_MAX_BYTES);
    let mut ann = join(&hub, "ann");
    let mut bob = join(&hub, "bob");
    ann.expect("JOIN guest-2");
    ann.call("/nick ann", "OK nick ann");
    bob.expect("NICK guest-1 ann");
    let mut chat = HOSTILE.to_vec();
    chat.push(b'\n');
    bob.send_raw(&chat);
    let relayed = ann.recv();
    assert_eq!(
        relayed.as_bytes(),
        [&b"MSG guest-2 "[..], HOSTILE].concat(),
        "relayed byte for byte"
    );
    bob.send_raw(b"bad \xff\xfe utf-8\n");
    bob.expect_err("bad-utf8");
    bob.send_raw(&[b'y'; MAX_LINE + 50]);
    bob.send_raw(b"\n");
    bob.expect_err("line-too-long");
    bob.send("/frob");
    bob.expect_err("unknown-command");
    ann.call("/sub t", "OK sub t");
    bob.send("/pub t {\"n\": 1}");
    ann.expect("EVENT t guest-2 {\"n\": 1}");
    bob.call("/dm ann psst", "OK dm ann");
    ann.expect("DM guest-2 psst");
    bob.call("/quit", "BYE");
    bob.expect_closed();
    ann.expect("LEAVE guest-2");
    ann.sync();
    drop(ann);
    hub.shutdown();
    std::fs::read_to_string(path).expect("the recording is UTF-8 text")
}

/// The timeline, kept for the failure message.
#[derive(Clone, Default)]
struct Out(Arc<Mutex<Vec<u8>>>);

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn replay(name: &str, text: &str, target: &HubToUse, pace: Pace) -> (Report, String) {
    let scenario = parse::parse(name, text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let out = Out::default();
    let report = tcphub::scenario::run::run_paced(&scenario, target, pace, Box::new(out.clone()))
        .expect("the replay starts");
    let timeline = String::from_utf8(out.0.lock().unwrap().clone()).expect("UTF-8 timeline");
    (report, timeline)
}

fn assert_passed(report: &Report, timeline: &str, text: &str) {
    assert!(
        matches!(report.outcome, Outcome::Passed { .. }),
        "{:?}\n{timeline}\n--- recording:\n{text}",
        report.outcome
    );
}

#[test]
fn a_recorded_session_replays_green_on_the_hub_and_the_async_twin() {
    let path = temp_file("session.scenario");
    let text = record_a_session(&path);
    assert!(text.contains("set escapes on\n"), "{text}");
    assert!(text.contains("\nc2: at "), "times are recorded: {text}");
    assert!(text.contains(" as ann\n"), "nicks are recorded: {text}");
    assert!(text.contains("c1: send /nick ann\n"), "{text}");
    assert!(text.contains("c2: expect NICK guest-1 ann\n"), "{text}");
    assert!(text.contains("c2: expect-closed\n"), "the quit: {text}");
    assert!(
        text.contains("c1: close\n") || text.contains("# recording ended"),
        "{text}"
    );
    assert!(text.contains("# recording ended at "), "{text}");
    // In-process, as fast as it goes and at the recorded pace.
    for pace in [Pace::AsFast, Pace::Speed(1.0)] {
        let (report, timeline) = replay("session", &text, &HubToUse::InProcess, pace);
        assert_passed(&report, &timeline, &text);
    }
    // The async twin sends no NOTICE: the recording ignores them anyway.
    let twin = common::start_async(Limits {
        max_line: MAX_LINE,
        ..Limits::default()
    });
    let target = HubToUse::Addr(twin.addr().to_string());
    let (report, timeline) = replay("session", &text, &target, Pace::AsFast);
    assert_passed(&report, &timeline, &text);
}

#[test]
fn hostile_bytes_neither_break_the_file_nor_reach_the_terminal() {
    let path = temp_file("hostile.scenario");
    let text = record_a_session(&path);
    // Every byte of the file is printable (or the newline between steps):
    // no ESC, NUL, CR, bidi control or bad UTF-8 got through unescaped.
    for (n, line) in text.lines().enumerate() {
        assert!(
            !line.chars().any(escape::is_unsafe),
            "line {}: {line:?}",
            n + 1
        );
        let kind_ok = line.starts_with('#')
            || line.starts_with("set ")
            || line.split_once(": ").is_some_and(|(actor, _)| {
                actor.starts_with('c') && actor[1..].bytes().all(|b| b.is_ascii_digit())
            });
        assert!(
            kind_ok,
            "line {} is no step, set or comment: {line:?}",
            n + 1
        );
    }
    let sent = format!("c2: send {}\n", escape::encode(HOSTILE, Context::Send));
    assert!(text.contains(&sent), "{sent:?} in\n{text}");
    assert!(sent.contains("\\e[2J") && sent.contains("\\x00") && sent.contains("\\u{202e}"));
    assert!(
        text.contains("c2: send \\xff\n"),
        "bad UTF-8, as the hub saw it: {text}"
    );
    assert!(
        text.contains(&format!("c2: flood 1 {} x\n", MAX_LINE + 1)),
        "the too-long line: {text}"
    );
    // The file reads back to the very bytes bob sent.
    let scenario = parse::parse("hostile", &text).expect("parses");
    let bob = scenario.actors.iter().find(|a| a.name == "c2").expect("c2");
    assert!(
        bob.steps
            .iter()
            .any(|s| s.action == Action::Send(HOSTILE.to_vec())),
        "{text}"
    );
    // The replay's timeline is terminal-safe too.
    let (report, timeline) = replay("hostile", &text, &HubToUse::InProcess, Pace::AsFast);
    assert_passed(&report, &timeline, &text);
    let unsafe_chars: Vec<char> = timeline
        .chars()
        .filter(|&c| escape::is_unsafe(c) && c != '\n')
        .collect();
    assert!(unsafe_chars.is_empty(), "{unsafe_chars:?} in {timeline}");
}

#[test]
fn the_recording_stops_at_its_size_limit_and_says_so() {
    let path = temp_file("cut.scenario");
    let max = 3000u64;
    let hub = recording_hub(&path, max);
    let mut ann = join(&hub, "ann");
    let mut bob = join(&hub, "bob");
    ann.expect("JOIN guest-2");
    let mut told = None;
    for n in 0..200 {
        bob.send(&format!("line {n} of a chat that goes on and on"));
        let line = ann.recv();
        if line.starts_with("NOTICE ") {
            told = Some(line);
            break;
        }
        assert_eq!(
            line,
            format!("MSG guest-2 line {n} of a chat that goes on and on")
        );
    }
    let told = told.expect("ann is told the recording stopped");
    assert_eq!(
        told,
        format!("NOTICE recording stopped: --record-max-bytes {max} reached")
    );
    bob.expect(&told);
    // Still a working hub, not recording any more (the chat line of the
    // batch that did not fit comes after the NOTICE).
    bob.send("after the cut");
    loop {
        let line = ann.recv();
        if line == "MSG guest-2 after the cut" {
            break;
        }
        assert!(line.starts_with("MSG guest-2 line "), "{line}");
    }
    hub.shutdown();
    let text = std::fs::read_to_string(&path).expect("text");
    let (body, last) = text.trim_end().rsplit_once('\n').expect("lines");
    assert!(
        (body.len() as u64) < max,
        "{} bytes before the last line",
        body.len()
    );
    assert!(last.starts_with("# recording stopped at "), "{last}");
    assert!(
        last.contains(&format!("--record-max-bytes {max} reached")),
        "{last}"
    );
    assert!(!text.contains("after the cut"), "{text}");
    // What was recorded before the cut still replays.
    let (report, timeline) = replay("cut", &text, &HubToUse::InProcess, Pace::AsFast);
    assert_passed(&report, &timeline, &text);
}

#[test]
fn a_hub_without_record_sends_no_notice() {
    let hub = Hub::start(Config::ephemeral()).expect("hub starts");
    let mut ann = Peer::connect(hub.local_addr(), "ann");
    ann.expect("WELCOME guest-1");
    ann.sync();
    hub.shutdown();
}

proptest! {
    /// Any bytes, escaped for a `send`, read back as the same bytes, and
    /// the escaped text is one line a terminal shows as it is.
    #[test]
    fn send_escapes_read_back_byte_exact(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let text = escape::encode(&bytes, Context::Send);
        prop_assert!(!text.contains('\n') && !text.ends_with('\r') && !text.ends_with(' '));
        prop_assert!(!text.chars().any(escape::is_unsafe));
        let file = format!("set escapes on\na: connect\na: send {text}\n");
        let scenario = parse::parse("p", &file).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sent = &scenario.actors[0].steps[1].action;
        if bytes.is_empty() {
            prop_assert_eq!(sent, &Action::Send(Vec::new()));
        } else {
            prop_assert_eq!(sent, &Action::Send(bytes));
        }
    }

    /// Any text, escaped as a pattern, matches exactly that text.
    #[test]
    fn pattern_escapes_match_exactly_their_line(line in "\\PC*|[\\x00-\\x7f]*|[*\\\\ \\x1b\\u{202e}a]*") {
        let text = escape::encode(line.as_bytes(), Context::Pattern);
        let pattern = Pattern::escaped(&text).map_err(TestCaseError::fail)?;
        prop_assert!(pattern.matches(&line), "{:?} from {:?}", text, line);
        let longer = format!("{line}x");
        prop_assert!(!pattern.matches(&longer));
    }
}

#[test]
fn at_steps_keep_the_recorded_pace() {
    let text = "set escapes on\na: at 1s\na: connect\na: expect WELCOME guest-1\n";
    // At twice the speed: half the recorded second.
    let (report, _) = replay("pace", text, &HubToUse::InProcess, Pace::Speed(2.0));
    assert!(
        report.elapsed >= Duration::from_millis(500),
        "{:?}",
        report.elapsed
    );
    // As fast: no waiting for the recorded time at all.
    let (report, _) = replay("pace", text, &HubToUse::InProcess, Pace::AsFast);
    assert!(
        report.elapsed < Duration::from_secs(1),
        "{:?}",
        report.elapsed
    );
}

/// The recordings shipped in docs/scenarios/recorded/ (a `make demo` and
/// the slow-consumer scenario, each recorded by `serve --record`) replay
/// green on an in-process hub: the demo as fast as it goes, the slow
/// consumer at its recorded pace (its hub must have time to cut it off).
#[test]
fn the_shipped_recordings_replay_green() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scenarios/recorded");
    for (file, pace) in [
        ("demo.scenario", Pace::AsFast),
        ("slow-consumer.scenario", Pace::Speed(1.0)),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("a shipped recording");
        assert!(
            text.starts_with("# recording of tcphub serve on "),
            "{file}"
        );
        let (report, timeline) = replay(file, &text, &HubToUse::InProcess, pace);
        assert_passed(&report, &timeline, &text);
    }
}

/// `simulate --to-exercise`: a recording's student copy keeps the story
/// and blanks every expectation, so, run as it is, it cannot pass.
#[test]
fn a_student_copy_of_a_recording_blanks_every_expectation() {
    let path = temp_file("exercise.scenario");
    let text = record_a_session(&path);
    let copy = tcphub::scenario::student::student_copy(&text);
    assert!(copy.contains("c1: send /nick ann\n"), "{copy}");
    assert!(copy.contains("c1: expect ____\n"), "{copy}");
    assert!(!copy.contains("expect WELCOME"), "{copy}");
    assert!(
        !copy.lines().any(|l| l.ends_with(": expect-closed")),
        "{copy}"
    );
    let (report, _) = replay("copy", &copy, &HubToUse::InProcess, Pace::AsFast);
    assert!(
        matches!(report.outcome, Outcome::Failed(_)),
        "{:?}",
        report.outcome
    );
}

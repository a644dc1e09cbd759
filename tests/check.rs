//! `tcphub check ADDR`, the binary, as a student runs it: against the hub
//! (everything passes), against a naive lesson-style Node server (failures
//! with hints a student can act on), and the ways it is used wrong.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tcphub::{Config, Hub};

/// Runs `tcphub check` with `args`; returns (exit code, stdout, stderr).
fn check(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_tcphub"))
        .arg("check")
        .args(args)
        .output()
        .expect("run tcphub check");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("the grader prints UTF-8");
    (status.code().unwrap_or(-1), text(stdout), text(stderr))
}

/// A hub in this process with the limits the command line will be told.
fn hub() -> Hub {
    Hub::start(Config {
        max_clients: 10,
        write_timeout: Duration::from_millis(300),
        ..Config::ephemeral()
    })
    .expect("hub starts")
}

#[test]
fn the_hub_passes_every_check() {
    let hub = hub();
    let addr = hub.local_addr().to_string();
    let args = [
        &addr,
        "--fresh",
        "--max-clients",
        "10",
        "--write-timeout-ms",
        "300",
    ];
    let (code, out, err) = check(&args);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // The limit checks each want a server of their own (a_hub_meets_...).
    for c in tcphub::check::CHECKS
        .iter()
        .filter(|c| c.wants.limit.is_none())
    {
        assert!(
            out.contains(&format!("PASS {}\n", c.name)),
            "{}:\n{out}",
            c.name
        );
    }
    let skipped = limit_checks();
    let ran = tcphub::check::CHECKS.len() - skipped;
    assert!(
        out.ends_with(&format!("{ran}/{ran} checks passed, {skipped} skipped\n")),
        "{out}"
    );
    hub.shutdown();
}

/// How many checks need one of the hub's limits (`max-pending`, ...).
fn limit_checks() -> usize {
    tcphub::check::CHECKS
        .iter()
        .filter(|c| c.wants.limit.is_some())
        .count()
}

/// Each limit check against a hub started with that limit, told the same
/// value: PASS; told another value than the server has: FAIL.
#[test]
fn a_hub_meets_each_limit_it_was_started_with() {
    use tcphub::check::limits::Limit;
    for c in tcphub::check::CHECKS {
        let Some(limit) = c.wants.limit else { continue };
        let mut serve = Command::new(env!("CARGO_BIN_EXE_tcphub"));
        serve.arg("serve");
        let limits = common::Limits {
            write_timeout_ms: c.wants.write_timeout_ms.unwrap_or(2000),
            limit: Some(limit),
            ..common::Limits::default()
        };
        let server = common::spawn_server(serve, limits);
        let addr = server.addr().to_string();
        let mut args = vec![addr.clone(), "--only".into(), c.name.into()];
        args.extend([
            "--write-timeout-ms".into(),
            limits.write_timeout_ms.to_string(),
        ]);
        match limit {
            Limit::FdLimit(n) => args.extend(["--fd-limit".into(), n.to_string()]),
            other => args.extend(other.serve_args()),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = check(&args);
        assert_eq!(code, 0, "{}: stdout:\n{out}\nstderr:\n{err}", c.name);
        assert_eq!(out, format!("PASS {}\n1/1 checks passed\n", c.name));
    }
    // A grader told --max-subs 4 of a server that allows 3 fails it.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_tcphub"));
    serve.args(["serve", "--max-subs", "3"]);
    let server = common::spawn_server(serve, common::Limits::default());
    let addr = server.addr().to_string();
    let (code, out, _) = check(&[&addr, "--only", "max-subs", "--max-subs", "4"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAIL max-subs\n"), "{out}");
    assert!(out.contains("ERR too-many-subs"), "{out}");
}

#[test]
fn limits_not_given_are_skips_not_failures() {
    let hub = hub();
    let (code, out, _) = check(&[&hub.local_addr().to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("SKIP server-full: needs the server's --max-clients"),
        "{out}"
    );
    assert!(
        out.contains("SKIP slow-consumer: needs the server's --write-timeout-ms"),
        "{out}"
    );
    assert!(
        out.contains(
            "SKIP line-timeout: needs the server's --line-timeout-ms: start it with one (300, say)"
        ),
        "{out}"
    );
    assert!(
        out.contains("SKIP out-of-descriptors: needs the server's descriptor limit"),
        "{out}"
    );
    let skipped = 3 + limit_checks();
    let ran = tcphub::check::CHECKS.len() - skipped;
    assert!(
        out.ends_with(&format!("{ran}/{ran} checks passed, {skipped} skipped\n")),
        "{out}"
    );
    hub.shutdown();
}

#[test]
fn only_runs_the_named_checks() {
    let hub = hub();
    let (code, out, _) = check(&[&hub.local_addr().to_string(), "--only", "dm,quit"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "PASS quit\nPASS dm\n2/2 checks passed\n");
    hub.shutdown();
}

#[test]
fn the_naive_node_server_fails_with_hints_a_student_can_act_on() {
    if let Some(reason) = common::node_missing() {
        eprintln!("skipped: {reason}");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/naive_node_hub.js");
    let mut node = Command::new("node");
    node.arg(script);
    let server = common::spawn_server(node, common::Limits::default());
    let addr = server.addr().to_string();
    let (code, out, err) = check(&[&addr, "--fresh", "--timeout-ms", "1000"]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    for expected in [
        "PASS welcome\n",
        "FAIL line-endings-and-splits\n",
        "  bob expected: \"MSG ann two\" after \"one\\ntwo\\n\" in one segment\n",
        "  bob got:      \"two\"\n",
        "if your server treats one `data` event (one read()) as one message, split what \
         arrives on \\n and keep the rest for the next event",
        "FAIL chat-verbatim\n",
        "  bob got:      \"MSG ann hello,   world\"\n",
        "do not trim() it",
        "FAIL bad-utf8\n",
        "FAIL quit\n",
        "SKIP server-full: needs the server's --max-clients",
        "skipped\n",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn nothing_listening_is_one_line_and_exit_2() {
    let addr: SocketAddr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    }; // dropped: nothing listens there now
    let (code, out, err) = check(&[&addr.to_string()]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("tcphub check: cannot connect to {addr}: ")),
        "{err}"
    );
}

#[test]
fn a_server_that_never_answers_fails_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // accepts (the kernel does, from the backlog) but never writes a byte
    let started = Instant::now();
    let (code, out, _) = check(&[&addr, "--only", "welcome,quit", "--timeout-ms", "200"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL welcome\n  a expected: a line starting \"WELCOME \"\n  a got:      nothing within 200ms"), "{out}");
    assert!(out.ends_with("0/2 checks passed\n"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

#[test]
fn an_unknown_check_name_is_exit_2_with_the_valid_names() {
    let (code, out, err) = check(&["127.0.0.1:1", "--only", "welcome,nope"]);
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert!(
        err.contains("unknown check nope; valid names: guest-numbers, welcome,"),
        "{err}"
    );
}

#[test]
fn list_names_every_check_with_a_description() {
    let (code, out, _) = check(&["--list"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), tcphub::check::CHECKS.len());
    for c in tcphub::check::CHECKS {
        assert!(
            out.contains(&format!("{:<24} {:<8} {}", c.name, c.kind.label(), c.about)),
            "{out}"
        );
    }
}

/// The staged track's last hub (exercises/, step 7) is graded by the same
/// command: everything it implements passes, and the one thing the track
/// leaves out (`/help`) fails with what was expected.
#[test]
fn the_exercises_step_7_hub_is_graded_by_tcphub_check() {
    use exercises::steps::step7_slow_consumers::serve;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // The step 7 hub has no shutdown: its threads end with this process.
    std::thread::Builder::new()
        .name("step7-hub".into())
        .spawn(move || serve(listener, Duration::from_millis(300)))
        .expect("spawn the step 7 hub");
    let names: Vec<&str> = tcphub::check::CHECKS
        .iter()
        .map(|c| c.name)
        .filter(|n| !["ping-help-errors", "server-full"].contains(n))
        .collect();
    let only = names.join(",");
    let args = [
        &addr,
        "--fresh",
        "--write-timeout-ms",
        "300",
        "--only",
        &only,
    ];
    let (code, out, err) = check(&args);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let (code, out, _) = check(&[&addr, "--only", "ping-help-errors"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL ping-help-errors") && out.contains("HELP"),
        "{out}"
    );
}

/// A server that keeps protocol v1 and makes the other choice on every open
/// point (tests/servers/other_choices.py): exit 0, its choices `NOTE`d;
/// with `--strict`, exit 1; and the same server breaking one requirement
/// (chat trimmed) exits 1.
#[test]
fn other_choices_are_notes_and_a_broken_requirement_fails() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/servers/other_choices.py"
    );
    let start = |extra: &[&str]| {
        let mut python = Command::new("python3");
        python.arg(script).args(extra);
        let limits = common::Limits {
            max_clients: 10,
            ..common::Limits::default()
        };
        common::spawn_server(python, limits)
    };
    let server = start(&[]);
    let addr = server.addr().to_string();
    let (code, out, err) = check(&[&addr, "--fresh", "--max-clients", "10"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for c in tcphub::check::CHECKS {
        let required = c.kind == tcphub::check::Kind::Required;
        // slow-consumer and the limit checks need limits not passed here
        if required && c.name != "slow-consumer" && c.wants.limit.is_none() {
            assert!(
                out.contains(&format!("PASS {}\n", c.name)),
                "{}:\n{out}",
                c.name
            );
        }
    }
    for choice in [
        "guest-no-reuse",
        "dm-needs-text",
        "dm-text-after-one-space",
        "dm-to-self",
        "quit-takes-no-arguments",
        "commands-exact",
        "spaces-in-names",
        "pub-star",
        "nick-same-name",
        "sub-overlap-once",
        "event-empty-payload",
        "too-long-at-once",
    ] {
        assert!(
            out.contains(&format!("NOTE {choice}: chose otherwise")),
            "{choice}:\n{out}"
        );
    }
    let (code, out, _) = check(&[
        &addr,
        "--strict",
        "--only",
        "dm-needs-text,quit-takes-no-arguments",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL dm-needs-text\n"), "{out}");
    drop(server);
    let broken = start(&["--break-a-requirement"]);
    let (code, out, _) = check(&[&broken.addr().to_string(), "--only", "chat-verbatim,dm"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL chat-verbatim\n") && out.contains("PASS dm\n"),
        "{out}"
    );
}

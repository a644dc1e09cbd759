//! docs/debugging.md, run for real: `gdb -batch -x docs/gdb/session.gdb` on
//! the debug binary while this test plays the two `nc` users of the
//! walkthrough over loopback. It checks what the document shows: the named
//! threads each parked in its syscall, the three breakpoints hit by the
//! threads the document says, and the `/pub` arriving at the subscriber.
//!
//! Skipped, with the reason printed, where no gdb can run (CI has one).

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::Peer;

/// Bound on each wait; gdb loading a 25 MB debug binary on a busy machine
/// takes a few seconds, so this is generous.
const PATIENCE: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `rust-gdb` (gdb with Rust pretty printers) if it works, else `gdb`.
fn find_gdb() -> Result<String, String> {
    for candidate in ["rust-gdb", "gdb"] {
        let ok = Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(candidate.to_string());
        }
    }
    Err("neither rust-gdb nor gdb runs here".to_string())
}

/// gdb and the hub it started: both killed when the test ends, however.
struct Session {
    gdb: Child,
    hub_pid: Option<u32>,
    transcript: Arc<Mutex<String>>,
    lines: Receiver<String>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // The traced hub outlives a killed gdb (it is only detached), so it
        // is killed by its pid first.
        if let Some(pid) = self.hub_pid {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.gdb.kill();
        let _ = self.gdb.wait();
    }
}

impl Session {
    fn transcript(&self) -> String {
        self.transcript.lock().unwrap().clone()
    }

    /// Waits for a line of gdb's output (or the hub's, which shares it)
    /// containing `needle`; returns it.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line with {needle:?} within {PATIENCE:?}; gdb said:\n{}",
                    self.transcript()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "gdb ended before a line with {needle:?}; gdb said:\n{}",
                    self.transcript()
                ),
            }
        }
    }
}

fn pipe_lines(
    pipe: impl Read + Send + 'static,
    tx: mpsc::Sender<String>,
    transcript: Arc<Mutex<String>>,
) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            {
                let mut t = transcript.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
            let _ = tx.send(line);
        }
    });
}

/// The pid of the process gdb started (the child whose parent is gdb).
fn child_of(parent: u32) -> Option<u32> {
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after.split_whitespace().nth(1) == Some(&parent.to_string()) {
            return Some(pid);
        }
    }
    None
}

/// Thread name -> state letter (`S` = sleeping in the kernel) of a process.
fn threads_of(pid: u32) -> Vec<(String, char)> {
    let mut threads = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .unwrap_or('?');
        threads.push((comm.trim().to_string(), state));
    }
    threads
}

/// Every breakpoint of the walkthrough names a function that exists in
/// src/ and that docs/debugging.md explains.
#[test]
fn the_documented_breakpoints_name_real_functions() {
    let gdb = fs::read_to_string(root().join("docs/gdb/walkthrough.gdb")).unwrap();
    let doc = fs::read_to_string(root().join("docs/debugging.md")).unwrap();
    let breaks: Vec<&str> = gdb
        .lines()
        .filter_map(|l| l.strip_prefix("break "))
        .map(str::trim)
        .collect();
    assert_eq!(breaks.len(), 3, "{breaks:?}");
    for symbol in breaks {
        let (path, name) = symbol.rsplit_once("::").expect("a path::function");
        // `tcphub::hub::reader` -> src/hub/reader.rs; a type (`Router`)
        // ends the module path.
        let module: Vec<&str> = path
            .trim_start_matches("tcphub::")
            .split("::")
            .take_while(|s| s.starts_with(|c: char| c.is_ascii_lowercase()))
            .collect();
        let module = module.join("/");
        let source = fs::read_to_string(root().join(format!("src/{module}.rs"))).unwrap();
        assert!(
            source.contains(&format!("fn {name}(")),
            "src/{module}.rs has no fn {name}: update docs/gdb/walkthrough.gdb"
        );
        assert!(
            doc.contains(symbol),
            "docs/debugging.md does not mention {symbol}"
        );
    }
}

#[test]
fn the_gdb_walkthrough_shows_the_threads_and_hits_every_breakpoint() {
    if !cfg!(target_os = "linux") {
        eprintln!("skipped: the walkthrough is written for Linux (/proc, accept4, futex)");
        return;
    }
    let gdb = match find_gdb() {
        Ok(gdb) => gdb,
        Err(why) => {
            eprintln!("skipped: {why}; install gdb to run docs/debugging.md as a test");
            return;
        }
    };
    let mut child = Command::new(&gdb)
        .current_dir(root())
        .args(["-batch", "-nx", "-x"])
        .arg(Path::new("docs/gdb/session.gdb"))
        .args([
            "--args",
            env!("CARGO_BIN_EXE_tcphub"),
            "serve",
            "--port",
            "0",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gdb");
    let transcript = Arc::new(Mutex::new(String::new()));
    let (tx, lines) = mpsc::channel();
    pipe_lines(child.stdout.take().unwrap(), tx.clone(), transcript.clone());
    pipe_lines(child.stderr.take().unwrap(), tx, transcript.clone());
    let mut session = Session {
        gdb: child,
        hub_pid: None,
        transcript,
        lines,
    };

    let listening = session.wait_for("listening on ");
    let addr = listening
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    session.hub_pid = child_of(session.gdb.id());
    let hub = session.hub_pid.expect("find the hub process gdb started");

    // The walkthrough's two terminals: a subscriber, then a publisher.
    let mut sub = Peer::connect(addr.parse().unwrap(), "test");
    sub.expect("WELCOME guest-1");
    let mut publisher = Peer::connect(addr.parse().unwrap(), "test");
    publisher.expect("WELCOME guest-2");
    sub.expect("JOIN guest-2");
    sub.send("/sub pickup");
    sub.expect("OK sub pickup");

    // Wait until every thread is asleep in the kernel, as a student pressing
    // Ctrl-C after a moment would find them; then press "Ctrl-C".
    let deadline = Instant::now() + PATIENCE;
    loop {
        let threads = threads_of(hub);
        let names: Vec<&str> = threads.iter().map(|(n, _)| n.as_str()).collect();
        let all_named = ["acceptor", "dispatcher", "client-1", "client-2"]
            .iter()
            .all(|n| names.contains(n));
        if all_named && threads.iter().all(|(_, state)| *state == 'S') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hub's threads never all slept: {threads:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &hub.to_string()])
        .status()
        .expect("run kill");
    assert!(interrupted.success());
    session.wait_for("received signal SIGINT");

    // Typed while the hub is stopped: the bytes wait in the kernel, and the
    // reader finds them as soon as gdb continues.
    publisher.send("/pub pickup A-1");
    sub.expect("EVENT pickup guest-2 A-1");

    let deadline = Instant::now() + PATIENCE;
    while session.gdb.try_wait().expect("poll gdb").is_none() {
        assert!(
            Instant::now() < deadline,
            "gdb did not finish the session:\n{}",
            session.transcript()
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Let the pipe readers drain the last lines.
    thread::sleep(Duration::from_millis(200));
    let out = session.transcript();
    println!("{out}");

    let has_line = |parts: &[&str]| out.lines().any(|l| parts.iter().all(|p| l.contains(p)));
    for (thread, syscall) in [
        ("\"acceptor\"", "accept4"),
        ("\"dispatcher\"", "syscall ()"),
        ("\"client-1\"", "recv"),
        ("\"client-2\"", "recv"),
    ] {
        assert!(
            has_line(&["Thread ", thread, syscall]),
            "info threads should show {thread} parked in {syscall}:\n{out}"
        );
    }
    assert!(
        out.contains("futex_wait") && out.contains("crossbeam_channel"),
        "the dispatcher's backtrace should show crossbeam's recv parked on a futex:\n{out}"
    );
    assert!(
        has_line(&[
            "\"client-2\" hit Breakpoint 1",
            "tcphub::hub::reader::hand_over"
        ]),
        "the publisher's thread should stop where it sends into the channel:\n{out}"
    );
    assert!(
        has_line(&["Event::Line", "Pub", "pickup", "A-1"]),
        "`print event` should show the parsed /pub:\n{out}"
    );
    assert!(
        has_line(&[
            "\"dispatcher\" hit Breakpoint 2",
            "tcphub::proto::router::Router::handle"
        ]),
        "the dispatcher should stop where it routes:\n{out}"
    );
    assert!(
        has_line(&["Dispatcher::apply", "src/hub/dispatcher.rs"]),
        "Router::handle should be called from Dispatcher::apply:\n{out}"
    );
    assert!(
        has_line(&[
            "\"dispatcher\" hit Breakpoint 3",
            "tcphub::hub::outbox::Outbox::deliver"
        ]),
        "the dispatcher should stop where it writes:\n{out}"
    );
    assert!(
        has_line(&["\"dispatcher\" hit Temporary breakpoint 4", "sendmsg (fd="]),
        "the dispatcher should reach the sendmsg syscall:\n{out}"
    );
    // "EVENT pickup guest-2 A-1\n" is 25 bytes: one sendmsg, all of them.
    assert!(
        has_line(&["Value returned is", "= 25"]),
        "sendmsg should return the 25 bytes of the EVENT line:\n{out}"
    );
    let doc = fs::read_to_string(root().join("docs/debugging.md")).unwrap();
    let stale = stale_quotes(&doc, &out);
    assert!(
        stale.is_empty(),
        "docs/debugging.md no longer matches a real run (rerun it and paste the output):\n{}",
        stale.join("\n")
    );
}

/// `file src/x.rs, line 12` or `at src/x.rs:12`: the file and line a gdb
/// line names, if any.
fn file_and_line(line: &str) -> Option<(String, usize)> {
    if let Some(i) = line.find(": file ") {
        let rest = &line[i + 7..];
        let (file, rest) = rest.split_once(", line ")?;
        let number = rest.trim_end_matches('.').trim();
        return Some((file.to_string(), number.parse().ok()?));
    }
    let (_, at) = line.rsplit_once(" at ")?;
    let (file, number) = at.trim().rsplit_once(':')?;
    file.starts_with("src/")
        .then(|| Some((file.to_string(), number.parse().ok()?)))
        .flatten()
}

/// What the document quotes that a real run contradicts: every breakpoint
/// location (`Breakpoint N at ...: file F, line L.`, `hit Breakpoint N, ...
/// at F:L`) must be the run's, and every source line gdb printed under a
/// hit (`L<tab>text`) must be that line of `src/` today.
fn stale_quotes(doc: &str, run: &str) -> Vec<String> {
    let mut stale = Vec::new();
    let run_has = |needle: &str| run.lines().any(|l| l.contains(needle));
    let lines: Vec<&str> = doc.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let is_location = line.starts_with("Breakpoint ") || line.contains("hit Breakpoint");
        let Some((file, number)) = is_location.then(|| file_and_line(line)).flatten() else {
            continue;
        };
        let located = [
            format!("file {file}, line {number}."),
            format!("{file}:{number}"),
        ];
        if !located.iter().any(|l| run_has(l)) {
            stale.push(format!(
                "doc line {}: {file}:{number} is not where gdb stops now",
                i + 1
            ));
        }
        let quoted = lines
            .get(i + 1)
            .and_then(|next| next.split_once('\t'))
            .filter(|(n, _)| n.trim() == number.to_string());
        if let Some((_, text)) = quoted {
            let source = fs::read_to_string(root().join(&file)).unwrap_or_default();
            let actual = source.lines().nth(number - 1).unwrap_or("");
            if actual.trim() != text.trim() {
                stale.push(format!(
                    "doc line {}: quotes {file}:{number} as {text:?}, but it is {actual:?}",
                    i + 2
                ));
            }
        }
    }
    stale
}

#[test]
fn the_staleness_check_can_fail() {
    let run = "Breakpoint 1 at 0x1: file src/hub/reader.rs, line 63.\n";
    let doc = "Breakpoint 1 at 0x9: file src/hub/reader.rs, line 99.\n\
               hit Breakpoint 1, f () at src/hub/reader.rs:63\n63\tnot the source\n";
    let stale = stale_quotes(doc, run);
    assert_eq!(stale.len(), 2, "{stale:?}");
}

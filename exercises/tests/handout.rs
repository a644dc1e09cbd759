//! The handout (`make handout`, i.e. `exercises/make-handout.sh`): generated
//! into a temporary directory, it must hold the starters where the
//! solutions were and no solution code at all, build on its own, fail its
//! grading on the starters, and pass it once the reference solutions are
//! copied in (so the grading wiring works for a student who gets it right).
//! Not copied into the handout.
//!
//! The builds use `cargo --offline` with their own target directory (kept
//! between runs under `target/tmp`, so after the first run only the small
//! exercises crate recompiles). Set `EXERCISES_SKIP_HANDOUT_BUILD=1` to skip
//! the builds and keep only the content checks.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// One inner `cargo` run may take this long (a cold build takes ~5 s here).
const CARGO_LIMIT: Duration = Duration::from_secs(240);

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the script into a fresh directory and returns its path.
fn generate(name: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let status = Command::new("bash")
        .arg(crate_dir().join("make-handout.sh"))
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .expect("run bash make-handout.sh");
    assert!(status.success(), "make-handout.sh failed: {status}");
    out
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("read a directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.insert(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    found
}

fn step_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read a directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step") && n.ends_with(".rs"))
        .collect();
    names.sort();
    names
}

/// Code lines (trimmed, not comments, long enough to be distinctive) of a
/// file.
fn code_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.len() >= 25 && !l.starts_with("//"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_handout_has_starters_and_no_solution_code() {
    let out = generate("handout-content");
    let src = crate_dir().join("src");
    let solutions = step_files(&src.join("steps"));
    assert_eq!(solutions.len(), 8, "eight steps: {solutions:?}");
    assert_eq!(step_files(&out.join("src/steps")), solutions);

    // The starters are where the solutions were, byte for byte.
    let mut starter_lines = BTreeSet::new();
    for name in &solutions {
        let starter = fs::read_to_string(src.join("starters").join(name)).expect("starter");
        let handed = fs::read_to_string(out.join("src/steps").join(name)).expect("handed out");
        assert!(
            handed == starter,
            "src/steps/{name} in the handout is not the starter"
        );
        starter_lines.extend(code_lines(&starter));
    }

    no_solution_line_is_handed_out(&src, &out, &solutions, starter_lines);

    // No starters module, no repository-only tests.
    for gone in [
        "src/starters",
        "tests/starters_fail.rs",
        "tests/mutants.rs",
        "tests/handout.rs",
    ] {
        assert!(!out.join(gone).exists(), "the handout has {gone}");
    }
    let lib = fs::read_to_string(out.join("src/lib.rs")).expect("lib.rs");
    assert!(
        !lib.contains("starters"),
        "lib.rs still mentions the starters"
    );
    let manifest = fs::read_to_string(out.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("\n[workspace]\n"),
        "the handout is its own workspace"
    );
    assert!(
        !manifest.contains("tcphub ="),
        "the handout depends on tcphub"
    );

    // The archive holds the same files.
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(out.with_extension("tar.gz"))
        .output()
        .expect("run tar -tzf");
    assert!(listing.status.success(), "tar -tzf failed");
    let listed = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|l| !l.ends_with('/'))
        .count();
    assert_eq!(
        listed,
        files(&out).len(),
        "the .tar.gz and the folder differ"
    );
}

/// No line that only a solution has appears anywhere in the handout.
/// (Lines the solutions share with the starters, or with the checks and
/// helpers that are handed out as they are, like `match stream.read(&mut
/// buf) {`, give nothing away.)
fn no_solution_line_is_handed_out(
    src: &Path,
    out: &Path,
    solutions: &[String],
    starter_lines: BTreeSet<String>,
) {
    let mut shared_lines = starter_lines;
    for rel in files(&src.join("checks")) {
        let text = fs::read_to_string(src.join("checks").join(rel)).expect("a check");
        shared_lines.extend(code_lines(&text));
    }
    for rel in [
        "src/shared.rs",
        "src/support.rs",
        "tests/grade.rs",
        "examples/udp_vs_tcp.rs",
        "examples/serve_step7.rs",
    ] {
        let text = fs::read_to_string(crate_dir().join(rel)).expect("a handed-out file");
        shared_lines.extend(code_lines(&text));
    }
    let mut solution_only = Vec::new();
    for name in solutions {
        let text = fs::read_to_string(src.join("steps").join(name)).expect("solution");
        let only: Vec<String> = code_lines(&text)
            .into_iter()
            .filter(|l| !shared_lines.contains(l))
            .collect();
        assert!(
            !only.is_empty(),
            "{name}: the solution has no code of its own?"
        );
        solution_only.extend(only);
    }
    let handed = files(out);
    for rel in &handed {
        let Ok(text) = fs::read_to_string(out.join(rel)) else {
            continue;
        };
        let lines = code_lines(&text);
        for line in &solution_only {
            assert!(
                !lines.contains(line),
                "{} holds solution code: {line:?}",
                rel.display()
            );
        }
    }
}

#[test]
fn the_handout_builds_fails_on_starters_and_passes_with_solutions() {
    if std::env::var_os("EXERCISES_SKIP_HANDOUT_BUILD").is_some() {
        eprintln!("skipped: EXERCISES_SKIP_HANDOUT_BUILD is set");
        return;
    }
    let out = generate("handout-build");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("handout-target");

    let build = cargo(&out, &target, &["build", "--offline"]);
    assert!(
        build.status.success(),
        "the handout does not build:\n{}",
        text(&build)
    );

    // As handed out: the grading runs, and every step fails.
    let pristine = cargo(&out, &target, &["test", "--offline", "--test", "grade"]);
    let report = text(&pristine);
    assert!(!pristine.status.success(), "the starters passed:\n{report}");
    assert!(
        report.contains("0 passed; 8 failed"),
        "expected all 8 steps to fail on the starters:\n{report}"
    );

    // A student who writes the reference answers passes every step.
    for name in step_files(&out.join("src/steps")) {
        let solution = crate_dir().join("src/steps").join(&name);
        fs::copy(&solution, out.join("src/steps").join(&name)).expect("copy a solution in");
    }
    let solved = cargo(&out, &target, &["test", "--offline", "--test", "grade"]);
    let report = text(&solved);
    assert!(
        solved.status.success(),
        "solutions fail in the handout:\n{report}"
    );
    assert!(report.contains("8 passed; 0 failed"), "{report}");
}

/// Runs `cargo <args>` in `dir` with its own target directory, killing it
/// if it runs past [`CARGO_LIMIT`].
fn cargo(dir: &Path, target: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO"))
        .args(args)
        .arg("--target-dir")
        .arg(target)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cargo");
    // Read both pipes while waiting, or a chatty cargo would fill one and
    // block forever.
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        thread::Builder::new()
            .name("handout-cargo-pipe".to_string())
            .spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut bytes);
                }
                bytes
            })
            .expect("spawn a pipe reader")
    };
    let stdout = pipe(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = pipe(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll cargo") {
            break status;
        }
        if started.elapsed() > CARGO_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cargo {args:?} in the handout ran past {CARGO_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

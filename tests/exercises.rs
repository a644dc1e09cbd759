//! The exercises of docs/lesson.md: every check scenario under
//! docs/scenarios/exercises/ runs with `tcphub simulate <file>` against the
//! real hub (in-process in the `tcphub` binary), so the exercises and their
//! answers cannot drift from what the hub does.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// One scenario may take this long; the slowest exercise needs about 1 s.
const LIMIT: Duration = Duration::from_secs(60);

fn exercises() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/scenarios/exercises");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("docs/scenarios/exercises exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "scenario"))
        .collect();
    files.sort();
    files
}

/// Runs `tcphub simulate <file>`; returns (exit code, stdout + stderr).
fn simulate(file: &PathBuf) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcphub"))
        .arg("simulate")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcphub simulate");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    thread::spawn(move || {
        let read = |mut r: Box<dyn std::io::Read>| {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        };
        let err = thread::spawn(move || read(Box::new(stderr)));
        let out = read(Box::new(stdout));
        let _ = tx.send(out + &err.join().unwrap_or_default());
    });
    let Ok(output) = rx.recv_timeout(LIMIT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{} (pid {pid}) ran past {LIMIT:?}", file.display());
    };
    let status = child.wait().expect("wait for tcphub simulate");
    (status.code(), output)
}

#[test]
fn the_lesson_has_its_exercise_scenarios() {
    let names: Vec<String> = exercises()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 3, "expected 3 exercises, found {names:?}");
    let lesson =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/lesson.md"))
            .expect("docs/lesson.md");
    for name in &names {
        assert!(
            lesson.contains(name.as_str()),
            "docs/lesson.md does not point students at {name}"
        );
    }
}

#[test]
fn every_exercise_check_passes_against_the_real_hub() {
    for file in exercises() {
        let (code, output) = simulate(&file);
        assert_eq!(code, Some(0), "{} failed:\n{output}", file.display());
        assert!(
            output.contains("PASSED"),
            "{} did not report PASSED:\n{output}",
            file.display()
        );
    }
}

/// The checks must be able to fail: the same runner, given a wrong answer
/// to exercise 1 (ann still subscribed after reconnecting), reports FAILED.
#[test]
fn a_wrong_answer_fails_the_check() {
    let dir = std::env::temp_dir().join(format!("tcphub-exercise-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = dir.join("wrong.scenario");
    std::fs::write(
        &wrong,
        "# wrong: subscriptions survive a reconnect\n\
         ann: connect\nann: expect WELCOME guest-1\nann: send /sub pickup\nann: expect OK sub pickup\n\
         ann: close\nann: connect\nann: expect WELCOME guest-2\nann: signal back\n\
         bob: await back\nbob: connect\nbob: expect WELCOME guest-3\nbob: send /pub pickup A-7\n\
         ann: expect JOIN guest-3\nann: timeout 500ms\nann: expect EVENT pickup guest-3 A-7\n",
    )
    .unwrap();
    let (code, output) = simulate(&wrong);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("FAILED"), "{output}");
}

/// Every exercise's student copy gives nothing away and cannot pass as
/// handed out: each `expect` is a blank, and the first blank fails.
#[test]
fn student_copies_hide_the_answers_and_fail_until_filled_in() {
    use tcphub::scenario::student::{BLANK, student_copy};
    let dir = std::env::temp_dir().join(format!("tcphub-student-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in exercises() {
        let answer = std::fs::read_to_string(&file).unwrap();
        assert!(
            answer.contains("# answer:"),
            "{} marks no answer",
            file.display()
        );
        let copy = student_copy(&answer);
        assert!(!copy.contains("answer:"), "{}:\n{copy}", file.display());
        let expects = answer
            .lines()
            .filter(|l| l.contains(": expect ") || l.ends_with(": expect-closed"))
            .count();
        let blanks = copy
            .lines()
            .filter(|l| l.ends_with(&format!(": expect {BLANK}")))
            .count();
        assert_eq!(blanks, expects, "{copy}");
        let student = dir.join(file.file_name().unwrap());
        std::fs::write(&student, copy).unwrap();
        let (code, output) = simulate(&student);
        assert_eq!(code, Some(1), "{output}");
        assert!(output.contains(&format!("expected {BLANK}")), "{output}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! The IO-free claim, checked: nothing under `src/proto/` may touch a
//! socket, a thread or a clock, and the folders depend on each other only
//! one way (hub -> proto, client -> proto; proto -> nothing outside it).
//!
//! A text check on the source, not a type check: it reads every line that
//! is code (comments are skipped) and fails on the names below.

use std::fs;
use std::path::{Path, PathBuf};

/// What IO-free code must not name, and why it would not be IO-free.
const FORBIDDEN: &[(&str, &str)] = &[
    (
        "std::net",
        "sockets (addresses included: keep them in the servers)",
    ),
    ("std::thread", "threads"),
    ("Instant", "a clock"),
    ("SystemTime", "a clock"),
    ("std::fs", "files"),
    ("std::process", "processes"),
    ("io::Read", "reading a stream"),
    ("io::Write", "writing a stream"),
    ("TcpStream", "a socket"),
    ("TcpListener", "a socket"),
    ("UdpSocket", "a socket"),
    ("crossbeam", "the hub's channel (a server's business)"),
    ("tokio", "the async runtime"),
    ("sleep(", "waiting"),
];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The code of a file, line by line, with `//` comments removed.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.split("//").next().unwrap_or("")))
}

/// Every forbidden name in `text`, as `line: name (why)`.
fn violations(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, code) in code_lines(text) {
        for (name, why) in FORBIDDEN {
            if code.contains(name) {
                found.push(format!("line {n}: {name} ({why})"));
            }
        }
        if let Some(rest) = code.trim_start().strip_prefix("use crate::")
            && !rest.starts_with("proto::")
        {
            found.push(format!("line {n}: uses crate::{rest} (outside proto)"));
        }
    }
    found
}

#[test]
fn the_core_touches_no_socket_thread_or_clock() {
    let files = rust_files(&src().join("proto"));
    assert!(
        files.len() >= 7,
        "src/proto/ should hold the core: {files:?}"
    );
    let mut report = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("readable source");
        for v in violations(&text) {
            report.push(format!("{}: {v}", file.display()));
        }
    }
    assert!(
        report.is_empty(),
        "src/proto is not IO-free:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_check_catches_what_it_should() {
    // A test of the test: each kind of violation is found, comments are not.
    let bad = "use std::net::TcpStream;\nlet t = Instant::now();\nuse crate::hub::Hub;\n";
    assert_eq!(violations(bad).len(), 4, "{:?}", violations(bad));
    assert!(violations("// std::thread in a comment\nlet x = 1;\n").is_empty());
}

#[test]
fn dependencies_point_one_way() {
    // The client side never reaches into the server, nor the server into
    // the client: both meet only in proto.
    for (folder, must_not) in [("client", "crate::hub"), ("hub", "crate::client")] {
        for file in rust_files(&src().join(folder)) {
            let text = fs::read_to_string(&file).expect("readable source");
            for (n, code) in code_lines(&text) {
                assert!(
                    !code.contains(must_not),
                    "{}:{n} uses {must_not}: {folder}/ must depend on proto only",
                    file.display()
                );
            }
        }
    }
}

//! Imports flow one way inside `src/hub/` and `src/proto/`: no file imports
//! a file that (directly or through others) imports it back.
//!
//! A circle makes a folder unreadable: there is no file to start from, no
//! "upstream". So this test reads every file's code (comments and the
//! `#[cfg(test)]` module skipped), collects the sibling files it names
//! (`crate::hub::x`, `crate::proto::x`, `super::x`), and fails on any cycle,
//! printing it. docs/architecture.md ("Which file imports which") draws the
//! direction this keeps.
//!
//! `mod.rs` is left out as a target: it is the folder's root, which starts
//! every thread (so it imports them all) and holds the `Config` they read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

/// The folder's file names (without `.rs`), `mod` excluded.
fn files(folder: &str) -> BTreeMap<String, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(folder);
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(&dir).expect("a source folder") {
        let path = entry.expect("a directory entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && name != "mod" {
            let text = fs::read_to_string(&path).expect("a readable source file");
            out.insert(name.to_string(), text);
        }
    }
    out
}

/// The code of a file: comment lines dropped, the test module cut off.
fn code(text: &str) -> String {
    let body = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    body.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The siblings a file's code names after each of `prefixes`, including
/// the ones inside a `{a, b::c}` group.
fn named(code: &str, prefixes: &[String], siblings: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for prefix in prefixes {
        for (at, _) in code.match_indices(prefix.as_str()) {
            let rest = &code[at + prefix.len()..];
            let heads: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                inner.split(',').map(str::trim).collect()
            } else {
                vec![rest]
            };
            for head in heads {
                let word: String = head
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if siblings.contains(&word) {
                    found.insert(word);
                }
            }
        }
    }
    found
}

/// Which file of `folder` imports which (self-edges dropped).
fn graph(folder: &str) -> BTreeMap<String, BTreeSet<String>> {
    let all = files(folder);
    let siblings: BTreeSet<String> = all.keys().cloned().collect();
    let prefixes = [format!("crate::{folder}::"), "super::".to_string()];
    all.iter()
        .map(|(name, text)| {
            let mut to = named(&code(text), &prefixes, &siblings);
            to.remove(name);
            (name.clone(), to)
        })
        .collect()
}

/// One cycle, if there is any: depth-first search with a path stack.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn assert_one_way(folder: &str) {
    let graph = graph(folder);
    assert!(
        graph.len() > 3,
        "src/{folder}/ has too few files: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle in src/{folder}/: {}", cycle.join(" -> "));
    }
}

#[test]
fn hub_files_import_one_way() {
    assert_one_way("hub");
}

#[test]
fn proto_files_import_one_way() {
    assert_one_way("proto");
}

/// The checker itself: a made-up circle is found, a chain is not.
#[test]
fn a_circle_is_found_and_a_chain_is_not() {
    let siblings: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let prefixes = ["crate::hub::".to_string(), "super::".to_string()];
    let edges = |code: &str| named(code, &prefixes, &siblings);
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), edges("use crate::hub::b::X;"));
    g.insert("b".to_string(), edges("use super::{c::Y, Z};"));
    g.insert("c".to_string(), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
    g.insert("c".to_string(), edges("let s = crate::hub::a::SIZE;"));
    let cycle = find_cycle(&g).expect("a -> b -> c -> a");
    assert_eq!(cycle, ["a", "b", "c", "a"]);
    assert_eq!(
        code("use crate::hub::a;\n// use crate::hub::b;"),
        "use crate::hub::a;"
    );
}

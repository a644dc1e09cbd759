//! The docs point at things that exist: every relative link in README.md,
//! docs/ and exercises/README.md resolves to a file or folder of the repo,
//! and no page points outside the repository.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The markdown pages a reader meets.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("exercises/README.md")];
    for entry in fs::read_dir(root().join("docs")).expect("docs/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

/// Every `](target)` of a markdown text, outside code blocks, with its line.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_code = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Inline code (`&[u8](size=0)`) is not a link: drop it first.
        let prose: String = line.split('`').step_by(2).collect();
        let mut rest = prose.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            found.push((n + 1, rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    found
}

/// Why `target`, linked from `page`, does not resolve (None if it does).
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.starts_with("http://") || target.starts_with("https://") || target.starts_with('#') {
        return None;
    }
    let file = target.split('#').next().unwrap_or(target);
    let resolved = page.parent().expect("a folder").join(file);
    if !resolved.exists() {
        return Some(format!("{target} does not exist"));
    }
    let inside = resolved
        .canonicalize()
        .map(|p| p.starts_with(root().canonicalize().expect("the repo")))
        .unwrap_or(false);
    (!inside).then(|| format!("{target} is outside the repository"))
}

#[test]
fn every_relative_link_resolves_inside_the_repo() {
    let mut report = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = fs::read_to_string(&page).expect("a page");
        for (line, target) in links(&text) {
            checked += 1;
            if let Some(why) = broken(&page, &target) {
                report.push(format!("{}:{line}: {why}", page.display()));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the scan broken?"
    );
    assert!(report.is_empty(), "broken links:\n{}", report.join("\n"));
}

#[test]
fn the_link_check_catches_a_broken_link() {
    let page = root().join("docs/lesson.md");
    assert!(broken(&page, "protocol.md").is_none());
    assert!(broken(&page, "../src/hub/reader.rs").is_none());
    assert!(broken(&page, "no-such-page.md").is_some());
    assert!(broken(&page, "../../shared/spec/protocol-v1.md").is_some());
    assert_eq!(
        links("see [a](x.md) and [b](../y.rs#L3), `[u8](n)`\n```\n[c](z)\n```"),
        vec![(1, "x.md".to_string()), (1, "../y.rs#L3".to_string())]
    );
}

//! `make net-demo` for real: two linked hubs in two network namespaces
//! joined by a veth pair, a netsplit by pulling the (virtual) cable, and a
//! netjoin when it is back. Needs root (and `ip`); otherwise the test says
//! why it skips and passes.

use std::process::Command;

/// Why this machine cannot run the demo, if it cannot.
fn cannot_run() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces need root)".into());
    }
    let probe = format!("tcphub-probe-{}", std::process::id());
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Ok(out) if out.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).status();
            None
        }
        Ok(out) => Some(format!(
            "cannot create a network namespace: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("no ip command: {e}")),
    }
}

#[test]
fn two_namespaces_link_split_and_join_again() {
    if let Some(why) = cannot_run() {
        println!("skipped: {why}");
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/net-demo.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("TCPHUB_BIN", env!("CARGO_BIN_EXE_tcphub"))
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = |marker: &str| text.split(marker).nth(1).unwrap_or("").to_string();
    let before_cut = text.split("pulling the cable").next().unwrap_or("");
    assert!(before_cut.contains("bob@b sees: LIST ann@a bob"), "{text}");
    assert!(
        before_cut.contains("bob@b sees: DM ann@a are you there?"),
        "{text}"
    );
    let split = after("pulling the cable");
    let split = split.split("putting the cable back").next().unwrap_or("");
    assert!(split.contains("ann@a sees: LEAVE bob@b"), "{text}");
    assert!(split.contains("bob@b sees: LEAVE ann@a"), "{text}");
    let join = after("putting the cable back");
    assert!(join.contains("ann@a sees: JOIN bob@b"), "{text}");
    assert!(join.contains("ann@a sees: LIST ann bob@b"), "{text}");
    // It cleaned up after itself.
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let pid_free = String::from_utf8_lossy(&left.stdout);
    assert!(
        !pid_free
            .lines()
            .any(|l| l.starts_with("tcphub-a-") || l.starts_with("tcphub-b-")),
        "namespaces left behind: {pid_free}"
    );
}

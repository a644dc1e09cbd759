//! The scenarios shipped inside the binary, so `tcphub simulate caps` works
//! with nothing but the binary. Each is also a file under `docs/scenarios/`
//! (the very file embedded here, with `include_str!`), to read and to copy
//! as a starting point for your own.

/// Built-in scenarios: name and text, in the order `--list` shows them.
pub const BUILTINS: &[(&str, &str)] = &[
    ("chat", include_str!("../../docs/scenarios/chat.scenario")),
    ("caps", include_str!("../../docs/scenarios/caps.scenario")),
    (
        "slow-consumer",
        include_str!("../../docs/scenarios/slow-consumer.scenario"),
    ),
    (
        "caps-linked",
        include_str!("../../docs/scenarios/caps-linked.scenario"),
    ),
    (
        "netsplit",
        include_str!("../../docs/scenarios/netsplit.scenario"),
    ),
];

/// The text of the built-in scenario called `name`.
pub fn text(name: &str) -> Option<&'static str> {
    BUILTINS
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, text)| *text)
}

/// The names of every built-in scenario.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(name, _)| *name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_has_a_title() {
        for (name, text) in BUILTINS {
            let scenario = match crate::scenario::parse::parse(name, text) {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            };
            assert!(scenario.title.is_some(), "{name} has no title comment");
            assert!(scenario.actors.len() >= 2, "{name}");
        }
        assert_eq!(
            names(),
            ["chat", "caps", "slow-consumer", "caps-linked", "netsplit"]
        );
        assert!(text("nope").is_none());
    }
}

//! Server lines rendered for people: what `tcphub client --pretty` prints.
//!
//! By default the client prints lines exactly as they are on the wire, so
//! students see the protocol. `--pretty` turns them into something closer to
//! a chat program: `<bob> hi` instead of `MSG bob hi`. The line is first
//! understood with [`ServerLine::parse`] (the one place that knows the server
//! line format), then worded here. No IO: a string in, a string out.

use crate::proto::server_line::ServerLine;

/// Renders one server line (without its `\n`) for a person to read.
///
/// Every kind of protocol v1 line has a rendering; a line that is not a v1
/// server line (another server, a future version) is shown as it came, after
/// `? `, so nothing is ever hidden.
pub fn render(line: &str) -> String {
    let Some(parsed) = ServerLine::parse(line) else {
        return format!("? {line}");
    };
    match parsed {
        ServerLine::Welcome { nick } => format!("* connected; you are {nick}"),
        ServerLine::Join { nick } => format!("* {nick} joined"),
        ServerLine::Leave { nick } => format!("* {nick} left"),
        ServerLine::Msg { from, text } => format!("<{from}> {text}"),
        ServerLine::Dm { from, text } => format!("[dm] <{from}> {text}"),
        ServerLine::Event {
            topic,
            from,
            payload,
        } => format!("[{topic}] {from}: {payload}"),
        ServerLine::Nick { old, new } => format!("* {old} is now {new}"),
        ServerLine::List { nicks } => {
            format!("* online ({}): {}", nicks.len(), nicks.join(", "))
        }
        ServerLine::Ok { command, detail } => match command {
            "nick" => format!("* you are now {detail}"),
            "sub" => format!("* subscribed to {detail}"),
            "unsub" => format!("* unsubscribed from {detail}"),
            "dm" => format!("* dm sent to {detail}"),
            _ if detail.is_empty() => format!("* ok: {command}"),
            _ => format!("* ok: {command} {detail}"),
        },
        ServerLine::Pong => "* pong".to_string(),
        ServerLine::Bye => "* bye".to_string(),
        ServerLine::Err { code, text } => format!("! {text} ({code})"),
        ServerLine::Help { text } => format!("  {text}"),
        ServerLine::Notice { text } => format!("* notice: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn every_server_line_kind_has_a_rendering() {
        let cases = [
            ("WELCOME guest-1", "* connected; you are guest-1"),
            ("JOIN bob", "* bob joined"),
            ("LEAVE bob", "* bob left"),
            (
                "NOTICE this session is recorded",
                "* notice: this session is recorded",
            ),
            ("MSG bob hi there", "<bob> hi there"),
            ("MSG bob  spaced ", "<bob>  spaced "),
            ("DM bob psst", "[dm] <bob> psst"),
            (
                "EVENT pickup vendor {\"orderId\":\"a-1\"}",
                "[pickup] vendor: {\"orderId\":\"a-1\"}",
            ),
            ("EVENT t bob ", "[t] bob: "),
            ("NICK guest-2 bob", "* guest-2 is now bob"),
            ("LIST ann bob", "* online (2): ann, bob"),
            ("OK nick ann", "* you are now ann"),
            ("OK sub pickup", "* subscribed to pickup"),
            ("OK unsub *", "* unsubscribed from *"),
            ("OK dm bob", "* dm sent to bob"),
            ("OK later x", "* ok: later x"),
            ("OK later", "* ok: later"),
            ("PONG", "* pong"),
            ("BYE", "* bye"),
            (
                "ERR nick-taken bob is already taken",
                "! bob is already taken (nick-taken)",
            ),
            ("HELP /ping  PONG", "  /ping  PONG"),
        ];
        for (wire, shown) in cases {
            assert_eq!(render(wire), shown, "{wire}");
        }
    }

    #[test]
    fn unknown_lines_are_shown_not_hidden() {
        assert_eq!(render("HELLO there"), "? HELLO there");
        assert_eq!(render(""), "? ");
    }
}

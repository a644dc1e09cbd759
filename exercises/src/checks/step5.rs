//! Step 5 check: the chat commands, as a router with no sockets.

use std::collections::BTreeMap;

use crate::shared::{ClientId, Out, Router};

/// What a router call produced, per recipient, in the order each recipient
/// gets it. The order *between* recipients does not matter to anyone, so it
/// is not checked. `ERR` lines keep only their code (the text after it is
/// for people), and a close shows as `<close>`.
pub type Heard = BTreeMap<ClientId, Vec<String>>;

/// Groups a router's output by recipient (see [`Heard`]).
pub fn heard(outs: Vec<Out>) -> Heard {
    let mut by: Heard = BTreeMap::new();
    for out in outs {
        let (to, text) = match out {
            Out::Line(to, line) if line.starts_with("ERR ") => {
                let code = line.split(' ').nth(1).unwrap_or("").to_string();
                (to, format!("ERR {code}"))
            }
            Out::Line(to, line) => (to, line),
            Out::Close(to) => (to, "<close>".to_string()),
        };
        by.entry(to).or_default().push(text);
    }
    by
}

/// Builds the expected [`Heard`]: `want(&[(1, &["PONG"])])`.
pub fn want(pairs: &[(ClientId, &[&str])]) -> Heard {
    pairs
        .iter()
        .map(|(id, lines)| (*id, lines.iter().map(|l| l.to_string()).collect()))
        .collect()
}

/// Sends `line` from `id` and checks who hears what.
pub fn says<R: Router>(r: &mut R, id: ClientId, line: &str, expect: &[(ClientId, &[&str])]) {
    let got = heard(r.handle(id, line));
    assert_eq!(got, want(expect), "client {id} sent {line:?}");
}

/// Grades a chat router. `new()` makes a fresh, empty one.
///
/// Plays a whole session against it: three clients connect (`WELCOME`,
/// `JOIN`), chat (`MSG`), `/ping`, rename (`/nick`, `NICK`, every refusal),
/// `/list`, `/dm` (every refusal), wrong commands, `/quit` (`BYE`, close,
/// `LEAVE`), a hang-up, and guest numbers that are never reused.
pub fn check<R: Router>(new: fn() -> R) {
    let mut r = new();
    connecting(&mut r);
    chatting(&mut r);
    renaming(&mut r);
    listing_and_dms(&mut r);
    wrong_lines(&mut r);
    leaving(&mut r);
}

fn connecting<R: Router>(r: &mut R) {
    let c = |r: &mut R, id| heard(r.connect(id));
    assert_eq!(c(r, 1), want(&[(1, &["WELCOME guest-1"])]));
    assert_eq!(
        c(r, 2),
        want(&[(1, &["JOIN guest-2"]), (2, &["WELCOME guest-2"])])
    );
    assert_eq!(
        c(r, 3),
        want(&[
            (1, &["JOIN guest-3"]),
            (2, &["JOIN guest-3"]),
            (3, &["WELCOME guest-3"])
        ])
    );
    assert_eq!(r.nick(2), Some("guest-2"));
}

fn chatting<R: Router>(r: &mut R) {
    says(
        r,
        1,
        "hello all",
        &[
            (2, &["MSG guest-1 hello all"]),
            (3, &["MSG guest-1 hello all"]),
        ],
    );
    says(r, 1, "", &[]);
    says(r, 2, "/ping", &[(2, &["PONG"])]);
}

fn renaming<R: Router>(r: &mut R) {
    says(
        r,
        1,
        "/nick ann",
        &[
            (1, &["OK nick ann"]),
            (2, &["NICK guest-1 ann"]),
            (3, &["NICK guest-1 ann"]),
        ],
    );
    assert_eq!(r.nick(1), Some("ann"));
    says(r, 1, "/nick ann", &[(1, &["OK nick ann"])]);
    says(r, 2, "/nick ann", &[(2, &["ERR nick-taken"])]);
    says(r, 2, "/nick", &[(2, &["ERR usage"])]);
    says(r, 2, "/nick ", &[(2, &["ERR usage"])]);
    says(r, 2, "/nick a.b", &[(2, &["ERR bad-nick"])]);
    says(
        r,
        2,
        &format!("/nick {}", "b".repeat(33)),
        &[(2, &["ERR bad-nick"])],
    );
    let long = "B".repeat(32);
    let ok = format!("OK nick {long}");
    let told = format!("NICK guest-2 {long}");
    says(
        r,
        2,
        &format!("/nick {long}"),
        &[
            (1, &[told.as_str()]),
            (2, &[ok.as_str()]),
            (3, &[told.as_str()]),
        ],
    );
    let told = format!("NICK {long} bob_2-x");
    says(
        r,
        2,
        "/nick bob_2-x",
        &[
            (1, &[told.as_str()]),
            (2, &["OK nick bob_2-x"]),
            (3, &[told.as_str()]),
        ],
    );
}

fn listing_and_dms<R: Router>(r: &mut R) {
    // Sorted by bytes: "ann" < "bob_2-x" < "guest-3".
    says(r, 3, "/list", &[(3, &["LIST ann bob_2-x guest-3"])]);
    says(
        r,
        3,
        "/dm ann  hi there ",
        &[(1, &["DM guest-3  hi there "]), (3, &["OK dm ann"])],
    );
    says(
        r,
        3,
        "/dm guest-3 me",
        &[(3, &["DM guest-3 me", "OK dm guest-3"])],
    );
    says(r, 3, "/dm", &[(3, &["ERR usage"])]);
    says(r, 3, "/dm ann", &[(3, &["ERR usage"])]);
    says(r, 3, "/dm ann ", &[(3, &["ERR usage"])]);
    says(r, 3, "/dm b.b hi", &[(3, &["ERR bad-nick"])]);
    says(r, 3, "/dm nobody hi", &[(3, &["ERR no-such-nick"])]);
}

fn wrong_lines<R: Router>(r: &mut R) {
    for line in ["/NICK x", "/nicks", "/", "//x"] {
        says(r, 3, line, &[(3, &["ERR unknown-command"])]);
    }
    for line in ["/list now", "/ping x", "/quit now"] {
        says(r, 3, line, &[(3, &["ERR usage"])]);
    }
    // Not starting with '/': chat, even if it looks like a command.
    says(
        r,
        3,
        " /nick x",
        &[
            (1, &["MSG guest-3  /nick x"]),
            (2, &["MSG guest-3  /nick x"]),
        ],
    );
}

fn leaving<R: Router>(r: &mut R) {
    says(
        r,
        3,
        "/quit",
        &[
            (1, &["LEAVE guest-3"]),
            (2, &["LEAVE guest-3"]),
            (3, &["BYE", "<close>"]),
        ],
    );
    assert_eq!(r.nick(3), None, "after /quit the client is forgotten");
    says(r, 3, "hello?", &[]);
    assert_eq!(heard(r.disconnect(3)), want(&[]), "already gone: nothing");

    assert_eq!(heard(r.disconnect(2)), want(&[(1, &["LEAVE bob_2-x"])]));
    assert_eq!(r.nick(2), None);
    // Guest numbers are never reused: the next one is 4, not 2 or 3.
    assert_eq!(
        heard(r.connect(4)),
        want(&[(1, &["JOIN guest-4"]), (4, &["WELCOME guest-4"])])
    );
    // A number whose name is taken is skipped.
    says(
        r,
        1,
        "/nick guest-5",
        &[(1, &["OK nick guest-5"]), (4, &["NICK ann guest-5"])],
    );
    assert_eq!(
        heard(r.connect(5)),
        want(&[
            (1, &["JOIN guest-6"]),
            (4, &["JOIN guest-6"]),
            (5, &["WELCOME guest-6"])
        ])
    );
    // A nick is free again once its owner left.
    says(
        r,
        5,
        "/nick bob_2-x",
        &[
            (1, &["NICK guest-6 bob_2-x"]),
            (4, &["NICK guest-6 bob_2-x"]),
            (5, &["OK nick bob_2-x"]),
        ],
    );
}

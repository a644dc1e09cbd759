//! The points protocol v1 leaves open, as tcphub answers them
//! (docs/protocol.md marks each *Choice*). A server that answers otherwise
//! still keeps the contract: these checks are reported as `NOTE`, never
//! fail a run, and count only with `--strict`. Each tests one choice, so a
//! `NOTE` names the point where a server differs.

use std::thread;
use std::time::Duration;

use super::{Check, CheckResult, Ctx, Hint, Kind, NOTHING, Wants, ann_and_bob};

/// A choice check that needs nothing but `clients` connections.
const fn choice(
    name: &'static str,
    about: &'static str,
    clients: usize,
    run: fn(&mut Ctx) -> CheckResult,
) -> Check {
    Check {
        name,
        about,
        wants: Wants { clients, ..NOTHING },
        kind: Kind::Choice,
        run,
    }
}

/// `/dm bob` and `/dm bob ` (no text) are `ERR usage`.
pub const DM_NEEDS_TEXT: Check = choice(
    "dm-needs-text",
    "/dm bob and /dm bob (a space, empty text) are ERR usage",
    2,
    |ctx| {
        let (mut a, mut b) = ann_and_bob(ctx)?;
        for bad in ["/dm bob", "/dm bob "] {
            a.refused(bad, "usage")
                .hint("tcphub refuses a /dm without text: ERR usage")?;
        }
        b.sync()
    },
);

/// The DM text starts right after the one space after the nick.
pub const DM_TEXT_AFTER_ONE_SPACE: Check = choice(
    "dm-text-after-one-space",
    "/dm bob  hi : the text is everything after the first space after the nick",
    2,
    |ctx| {
        let (mut a, mut b) = ann_and_bob(ctx)?;
        a.call("/dm bob  psst, bob ", "OK dm bob")?;
        b.expect("DM ann  psst, bob ")
            .hint("tcphub keeps the DM text byte for byte, leading spaces included")
    },
);

/// A `/dm` to yourself is delivered.
pub const DM_TO_SELF: Check = choice(
    "dm-to-self",
    "/dm to yourself is allowed: you get the DM, then OK dm",
    1,
    |ctx| {
        let mut a = ctx.named("ann")?;
        a.send("/dm ann note to self")?;
        a.expect("DM ann note to self")
            .hint("tcphub delivers a /dm to yourself: the DM, then OK dm")?;
        a.expect("OK dm ann")
    },
);

/// `/quit now` is `ERR usage` and does not quit.
pub const QUIT_TAKES_NO_ARGUMENTS: Check = choice(
    "quit-takes-no-arguments",
    "/quit now is ERR usage and does not quit",
    1,
    |ctx| {
        let mut a = ctx.join("a")?;
        a.refused("/quit now", "usage")
            .hint("tcphub: /quit takes no arguments; \"/quit now\" is ERR usage")?;
        a.sync()
    },
);

/// Commands are lower-case and exact; `/` and `//x` are commands too.
pub const COMMANDS_EXACT: Check = choice(
    "commands-exact",
    "/NICK, /Ping, / and //x are ERR unknown-command (never chat, never case-folded)",
    1,
    |ctx| {
        let mut a = ctx.join("a")?;
        for bad in ["/NICK a", "/Ping", "/", "//x"] {
            a.refused(bad, "unknown-command").hint(
                "tcphub: commands are lower-case and exact, and a line starting / is never chat",
            )?;
        }
        a.sync()
    },
);

/// A space inside a name or topic makes it a bad name, not extra words.
pub const SPACES_IN_NAMES: Check = choice(
    "spaces-in-names",
    "/nick al ice is ERR bad-nick and /sub a b is ERR bad-topic (the argument is the rest of the line)",
    1,
    |ctx| {
        let mut a = ctx.join("a")?;
        a.refused("/nick al ice", "bad-nick")
            .hint("tcphub takes everything after the command's space as the one argument")?;
        a.refused("/sub a b", "bad-topic")
            .hint("tcphub takes everything after the command's space as the one argument")
    },
);

/// `/pub *` is `ERR bad-topic`: `*` is for subscribing only.
pub const PUB_STAR: Check = choice(
    "pub-star",
    "/pub * and /pub * x are ERR bad-topic (* is for subscribing only)",
    1,
    |ctx| {
        let mut a = ctx.join("a")?;
        for bad in ["/pub *", "/pub * x"] {
            a.refused(bad, "bad-topic")
                .hint("tcphub refuses to publish on *: ERR bad-topic")?;
        }
        a.sync()
    },
);

/// Renaming to your own name: `OK nick`, nothing broadcast.
pub const NICK_SAME_NAME: Check = choice(
    "nick-same-name",
    "/nick to your current name is OK nick, with nothing broadcast",
    2,
    |ctx| {
        let (mut a, mut b) = ann_and_bob(ctx)?;
        a.call("/nick ann", "OK nick ann")
            .hint("tcphub: renaming to your current name is OK nick")?;
        b.sync()
            .hint("tcphub broadcasts nothing for a rename to the same name")
    },
);

/// Subscribed to a topic and to `*`: one `EVENT` per publication.
pub const SUB_OVERLAP_ONCE: Check = choice(
    "sub-overlap-once",
    "subscribed to a topic and to *, or to a topic twice: one EVENT per /pub",
    2,
    |ctx| {
        let (mut a, mut b) = ann_and_bob(ctx)?;
        for sub in ["/sub t", "/sub t", "/sub *"] {
            b.call(sub, &format!("OK sub {}", &sub[5..]))?;
        }
        a.send("/pub t x")?;
        b.expect("EVENT t ann x")?;
        b.sync()
            .hint("tcphub sends one EVENT per publication however a client is subscribed")
    },
);

/// `/pub t` gives `EVENT t bob ` (trailing space).
pub const EVENT_EMPTY_PAYLOAD: Check = choice(
    "event-empty-payload",
    "/pub t (no payload) gives \"EVENT t <from> \", keeping the separating space",
    2,
    |ctx| {
        let (mut a, mut b) = ann_and_bob(ctx)?;
        b.call("/sub t", "OK sub t")?;
        a.send("/pub t")?;
        b.expect("EVENT t ann ")
            .hint("tcphub keeps EVENT's separating space before an empty payload")
    },
);

/// `ERR line-too-long` is sent before the line's `\n` arrives.
pub const TOO_LONG_AT_ONCE: Check = Check {
    name: "too-long-at-once",
    about: "ERR line-too-long comes as soon as a line is too long, before its \\n",
    wants: Wants {
        max_line: Some(16),
        ..NOTHING
    },
    kind: Kind::Choice,
    run: too_long_at_once,
};

fn too_long_at_once(ctx: &mut Ctx) -> CheckResult {
    let max = ctx.limits.max_line;
    let mut a = ctx.join("a")?;
    let piece = "z".repeat(max / 20 + 1);
    for _ in 0..20 {
        a.send_raw(piece.as_bytes())?;
        thread::sleep(Duration::from_millis(1));
    }
    a.expect_err("line-too-long")
        .map_err(|f| f.with_context(&format!("after {} bytes with no \\n yet", piece.len() * 20)))
        .hint("tcphub says ERR line-too-long before the \\n, so a peer sending gigabytes is told at once")?;
    a.send_raw(b"\n")?;
    a.sync()
}

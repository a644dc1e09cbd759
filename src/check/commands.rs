//! Commands: chat, `/nick`, `/list`, `/dm`, `/sub` `/unsub` `/pub`,
//! `/ping`, `/help`, and the errors for lines that are refused.

use super::{
    Check, CheckFailure, CheckResult, Ctx, Hint, Kind, NOTHING, Wants, ann_and_bob, escape,
};

/// Chat reaches everyone else, byte for byte, and not the sender.
pub const CHAT_VERBATIM: Check = Check {
    name: "chat-verbatim",
    about: "a chat line reaches everyone else as MSG, byte for byte (spaces, NUL, tab), not the sender",
    wants: Wants {
        clients: 3,
        ..NOTHING
    },
    kind: Kind::Required,
    run: chat_verbatim,
};

fn chat_verbatim(ctx: &mut Ctx) -> CheckResult {
    let (mut a, mut b) = ann_and_bob(ctx)?;
    let mut c = ctx.named("cat")?;
    for p in [&mut a, &mut b] {
        p.expect(&format!("JOIN {}", c.guest))?;
        p.expect(&format!("NICK {} cat", c.guest))?;
    }
    a.send("  hello,   world  ")?;
    let verbatim = "the text is relayed exactly as sent: do not trim() it or collapse its spaces";
    b.expect("MSG ann   hello,   world  ").hint(verbatim)?;
    c.expect("MSG ann   hello,   world  ").hint(verbatim)?;
    a.sync()
        .hint("a chat line is not echoed back to its sender")?;
    a.send_raw(b"nul\0byte\ttab\n")?;
    b.expect("MSG ann nul\0byte\ttab")
        .hint("NUL, tab and other control characters are valid UTF-8: relay them like any text")
}

/// `/nick`: the name rules, `nick-taken`, renaming to yourself.
pub const NICK_RULES: Check = Check {
    name: "nick-rules",
    about: "/nick takes 1-32 of A-Z a-z 0-9 _ -; OK nick, NICK to others; nick-taken, bad-nick",
    wants: NOTHING,
    kind: Kind::Required,
    run: nick_rules,
};

fn nick_rules(ctx: &mut Ctx) -> CheckResult {
    let mut a = ctx.join("a")?;
    let mut b = ctx.join("b")?;
    a.expect(&format!("JOIN {}", b.guest))?;
    a.call("/nick alice", "OK nick alice")?;
    b.expect(&format!("NICK {} alice", a.guest))
        .hint("a rename is announced to everyone else as NICK <old> <new>")?;
    b.refused("/nick alice", "nick-taken")
        .hint("a name someone else has is refused with ERR nick-taken")?;
    let long = format!("/nick {}", "x".repeat(33));
    for bad in ["/nick al.ice", "/nick é", &long] {
        b.refused(bad, "bad-nick")
            .hint("a nick is 1 to 32 of A-Z a-z 0-9 _ - ; anything else gets ERR bad-nick")?;
    }
    let longest = "x".repeat(32);
    b.call(&format!("/nick {longest}"), &format!("OK nick {longest}"))
        .hint("32 characters is the longest nick, and allowed")?;
    a.expect(&format!("NICK {} {longest}", b.guest))?;
    a.sync().hint("nothing is broadcast for a refused rename")
}

/// `/list`: every nick, sorted by bytes, the asker included.
pub const LIST_SORTED: Check = Check {
    name: "list-sorted",
    about: "/list gives LIST of every connected nick, sorted by bytes, the asker included",
    wants: Wants {
        clients: 3,
        ..NOTHING
    },
    kind: Kind::Required,
    run: list_sorted,
};

fn list_sorted(ctx: &mut Ctx) -> CheckResult {
    let hint = "LIST names every connected client, the asker too, sorted by their bytes \
        (upper case before _ before lower case), separated by single spaces";
    let mut z = ctx.named("zed")?;
    let mut big = ctx.named("Zed")?;
    let mut u = ctx.named("_u")?;
    u.call("/list", "LIST Zed _u zed").hint(hint)?;
    z.settle()?;
    big.settle()?;
    z.call("/list", "LIST Zed _u zed").hint(hint)
}

/// `/dm`: one recipient, text kept byte for byte, and its errors.
pub const DM: Check = Check {
    name: "dm",
    about: "/dm nick text: DM to that client, OK dm to you; no-such-nick, usage",
    wants: Wants {
        clients: 3,
        ..NOTHING
    },
    kind: Kind::Required,
    run: dm,
};

fn dm(ctx: &mut Ctx) -> CheckResult {
    let mut a = ctx.named("ann")?;
    let mut b = ctx.named("bob")?;
    let mut c = ctx.named("cat")?;
    a.settle()?;
    b.settle()?;
    a.call("/dm bob psst,  bob", "OK dm bob")
        .hint("/dm <nick> <text> answers OK dm <nick> to the sender")?;
    b.expect("DM ann psst,  bob")
        .hint("the DM text is the rest of the line after the nick, kept byte for byte")?;
    a.refused("/dm nobody hi", "no-such-nick")
        .hint("a /dm to a well-formed nick nobody has is ERR no-such-nick")?;
    a.refused("/dm", "usage")
        .hint("/dm without a nick is ERR usage")?;
    c.sync().hint("a DM goes to its one recipient only")
}

/// `/sub`, `/unsub`, `/pub`: who gets an `EVENT`, and how often.
pub const PUBSUB: Check = Check {
    name: "pubsub",
    about: "/pub reaches each subscriber of the topic or of *, never the publisher; /unsub",
    wants: Wants {
        clients: 5,
        ..NOTHING
    },
    kind: Kind::Required,
    run: pubsub,
};

fn pubsub(ctx: &mut Ctx) -> CheckResult {
    let mut vendor = ctx.named("vendor")?;
    let mut driver = ctx.named("driver")?;
    let mut logger = ctx.named("logger")?;
    let mut both = ctx.named("both")?;
    let mut idle = ctx.named("idle")?;
    for p in [&mut vendor, &mut driver, &mut logger, &mut both, &mut idle] {
        p.settle()?;
    }
    driver
        .call("/sub pickup", "OK sub pickup")
        .hint("/sub <topic> answers OK sub <topic> (docs/protocol.md, \"What a client sends\")")?;
    logger.call("/sub *", "OK sub *")?;
    both.call("/sub pickup", "OK sub pickup")?;
    vendor.call("/sub pickup", "OK sub pickup")?;

    vendor.send("/pub pickup {\"orderId\": 7,  \"x\": \" y \"} ")?;
    let event = "EVENT pickup vendor {\"orderId\": 7,  \"x\": \" y \"} ";
    let payload = "each subscriber gets EVENT <topic> <from> <payload>, the payload byte for byte";
    driver.expect(event).hint(payload)?;
    logger
        .expect(event)
        .hint("a subscriber of * gets every topic's events")?;
    both.expect(event)?;
    vendor
        .sync()
        .hint("an event never goes back to its publisher, even if subscribed")?;
    both.sync()?;

    driver.send("/pub delivered now")?;
    logger.expect("EVENT delivered driver now")?;
    vendor
        .sync()
        .hint("only subscribers of the topic (or of *) get its events")?;
    driver.sync()?;

    driver.call("/unsub pickup", "OK unsub pickup")?;
    idle.call("/unsub pickup", "OK unsub pickup")
        .hint("/unsub answers OK unsub <topic> also when you were not subscribed")?;
    vendor.send("/pub pickup again")?;
    logger.expect("EVENT pickup vendor again")?;
    both.expect("EVENT pickup vendor again")?;
    driver
        .sync()
        .hint("after /unsub, no more events on that topic")?;
    idle.sync()
}

/// Topic names: what `bad-topic` refuses, and the longest allowed.
pub const TOPIC_RULES: Check = Check {
    name: "topic-rules",
    about: "topics are 1-64 of A-Z a-z 0-9 _ - . (or * to /sub); others are ERR bad-topic",
    wants: Wants {
        clients: 1,
        ..NOTHING
    },
    kind: Kind::Required,
    run: topic_rules,
};

fn topic_rules(ctx: &mut Ctx) -> CheckResult {
    let mut a = ctx.join("a")?;
    let hint = "a topic is 1 to 64 of A-Z a-z 0-9 _ - . ; * may be subscribed to but not \
        published on; anything else gets ERR bad-topic";
    let long = format!("/sub {}", "t".repeat(65));
    for bad in ["/sub a/b", "/pub a/b x", &long] {
        a.refused(bad, "bad-topic").hint(hint)?;
    }
    let longest = "t".repeat(64);
    a.call(&format!("/sub {longest}"), &format!("OK sub {longest}"))
        .hint("64 characters is the longest topic, and allowed")?;
    a.call("/unsub *", "OK unsub *")
}

/// `/ping`, `/help`, and the errors for unknown or malformed commands.
pub const PING_HELP_ERRORS: Check = Check {
    name: "ping-help-errors",
    about: "/ping gets PONG, /help HELP lines; unknown commands and missing arguments are ERR",
    wants: Wants {
        clients: 1,
        ..NOTHING
    },
    kind: Kind::Required,
    run: ping_help_errors,
};

fn ping_help_errors(ctx: &mut Ctx) -> CheckResult {
    let mut a = ctx.join("a")?;
    a.call("/ping", "PONG")?;
    a.send("/help")?;
    let first = a
        .expect_prefix("HELP ")
        .hint("/help answers with HELP lines, one per command")?;
    if first.len() <= "HELP ".len() {
        return Err(CheckFailure::new(
            "a",
            "a HELP line with text",
            escape(first.as_bytes()),
        ));
    }
    a.send("/ping")?;
    loop {
        let line = a.recv("more HELP lines, then PONG")?;
        if line == "PONG" {
            break;
        }
        if !line.starts_with("HELP ") {
            return Err(CheckFailure::new(
                "a",
                "HELP lines, then \"PONG\"",
                escape(line.as_bytes()),
            ));
        }
    }
    let unknown = "a line starting with / is a command: commands are lower-case and exact, and \
        an unknown one gets ERR unknown-command (it is never chat)";
    a.refused("/nope", "unknown-command").hint(unknown)?;
    for bad in ["/nick", "/sub", "/unsub", "/pub", "/dm"] {
        a.refused(bad, "usage")
            .hint("a command missing its argument gets ERR usage")?;
    }
    a.sync()
}

//! Lines: endings, how bytes are cut into segments, lines too long, bytes
//! that are not UTF-8, and garbage.

use std::thread;
use std::time::Duration;

use super::{
    Check, CheckResult, Ctx, Hint, Kind, NOTHING, ONE_DATA_EVENT_HINT, Wants, ann_and_bob,
};

/// `\n` and `\r\n`, empty lines, many lines per segment, one byte per segment.
pub const LINE_ENDINGS_AND_SPLITS: Check = Check {
    name: "line-endings-and-splits",
    about: "\\n and \\r\\n end lines, empty lines are ignored, segment boundaries do not matter",
    wants: NOTHING,
    kind: Kind::Required,
    run: line_endings_and_splits,
};

fn line_endings_and_splits(ctx: &mut Ctx) -> CheckResult {
    let (mut a, mut b) = ann_and_bob(ctx)?;
    a.send_raw(b"one\ntwo\n")?;
    let two = "after \"one\\ntwo\\n\" in one segment";
    b.expect("MSG ann one")
        .map_err(|f| f.with_context(two))
        .hint(ONE_DATA_EVENT_HINT)?;
    b.expect("MSG ann two")
        .map_err(|f| f.with_context(two))
        .hint(ONE_DATA_EVENT_HINT)?;
    a.send_raw(b"crlf\r\n\n\r\nlf\n")?;
    let crlf = "a \\r right before the \\n is dropped (telnet and nc -C send \\r\\n), and an \
        empty line, also a lone \\r\\n, is ignored: no MSG for it";
    b.expect("MSG ann crlf").hint(crlf)?;
    b.expect("MSG ann lf").hint(crlf)?;
    a.send_raw(b"a\rb\r\r\n")?;
    b.expect("MSG ann a\rb\r")
        .hint("only the one \\r right before the \\n is dropped; any other \\r is text")?;
    let many: String = (0..50).map(|i| format!("m{i}\n")).collect();
    a.send_raw(many.as_bytes())?;
    for i in 0..50 {
        b.expect(&format!("MSG ann m{i}"))
            .map_err(|f| f.with_context("after 50 lines in one segment"))
            .hint(ONE_DATA_EVENT_HINT)?;
    }
    for byte in b"/pub t x\r\nfrag\n" {
        a.send_raw(&[*byte])?;
        thread::sleep(Duration::from_millis(2));
    }
    b.expect("MSG ann frag")
        .map_err(|f| f.with_context("after \"/pub t x\\r\\nfrag\\n\" sent one byte per segment"))
        .hint(
            "a line that arrives in pieces is still one line: keep the bytes after the last \\n \
             and prepend them to the next chunk; handle a line only once its \\n has come",
        )?;
    a.sync()
}

/// Lines over `--max-line` get `ERR line-too-long`; the connection stays.
pub const LINE_TOO_LONG: Check = Check {
    name: "line-too-long",
    about: "a line over --max-line bytes gets ERR line-too-long, is dropped, the connection stays",
    wants: Wants {
        max_line: Some(16),
        ..NOTHING
    },
    kind: Kind::Required,
    run: line_too_long,
};

fn line_too_long(ctx: &mut Ctx) -> CheckResult {
    let max = ctx.limits.max_line;
    let (mut a, mut b) = ann_and_bob(ctx)?;
    let exact = "x".repeat(max);
    let limit =
        format!("a line of exactly --max-line ({max}) bytes is fine; the \\r\\n does not count");
    for ending in ["\n", "\r\n"] {
        a.send_raw(format!("{exact}{ending}").as_bytes())?;
        b.expect(&format!("MSG ann {exact}")).hint(&limit)?;
    }
    a.send_raw(format!("{exact}y\nafter\n").as_bytes())?;
    let over = format!(
        "a line of more than --max-line ({max}) bytes gets ERR line-too-long, is thrown away up \
         to its \\n, and the connection carries on"
    );
    a.expect_err("line-too-long")
        .map_err(|f| f.with_context(&format!("after a line of {} bytes", max + 1)))
        .hint(&over)?;
    b.expect("MSG ann after").hint(&over)?;
    a.send_raw(b"ok\n")?;
    b.expect("MSG ann ok").hint(&over)?;
    a.sync()?;
    b.sync()
}

/// Lines that are not UTF-8 get `ERR bad-utf8`; the connection stays.
pub const BAD_UTF8: Check = Check {
    name: "bad-utf8",
    about: "a line that is not UTF-8 gets ERR bad-utf8 and is dropped; the connection stays",
    wants: NOTHING,
    kind: Kind::Required,
    run: bad_utf8,
};

fn bad_utf8(ctx: &mut Ctx) -> CheckResult {
    let (mut a, mut b) = ann_and_bob(ctx)?;
    let hint = "check each line is valid UTF-8 before using it (in Node: buffer.isUtf8(line) on \
        the bytes, before toString()); if not, answer ERR bad-utf8 and drop the line";
    // 0xFE, never in UTF-8; not 0xFF, which a server may take for telnet's
    // IAC (tcphub does, on a connection that opened with a negotiation).
    a.send_raw(b"caf\xe9\n\xfe\xfe\x00\n/nick \xc3\x28\n")?;
    for _ in 0..3 {
        a.expect_err("bad-utf8")
            .map_err(|f| f.with_context("after three lines that are not UTF-8"))
            .hint(hint)?;
    }
    a.send("caf\u{e9} ok")?;
    b.expect("MSG ann caf\u{e9} ok")
        .hint("nothing of the refused lines is relayed, and valid UTF-8 (é) still works")?;
    a.sync()?;
    b.sync()
}

/// Random bytes from one client leave the others talking.
pub const GARBAGE_ISOLATED: Check = Check {
    name: "garbage-isolated",
    about: "20,000 random bytes from one client do not crash the server or disturb others",
    wants: Wants {
        clients: 3,
        ..NOTHING
    },
    kind: Kind::Required,
    run: garbage_isolated,
};

fn garbage_isolated(ctx: &mut Ctx) -> CheckResult {
    let (mut a, mut b) = ann_and_bob(ctx)?;
    // xorshift: the same pseudo-random bytes every run, some newlines among them
    let mut x: u32 = 0x9e37_79b9;
    let garbage: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let mut g = ctx.connect("garbage")?;
    g.send_raw(&garbage)?;
    g.send_raw(b"\n/quit\n")?;
    drop(g);
    a.send("still fine")?;
    // whatever b saw of the garbage client, ann's line must reach it
    b.skip_until("\"MSG ann still fine\"", |l| l == b"MSG ann still fine")
        .hint("no input from one client may crash the server or cut off another")?;
    Ok(())
}

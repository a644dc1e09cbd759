//! The guarantees: no loss and one global order under load, and a slow
//! consumer cut off without hurting the others.

use std::io::Write;
use std::thread;

use super::{
    Check, CheckFailure, CheckResult, Ctx, Hint, Kind, NOTHING, ONE_DATA_EVENT_HINT, Peer, Wants,
    escape,
};

const PUBLISHERS: usize = 5;
const LINES: usize = 2000;
const RECEIVERS: usize = 5;

/// N publishers x M lines to K receivers: nothing lost, per-sender order,
/// and the same global order at every receiver.
pub const NO_LOSS_AND_ORDER: Check = Check {
    name: "no-loss-and-order",
    about: "5 clients x 2000 lines to 5 more: nothing lost, each sender's order kept, one global order",
    wants: Wants {
        clients: 10,
        ..NOTHING
    },
    kind: Kind::Required,
    run: no_loss_and_order,
};

/// Joins a helper thread; a panic in it (a bug in the check) is a failure.
fn joined<T>(handle: thread::JoinHandle<CheckResult<T>>) -> CheckResult<T> {
    handle.join().unwrap_or_else(|_| {
        Err(CheckFailure::new(
            "grader",
            "a helper thread to finish",
            "a panic",
        ))
    })
}

fn no_loss_and_order(ctx: &mut Ctx) -> CheckResult {
    let mut receivers = (0..RECEIVERS)
        .map(|i| ctx.named(&format!("r{i}")))
        .collect::<CheckResult<Vec<_>>>()?;
    let mut publishers = (0..PUBLISHERS)
        .map(|i| ctx.named(&format!("p{i}")))
        .collect::<CheckResult<Vec<_>>>()?;
    for p in receivers.iter_mut().chain(publishers.iter_mut()) {
        p.settle()?;
    }
    // Each publisher writes from one thread and reads from another: it gets
    // the other publishers' lines and must keep reading them, or it would
    // become a slow consumer itself.
    let senders: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, p)| publish(i, p))
        .collect();
    let readers: Vec<_> = receivers
        .into_iter()
        .map(|r| thread::spawn(move || receive(r)))
        .collect();
    // keep every peer connected until all are done (a LEAVE would be noise)
    let mut results = Vec::new();
    for reader in readers {
        results.push(joined(reader));
    }
    let mut kept = Vec::new();
    for sender in senders {
        kept.push(joined(sender)?);
    }
    let mut orders = Vec::new();
    for result in results {
        let (order, peer) = result?;
        orders.push((order, peer));
    }
    if let Some((first, _)) = orders.first()
        && let Some((_, other)) = orders.iter().find(|(o, _)| o != first)
    {
        return Err(
            CheckFailure::new(&other.name, "the same global order as r0", "another order")
                .with_hint("all recipients must see all lines in one and the same order"),
        );
    }
    for p in &mut kept {
        p.sync()?;
    }
    Ok(())
}

/// Publisher `i`: a writer thread sends `i:0` .. `i:1999` in batches of 50
/// lines per write; a reader thread takes the other publishers' lines.
fn publish(i: usize, mut p: Peer) -> thread::JoinHandle<CheckResult<Peer>> {
    thread::spawn(move || {
        let mut w = p.writer()?;
        let name = p.name.clone();
        let writer = thread::spawn(move || {
            for chunk in (0..LINES).collect::<Vec<_>>().chunks(50) {
                let text: String = chunk.iter().map(|n| format!("{i}:{n}\n")).collect();
                if let Err(e) = w.write_all(text.as_bytes()) {
                    return Err(CheckFailure::new(&name, "to send its lines", e.to_string()));
                }
            }
            Ok(())
        });
        for _ in 0..(PUBLISHERS - 1) * LINES {
            let line = p.expect_prefix("MSG p").hint(ONE_DATA_EVENT_HINT)?;
            let _ = line;
        }
        joined(writer)?;
        Ok(p)
    })
}

/// One receiver: every line of every publisher, each publisher's in order;
/// returns who sent each line, in the order received.
fn receive(mut r: Peer) -> CheckResult<(Vec<u8>, Peer)> {
    let mut next = [0usize; PUBLISHERS];
    let mut order = Vec::with_capacity(PUBLISHERS * LINES);
    for _ in 0..PUBLISHERS * LINES {
        let line = r.expect_prefix("MSG p").hint(ONE_DATA_EVENT_HINT)?;
        let parsed = line
            .strip_prefix("MSG p")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(from, text)| Some((from.parse::<usize>().ok()?, text.split_once(':')?)))
            .and_then(|(from, (i, n))| {
                Some((from, i.parse::<usize>().ok()?, n.parse::<usize>().ok()?))
            })
            .filter(|&(from, i, _)| from == i && from < PUBLISHERS);
        let Some((from, _, n)) = parsed else {
            return Err(CheckFailure::new(
                &r.name,
                "\"MSG p<i> <i>:<n>\"",
                escape(line.as_bytes()),
            )
            .with_hint(ONE_DATA_EVENT_HINT));
        };
        if n != next[from] {
            let expected = format!(
                "\"MSG p{from} {from}:{}\" (p{from}'s next line)",
                next[from]
            );
            return Err(
                CheckFailure::new(&r.name, expected, escape(line.as_bytes())).with_hint(
                    "lines from one client reach each recipient in the order sent, none lost",
                ),
            );
        }
        next[from] += 1;
        order.push(from as u8);
    }
    r.sync()?;
    Ok((order, r))
}

/// A client that stops reading is cut off after `--write-timeout-ms`.
pub const SLOW_CONSUMER: Check = Check {
    name: "slow-consumer",
    about: "a client that stops reading is cut off after --write-timeout-ms; others get LEAVE, lose nothing",
    wants: Wants {
        clients: 3,
        write_timeout_ms: Some(300),
        ..NOTHING
    },
    kind: Kind::Required,
    run: slow_consumer,
};

const FLOOD_WRITES: usize = 128;
const LINES_PER_WRITE: usize = 64;

fn slow_consumer(ctx: &mut Ctx) -> CheckResult {
    let Some(write_timeout) = ctx.limits.write_timeout else {
        return Err(CheckFailure::new(
            "grader",
            "--write-timeout-ms",
            "not given",
        ));
    };
    let mut talker = ctx.named("talker")?;
    let mut reader = ctx.named("reader")?;
    let mut sleeper = ctx.named("sleeper")?;
    talker.settle()?;
    reader.settle()?;
    // A server with one writer (the threaded hub) stalls everyone while it
    // waits on the sleeper: the reader may see nothing for a write timeout.
    reader.set_timeout(ctx.timeout + write_timeout * 2);
    // The sleeper reads nothing from now on. 8 MiB is more than any
    // loopback socket buffers, so writes to it must block.
    let flood = thread::spawn(move || {
        let line = format!("{}\n", "f".repeat(1000));
        let chunk = line.repeat(LINES_PER_WRITE);
        for _ in 0..FLOOD_WRITES {
            talker.send_raw(chunk.as_bytes())?;
        }
        talker.send("done")?;
        Ok(talker)
    });
    let got = read_flood(&mut reader)?;
    if got != FLOOD_WRITES * LINES_PER_WRITE {
        let expected = format!("{} flood lines", FLOOD_WRITES * LINES_PER_WRITE);
        return Err(CheckFailure::new("reader", expected, format!("{got}"))
            .with_hint("cutting off a slow client must not lose lines for the others"));
    }
    let mut talker = joined(flood)?;
    talker.expect("LEAVE sleeper")?;
    talker.sync()?;
    reader.sync()?;
    if !sleeper.drain_until_closed(ctx.timeout + write_timeout) {
        return Err(
            CheckFailure::new("sleeper", "its connection closed", "still open")
                .with_hint("a client cut off as a slow consumer must have its connection closed"),
        );
    }
    Ok(())
}

/// Reads the flood at the reader until both `LEAVE sleeper` and the
/// talker's `done` came; returns how many flood lines it got.
fn read_flood(reader: &mut Peer) -> CheckResult<usize> {
    let (mut got, mut saw_leave, mut saw_done) = (0, false, false);
    while !(saw_leave && saw_done) {
        let expecting = if saw_done {
            "\"LEAVE sleeper\""
        } else {
            "the flood, \"MSG talker done\", \"LEAVE sleeper\""
        };
        let line = reader.recv(expecting).hint(
            "a client that stops reading must be disconnected once a write to it has been blocked \
             for --write-timeout-ms, and the others told LEAVE (in Node: when socket.write() \
             returns false, start a timer; destroy the socket if 'drain' does not come in time)",
        )?;
        if line == "LEAVE sleeper" {
            saw_leave = true;
        } else if line == "MSG talker done" {
            saw_done = true;
        } else if line.starts_with("MSG talker f") {
            got += 1;
        } else {
            return Err(CheckFailure::new(
                "reader",
                "\"MSG talker ffff...\"",
                escape(line.as_bytes()),
            )
            .with_hint(ONE_DATA_EVENT_HINT));
        }
    }
    Ok(got)
}

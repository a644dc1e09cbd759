//! What routing costs per delivery, with no socket at all: the router's
//! walk over the recipients and the batch's bookkeeping, nothing else.
//!
//! One publisher chats to S subscribers, L lines per batch, B batches,
//! through an `Outlet` that only adds up the bytes. Under callgrind the
//! instruction count is the same on every run (no threads, no clock, no
//! kernel), so two builds of the router compare exactly:
//!
//!     cargo build --release --example route_cost
//!     valgrind --tool=callgrind target/release/examples/route_cost 1000 100 20
//!
//! Arguments: subscribers (default 1000), lines per batch (100), batches
//! (20). Prints the deliveries made, so a change that skips work shows.

use std::io::IoSlice;
use std::process::ExitCode;
use std::sync::Arc;

use tcphub::proto::admission::Admission;
use tcphub::proto::client_line::{Parsed, parse_line};
use tcphub::proto::framing::Inbound;
use tcphub::proto::router::{ClientId, Outlet, Router};

/// Counts what it is handed, writes nothing.
#[derive(Default)]
struct Tally {
    shares: u64,
    bytes: u64,
}

impl Outlet for Tally {
    fn deliver(&mut self, _id: ClientId, chunks: &mut [IoSlice<'_>]) -> Result<(), String> {
        self.shares += 1;
        self.bytes += chunks.iter().map(|c| c.len() as u64).sum::<u64>();
        Ok(())
    }

    fn close(&mut self, _id: ClientId) {}
}

fn arg(n: usize, default: u64) -> Result<u64, String> {
    match std::env::args().nth(n) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|e| format!("argument {n}: {e}")),
    }
}

fn main() -> ExitCode {
    let (subscribers, lines, batches) = match (arg(1, 1000), arg(2, 100), arg(3, 20)) {
        (Ok(s), Ok(l), Ok(b)) => (s, l, b),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("route_cost: {e}");
            eprintln!("usage: route_cost [SUBSCRIBERS] [LINES_PER_BATCH] [BATCHES]");
            return ExitCode::from(2);
        }
    };
    let admission = Arc::new(Admission::new(subscribers as usize + 1));
    let mut router = Router::new(admission.clone());
    let mut out = Tally::default();
    let mut ids = Vec::new();
    for _ in 0..=subscribers {
        let Some(id) = admission.try_admit() else {
            eprintln!("route_cost: no room for {subscribers} subscribers");
            return ExitCode::from(2);
        };
        router.connect(id);
        ids.push(id);
        router.flush(&mut out);
    }
    let publisher = ids[0];
    // 64 bytes on the wire from the publisher, as `tcphub bench` sends.
    let Parsed::Command(chat) = parse_line(&[b'y'; 63]) else {
        return ExitCode::from(2);
    };
    let line = Inbound::Command(chat);
    let before = out.bytes;
    for _ in 0..batches {
        for _ in 0..lines {
            router.on_line(publisher, &line);
        }
        router.flush(&mut out);
    }
    let deliveries = subscribers * lines * batches;
    println!(
        "{deliveries} deliveries ({subscribers} subscribers x {lines} lines x {batches} batches), {} bytes",
        out.bytes - before
    );
    ExitCode::SUCCESS
}

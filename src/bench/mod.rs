//! `tcphub bench`: a load generator for any server that speaks protocol v1.
//!
//! Three measurements, each a file:
//!
//! - [`fanout`]: publishers send numbered, timestamped chat lines; every
//!   other client must receive every one, in order. Throughput, latency,
//!   loss and order, and who used the CPU ([`cpu`]). `--raw` measures a
//!   server that only relays bytes (`examples/relay_ceiling.rs`).
//! - [`noisy`]: noisy neighbours: flooders, readers and non-readers, and
//!   the latency one light client feels meanwhile.
//! - [`conns`]: many idle clients at once. How fast they are all welcomed,
//!   and what holding them costs the server (memory, threads).
//!
//! Like the hub it measures, the bench is plain threads: sweeper threads
//! read many non-blocking sockets ([`recv`]; as many as keep each under
//! 70 % of a core, [`balance`]) and feed each connection's [`tally`];
//! publisher threads write ([`publish`]). The wire format of its lines is
//! in [`wire`], latency percentiles in [`stats`], the server under test in
//! [`target`], output in [`report`].
//! Without `--addr` it measures the threaded hub, started for the purpose.
//! Logging is the caller's business (`tcphub bench` sets it up in cli.rs).

pub mod balance;
pub mod conns;
pub mod cpu;
pub mod fanout;
pub mod noisy;
pub mod publish;
pub mod recv;
pub mod report;
pub mod stats;
pub mod tally;
pub mod target;
pub mod wire;

use std::fmt;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::HubError;

/// Flags of `tcphub bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub kind: BenchKind,
}

/// The three measurements.
#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Fan-out: publishers send numbered chat lines, every other client must
    /// get each one. Reports deliveries/s, latency, loss and order; exits
    /// non-zero if anything was lost, reordered or timed out.
    Fanout(FanoutArgs),
    /// Many idle clients: how long until all are welcomed, and the server's
    /// memory and threads while they are held.
    Conns(ConnsArgs),
    /// Noisy neighbours: flooders publish as fast as they can to readers
    /// and non-readers while one light client times its /ping. Reports its
    /// latency, the flooders' throughput, and whether the non-readers were
    /// cut off.
    Noisy(noisy::NoisyArgs),
}

/// Flags of `tcphub bench fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Server to measure (host:port); without it, the threaded hub is
    /// started in this process on a free port.
    #[arg(long, conflicts_with_all = ["pub_addr", "sub_addr"])]
    pub addr: Option<String>,
    /// Linked hubs: publishers connect to this hub (host:port)...
    #[arg(long, requires = "sub_addr", value_name = "ADDR")]
    pub pub_addr: Option<String>,
    /// ...and subscribers to this one, so every line crosses the link(s)
    /// between them: the cost of a hop (docs/linking.md).
    #[arg(long, requires = "pub_addr", value_name = "ADDR")]
    pub sub_addr: Option<String>,
    /// Clients that publish (each also receives the others' lines).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=wire::MAX_PUBLISHERS as u64))]
    pub publishers: u64,
    /// Clients that only receive.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub subscribers: u64,
    /// Lines each publisher sends.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000_000))]
    pub messages: u64,
    /// Bytes per line sent, `\n` included (at least 35: the header).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(wire::MIN_SIZE as u64..=1 << 20))]
    pub size: u64,
    /// Lines per second per publisher; unlimited without it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub rate: Option<u64>,
    /// Publish as fast as the server reads, with no cap on the lead over
    /// the deliveries (without it a publisher stays at most 0.25 s of
    /// deliveries, and 256 KiB per subscriber, ahead): a burst, which
    /// shows a server that buffers without bound, or cuts off readers that
    /// fall behind for a moment.
    #[arg(long, conflicts_with = "rate")]
    pub unpaced: bool,
    /// Give up (and fail) after this many seconds in all.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout_s: u64,
    /// Reader threads for the subscribers, fixed. Without it the bench
    /// starts 1 (up to 100 subscribers, else one per core) and adds threads
    /// while any is above 70 % of a core, so the bench does not set the
    /// rate (src/bench/balance.rs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub readers: Option<u64>,
    /// Publish for this long (seconds, after the warm-up) instead of a
    /// fixed `--messages`: a sustained run.
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// With `--duration-s`: keep publishing until the measured window also
    /// has this many deliveries...
    #[arg(long, default_value_t = 0)]
    pub min_deliveries: u64,
    /// ... but stop at this many seconds whatever the count (default: twice
    /// `--duration-s`).
    #[arg(long)]
    pub max_duration_s: Option<f64>,
    /// Seconds of publishing before the measured window starts; what is
    /// delivered meanwhile is checked for loss and order but not measured.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_s: f64,
    /// Process id of the server at `--addr`, to read its CPU time.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Another process every line crosses (the hubs of --pub-addr and
    /// --sub-addr, a NATS node between them): its CPU over the window is
    /// in the report, beside the server's. May be repeated.
    #[arg(long = "path-pid", value_name = "PID")]
    pub path_pids: Vec<u32>,
    /// The server only relays bytes (no protocol: no `WELCOME`, no `MSG`
    /// prefix), like examples/relay_ceiling.rs. One publisher; subscribers
    /// get the publisher's lines verbatim, and a `SYNC` line the publisher
    /// repeats until all have one tells when everyone is connected. Lines
    /// are `--size` plus 12 bytes (`MSG guest-1 `, what a hub puts in
    /// front), so the relay delivers as many bytes as a hub does.
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `tcphub bench conns`.
#[derive(Debug, Clone, Args)]
pub struct ConnsArgs {
    /// Server to measure (host:port); without it, `tcphub serve` is started
    /// as a child process, so its memory is the hub's alone.
    #[arg(long)]
    pub addr: Option<String>,
    /// Idle clients to open.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub count: u64,
    /// Seconds to hold them all open once welcomed.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub hold_s: u64,
    /// Process id of the server at `--addr`, to read its memory and threads.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Give up (and fail) if not all are welcomed within this many seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout_s: u64,
    /// Most connections opened but not yet welcomed. Keep it under the
    /// server's listen backlog (128 for Rust's std): past it the kernel
    /// drops connects, and each dropped one costs a 1 s retry.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub in_flight: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Why a bench could not run at all (as opposed to running and finding
/// loss, which is a report).
#[derive(Debug)]
pub enum BenchError {
    /// `--addr` does not resolve.
    Addr { addr: String, why: String },
    /// The in-process hub did not start.
    Hub(HubError),
    /// A server process (or a thread) could not be started.
    Spawn(String),
    /// More sockets than this process may open.
    FdLimit { needed: u64, soft: u64, hard: u64 },
    /// The flags make no sense together.
    Usage(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Addr { addr, why } => write!(f, "cannot use --addr {addr}: {why}"),
            BenchError::Hub(e) => write!(f, "cannot start the hub: {e}"),
            BenchError::Spawn(why) => write!(f, "cannot start {why}"),
            BenchError::FdLimit { needed, soft, hard } => {
                write!(
                    f,
                    "this run needs about {needed} open files but this process may open only {soft}"
                )?;
                if *hard >= *needed {
                    write!(
                        f,
                        "; raise it first with `ulimit -n {needed}` (the hard limit is {hard})"
                    )
                } else {
                    write!(
                        f,
                        "; even the hard limit is {hard}: ask for fewer connections, or raise the hard limit (as root: `ulimit -Hn {needed}`)"
                    )
                }
            }
            BenchError::Usage(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for BenchError {}

/// Runs `tcphub bench ...`; the exit code is 0 for a clean run, 1 for a run
/// that lost, reordered or timed out, 2 for one that could not start.
pub fn run(args: &BenchArgs) -> ExitCode {
    let outcome = match &args.kind {
        BenchKind::Fanout(a) => fanout::run(a).map(|r| {
            let text = if a.json { r.to_json() } else { r.to_text() };
            (text, r.ok())
        }),
        BenchKind::Conns(a) => conns::run(a).map(|r| {
            let text = if a.json { r.to_json() } else { r.to_text() };
            (text, r.ok())
        }),
        BenchKind::Noisy(a) => noisy::run(a).map(|r| {
            let text = if a.json { r.to_json() } else { r.to_text() };
            (text, r.ok())
        }),
    };
    match outcome {
        Ok((text, ok)) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", text.trim_end());
            let _ = out.flush();
            if ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("tcphub bench: FAILED (see the report)");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("tcphub bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// The progress line on stderr: rewritten in place on a terminal, one line
/// a second otherwise (logs stay readable).
#[derive(Debug)]
pub struct Progress {
    terminal: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// A progress line on this process's stderr.
    pub fn new() -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            last: None,
            drawn: false,
        }
    }

    /// Shows `line`, at most every 200 ms on a terminal, every second
    /// elsewhere.
    pub fn show(&mut self, line: impl FnOnce() -> String) {
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{}", line());
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{}", line());
        }
        let _ = err.flush();
    }

    /// Ends the progress line (on a terminal, clears it).
    pub fn done(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_limit_message_says_what_to_do() {
        let e = BenchError::FdLimit {
            needed: 20_100,
            soft: 1024,
            hard: 1_048_576,
        };
        let text = e.to_string();
        assert!(text.contains("ulimit -n 20100"), "{text}");
        let e = BenchError::FdLimit {
            needed: 20_100,
            soft: 1024,
            hard: 4096,
        };
        assert!(e.to_string().contains("hard limit is 4096"));
    }
}

//! The command line: what each `tcphub` subcommand accepts, and the edge
//! where library errors become one-line messages and exit codes.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::server::{Config, Hub};

/// tcphub: a TCP event hub built to be taught with.
///
/// One thread accepts connections, one thread per client blocks in read(),
/// and one dispatcher thread routes every line and writes to every socket.
/// Clients speak a line protocol (docs/protocol.md): chat, /nick, /list,
/// /dm, and publish/subscribe with /sub and /pub.
#[derive(Debug, Parser)]
#[command(name = "tcphub", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: accept clients and route their lines.
    ///
    /// Prints one line, `listening on <addr>`, to stdout once it is ready.
    /// Logs go to stderr; RUST_LOG=debug shows every blocking call, routing
    /// decision and write, with the name of the thread doing it.
    Serve(ServeArgs),
    /// Measure a protocol v1 server (this hub, or any other with --addr):
    /// fan-out throughput and latency, or many idle connections.
    ///
    /// Prints a short report (or one JSON object with --json); exits 1 if
    /// anything was lost, reordered or timed out, 2 if it could not start.
    Bench(crate::bench::BenchArgs),
}

/// Flags of `tcphub serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (an IP address or a host name).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free port (see the `listening on` line).
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// Most clients connected at once; one more gets `ERR server-full`.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_clients: u64,
    /// Longest line accepted, in bytes, not counting the line ending; a
    /// longer one gets `ERR line-too-long` and is dropped.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub max_line: u64,
    /// How long a write to one client may block (its buffers full because it
    /// stopped reading) before that client is disconnected.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub write_timeout_ms: u64,
}

impl ServeArgs {
    pub fn config(&self) -> Config {
        Config {
            host: self.host.clone(),
            port: self.port,
            max_clients: self.max_clients as usize,
            max_line: self.max_line as usize,
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            ..Config::default()
        }
    }
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => {
            init_logging();
            serve(&args)
        }
        Command::Bench(args) => crate::bench::run(&args),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let hub = match Hub::start(args.config()) {
        Ok(hub) => hub,
        Err(e) => {
            eprintln!("tcphub: {e}");
            return ExitCode::from(2);
        }
    };
    // The one line of output: scripts read the port from it.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {}", hub.local_addr());
    let _ = out.flush();
    drop(out);
    hub.wait();
    ExitCode::SUCCESS
}

/// Logs to stderr, each line with the name of the thread that wrote it, so
/// `RUST_LOG=debug` reads as a story of who blocked where. Defaults to `info`.
pub fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    let _ = env_logger::Builder::from_env(env)
        .format(|buf, record| {
            let thread = std::thread::current();
            writeln!(
                buf,
                "{} {:<5} [{}] {}",
                buf.timestamp_millis(),
                record.level(),
                thread.name().unwrap_or("?"),
                record.args()
            )
        })
        .try_init();
}

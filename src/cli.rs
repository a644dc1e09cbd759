//! The command line: what each `tcphub` subcommand accepts, and the edge
//! where library errors become one-line messages and exit codes.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::hub::{
    Config, DEFAULT_CHANNEL_BYTES, DEFAULT_CHANNEL_CAPACITY, DEFAULT_LINGER, DEFAULT_MAX_PENDING,
    DEFAULT_MAX_SUBS, DEFAULT_SOFT_PENDING, DEFAULT_SOFT_PENDING_MS, Hub,
};

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
    pub program: Program,
}

/// Which of tcphub's programs to run: the subcommand.
#[derive(Debug, Subcommand)]
pub enum Program {
    /// Run the hub: accept clients and route their lines.
    ///
    /// Prints one line, `listening on <addr>`, to stdout once it is ready.
    /// Logs go to stderr; RUST_LOG=debug shows every blocking call, routing
    /// decision and write, with the name of the thread doing it.
    Serve(Box<ServeArgs>),
    /// Connect to a hub and talk to it: type lines, or pipe them in.
    ///
    /// Every line you type is sent as is; every line the hub sends is
    /// printed as it is on the wire (or worded for people with --pretty).
    /// Stops on BYE (/quit), when the hub closes, or at the end of input
    /// (after the hub has answered everything sent).
    Client(ClientArgs),
    /// Run one of the lab's services, reacting to events through the hub.
    Agent(AgentArgs),
    /// Run scenarios: scripted actors that talk to a hub and check replies.
    ///
    /// SCENARIO is a built-in name (see --list) or a file path. Without
    /// --addr, a hub is started in this process on a free port.
    Simulate(SimulateArgs),
    /// Measure a protocol v1 server (this hub, or any other with --addr):
    /// fan-out throughput and latency, or many idle connections.
    ///
    /// Prints a short report (or one JSON object with --json); exits 1 if
    /// anything was lost, reordered or timed out, 2 if it could not start.
    Bench(crate::bench::BenchArgs),
    /// Watch a hub's threads, channel and clients, like `top`.
    ///
    /// ADDR is the hub's monitor (`tcphub serve --monitor HOST:PORT`).
    /// Threads held up longest come first. --once prints one snapshot and
    /// exits; otherwise it redraws every --interval until Ctrl-C, and keeps
    /// trying while the monitor is unreachable.
    Top(crate::top::TopArgs),
    /// Grade any protocol v1 server, in any language, by its address.
    ///
    /// Runs the contract's checks (docs/check.md) and prints PASS, FAIL
    /// (what was expected, what came back) or SKIP for each, then a score.
    /// Exits 0 if every check that ran passed, 1 if any failed, 2 on bad
    /// usage or when nothing listens at ADDR.
    Check(CheckArgs),
}

/// Flags of `tcphub serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (an IP address, `[::1]` style too, or a host
    /// name). 0.0.0.0 or :: listen on every interface, so that other
    /// machines can connect (the hub says so on stderr).
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
    /// Events the hub's one channel holds before client threads block
    /// handing lines over. Set it to 1 in class to watch readers wait on
    /// the dispatcher.
    #[arg(long, default_value_t = DEFAULT_CHANNEL_CAPACITY as u64, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub channel_capacity: u64,
    /// Bytes of lines the channel holds, all clients together, before
    /// client threads block handing lines over (a line longer than this
    /// still passes, alone). Bounds the channel's memory whatever
    /// --max-line and --channel-capacity are.
    #[arg(long, default_value_t = DEFAULT_CHANNEL_BYTES as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub channel_bytes: u64,
    /// The hard limit: bytes the hub keeps for one client whose kernel
    /// buffers are full (it reads slower than it is sent to); one more and
    /// it is disconnected at once. Worst case, the hub holds --max-clients
    /// times this.
    #[arg(long, default_value_t = DEFAULT_MAX_PENDING as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub max_pending: u64,
    /// The soft limit: a client with more than this many bytes waiting for
    /// --soft-pending-ms without a break is disconnected. A burst may pass
    /// it; a reader that stays behind may not.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_SOFT_PENDING as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub soft_pending: u64,
    /// How long a client may stay over --soft-pending.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_SOFT_PENDING_MS, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub soft_pending_ms: u64,
    /// The old single writer, to show in class: each write blocks until the
    /// kernel takes it all (or --write-timeout-ms passes), and while it
    /// blocks nobody else gets anything. Ten slow readers stall everyone
    /// ten times the timeout.
    #[arg(long)]
    pub blocking_writes: bool,
    /// Microseconds the dispatcher waits for more lines after writing a
    /// small batch while lines kept arriving, so the next batch (and every
    /// recipient's write) is bigger: less CPU under load, up to this much
    /// more latency then. Never when the hub is idle. 0: never wait.
    #[arg(long, value_name = "US", default_value_t = DEFAULT_LINGER.as_micros() as u64, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub linger_us: u64,
    /// Topics one client may be subscribed to at once; one more gets
    /// `ERR too-many-subs`.
    #[arg(long, default_value_t = DEFAULT_MAX_SUBS as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub max_subs: u64,
    /// How long one line may take to arrive: a client that starts a line and
    /// does not finish it within this gets `ERR line-timeout` and is closed.
    /// 0 turns it off.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub line_timeout_ms: u64,
    /// Close a client that sends nothing for this long, with
    /// `ERR idle-timeout`. 0 (the default) turns it off.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub idle_timeout_ms: u64,
    /// Most connections from one IP address at once; one more gets
    /// `ERR server-full`. 0 (the default) turns it off.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub max_per_ip: u64,
    /// Serve the live view on HOST:PORT (or PORT, on 127.0.0.1): `GET /` is
    /// a page of every thread, the channel and each client, `GET /stats`
    /// the same as JSON (docs/live-view.md), `tcphub top` reads it.
    /// Off by default.
    #[arg(long, value_name = "HOST:PORT")]
    pub monitor: Option<String>,
    /// Record the session into FILE as a scenario (created, or emptied if
    /// it exists): every connect, every line a client sent, every line the
    /// hub sent it, every close, with times. `tcphub simulate FILE`
    /// replays it (docs/scenarios.md, "Recording a class"). Clients are
    /// told with a `NOTICE` line after `WELCOME`.
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
    /// The recording stops at this many bytes (the hub logs it, ends the
    /// file with a comment, and tells every client with a `NOTICE`). The
    /// default, 64 MiB, holds a 50-minute class of 30 (about 11 MB) with
    /// room to spare.
    #[arg(long, default_value_t = crate::hub::recorder::DEFAULT_MAX_BYTES, value_parser = clap::value_parser!(u64).range(1024..=1 << 40))]
    pub record_max_bytes: u64,
    #[command(flatten)]
    pub linking: LinkArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// The flags of a hub in a NATS cluster (docs/nats.md).
#[derive(Debug, Args, Clone, Default)]
pub struct NatsArgs {
    /// Join a NATS cluster: nats://HOST:PORT[,nats://HOST:PORT...] (port
    /// 4222 if left out; nats://user:pass@host and nats://token@host carry
    /// credentials). Chat, /pub, /dm and who is where cross it to every hub
    /// of the same --nats-room; the servers are tried in turn, and the ones
    /// the cluster names are learnt. Cannot be used with --link/--link-listen.
    #[arg(long, value_name = "URLS", value_parser = parse_nats_servers)]
    pub nats: Option<NatsServers>,
    /// The NATS user (or set TCPHUB_NATS_USER); needs --nats-pass.
    #[arg(long, value_name = "USER", requires = "nats_pass")]
    pub nats_user: Option<String>,
    /// The NATS password (or set TCPHUB_NATS_PASS).
    #[arg(long, value_name = "PASS")]
    pub nats_pass: Option<String>,
    /// A NATS token instead of a user (or set TCPHUB_NATS_TOKEN).
    #[arg(long, value_name = "TOKEN", conflicts_with = "nats_user")]
    pub nats_token: Option<String>,
    /// Hubs with the same room share chat, topics and presence: the
    /// subjects are tcphub.<room>.* (1-32 of A-Z a-z 0-9 _ -).
    #[arg(long, value_name = "ROOM", default_value = "main")]
    pub nats_room: String,
    /// A NATS server silent (or unable to take our lines) for this long is
    /// left for the next one; another hub silent this long is gone, and its
    /// users leave. Presence heartbeats go out every third of it.
    #[arg(long, default_value_t = crate::hub::DEFAULT_NATS_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(30..=3_600_000))]
    pub nats_timeout_ms: u64,
}

/// The servers of `--nats`, parsed.
#[derive(Debug, Clone)]
pub struct NatsServers(pub Vec<crate::proto::nats_wire::NatsUrl>);

fn parse_nats_servers(text: &str) -> Result<NatsServers, String> {
    crate::proto::nats_wire::parse_urls(text).map(NatsServers)
}

impl NatsArgs {
    /// The hub's NATS set-up, secrets from the environment where no flag
    /// gave them (so they need not be on the command line, where `ps` shows
    /// them).
    pub fn config(&self) -> Option<crate::hub::NatsConfig> {
        let servers = self.nats.as_ref()?.0.clone();
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let user = self.nats_user.clone().or_else(|| env("TCPHUB_NATS_USER"));
        let token = self.nats_token.clone().or_else(|| env("TCPHUB_NATS_TOKEN"));
        Some(crate::hub::NatsConfig {
            servers,
            user,
            pass: self.nats_pass.clone().or_else(|| env("TCPHUB_NATS_PASS")),
            token,
            room: self.nats_room.clone(),
            timeout: Duration::from_millis(self.nats_timeout_ms),
        })
    }
}

/// The flags of linked hubs (docs/linking.md).
#[derive(Debug, Args, Clone, Default)]
pub struct LinkArgs {
    /// This hub's name among linked hubs: 1-32 of A-Z a-z 0-9 _ -, unique
    /// in the network (default hub-<client port>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Accept links from other hubs on this address (a port of its own);
    /// prints `links on <addr>` after `listening on <addr>`.
    #[arg(long, value_name = "HOST:PORT")]
    pub link_listen: Option<String>,
    /// Link to another hub's link port (may be repeated); retried with a
    /// backoff of 1 s doubling to 30 s while it is unreachable.
    #[arg(long = "link", value_name = "HOST:PORT")]
    pub links: Vec<String>,
    /// The shared link password (or set TCPHUB_LINK_KEY). Sent in clear
    /// text: for a classroom network, not the internet. Without one, every
    /// link is refused.
    #[arg(long, value_name = "KEY")]
    pub link_key: Option<String>,
    /// A link silent (or unable to take its lines) for this long is down.
    #[arg(long, default_value_t = crate::hub::DEFAULT_LINK_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(30..=3_600_000))]
    pub link_timeout_ms: u64,
}

impl ServeArgs {
    pub fn config(&self) -> Config {
        Config {
            host: self.host.clone(),
            port: self.port,
            max_clients: self.max_clients as usize,
            max_line: self.max_line as usize,
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            channel_capacity: self.channel_capacity as usize,
            name: self.linking.name.clone(),
            link_listen: self.linking.link_listen.clone(),
            links: self.linking.links.clone(),
            link_key: self.linking.link_key.clone().or_else(|| {
                std::env::var("TCPHUB_LINK_KEY")
                    .ok()
                    .filter(|k| !k.is_empty())
            }),
            link_timeout: Duration::from_millis(self.linking.link_timeout_ms),
            channel_bytes: self.channel_bytes as usize,
            max_pending: self.max_pending as usize,
            soft_pending: self.soft_pending as usize,
            soft_pending_ms: self.soft_pending_ms,
            blocking_writes: self.blocking_writes,
            linger: Duration::from_micros(self.linger_us),
            max_subs: self.max_subs as usize,
            line_timeout: millis_or_off(self.line_timeout_ms),
            idle_timeout: millis_or_off(self.idle_timeout_ms),
            max_per_ip: (self.max_per_ip > 0).then_some(self.max_per_ip as usize),
            monitor: self.monitor.clone(),
            record: self.record.clone(),
            record_max_bytes: self.record_max_bytes,
            nats: self.nats.config(),
        }
    }
}

/// A timeout flag in milliseconds, where 0 means off.
fn millis_or_off(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.program {
        Program::Serve(args) => {
            init_logging();
            serve(&args)
        }
        Program::Client(args) => {
            init_logging();
            client(&args)
        }
        Program::Agent(args) => {
            init_logging();
            agent(&args)
        }
        Program::Simulate(args) => {
            init_logging();
            simulate(&args)
        }
        Program::Bench(args) => {
            init_logging_at("warn");
            crate::bench::run(&args)
        }
        Program::Top(args) => crate::top::run(&args),
        Program::Check(args) => check(&args),
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
    if let Some(links) = hub.link_addr() {
        let _ = writeln!(out, "links on {links}");
    }
    if let Some(monitor) = hub.monitor_addr() {
        // Only with --monitor: scripts read the monitor's port from it.
        let _ = writeln!(out, "monitor on http://{monitor}/");
    }
    let _ = out.flush();
    drop(out);
    if let Some(note) = every_interface_note(hub.local_addr()) {
        // stderr, not stdout: scripts parse stdout's first line.
        eprintln!("{note}");
    }
    hub.wait();
    ExitCode::SUCCESS
}

/// What `serve` adds (on stderr) when it listens on 0.0.0.0 or `::`:
/// every interface, so not only this machine can connect.
pub fn every_interface_note(addr: std::net::SocketAddr) -> Option<String> {
    addr.ip().is_unspecified().then(|| {
        format!(
            "tcphub: {} means every interface: other machines can connect to port {} (use --host 127.0.0.1 to keep it to this machine)",
            addr.ip(),
            addr.port()
        )
    })
}

/// Logs to stderr, each line with the name of the thread that wrote it, so
/// `RUST_LOG=debug` reads as a story of who blocked where. Defaults to `info`.
pub fn init_logging() {
    init_logging_at("info");
}

/// [`init_logging`] with another default level (RUST_LOG still wins): the
/// bench uses `warn`, so an in-process hub does not log every connection.
pub fn init_logging_at(default_level: &str) {
    let env = env_logger::Env::default().default_filter_or(default_level);
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

// ---- client, agent, simulate ------------------------------------------

/// Flags of `tcphub client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The hub's address, host:port.
    #[arg(default_value = crate::client::hub_connection::DEFAULT_ADDR)]
    pub addr: String,
    /// Send `/nick NAME` before anything else.
    #[arg(long, value_name = "NAME")]
    pub nick: Option<String>,
    /// Print server lines for people (`<bob> hi`) instead of as on the wire.
    #[arg(long, conflicts_with = "raw")]
    pub pretty: bool,
    /// Print the hub's lines byte for byte, control characters included
    /// (for piping into another program). Without it, control characters
    /// from the network are shown as escapes (`\e[2J`, `\r`, `\u{202e}`)
    /// so they cannot drive your terminal.
    #[arg(long)]
    pub raw: bool,
    /// Give up, saying why, if the server sends no first line (`WELCOME`)
    /// within this many milliseconds of connecting.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub welcome_timeout_ms: u64,
}

/// `tcphub agent`: which role to run.
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub role: AgentRole,
}

/// The agents of the lab. Each prints what it does on stdout; diagnostics go
/// to stderr (RUST_LOG=debug shows every line sent and received).
#[derive(Debug, Subcommand)]
pub enum AgentRole {
    /// Publishes a `pickup` order every --interval; thanks for deliveries.
    Vendor(VendorArgs),
    /// Delivers every `pickup`: `in-transit` after 1 s, `delivered` 3 s later.
    Driver(DriverArgs),
    /// Prints every event on every topic, with the time (UTC).
    Logger(LoggerArgs),
}

/// Flags every agent has.
#[derive(Debug, Args)]
pub struct AgentCommon {
    /// The hub's address, host:port.
    #[arg(long, default_value = crate::client::hub_connection::DEFAULT_ADDR)]
    pub addr: String,
    /// Nick to take on the hub (default: the role's name).
    #[arg(long, value_name = "NAME")]
    pub nick: Option<String>,
}

/// Flags of `tcphub agent vendor`.
#[derive(Debug, Args)]
pub struct VendorArgs {
    #[command(flatten)]
    pub common: AgentCommon,
    /// Time between orders, like 5s or 200ms.
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Stop after N orders, once they are delivered (or after --wait).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub count: Option<u32>,
    /// With --count: how long to wait for deliveries after the last order.
    #[arg(long, default_value = "10s", value_parser = crate::support::duration::parse)]
    pub wait: Duration,
    /// Seed for the made-up orders (same seed, same orders).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Flags of `tcphub agent driver`.
#[derive(Debug, Args)]
pub struct DriverArgs {
    #[command(flatten)]
    pub common: AgentCommon,
    /// Divides the driving delays (1 s and 3 s): 10 means 100 ms and 300 ms.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
}

/// Flags of `tcphub agent logger`.
#[derive(Debug, Args)]
pub struct LoggerArgs {
    #[command(flatten)]
    pub common: AgentCommon,
}

/// Flags of `tcphub simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Built-in scenario names or scenario files, run one after the other.
    #[arg(value_name = "SCENARIO", required_unless_present = "list")]
    pub scenarios: Vec<String>,
    /// List the built-in scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Print the student copy of each exercise file (its `# answer:` lines
    /// removed, every `expect` a blank to fill in) instead of running it.
    #[arg(long)]
    pub student_copy: bool,
    /// Use the hub at this host:port instead of starting one in-process.
    #[arg(long)]
    pub addr: Option<String>,
    /// Replay a recording (`serve --record`) N times faster than it was
    /// recorded: its `at` steps wait for the recorded time divided by N.
    #[arg(long, value_name = "N", value_parser = parse_speed, conflicts_with = "as_fast")]
    pub speed: Option<f64>,
    /// Replay a recording with no pause at all between its steps (its
    /// `at` steps do nothing; `wait` steps still wait).
    #[arg(long)]
    pub as_fast: bool,
    /// Print a student copy of each recording (or any scenario): the
    /// story kept, every expectation a blank to fill in, like
    /// `make student-copies`; nothing is run.
    #[arg(long, conflicts_with = "student_copy")]
    pub to_exercise: bool,
}

/// An interval of 0 would publish in a busy loop: refuse it.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match crate::support::duration::parse(text)? {
        d if d.is_zero() => Err("the interval must be longer than 0ms".into()),
        d => Ok(d),
    }
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(speed) if (0.001..=1000.0).contains(&speed) => Ok(speed),
        _ => Err(format!("{text:?} is not a speed from 0.001 to 1000")),
    }
}

fn client(args: &ClientArgs) -> ExitCode {
    use crate::client::{ClientEnd, ClientOptions};
    let options = ClientOptions {
        addr: args.addr.clone(),
        nick: args.nick.clone(),
        pretty: args.pretty,
        raw: args.raw,
        welcome_timeout: std::time::Duration::from_millis(args.welcome_timeout_ms),
    };
    match crate::client::run(&options, std::io::stdin(), std::io::stdout()) {
        Ok(ClientEnd::Bye | ClientEnd::InputDone | ClientEnd::OutputClosed) => ExitCode::SUCCESS,
        Ok(ClientEnd::HubClosed) => {
            // No BYE, and we had more to say: the hub stopped or cut us off.
            eprintln!("tcphub client: the hub closed the connection (no BYE)");
            ExitCode::FAILURE
        }
        Ok(ClientEnd::Refused(text)) => {
            eprintln!("tcphub client: the hub refused the connection: {text}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tcphub client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn agent(args: &AgentArgs) -> ExitCode {
    use crate::agent::{self, driver::Driver, logger::Logger, vendor};
    let mut out = std::io::stdout();
    let (role, result) = match &args.role {
        AgentRole::Vendor(a) => {
            let options = vendor::VendorOptions {
                interval: a.interval,
                count: a.count,
                wait: a.wait,
                seed: a.seed,
            };
            let nick = a.common.nick.as_deref().unwrap_or("vendor");
            let v = vendor::Vendor::new(options);
            ("vendor", agent::run(&a.common.addr, nick, v, &mut out))
        }
        AgentRole::Driver(a) => {
            let nick = a.common.nick.as_deref().unwrap_or("driver");
            let d = Driver::new(a.speed);
            ("driver", agent::run(&a.common.addr, nick, d, &mut out))
        }
        AgentRole::Logger(a) => {
            let nick = a.common.nick.as_deref().unwrap_or("logger");
            ("logger", agent::run(&a.common.addr, nick, Logger, &mut out))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcphub agent {role}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `simulate --student-copy`: each file's student copy, on stdout.
fn student_copies(files: &[String]) -> ExitCode {
    let mut stdout = std::io::stdout();
    for file in files {
        match crate::scenario::read_file(file) {
            Ok(text) => {
                let copy = crate::scenario::student::student_copy(&text);
                let _ = stdout.write_all(copy.as_bytes());
            }
            Err(e) => {
                eprintln!("tcphub simulate: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

fn simulate(args: &SimulateArgs) -> ExitCode {
    use crate::scenario::{self, run::HubToUse, run::Outcome};
    // writeln!, not println!: println! panics when stdout is a closed pipe
    // (`tcphub simulate caps | head`); a closed pipe is not worth a panic.
    let mut stdout = std::io::stdout();
    if args.list {
        for (name, text) in scenario::builtin::BUILTINS {
            let title = scenario::parse::parse(name, text)
                .ok()
                .and_then(|s| s.title)
                .unwrap_or_default();
            let _ = writeln!(stdout, "{name:<14} {title}");
        }
        return ExitCode::SUCCESS;
    }
    if args.student_copy || args.to_exercise {
        return student_copies(&args.scenarios);
    }
    let pace = match (args.as_fast, args.speed) {
        (true, _) => scenario::run::Pace::AsFast,
        (false, speed) => scenario::run::Pace::Speed(speed.unwrap_or(1.0)),
    };
    // The in-process hub logs every connection at info level; the timeline
    // already tells that story. Keep its warnings (a client cut off).
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let target = match &args.addr {
        Some(addr) => HubToUse::Addr(addr.clone()),
        None => HubToUse::InProcess,
    };
    let mut failed = 0;
    for (i, name) in args.scenarios.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(stdout);
        }
        let loaded = scenario::load(name);
        let report = loaded
            .and_then(|s| scenario::run::run_paced(&s, &target, pace, Box::new(std::io::stdout())));
        match report {
            Ok(report) => match report.outcome {
                Outcome::Passed { actors, steps } => {
                    let reordered = match report.reordered {
                        0 => String::new(),
                        n => format!(" (order across senders differed in {n} place(s): allowed)"),
                    };
                    let _ = writeln!(
                        stdout,
                        "PASSED {name}: {actors} actors, {steps} steps in {:.2}s{reordered}",
                        report.elapsed.as_secs_f64()
                    );
                }
                Outcome::Unchecked { actors, steps } => {
                    let _ = writeln!(
                        stdout,
                        "NOTHING CHECKED {name}: {actors} actors ran {steps} steps, but none is an expect or expect-closed"
                    );
                    failed += 1;
                }
                Outcome::Failed(failure) => {
                    let _ = writeln!(stdout, "FAILED {failure}");
                    failed += 1;
                }
            },
            Err(e) => {
                eprintln!("tcphub simulate: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// ---- check ------------------------------------------------------------

/// Flags of `tcphub check`. The limits are the server's own serve flags:
/// the grader cannot ask a server what it was started with, so checks that
/// depend on a limit run only when told it (the others say SKIP).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The server's address, host:port.
    #[arg(required_unless_present = "list")]
    pub addr: Option<String>,
    /// List the checks, one line each, and exit.
    #[arg(long)]
    pub list: bool,
    /// Run only these checks (comma-separated names, see --list).
    #[arg(long, value_name = "A,B")]
    pub only: Option<String>,
    /// Longest wait for any one line or connection, in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// The server's --max-clients (enables `server-full`; keep it small).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_clients: Option<u64>,
    /// The server's --max-line.
    #[arg(long, value_name = "BYTES", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub max_line: u64,
    /// The server's --write-timeout-ms (enables `slow-consumer`).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub write_timeout_ms: Option<u64>,
    /// The server's --max-pending (enables `max-pending`; needs
    /// --write-timeout-ms too, to tell a size cut from a time cut).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub max_pending: Option<u64>,
    /// The server's --line-timeout-ms (enables `line-timeout`).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub line_timeout_ms: Option<u64>,
    /// The server's --idle-timeout-ms (enables `idle-timeout`).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub idle_timeout_ms: Option<u64>,
    /// The server's --max-per-ip (enables `per-ip-cap`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_per_ip: Option<u64>,
    /// The server's --max-subs (enables `max-subs`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_subs: Option<u64>,
    /// The server's descriptor limit: it was started under `ulimit -n N`
    /// (enables `out-of-descriptors`; 40, say).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub fd_limit: Option<u64>,
    /// The server was just started and nobody has connected yet, so
    /// `guest-numbers` can check that numbering starts at guest-1.
    #[arg(long)]
    pub fresh: bool,
    /// Count tcphub's choices (the checks `--list` marks `choice`) as
    /// failures, not `NOTE`s: for servers meant to behave as tcphub does.
    #[arg(long)]
    pub strict: bool,
}

fn check(args: &CheckArgs) -> ExitCode {
    use crate::check::{self, grade};
    use std::net::ToSocketAddrs;
    let mut stdout = std::io::stdout();
    if args.list {
        let _ = grade::list(&mut stdout);
        return ExitCode::SUCCESS;
    }
    let checks = match &args.only {
        Some(only) => match check::select(only) {
            Ok(checks) => checks,
            Err(e) => {
                eprintln!("tcphub check: {e}");
                return ExitCode::from(2);
            }
        },
        None => check::CHECKS.iter().collect(),
    };
    let text = args.addr.as_deref().unwrap_or_default();
    let addr = match text.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            eprintln!("tcphub check: {text:?} resolves to no address");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("tcphub check: bad address {text:?} (want host:port): {e}");
            return ExitCode::from(2);
        }
    };
    let limits = check::Limits {
        max_clients: args.max_clients.map(|n| n as usize),
        max_line: args.max_line as usize,
        write_timeout: args.write_timeout_ms.map(Duration::from_millis),
        max_pending: args.max_pending,
        line_timeout: args.line_timeout_ms.map(Duration::from_millis),
        idle_timeout: args.idle_timeout_ms.map(Duration::from_millis),
        max_per_ip: args.max_per_ip.map(|n| n as usize),
        max_subs: args.max_subs.map(|n| n as usize),
        fd_limit: args.fd_limit.map(|n| n as usize),
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut target = grade::Address::new(addr, limits, timeout, args.fresh);
    match grade::grade(&mut target, &checks, args.strict, &mut stdout) {
        Err(grade::Unreachable(why)) => {
            eprintln!("tcphub check: cannot connect to {text}: {why} (is the server running?)");
            ExitCode::from(2)
        }
        Ok(score) if score.failed > 0 => ExitCode::FAILURE,
        Ok(score) if score.passed + score.noted == 0 => {
            eprintln!("tcphub check: no check ran (see the SKIP lines)");
            ExitCode::from(2)
        }
        Ok(_) => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::every_interface_note;

    #[test]
    fn every_interface_gets_a_note_loopback_does_not() {
        for wild in ["0.0.0.0:3000", "[::]:3000"] {
            let note = every_interface_note(wild.parse().unwrap()).expect(wild);
            assert!(note.contains("every interface"), "{note}");
            assert!(
                note.contains("other machines can connect to port 3000"),
                "{note}"
            );
        }
        for local in ["127.0.0.1:3000", "[::1]:3000", "192.168.1.5:3000"] {
            assert_eq!(
                every_interface_note(local.parse().unwrap()),
                None,
                "{local}"
            );
        }
    }
}

//! `make compare`: the same bench matrix against every server (the
//! threaded hub, the async twin, the readiness-loop (poll) twin, the Node
//! twin, and the speed-of-light relay as the ceiling), alternating them,
//! repeated; then a report with the median and spread (min-max) of every
//! figure, and a chart.
//!
//! Three load shapes ([`Shape`]): an unpaced burst (a fixed count of lines
//! written as fast as the server reads them), sustained lead-limited runs
//! (timed: a warm-up, then a window of at least `--duration-s` seconds and
//! `--min-deliveries` deliveries, at most `--max-duration-s`, the
//! publisher never more than 0.25 s of deliveries ahead), and paced runs
//! (a fixed rate, timed the same way). Every run starts a fresh server
//! process and runs `tcphub bench` as a separate process against it, so
//! each server's figures are its own and its CPU is read from its own
//! /proc/<pid>/stat. Expects the release binaries (the Makefile builds
//! them).
//!
//! Writes under `--out` (default target/compare): benchmarks.md,
//! benchmarks.svg, async-figures.md (the figures docs/async-comparison.md
//! quotes) and runs.jsonl (every bench's JSON). `--publish DIR` is `make
//! compare-docs`: it copies a finished report from DIR into docs/ and fills
//! the figures into docs/async-comparison.md between its markers; it runs
//! nothing.
//!
//! `--quick`: one repetition of short runs, for trying it out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plotters::coord::Shift;
use plotters::prelude::*;
use tcphub::bench::stats::Spread;
use tcphub::support::json::{self, Value};
use tcphub::support::server_process::ServerProcess;

/// One server of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Server {
    Threaded,
    Async,
    Poll,
    Node,
    Ceiling,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Threaded => "threaded hub",
            Server::Async => "async twin (tokio)",
            Server::Poll => "poll twin (poll(2))",
            Server::Node => "Node twin",
            Server::Ceiling => "relay ceiling",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Server::Threaded => "threaded",
            Server::Async => "async",
            Server::Poll => "poll",
            Server::Node => "node",
            Server::Ceiling => "ceiling",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Server::Threaded => RGBColor(31, 119, 180),
            Server::Async => RGBColor(255, 127, 14),
            Server::Poll => RGBColor(148, 103, 189),
            Server::Node => RGBColor(44, 160, 44),
            Server::Ceiling => RGBColor(0, 0, 0),
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
struct Scenario {
    key: &'static str,
    /// Starts with the shape's word, so every table row says its shape.
    title: &'static str,
    shape: Shape,
    kind: Kind,
}

/// How the load is offered: the issue-17 figures differed by shape more
/// than by server, so every figure says which shape it is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A fixed count of lines, written as fast as the server reads them
    /// (`--messages N --unpaced`): a burst, no cap on the lead.
    Unpaced,
    /// Timed, unlimited rate, the publisher at most 0.25 s of deliveries
    /// ahead of the subscribers: the server's sustained rate.
    Sustained,
    /// Timed, at a fixed rate per publisher (`--rate`).
    Paced,
    /// Idle clients (`bench conns`).
    Idle,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Unpaced => "unpaced burst",
            Shape::Sustained => "sustained, lead-limited",
            Shape::Paced => "paced",
            Shape::Idle => "idle clients",
        }
    }

    fn how(self) -> &'static str {
        match self {
            Shape::Unpaced => {
                "a fixed count of lines written as fast as the server reads them, no cap on the publisher's lead, read by one bench thread (`--readers 1`: the reader of issue 17's no-loss target); the window is the whole run, from the first line sent to the last delivery"
            }
            Shape::Sustained => {
                "timed at unlimited rate, the publisher never more than 0.25 s of deliveries (and 256 KiB per subscriber) ahead of the subscribers; warm-up, then the measured window; receiver threads added while one is above 70 % of a core"
            }
            Shape::Paced => {
                "timed at a fixed rate per publisher, warm-up then the measured window: CPU per delivery at a load the server keeps up with, where each wake-up carries few lines"
            }
            Shape::Idle => "idle clients held open (`bench conns`)",
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Fanout {
        publishers: u64,
        subscribers: u64,
        rate: Option<u64>,
        /// An unpaced burst of this many lines (else a timed run).
        messages: Option<u64>,
    },
    Conns {
        count: u64,
        hold_s: u64,
        timeout_s: u64,
    },
}

impl Scenario {
    fn is_fanout(&self) -> bool {
        matches!(self.kind, Kind::Fanout { .. })
    }

    /// The relay ceiling speaks no protocol: only one-publisher fan-outs.
    fn runs_on(&self, server: Server) -> bool {
        match self.kind {
            Kind::Fanout { publishers, .. } => server != Server::Ceiling || publishers == 1,
            Kind::Conns { .. } => server != Server::Ceiling,
        }
    }

    fn rate_limited(&self) -> bool {
        matches!(self.kind, Kind::Fanout { rate: Some(_), .. })
    }
}

/// How long and how often: the knobs of a comparison.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    full: bool,
    reps: usize,
    warmup_s: f64,
    duration_s: f64,
    max_duration_s: f64,
    min_deliveries: u64,
}

impl Plan {
    /// Three repetitions of 2 s windows keep `make compare` to a few
    /// minutes on 2 cores with five servers; `--reps`, `--duration-s`
    /// lengthen it.
    fn default_for(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                full: false,
                reps: 1,
                warmup_s: 0.3,
                duration_s: 1.0,
                max_duration_s: 1.5,
                min_deliveries: 0,
            }
        } else {
            Plan {
                quick,
                full: false,
                reps: 3,
                warmup_s: 0.5,
                duration_s: 2.0,
                max_duration_s: 3.0,
                min_deliveries: 10_000_000,
            }
        }
    }

    /// Lines of the unpaced burst: 300,000 (issue 17's), 100,000 quick.
    fn burst_lines(&self) -> u64 {
        if self.quick { 100_000 } else { 300_000 }
    }
}

/// The figures of one run, read from the bench's JSON (NaN when absent).
#[derive(Debug, Clone, Default)]
struct Run {
    ok: bool,
    failure: Option<String>,
    /// The bench command, as run.
    command: String,
    /// The bench's JSON line, as printed.
    json: String,
    /// Wall time of the whole run (server start to stop), seconds.
    wall_s: f64,
    deliveries_per_s: f64,
    window_s: f64,
    window_deliveries: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    lost: f64,
    out_of_order: f64,
    server_ns: f64,
    server_cores: f64,
    generator_cores: f64,
    busiest_thread_cores: f64,
    /// The bench's receiver threads at the end of the run.
    receivers: f64,
    bottleneck: Option<String>,
    saturated: bool,
    machine_busy: f64,
    steal: f64,
    others: f64,
    welcomed: f64,
    count: f64,
    ramp_s: f64,
    rss_kib: f64,
    threads: f64,
    fds: f64,
}

impl Run {
    fn failed(why: impl Into<String>) -> Run {
        Run {
            failure: Some(why.into()),
            ..Run::default()
        }
    }

    /// Reads one bench JSON object.
    fn from_json(text: &str) -> Result<Run, String> {
        let v = json::parse(text).map_err(|e| e.to_string())?;
        let num = |key: &str| v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let string = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        Ok(Run {
            ok: v.get("ok").and_then(Value::as_bool).unwrap_or(false),
            failure: string("failure"),
            deliveries_per_s: num("deliveries_per_s"),
            window_s: num("window_s"),
            window_deliveries: num("window_deliveries"),
            p50_us: num("latency_p50_us"),
            p99_us: num("latency_p99_us"),
            max_us: num("latency_max_us"),
            lost: num("lost"),
            out_of_order: num("out_of_order"),
            server_ns: num("server_ns_per_delivery"),
            server_cores: num("server_cores"),
            generator_cores: num("generator_cores"),
            busiest_thread_cores: num("busiest_thread_cores"),
            receivers: num("receiver_threads"),
            bottleneck: string("generator_bottleneck"),
            saturated: v
                .get("machine_saturated")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            machine_busy: num("machine_busy_cores"),
            steal: num("steal_cores"),
            others: num("others_cores"),
            welcomed: num("welcomed"),
            count: num("count"),
            ramp_s: num("ramp_s"),
            rss_kib: num("hold_rss_kib"),
            threads: num("hold_threads"),
            fds: num("hold_fds"),
            ..Run::default()
        })
    }
}

/// Every run, by (scenario index, server), in the order run.
type Results = BTreeMap<(usize, Server), Vec<Run>>;

struct Paths {
    root: PathBuf,
    tcphub: PathBuf,
    async_hub: PathBuf,
    poll_hub: PathBuf,
    relay: PathBuf,
    out: PathBuf,
}

/// Everything the report says about how it was made.
struct Context {
    command: String,
    node: Option<String>,
    elapsed: Duration,
    /// Wall time per scenario, all servers and repetitions.
    scenario_s: Vec<f64>,
    load_before: String,
    load_after: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Some(dir) = flag(&args, "--publish") {
        return match publish(&root, Path::new(&dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("compare: {e}");
                ExitCode::from(2)
            }
        };
    }
    let plan = match parse_plan(&args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::from(2);
        }
    };
    let out = flag(&args, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("compare"));
    let paths = match find_binaries(root, out) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::from(2);
        }
    };
    let node = command_line("node", &["--version"]);
    let mut servers = vec![Server::Threaded, Server::Async, Server::Poll];
    match &node {
        Some(_) => servers.push(Server::Node),
        None => eprintln!("compare: `node` is not available: the Node twin is left out"),
    }
    servers.push(Server::Ceiling);
    let scenarios = matrix(&plan);
    let load_before = loadavg();
    let started = Instant::now();
    let (results, scenario_s) = run_matrix(&paths, &plan, &scenarios, &servers);
    let context = Context {
        command: format!("./target/release/examples/compare {}", args.join(" "))
            .trim_end()
            .to_string(),
        node,
        elapsed: started.elapsed(),
        scenario_s,
        load_before,
        load_after: loadavg(),
    };
    match write_outputs(&paths, &plan, &scenarios, &servers, &results, &context) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::from(2)
        }
    }
}

/// The value after `name`, if given.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn parse_plan(args: &[String]) -> Result<Plan, String> {
    let mut plan = Plan::default_for(args.iter().any(|a| a == "--quick"));
    plan.full = args.iter().any(|a| a == "--full");
    let number = |name: &str| -> Result<Option<f64>, String> {
        flag(args, name)
            .map(|v| v.parse::<f64>().map_err(|e| format!("{name} {v}: {e}")))
            .transpose()
    };
    if let Some(r) = number("--reps")? {
        plan.reps = (r as usize).max(1);
    }
    if let Some(s) = number("--warmup-s")? {
        plan.warmup_s = s;
    }
    if let Some(s) = number("--duration-s")? {
        plan.duration_s = s;
        plan.max_duration_s = plan.max_duration_s.max(s);
    }
    if let Some(s) = number("--max-duration-s")? {
        plan.max_duration_s = s;
    }
    if let Some(n) = number("--min-deliveries")? {
        plan.min_deliveries = n as u64;
    }
    Ok(plan)
}

fn find_binaries(root: PathBuf, out: PathBuf) -> Result<Paths, String> {
    let profile = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .ok_or("cannot find the build directory")?;
    let paths = Paths {
        tcphub: profile.join("tcphub"),
        async_hub: profile.join("examples").join("async_hub"),
        poll_hub: profile.join("examples").join("poll_hub"),
        relay: profile.join("examples").join("relay_ceiling"),
        root,
        out,
    };
    for bin in [
        &paths.tcphub,
        &paths.async_hub,
        &paths.poll_hub,
        &paths.relay,
    ] {
        if !bin.exists() {
            return Err(format!(
                "{} is missing; run `cargo build --release --bins --examples` (or `make compare`)",
                bin.display()
            ));
        }
    }
    Ok(paths)
}

/// The bench matrix: the three load shapes at 1 x 100 (an unpaced burst,
/// sustained, paced at 50,000 and 100,000 lines/s), the 1,000 lines/s
/// latency row, and idle clients. `--full` adds sustained 1x10, 1x1000 and
/// 10x100; `--quick` shrinks the burst and the idle runs.
fn matrix(plan: &Plan) -> Vec<Scenario> {
    let fan = |key, title, shape, publishers, subscribers, rate, messages| Scenario {
        key,
        title,
        shape,
        kind: Kind::Fanout {
            publishers,
            subscribers,
            rate,
            messages,
        },
    };
    let sustained = |key, title, publishers, subscribers| {
        fan(
            key,
            title,
            Shape::Sustained,
            publishers,
            subscribers,
            None,
            None,
        )
    };
    let paced = |key, title, rate| fan(key, title, Shape::Paced, 1, 100, Some(rate), None);
    let burst = plan.burst_lines();
    let burst_title = if plan.quick {
        "unpaced 100k x 100"
    } else {
        "unpaced 300k x 100"
    };
    let mut out = vec![fan(
        "unpaced-300k",
        burst_title,
        Shape::Unpaced,
        1,
        100,
        None,
        Some(burst),
    )];
    if plan.full {
        out.push(sustained("1x10", "sustained 1x10", 1, 10));
    }
    out.push(sustained("1x100", "sustained 1x100", 1, 100));
    if plan.full {
        out.push(sustained("1x1000", "sustained 1x1000", 1, 1000));
        out.push(sustained("10x100", "sustained 10x100", 10, 100));
    }
    out.push(paced("paced-50k", "paced 50k/s x 100", 50_000));
    out.push(paced("paced-100k", "paced 100k/s x 100", 100_000));
    out.push(paced("latency", "paced 1k/s x 100", 1_000));
    let idle = |key, title, count, hold_s, timeout_s| Scenario {
        key,
        title,
        shape: Shape::Idle,
        kind: Kind::Conns {
            count,
            hold_s,
            timeout_s,
        },
    };
    out.push(idle("idle-1000", "1,000 idle clients", 1_000, 1, 30));
    let big = if plan.quick { 2_000 } else { 10_000 };
    out.push(idle("idle-10000", "10,000 idle clients", big, 1, 25));
    out
}

/// The 10,000-client run is long; it is done once per server.
fn reps_of(scenario: &Scenario, plan: &Plan) -> usize {
    if scenario.key == "idle-10000" {
        1
    } else {
        plan.reps
    }
}

/// Runs everything. Alternating: each repetition goes through every
/// scenario, and within a scenario through every server, the order rotating
/// per repetition so no server always runs first (or right after the
/// heaviest run).
fn run_matrix(
    paths: &Paths,
    plan: &Plan,
    scenarios: &[Scenario],
    servers: &[Server],
) -> (Results, Vec<f64>) {
    let mut results = Results::new();
    let mut scenario_s = vec![0.0; scenarios.len()];
    let cells = |s: &Scenario| servers.iter().filter(|&&v| s.runs_on(v)).count();
    let total: usize = scenarios.iter().map(|s| cells(s) * reps_of(s, plan)).sum();
    let started = Instant::now();
    let mut done = 0;
    for rep in 0..plan.reps {
        for (i, scenario) in scenarios.iter().enumerate() {
            if rep >= reps_of(scenario, plan) {
                continue;
            }
            for k in 0..servers.len() {
                let server = servers[(k + rep) % servers.len()];
                if !scenario.runs_on(server) {
                    continue;
                }
                done += 1;
                let run = run_one(paths, plan, server, scenario);
                scenario_s[i] += run.wall_s;
                println!(
                    "[{done:>3}/{total}] {:>6.1} s  {:<9} {:<20} {}",
                    started.elapsed().as_secs_f64(),
                    server.short(),
                    scenario.title,
                    describe(scenario, &run)
                );
                results.entry((i, server)).or_default().push(run);
            }
        }
    }
    (results, scenario_s)
}

/// The command that starts `server` with the serve flags.
fn server_command(paths: &Paths, server: Server) -> Command {
    let mut command = match server {
        Server::Threaded => {
            let mut c = Command::new(&paths.tcphub);
            c.arg("serve");
            c
        }
        Server::Async => Command::new(&paths.async_hub),
        Server::Poll => Command::new(&paths.poll_hub),
        Server::Node => {
            let mut c = Command::new("node");
            c.arg(paths.root.join("examples").join("node_hub.js"));
            c
        }
        Server::Ceiling => Command::new(&paths.relay),
    };
    command
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--max-clients",
            "20000",
        ])
        .env("RUST_LOG", "warn")
        // A server's complaints when the bench hangs up on it are noise here.
        .stderr(Stdio::null());
    command
}

/// The bench's arguments for `scenario` against `addr` (server `pid`).
fn bench_args(
    plan: &Plan,
    server: Server,
    scenario: &Scenario,
    addr: &str,
    pid: u32,
) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |words: &[&str]| a.extend(words.iter().map(|w| w.to_string()));
    match &scenario.kind {
        Kind::Fanout {
            publishers,
            subscribers,
            rate,
            messages,
        } => {
            push(&["bench", "fanout", "--addr", addr, "--json"]);
            push(&[
                "--pid",
                &pid.to_string(),
                "--size",
                "64",
                // A server that cannot keep the pace fails in 15 s rather
                // than draining for a minute: `make compare` stays bounded.
                "--timeout-s",
                "15",
            ]);
            push(&["--publishers", &publishers.to_string()]);
            push(&["--subscribers", &subscribers.to_string()]);
            if let Some(messages) = messages {
                push(&["--messages", &messages.to_string(), "--unpaced"]);
                push(&["--readers", "1"]);
            } else {
                push(&["--warmup-s", &plan.warmup_s.to_string()]);
                push(&["--duration-s", &plan.duration_s.to_string()]);
                push(&["--max-duration-s", &plan.max_duration_s.to_string()]);
                match rate {
                    Some(rate) => push(&["--rate", &rate.to_string()]),
                    None => push(&["--min-deliveries", &plan.min_deliveries.to_string()]),
                }
            }
            if server == Server::Ceiling {
                push(&["--raw"]);
            }
        }
        Kind::Conns {
            count,
            hold_s,
            timeout_s,
        } => {
            push(&["bench", "conns", "--addr", addr, "--json"]);
            push(&["--pid", &pid.to_string(), "--count", &count.to_string()]);
            push(&["--hold-s", &hold_s.to_string()]);
            push(&["--timeout-s", &timeout_s.to_string()]);
        }
    }
    a
}

fn run_one(paths: &Paths, plan: &Plan, server: Server, scenario: &Scenario) -> Run {
    let started = Instant::now();
    let mut run = match ServerProcess::spawn(server_command(paths, server), Duration::from_secs(30))
    {
        Ok(process) => {
            let addr = process.addr().to_string();
            let args = bench_args(plan, server, scenario, &addr, process.pid());
            let run = run_bench(&paths.tcphub, &args);
            process.kill();
            run
        }
        Err(e) => Run::failed(e.to_string()),
    };
    run.wall_s = started.elapsed().as_secs_f64();
    run
}

/// Runs `tcphub bench ...` and reads its JSON line.
fn run_bench(tcphub: &Path, args: &[String]) -> Run {
    let command = format!("tcphub {}", args.join(" "));
    let output = match Command::new(tcphub)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) => return Run::failed(format!("cannot run the bench: {e}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed = match stdout.lines().find(|l| l.starts_with('{')) {
        Some(line) => Run::from_json(line).map(|r| (r, line.to_string())),
        None => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(stderr.lines().last().unwrap_or("no output").to_string())
        }
    };
    match parsed {
        Ok((mut run, line)) => {
            run.command = command;
            run.json = line;
            run
        }
        Err(why) => Run {
            command,
            ..Run::failed(why)
        },
    }
}

fn describe(scenario: &Scenario, run: &Run) -> String {
    let verdict = if run.ok {
        "ok".to_string()
    } else {
        format!(
            "FAILED: {}",
            run.failure.as_deref().unwrap_or("see the numbers")
        )
    };
    let load = format!(
        "load: steal {:.2}, others {:.2} cores",
        run.steal, run.others
    );
    match scenario.kind {
        Kind::Fanout { .. } => format!(
            "{:>10} {:>8}/dlv  srv {:.2} gen {:.2} cores  p99 {:>9} max {:>9}  {:.1} s {}  lost {} ooo {}  {load}  {verdict}{}",
            rate(run.deliveries_per_s),
            ns(run.server_ns),
            run.server_cores,
            run.generator_cores,
            us(run.p99_us),
            us(run.max_us),
            run.window_s,
            count(run.window_deliveries),
            run.lost,
            run.out_of_order,
            match (run.bottleneck.is_some(), run.saturated) {
                (true, true) => "  [generator-bound, machine saturated]",
                (true, false) => "  [generator-bound]",
                (false, true) => "  [machine saturated]",
                (false, false) => "",
            }
        ),
        Kind::Conns { .. } => format!(
            "{}/{} welcomed in {:.2} s, RSS {}, {} threads, {} files open  {verdict}",
            run.welcomed,
            run.count,
            run.ramp_s,
            mib(run.rss_kib),
            run.threads,
            run.fds
        ),
    }
}

// ---- the figures ----------------------------------------------------------------

/// The spread of one figure of one cell.
fn spread(results: &Results, i: usize, s: Server, f: fn(&Run) -> f64) -> Option<Spread> {
    Spread::of(results.get(&(i, s))?.iter().map(f))
}

fn median(results: &Results, i: usize, s: Server, f: fn(&Run) -> f64) -> f64 {
    spread(results, i, s, f).map_or(f64::NAN, |s| s.median)
}

/// `median (min–max)`, and `n=` when fewer runs than planned had it.
fn cell(sp: Option<Spread>, planned: usize, format: fn(f64) -> String) -> String {
    match sp {
        None => "n/a".into(),
        Some(s) if s.n == 1 => {
            let n = if planned > 1 { " (n=1)" } else { "" };
            format!("{}{n}", format(s.median))
        }
        Some(s) => format!(
            "{} ({}–{}){}",
            format(s.median),
            format(s.min),
            format(s.max),
            if s.n < planned {
                format!(" n={}", s.n)
            } else {
                String::new()
            }
        ),
    }
}

/// A ratio, written one way throughout: this server's median divided by
/// the reference's (`0.62x` = 62% of the reference's figure).
fn ratio(value: f64, reference: f64) -> String {
    if value.is_finite() && reference.is_finite() && reference > 0.0 {
        format!("{:.2}x", value / reference)
    } else {
        "n/a".into()
    }
}

/// A table: one row per scenario that `rows` selects, one column per server;
/// `with_ceiling` adds each server's median as a ratio to the ceiling's.
fn table(
    md: &mut String,
    t: &Tabled<'_>,
    first: &str,
    keep: fn(&Scenario) -> bool,
    f: fn(&Run) -> f64,
    format: fn(f64) -> String,
    with_ceiling: bool,
) {
    let _ = write!(md, "| {first} |");
    for s in t.servers {
        let _ = write!(md, " {} |", s.name());
    }
    let _ = write!(md, "\n| --- |{}\n", " ---: |".repeat(t.servers.len()));
    for (i, sc) in t.scenarios.iter().enumerate().filter(|(_, s)| keep(s)) {
        let planned = reps_of(sc, t.plan);
        let ceiling = median(t.results, i, Server::Ceiling, f);
        let _ = write!(md, "| {} |", sc.title);
        for &s in t.servers {
            if !sc.runs_on(s) {
                let _ = write!(md, " — |");
                continue;
            }
            let c = cell(spread(t.results, i, s, f), planned, format);
            let v = median(t.results, i, s, f);
            if with_ceiling && s != Server::Ceiling && ceiling.is_finite() {
                let _ = write!(md, " {c}; **{}** |", ratio(v, ceiling));
            } else {
                let _ = write!(md, " {c} |");
            }
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md);
}

/// What every table needs.
struct Tabled<'a> {
    plan: &'a Plan,
    scenarios: &'a [Scenario],
    servers: &'a [Server],
    results: &'a Results,
}

fn header(md: &mut String, t: &Tabled<'_>, ctx: &Context) {
    let plan = t.plan;
    let _ = writeln!(
        md,
        "# Benchmarks: the threaded hub, its twins, and the ceiling\n"
    );
    let _ = writeln!(
        md,
        "Written by `make compare` (examples/compare.rs) under target/compare/, copied here by `make compare-docs`; do not edit by hand.\n"
    );
    let _ = writeln!(md, "- **Date:** {} UTC", utc_now());
    let _ = writeln!(md, "- **Machine:** {}", machine());
    let _ = writeln!(
        md,
        "- **Toolchain:** {}; Node {}",
        command_line("rustc", &["--version"]).unwrap_or_else(|| "rustc ?".into()),
        ctx.node.as_deref().unwrap_or("absent (Node twin left out)")
    );
    let _ = writeln!(
        md,
        "- **Command:** `make compare`, which ran `{}`; each run's exact bench command is in the list of runs below.",
        ctx.command
    );
    let _ = writeln!(
        md,
        "- **Method:** {} repetition(s) of every fan-out and 1,000-client run (10,000 clients: once), servers alternating, a fresh server process per run; the unpaced burst is measured whole; each timed (sustained or paced) run publishes for {} s of warm-up (delivered and checked, not measured), then a window of at least {} s{}, at most {} s. The load shapes are below; every row says its shape.",
        plan.reps,
        plan.warmup_s,
        plan.duration_s,
        if plan.min_deliveries > 0 {
            format!(
                " and at least {} deliveries (unlimited-rate runs)",
                count(plan.min_deliveries as f64)
            )
        } else {
            String::new()
        },
        plan.max_duration_s
    );
    let _ = writeln!(
        md,
        "- **Servers:** {} (`tcphub serve`), {} (`examples/async_hub.rs`), {} (`examples/poll_hub/`), {} (`examples/node_hub.js`), {} (`examples/relay_ceiling.rs`, one-publisher fan-outs only, measured with `bench fanout --raw`, whose lines are 12 bytes longer so the relay delivers as many bytes per delivery as a hub's `MSG guest-1 <line>`), each started with `--host 127.0.0.1 --port 0 --max-clients 20000` and its other flags at their defaults; the bench (`tcphub bench`) is a separate process.",
        Server::Threaded.name(),
        Server::Async.name(),
        Server::Poll.name(),
        Server::Node.name(),
        Server::Ceiling.name()
    );
    let _ = writeln!(
        md,
        "- **Time taken:** {:.0} s in all; per scenario (every server and repetition): {}.\n",
        ctx.elapsed.as_secs_f64(),
        t.scenarios
            .iter()
            .zip(&ctx.scenario_s)
            .map(|(s, secs)| format!("{} {secs:.0} s", s.title))
            .collect::<Vec<_>>()
            .join(", ")
    );
    load_section(md, t, ctx);
}

/// The machine's load while the comparison ran.
fn load_section(md: &mut String, t: &Tabled<'_>, ctx: &Context) {
    let all: Vec<&Run> = t.results.values().flatten().collect();
    let sp = |f: fn(&Run) -> f64| Spread::of(all.iter().map(|r| f(r)));
    let show = |s: Option<Spread>| match s {
        Some(s) => format!("median {:.2}, max {:.2} cores (n={})", s.median, s.max, s.n),
        None => "n/a".into(),
    };
    let _ = writeln!(md, "## Load on the machine while it ran\n");
    let _ = writeln!(
        md,
        "Over each fan-out run's measured window, from /proc/stat: **steal** {}; **other processes** (every busy core not the server's or the bench's) {}; whole machine busy {}. Load average before: {}; after: {}.",
        show(sp(|r| r.steal)),
        show(sp(|r| r.others)),
        show(sp(|r| r.machine_busy)),
        ctx.load_before,
        ctx.load_after
    );
    let bound = all.iter().filter(|r| r.bottleneck.is_some()).count();
    let _ = writeln!(
        md,
        "{bound} of {} fan-out runs were **generator-bound** (a bench thread above 90% of a core, or the bench above 90% of all cores): there, deliveries/s says as much about the bench as about the server.\n",
        all.iter().filter(|r| r.window_s.is_finite()).count()
    );
    let saturated = all.iter().filter(|r| r.saturated).count();
    let _ = writeln!(
        md,
        "{saturated} fan-out runs had the **machine saturated** (above 90% of all cores busy: server, bench and other processes together): there, the server did not have the CPU it could have used, so deliveries/s is a floor and CPU per delivery is the figure to compare.\n"
    );
}

/// The whole report, section by section; each section is a helper so the
/// order of the report reads here at a glance.
fn render_markdown(t: &Tabled<'_>, ctx: &Context) -> String {
    let mut md = String::new();
    header(&mut md, t, ctx);
    shapes_section(&mut md, t);
    reading_guide(&mut md);
    throughput_section(&mut md, t);
    cpu_section(&mut md, t);
    generator_section(&mut md, t);
    latency_section(&mut md, t);
    idle_section(&mut md, t);
    loss_section(&mut md, t);
    targets_section(&mut md, t);
    runs_section(&mut md, t);
    notes_section(&mut md);
    md
}

/// The load shapes, and the bench flags each row ran with: a figure is
/// only comparable with figures of the same shape.
fn shapes_section(md: &mut String, t: &Tabled<'_>) {
    let _ = writeln!(
        md,
        "## Load shapes
"
    );
    let _ = writeln!(
        md,
        "64-byte lines (76 bytes delivered per delivery, by every server: a hub's `MSG guest-1 ` prefix, the relay ceiling's longer lines). Each row of every table below is one of these; its first word is its shape.\n"
    );
    let _ = writeln!(
        md,
        "| row | shape | what | bench flags |\n| --- | --- | --- | --- |"
    );
    for sc in t.scenarios {
        let flags = shown_flags(&bench_args(t.plan, Server::Threaded, sc, "ADDR", 0));
        let _ = writeln!(
            md,
            "| {} | {} | {} | `{flags}` |",
            sc.title,
            sc.shape.name(),
            sc.shape.how()
        );
    }
    let _ = writeln!(md);
}

/// A bench command's flags without the ones every run has and that change
/// from run to run (`bench <kind>`, `--addr`, `--pid`, `--json`).
fn shown_flags(args: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut words = args.iter().skip(2).map(String::as_str);
    while let Some(w) = words.next() {
        match w {
            "--addr" | "--pid" => {
                words.next();
            }
            "--json" => {}
            _ => out.push(w),
        }
    }
    out.join(" ")
}

/// How every figure below is written (median, range, ratio direction),
/// and the chart: read once, before the tables.
fn reading_guide(md: &mut String) {
    let _ = writeln!(
        md,
        "Every figure is the **median over the runs, with the range (min–max) in parentheses**; `n=` says when fewer runs than planned produced it. **Ratios are written one way throughout: this server's median divided by the reference's** (the relay ceiling in the tables, the async twin where a target says so), whatever the figure: for deliveries/s higher is better, for CPU per delivery and latency lower is better. Lines are 64 bytes.\n"
    );
    let _ = writeln!(
        md,
        "![deliveries/s, CPU per delivery and p99 latency per server](benchmarks.svg)\n"
    );
}

/// Fan-out deliveries per second, unlimited-rate runs only (a
/// rate-limited run delivers what its limit lets through, not what the
/// server can do).
fn throughput_section(md: &mut String, t: &Tabled<'_>) {
    let unlimited = |s: &Scenario| s.is_fanout() && !s.rate_limited();
    let _ = writeln!(
        md,
        "## Fan-out: deliveries per second, and as a ratio to the ceiling\n"
    );
    table(
        md,
        t,
        "scenario",
        unlimited,
        |r| r.deliveries_per_s,
        rate,
        true,
    );
}

/// What one delivery costs the server in CPU, and how many cores it used:
/// the figure to compare when the machine is saturated.
fn cpu_section(md: &mut String, t: &Tabled<'_>) {
    let _ = writeln!(
        md,
        "## Fan-out: server CPU per delivery, and as a ratio to the ceiling\n"
    );
    let _ = writeln!(
        md,
        "The server's user + system CPU time over the window (/proc/<pid>/stat) divided by the deliveries in it: the cost of one line reaching one client, kernel included. Lower is better.\n"
    );
    table(
        md,
        t,
        "scenario",
        Scenario::is_fanout,
        |r| r.server_ns,
        ns,
        true,
    );
    let _ = writeln!(md, "Cores the server used over the window:\n");
    table(
        md,
        t,
        "scenario",
        Scenario::is_fanout,
        |r| r.server_cores,
        cores,
        false,
    );
}

/// What the load generator itself used: shows when a figure says more
/// about the bench than about the server.
fn generator_section(md: &mut String, t: &Tabled<'_>) {
    let _ = writeln!(
        md,
        "## The generator (`tcphub bench`): cores used, and its busiest thread\n"
    );
    table(
        md,
        t,
        "bench cores",
        Scenario::is_fanout,
        |r| r.generator_cores,
        cores,
        false,
    );
    table(
        md,
        t,
        "busiest bench thread",
        Scenario::is_fanout,
        |r| r.busiest_thread_cores,
        percent,
        false,
    );
    let _ = writeln!(
        md,
        "Receiver threads the bench ended with (one more starts while one is above 70 % of a core; the burst runs with one):\n"
    );
    table(
        md,
        t,
        "receiver threads",
        Scenario::is_fanout,
        |r| r.receivers,
        int,
        false,
    );
}

/// Latency percentiles, with the warning that unlimited-rate runs measure
/// queueing rather than latency.
fn latency_section(md: &mut String, t: &Tabled<'_>) {
    let _ = writeln!(md, "## Fan-out: latency p50 / p99 / max\n");
    let _ = writeln!(
        md,
        "Unlimited-rate runs measure queueing (the publisher writes as fast as the server reads), so their latencies are mostly time spent behind earlier lines; the rate-limited row is the one that measures latency.\n"
    );
    table(md, t, "p50", Scenario::is_fanout, |r| r.p50_us, us, false);
    table(md, t, "p99", Scenario::is_fanout, |r| r.p99_us, us, true);
    table(md, t, "max", Scenario::is_fanout, |r| r.max_us, us, false);
}

/// The closing notes, read from docs/benchmarks-notes.md so they are
/// edited as prose rather than in code.
fn notes_section(md: &mut String) {
    let notes = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join("benchmarks-notes.md");
    let _ = writeln!(md, "## How to read these figures\n");
    match std::fs::read_to_string(&notes) {
        Ok(text) => md.push_str(&text),
        Err(_) => md.push_str("(docs/benchmarks-notes.md is missing.)\n"),
    }
}

fn idle_section(md: &mut String, t: &Tabled<'_>) {
    let idle = |s: &Scenario| !s.is_fanout();
    let _ = writeln!(
        md,
        "## Idle connections: time to welcome all, server memory and threads\n"
    );
    table(md, t, "welcomed", idle, |r| r.welcomed, int, false);
    table(
        md,
        t,
        "seconds to welcome all",
        idle,
        |r| r.ramp_s,
        secs,
        false,
    );
    table(md, t, "server RSS", idle, |r| r.rss_kib, mib, false);
    table(md, t, "server threads", idle, |r| r.threads, int, false);
}

/// Deliveries lost and out of order, summed over the runs of the servers
/// `keep` accepts.
fn loss_totals(results: &Results, keep: impl Fn(Server) -> bool) -> (f64, f64) {
    let sum = |f: fn(&Run) -> f64| {
        results
            .iter()
            .filter(|((_, server), _)| keep(*server))
            .flat_map(|(_, runs)| runs)
            .map(f)
            .filter(|x| x.is_finite())
            .sum::<f64>()
    };
    (sum(|r| r.lost), sum(|r| r.out_of_order))
}

/// Lost and reordered deliveries over every run, and the runs that failed.
fn loss_section(md: &mut String, t: &Tabled<'_>) {
    let _ = writeln!(md, "## Loss, order and failures\n");
    let (lost, ooo) = loss_totals(t.results, |_| true);
    let _ = writeln!(
        md,
        "Over all fan-out runs: {lost} deliveries lost, {ooo} out of order."
    );
    let mut failures = Vec::new();
    for ((i, s), runs) in t.results {
        for (n, r) in runs.iter().enumerate().filter(|(_, r)| !r.ok) {
            failures.push(format!(
                "- {} / {} / run {}: {}",
                s.name(),
                t.scenarios[*i].title,
                n + 1,
                r.failure.as_deref().unwrap_or("see the figures")
            ));
        }
    }
    if failures.is_empty() {
        let _ = writeln!(
            md,
            "Every run passed (everyone welcomed, nothing lost or reordered).\n"
        );
    } else {
        let _ = writeln!(md, "Runs that did not pass:\n\n{}\n", failures.join("\n"));
    }
}

/// One target: what it asks, what was measured, whether it is met.
struct Target {
    what: String,
    measured: String,
    met: bool,
    note: String,
}

/// The median of `f` for scenario `key` and `server`.
fn fig(t: &Tabled<'_>, key: &str, server: Server, f: fn(&Run) -> f64) -> f64 {
    t.scenarios
        .iter()
        .position(|s| s.key == key)
        .map_or(f64::NAN, |i| median(t.results, i, server, f))
}

/// How many of a cell's runs were generator-bound, and how many had the
/// machine saturated.
fn bound_runs(t: &Tabled<'_>, key: &str, server: Server) -> (usize, usize) {
    let runs = t
        .scenarios
        .iter()
        .position(|s| s.key == key)
        .and_then(|i| t.results.get(&(i, server)));
    let count = |f: fn(&Run) -> bool| runs.map_or(0, |r| r.iter().filter(|r| f(r)).count());
    (count(|r| r.bottleneck.is_some()), count(|r| r.saturated))
}

/// Whether a throughput comparison was the servers' or the machine's.
fn rate_note(bound: ((usize, usize), (usize, usize))) -> String {
    let ((tg, ts), (ag, asat)) = bound;
    let mut notes = Vec::new();
    if tg + ag > 0 {
        notes.push(format!(
            "generator-bound in {tg} threaded and {ag} async runs (the bench set those rates)"
        ));
    }
    if ts + asat > 0 {
        notes.push(format!(
            "machine saturated in {ts} threaded and {asat} async runs (the CPU, shared with the bench and other processes, set those rates)"
        ));
    }
    if notes.is_empty() {
        "the generator was not the bottleneck".into()
    } else {
        notes.join("; ")
    }
}

/// Issue 17's numbers, each on the shape it names: CPU per delivery
/// against the ceiling at saturating rates (the burst and sustained rows)
/// and at paced rates, against the async twin at saturating rates; no loss
/// in the unpaced burst with the servers' default flags.
fn targets(t: &Tabled<'_>) -> Vec<Target> {
    let mut out = Vec::new();
    let title = |key: &str| scenario_title(t, key);
    let cpu = |key: &str, server| fig(t, key, server, |r| r.server_ns);
    for (key, limit) in [
        ("unpaced-300k", 1.15),
        ("1x100", 1.15),
        ("paced-50k", 1.05),
        ("paced-100k", 1.05),
    ] {
        let (thr, ceil) = (cpu(key, Server::Threaded), cpu(key, Server::Ceiling));
        out.push(Target {
            what: format!(
                "{}: threaded CPU per delivery ≤ {limit:.2}x the ceiling's",
                title(key)
            ),
            measured: format!("{} vs {}: {}", ns(thr), ns(ceil), ratio(thr, ceil)),
            met: thr <= limit * ceil,
            note: String::new(),
        });
    }
    for key in ["unpaced-300k", "1x100"] {
        let (thr, asy) = (cpu(key, Server::Threaded), cpu(key, Server::Async));
        out.push(Target {
            what: format!(
                "{}: threaded CPU per delivery ≤ 0.5x the async twin's",
                title(key)
            ),
            measured: format!("{} vs {}: {}", ns(thr), ns(asy), ratio(thr, asy)),
            met: thr <= 0.5 * asy,
            note: String::new(),
        });
    }
    let key = "1x100";
    let (thr, asy) = (
        fig(t, key, Server::Threaded, |r| r.deliveries_per_s),
        fig(t, key, Server::Async, |r| r.deliveries_per_s),
    );
    let bound = (
        bound_runs(t, key, Server::Threaded),
        bound_runs(t, key, Server::Async),
    );
    out.push(Target {
        what: format!(
            "{}: threaded deliveries/s ≥ 1.5x the async twin's",
            title(key)
        ),
        measured: format!("{} vs {}: {}", rate(thr), rate(asy), ratio(thr, asy)),
        met: thr >= 1.5 * asy,
        note: rate_note(bound),
    });
    out.extend(loss_and_latency_targets(t));
    out
}

/// The title of scenario `key` as the report prints it.
fn scenario_title(t: &Tabled<'_>, key: &str) -> String {
    t.scenarios
        .iter()
        .find(|s| s.key == key)
        .map_or(key.to_string(), |s| s.title.to_string())
}

/// The targets that are not about CPU: no loss in the burst, the paced
/// 1k latency, and nothing lost or reordered anywhere.
fn loss_and_latency_targets(t: &Tabled<'_>) -> Vec<Target> {
    let title = |key: &str| scenario_title(t, key);
    let mut out = Vec::new();
    let burst_lost = t
        .scenarios
        .iter()
        .position(|s| s.key == "unpaced-300k")
        .and_then(|i| t.results.get(&(i, Server::Threaded)))
        .map_or(f64::NAN, |runs| runs.iter().map(|r| r.lost).sum());
    out.push(Target {
        what: format!(
            "{}: threaded, default flags, one reader thread: 0 lost",
            title("unpaced-300k")
        ),
        measured: format!("{} lost", count(burst_lost)),
        met: burst_lost == 0.0,
        note: String::new(),
    });
    let p99 = fig(t, "latency", Server::Threaded, |r| r.p99_us);
    let max = fig(t, "latency", Server::Threaded, |r| r.max_us);
    out.push(Target {
        what: format!("{}: threaded p99 ≤ 1 ms", title("latency")),
        measured: us(p99),
        met: p99 <= 1000.0,
        note: String::new(),
    });
    out.push(Target {
        what: format!("{}: threaded max ≤ 5 ms", title("latency")),
        measured: us(max),
        met: max <= 5000.0,
        note: String::new(),
    });
    // The hub's own runs: a twin that cannot keep up (the Node twin times
    // out on the burst) is in "Loss, order and failures", not held here.
    let (lost, ooo) = loss_totals(t.results, |server| server == Server::Threaded);
    out.push(Target {
        what: "threaded: 0 lost and 0 out of order in every run".into(),
        measured: format!("{lost} lost, {ooo} out of order"),
        met: lost == 0.0 && ooo == 0.0,
        note: String::new(),
    });
    out
}

fn targets_section(md: &mut String, t: &Tabled<'_>) {
    let _ = writeln!(md, "## The threaded hub against issue 17's targets\n");
    let _ = writeln!(
        md,
        "Medians; what limits the ones not met is in docs/benchmarks-notes.md (below) and docs/architecture.md.\n"
    );
    let _ = writeln!(
        md,
        "| target | measured | met | note |\n| --- | ---: | :---: | --- |"
    );
    for target in targets(t) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            target.what,
            target.measured,
            if target.met { "met" } else { "**not met**" },
            target.note
        );
    }
    let _ = writeln!(md);
}

fn runs_section(md: &mut String, t: &Tabled<'_>) {
    let _ = writeln!(md, "## Every run\n");
    let n = t.results.values().map(Vec::len).sum::<usize>();
    let _ = writeln!(
        md,
        "<details><summary>{n} runs, in matrix order (they ran interleaved)</summary>\n\n```text"
    );
    for (i, sc) in t.scenarios.iter().enumerate() {
        for &s in t.servers {
            for (n, r) in t.results.get(&(i, s)).into_iter().flatten().enumerate() {
                let _ = writeln!(
                    md,
                    "{:<20} {:<9} #{} {:.0} s {}",
                    sc.title,
                    s.short(),
                    n + 1,
                    r.wall_s,
                    describe(sc, r)
                );
                let _ = writeln!(md, "    $ {}", r.command);
            }
        }
    }
    let _ = writeln!(md, "```\n\n</details>\n");
}

/// The figures docs/async-comparison.md quotes, as markdown.
fn async_figures(t: &Tabled<'_>) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "<!-- Filled in by `make compare-docs` from target/compare/async-figures.md; do not edit between the markers. -->\n"
    );
    let keep = |s: &Scenario| s.key == "unpaced-300k" || s.key == "1x100";
    let _ = writeln!(
        md,
        "Fan-out deliveries/s (one line delivered to N subscribers counts N), median (min–max), ratio to the relay ceiling; each row's first word is its load shape (see benchmarks.md):\n"
    );
    table(
        &mut md,
        t,
        "scenario",
        keep,
        |r| r.deliveries_per_s,
        rate,
        true,
    );
    let _ = writeln!(
        md,
        "Server CPU per delivery (lower is better), ratio to the relay ceiling:\n"
    );
    let cpu_rows =
        |s: &Scenario| ["unpaced-300k", "1x100", "paced-50k", "paced-100k"].contains(&s.key);
    table(&mut md, t, "scenario", cpu_rows, |r| r.server_ns, ns, true);
    let latency = |s: &Scenario| s.key == "latency";
    let _ = writeln!(
        md,
        "Latency at a steady 1,000 lines/s to 100 subscribers, p99 and max:\n"
    );
    table(&mut md, t, "p99", latency, |r| r.p99_us, us, false);
    table(&mut md, t, "max", latency, |r| r.max_us, us, false);
    let idle = |s: &Scenario| !s.is_fanout();
    let _ = writeln!(
        md,
        "Idle connections: seconds until all are welcomed, server RSS, threads:\n"
    );
    table(
        &mut md,
        t,
        "seconds to welcome all",
        idle,
        |r| r.ramp_s,
        secs,
        false,
    );
    table(&mut md, t, "server RSS", idle, |r| r.rss_kib, mib, false);
    table(
        &mut md,
        t,
        "server threads",
        idle,
        |r| r.threads,
        int,
        false,
    );
    let _ = writeln!(
        md,
        "From the report of {} (see [benchmarks.md](benchmarks.md) for the machine and its load).",
        utc_now()
    );
    md
}

// ---- outputs ----------------------------------------------------------------------

fn write_outputs(
    paths: &Paths,
    plan: &Plan,
    scenarios: &[Scenario],
    servers: &[Server],
    results: &Results,
    ctx: &Context,
) -> Result<(), String> {
    let t = Tabled {
        plan,
        scenarios,
        servers,
        results,
    };
    let out = &paths.out;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write("benchmarks.md", render_markdown(&t, ctx))?;
    write("async-figures.md", async_figures(&t))?;
    let jsonl: String = results
        .values()
        .flatten()
        .filter(|r| !r.json.is_empty())
        .map(|r| format!("{}\n", r.json))
        .collect();
    write("runs.jsonl", jsonl)?;
    let svg = out.join("benchmarks.svg");
    draw_chart(&svg, &t).map_err(|e| format!("cannot draw {}: {e}", svg.display()))?;
    println!(
        "wrote benchmarks.md, benchmarks.svg, async-figures.md and runs.jsonl in {} ({:.0} s); `make compare-docs` copies them into docs/",
        out.display(),
        ctx.elapsed.as_secs_f64()
    );
    Ok(())
}

const BEGIN: &str = "<!-- compare:figures:begin -->";
const END: &str = "<!-- compare:figures:end -->";

/// `doc` with what is between its markers replaced by `figures`.
fn splice(doc: &str, figures: &str) -> Result<String, String> {
    let begin = doc.find(BEGIN).ok_or(format!("no {BEGIN} marker"))?;
    let end = doc.find(END).ok_or(format!("no {END} marker"))?;
    if end < begin {
        return Err("the markers are in the wrong order".into());
    }
    Ok(format!(
        "{}{BEGIN}\n{}\n{}",
        &doc[..begin],
        figures.trim_end(),
        &doc[end..]
    ))
}

const NOTES: &str = "## How to read these figures\n";

/// The report with its notes section replaced by docs/benchmarks-notes.md
/// as it is now (notes are prose, edited after a run; the figures are not).
fn with_current_notes(md: &str, docs: &Path) -> String {
    match (
        md.find(NOTES),
        std::fs::read_to_string(docs.join("benchmarks-notes.md")),
    ) {
        (Some(at), Ok(notes)) => format!("{}{NOTES}\n{notes}", &md[..at]),
        _ => md.to_string(),
    }
}

/// `make compare-docs`: a finished report from `from` into docs/.
fn publish(root: &Path, from: &Path) -> Result<(), String> {
    let docs = root.join("docs");
    let read = |name: &str| {
        std::fs::read_to_string(from.join(name)).map_err(|e| {
            format!(
                "{}: {e} (run `make compare` first)",
                from.join(name).display()
            )
        })
    };
    let md = with_current_notes(&read("benchmarks.md")?, &docs);
    let svg = read("benchmarks.svg")?;
    let figures = read("async-figures.md")?;
    let doc_path = docs.join("async-comparison.md");
    let doc =
        std::fs::read_to_string(&doc_path).map_err(|e| format!("{}: {e}", doc_path.display()))?;
    let doc = splice(&doc, &figures)?;
    for (name, text) in [
        ("benchmarks.md", &md),
        ("benchmarks.svg", &svg),
        ("async-comparison.md", &doc),
    ] {
        std::fs::write(docs.join(name), text).map_err(|e| format!("docs/{name}: {e}"))?;
    }
    println!(
        "docs/benchmarks.md, docs/benchmarks.svg and docs/async-comparison.md now hold the report of {}",
        from.display()
    );
    Ok(())
}

// ---- the chart ----------------------------------------------------------------------

/// One panel: a figure on a fixed log axis.
struct Panel {
    caption: &'static str,
    y_desc: &'static str,
    value: fn(&Run) -> f64,
    /// The axis, in powers of ten: fixed, so charts of two runs compare.
    decades: (i32, i32),
    unit: fn(f64) -> String,
    keep: fn(&Scenario) -> bool,
}

fn draw_chart(path: &Path, t: &Tabled<'_>) -> Result<(), String> {
    let root = SVGBackend::new(path, (1000, 1260)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((3, 1));
    let unlimited = |s: &Scenario| s.is_fanout() && !s.rate_limited();
    let specs = [
        Panel {
            caption: "Deliveries per second (higher is better)",
            y_desc: "deliveries/s",
            value: |r| r.deliveries_per_s,
            decades: (4, 9),
            unit: rate,
            keep: unlimited,
        },
        Panel {
            caption: "Server CPU per delivery (lower is better)",
            y_desc: "CPU ns per delivery",
            value: |r| r.server_ns,
            decades: (0, 5),
            unit: ns,
            keep: Scenario::is_fanout,
        },
        Panel {
            caption: "p99 latency (lower is better; unlimited rate = queueing)",
            y_desc: "p99 latency",
            value: |r| r.p99_us,
            decades: (1, 7),
            unit: us,
            keep: Scenario::is_fanout,
        },
    ];
    for (area, spec) in panels.iter().zip(&specs) {
        panel(area, spec, t)?;
    }
    root.present().map_err(|e| e.to_string())
}

type LogChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Bars (median) with error bars (min–max) per scenario and server; the
/// ceiling as a black line across each group. The y axis is log10 of the
/// value, drawn on a linear scale so that ticks fall on every decade.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    spec: &Panel,
    t: &Tabled<'_>,
) -> Result<(), String> {
    let groups: Vec<(usize, &Scenario)> = t
        .scenarios
        .iter()
        .enumerate()
        .filter(|(_, s)| (spec.keep)(s))
        .collect();
    let (lo, hi) = (f64::from(spec.decades.0), f64::from(spec.decades.1));
    let labels: Vec<String> = groups
        .iter()
        .map(|(_, s)| s.title.trim_start_matches("fan-out ").to_string())
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(spec.caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..groups.len() as f64 - 0.5, lo..hi)
        .map_err(|e| e.to_string())?;
    let unit = spec.unit;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len())
        .x_label_formatter(&|x| label_at(&labels, *x))
        .y_labels((hi - lo) as usize + 1)
        .y_max_light_lines(0)
        .y_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                unit(10f64.powf(*v))
            } else {
                String::new()
            }
        })
        .y_desc(spec.y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    minor_ticks(&mut chart, spec.decades, groups.len())?;
    let bars: Vec<Server> = t
        .servers
        .iter()
        .copied()
        .filter(|&s| s != Server::Ceiling)
        .collect();
    let width = 0.8 / bars.len() as f64;
    for (k, &server) in bars.iter().enumerate() {
        server_bars(
            &mut chart,
            t,
            &groups,
            server,
            spec,
            lo,
            -0.4 + k as f64 * width,
            width,
        )?;
    }
    ceiling_lines(&mut chart, t, &groups, spec)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Minor ticks (2, 3, ... 9 times each power of ten) on the y axis, and a
/// faint line across for each.
fn minor_ticks(
    chart: &mut LogChart<'_, '_>,
    decades: (i32, i32),
    groups: usize,
) -> Result<(), String> {
    let left = -0.5;
    let right = groups as f64 - 0.5;
    let tick = (right - left) * 0.012;
    let mut lines = Vec::new();
    for d in decades.0..decades.1 {
        for m in 2..10 {
            let y = f64::from(d) + f64::from(m).log10();
            lines.push(PathElement::new(
                vec![(left, y), (right, y)],
                RGBColor(238, 238, 238),
            ));
            lines.push(PathElement::new(vec![(left, y), (left + tick, y)], BLACK));
        }
    }
    chart.draw_series(lines).map_err(|e| e.to_string())?;
    Ok(())
}

/// One server's bars and error bars across the groups.
#[allow(clippy::too_many_arguments)]
fn server_bars(
    chart: &mut LogChart<'_, '_>,
    t: &Tabled<'_>,
    groups: &[(usize, &Scenario)],
    server: Server,
    spec: &Panel,
    floor: f64,
    offset: f64,
    width: f64,
) -> Result<(), String> {
    let color = server.color();
    let mut bars = Vec::new();
    let mut errors = Vec::new();
    for (x, &(i, _)) in groups.iter().enumerate() {
        let Some(s) = spread(t.results, i, server, spec.value).filter(|s| s.median > 0.0) else {
            continue;
        };
        let left = x as f64 + offset;
        let mid = left + width * 0.45;
        let log = |v: f64| v.max(1e-9).log10();
        bars.push(Rectangle::new(
            [(left, floor), (left + width * 0.9, log(s.median))],
            color.mix(0.8).filled(),
        ));
        let cap = width * 0.2;
        for (a, b) in [
            ((mid, log(s.min)), (mid, log(s.max))),
            ((mid - cap, log(s.min)), (mid + cap, log(s.min))),
            ((mid - cap, log(s.max)), (mid + cap, log(s.max))),
        ] {
            errors.push(PathElement::new(vec![a, b], BLACK.stroke_width(1)));
        }
    }
    chart
        .draw_series(bars)
        .map_err(|e| e.to_string())?
        .label(server.name())
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    chart.draw_series(errors).map_err(|e| e.to_string())?;
    Ok(())
}

/// The relay ceiling's median as a line across each group it ran in.
fn ceiling_lines(
    chart: &mut LogChart<'_, '_>,
    t: &Tabled<'_>,
    groups: &[(usize, &Scenario)],
    spec: &Panel,
) -> Result<(), String> {
    let lines: Vec<PathElement<(f64, f64)>> = groups
        .iter()
        .enumerate()
        .filter_map(|(x, &(i, _))| {
            let v = median(t.results, i, Server::Ceiling, spec.value);
            (v.is_finite() && v > 0.0).then(|| {
                let y = v.log10();
                PathElement::new(
                    vec![(x as f64 - 0.47, y), (x as f64 + 0.47, y)],
                    BLACK.stroke_width(3),
                )
            })
        })
        .collect();
    chart
        .draw_series(lines)
        .map_err(|e| e.to_string())?
        .label("relay ceiling (median; no protocol)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.stroke_width(3)));
    Ok(())
}

/// The x-axis label at position `x`: the group centred there, if any.
fn label_at(labels: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    labels.get(i as usize).cloned().unwrap_or_default()
}

// ---- small helpers --------------------------------------------------------------------

fn rate(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v >= 1e6 {
        format!("{:.2} M/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} k/s", v / 1e3)
    } else {
        format!("{v:.0}/s")
    }
}

fn ns(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v >= 1e3 {
        format!("{:.1} µs", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0} ns")
    } else {
        format!("{v:.1} ns")
    }
}

fn us(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v >= 1e6 {
        format!("{:.2} s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

/// `show(v)`, or `n/a` for a figure no run produced (NaN, infinite).
fn finite_or_na(v: f64, show: impl Fn(f64) -> String) -> String {
    if v.is_finite() { show(v) } else { "n/a".into() }
}

fn cores(v: f64) -> String {
    finite_or_na(v, |v| format!("{v:.2}"))
}

fn percent(v: f64) -> String {
    finite_or_na(v, |v| format!("{:.0}%", v * 100.0))
}

fn int(v: f64) -> String {
    finite_or_na(v, |v| format!("{v:.0}"))
}

fn secs(v: f64) -> String {
    finite_or_na(v, |v| format!("{v:.2} s"))
}

fn count(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v >= 1e6 {
        format!("{:.1} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn mib(kib: f64) -> String {
    finite_or_na(kib, |kib| format!("{:.1} MiB", kib / 1024.0))
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let kib: f64 = t.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "? GiB".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    format!("{cpu}, {cores} cores, {mem} memory, Linux {kernel}")
}

/// Now, as `YYYY-MM-DD HH:MM`, computed from the Unix clock (no date crate).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02} {h:02}:{m:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcphub::bench::report::FanoutReport;

    fn synthetic() -> (Plan, Vec<Scenario>, Vec<Server>, Results) {
        let plan = Plan {
            full: true,
            ..Plan::default_for(false)
        };
        let scenarios = matrix(&plan);
        let servers = vec![Server::Threaded, Server::Async, Server::Ceiling];
        let mut results = Results::new();
        let run = |dps: f64, ns: f64| Run {
            ok: true,
            deliveries_per_s: dps,
            server_ns: ns,
            window_s: 5.0,
            p99_us: 500.0,
            max_us: 2000.0,
            lost: 0.0,
            out_of_order: 0.0,
            steal: 0.01,
            others: 0.5,
            ..Run::default()
        };
        for (i, s) in scenarios.iter().enumerate().filter(|(_, s)| s.is_fanout()) {
            for (server, base) in [
                (Server::Threaded, 1.0),
                (Server::Async, 2.0),
                (Server::Ceiling, 0.9),
            ] {
                if s.runs_on(server) {
                    let runs = [1.0, 1.1, 0.9, 1.2, 1.0]
                        .iter()
                        .map(|k| run(30e6 / (base * k), 40.0 * base * k))
                        .collect();
                    results.insert((i, server), runs);
                }
            }
        }
        (plan, scenarios, servers, results)
    }

    fn context() -> Context {
        Context {
            command: "./target/release/examples/compare".into(),
            node: None,
            elapsed: Duration::from_secs(100),
            scenario_s: vec![10.0; 6],
            load_before: "0.5 0.4 0.3".into(),
            load_after: "1.0 0.8 0.5".into(),
        }
    }

    #[test]
    fn reads_the_fields_of_the_bench_json() {
        let report = FanoutReport {
            received: 10,
            expected: 10,
            window: Duration::from_secs(2),
            window_deliveries: 8,
            latency_p99: Duration::from_micros(700),
            ..FanoutReport::default()
        };
        let run = Run::from_json(&report.to_json()).unwrap();
        assert!(run.ok, "{run:?}");
        assert_eq!(run.deliveries_per_s, 4.0);
        assert_eq!(run.window_deliveries, 8.0);
        assert_eq!(run.p99_us, 700.0);
        assert!(run.server_ns.is_nan(), "no usage, no CPU figure");
        assert!(run.bottleneck.is_none());
        assert_eq!(run.receivers, 0.0, "receiver_threads is read");
        assert!(Run::from_json("{not json").is_err());
    }

    #[test]
    fn report_has_medians_spreads_ratios_load_and_targets() {
        let (plan, scenarios, servers, results) = synthetic();
        let t = Tabled {
            plan: &plan,
            scenarios: &scenarios,
            servers: &servers,
            results: &results,
        };
        let md = render_markdown(&t, &context());
        for needle in [
            "## Load on the machine while it ran",
            "**steal** median 0.01",
            "**other processes**",
            "`make compare`, which ran `./target/release/examples/compare`",
            "## Fan-out: server CPU per delivery",
            // threaded 1x100: median 30 M/s, runs 25-33.3 M/s; ceiling median 33.3 M/s
            "| sustained 1x100 | 30.00 M/s (25.00 M/s–33.33 M/s); **0.90x** |",
            "40 ns (36 ns–48 ns); **1.11x**",
            "divided by the reference's",
            "## Load shapes",
            "| unpaced 300k x 100 | unpaced burst |",
            "`--size 64 --timeout-s 15 --publishers 1 --subscribers 100 --messages 300000 --unpaced --readers 1` |",
            "| paced 50k/s x 100 | paced |",
            "| sustained 1x100: threaded CPU per delivery ≤ 1.15x the ceiling's | 40 ns vs 36 ns: 1.11x | met |",
            "| paced 100k/s x 100: threaded CPU per delivery ≤ 1.05x the ceiling's | 40 ns vs 36 ns: 1.11x | **not met** |",
            "| unpaced 300k x 100: threaded CPU per delivery ≤ 0.5x the async twin's | 40 ns vs 80 ns: 0.50x | met |",
            "threaded deliveries/s ≥ 1.5x the async twin's | 30.00 M/s vs 15.00 M/s: 2.00x | met |",
            "| unpaced 300k x 100: threaded, default flags, one reader thread: 0 lost | 0 lost | met |",
            "paced 1k/s x 100: threaded p99 ≤ 1 ms | 500 µs | met",
            "threaded: 0 lost and 0 out of order in every run | 0 lost, 0 out of order | met",
            "| sustained 10x100 | 30.00 M/s (25.00 M/s–33.33 M/s) | 15.00 M/s (12.50 M/s–16.67 M/s) | — |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
        // the throughput table has no paced rows: a paced rate is the pace
        let throughput = &md[md.find("deliveries per second").unwrap()..];
        let throughput = &throughput[..throughput.find("\n## ").unwrap()];
        assert!(!throughput.contains("paced 50k"), "{throughput}");
        let figures = async_figures(&t);
        assert!(figures.contains("| unpaced 300k x 100 |"), "{figures}");
        assert!(figures.contains("| paced 100k/s x 100 |"), "{figures}");
        assert!(!figures.contains("10x100"), "{figures}");
    }

    #[test]
    fn shown_flags_leave_out_what_every_run_has() {
        let args: Vec<String> =
            "bench fanout --addr a:1 --json --pid 0 --min-deliveries 0 --rate 5"
                .split(' ')
                .map(String::from)
                .collect();
        assert_eq!(shown_flags(&args), "--min-deliveries 0 --rate 5");
    }

    #[test]
    fn a_cell_says_how_many_runs_it_has() {
        let s = Spread::of([1.0, 2.0, 3.0]);
        assert_eq!(cell(s, 5, int), "2 (1–3) n=3");
        assert_eq!(cell(s, 3, int), "2 (1–3)");
        assert_eq!(cell(Spread::of([4.0]), 5, int), "4 (n=1)");
        assert_eq!(cell(None, 5, int), "n/a");
        assert_eq!(ratio(1.0, 4.0), "0.25x");
        assert_eq!(ratio(1.0, 0.0), "n/a");
    }

    #[test]
    fn the_doc_markers_are_filled_and_the_rest_kept() {
        let doc = format!("intro\n{BEGIN}\nold figures\n{END}\noutro\n");
        let out = splice(&doc, "new figures\n").unwrap();
        assert_eq!(out, format!("intro\n{BEGIN}\nnew figures\n{END}\noutro\n"));
        assert_eq!(splice(&out, "new figures").unwrap(), out, "idempotent");
        assert!(splice("no markers", "x").is_err());
        assert!(splice(&format!("{END}{BEGIN}"), "x").is_err());
    }

    #[test]
    fn the_chart_is_drawn() {
        let (plan, scenarios, servers, results) = synthetic();
        let t = Tabled {
            plan: &plan,
            scenarios: &scenarios,
            servers: &servers,
            results: &results,
        };
        let path = std::env::temp_dir().join(format!("compare-test-{}.svg", std::process::id()));
        draw_chart(&path, &t).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.contains("relay ceiling"), "legend");
        assert!(
            svg.contains("100.00 M/s") && svg.contains("10 µs"),
            "decade labels"
        );
    }

    #[test]
    fn the_matrix_alternates_and_the_ceiling_runs_only_one_publisher() {
        let plan = Plan::default_for(true);
        let scenarios = matrix(&plan);
        assert!(scenarios.iter().all(|s| s.key != "10x100"), "--full only");
        let full = matrix(&Plan {
            full: true,
            ..plan.clone()
        });
        let ten = full.iter().find(|s| s.key == "10x100").unwrap();
        assert!(!ten.runs_on(Server::Ceiling) && ten.runs_on(Server::Threaded));
        let key = |k: &str| scenarios.iter().find(|s| s.key == k).unwrap();
        let args = bench_args(&plan, Server::Ceiling, key("1x100"), "127.0.0.1:1", 42);
        let line = args.join(" ");
        assert!(
            line.contains("--raw") && line.contains("--pid 42") && line.contains("--duration-s 1"),
            "{line}"
        );
        // the burst: a count, unpaced, one reader, no timing flags
        let line = bench_args(&plan, Server::Poll, key("unpaced-300k"), "a:1", 7).join(" ");
        assert!(
            line.contains("--messages 100000 --unpaced --readers 1")
                && !line.contains("--duration"),
            "{line}"
        );
        let line = bench_args(&plan, Server::Node, key("paced-50k"), "a:1", 7).join(" ");
        assert!(
            line.contains("--rate 50000 --") || line.ends_with("--rate 50000"),
            "{line}"
        );
        assert!(scenarios.iter().all(|s| s.runs_on(Server::Poll)));
        let shapes: Vec<Shape> = scenarios.iter().map(|s| s.shape).collect();
        for shape in [Shape::Unpaced, Shape::Sustained, Shape::Paced, Shape::Idle] {
            assert!(shapes.contains(&shape), "{shape:?}");
        }
    }
}

//! `make compare`: the same bench matrix against the three servers (the
//! threaded hub, the async twin, the Node twin), alternating them, then
//! docs/benchmarks.md (table of medians, ratios to the threaded hub) and
//! docs/benchmarks.svg (deliveries/s and p99 latency per server).
//!
//! Every run starts a fresh server process and runs `tcphub bench` as a
//! separate process against it, so each server's figures are its own and
//! no run inherits another's state. Expects the release binaries to be
//! built (the Makefile does it): target/release/tcphub and
//! target/release/examples/async_hub.
//!
//! `--quick` runs one repetition with smaller counts (for trying it out);
//! `--out DIR` writes somewhere else than docs/.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use plotters::coord::Shift;
use plotters::prelude::*;
use tcphub::bench::target::spawn_server;

/// One server of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Server {
    Threaded,
    Async,
    Node,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Threaded => "threaded hub",
            Server::Async => "async twin (tokio)",
            Server::Node => "Node twin",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Server::Threaded => "threaded",
            Server::Async => "async",
            Server::Node => "node",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Server::Threaded => RGBColor(31, 119, 180),
            Server::Async => RGBColor(255, 127, 14),
            Server::Node => RGBColor(44, 160, 44),
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone)]
struct Scenario {
    key: &'static str,
    title: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Fanout {
        publishers: u64,
        subscribers: u64,
        messages: u64,
        rate: Option<u64>,
    },
    Conns {
        count: u64,
        hold_s: u64,
        timeout_s: u64,
    },
}

/// The figures of one run, as read from the bench's JSON.
#[derive(Debug, Clone, Default)]
struct Run {
    ok: bool,
    failure: Option<String>,
    // fan-out
    deliveries_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    lost: f64,
    out_of_order: f64,
    // conns
    welcomed: f64,
    count: f64,
    ramp_s: f64,
    rss_kib: f64,
    threads: f64,
    fds: f64,
}

struct Paths {
    root: PathBuf,
    tcphub: PathBuf,
    async_hub: PathBuf,
    out: PathBuf,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("docs"));
    let Some(profile) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
    else {
        eprintln!("compare: cannot find the build directory");
        return ExitCode::from(2);
    };
    let paths = Paths {
        tcphub: profile.join("tcphub"),
        async_hub: profile.join("examples").join("async_hub"),
        root,
        out,
    };
    for bin in [&paths.tcphub, &paths.async_hub] {
        if !bin.exists() {
            eprintln!(
                "compare: {} is missing; run `cargo build --release --bins --examples` (or `make compare`)",
                bin.display()
            );
            return ExitCode::from(2);
        }
    }
    let node = node_version();
    let mut servers = vec![Server::Threaded, Server::Async];
    match &node {
        Some(_) => servers.push(Server::Node),
        None => eprintln!("compare: `node` is not available: the Node twin is left out"),
    }

    let scenarios = matrix(quick);
    let reps = if quick { 1 } else { 3 };
    let started = Instant::now();
    let mut results: BTreeMap<(usize, Server), Vec<Run>> = BTreeMap::new();
    let total_runs: usize = scenarios
        .iter()
        .map(|s| servers.len() * reps_of(s, reps))
        .sum();
    let mut done = 0;
    // Alternate: each repetition goes through every scenario, and within a
    // scenario through every server, the order rotating per repetition so
    // no server always runs first (or right after the heaviest run).
    for rep in 0..reps {
        for (i, scenario) in scenarios.iter().enumerate() {
            if rep >= reps_of(scenario, reps) {
                continue;
            }
            for k in 0..servers.len() {
                let server = servers[(k + rep) % servers.len()];
                done += 1;
                let run = run_one(&paths, server, scenario);
                println!(
                    "[{done:>2}/{total_runs}] {:>6.1} s  {:<9} {:<22} {}",
                    started.elapsed().as_secs_f64(),
                    server.short(),
                    scenario.title,
                    describe(scenario, &run)
                );
                results.entry((i, server)).or_default().push(run);
            }
        }
    }
    let elapsed = started.elapsed();
    let markdown = render_markdown(
        &paths, &scenarios, &servers, &results, reps, node, elapsed, quick,
    );
    if let Err(e) = std::fs::create_dir_all(&paths.out) {
        eprintln!("compare: cannot create {}: {e}", paths.out.display());
        return ExitCode::from(2);
    }
    let md_path = paths.out.join("benchmarks.md");
    let svg_path = paths.out.join("benchmarks.svg");
    if let Err(e) = std::fs::write(&md_path, markdown) {
        eprintln!("compare: cannot write {}: {e}", md_path.display());
        return ExitCode::from(2);
    }
    if let Err(e) = draw_chart(&svg_path, &scenarios, &servers, &results) {
        eprintln!("compare: cannot draw {}: {e}", svg_path.display());
        return ExitCode::from(2);
    }
    println!(
        "wrote {} and {} in {:.0} s",
        md_path.display(),
        svg_path.display(),
        elapsed.as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// The bench matrix of the issue. Message counts give about a million
/// deliveries per fan-out run: a fraction of a second for the Rust servers,
/// a few seconds for Node, so the whole comparison fits in five minutes.
fn matrix(quick: bool) -> Vec<Scenario> {
    let scale = if quick { 5 } else { 1 };
    let fan = |key, title, publishers, subscribers, messages: u64| Scenario {
        key,
        title,
        kind: Kind::Fanout {
            publishers,
            subscribers,
            messages: messages / scale,
            rate: None,
        },
    };
    vec![
        fan("1x10", "fan-out 1x10", 1, 10, 100_000),
        fan("1x100", "fan-out 1x100", 1, 100, 10_000),
        fan("1x1000", "fan-out 1x1000", 1, 1000, 1_000),
        fan("10x100", "fan-out 10x100", 10, 100, 1_000),
        Scenario {
            key: "latency",
            title: "1,000 lines/s x 100",
            kind: Kind::Fanout {
                publishers: 1,
                subscribers: 100,
                messages: 2_000 / scale,
                rate: Some(1_000),
            },
        },
        Scenario {
            key: "idle-1000",
            title: "1,000 idle clients",
            kind: Kind::Conns {
                count: 1_000,
                hold_s: 1,
                timeout_s: 30,
            },
        },
        Scenario {
            key: "idle-10000",
            title: "10,000 idle clients",
            kind: Kind::Conns {
                count: if quick { 2_000 } else { 10_000 },
                hold_s: 2,
                timeout_s: 40,
            },
        },
    ]
}

/// The 10,000-client run is long; it is done once per server.
fn reps_of(scenario: &Scenario, reps: usize) -> usize {
    if scenario.key == "idle-10000" {
        1
    } else {
        reps
    }
}

fn run_one(paths: &Paths, server: Server, scenario: &Scenario) -> Run {
    let clients = 20_000u32.to_string();
    let mut command = match server {
        Server::Threaded => {
            let mut c = Command::new(&paths.tcphub);
            c.arg("serve");
            c
        }
        Server::Async => Command::new(&paths.async_hub),
        Server::Node => {
            let mut c = Command::new("node");
            c.arg(paths.root.join("examples").join("node_hub.js"));
            c
        }
    };
    command
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--max-clients",
            &clients,
        ])
        .env("RUST_LOG", "warn")
        // A server's complaints when the bench hangs up on it are noise here.
        .stderr(std::process::Stdio::null());
    let (mut child, addr) = match spawn_server(command) {
        Ok(pair) => pair,
        Err(e) => {
            return Run {
                failure: Some(e.to_string()),
                ..Run::default()
            };
        }
    };
    let mut bench = Command::new(&paths.tcphub);
    bench.args(["bench"]);
    match &scenario.kind {
        Kind::Fanout {
            publishers,
            subscribers,
            messages,
            rate,
        } => {
            bench.args(["fanout", "--addr", &addr.to_string(), "--json"]);
            bench.args(["--publishers", &publishers.to_string()]);
            bench.args(["--subscribers", &subscribers.to_string()]);
            bench.args(["--messages", &messages.to_string(), "--size", "64"]);
            bench.args(["--timeout-s", "60"]);
            if let Some(rate) = rate {
                bench.args(["--rate", &rate.to_string()]);
            }
        }
        Kind::Conns {
            count,
            hold_s,
            timeout_s,
        } => {
            bench.args(["conns", "--addr", &addr.to_string(), "--json"]);
            bench.args(["--pid", &child.id().to_string()]);
            bench.args(["--count", &count.to_string()]);
            bench.args(["--hold-s", &hold_s.to_string()]);
            bench.args(["--timeout-s", &timeout_s.to_string()]);
        }
    }
    let output = bench.output();
    let _ = child.kill();
    let _ = child.wait();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            return Run {
                failure: Some(format!("cannot run the bench: {e}")),
                ..Run::default()
            };
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(json) = stdout.lines().find(|l| l.starts_with('{')) else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no output").to_string();
        return Run {
            failure: Some(last),
            ..Run::default()
        };
    };
    let num = |key: &str| json_number(json, key).unwrap_or(f64::NAN);
    Run {
        ok: json.contains("\"ok\":true"),
        failure: json_string(json, "failure"),
        deliveries_per_s: num("deliveries_per_s"),
        p50_us: num("latency_p50_us"),
        p99_us: num("latency_p99_us"),
        max_us: num("latency_max_us"),
        lost: num("lost"),
        out_of_order: num("out_of_order"),
        welcomed: num("welcomed"),
        count: num("count"),
        ramp_s: num("ramp_s"),
        rss_kib: num("hold_rss_kib"),
        threads: num("hold_threads"),
        fds: num("hold_fds"),
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
    match scenario.kind {
        Kind::Fanout { .. } => format!(
            "{:>9} deliveries/s  p50 {:>9}  p99 {:>9}  max {:>9}  lost {} ooo {}  {verdict}",
            rate(run.deliveries_per_s),
            us(run.p50_us),
            us(run.p99_us),
            us(run.max_us),
            run.lost,
            run.out_of_order
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

// ---- the report ---------------------------------------------------------------

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn med(
    results: &BTreeMap<(usize, Server), Vec<Run>>,
    i: usize,
    s: Server,
    f: fn(&Run) -> f64,
) -> f64 {
    results
        .get(&(i, s))
        .map(|runs| median(runs.iter().map(f)))
        .unwrap_or(f64::NAN)
}

fn ratio(value: f64, base: f64) -> String {
    if value.is_finite() && base.is_finite() && base > 0.0 {
        format!(" ({:.2}x)", value / base)
    } else {
        String::new()
    }
}

#[allow(clippy::too_many_arguments)]
fn render_markdown(
    paths: &Paths,
    scenarios: &[Scenario],
    servers: &[Server],
    results: &BTreeMap<(usize, Server), Vec<Run>>,
    reps: usize,
    node: Option<String>,
    elapsed: std::time::Duration,
    quick: bool,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks: the threaded hub and its twins\n");
    let _ = writeln!(
        md,
        "Written by `make compare` (examples/compare.rs); do not edit by hand, run it again.\n"
    );
    let _ = writeln!(md, "- **Date:** {} UTC", utc_now());
    let _ = writeln!(md, "- **Machine:** {}", machine());
    let _ = writeln!(
        md,
        "- **Toolchain:** {}; Node {}",
        command_line("rustc", &["--version"]).unwrap_or_else(|| "rustc ?".into()),
        node.as_deref().unwrap_or("absent (Node twin left out)")
    );
    let _ = writeln!(
        md,
        "- **Command:** `make compare`{} ({} repetition(s) of each run, servers alternating; whole run {:.0} s)",
        if quick { " -- --quick" } else { "" },
        reps,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "- **Servers:** {} (`tcphub serve`), {} (`examples/async_hub.rs`), {} (`examples/node_hub.js`), each a fresh process per run, `--max-clients 20000`; the bench (`tcphub bench`) is a separate process.\n",
        Server::Threaded.name(),
        Server::Async.name(),
        Server::Node.name()
    );
    let _ = writeln!(
        md,
        "Figures are medians over the repetitions; ratios in parentheses are to the threaded hub (for deliveries/s higher is better, for latency lower is better). Lines are 64 bytes.\n"
    );
    let _ = writeln!(
        md,
        "![deliveries/s and p99 latency per server](benchmarks.svg)\n"
    );

    // Throughput
    let header = |md: &mut String, first: &str| {
        let _ = write!(md, "| {first} |");
        for s in servers {
            let _ = write!(md, " {} |", s.name());
        }
        let _ = writeln!(md);
        let _ = write!(md, "| --- |");
        for _ in servers {
            let _ = write!(md, " ---: |");
        }
        let _ = writeln!(md);
    };
    let _ = writeln!(md, "## Fan-out: deliveries per second\n");
    header(&mut md, "scenario");
    for (i, sc) in scenarios.iter().enumerate() {
        if !matches!(sc.kind, Kind::Fanout { .. }) {
            continue;
        }
        let base = med(results, i, Server::Threaded, |r| r.deliveries_per_s);
        let _ = write!(md, "| {} |", sc.title);
        for &s in servers {
            let v = med(results, i, s, |r| r.deliveries_per_s);
            let _ = write!(
                md,
                " {}{} |",
                rate(v),
                if s == Server::Threaded {
                    String::new()
                } else {
                    ratio(v, base)
                }
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "\n## Fan-out: latency, p50 / p99 / max\n");
    let _ = writeln!(
        md,
        "Unlimited-rate runs measure queueing (the publisher writes as fast as the server reads), so their latencies are mostly time spent waiting behind earlier lines; the rate-limited row is the one that measures latency.\n"
    );
    header(&mut md, "scenario");
    for (i, sc) in scenarios.iter().enumerate() {
        if !matches!(sc.kind, Kind::Fanout { .. }) {
            continue;
        }
        let base = med(results, i, Server::Threaded, |r| r.p99_us);
        let _ = write!(md, "| {} |", sc.title);
        for &s in servers {
            let p99 = med(results, i, s, |r| r.p99_us);
            let _ = write!(
                md,
                " {} / {}{} / {} |",
                us(med(results, i, s, |r| r.p50_us)),
                us(p99),
                if s == Server::Threaded {
                    String::new()
                } else {
                    ratio(p99, base)
                },
                us(med(results, i, s, |r| r.max_us))
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "\n## Idle connections: time to welcome all, server memory and threads\n"
    );
    header(&mut md, "scenario");
    for (i, sc) in scenarios.iter().enumerate() {
        if !matches!(sc.kind, Kind::Conns { .. }) {
            continue;
        }
        let base = med(results, i, Server::Threaded, |r| r.rss_kib);
        let _ = write!(md, "| {} |", sc.title);
        for &s in servers {
            let rss = med(results, i, s, |r| r.rss_kib);
            let _ = write!(
                md,
                " {:.0} of {:.0} in {:.2} s; RSS {}{}; {:.0} threads |",
                med(results, i, s, |r| r.welcomed),
                med(results, i, s, |r| r.count),
                med(results, i, s, |r| r.ramp_s),
                mib(rss),
                if s == Server::Threaded {
                    String::new()
                } else {
                    ratio(rss, base)
                },
                med(results, i, s, |r| r.threads)
            );
        }
        let _ = writeln!(md);
    }

    // Loss and failures
    let _ = writeln!(md, "\n## Loss, order and failures\n");
    let mut failures = Vec::new();
    let mut lost = 0.0;
    let mut ooo = 0.0;
    for ((i, s), runs) in results {
        for (n, r) in runs.iter().enumerate() {
            if r.lost.is_finite() {
                lost += r.lost;
            }
            if r.out_of_order.is_finite() {
                ooo += r.out_of_order;
            }
            if !r.ok {
                failures.push(format!(
                    "- {} / {} / run {}: {}",
                    s.name(),
                    scenarios[*i].title,
                    n + 1,
                    r.failure.as_deref().unwrap_or("see the figures")
                ));
            }
        }
    }
    let _ = writeln!(
        md,
        "Over all fan-out runs: {lost} deliveries lost, {ooo} out of order."
    );
    if failures.is_empty() {
        let _ = writeln!(
            md,
            "Every run passed (everyone welcomed, nothing lost or reordered)."
        );
    } else {
        let _ = writeln!(md, "Runs that did not pass:\n");
        for f in failures {
            let _ = writeln!(md, "{f}");
        }
    }

    // Targets of the issue, for the threaded hub.
    let _ = writeln!(md, "\n## The threaded hub against the targets of issue 4\n");
    let find = |key: &str| scenarios.iter().position(|s| s.key == key);
    let t = |key: &str, f: fn(&Run) -> f64, s: Server| {
        find(key).map(|i| med(results, i, s, f)).unwrap_or(f64::NAN)
    };
    let mut rows: Vec<(String, String, bool)> = Vec::new();
    for key in ["1x100", "1x1000"] {
        let thr = t(key, |r| r.deliveries_per_s, Server::Threaded);
        let asy = t(key, |r| r.deliveries_per_s, Server::Async);
        rows.push((
            format!("fan-out {key}: at least 1.65 M deliveries/s"),
            rate(thr),
            thr >= 1.65e6,
        ));
        rows.push((
            format!("fan-out {key}: at least 1.5x the async twin"),
            format!("{:.2}x", thr / asy),
            thr >= 1.5 * asy,
        ));
    }
    let p99 = t("latency", |r| r.p99_us, Server::Threaded);
    let max = t("latency", |r| r.max_us, Server::Threaded);
    rows.push((
        "p99 at 1,000 lines/s x 100: at most 2 ms".into(),
        us(p99),
        p99 <= 2000.0,
    ));
    rows.push((
        "max at 1,000 lines/s x 100: at most 10 ms".into(),
        us(max),
        max <= 10_000.0,
    ));
    if !quick {
        let welcomed = t("idle-10000", |r| r.welcomed, Server::Threaded);
        let ramp = t("idle-10000", |r| r.ramp_s, Server::Threaded);
        let rss = t("idle-10000", |r| r.rss_kib, Server::Threaded);
        rows.push((
            "10,000 idle clients welcomed within 30 s".into(),
            format!("{welcomed:.0} in {ramp:.2} s"),
            welcomed >= 10_000.0 && ramp <= 30.0,
        ));
        rows.push((
            "10,000 idle clients held in at most 150 MB RSS".into(),
            mib(rss),
            rss * 1024.0 <= 150e6,
        ));
    }
    rows.push((
        "0 lost, 0 out of order in every run".into(),
        format!("{lost} lost, {ooo} out of order"),
        lost == 0.0 && ooo == 0.0,
    ));
    let _ = writeln!(md, "| target | measured | met |\n| --- | ---: | :---: |");
    for (what, value, ok) in rows {
        let _ = writeln!(
            md,
            "| {what} | {value} | {} |",
            if ok { "yes" } else { "**no**" }
        );
    }

    // Every run, for the record.
    let _ = writeln!(md, "\n## Every run\n");
    let _ = writeln!(
        md,
        "<details><summary>{} runs</summary>\n",
        results.values().map(Vec::len).sum::<usize>()
    );
    let _ = writeln!(md, "```text");
    for (i, sc) in scenarios.iter().enumerate() {
        for &s in servers {
            for (n, r) in results.get(&(i, s)).into_iter().flatten().enumerate() {
                let _ = writeln!(
                    md,
                    "{:<20} {:<9} #{} {}",
                    sc.title,
                    s.short(),
                    n + 1,
                    describe(sc, r)
                );
            }
        }
    }
    let _ = writeln!(md, "```\n\n</details>\n");

    let notes = paths.root.join("docs").join("benchmarks-notes.md");
    let _ = writeln!(md, "## How to read these figures\n");
    match std::fs::read_to_string(&notes) {
        Ok(text) => md.push_str(&text),
        Err(_) => {
            let _ = writeln!(md, "(docs/benchmarks-notes.md is missing.)");
        }
    }
    md
}

// ---- the chart ------------------------------------------------------------------

fn draw_chart(
    path: &Path,
    scenarios: &[Scenario],
    servers: &[Server],
    results: &BTreeMap<(usize, Server), Vec<Run>>,
) -> Result<(), String> {
    let fanouts: Vec<(usize, &Scenario)> = scenarios
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.kind, Kind::Fanout { .. }))
        .collect();
    let root = SVGBackend::new(path, (960, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, bottom) = root.split_vertically(410);

    // Panel 1: deliveries/s, log scale, throughput scenarios.
    let throughput: Vec<(usize, &Scenario)> = fanouts
        .iter()
        .copied()
        .filter(|(_, s)| s.key != "latency")
        .collect();
    panel(
        &top,
        Panel {
            caption: "Fan-out deliveries per second (median, log scale; higher is better)",
            x_desc: "64-byte lines; publishers x subscribers",
            y_desc: "deliveries/s",
            value: |r| r.deliveries_per_s,
            format: rate,
            headroom: 8.0,
            legend: SeriesLabelPosition::UpperRight,
        },
        &throughput,
        servers,
        results,
    )?;
    // Panel 2: p99 latency, log scale, every fan-out scenario.
    panel(
        &bottom,
        Panel {
            caption: "p99 latency (median, log scale; lower is better)",
            x_desc: "unlimited rate (queueing) except 1,000 lines/s x 100",
            y_desc: "p99 latency",
            value: |r| r.p99_us,
            format: us,
            headroom: 10.0,
            legend: SeriesLabelPosition::UpperLeft,
        },
        &fanouts,
        servers,
        results,
    )?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// What differs between the chart's two panels.
struct Panel {
    caption: &'static str,
    x_desc: &'static str,
    y_desc: &'static str,
    value: fn(&Run) -> f64,
    format: fn(f64) -> String,
    /// How far above the largest bar the log axis reaches (room for the legend).
    headroom: f64,
    legend: SeriesLabelPosition,
}

/// One panel: grouped bars of `panel.value` per scenario and server, on a
/// log scale.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: Panel,
    scenarios: &[(usize, &Scenario)],
    servers: &[Server],
    results: &BTreeMap<(usize, Server), Vec<Run>>,
) -> Result<(), String> {
    let values: Vec<f64> = scenarios
        .iter()
        .flat_map(|&(i, _)| {
            servers
                .iter()
                .map(move |&s| med(results, i, s, panel.value))
        })
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1.0)
        / 2.0;
    let hi = values.iter().copied().fold(1.0, f64::max) * panel.headroom;
    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..scenarios.len() as f64 - 0.5, (lo..hi).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(scenarios.len())
        .x_label_formatter(&|x| scenario_label(scenarios, *x))
        .x_desc(panel.x_desc)
        .y_desc(panel.y_desc)
        .y_label_formatter(&|v| (panel.format)(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    bars(&mut chart, scenarios, servers, results, lo, panel.value)?;
    chart
        .configure_series_labels()
        .position(panel.legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

type LogChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<
        plotters::coord::types::RangedCoordf64,
        plotters::coord::combinators::LogCoord<f64>,
    >,
>;

/// Grouped bars: one group per scenario, one bar per server.
fn bars(
    chart: &mut LogChart<'_, '_>,
    scenarios: &[(usize, &Scenario)],
    servers: &[Server],
    results: &BTreeMap<(usize, Server), Vec<Run>>,
    floor: f64,
    value: fn(&Run) -> f64,
) -> Result<(), String> {
    let width = 0.8 / servers.len() as f64;
    for (k, &server) in servers.iter().enumerate() {
        let color = server.color();
        let rects: Vec<Rectangle<(f64, f64)>> = scenarios
            .iter()
            .enumerate()
            .filter_map(|(x, &(i, _))| {
                let v = med(results, i, server, value);
                (v.is_finite() && v > floor).then(|| {
                    let left = x as f64 - 0.4 + k as f64 * width;
                    Rectangle::new([(left, floor), (left + width * 0.9, v)], color.filled())
                })
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(|e| e.to_string())?
            .label(server.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    Ok(())
}

// ---- small helpers --------------------------------------------------------------

/// The x-axis label at position `x`: the scenario centred there, if any.
fn scenario_label(scenarios: &[(usize, &Scenario)], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    scenarios
        .get(i as usize)
        .map(|(_, s)| s.title.trim_start_matches("fan-out ").to_string())
        .unwrap_or_default()
}

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

fn mib(kib: f64) -> String {
    if kib.is_finite() {
        format!("{:.1} MiB", kib / 1024.0)
    } else {
        "n/a".into()
    }
}

/// The number after `"key":` in a one-line JSON object.
fn json_number(json: &str, key: &str) -> Option<f64> {
    let pattern = format!("\"{key}\":");
    let start = json.find(&pattern)? + pattern.len();
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// The string after `"key":` (None for `null`); escapes are left as they are.
fn json_string(json: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\":\"");
    let start = json.find(&pattern)? + pattern.len();
    let rest = &json[start..];
    let mut end = 0;
    let bytes = rest.as_bytes();
    while end < bytes.len() && bytes[end] != b'"' {
        end += if bytes[end] == b'\\' { 2 } else { 1 };
    }
    Some(rest[..end.min(rest.len())].to_string())
}

fn node_version() -> Option<String> {
    command_line("node", &["--version"])
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
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
    format!(
        "{cpu}, {cores} cores, {mem} memory, Linux {kernel} (shared with other work while it ran)"
    )
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

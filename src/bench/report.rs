//! What a bench run found, for people (a short table) and for scripts (one
//! JSON object, formatted by hand: the runtime has no serde).

use std::fmt::Write as _;
use std::time::Duration;

use super::cpu::{PathCpu, Usage};
use super::target::ProcStatus;

/// The outcome of `tcphub bench fanout`.
#[derive(Debug, Clone, Default)]
pub struct FanoutReport {
    /// What was measured (address, and how the server was started).
    pub server: String,
    /// A raw relay (`--raw`) rather than a protocol v1 server.
    pub raw: bool,
    /// A timed run (`--duration-s`) rather than a fixed count.
    pub timed: bool,
    /// Publishing before the measured window (delivered, not measured).
    pub warmup: Duration,
    pub publishers: usize,
    pub subscribers: usize,
    /// Lines per publisher asked for (0 for a timed run).
    pub messages: u64,
    /// Lines sent, over all publishers.
    pub sent: u64,
    /// Bytes per line, `\n` included.
    pub size: usize,
    /// Lines per second per publisher, if limited.
    pub rate: Option<u64>,
    /// `--unpaced`: no cap on the publishers' lead over the deliveries.
    pub unpaced: bool,
    /// Deliveries the contract promises: every line to every other client.
    pub expected: u64,
    /// Deliveries counted.
    pub received: u64,
    /// Expected deliveries that never came.
    pub lost: u64,
    /// Deliveries that came after a later line of the same publisher, or
    /// twice.
    pub out_of_order: u64,
    /// Lines that were neither ours nor expected (`LEAVE`, echoes).
    pub other_lines: u64,
    /// Connections the server closed during the run.
    pub disconnected: usize,
    /// Connections refused with `ERR server-full`.
    pub refused: usize,
    /// From the first line sent to the last delivery received.
    pub elapsed: Duration,
    /// The measured window: from the warm-up's end to the last delivery.
    pub window: Duration,
    /// Deliveries in the measured window.
    pub window_deliveries: u64,
    /// Deliveries whose latency was recorded (lines sent in the window).
    pub latency_samples: u64,
    /// Who used the CPU over the window.
    pub usage: Option<Usage>,
    /// The `--path-pid` processes (other hubs, NATS nodes) over the window.
    pub path: Vec<PathCpu>,
    /// From the first line sent to the last line written by any publisher.
    pub publish_elapsed: Duration,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
    /// The subscribers' reader threads at the end of the run.
    pub receivers: usize,
    /// Their count was fixed by `--readers` (else more start as needed).
    pub receivers_fixed: bool,
    /// Why the run did not finish, if it did not (timeout, setup failure).
    pub failure: Option<String>,
}

impl FanoutReport {
    /// Lines published, over all publishers.
    pub fn published(&self) -> u64 {
        self.sent
    }

    /// Deliveries per second over the measured window (over
    /// [`FanoutReport::elapsed`] if there is none).
    pub fn deliveries_per_s(&self) -> f64 {
        if self.window.is_zero() {
            per_second(self.received, self.elapsed)
        } else {
            per_second(self.window_deliveries, self.window)
        }
    }

    /// The server's CPU time per delivery in the window, nanoseconds.
    pub fn server_ns_per_delivery(&self) -> Option<f64> {
        let cpu = self.usage.as_ref()?.server_cpu_s?;
        (self.window_deliveries > 0).then(|| cpu * 1e9 / self.window_deliveries as f64)
    }

    /// The bench's own CPU time per delivery in the window, nanoseconds.
    pub fn generator_ns_per_delivery(&self) -> Option<f64> {
        let cpu = self.usage.as_ref()?.generator_cpu_s;
        (self.window_deliveries > 0).then(|| cpu * 1e9 / self.window_deliveries as f64)
    }

    /// Lines published per second over [`FanoutReport::publish_elapsed`].
    pub fn published_per_s(&self) -> f64 {
        per_second(self.published(), self.publish_elapsed)
    }

    /// True when every delivery arrived, in order, and nothing went wrong.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
            && self.lost == 0
            && self.out_of_order == 0
            && self.disconnected == 0
            && self.refused == 0
            && self.received == self.expected
    }

    /// The problems, one phrase each (empty when [`FanoutReport::ok`]).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(f) = &self.failure {
            out.push(f.clone());
        }
        if self.lost > 0 {
            out.push(format!("{} deliveries LOST", self.lost));
        }
        if self.out_of_order > 0 {
            out.push(format!("{} deliveries OUT OF ORDER", self.out_of_order));
        }
        if self.received > self.expected {
            out.push(format!(
                "{} deliveries more than expected",
                self.received - self.expected
            ));
        }
        if self.disconnected > 0 {
            out.push(format!(
                "{} connections closed by the server",
                self.disconnected
            ));
        }
        if self.refused > 0 {
            out.push(format!(
                "{} connections refused (server full)",
                self.refused
            ));
        }
        out
    }

    /// The report as a few aligned lines of text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let rate = match self.rate {
            Some(r) => format!("{r} lines/s per publisher"),
            None if self.unpaced => "unpaced (no cap on the publishers' lead)".to_string(),
            None => "unlimited rate, lead-limited".to_string(),
        };
        let lines = if self.timed {
            format!("{} lines (timed)", self.sent)
        } else {
            format!("{} lines", self.messages)
        };
        let _ = writeln!(
            s,
            "fanout{}: {} publisher(s) x {} subscriber(s), {lines} of {} B each, {rate}",
            if self.raw { " (raw relay)" } else { "" },
            self.publishers,
            self.subscribers,
            self.size
        );
        let _ = writeln!(s, "server       {}", self.server);
        let _ = writeln!(
            s,
            "deliveries   {} expected, {} received, {} lost, {} out of order, {} other lines",
            self.expected, self.received, self.lost, self.out_of_order, self.other_lines
        );
        let _ = writeln!(
            s,
            "elapsed      {} (publishing took {})",
            duration(self.elapsed),
            duration(self.publish_elapsed)
        );
        if !self.warmup.is_zero() || self.timed {
            let _ = writeln!(
                s,
                "window       {} measured after {} of warm-up: {} deliveries",
                duration(self.window),
                duration(self.warmup),
                self.window_deliveries
            );
        }
        let _ = writeln!(
            s,
            "throughput   {} deliveries/s, {} lines/s published",
            si(self.deliveries_per_s()),
            si(self.published_per_s())
        );
        self.cpu_text(&mut s);
        self.path_text(&mut s);
        let _ = writeln!(
            s,
            "latency      p50 {}, p99 {}, max {}",
            duration(self.latency_p50),
            duration(self.latency_p99),
            duration(self.latency_max)
        );
        if self.ok() {
            let _ = writeln!(s, "result       OK: nothing lost, nothing out of order");
        } else {
            let _ = writeln!(s, "result       FAILED: {}", self.problems().join("; "));
        }
        s
    }

    fn cpu_text(&self, s: &mut String) {
        let Some(u) = &self.usage else {
            return;
        };
        let server = match (u.server_cores(), self.server_ns_per_delivery()) {
            (Some(cores), Some(ns)) => format!("server {cores:.2} cores, {ns:.1} ns/delivery"),
            _ => "server unknown (pass --pid)".to_string(),
        };
        let _ = writeln!(
            s,
            "cpu          {server}; bench {:.2} cores ({:.1} ns/delivery{})",
            u.generator_cores(),
            self.generator_ns_per_delivery().unwrap_or(f64::NAN),
            u.busiest_thread
                .as_ref()
                .map(|(n, c)| format!(", busiest thread {n} {:.0}%", c * 100.0))
                .unwrap_or_default()
        );
        if self.receivers > 0 {
            let _ = writeln!(
                s,
                "receivers    {} thread(s) read the subscribers{}",
                self.receivers,
                if self.receivers_fixed {
                    " (--readers)".to_string()
                } else {
                    format!(
                        " (more start while one is above {:.0} % of a core)",
                        super::balance::RECEIVER_SHARE * 100.0
                    )
                }
            );
        }
        if let (Some(busy), Some(steal), Some(others)) = (u.machine_busy, u.steal, u.others) {
            let _ = writeln!(
                s,
                "machine      {busy:.2} of {} cores busy; steal {steal:.2}; others {others:.2}",
                u.cores
            );
        }
        if let Some(warning) = u.generator_bottleneck() {
            let _ = writeln!(s, "WARNING      {warning}");
        }
        if u.machine_saturated() {
            let _ = writeln!(
                s,
                "WARNING      the machine was saturated: the server did not have the CPU to itself"
            );
        }
    }

    /// One line for the `--path-pid` processes: each one's CPU, and per
    /// delivery, so a hop's cost (a NATS node's, say) sits beside the
    /// server's.
    fn path_text(&self, s: &mut String) {
        if self.path.is_empty() {
            return;
        }
        let each: Vec<String> = self
            .path
            .iter()
            .map(|p| match (p.cpu_s, self.path_ns_per_delivery(p)) {
                (Some(cpu), Some(ns)) => {
                    format!("{} (pid {}) {cpu:.2} s, {ns:.1} ns/delivery", p.name, p.pid)
                }
                _ => format!("{} (pid {}) unknown (gone?)", p.name, p.pid),
            })
            .collect();
        let _ = writeln!(s, "path cpu     {}", each.join("; "));
    }

    fn path_ns_per_delivery(&self, p: &PathCpu) -> Option<f64> {
        let cpu = p.cpu_s?;
        (self.window_deliveries > 0).then(|| cpu * 1e9 / self.window_deliveries as f64)
    }

    fn path_json(&self) -> String {
        let each: Vec<String> = self
            .path
            .iter()
            .map(|p| {
                let mut j = Json::new();
                j.num("pid", p.pid as f64);
                j.str("name", &p.name);
                j.opt_num("cpu_s", p.cpu_s);
                j.opt_num("ns_per_delivery", self.path_ns_per_delivery(p));
                j.finish()
            })
            .collect();
        format!("[{}]", each.join(","))
    }

    fn usage_json(&self, j: &mut Json) {
        let u = self.usage.clone().unwrap_or_default();
        let has = self.usage.is_some();
        j.opt_num("server_cpu_s", u.server_cpu_s);
        j.opt_num("server_cores", u.server_cores());
        j.opt_num("server_ns_per_delivery", self.server_ns_per_delivery());
        j.opt_num("generator_cpu_s", has.then_some(u.generator_cpu_s));
        j.opt_num("generator_cores", has.then(|| u.generator_cores()));
        j.opt_num(
            "generator_ns_per_delivery",
            self.generator_ns_per_delivery(),
        );
        match &u.busiest_thread {
            Some((name, share)) => {
                j.str("busiest_thread", name);
                j.num("busiest_thread_cores", *share);
            }
            None => {
                j.null("busiest_thread");
                j.null("busiest_thread_cores");
            }
        }
        j.num("receiver_threads", self.receivers as f64);
        j.opt_num("machine_cores", has.then_some(u.cores as f64));
        j.opt_num("machine_busy_cores", u.machine_busy);
        j.opt_num("steal_cores", u.steal);
        j.opt_num("others_cores", u.others);
        match u.generator_bottleneck() {
            Some(w) if has => j.str("generator_bottleneck", &w),
            _ => j.null("generator_bottleneck"),
        }
        j.bool("machine_saturated", u.machine_saturated());
    }

    /// The report as one JSON object on one line.
    pub fn to_json(&self) -> String {
        let mut j = Json::new();
        j.str("bench", "fanout");
        j.str("server", &self.server);
        j.bool("raw", self.raw);
        j.bool("timed", self.timed);
        j.num("warmup_s", self.warmup.as_secs_f64());
        j.num("publishers", self.publishers as f64);
        j.num("subscribers", self.subscribers as f64);
        j.num("messages", self.messages as f64);
        j.num("size", self.size as f64);
        match self.rate {
            Some(r) => j.num("rate", r as f64),
            None => j.null("rate"),
        }
        j.bool("unpaced", self.unpaced);
        j.num("sent", self.sent as f64);
        j.num("expected", self.expected as f64);
        j.num("received", self.received as f64);
        j.num("lost", self.lost as f64);
        j.num("out_of_order", self.out_of_order as f64);
        j.num("other_lines", self.other_lines as f64);
        j.num("disconnected", self.disconnected as f64);
        j.num("refused", self.refused as f64);
        j.num("elapsed_s", self.elapsed.as_secs_f64());
        j.num("publish_elapsed_s", self.publish_elapsed.as_secs_f64());
        j.num("window_s", self.window.as_secs_f64());
        j.num("window_deliveries", self.window_deliveries as f64);
        j.num("latency_samples", self.latency_samples as f64);
        j.num("deliveries_per_s", self.deliveries_per_s().round());
        j.num("published_per_s", self.published_per_s().round());
        j.num("latency_p50_us", micros(self.latency_p50));
        j.num("latency_p99_us", micros(self.latency_p99));
        j.num("latency_max_us", micros(self.latency_max));
        self.usage_json(&mut j);
        j.raw("path_cpu", &self.path_json());
        j.bool("ok", self.ok());
        match &self.failure {
            Some(f) => j.str("failure", f),
            None => j.null("failure"),
        }
        j.finish()
    }
}

/// The outcome of `tcphub bench conns`.
#[derive(Debug, Clone, Default)]
pub struct ConnsReport {
    /// What was measured.
    pub server: String,
    /// Clients asked for.
    pub count: usize,
    /// Connections the bench opened.
    pub opened: usize,
    /// Connections that got `WELCOME`.
    pub welcomed: usize,
    /// Connections refused with `ERR server-full`.
    pub refused: usize,
    /// Connects that failed, and the first reason.
    pub connect_failures: usize,
    pub first_error: Option<String>,
    /// Connections the server closed while they were held.
    pub closed: usize,
    /// From the first connect to the last `WELCOME`.
    pub ramp: Duration,
    /// How long all connections were then held open.
    pub hold: Duration,
    /// The server's memory and threads once everyone was welcomed.
    pub after_ramp: Option<ProcStatus>,
    /// ... and at the end of the hold.
    pub after_hold: Option<ProcStatus>,
    /// Why the run did not finish, if it did not.
    pub failure: Option<String>,
}

impl ConnsReport {
    /// True when every client got `WELCOME` and stayed connected.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
            && self.welcomed == self.count
            && self.closed == 0
            && self.refused == 0
            && self.connect_failures == 0
    }

    /// The report as a few aligned lines of text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "conns: {} idle clients", self.count);
        let _ = writeln!(s, "server       {}", self.server);
        let _ = writeln!(
            s,
            "welcomed     {} of {} in {} ({} refused, {} connects failed{})",
            self.welcomed,
            self.count,
            duration(self.ramp),
            self.refused,
            self.connect_failures,
            self.first_error
                .as_ref()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "held         {} for {} ({} closed by the server)",
            self.welcomed.saturating_sub(self.closed),
            duration(self.hold),
            self.closed
        );
        for (when, status) in [
            ("after ramp", &self.after_ramp),
            ("after hold", &self.after_hold),
        ] {
            match status {
                Some(st) => {
                    let fds = match (st.fds, st.fd_limit) {
                        (Some(n), Some(limit)) => format!(", {n} of {limit} files open"),
                        (Some(n), None) => format!(", {n} files open"),
                        _ => String::new(),
                    };
                    let _ = writeln!(
                        s,
                        "{when:<12} server RSS {} (peak {}), {} threads{fds}",
                        mib(st.rss_kib),
                        mib(st.peak_rss_kib),
                        st.threads
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "{when:<12} server memory unknown (not started here; pass --pid)"
                    );
                }
            }
        }
        if self.ok() {
            let _ = writeln!(s, "result       OK");
        } else {
            let mut problems = Vec::new();
            if let Some(f) = &self.failure {
                problems.push(f.clone());
            }
            if self.welcomed < self.count {
                problems.push(format!("only {} of {} welcomed", self.welcomed, self.count));
            }
            if self.closed > 0 {
                problems.push(format!("{} closed by the server", self.closed));
            }
            let _ = writeln!(s, "result       FAILED: {}", problems.join("; "));
        }
        s
    }

    /// The report as one JSON object on one line.
    pub fn to_json(&self) -> String {
        let mut j = Json::new();
        j.str("bench", "conns");
        j.str("server", &self.server);
        j.num("count", self.count as f64);
        j.num("opened", self.opened as f64);
        j.num("welcomed", self.welcomed as f64);
        j.num("refused", self.refused as f64);
        j.num("connect_failures", self.connect_failures as f64);
        match &self.first_error {
            Some(e) => j.str("first_error", e),
            None => j.null("first_error"),
        }
        j.num("closed", self.closed as f64);
        j.num("ramp_s", self.ramp.as_secs_f64());
        j.num("hold_s", self.hold.as_secs_f64());
        for (prefix, status) in [("ramp", &self.after_ramp), ("hold", &self.after_hold)] {
            match status {
                Some(st) => {
                    j.num(&format!("{prefix}_rss_kib"), st.rss_kib as f64);
                    j.num(&format!("{prefix}_peak_rss_kib"), st.peak_rss_kib as f64);
                    j.num(&format!("{prefix}_threads"), st.threads as f64);
                    match st.fds {
                        Some(n) => j.num(&format!("{prefix}_fds"), n as f64),
                        None => j.null(&format!("{prefix}_fds")),
                    }
                }
                None => {
                    j.null(&format!("{prefix}_rss_kib"));
                    j.null(&format!("{prefix}_peak_rss_kib"));
                    j.null(&format!("{prefix}_threads"));
                    j.null(&format!("{prefix}_fds"));
                }
            }
        }
        j.bool("ok", self.ok());
        match &self.failure {
            Some(f) => j.str("failure", f),
            None => j.null("failure"),
        }
        j.finish()
    }
}

/// A one-line JSON object, built field by field (every bench report).
pub(crate) struct Json(String);

impl Json {
    pub(crate) fn new() -> Self {
        Json(String::from("{"))
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        crate::support::json::push_string(&mut self.0, key);
        self.0.push(':');
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        crate::support::json::push_string(&mut self.0, value);
    }

    pub(crate) fn num(&mut self, key: &str, value: f64) {
        self.key(key);
        if value.is_finite() {
            if value.fract() == 0.0 && value.abs() < 1e15 {
                let _ = write!(self.0, "{}", value as i64);
            } else {
                let _ = write!(self.0, "{value:.6}");
            }
        } else {
            self.0.push_str("null");
        }
    }

    pub(crate) fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.0.push_str(if value { "true" } else { "false" });
    }

    pub(crate) fn opt_num(&mut self, key: &str, value: Option<f64>) {
        match value {
            Some(v) => self.num(key, v),
            None => self.null(key),
        }
    }

    /// `value` is JSON already (an array of objects, say).
    pub(crate) fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.0.push_str(value);
    }

    pub(crate) fn null(&mut self, key: &str) {
        self.key(key);
        self.0.push_str("null");
    }

    pub(crate) fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn per_second(count: u64, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        count as f64 / over.as_secs_f64()
    }
}

fn micros(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1000.0 * 10.0).round() / 10.0
}

/// A duration the way people read it: `850 µs`, `12.3 ms`, `4.56 s`.
pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e6 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A rate with an SI prefix: `950`, `12.3 k`, `1.65 M`.
pub fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> FanoutReport {
        FanoutReport {
            server: "127.0.0.1:1 \"x\"".into(),
            publishers: 2,
            subscribers: 3,
            messages: 10,
            sent: 20,
            size: 64,
            rate: None,
            expected: 80,
            received: 80,
            elapsed: Duration::from_millis(500),
            publish_elapsed: Duration::from_millis(250),
            latency_p50: Duration::from_micros(120),
            latency_p99: Duration::from_micros(1500),
            latency_max: Duration::from_millis(3),
            ..FanoutReport::default()
        }
    }

    #[test]
    fn rates_come_from_counts_and_times() {
        let r = good();
        assert_eq!(r.published(), 20);
        assert_eq!(r.deliveries_per_s(), 160.0);
        assert_eq!(r.published_per_s(), 80.0);
        assert!(r.ok());
        assert!(r.to_text().contains("OK"));
    }

    #[test]
    fn loss_and_disorder_fail_loudly() {
        let mut r = good();
        r.received = 78;
        r.lost = 2;
        r.out_of_order = 1;
        assert!(!r.ok());
        let text = r.to_text();
        assert!(text.contains("FAILED"), "{text}");
        assert!(text.contains("2 deliveries LOST"), "{text}");
        assert!(text.contains("1 deliveries OUT OF ORDER"), "{text}");
        assert!(r.to_json().contains("\"ok\":false"));

        let mut r = good();
        r.failure = Some("timed out after 5 s".into());
        assert!(!r.ok());
        assert!(r.to_text().contains("timed out"));
    }

    #[test]
    fn json_is_one_escaped_object() {
        let json = good().to_json();
        assert!(json.starts_with("{\"bench\":\"fanout\","), "{json}");
        assert!(json.ends_with('}'));
        assert!(!json.contains('\n'));
        assert!(
            json.contains("\"server\":\"127.0.0.1:1 \\\"x\\\"\""),
            "{json}"
        );
        assert!(json.contains("\"rate\":null"));
        assert!(json.contains("\"deliveries_per_s\":160,"), "{json}");
        assert!(json.contains("\"latency_p99_us\":1500,"), "{json}");
        assert!(json.contains("\"elapsed_s\":0.500000"), "{json}");
        assert!(json.contains("\"ok\":true"));
    }

    #[test]
    fn conns_report_names_what_is_missing() {
        let mut r = ConnsReport {
            server: "s".into(),
            count: 10,
            opened: 10,
            welcomed: 10,
            ramp: Duration::from_millis(20),
            after_hold: Some(ProcStatus {
                rss_kib: 2048,
                peak_rss_kib: 4096,
                threads: 13,
                fds: Some(20),
                fd_limit: Some(1024),
            }),
            ..ConnsReport::default()
        };
        assert!(r.ok());
        let text = r.to_text();
        assert!(
            text.contains("RSS 2.0 MiB (peak 4.0 MiB), 13 threads"),
            "{text}"
        );
        assert!(text.contains("pass --pid"), "{text}");
        let json = r.to_json();
        assert!(json.contains("\"hold_rss_kib\":2048"), "{json}");
        assert!(json.contains("\"ramp_rss_kib\":null"), "{json}");
        r.welcomed = 7;
        assert!(!r.ok());
        assert!(r.to_text().contains("only 7 of 10 welcomed"));
    }

    #[test]
    fn human_units() {
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(12_345)), "12.35 ms");
        assert_eq!(duration(Duration::from_millis(4_560)), "4.56 s");
        assert_eq!(si(950.0), "950");
        assert_eq!(si(12_345.0), "12.3 k");
        assert_eq!(si(1_650_000.0), "1.65 M");
    }
}

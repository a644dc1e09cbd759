//! Shared test helpers: start a server under test, and talk to it as a
//! line-oriented client would.
//!
//! Tests never sleep to "let things settle". To know the hub has processed
//! everything a client sent, a test sends `/ping` and waits for `PONG`: the
//! dispatcher handles lines in order, so once `PONG` is back, every earlier
//! line from that client has been routed (see [`Peer::sync`]).

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tcphub::{Config, Hub};

/// How long any single expected line may take before a test fails.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits a conformance test may ask of a server (each is a serve flag).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_clients: usize,
    pub max_line: usize,
    pub write_timeout_ms: u64,
    /// One more of the hub's limits (`--max-pending 65536`, say), or the
    /// descriptor limit to start the server under (`ulimit -n`).
    pub limit: Option<tcphub::check::limits::Limit>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 1024,
            max_line: 4096,
            write_timeout_ms: 2000,
            limit: None,
        }
    }
}

/// A server under test. Dropping it stops it.
pub trait Server {
    fn addr(&self) -> SocketAddr;
}

/// The threaded hub, in this process.
pub struct Threaded(Option<Hub>);

impl Server for Threaded {
    fn addr(&self) -> SocketAddr {
        self.0.as_ref().expect("hub running").local_addr()
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        if let Some(hub) = self.0.take() {
            hub.shutdown();
        }
    }
}

/// Starts the threaded hub on a free loopback port.
pub fn start_threaded(limits: Limits) -> Box<dyn Server> {
    if let Some(Limit::FdLimit(_)) = limits.limit {
        // A descriptor limit is the process's: not this test's.
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tcphub"));
        command.arg("serve");
        return spawn_server(command, limits);
    }
    let config = with_limit(
        Config {
            max_clients: limits.max_clients,
            max_line: limits.max_line,
            write_timeout: Duration::from_millis(limits.write_timeout_ms),
            ..Config::ephemeral()
        },
        limits.limit,
    );
    Box::new(Threaded(Some(Hub::start(config).expect("hub starts"))))
}

use tcphub::check::limits::Limit;

/// `config` with the one extra limit a check asked for.
fn with_limit(mut config: Config, limit: Option<Limit>) -> Config {
    match limit {
        Some(Limit::MaxPending(n)) => config.max_pending = n as usize,
        Some(Limit::LineTimeoutMs(ms)) => {
            config.line_timeout = Some(Duration::from_millis(ms));
        }
        Some(Limit::IdleTimeoutMs(ms)) => {
            config.idle_timeout = Some(Duration::from_millis(ms));
        }
        Some(Limit::MaxPerIp(n)) => config.max_per_ip = Some(n),
        Some(Limit::MaxSubs(n)) => config.max_subs = n,
        Some(Limit::FdLimit(_)) | None => {}
    }
    config
}

/// The threaded hub recording its session (`serve --record`) into a file
/// of its own under the temporary folder: it sends a `NOTICE` after every
/// `WELCOME`, which no check may trip on.
pub fn start_threaded_recording(limits: Limits) -> Box<dyn Server> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tcphub-recording-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let record = dir.join(format!("{n}.scenario"));
    if let Some(Limit::FdLimit(_)) = limits.limit {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tcphub"));
        command.arg("serve").arg("--record").arg(&record);
        return spawn_server(command, limits);
    }
    let config = with_limit(
        Config {
            max_clients: limits.max_clients,
            max_line: limits.max_line,
            write_timeout: Duration::from_millis(limits.write_timeout_ms),
            record: Some(record),
            ..Config::ephemeral()
        },
        limits.limit,
    );
    Box::new(Threaded(Some(Hub::start(config).expect("hub starts"))))
}

// ---- the library's checks, against a server started for each -------------

/// How the conformance suite starts a server for one check.
pub type Start = fn(Limits) -> Box<dyn Server>;

/// A [`tcphub::check::Target`] that starts a new server for every check,
/// with the small limits the check asks for: every check meets a fresh
/// server (guest numbers from 1) whose limits are known.
pub struct Launcher(pub Start);

impl tcphub::check::Target for Launcher {
    fn prepare(&mut self, check: &tcphub::check::Check) -> Result<tcphub::check::Ctx, String> {
        let defaults = Limits::default();
        let limits = Limits {
            max_clients: check.wants.max_clients.unwrap_or(defaults.max_clients),
            max_line: check.wants.max_line.unwrap_or(defaults.max_line),
            write_timeout_ms: check
                .wants
                .write_timeout_ms
                .unwrap_or(defaults.write_timeout_ms),
            limit: check.wants.limit,
        };
        let server = (self.0)(limits);
        let mut known = tcphub::check::Limits {
            max_clients: Some(limits.max_clients),
            max_line: limits.max_line,
            write_timeout: Some(Duration::from_millis(limits.write_timeout_ms)),
            ..tcphub::check::Limits::default()
        };
        let ms = Duration::from_millis;
        match limits.limit {
            Some(Limit::MaxPending(n)) => known.max_pending = Some(n),
            Some(Limit::LineTimeoutMs(t)) => known.line_timeout = Some(ms(t)),
            Some(Limit::IdleTimeoutMs(t)) => known.idle_timeout = Some(ms(t)),
            Some(Limit::MaxPerIp(n)) => known.max_per_ip = Some(n),
            Some(Limit::MaxSubs(n)) => known.max_subs = Some(n),
            Some(Limit::FdLimit(n)) => known.fd_limit = Some(n),
            None => {}
        }
        let ctx = tcphub::check::Ctx::new(server.addr(), known, true, LINE_TIMEOUT);
        Ok(ctx.keeping(Box::new(server)))
    }
}

/// Runs the library's check `name` against a server from `start`; panics
/// with the check's report (expected, got, hint) if it fails.
pub fn run_check(start: Start, name: &str) {
    let check = tcphub::check::find(name).unwrap_or_else(|| panic!("no check named {name}"));
    match tcphub::check::run_on(&mut Launcher(start), check) {
        tcphub::check::Outcome::Pass => {}
        tcphub::check::Outcome::Fail(failure) => panic!("FAIL {name}\n{failure}"),
        tcphub::check::Outcome::Skip(why) => panic!("SKIP {name}: {why}"),
    }
}

/// One client connection, reading lines with a timeout.
pub struct Peer {
    pub name: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Peer {
    /// Connects without reading anything.
    pub fn connect(addr: SocketAddr, name: &str) -> Peer {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Peer {
            name: name.to_string(),
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Connects and reads `WELCOME`; returns the peer and its nick.
    pub fn join(addr: SocketAddr, name: &str) -> (Peer, String) {
        let mut peer = Peer::connect(addr, name);
        let line = peer.recv();
        let nick = line
            .strip_prefix("WELCOME ")
            .unwrap_or_else(|| panic!("{name}: expected WELCOME, got {line:?}"))
            .to_string();
        (peer, nick)
    }

    /// Connects, reads `WELCOME`, and renames to `name`; the others already
    /// connected must then be drained by the caller (they got JOIN and NICK).
    pub fn named(addr: SocketAddr, name: &str) -> Peer {
        let (mut peer, _) = Peer::join(addr, name);
        peer.send(&format!("/nick {name}"));
        peer.expect(&format!("OK nick {name}"));
        peer
    }

    /// Sends one line (adds `\n`).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Sends bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{}: send failed: {e}", self.name));
    }

    /// The next line, without its `\n`. Fails the test on timeout or close.
    pub fn recv(&mut self) -> String {
        match self.try_recv() {
            Ok(Some(line)) => line,
            Ok(None) => panic!("{}: connection closed while expecting a line", self.name),
            Err(e) => panic!("{}: no line within {LINE_TIMEOUT:?}: {e}", self.name),
        }
    }

    /// The next line; `Ok(None)` if the server closed the connection.
    pub fn try_recv(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        assert_eq!(
            buf.pop(),
            Some(b'\n'),
            "{}: line without newline: {buf:?}",
            self.name
        );
        Ok(Some(
            String::from_utf8(buf).expect("server lines are UTF-8"),
        ))
    }

    /// Asserts the next line is exactly `expected`.
    pub fn expect(&mut self, expected: &str) {
        let got = self.recv();
        assert_eq!(got, expected, "{}: unexpected line", self.name);
    }

    /// Sends `line` and asserts the very next line is `reply`.
    pub fn call(&mut self, line: &str, reply: &str) {
        self.send(line);
        self.expect(reply);
    }

    /// Asserts the next line starts with `prefix`; returns it.
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.recv();
        assert!(
            got.starts_with(prefix),
            "{}: expected a line starting {prefix:?}, got {got:?}",
            self.name
        );
        got
    }

    /// Asserts the next line is `ERR <code> ...`.
    pub fn expect_err(&mut self, code: &str) {
        self.expect_prefix(&format!("ERR {code} "));
    }

    /// Round trip: `/ping` then `PONG` must be the very next line. Proves
    /// the hub has routed everything this client sent before, and that
    /// nothing else was queued for it.
    pub fn sync(&mut self) {
        self.send("/ping");
        self.expect("PONG");
    }

    /// Drops everything queued for this client so far: sends `/ping` and
    /// skips lines up to its `PONG`. Used after setting up, when the JOIN
    /// and NICK lines of the others are noise.
    pub fn settle(&mut self) {
        self.send("/ping");
        while self.recv() != "PONG" {}
    }

    /// Asserts the server closes the connection, with no further lines.
    pub fn expect_closed(&mut self) {
        match self.try_recv() {
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(Some(line)) => panic!("{}: expected close, got {line:?}", self.name),
            Err(e) => panic!("{}: expected close, got error {e}", self.name),
        }
    }

    /// Shuts down our sending side (a half-close); we can still read.
    pub fn half_close(&mut self) {
        self.writer.shutdown(Shutdown::Write).unwrap();
    }

    /// Reads and discards bytes until `deadline`; for slow-consumer tests.
    pub fn drain_for(&mut self, how_long: Duration) -> usize {
        let end = Instant::now() + how_long;
        let mut total = 0;
        let mut buf = [0u8; 64 * 1024];
        while Instant::now() < end {
            self.reader
                .get_mut()
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            match self.reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(_) => {}
            }
        }
        self.reader
            .get_mut()
            .set_read_timeout(Some(LINE_TIMEOUT))
            .unwrap();
        total
    }

    /// Splits into a reading peer (same name) and the raw write half, so one
    /// thread can send while another reads.
    pub fn split(self) -> (Peer, TcpStream) {
        let writer = self.writer.try_clone().unwrap();
        (self, writer)
    }

    /// The raw stream (to set options or reset the connection).
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }
}

// ---- the twins: servers in child processes ----------------------------------

/// A server running as a child process (the async and Node twins). Dropping
/// it kills the process.
pub struct ChildServer(tcphub::support::server_process::ServerProcess);

impl Server for ChildServer {
    fn addr(&self) -> SocketAddr {
        self.0.addr()
    }
}

/// How long a twin may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `command` with the serve flags for `limits` on a free loopback
/// port, and waits for its `listening on <addr>` line.
pub fn spawn_server(command: std::process::Command, limits: Limits) -> Box<dyn Server> {
    spawn_server_with(command, limits, &[])
}

/// [`spawn_server`] with more serve flags (`--max-per-ip 2`, say).
pub fn spawn_server_with(
    mut command: std::process::Command,
    limits: Limits,
    extra: &[&str],
) -> Box<dyn Server> {
    let limit_args = limits.limit.map(Limit::serve_args).unwrap_or_default();
    if let Some(Limit::FdLimit(n)) = limits.limit {
        command = under_ulimit(&command, n);
    }
    command
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(extra)
        .args(&limit_args)
        .args(["--max-clients", &limits.max_clients.to_string()])
        .args(["--max-line", &limits.max_line.to_string()])
        .args(["--write-timeout-ms", &limits.write_timeout_ms.to_string()])
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::inherit());
    match tcphub::support::server_process::ServerProcess::spawn(command, STARTUP_TIMEOUT) {
        Ok(server) => Box::new(ChildServer(server)),
        Err(e) => panic!("cannot start a server: {e}"),
    }
}

/// `command`, started by `sh` under `ulimit -n files` (the server runs out
/// of descriptors with few clients; tests/limits.rs, out-of-descriptors).
fn under_ulimit(command: &std::process::Command, files: usize) -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$@\""))
        .arg("sh")
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => sh.env(key, v),
            None => sh.env_remove(key),
        };
    }
    sh
}

/// The directory of this build's profile (`target/debug`, say): test
/// binaries live in its `deps/`, examples in its `examples/`.
fn profile_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let deps = exe.parent().expect("test binary is in deps/");
    deps.parent()
        .expect("deps/ is in the profile dir")
        .to_path_buf()
}

/// Path of the async twin's binary, building it first if it is missing or
/// older than its sources (as when only `cargo test --test conformance`
/// ran). Built once per test process; concurrent tests wait for it.
pub fn async_twin_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_example("async_hub", "examples/async_hub.rs"))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Path of the readiness-loop twin's binary (`examples/poll_hub/`), built
/// like [`async_twin_binary`].
pub fn poll_twin_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_example("poll_hub", "examples/poll_hub"))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Builds example `name` (whose sources are `source`, a file or folder)
/// unless its binary is newer than those sources, `src/` and Cargo.toml.
fn build_example(name: &str, source: &str) -> Result<std::path::PathBuf, String> {
    let profile_dir = profile_dir();
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest_source = [source, "src", "Cargo.toml"]
        .iter()
        .filter_map(|p| newest_mtime(&root.join(p)))
        .max();
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(source)) = (built, newest_source)
        && built >= source
    {
        return Ok(binary);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "--example", name])
        .stdin(std::process::Stdio::null());
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(other) => {
            build.args(["--profile", other]);
        }
    }
    // The profile dir's parent is the target dir, wherever it is.
    if let Some(target_dir) = profile_dir.parent() {
        build.arg("--target-dir").arg(target_dir);
    }
    let output = build
        .output()
        .map_err(|e| format!("cannot run cargo to build {name}: {e}"))?;
    if !output.status.success() || !binary.exists() {
        return Err(format!(
            "`cargo build --example {name}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(binary)
}

/// Latest modification time of a file, or of any file under a directory.
fn newest_mtime(path: &std::path::Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| newest_mtime(&entry.path()))
        .max()
}

/// Starts the async twin (`examples/async_hub.rs`) as a child process.
pub fn start_async(limits: Limits) -> Box<dyn Server> {
    spawn_server(std::process::Command::new(async_twin_binary()), limits)
}

/// Starts the readiness-loop twin (`examples/poll_hub/`) as a child process.
pub fn start_poll(limits: Limits) -> Box<dyn Server> {
    spawn_server(std::process::Command::new(poll_twin_binary()), limits)
}

/// Why the Node twin cannot run here (`node` missing), if it cannot.
pub fn node_missing() -> Option<String> {
    static CHECKED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            match std::process::Command::new("node")
                .arg("--version")
                .stdin(std::process::Stdio::null())
                .output()
            {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(format!("`node --version` failed ({})", out.status)),
                Err(e) => Some(format!("`node` is not available: {e}")),
            }
        })
        .clone()
}

/// Starts the Node twin (`examples/node_hub.js`) as a child process.
pub fn start_node(limits: Limits) -> Box<dyn Server> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node_hub.js");
    let mut command = std::process::Command::new("node");
    command.arg(script);
    spawn_server(command, limits)
}

/// A client that keeps talking: sends `/ping` `times` times, 100 ms apart,
/// each time waiting for its `PONG`, on a thread of its own. The idle-timeout
/// tests run it beside a silent client; joining the handle gives every
/// other line it received on the way.
pub fn ping_every_100ms(mut peer: Peer, times: usize) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for _ in 0..times {
            peer.send("/ping");
            loop {
                let line = peer.recv();
                if line == "PONG" {
                    break;
                }
                lines.push(line);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        lines
    })
}

// ---- many hubs as one chat (linked, or through NATS) ------------------------

/// Connects and takes `name`, skipping whatever the network says
/// meanwhile (remote users may be joining).
pub fn client_as(addr: SocketAddr, name: &str) -> Peer {
    let (mut peer, _) = Peer::join(addr, name);
    peer.send(&format!("/nick {name}"));
    skip_to(&mut peer, &format!("OK nick {name}"));
    peer
}

/// Asks `/list` until it is exactly `expected` (bounded: 15 s), for a
/// network to settle.
pub fn wait_list(peer: &mut Peer, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        peer.send("/list");
        let got = loop {
            let line = peer.recv();
            if line.starts_with("LIST") {
                break line;
            }
        };
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: /list never became {expected:?} (last {got:?})",
            peer.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Skips lines until one equal to `line` (each bounded by the peer's
/// timeout); returns the ones skipped.
pub fn skip_to(peer: &mut Peer, line: &str) -> Vec<String> {
    let mut skipped = Vec::new();
    loop {
        let got = peer.recv();
        if got == line {
            return skipped;
        }
        skipped.push(got);
    }
}

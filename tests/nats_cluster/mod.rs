//! A real NATS cluster for tests: `nats-server` processes on loopback,
//! each on ports it picks itself (`-p -1`, `--cluster ...:-1`, `-m -1`),
//! read back from its log, joined into one cluster by routes.
//!
//! Never a mock: the point of the NATS tests is that tcphub's own client
//! speaks to the real server. `make test` (and `.ci/run`) install the
//! Debian package when it is missing; a plain `cargo test` on a machine
//! without it fails here, saying so.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a node may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `nats-server` is: on PATH, or where the Debian package puts it.
pub fn nats_server_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let candidates = on_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir: PathBuf| dir.join("nats-server"));
    for path in candidates {
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "nats-server is not installed: `make test` installs it (apt-get install nats-server), \
         or install it yourself; the NATS tests need the real server"
    );
}

/// One node: its process and the ports it took.
pub struct Node {
    pub name: String,
    pub client: SocketAddr,
    pub route: SocketAddr,
    pub monitor: SocketAddr,
    child: Option<Child>,
}

/// A cluster of nodes routed to each other. Dropping it kills them all.
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Extra flags for every node (credentials, say).
    extra: Vec<String>,
}

impl Cluster {
    /// `n` nodes; the first one alone if `n` is 1.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// `n` nodes, each started with `extra` flags too.
    pub fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let mut cluster = Cluster {
            nodes: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            let routes: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.route).collect();
            let node = cluster.spawn(&format!("node{i}"), None, &routes);
            cluster.nodes.push(node);
        }
        cluster
    }

    /// The client URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://{}", self.nodes[i].client)
    }

    /// Every node's client URL, comma-separated (what `--nats` takes).
    pub fn urls(&self) -> String {
        let urls: Vec<String> = (0..self.nodes.len()).map(|i| self.url(i)).collect();
        urls.join(",")
    }

    /// Kills node `i` (SIGKILL: no goodbye to anyone) and waits for it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes node `i` (SIGSTOP): its sockets stay open, nobody reads
    /// them; a server that hangs. [`Cluster::resume`] thaws it.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "-STOP");
    }

    pub fn resume(&mut self, i: usize) {
        self.signal(i, "-CONT");
    }

    fn signal(&mut self, i: usize, sig: &str) {
        if let Some(child) = &self.nodes[i].child {
            let status = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill {sig} node{i}");
        }
    }

    /// Starts node `i` again on its old client port, routed to the others.
    pub fn restart(&mut self, i: usize) {
        let routes: Vec<SocketAddr> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != i && n.child.is_some())
            .map(|(_, n)| n.route)
            .collect();
        let name = self.nodes[i].name.clone();
        let port = self.nodes[i].client.port();
        self.nodes[i] = self.spawn(&name, Some(port), &routes);
    }

    fn spawn(&self, name: &str, port: Option<u16>, routes: &[SocketAddr]) -> Node {
        let mut cmd = Command::new(nats_server_binary());
        let port = port.map_or("-1".to_string(), |p| p.to_string());
        cmd.args(["-a", "127.0.0.1", "-p", &port, "-m", "-1", "-n", name])
            .args(["--cluster_name", "tcphub-test"])
            .args(["--cluster", "nats://127.0.0.1:-1"]);
        if !routes.is_empty() {
            let routes: Vec<String> = routes.iter().map(|r| format!("nats://{r}")).collect();
            cmd.args(["--routes", &routes.join(",")]);
        }
        cmd.args(&self.extra);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("nats-server starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Reads the node's log for as long as it lives (so the pipe never
        // fills), handing the lines we wait for to the test thread.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("NATS_LOG").is_some() {
                    eprintln!("nats: {line}");
                }
                let _ = tx.send(line);
            }
        });
        let mut found = (None, None, None);
        let deadline = Instant::now() + START_TIMEOUT;
        while found.0.is_none() || found.1.is_none() || found.2.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{name}: nats-server did not start in time"));
            let addr = |l: &str| l.rsplit(' ').next().and_then(|a| a.parse().ok());
            if line.contains("Listening for client connections on") {
                found.0 = addr(&line);
            } else if line.contains("Listening for route connections on") {
                found.1 = addr(&line);
            } else if line.contains("Starting http monitor on") {
                found.2 = addr(&line);
            }
        }
        Node {
            name: name.to_string(),
            client: found.0.unwrap(),
            route: found.1.unwrap(),
            monitor: found.2.unwrap(),
            child: Some(child),
        }
    }

    /// `GET path` on node `i`'s monitoring port (e.g. `/connz?subs=1`).
    pub fn monitor(&self, i: usize, path: &str) -> String {
        let mut s = TcpStream::connect(self.nodes[i].monitor).expect("monitor port");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body
    }

    /// Waits (bounded) until every node sees `n - 1` routes: the cluster is
    /// one mesh, so a message published anywhere reaches everyone.
    pub fn wait_meshed(&self) {
        let want = self.nodes.iter().filter(|n| n.child.is_some()).count() - 1;
        let deadline = Instant::now() + START_TIMEOUT;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.child.is_none() {
                continue;
            }
            loop {
                let routez = self.monitor(i, "/routez");
                let routes = routez.matches("\"rid\"").count();
                if routes >= want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: {routes} of {want} routes after {START_TIMEOUT:?}",
                    node.name
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A bare NATS client for tests, to publish and subscribe as a non-tcphub
/// program would (the `nats` CLI, a Node script).
pub struct Foreign {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Foreign {
    /// Connects to `addr` and finishes the handshake (`CONNECT`, `PING`,
    /// waits for `PONG`).
    pub fn connect(addr: SocketAddr) -> Foreign {
        let stream = TcpStream::connect(addr).expect("connect to nats-server");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut f = Foreign {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        };
        let info = f.line();
        assert!(info.starts_with("INFO "), "{info}");
        f.send("CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"foreign\"}\r\nPING\r\n");
        f.until("PONG");
        f
    }

    pub fn send(&mut self, raw: &str) {
        self.stream.write_all(raw.as_bytes()).unwrap();
    }

    pub fn publish(&mut self, subject: &str, payload: &str) {
        self.send(&format!("PUB {subject} {}\r\n{payload}\r\n", payload.len()));
    }

    /// Subscribes, and waits until the server has it (a `PING` answered).
    pub fn subscribe(&mut self, subject: &str, sid: u32) {
        self.send(&format!("SUB {subject} {sid}\r\nPING\r\n"));
        self.until("PONG");
    }

    /// One control line, without `\r\n`.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("a line from nats-server");
        line.trim_end().to_string()
    }

    /// Skips lines (answering `PING`s) until one equal to `want`.
    pub fn until(&mut self, want: &str) {
        loop {
            let line = self.line();
            if line == want {
                return;
            }
            if line == "PING" {
                self.send("PONG\r\n");
            }
        }
    }

    /// The next `MSG`: (subject, reply, payload).
    pub fn next_msg(&mut self) -> (String, Option<String>, String) {
        loop {
            let line = self.line();
            if line == "PING" {
                self.send("PONG\r\n");
                continue;
            }
            let Some(rest) = line.strip_prefix("MSG ") else {
                continue;
            };
            let parts: Vec<&str> = rest.split(' ').collect();
            let len: usize = parts.last().unwrap().parse().unwrap();
            let mut payload = vec![0u8; len + 2];
            self.reader.read_exact(&mut payload).unwrap();
            payload.truncate(len);
            let reply = (parts.len() == 4).then(|| parts[2].to_string());
            return (
                parts[0].to_string(),
                reply,
                String::from_utf8(payload).unwrap(),
            );
        }
    }
}

//! What the bench runs against, and what it can learn about it from /proc.
//!
//! Three cases: a server somebody else started (`--addr`, maybe `--pid`);
//! the threaded hub started in this process (fan-out, where only the
//! server's speed matters); or `tcphub serve` started as a child process
//! (`conns`, where the server's own memory and threads are the point, so it
//! must not share a process with the bench).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::BenchError;
use crate::hub::{Config, Hub};
use crate::support::server_process::ServerProcess;

/// The server under test. Dropping it stops a server the bench started.
pub enum ServerUnderTest {
    /// Started by someone else.
    External { addr: SocketAddr, pid: Option<u32> },
    /// The threaded hub, in this process.
    InProcess(Hub),
    /// `tcphub serve`, as a child process of the bench.
    Child(ServerProcess),
}

impl std::fmt::Debug for ServerUnderTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How long a started server may take to say `listening on`.
const STARTUP: Duration = Duration::from_secs(20);

impl ServerUnderTest {
    /// The server at `addr` (`--addr`), whose process may be `pid`.
    pub fn external(addr: &str, pid: Option<u32>) -> Result<ServerUnderTest, BenchError> {
        let resolved = addr
            .to_socket_addrs()
            .map_err(|e| BenchError::Addr {
                addr: addr.to_string(),
                why: e.to_string(),
            })?
            .next()
            .ok_or_else(|| BenchError::Addr {
                addr: addr.to_string(),
                why: "no address found".into(),
            })?;
        Ok(ServerUnderTest::External {
            addr: resolved,
            pid,
        })
    }

    /// The threaded hub, started here on a free loopback port, with room
    /// for `clients` connections.
    pub fn in_process(clients: usize) -> Result<ServerUnderTest, BenchError> {
        let config = Config {
            max_clients: clients.max(Config::default().max_clients),
            ..Config::ephemeral()
        };
        Ok(ServerUnderTest::InProcess(
            Hub::start(config).map_err(BenchError::Hub)?,
        ))
    }

    /// `tcphub serve --port 0` as a child process (this same executable),
    /// with room for `clients` connections; waits for its `listening on`.
    pub fn child(clients: usize) -> Result<ServerUnderTest, BenchError> {
        let exe = std::env::current_exe().map_err(|e| BenchError::Spawn(e.to_string()))?;
        let mut command = Command::new(exe);
        command
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(["--max-clients", &clients.max(1).to_string()])
            .env("RUST_LOG", "warn");
        let server =
            ServerProcess::spawn(command, STARTUP).map_err(|e| BenchError::Spawn(e.to_string()))?;
        Ok(ServerUnderTest::Child(server))
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        match self {
            ServerUnderTest::External { addr, .. } => *addr,
            ServerUnderTest::Child(server) => server.addr(),
            ServerUnderTest::InProcess(hub) => hub.local_addr(),
        }
    }

    /// The server's process, if known and not this one.
    pub fn pid(&self) -> Option<u32> {
        match self {
            ServerUnderTest::External { pid, .. } => *pid,
            ServerUnderTest::InProcess(_) => None,
            ServerUnderTest::Child(server) => Some(server.pid()),
        }
    }

    /// One line for the report: what was measured.
    pub fn describe(&self) -> String {
        match self {
            ServerUnderTest::External {
                addr,
                pid: Some(pid),
            } => format!("{addr} (pid {pid})"),
            ServerUnderTest::External { addr, pid: None } => addr.to_string(),
            ServerUnderTest::InProcess(hub) => {
                format!("threaded hub in-process on {}", hub.local_addr())
            }
            ServerUnderTest::Child(server) => {
                format!("tcphub serve on {} (pid {})", server.addr(), server.pid())
            }
        }
    }

    /// File descriptors the server needs from *this* process's limit
    /// (an in-process hub holds one per client too); also: its CPU is this
    /// process's.
    pub fn in_this_process(&self) -> bool {
        matches!(self, ServerUnderTest::InProcess(_))
    }
}

/// Connects with a bounded wait, so a dead or overloaded server cannot hang
/// the bench.
pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout.max(Duration::from_millis(1)))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// This process's limit on open files: (soft, hard), from /proc/self/limits.
pub fn fd_limits() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_fd_limits(&text)
}

fn parse_fd_limits(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line["Max open files".len()..].split_whitespace();
    let parse = |word: Option<&str>| -> Option<u64> {
        match word? {
            "unlimited" => Some(u64::MAX),
            n => n.parse().ok(),
        }
    };
    Some((parse(numbers.next())?, parse(numbers.next())?))
}

/// Fails with advice when `needed` descriptors exceed this process's limit.
/// (Without libc the bench cannot raise its own limit; the shell can.)
pub fn check_fd_limit(needed: u64) -> Result<(), BenchError> {
    match fd_limits() {
        Some((soft, hard)) if needed > soft => Err(BenchError::FdLimit { needed, soft, hard }),
        _ => Ok(()),
    }
}

/// A process's resident memory and thread count, from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStatus {
    /// Resident set size now, in KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Highest resident set size so far, in KiB (`VmHWM`).
    pub peak_rss_kib: u64,
    /// Threads in the process.
    pub threads: u64,
    /// Open file descriptors, and the process's limit on them (a server
    /// that runs out stops accepting: worth saying when clients go missing).
    pub fds: Option<u64>,
    pub fd_limit: Option<u64>,
}

/// Reads /proc/<pid>/status; `None` if the process is gone or not Linux.
pub fn proc_status(pid: u32) -> Option<ProcStatus> {
    let dir = Path::new("/proc").join(pid.to_string());
    let text = std::fs::read_to_string(dir.join("status")).ok()?;
    let mut status = parse_proc_status(&text)?;
    status.fds = std::fs::read_dir(dir.join("fd"))
        .ok()
        .map(|entries| entries.count() as u64);
    status.fd_limit = std::fs::read_to_string(dir.join("limits"))
        .ok()
        .and_then(|l| parse_fd_limits(&l))
        .map(|(soft, _)| soft);
    Some(status)
}

fn parse_proc_status(text: &str) -> Option<ProcStatus> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(ProcStatus {
        rss_kib: field("VmRSS:")?,
        peak_rss_kib: field("VmHWM:")?,
        threads: field("Threads:")?,
        fds: None,
        fd_limit: None,
    })
}

/// Time left until `deadline`, or `None` once it has passed.
pub fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_open_files_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max processes             95678                95678                processes\n\
                    Max open files            1024                 20000                files\n";
        assert_eq!(parse_fd_limits(text), Some((1024, 20000)));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_fd_limits(text), Some((u64::MAX, u64::MAX)));
        assert_eq!(parse_fd_limits("nothing"), None);
        // this machine's own limits are readable
        assert!(fd_limits().is_some());
    }

    #[test]
    fn reads_memory_and_threads() {
        let text = "Name:\ttcphub\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n";
        assert_eq!(
            parse_proc_status(text),
            Some(ProcStatus {
                rss_kib: 10240,
                peak_rss_kib: 20480,
                threads: 7,
                fds: None,
                fd_limit: None,
            })
        );
        let me = proc_status(std::process::id()).unwrap();
        assert!(me.threads >= 1 && me.rss_kib > 0);
        assert!(me.fds.is_some_and(|n| n >= 3), "{me:?}");
        assert!(me.fd_limit.is_some());
    }

    #[test]
    fn too_many_descriptors_are_refused_with_advice() {
        let Some((soft, _)) = fd_limits() else {
            return;
        };
        if soft == u64::MAX {
            return; // unlimited here: nothing to refuse
        }
        let err = check_fd_limit(soft + 1).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ulimit -"), "{text}");
        assert!(check_fd_limit(1).is_ok());
    }
}

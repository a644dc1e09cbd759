//! A server in a child process: start it, read the address from its first
//! line (`listening on <addr>`, which `tcphub serve`, the twins and the
//! relay ceiling all print), and kill it when done.
//!
//! Used by the bench (`bench conns` starts `tcphub serve`), by `make
//! compare` (every server of the comparison) and by the tests that run a
//! server binary.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running server process. Dropping it kills the process and reaps it.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

/// Why a server process did not start: the command, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError(pub String);

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpawnError {}

impl ServerProcess {
    /// Starts `command` and waits up to `startup` for its first stdout line,
    /// `listening on <addr>`. Its stdin is closed; its stdout is drained by a
    /// thread (so the server never blocks writing to it); its stderr is left
    /// as the caller set it (inherited by default).
    pub fn spawn(mut command: Command, startup: Duration) -> Result<ServerProcess, SpawnError> {
        command.stdin(Stdio::null()).stdout(Stdio::piped());
        let shown = format!("{command:?}");
        let fail = |why: String| SpawnError(format!("{shown}: {why}"));
        let mut child = command.spawn().map_err(|e| fail(e.to_string()))?;
        let first = match child.stdout.take() {
            Some(stdout) => first_line(stdout, startup),
            None => Err("no stdout".to_string()),
        };
        match first.and_then(|line| parse_listening(&line)) {
            Ok(addr) => Ok(ServerProcess { child, addr }),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(fail(why))
            }
        }
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server now and waits for it (also done on drop).
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first line of `stdout`, read by a thread that then keeps draining.
fn first_line(stdout: std::process::ChildStdout, startup: Duration) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("server-stdout".into())
        .spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        })
        .map_err(|e| format!("stdout reader thread: {e}"))?;
    match rx.recv_timeout(startup) {
        Ok(Some(Ok(line))) => Ok(line),
        Ok(_) => Err("exited before saying `listening on`".to_string()),
        Err(_) => Err(format!("no `listening on` line within {startup:?}")),
    }
}

/// The address in a `listening on <addr>` line.
pub fn parse_listening(line: &str) -> Result<SocketAddr, String> {
    line.strip_prefix("listening on ")
        .and_then(|a| a.trim().parse().ok())
        .ok_or_else(|| format!("unexpected first line {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_line() {
        assert_eq!(
            parse_listening("listening on 127.0.0.1:4000"),
            Ok("127.0.0.1:4000".parse().unwrap())
        );
        assert!(parse_listening("hello").is_err());
        assert!(parse_listening("listening on nowhere").is_err());
    }

    #[test]
    fn a_program_that_prints_it_is_a_server() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo 'listening on 127.0.0.1:9'; sleep 5"]);
        let server = ServerProcess::spawn(sh, Duration::from_secs(10)).expect("starts");
        assert_eq!(server.addr().port(), 9);
        assert!(server.pid() > 0);
        server.kill();
    }

    #[test]
    fn a_program_that_does_not_is_an_error() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo nope"]);
        let err = ServerProcess::spawn(sh, Duration::from_secs(10)).unwrap_err();
        assert!(err.0.contains("unexpected first line"), "{err}");
        let mut sh = Command::new("sh");
        sh.args(["-c", "exit 0"]);
        let err = ServerProcess::spawn(sh, Duration::from_secs(10)).unwrap_err();
        assert!(err.0.contains("exited before"), "{err}");
        let err = ServerProcess::spawn(Command::new("/nonexistent/x"), Duration::from_secs(1))
            .unwrap_err();
        assert!(err.0.contains("/nonexistent/x"), "{err}");
    }
}

//! Typed errors of the library. The CLI turns them into one-line messages.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why a hub could not start.
#[derive(Debug)]
pub enum HubError {
    /// `--host` is not an address or a name that resolves.
    Resolve {
        host: String,
        port: u16,
        source: io::Error,
    },
    /// The address resolved, but binding failed (in use, not ours, ...).
    Bind { addr: SocketAddr, source: io::Error },
    /// The operating system refused a thread we need (acceptor, dispatcher).
    Spawn {
        thread: &'static str,
        source: io::Error,
    },
    /// The link flags cannot work together (`docs/linking.md`).
    Link(String),
    /// `--record FILE` cannot be created.
    Record { path: String, source: io::Error },
    /// The `--nats` flags cannot work (`docs/nats.md`).
    Nats(String),
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::Resolve { host, port, source } => {
                write!(f, "cannot use address {host}:{port}: {source}")
            }
            HubError::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {source}")?;
                if source.kind() == io::ErrorKind::AddrInUse {
                    write!(
                        f,
                        " (another hub running? pick another --port, or --port 0)"
                    )?;
                }
                Ok(())
            }
            HubError::Spawn { thread, source } => {
                write!(f, "cannot start the {thread} thread: {source}")
            }
            HubError::Link(why) | HubError::Nats(why) => f.write_str(why),
            HubError::Record { path, source } => {
                write!(f, "cannot record to {path}: {source}")
            }
        }
    }
}

impl std::error::Error for HubError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HubError::Resolve { source, .. }
            | HubError::Bind { source, .. }
            | HubError::Spawn { source, .. }
            | HubError::Record { source, .. } => Some(source),
            HubError::Link(_) | HubError::Nats(_) => None,
        }
    }
}

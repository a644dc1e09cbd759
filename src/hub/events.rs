//! What every hub thread shares, in one file that imports none of them.
//!
//! The threads talk through one channel of [`Event`]s; the acceptor counts
//! connections per address in [`PerIp`] and the dispatcher counts them down;
//! every reader thread (client or link) is started with
//! [`CLIENT_STACK_SIZE`]. Keeping these here lets imports flow one way:
//! `acceptor`, `reader`, `link`, `linker` and `dispatcher` import this file,
//! and this file imports only the shared data below it (`budget`, and
//! `crate::proto`), so no thread's file needs another thread's file to say
//! what it sends (docs/architecture.md, "Which file imports which").

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use crate::hub::budget::Quota;
use crate::proto::framing::Inbound;
use crate::proto::link_line::{LinkLine, LinkRefusal};
use crate::proto::nats_wire::{ServerInfo, ServerOp};
use crate::proto::router::ClientId;

/// Stack size of each client thread. A reader needs little stack, and only
/// the pages it touches cost memory; a small stack keeps 10,000 threads
/// within a few tens of megabytes of address space per thousand clients.
pub const CLIENT_STACK_SIZE: usize = 128 * 1024;

/// Everything that reaches the dispatcher comes as one of these, through one
/// channel, so it sees a single ordered story of the hub.
#[derive(Debug)]
pub enum Event {
    /// From the acceptor: a client was admitted. The dispatcher writes to
    /// `socket`; the client's reader thread reads from the same socket.
    Connected {
        id: ClientId,
        socket: Arc<TcpStream>,
        peer: SocketAddr,
        /// Its share of the channel: given back as its lines are applied.
        quota: Arc<Quota>,
    },
    /// From the acceptor: the hub is full; answer `ERR server-full` and close.
    Full { socket: TcpStream, peer: SocketAddr },
    /// From a reader: the lines of one read, parsed, in the order they
    /// came (each a command, or a refusal to answer); at most
    /// [`crate::hub::budget::HAND_OVER_LINES`]. One hand-over per read, not
    /// per line: each crossing of the channel touches atomics (the
    /// channel's and the budget's) on cache lines the other core wrote
    /// last, and a busy publisher's read holds hundreds of lines (per line,
    /// the hub took 18.3 ns per delivery to 100 subscribers, sustained; per
    /// read, 15.8: docs/benchmarks-notes.md).
    Lines {
        id: ClientId,
        lines: Vec<Inbound>,
        /// What they cost in the channel ([`crate::hub::budget::cost`],
        /// summed), as the reader took it from its budget: the dispatcher
        /// gives back exactly this.
        bytes: usize,
    },
    /// From a reader: its connection ended (end of stream, reset, ...).
    Closed { id: ClientId, why: String },
    /// From the link threads (`link-acceptor`, `linker`, `link-<hub>`):
    /// see [`crate::hub::link`].
    Link(LinkEvent),
    /// From the `nats` thread: see [`crate::hub::nats`]. Boxed: a server's
    /// `INFO` is ~150 bytes, and an `Event` that size would be built on
    /// every client reader's stack, one more 4 kB page per client thread
    /// (tests/capacity.rs caught it: +41 MB at 10,000 clients).
    Nats(Box<NatsEvent>),
    /// From [`crate::hub::Hub::shutdown`]: close everything and return.
    Shutdown,
}

/// What the link threads tell the dispatcher (inside [`Event::Link`]).
#[derive(Debug)]
pub enum LinkEvent {
    /// From the linker: a connection to a `--link` target is open; the
    /// dispatcher sends our `HELLO` on it.
    Dialled {
        id: ClientId,
        socket: Arc<TcpStream>,
        /// Which `--link` it is (the dispatcher tells the linker when it
        /// is gone, so it is dialled again).
        target: usize,
    },
    /// From the linker: the dialled hub answered with a good `HELLO`.
    Answered { id: ClientId, hub: String },
    /// From the link-acceptor: an incoming link with a good `HELLO`.
    Incoming {
        id: ClientId,
        socket: Arc<TcpStream>,
        hub: String,
    },
    /// From the link-acceptor: a first line that is not an acceptable
    /// `HELLO`: one `ERR`, then close. Never registered.
    Refused {
        socket: TcpStream,
        peer: SocketAddr,
        refusal: LinkRefusal,
    },
    /// From a `link-<hub>` reader: one parsed line.
    Line {
        id: ClientId,
        line: LinkLine<String>,
    },
    /// From a `link-<hub>` reader: a line that is not a link line.
    Bad { id: ClientId, refusal: LinkRefusal },
    /// From a reader or the linker: the link ended (or never came up).
    Closed { id: ClientId, why: String },
}

/// What the `nats` thread tells the dispatcher (inside [`Event::Nats`]).
#[derive(Debug)]
pub enum NatsEvent {
    /// A NATS server accepted our `CONNECT`: from now on the dispatcher
    /// writes to `socket` (the `nats` thread only reads it).
    Up {
        id: ClientId,
        socket: Arc<TcpStream>,
        info: ServerInfo,
    },
    /// The operations one `read()` of connection `id` brought, in order.
    Ops { id: ClientId, ops: Vec<ServerOp> },
    /// Connection `id` ended; the `nats` thread is dialling the next server.
    Down { id: ClientId, why: String },
}

/// Connections per IP address (`--max-per-ip`): counted up by the
/// acceptor, down by the dispatcher when it closes a client. A lock, but
/// only once per connection and once per close, never per line.
#[derive(Debug, Default)]
pub struct PerIp {
    limit: Option<usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    pub fn new(limit: Option<usize>) -> Self {
        PerIp {
            limit,
            open: Mutex::default(),
        }
    }

    /// One more connection from `ip`, if it has room.
    pub fn try_admit(&self, ip: IpAddr) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` is closed.
    pub fn release(&self, ip: IpAddr) {
        if self.limit.is_none() {
            return;
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }
}

//! The link-side state of one hub, as data: its links, the hubs beyond
//! them, who is on those hubs. A field of the [`crate::proto::router::Router`].
//!
//! The rules that change it are in [`crate::proto::network`] (methods of the
//! router); the data lives here so the router can hold it without importing
//! the file that imports the router.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::proto::batch::Pending;
use crate::proto::id_map::IdMap;
use crate::proto::ids::ClientId;

/// The link-side state of one hub; a field of the
/// [`Router`](crate::proto::router::Router).
#[derive(Debug)]
pub struct Network {
    /// This hub's name (`--name`).
    pub(super) name: String,
    /// `--link-key`: sent in our `HELLO`.
    pub(super) key: String,
    /// Every link, in the handshake or up.
    pub(super) links: IdMap<Link>,
    /// Every other hub we can reach, and through which link.
    pub(super) hubs: HashMap<String, RemoteHub>,
    /// Links to close once their pending lines are written.
    pub(super) closing: Vec<ClientId>,
    /// Milliseconds, as the server last said (see [`Router::link_tick`]).
    pub(super) now_ms: u64,
    /// Send a `PING` on a link that was sent nothing for this long.
    pub(super) heartbeat_ms: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            name: "hub".into(),
            key: String::new(),
            links: IdMap::default(),
            hubs: HashMap::new(),
            closing: Vec::new(),
            now_ms: 0,
            heartbeat_ms: 5000 / 3,
        }
    }
}

/// One link to a neighbouring hub.
#[derive(Debug, Default)]
pub struct Link {
    /// Spans of the batch waiting to be written to this link.
    pub(super) pending: Pending,
    /// The neighbour's name, once its `HELLO` is accepted (`None` before).
    pub(super) hub: Option<String>,
    /// Topics the neighbour said `SUB` for: someone beyond it wants them.
    pub(super) wants: HashSet<String>,
    /// Topics we said `SUB` for on this link (and not `UNSUB` since).
    pub(super) told: HashSet<String>,
    /// When we last queued something for it ([`Network::now_ms`]).
    pub(super) last_sent_ms: u64,
    /// False once it is going down: it gets nothing new.
    pub(super) open: bool,
}

impl Link {
    pub(super) fn is_up(&self) -> bool {
        self.open && self.hub.is_some()
    }
}

/// A hub beyond one of our links.
#[derive(Debug)]
pub struct RemoteHub {
    /// The link it is reached through.
    pub(super) via: ClientId,
    /// Its clients' nicks (bare; shown as `<nick>@<hub>`).
    pub(super) nicks: BTreeSet<String>,
}

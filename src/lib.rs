//! tcphub: a TCP event hub built to be taught with.
//!
//! Follow a line through the files in this order:
//!
//! 1. [`acceptor`]: the `acceptor` thread blocks in `accept()` and starts one
//!    `client-<id>` thread per connection.
//! 2. [`reader`]: each client thread blocks in `read()`, cuts the bytes into
//!    lines ([`framing`]), parses them ([`protocol`]) and sends them into the
//!    hub's one channel.
//! 3. [`dispatcher`]: the `dispatcher` thread takes events off the channel,
//!    asks the router who gets what ([`routing`]), and writes to the sockets.
//!
//! [`server`] starts and stops all of it; [`admission`] holds the two numbers
//! the acceptor and dispatcher share; [`cli`] is the command line.
//! [`bench`] is `tcphub bench`, a load generator for any protocol v1 server.
//! [`protocol`], [`framing`] and [`routing`] do no IO at all.
//!
//! The other side of the wire, the programs that talk *to* a hub:
//! [`client`] (a terminal on the hub, `--pretty` words lines with
//! [`pretty`]), [`agent`] (vendor, driver and logger services reacting to
//! events) and [`scenario`] (scripted actors that check what the hub says).
//! They connect and read lines with [`connection`]; [`duration`] reads `2s`.

pub mod acceptor;
pub mod admission;
pub mod agent;
pub mod bench;
pub mod cli;
pub mod client;
pub mod connection;
pub mod dispatcher;
pub mod duration;
pub mod error;
pub mod framing;
pub mod json;
pub mod pretty;
pub mod protocol;
pub mod reader;
pub mod routing;
pub mod scenario;
pub mod server;

pub use error::HubError;
pub use server::{Config, Hub};

//! tcphub: a TCP event hub built to be taught with.
//!
//! The folders say where a line goes:
//!
//! - [`hub`]: the threaded server. The `acceptor` thread blocks in
//!   `accept()` and starts one `client-<id>` thread per connection
//!   ([`hub::acceptor`]); each client thread blocks in `read()` and sends
//!   what it parsed, a read's lines at a time, into the hub's one channel
//!   ([`hub::reader`], once per batch: [`hub::batch_gate`]); the
//!   `dispatcher` thread takes events off the channel and writes to every
//!   socket ([`hub::dispatcher`]), through each client's outbox
//!   ([`hub::outbox`]). Linked hubs add link threads ([`hub::link`],
//!   [`hub::linker`]); `--monitor` adds the live view ([`hub::monitor`]).
//! - [`proto`]: everything both servers (the threaded hub and its async
//!   twin) share, with no sockets, threads or clocks in it: bytes to lines
//!   ([`proto::framing`]), client lines ([`proto::client_line`]), server
//!   lines ([`proto::server_line`]), who gets what ([`proto::router`]) and
//!   the batch each recipient's share is cut from ([`proto::batch`]).
//! - [`client`]: `tcphub client`, and the client side of a connection that
//!   the agents, scenarios and client share.
//! - [`agent`], [`scenario`], [`bench`], [`check`]: programs that talk *to*
//!   a hub: the lab's services, scripted scenarios, the load generator, and
//!   the grader that checks any server against protocol v1.
//! - [`cli`]: the command line, the only place that sets up logging.
//! - [`support`]: small helpers (JSON, durations, timeouts) the programs share.
//! - [`top`]: `tcphub top`, the live view (`serve --monitor`) in a terminal.

pub mod agent;
pub mod bench;
pub mod check;
pub mod cli;
pub mod client;
pub mod hub;
pub mod proto;
pub mod scenario;
pub mod support;
pub mod top;

pub use hub::{Config, Hub, HubError};

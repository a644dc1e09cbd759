//! The IO-free core: no sockets, no threads, no clocks.
//!
//! Everything in this folder is plain data and functions, so every rule of
//! the protocol is a unit test without a single connection, and the threaded
//! hub (`src/hub/`) and the async twin (`examples/async_hub.rs`) run the very
//! same code. The servers only move bytes between sockets and this core.
//! `tests/sans_io.rs` fails if a file here ever uses `std::net`,
//! `std::thread`, `Instant` or `SystemTime`.

pub mod admission;
pub mod batch;
pub mod client_line;
pub mod escape;
pub mod framing;
pub mod http;
pub mod id_map;
pub mod ids;
pub mod link_line;
pub mod link_state;
pub mod nats_bridge;
pub mod nats_subjects;
pub mod nats_wire;
pub mod network;
pub mod pending_limit;
pub mod quiet;
pub mod recording;
pub mod roster;
pub mod router;
pub mod server_line;

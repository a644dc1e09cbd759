//! The ids every part of the core shares: a client's or a link's number.
//!
//! One file that imports nothing else of `crate::proto`, so the router, the
//! batch and the network can all name a recipient without importing each
//! other (docs/architecture.md, "Which file imports which").

/// A connection's id, given by the acceptor; also the number in its first
/// nick (`guest-<id>`) and in its thread's name (`client-<id>`).
pub type ClientId = u64;

/// Link ids start here; client ids (guest numbers) stay far below.
pub const LINK_ID_BASE: ClientId = 1 << 48;

/// True if `id` is a link's, not a client's.
pub fn is_link(id: ClientId) -> bool {
    id >= LINK_ID_BASE
}

//! Recognising a timeout, which the standard library reports two ways.

use std::io;

/// True for the two ways a read or write timeout shows up (Unix gives
/// `WouldBlock`, Windows `TimedOut`). The hub's dispatcher asks it of a
/// write to a slow client; the clients ask it of a read with a deadline.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

//! The two numbers the acceptor and the dispatcher must agree on: how many
//! clients are connected, and which guest number comes next.
//!
//! Everything else the dispatcher owns alone. These two are shared because
//! the acceptor must decide *before* it spawns a client thread whether the
//! hub is full (`ERR server-full`) and what the thread is called
//! (`client-<N>`, N being the number in the `guest-<N>` nick). They are plain
//! atomics: no lock, no registry, nothing to wait on.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Admission control and guest numbering for one hub.
#[derive(Debug)]
pub struct Admission {
    max_clients: usize,
    /// Clients admitted and not yet released by the dispatcher.
    open: AtomicUsize,
    /// The next `N` for `guest-<N>`; counts up from 1 for the life of the hub.
    next_guest: AtomicU64,
}

impl Admission {
    pub fn new(max_clients: usize) -> Self {
        Admission {
            max_clients,
            open: AtomicUsize::new(0),
            next_guest: AtomicU64::new(1),
        }
    }

    /// Called by the acceptor for each new connection: `Some(id)` if there is
    /// room (the id is also its guest number), `None` if the hub is full.
    /// Only the acceptor admits, so the check-then-add cannot race another
    /// admission; a concurrent release only makes room.
    pub fn try_admit(&self) -> Option<u64> {
        if self.open.load(Ordering::SeqCst) >= self.max_clients {
            return None;
        }
        self.open.fetch_add(1, Ordering::SeqCst);
        Some(self.next_guest.fetch_add(1, Ordering::SeqCst))
    }

    /// Called by the dispatcher when an admitted client is gone for good.
    pub fn release(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    /// Clients admitted and not yet released.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// A fresh guest number, for a client whose `guest-<id>` is already in
    /// use (someone renamed to it): the contract says skip names in use.
    pub fn fresh_guest_number(&self) -> u64 {
        self.next_guest.fetch_add(1, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_numbers_count_up() {
        let a = Admission::new(2);
        assert_eq!(a.try_admit(), Some(1));
        assert_eq!(a.try_admit(), Some(2));
        assert_eq!(a.try_admit(), None);
        a.release();
        assert_eq!(a.try_admit(), Some(3));
        assert_eq!(a.open(), 2);
    }

    #[test]
    fn fresh_numbers_continue_the_count() {
        let a = Admission::new(10);
        assert_eq!(a.try_admit(), Some(1));
        assert_eq!(a.fresh_guest_number(), 2);
        assert_eq!(a.try_admit(), Some(3));
    }
}

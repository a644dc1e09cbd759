//! The connected clients as one dense `Vec`, with an id index beside it.
//!
//! Why not a map keyed by id: the two hot paths (chat to everyone, an
//! `EVENT` to everyone subscribed to `*`) visit every client once per line.
//! Walking a hash map visits its buckets, empty ones included, and each
//! entry is wherever the table put it; walking a `Vec` reads one block of
//! memory front to back. Measured with callgrind at 1 publisher x 1000
//! subscribers (docs/benchmarks-notes.md, "The per-recipient walk").
//!
//! Clients sit in connect order until one leaves: then the last one takes
//! the leaver's place (`swap_remove`), so leaving costs one move, not a
//! shift of everyone behind. Nobody depends on the order between clients:
//! each client's own lines keep the one global order whatever the order of
//! the writes.

use std::ops::Index;

use crate::proto::id_map::IdMap;
use crate::proto::ids::ClientId;

/// Values keyed by client id, stored densely (see the module docs).
#[derive(Debug)]
pub struct Roster<T> {
    /// `(id, value)` in connect order, but for moves on removal.
    entries: Vec<(ClientId, T)>,
    /// id -> position in `entries`.
    index: IdMap<usize>,
}

impl<T> Default for Roster<T> {
    fn default() -> Self {
        Roster {
            entries: Vec::new(),
            index: IdMap::default(),
        }
    }
}

impl<T> Roster<T> {
    /// Adds (or replaces) the value for `id`; returns it.
    pub fn insert(&mut self, id: ClientId, value: T) -> &mut T {
        let at = match self.index.get(&id) {
            Some(&at) => {
                self.entries[at].1 = value;
                at
            }
            None => {
                self.entries.push((id, value));
                self.index.insert(id, self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        &mut self.entries[at].1
    }

    /// Forgets `id`; the last entry moves into its place.
    pub fn remove(&mut self, id: ClientId) -> Option<T> {
        let at = self.index.remove(&id)?;
        let (_, value) = self.entries.swap_remove(at);
        if let Some(&(moved, _)) = self.entries.get(at) {
            self.index.insert(moved, at);
        }
        Some(value)
    }

    /// The value for `id`, if it is here.
    pub fn get(&self, id: ClientId) -> Option<&T> {
        self.index.get(&id).map(|&at| &self.entries[at].1)
    }

    /// The value for `id`, to change it.
    pub fn get_mut(&mut self, id: ClientId) -> Option<&mut T> {
        self.index.get(&id).map(|&at| &mut self.entries[at].1)
    }

    /// How many are here.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nobody is here.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every `(id, value)`, front to back: the walk the hot paths make.
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, &T)> {
        self.entries.iter().map(|(id, v)| (*id, v))
    }

    /// Every `(id, value)`, to change them.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ClientId, &mut T)> {
        self.entries.iter_mut().map(|(id, v)| (*id, &mut *v))
    }

    /// Every value.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl<T> Index<&ClientId> for Roster<T> {
    type Output = T;

    /// The value for a client known to be here (panics otherwise, like a
    /// map's `[]`): for the router's own bookkeeping, never for peer input.
    fn index(&self, id: &ClientId) -> &T {
        self.get(*id).expect("a client in the roster")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_moves_the_last_into_the_gap_and_keeps_the_index_right() {
        let mut roster = Roster::default();
        for id in 1..=5u64 {
            roster.insert(id, id * 10);
        }
        assert_eq!(roster.remove(2), Some(20));
        assert_eq!(roster.remove(2), None);
        let order: Vec<_> = roster.iter().map(|(id, _)| id).collect();
        assert_eq!(order, vec![1, 5, 3, 4]);
        for id in [1, 3, 4, 5] {
            assert_eq!(roster.get(id), Some(&(id * 10)));
        }
        assert_eq!(roster.remove(4), Some(40), "the last one");
        *roster.get_mut(5).unwrap() += 1;
        assert_eq!(roster[&5], 51);
        roster.insert(5, 7);
        assert_eq!((roster.len(), roster[&5]), (3, 7), "replaced, not added");
        for id in [1, 3, 5] {
            roster.remove(id);
        }
        assert!(roster.is_empty() && roster.get(1).is_none());
    }
}

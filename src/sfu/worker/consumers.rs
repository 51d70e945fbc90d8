//! The worker's consumers, kept in a slab. The packet path reaches each consumer of a
//! producer by its slot ([`CKey`], an index the producer keeps), so a forwarded packet costs
//! one array access per subscriber instead of hashing a string id and probing a map. The
//! control plane, which names consumers by id, finds them through an index beside it.
//!
//! A slot is reused once its consumer is removed, so a producer's list must drop a key when
//! its consumer goes: `Worker::close_consumer` does both.

use std::collections::HashMap;

use slab::Slab;

use crate::ids::ConsumerId;

/// A consumer's slot in its worker.
pub(super) type CKey = usize;

/// Consumers by slot, and their slots by id.
#[derive(Debug)]
pub(super) struct Consumers<C> {
    slots: Slab<C>,
    by_id: HashMap<ConsumerId, CKey>,
}

impl<C> Default for Consumers<C> {
    fn default() -> Self {
        Self {
            slots: Slab::new(),
            by_id: HashMap::new(),
        }
    }
}

impl<C> Consumers<C> {
    /// Adds a consumer under a new id and returns its slot; None (and nothing added) when
    /// the id is already taken.
    pub fn insert(&mut self, id: ConsumerId, consumer: C) -> Option<CKey> {
        if self.by_id.contains_key(&id) {
            return None;
        }
        let key = self.slots.insert(consumer);
        self.by_id.insert(id, key);
        Some(key)
    }

    /// The slot of consumer `id`.
    pub fn key(&self, id: &ConsumerId) -> Option<CKey> {
        self.by_id.get(id).copied()
    }

    pub fn get(&self, id: &ConsumerId) -> Option<&C> {
        self.key(id).and_then(|k| self.slots.get(k))
    }

    pub fn get_mut(&mut self, id: &ConsumerId) -> Option<&mut C> {
        self.key(id).and_then(|k| self.slots.get_mut(k))
    }

    /// The consumer in slot `key` (the packet path).
    pub fn at(&self, key: CKey) -> Option<&C> {
        self.slots.get(key)
    }

    pub fn at_mut(&mut self, key: CKey) -> Option<&mut C> {
        self.slots.get_mut(key)
    }

    /// Removes consumer `id`; its slot is free for the next insert.
    pub fn remove(&mut self, id: &ConsumerId) -> Option<(CKey, C)> {
        let key = self.by_id.remove(id)?;
        self.slots.try_remove(key).map(|c| (key, c))
    }

    /// Every consumer, in slot order.
    pub fn values(&self) -> impl Iterator<Item = &C> {
        self.slots.iter().map(|(_, c)| c)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ConsumerId {
        ConsumerId::from_raw(s)
    }

    #[test]
    fn a_consumer_is_found_by_id_and_by_slot() {
        let mut cs = Consumers::default();
        let a = cs.insert(id("c-a"), "a").expect("new id");
        let b = cs.insert(id("c-b"), "b").expect("new id");
        assert_ne!(a, b);
        assert_eq!(cs.key(&id("c-b")), Some(b));
        assert_eq!(cs.get(&id("c-a")), Some(&"a"));
        assert_eq!(cs.at(b), Some(&"b"));
        *cs.at_mut(a).expect("slot a") = "a2";
        assert_eq!(cs.get_mut(&id("c-a")).map(|c| *c), Some("a2"));
        assert_eq!(cs.len(), 2);
    }

    #[test]
    fn an_id_already_taken_is_refused_and_keeps_its_consumer() {
        let mut cs = Consumers::default();
        let a = cs.insert(id("c-a"), 1).expect("new id");
        assert_eq!(cs.insert(id("c-a"), 2), None);
        assert_eq!(cs.at(a), Some(&1));
        assert_eq!(cs.len(), 1);
    }

    #[test]
    fn a_removed_consumer_is_gone_by_id_and_by_slot_and_its_slot_is_reused() {
        let mut cs = Consumers::default();
        let a = cs.insert(id("c-a"), 1).expect("new id");
        cs.insert(id("c-b"), 2).expect("new id");
        assert_eq!(cs.remove(&id("c-a")), Some((a, 1)));
        assert_eq!(cs.remove(&id("c-a")), None);
        assert_eq!(cs.get(&id("c-a")), None);
        assert_eq!(cs.at(a), None);
        // The next consumer takes the free slot: whoever kept `a` must have dropped it.
        let c = cs.insert(id("c-c"), 3).expect("new id");
        assert_eq!(c, a);
        assert_eq!(cs.get(&id("c-c")), Some(&3));
        assert_eq!(cs.len(), 2);
    }
}

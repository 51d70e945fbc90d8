//! One timer structure per worker: when each transport wants str0m's `handle_timeout`.
//!
//! Every `Rtc` says when it next needs time (`Output::Timeout`). The worker used to keep that
//! instant in each transport and, at every wake-up, walk all of its transports to find the
//! due ones and the next deadline: O(transports) per wake-up, and a wake-up comes every few
//! milliseconds per subscriber's pacer. Here the deadlines are a min-heap: a wake-up costs
//! O(log n) per transport that is actually due, and the next deadline is the top of the heap.
//!
//! Deadlines are only ever added; one that a later, earlier deadline replaced stays in the
//! heap and is dropped when it comes up (it is not the key's current deadline). A key has
//! at most one current deadline: scheduling a later one while an earlier one is pending does
//! nothing, because the earlier wake-up polls the transport, which then states its deadline
//! again.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hash;
use std::time::Instant;

use rustc_hash::FxHashMap;

/// Deadlines by key (a worker's transport keys).
#[derive(Debug)]
pub struct Timers<K> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    /// The deadline of each key that has one: the entry of the heap that counts. Hashed with
    /// Fx: the keys are the worker's own counters, never chosen by an outsider.
    current: FxHashMap<K, Instant>,
}

impl<K: Copy + Eq + Hash + Ord> Default for Timers<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            current: FxHashMap::default(),
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> Timers<K> {
    /// `key` wants to be woken at `at`. Keeps the earlier deadline if it already has one.
    pub fn schedule(&mut self, key: K, at: Instant) {
        match self.current.get_mut(&key) {
            Some(current) if *current <= at => {}
            Some(current) => {
                *current = at;
                self.heap.push(Reverse((at, key)));
            }
            None => {
                self.current.insert(key, at);
                self.heap.push(Reverse((at, key)));
            }
        }
    }

    /// The next key whose deadline is `now` or earlier, which then has no deadline until it
    /// is scheduled again. None when nothing is due.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if self.current.get(&key) == Some(&at) {
                self.current.remove(&key);
                return Some(key);
            }
        }
        None
    }

    /// The earliest deadline of any key, None when no key has one.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if self.current.get(&key) == Some(&at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// `key` is gone: its deadline no longer counts.
    pub fn remove(&mut self, key: K) {
        self.current.remove(&key);
    }

    /// Deadlines held, current and replaced (for tests and stats).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn due_keys_come_out_in_deadline_order_and_only_once() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(3u64, t0 + ms(30));
        timers.schedule(1, t0 + ms(10));
        timers.schedule(2, t0 + ms(20));

        assert_eq!(timers.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(
            timers.pop_due(t0 + ms(5)),
            None,
            "nothing is due before 10 ms"
        );
        assert_eq!(timers.pop_due(t0 + ms(25)), Some(1));
        assert_eq!(timers.pop_due(t0 + ms(25)), Some(2));
        assert_eq!(timers.pop_due(t0 + ms(25)), None, "3 is due at 30 ms");
        assert_eq!(timers.next_deadline(), Some(t0 + ms(30)));
        assert_eq!(timers.pop_due(t0 + ms(30)), Some(3));
        assert_eq!(
            timers.pop_due(t0 + ms(100)),
            None,
            "a popped key has no deadline"
        );
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn an_earlier_deadline_replaces_a_later_one() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(1u64, t0 + ms(50));
        timers.schedule(1, t0 + ms(10));

        assert_eq!(timers.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(timers.pop_due(t0 + ms(10)), Some(1));
        // The replaced 50 ms deadline does not wake the key a second time.
        assert_eq!(timers.pop_due(t0 + ms(60)), None);
        assert_eq!(timers.heap_len(), 0, "the replaced deadline was dropped");
    }

    #[test]
    fn a_later_deadline_waits_for_the_pending_earlier_one() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(1u64, t0 + ms(10));
        timers.schedule(1, t0 + ms(40));

        assert_eq!(
            timers.heap_len(),
            1,
            "nothing is added for the later deadline"
        );
        assert_eq!(timers.pop_due(t0 + ms(10)), Some(1));
        // Once woken, the key states its deadline again.
        timers.schedule(1, t0 + ms(40));
        assert_eq!(timers.pop_due(t0 + ms(39)), None);
        assert_eq!(timers.pop_due(t0 + ms(40)), Some(1));
    }

    #[test]
    fn a_removed_key_is_never_due() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(1u64, t0 + ms(10));
        timers.schedule(2, t0 + ms(20));
        timers.remove(1);

        assert_eq!(timers.next_deadline(), Some(t0 + ms(20)));
        assert_eq!(timers.pop_due(t0 + ms(30)), Some(2));
        assert_eq!(timers.pop_due(t0 + ms(30)), None);
    }

    #[test]
    fn a_replaced_deadline_at_the_top_does_not_hide_the_next_one() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.schedule(1u64, t0 + ms(30));
        timers.schedule(2, t0 + ms(10));
        assert_eq!(timers.pop_due(t0 + ms(10)), Some(2));
        // 2 comes back later than 1; then 1 moves earlier than its first deadline.
        timers.schedule(2, t0 + ms(50));
        timers.schedule(1, t0 + ms(20));
        assert_eq!(timers.next_deadline(), Some(t0 + ms(20)));
        assert_eq!(timers.pop_due(t0 + ms(35)), Some(1));
        assert_eq!(
            timers.pop_due(t0 + ms(35)),
            None,
            "1's 30 ms deadline was replaced"
        );
        assert_eq!(timers.next_deadline(), Some(t0 + ms(50)));
    }
}

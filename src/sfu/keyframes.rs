//! When a keyframe request may go to a publisher, per layer of one producer.
//!
//! A request stays outstanding until a keyframe arrives on its layer: the consumers that ask
//! in the meantime (a burst of joins, a layer switch, a subscriber's PLI) are answered by the
//! keyframe already on its way, and the publisher's encoder is asked once. When no keyframe
//! came after [`RETRY_AFTER`], the request was lost or ignored and may go again. After a
//! keyframe, the next request may go at once unless the previous one is younger than
//! [`MIN_GAP`], which caps the keyframes a client can force out of a publisher.
//!
//! A fixed interval between requests alone (what we had) made every join that followed
//! another within the interval wait for it: in a burst of 200 joins in groups of 50, three
//! groups out of four waited close to 500 ms for their first frame.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Minimum time between two requests on a layer: at most ten forced keyframes a second.
pub const MIN_GAP: Duration = Duration::from_millis(100);
/// How long a request stays outstanding without a keyframe before it may be repeated.
pub const RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
struct Request {
    at: Instant,
    /// No keyframe has arrived on the layer since.
    outstanding: bool,
}

/// Keyframe requests of one producer, per layer (its rid, `""` without simulcast).
#[derive(Debug, Default)]
pub struct KeyframeGate {
    layers: HashMap<String, Request>,
}

impl KeyframeGate {
    /// Whether a request for `layer` may go now; if so, it is recorded as sent.
    pub fn request(&mut self, layer: &str, now: Instant) -> bool {
        if let Some(last) = self.layers.get(layer) {
            let age = now.saturating_duration_since(last.at);
            let wait = if last.outstanding {
                RETRY_AFTER
            } else {
                MIN_GAP
            };
            if age < wait {
                return false;
            }
        }
        self.layers.insert(
            layer.to_string(),
            Request {
                at: now,
                outstanding: true,
            },
        );
        true
    }

    /// A keyframe arrived on `layer`: the request for it is answered.
    pub fn on_keyframe(&mut self, layer: &str) {
        if let Some(r) = self.layers.get_mut(layer) {
            r.outstanding = false;
        }
    }

    /// Forgets every request (the producer resumed: what it sent before is gone).
    pub fn reset(&mut self) {
        self.layers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_request_goes_and_later_ones_wait_for_its_keyframe() {
        let mut g = KeyframeGate::default();
        let t0 = Instant::now();
        assert!(g.request("", t0));
        assert!(!g.request("", t0 + ms(50)));
        assert!(!g.request("", t0 + ms(499)));
    }

    #[test]
    fn an_unanswered_request_is_repeated_after_the_retry_time() {
        let mut g = KeyframeGate::default();
        let t0 = Instant::now();
        assert!(g.request("", t0));
        assert!(g.request("", t0 + RETRY_AFTER));
        assert!(!g.request("", t0 + RETRY_AFTER + ms(1)));
    }

    #[test]
    fn after_a_keyframe_the_next_request_goes_once_the_minimum_gap_has_passed() {
        let mut g = KeyframeGate::default();
        let t0 = Instant::now();
        assert!(g.request("", t0));
        g.on_keyframe("");
        assert!(!g.request("", t0 + MIN_GAP - ms(1)));
        assert!(g.request("", t0 + MIN_GAP));
        // The new request is outstanding again.
        assert!(!g.request("", t0 + MIN_GAP + MIN_GAP));
    }

    #[test]
    fn a_join_after_an_answered_request_does_not_wait_for_the_retry_time() {
        // The case that made joins slow: a second group of subscribers asks 250 ms after the
        // first, whose keyframe has long arrived.
        let mut g = KeyframeGate::default();
        let t0 = Instant::now();
        assert!(g.request("", t0));
        g.on_keyframe("");
        assert!(g.request("", t0 + ms(250)));
    }

    #[test]
    fn layers_are_independent() {
        let mut g = KeyframeGate::default();
        let t0 = Instant::now();
        assert!(g.request("l", t0));
        assert!(g.request("h", t0));
        g.on_keyframe("h");
        assert!(!g.request("l", t0 + ms(300)));
        assert!(g.request("h", t0 + ms(300)));
    }

    #[test]
    fn a_keyframe_nobody_asked_for_changes_nothing() {
        let mut g = KeyframeGate::default();
        let t0 = Instant::now();
        g.on_keyframe("");
        assert!(g.request("", t0));
    }

    #[test]
    fn reset_lets_the_next_request_go() {
        let mut g = KeyframeGate::default();
        let t0 = Instant::now();
        assert!(g.request("", t0));
        g.reset();
        assert!(g.request("", t0 + ms(1)));
    }
}

//! Active speaker detection for one room from the RFC 6464 audio-level header extension:
//! smoothed loudness per peer, a minimum level and hysteresis so the highlight does not
//! flicker. Pure state; the worker feeds it levels and polls it a few times a second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::PeerId;

/// Levels older than this count as silence.
const SILENT_AFTER: Duration = Duration::from_millis(1000);
/// Smoothed loudness (127 + dBov) below which a peer is not speaking (about -50 dBov).
const MIN_LOUDNESS: f32 = 77.0;
/// How much louder a challenger must be than the current speaker to take over.
const HYSTERESIS: f32 = 6.0;

#[derive(Debug, Clone, Copy)]
struct Level {
    smoothed: f32,
    updated: Instant,
}

/// Loudness per peer of one room, and the current speaker.
#[derive(Debug, Default)]
pub struct SpeakerDetector {
    levels: HashMap<PeerId, Level>,
    current: Option<PeerId>,
}

impl SpeakerDetector {
    /// Records an audio level (`-127..=0` dBov, 0 loudest) for `peer` at `now`.
    pub fn on_level(&mut self, peer: &PeerId, dbov: i8, now: Instant) {
        let loudness = 127.0 + f32::from(dbov.clamp(-127, 0));
        let entry = self.levels.entry(peer.clone()).or_insert(Level {
            smoothed: loudness,
            updated: now,
        });
        let stale = now.saturating_duration_since(entry.updated) > SILENT_AFTER;
        entry.smoothed = if stale {
            loudness
        } else {
            entry.smoothed * 0.8 + loudness * 0.2
        };
        entry.updated = now;
    }

    /// Forgets a peer that left.
    pub fn remove(&mut self, peer: &PeerId) {
        self.levels.remove(peer);
        if self.current.as_ref() == Some(peer) {
            self.current = None;
        }
    }

    /// Re-evaluates; returns the new speaker when it changed.
    pub fn update(&mut self, now: Instant) -> Option<Option<PeerId>> {
        let loudness = |l: &Level| {
            if now.saturating_duration_since(l.updated) > SILENT_AFTER {
                0.0
            } else {
                l.smoothed
            }
        };
        let loudest = self
            .levels
            .iter()
            .map(|(p, l)| (p, loudness(l)))
            .filter(|(_, v)| *v >= MIN_LOUDNESS)
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)));
        let current_level = self
            .current
            .as_ref()
            .and_then(|p| self.levels.get(p))
            .map(loudness)
            .unwrap_or(0.0);
        let next = match loudest {
            None => None,
            Some((p, v)) => {
                if Some(p) == self.current.as_ref()
                    || current_level < MIN_LOUDNESS
                    || v >= current_level + HYSTERESIS
                {
                    Some(p.clone())
                } else {
                    self.current.clone()
                }
            }
        };
        if next != self.current {
            self.current = next.clone();
            Some(next)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loud_peer_becomes_speaker_and_silence_clears_it() {
        let (a, b) = (PeerId::from_raw("a"), PeerId::from_raw("b"));
        let mut d = SpeakerDetector::default();
        let t0 = Instant::now();
        for i in 0..20 {
            let t = t0 + Duration::from_millis(20 * i);
            d.on_level(&a, -20, t);
            d.on_level(&b, -90, t);
        }
        assert_eq!(
            d.update(t0 + Duration::from_millis(400)),
            Some(Some(a.clone()))
        );
        assert_eq!(
            d.update(t0 + Duration::from_millis(450)),
            None,
            "no change, no event"
        );
        assert_eq!(d.update(t0 + Duration::from_secs(3)), Some(None));
    }

    #[test]
    fn a_slightly_louder_challenger_does_not_take_over() {
        let (a, b) = (PeerId::from_raw("a"), PeerId::from_raw("b"));
        let mut d = SpeakerDetector::default();
        let t0 = Instant::now();
        d.on_level(&a, -30, t0);
        assert_eq!(d.update(t0), Some(Some(a.clone())));
        d.on_level(&b, -27, t0);
        assert_eq!(d.update(t0), None);
        d.on_level(&b, -10, t0 + Duration::from_millis(1));
        d.on_level(&b, -10, t0 + Duration::from_millis(2));
        d.on_level(&b, -10, t0 + Duration::from_millis(3));
        assert_eq!(d.update(t0 + Duration::from_millis(4)), Some(Some(b)));
    }
}

//! Active speaker detection for one room from the RFC 6464 audio-level header extension:
//! smoothed loudness per peer, a minimum level, hysteresis and a hold, so the highlight
//! neither flickers between two voices nor drops between the words of one. Pure state; the
//! worker feeds it levels and polls it a few times a second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::PeerId;

/// Levels older than this count as silence (a sender may stop sending in silence, DTX).
const SILENT_AFTER: Duration = Duration::from_millis(1000);
/// Smoothed loudness (127 + dBov) below which a peer is not speaking (about -50 dBov).
const MIN_LOUDNESS: f32 = 77.0;
/// How much louder a challenger must be than the current speaker to take over.
const HYSTERESIS: f32 = 6.0;
/// How long the current speaker keeps the floor after its last loud moment when nobody else
/// speaks: the pauses between words and sentences do not clear the highlight.
const HOLD: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy)]
struct Level {
    smoothed: f32,
    updated: Instant,
    /// The last time `smoothed` reached [`MIN_LOUDNESS`].
    last_loud: Option<Instant>,
}

impl Level {
    fn loudness(&self, now: Instant) -> f32 {
        if now.saturating_duration_since(self.updated) > SILENT_AFTER {
            0.0
        } else {
            self.smoothed
        }
    }

    fn held(&self, now: Instant) -> bool {
        self.last_loud
            .is_some_and(|t| now.saturating_duration_since(t) <= HOLD)
    }
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
            last_loud: None,
        });
        let stale = now.saturating_duration_since(entry.updated) > SILENT_AFTER;
        entry.smoothed = if stale {
            loudness
        } else {
            entry.smoothed * 0.8 + loudness * 0.2
        };
        entry.updated = now;
        if entry.smoothed >= MIN_LOUDNESS {
            entry.last_loud = Some(now);
        }
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
        let loudest = self
            .levels
            .iter()
            .map(|(p, l)| (p, l.loudness(now)))
            .filter(|(_, v)| *v >= MIN_LOUDNESS)
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)));
        let current = self
            .current
            .as_ref()
            .and_then(|p| self.levels.get(p))
            .filter(|l| l.held(now));
        let next = match (loudest, current) {
            (None, None) => None,
            // Nobody speaks now: a pause of the current speaker.
            (None, Some(_)) => self.current.clone(),
            (Some((p, _)), None) => Some(p.clone()),
            (Some((p, v)), Some(l)) => {
                let current_level = l.loudness(now);
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

    /// Feeds one 20 ms packet per step from each `(peer, dBov)` of `step(i)`, polls every
    /// 100 ms like the worker, and returns the changes and the time after the last step.
    fn run(
        d: &mut SpeakerDetector,
        from: Instant,
        steps: u32,
        step: impl Fn(u32) -> Vec<(PeerId, i8)>,
    ) -> (Vec<Option<PeerId>>, Instant) {
        let mut changes = Vec::new();
        let mut t = from;
        for i in 0..steps {
            for (peer, dbov) in step(i) {
                d.on_level(&peer, dbov, t);
            }
            if i % 5 == 4 {
                changes.extend(d.update(t));
            }
            t += Duration::from_millis(20);
        }
        (changes, t)
    }

    /// Words of 300 ms at -25 dBov with 400 ms of silence (-127) between them.
    fn words(i: u32) -> i8 {
        if i % 35 < 15 {
            -25
        } else {
            -127
        }
    }

    #[test]
    fn the_pauses_between_words_keep_the_speaker() {
        let a = PeerId::from_raw("a");
        let mut d = SpeakerDetector::default();
        let (changes, t) = run(&mut d, Instant::now(), 350, |i| vec![(a.clone(), words(i))]);
        assert_eq!(changes, vec![Some(a.clone())], "one change, no flicker");
        assert_eq!(d.update(t + HOLD), Some(None), "a long silence clears it");
    }

    #[test]
    fn another_voice_in_a_pause_takes_over() {
        let (a, b) = (PeerId::from_raw("a"), PeerId::from_raw("b"));
        let mut d = SpeakerDetector::default();
        let (changes, t) = run(&mut d, Instant::now(), 70, |i| vec![(a.clone(), words(i))]);
        assert_eq!(changes, vec![Some(a.clone())]);
        // A is silent (still sending silence), B speaks.
        let (changes, _) = run(&mut d, t, 20, |_| vec![(a.clone(), -127), (b.clone(), -20)]);
        assert_eq!(changes, vec![Some(b)]);
    }
}

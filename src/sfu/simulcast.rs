//! Simulcast bookkeeping and layer choice: per-layer bitrate and resolution measured from a
//! producer's incoming frames, and which layer each consumer of a subscriber connection gets
//! within that connection's bandwidth estimate. Pure functions; the worker calls them.

use std::time::{Duration, Instant};

/// How long a layer may stay silent before it no longer counts as available.
pub const LAYER_STALE_AFTER: Duration = Duration::from_millis(1500);

/// Measured state of one simulcast layer (one rid) of a producer.
#[derive(Debug, Clone)]
pub struct LayerStats {
    /// The rid (`l`, `m`, `h`, or `""` without simulcast).
    pub rid: String,
    /// When its last packet arrived.
    pub last_seen: Instant,
    /// Bytes in the current measuring window.
    window_bytes: u64,
    /// Start of the current measuring window.
    window_start: Instant,
    /// Bitrate measured over the last complete window (bits per second).
    pub bitrate: u64,
    /// Frame height read from the last keyframe, when the codec tells it.
    pub height: Option<u32>,
}

impl LayerStats {
    /// A layer first seen at `now`.
    pub fn new(rid: String, now: Instant) -> Self {
        Self {
            rid,
            last_seen: now,
            window_bytes: 0,
            window_start: now,
            bitrate: 0,
            height: None,
        }
    }

    /// Accounts one packet of `bytes` (payload) arriving at `now`.
    pub fn on_packet(&mut self, bytes: usize, now: Instant) {
        self.last_seen = now;
        self.window_bytes += bytes as u64;
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= Duration::from_millis(500) {
            let bits = self.window_bytes * 8;
            let measured = bits * 1000 / (elapsed.as_millis().max(1) as u64);
            // Smooth: half the old value, half the new window.
            self.bitrate = if self.bitrate == 0 {
                measured
            } else {
                (self.bitrate + measured) / 2
            };
            self.window_bytes = 0;
            self.window_start = now;
        }
    }

    /// True while frames keep arriving.
    pub fn is_active(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_seen) < LAYER_STALE_AFTER
    }
}

/// Ordering of our rids from smallest to largest (`l` < `m` < `h`); unknown rids sort by name.
pub fn rid_rank(rid: &str) -> (u8, &str) {
    match rid {
        "l" | "q" => (0, rid),
        "m" => (1, rid),
        "h" | "f" => (2, rid),
        "" => (1, rid),
        other => (3, other),
    }
}

/// One consumer's options, input of [`choose_layers`].
#[derive(Debug, Clone)]
pub struct Demand {
    /// Available layers, smallest first: (bitrate bps, height if known).
    pub layers: Vec<(u64, Option<u32>)>,
    /// Displayed height in device pixels; `Some(0)` = hidden; `None` = unknown.
    pub display_height: Option<u32>,
    /// Index of the layer chosen last time, if any.
    pub current: Option<usize>,
}

/// Share of the budget an upgrade may use: a layer is only taken when it fits with 15 %
/// headroom, while a layer already forwarded is kept as long as it fits at all. Estimates
/// fluctuate; without this gap every wobble would switch layers and cost a keyframe.
pub const UPGRADE_HEADROOM: f64 = 0.85;

/// Picks a layer index for each consumer sharing `budget` bits per second: every visible
/// consumer gets its smallest layer first, then consumers are upgraded in turn while the
/// budget allows and the next layer is not larger than needed for the displayed size.
/// Layers already forwarded are kept while they fit the whole budget; going above them
/// needs [`UPGRADE_HEADROOM`]. `None` = send nothing (hidden, or no layer available).
pub fn choose_layers(budget: u64, demands: &[Demand]) -> Vec<Option<usize>> {
    let mut chosen: Vec<Option<usize>> = demands
        .iter()
        .map(|d| {
            if d.layers.is_empty() || d.display_height == Some(0) {
                None
            } else {
                Some(0)
            }
        })
        .collect();
    let mut spent: u64 = demands
        .iter()
        .zip(&chosen)
        .filter_map(|(d, c)| c.map(|i| d.layers[i].0))
        .sum();
    let upgrade_budget = (budget as f64 * UPGRADE_HEADROOM) as u64;
    loop {
        let mut upgraded = false;
        for (d, c) in demands.iter().zip(chosen.iter_mut()) {
            let Some(i) = *c else { continue };
            let next = i + 1;
            if next >= d.layers.len() {
                continue;
            }
            // Larger than needed: the current layer already covers the displayed height.
            if let (Some(want), Some(have)) = (d.display_height, d.layers[i].1) {
                if have >= want {
                    continue;
                }
            }
            let extra = d.layers[next].0.saturating_sub(d.layers[i].0);
            let limit = if d.current.is_some_and(|cur| next <= cur) {
                budget
            } else {
                upgrade_budget
            };
            if spent + extra <= limit {
                spent += extra;
                *c = Some(next);
                upgraded = true;
            }
        }
        if !upgraded {
            return chosen;
        }
    }
}

/// Reads the frame height from a VP8 keyframe (RFC 6386 section 9.1), if `frame` is one.
pub fn vp8_keyframe_height(frame: &[u8]) -> Option<u32> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 {
        return None;
    }
    if frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some(u32::from(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(display: Option<u32>) -> Demand {
        Demand {
            layers: vec![
                (150_000, Some(180)),
                (500_000, Some(360)),
                (1_500_000, Some(720)),
            ],
            display_height: display,
            current: None,
        }
    }

    #[test]
    fn ample_budget_gives_the_top_layer() {
        assert_eq!(choose_layers(10_000_000, &[demand(None)]), vec![Some(2)]);
    }

    #[test]
    fn small_tiles_get_small_layers_even_with_budget() {
        assert_eq!(
            choose_layers(10_000_000, &[demand(Some(170))]),
            vec![Some(0)]
        );
        assert_eq!(
            choose_layers(10_000_000, &[demand(Some(300))]),
            vec![Some(1)]
        );
        assert_eq!(choose_layers(10_000_000, &[demand(Some(0))]), vec![None]);
    }

    #[test]
    fn budget_is_shared_fairly() {
        // 1.3 Mbps: both get m (2 x 500k); h for one would need 1M more.
        let got = choose_layers(1_300_000, &[demand(None), demand(None)]);
        assert_eq!(got, vec![Some(1), Some(1)]);
        // Too little for anything above l: stay at l rather than send nothing.
        let got = choose_layers(100_000, &[demand(None), demand(None)]);
        assert_eq!(got, vec![Some(0), Some(0)]);
    }

    #[test]
    fn a_forwarded_layer_is_kept_until_it_no_longer_fits() {
        // Going from m to h needs 1.5M + 15 % headroom...
        let fresh = choose_layers(1_600_000, &[demand(None)]);
        assert_eq!(
            fresh,
            vec![Some(1)],
            "1.6 Mbps is too tight to upgrade to h"
        );
        // ...but a subscriber already on h keeps it at the same estimate.
        let kept = choose_layers(
            1_600_000,
            &[Demand {
                current: Some(2),
                ..demand(None)
            }],
        );
        assert_eq!(kept, vec![Some(2)]);
        // Below the layer's own rate it goes down.
        let dropped = choose_layers(
            1_400_000,
            &[Demand {
                current: Some(2),
                ..demand(None)
            }],
        );
        assert_eq!(dropped, vec![Some(1)]);
    }

    #[test]
    fn reads_vp8_keyframe_height() {
        let mut kf = vec![0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        assert_eq!(vp8_keyframe_height(&kf), Some(240));
        kf[0] |= 1; // interframe
        assert_eq!(vp8_keyframe_height(&kf), None);
    }

    #[test]
    fn measures_layer_bitrate() {
        let t0 = Instant::now();
        let mut l = LayerStats::new("h".into(), t0);
        for i in 1..=10 {
            l.on_packet(1250, t0 + Duration::from_millis(100 * i));
        }
        // 1250 bytes every 100 ms = 100 kbps.
        assert!((90_000..=110_000).contains(&l.bitrate), "{}", l.bitrate);
        assert!(l.is_active(t0 + Duration::from_secs(2)));
        assert!(!l.is_active(t0 + Duration::from_secs(5)));
    }
}

//! Simulcast layer choice per subscriber connection: its bandwidth estimate, shared between
//! its consumers, and the size of the tile each one is shown in (the pure choice is in
//! `sfu::simulcast`).

use std::time::{Duration, Instant};

use super::{After, TKey, Worker};
use crate::ids::ConsumerId;
use crate::model::MediaKind;
use crate::sfu::simulcast::{choose_layers, rid_rank, Demand, LayerStats};

/// Budget kept for each audio consumer when sharing a subscriber's bandwidth.
const AUDIO_RESERVE_BPS: u64 = 64_000;

/// A layer's bitrate for budgeting; before it is measured, assume typical figures.
fn effective_bitrate(l: &LayerStats) -> u64 {
    if l.bitrate > 0 {
        return l.bitrate;
    }
    match rid_rank(&l.rid).0 {
        0 => 150_000,
        1 => 500_000,
        _ => 1_500_000,
    }
}

/// The rid of a layer for a keyframe request: `None` without simulcast.
pub(super) fn layer_rid(rid: &str) -> Option<String> {
    (!rid.is_empty()).then(|| rid.to_string())
}

/// Where in `interval` the transport with key `key` has its periodic layer choice: the
/// fractional parts of `key` times the golden ratio, so consecutive keys (transports that
/// joined together) land far apart and any number of them stays evenly spread.
pub(super) fn phase(key: TKey, interval: Duration) -> Duration {
    // 2^64 / golden ratio: multiplying by it and keeping the low 64 bits is the
    // fractional part of key * 0.618..., in 64-bit fixed point.
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let fraction = key.wrapping_mul(GOLDEN) as f64 / 2f64.powi(64);
    interval.mul_f64(fraction)
}

impl Worker {
    /// Re-chooses the layer of every video consumer of one recv transport.
    pub(super) fn select_layers(&mut self, key: TKey) {
        let Some(t) = self.transports.get(&key) else {
            return;
        };
        let now = Instant::now();
        let mut audio = 0u64;
        let mut fixed = 0u64;
        let mut simulcast: Vec<(ConsumerId, Vec<String>, Demand)> = Vec::new();
        let mut desired = 0u64;
        for cid in t.consumers_by_mid.values() {
            let Some(c) = self.consumers.get(cid) else {
                continue;
            };
            let Some(p) = self.producers.get(&c.producer) else {
                continue;
            };
            if p.kind == MediaKind::Audio {
                audio += AUDIO_RESERVE_BPS;
                continue;
            }
            let active: Vec<&LayerStats> = p.layers.iter().filter(|l| l.is_active(now)).collect();
            if active.len() == 1 && active[0].rid.is_empty() {
                fixed += active[0].bitrate;
                desired += active[0].bitrate;
                continue;
            }
            let layers: Vec<(u64, Option<u32>)> = active
                .iter()
                .map(|l| (effective_bitrate(l), l.height))
                .collect();
            desired += layers.last().map(|l| l.0).unwrap_or(0);
            let current = c
                .target
                .as_ref()
                .and_then(|rid| active.iter().position(|l| &l.rid == rid));
            simulcast.push((
                cid.clone(),
                active.iter().map(|l| l.rid.clone()).collect(),
                Demand {
                    layers,
                    display_height: c.display_height,
                    current,
                },
            ));
        }
        let budget = t
            .estimate(self.initial_bitrate)
            .saturating_sub(audio + fixed);
        let demands: Vec<Demand> = simulcast.iter().map(|s| s.2.clone()).collect();
        let chosen = choose_layers(budget, &demands);
        let mut after = Vec::new();
        for ((cid, rids, _), pick) in simulcast.into_iter().zip(chosen) {
            let target = pick.map(|i| rids[i].clone());
            let Some(c) = self.consumers.get_mut(&cid) else {
                continue;
            };
            if c.target != target {
                c.target = target.clone();
                if target.is_none() {
                    c.current = None;
                    after.push(After::LayerChanged(key, cid.clone(), None));
                } else if c.current != target {
                    after.push(After::KeyframeRequest(c.producer.clone(), target));
                }
            }
        }
        if let Some(e) = self
            .transports
            .get_mut(&key)
            .and_then(|t| t.egress.as_mut())
        {
            // Above the estimate, the egress probes for it.
            e.set_desired((desired + audio).max(300_000));
            self.egress_timers.schedule(key, now);
        }
        self.run_after(after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_that_join_together_choose_layers_at_spread_times() {
        let interval = Duration::from_millis(500);
        let slots = 50;
        let mut per_slot = vec![0usize; slots];
        for key in 0..1_000 {
            let p = phase(key, interval);
            assert!(p < interval, "{p:?}");
            per_slot[(p.as_micros() * slots as u128 / interval.as_micros()) as usize] += 1;
        }
        // 20 per 10 ms slot when even; all in one turn was the old behaviour.
        let (min, max) = (per_slot.iter().min(), per_slot.iter().max());
        assert!(min >= Some(&15) && max <= Some(&25), "{per_slot:?}");
    }
}

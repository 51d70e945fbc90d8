//! The estimator against a simulated path: a bottleneck link with a queue, a fixed delay,
//! losses, and a receiver that reports every 50 ms what arrived when.

use std::time::{Duration, Instant};

use super::*;

struct Path {
    link_bps: u64,
    /// Every n-th packet is lost (0: none).
    lose_every: u64,
    base_delay_us: i64,
    max_queue_us: i64,
}

struct Sim {
    t0: Instant,
    now_us: i64,
    est: Estimator,
    path: Path,
    queue_free_us: i64,
    /// What the receiver will report: (seq, arrival).
    pending: Vec<(u64, Option<i64>)>,
    next_seq: u64,
    /// Media rate; None: as much as the estimate allows.
    app_bps: Option<u64>,
    next_media_us: i64,
    next_feedback_us: i64,
    last_queue_us: i64,
}

impl Sim {
    fn new(path: Path, initial: u64, app_bps: Option<u64>, desired: u64) -> Sim {
        let t0 = Instant::now();
        let mut est = Estimator::new(initial, t0);
        est.set_desired(desired);
        est.set_can_probe(true);
        Sim {
            t0,
            now_us: 0,
            est,
            path,
            queue_free_us: 0,
            pending: Vec::new(),
            next_seq: 0,
            app_bps,
            next_media_us: 0,
            next_feedback_us: 50_000,
            last_queue_us: 0,
        }
    }

    fn at(&self, us: i64) -> Instant {
        self.t0 + Duration::from_micros(us as u64)
    }

    fn send(&mut self, size: usize, cluster: Option<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let now = self.at(self.now_us);
        self.est.on_sent(seq, now, size, cluster);
        let lost = self.path.lose_every > 0 && seq.is_multiple_of(self.path.lose_every);
        let start = self.queue_free_us.max(self.now_us);
        self.last_queue_us = start - self.now_us;
        let arrival = if lost || start - self.now_us > self.path.max_queue_us {
            None
        } else {
            self.queue_free_us = start + (size as u64 * 8 * 1_000_000 / self.path.link_bps) as i64;
            Some(self.queue_free_us + self.path.base_delay_us)
        };
        self.pending.push((seq, arrival));
    }

    fn run(&mut self, secs: u64) {
        let end = self.now_us + secs as i64 * 1_000_000;
        while self.now_us < end {
            let now = self.at(self.now_us);
            while self.next_media_us <= self.now_us {
                let rate = self
                    .app_bps
                    .unwrap_or_else(|| self.est.estimate())
                    .max(10_000);
                self.send(1_200, None);
                self.next_media_us += (1_200 * 8 * 1_000_000 / rate) as i64;
            }
            self.est.next_probe_at(now);
            while let Some(id) = self.est.probe_due(now) {
                self.send(300, Some(id));
            }
            if self.now_us >= self.next_feedback_us {
                self.next_feedback_us += 50_000;
                // Reported: what has arrived by now, and what was lost a while ago.
                let now_us = self.now_us;
                let (ready, wait): (Vec<_>, Vec<_>) =
                    self.pending
                        .drain(..)
                        .partition(|(_, arrival)| match arrival {
                            Some(a) => *a <= now_us,
                            None => true,
                        });
                self.pending = wait;
                let results: Vec<TwccResult> = ready
                    .iter()
                    .map(|&(seq, arrival_us)| TwccResult {
                        seq: seq as u16,
                        arrival_us,
                    })
                    .collect();
                let at = self.at(self.now_us + self.path.base_delay_us);
                self.est.on_feedback(&results, at);
            }
            self.now_us += 1_000;
        }
    }
}

fn path(link_bps: u64) -> Path {
    Path {
        link_bps,
        lose_every: 0,
        base_delay_us: 20_000,
        max_queue_us: 500_000,
    }
}

#[test]
fn probes_lift_the_estimate_to_what_is_wanted_on_a_fast_path() {
    // A subscriber on a 500 kbit/s layer whose best layers would need 2.5 Mbit/s.
    let mut sim = Sim::new(path(20_000_000), 1_000_000, Some(500_000), 2_500_000);
    sim.run(6);
    let e = sim.est.estimate();
    assert!(e >= 2_300_000, "estimate {e} after 6 s");
}

#[test]
fn a_probe_into_a_bottleneck_does_not_overshoot_it() {
    // Starting low, probing towards 2.5 Mbit/s on an 800 kbit/s path: the probes find the
    // path's rate and no more.
    let mut sim = Sim::new(path(800_000), 300_000, Some(300_000), 2_500_000);
    sim.run(10);
    let e = sim.est.estimate();
    assert!(
        (500_000..=900_000).contains(&e),
        "estimate {e} on an 800 kbit/s path"
    );
}

#[test]
fn a_sender_that_fills_a_bottleneck_settles_below_it_without_a_standing_queue() {
    let mut sim = Sim::new(path(1_000_000), 2_000_000, None, 0);
    sim.run(30);
    let e = sim.est.estimate();
    assert!(
        (500_000..=1_200_000).contains(&e),
        "estimate {e} on a 1 Mbit/s path"
    );
    assert!(
        sim.last_queue_us < 300_000,
        "queue of {} ms at the end",
        sim.last_queue_us / 1_000
    );
}

#[test]
fn heavy_loss_lowers_the_estimate() {
    let mut p = path(50_000_000);
    p.lose_every = 4;
    let mut sim = Sim::new(p, 2_000_000, None, 0);
    sim.run(10);
    let e = sim.est.estimate();
    assert!(e < 1_500_000, "estimate {e} with 25 % loss");
}

#[test]
fn a_clean_path_lets_the_estimate_grow_with_what_is_sent() {
    // Sending as much as estimated on a wide path: it grows, 8 % a second at most, and
    // stays within 1.5x of what is delivered.
    let mut sim = Sim::new(path(50_000_000), 1_000_000, None, 0);
    sim.run(10);
    let e = sim.est.estimate();
    assert!((1_500_000..=2_500_000).contains(&e), "estimate {e}");
}

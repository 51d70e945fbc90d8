//! Send-side bandwidth estimation for one subscriber connection, from the transport-wide
//! congestion control feedback its browser sends (draft-ietf-rmcat-gcc-02, the estimator
//! libwebrtc runs): every packet the worker sends carries a transport sequence number; the
//! feedback says when each arrived. From that:
//! - [`delay`] tells whether a queue builds on the path (overuse), and the rate is cut to
//!   85 % of what was delivered, or grows (8 % a second, or a packet per round trip near the
//!   capacity last seen) while it does not;
//! - losses above 10 % cut it in proportion, below 2 % let it recover;
//! - [`probe`] clusters of padding find out whether the path would carry more than is sent
//!   now, when the connection wants more (a higher simulcast layer) than the estimate allows.
//!
//! The worker reads [`Estimator::estimate`] to choose simulcast layers. Nothing here sends:
//! [`super::Egress`] writes the packets and reports them.

pub mod delay;
pub mod probe;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use delay::{DelayDetector, Usage};
use probe::{ProbeResult, Prober};

use super::rtcp::TwccResult;

/// Lowest and highest estimate.
const MIN_BPS: u64 = 30_000;
const MAX_BPS: u64 = 100_000_000;
/// Packets are kept for feedback this long (feedback comes every 50-100 ms, a round trip
/// later).
const LOG_SPAN_US: i64 = 1_000_000;
/// Delivered rate is measured over this window of arrivals, in buckets.
const ACKED_BUCKETS: usize = 10;
const ACKED_BUCKET_US: i64 = 50_000;
/// Losses are judged over at least this long and this many packets.
const LOSS_PERIOD: Duration = Duration::from_secs(1);
const LOSS_MIN_PACKETS: u32 = 20;
/// A failed probe, or a cut for overuse, holds off the next probe this long.
const PROBE_BACKOFF: Duration = Duration::from_secs(5);
/// Feedback for a probe is waited for this long.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// One packet sent: when, its size, its probe cluster. Eight bytes: a second of packets is a
/// few KiB per connection.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// µs since the estimator's epoch, modulo 2^32 ([`Estimator::full_us`] restores it).
    at: u32,
    size: u16,
    /// 0: media, else the probe cluster's id.
    cluster: u8,
    reported: bool,
}

/// Delivered bytes per 50 ms of arrival time, over the last 500 ms: a few hundred bytes per
/// connection whatever its rate.
#[derive(Debug, Default)]
struct Acked {
    /// (bucket number, bytes), at `number % ACKED_BUCKETS`.
    buckets: [(i64, u32); ACKED_BUCKETS],
    newest: Option<i64>,
}

impl Acked {
    fn add(&mut self, arrival_us: i64, size: u16) {
        let n = arrival_us.div_euclid(ACKED_BUCKET_US);
        let newest = self.newest.map_or(n, |m| m.max(n));
        if newest - n >= ACKED_BUCKETS as i64 {
            // Older than the window (reordered feedback).
            return;
        }
        self.newest = Some(newest);
        let slot = &mut self.buckets[n.rem_euclid(ACKED_BUCKETS as i64) as usize];
        if slot.0 != n || slot.1 == 0 {
            *slot = (n, 0);
        }
        slot.1 += u32::from(size);
    }

    /// bps over the window, once it spans at least 100 ms.
    fn rate(&self) -> Option<u64> {
        let newest = self.newest?;
        let live = |b: &&(i64, u32)| b.1 > 0 && newest - b.0 < ACKED_BUCKETS as i64;
        let oldest = self.buckets.iter().filter(live).map(|b| b.0).min()?;
        let bytes: u64 = self
            .buckets
            .iter()
            .filter(live)
            .map(|b| u64::from(b.1))
            .sum();
        let span = (newest - oldest + 1) * ACKED_BUCKET_US;
        // Early on, divide by at least half the window: a few packets are not a rate.
        let span = span.max(ACKED_BUCKETS as i64 * ACKED_BUCKET_US / 2);
        (newest - oldest >= 1).then(|| bytes * 8 * 1_000_000 / span as u64)
    }
}

/// The bandwidth estimate of one subscriber connection.
#[derive(Debug)]
pub struct Estimator {
    epoch: Instant,
    /// Transport sequence number of `sent[0]`.
    first_seq: u64,
    sent: VecDeque<Sent>,
    /// Send time of the newest packet (µs since `epoch`).
    last_sent_us: i64,
    delay: DelayDetector,
    acked: Acked,
    prober: Prober,
    /// The delay-based (AIMD) rate.
    rate: u64,
    /// A ceiling from losses, lifted as they stop.
    loss_cap: Option<u64>,
    desired: u64,
    can_probe: bool,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    /// Mean and variance (bps²) of the delivered rate at the cuts: the link's capacity.
    capacity: Option<(f64, f64)>,
    rtt: Duration,
    loss_since: Instant,
    lost: u32,
    received: u32,
    next_probe: Instant,
    probe_started: Option<Instant>,
    results: Vec<ProbeResult>,
}

impl Estimator {
    pub fn new(initial_bps: u64, now: Instant) -> Estimator {
        Estimator {
            epoch: now,
            first_seq: 0,
            sent: VecDeque::new(),
            last_sent_us: 0,
            delay: DelayDetector::default(),
            acked: Acked::default(),
            prober: Prober::default(),
            rate: initial_bps.clamp(MIN_BPS, MAX_BPS),
            loss_cap: None,
            desired: 0,
            can_probe: false,
            last_update: None,
            last_decrease: None,
            capacity: None,
            rtt: Duration::from_millis(100),
            loss_since: now,
            lost: 0,
            received: 0,
            next_probe: now,
            probe_started: None,
            results: Vec::new(),
        }
    }

    /// The estimate (bps).
    pub fn estimate(&self) -> u64 {
        self.rate.min(self.loss_cap.unwrap_or(u64::MAX))
    }

    /// The rate the connection would like to send (its best layers); above the estimate,
    /// it is probed for.
    pub fn set_desired(&mut self, bps: u64) {
        self.desired = bps;
    }

    /// Whether probe packets can be sent at all (a video stream with RTX to pad on).
    pub fn set_can_probe(&mut self, can: bool) {
        self.can_probe = can;
        if !can {
            self.prober.abort();
        }
    }

    /// The round-trip time, from receiver reports.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt.clamp(Duration::from_millis(1), Duration::from_secs(2));
    }

    fn us(&self, at: Instant) -> i64 {
        at.saturating_duration_since(self.epoch).as_micros() as i64
    }

    /// The full send time of a [`Sent::at`]: the one at or before the newest send.
    fn full_us(&self, at: u32) -> i64 {
        self.last_sent_us - i64::from((self.last_sent_us as u32).wrapping_sub(at))
    }

    /// A packet went out with transport sequence number `seq` (consecutive from the first).
    /// `cluster`: the probe it belongs to, if any.
    pub fn on_sent(&mut self, seq: u64, at: Instant, size: usize, cluster: Option<u8>) {
        let at_us = self.us(at);
        self.last_sent_us = self.last_sent_us.max(at_us);
        if self.sent.is_empty() || seq != self.first_seq + self.sent.len() as u64 {
            self.sent.clear();
            self.first_seq = seq;
        }
        let size16 = size.min(usize::from(u16::MAX)) as u16;
        self.sent.push_back(Sent {
            at: at_us as u32,
            size: size16,
            cluster: cluster.unwrap_or(0),
            reported: false,
        });
        while self
            .sent
            .front()
            .is_some_and(|s| at_us - self.full_us(s.at) > LOG_SPAN_US)
        {
            self.sent.pop_front();
            self.first_seq += 1;
        }
        if let Some(id) = cluster {
            self.prober.on_sent(id, size, at_us, at);
        }
    }

    /// The extended sequence number of a 16-bit one from feedback: the latest one sent
    /// with those low bits.
    fn extend(&self, seq: u16) -> Option<u64> {
        let high = (self.first_seq + self.sent.len() as u64).checked_sub(1)?;
        let mut ext = (high & !0xffff) | u64::from(seq);
        if ext > high {
            ext = ext.checked_sub(0x1_0000)?;
        }
        (ext >= self.first_seq).then_some(ext)
    }

    /// A transport-wide feedback arrived.
    pub fn on_feedback(&mut self, results: &[TwccResult], now: Instant) {
        for r in results {
            let Some(ext) = self.extend(r.seq) else {
                continue;
            };
            let i = (ext - self.first_seq) as usize;
            let Some(s) = self.sent.get_mut(i) else {
                continue;
            };
            if s.reported {
                continue;
            }
            s.reported = true;
            let s = *s;
            if s.cluster != 0 {
                self.prober
                    .on_reported(s.cluster, usize::from(s.size), r.arrival_us);
            }
            match r.arrival_us {
                Some(arrival) => {
                    self.received += 1;
                    self.delay.on_packet(self.full_us(s.at), arrival);
                    if s.cluster == 0 {
                        self.acked.add(arrival, s.size);
                    }
                }
                None => self.lost += 1,
            }
        }
        self.update_rate(now);
        self.update_loss(now);
        self.prober.results(&mut self.results);
        for r in std::mem::take(&mut self.results) {
            self.on_probe_result(r, now);
        }
    }

    fn update_rate(&mut self, now: Instant) {
        let dt = self
            .last_update
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(Duration::from_secs(1));
        self.last_update = Some(now);
        let acked = self.acked.rate();
        match self.delay.usage() {
            Usage::Over => {
                let recently = self.last_decrease.is_some_and(|t| {
                    now.saturating_duration_since(t) < self.rtt + Duration::from_millis(100)
                });
                if !recently {
                    let base = acked.unwrap_or(self.rate);
                    self.rate = self.rate.min(base * 85 / 100);
                    if let Some(a) = acked {
                        self.note_capacity(a as f64);
                    }
                    self.last_decrease = Some(now);
                    self.next_probe = self.next_probe.max(now + PROBE_BACKOFF);
                }
            }
            Usage::Under => {}
            Usage::Normal => {
                let before = self.rate;
                let secs = dt.as_secs_f64();
                let near = self.capacity.is_some_and(|(mean, var)| {
                    let sd = var.sqrt().max(0.05 * mean);
                    (self.rate as f64 - mean).abs() <= 3.0 * sd
                });
                let grown = if near {
                    // About one packet more per response time.
                    let response = self.rtt.as_secs_f64() + 0.1;
                    self.rate as f64 + (1_200.0 * 8.0 / response).max(1_000.0) * secs
                } else {
                    self.rate as f64 * 1.08f64.powf(secs)
                };
                let mut rate = grown as u64;
                if let Some(a) = acked {
                    // Do not grow far beyond what is actually sent: probes do that.
                    let cap = a * 3 / 2 + 10_000;
                    if rate > cap {
                        rate = cap.max(before);
                    }
                }
                self.rate = rate;
            }
        }
        if let (Some(a), Some((mean, var))) = (acked, self.capacity) {
            // Delivered well above what was thought the capacity: it has changed.
            if a as f64 > mean + 3.0 * var.sqrt().max(0.05 * mean) {
                self.capacity = None;
            }
        }
        self.rate = self.rate.clamp(MIN_BPS, MAX_BPS);
    }

    fn note_capacity(&mut self, delivered: f64) {
        self.capacity = Some(match self.capacity {
            None => (delivered, 0.0),
            Some((mean, var)) => {
                let mean2 = 0.95 * mean + 0.05 * delivered;
                let var2 = 0.95 * var + 0.05 * (delivered - mean2).powi(2);
                (mean2, var2)
            }
        });
    }

    fn update_loss(&mut self, now: Instant) {
        let total = self.lost + self.received;
        if now.saturating_duration_since(self.loss_since) < LOSS_PERIOD || total < LOSS_MIN_PACKETS
        {
            return;
        }
        let loss = f64::from(self.lost) / f64::from(total);
        let current = self.estimate();
        if loss > 0.10 {
            self.loss_cap =
                Some(((current as f64) * (1.0 - 0.5 * loss)).max(MIN_BPS as f64) as u64);
            self.next_probe = self.next_probe.max(now + PROBE_BACKOFF);
        } else if loss < 0.02 {
            if let Some(cap) = self.loss_cap {
                let secs = now.saturating_duration_since(self.loss_since).as_secs_f64();
                let grown = (cap as f64 * 1.08f64.powf(secs)) as u64 + 1_000;
                self.loss_cap = (grown < self.rate).then_some(grown);
            }
        }
        self.loss_since = now;
        self.lost = 0;
        self.received = 0;
    }

    fn on_probe_result(&mut self, r: ProbeResult, now: Instant) {
        self.probe_started = None;
        match r.measured_bps {
            Some(m) if self.delay.usage() != Usage::Over => {
                let m = m.min(MAX_BPS);
                if m > self.rate {
                    self.rate = m;
                }
                if let Some(cap) = self.loss_cap {
                    self.loss_cap = Some(cap.max(m.min(self.rate)));
                }
                // Carried nearly all of it: go on upwards at once if more is wanted.
                self.next_probe = if m * 10 >= r.target_bps * 9 {
                    now
                } else {
                    now + PROBE_BACKOFF
                };
            }
            _ => self.next_probe = now + PROBE_BACKOFF,
        }
    }

    /// Starts a probe when more is wanted than estimated and the path is calm. Returns when
    /// the next probe packet is due, if one is.
    pub fn next_probe_at(&mut self, now: Instant) -> Option<Instant> {
        if let Some(started) = self.probe_started {
            if now.saturating_duration_since(started) > PROBE_WAIT {
                // No (complete) feedback for it: give up on it.
                self.prober.abort();
                self.prober.expire();
                self.probe_started = None;
                self.next_probe = now + PROBE_BACKOFF;
            }
        }
        let estimate = self.estimate();
        if self.can_probe
            && !self.prober.busy()
            && now >= self.next_probe
            && self.desired > estimate + estimate / 20
            && self.delay.usage() == Usage::Normal
        {
            let target = self.desired.min(estimate * 2).max(estimate + estimate / 5);
            self.prober.start(target, now);
            self.probe_started = Some(now);
        }
        self.prober.next_at()
    }

    /// The probe cluster a padding packet should go out for now, if one is due.
    pub fn probe_due(&self, now: Instant) -> Option<u8> {
        self.prober.due(now)
    }
}

#[cfg(test)]
mod tests;

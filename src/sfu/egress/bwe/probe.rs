//! Probing for bandwidth: a short cluster of padding packets paced at a target rate, and what
//! the receiver's feedback says about it. A subscriber that receives a low simulcast layer
//! sends little, so its feedback cannot show that the path would carry a higher one; a probe
//! at the higher rate can, before the layer is switched (draft-ietf-rmcat-gcc-02 §5.4's
//! probing, as libwebrtc does it).

use std::time::{Duration, Instant};

/// A cluster lasts at least this long...
const MIN_DURATION: Duration = Duration::from_millis(15);
/// ...and has at least this many packets.
const MIN_PACKETS: u32 = 5;
/// Padding bytes per probe packet (the most one RTP packet's padding can say).
pub const PROBE_PADDING: usize = 255;
/// Share of a cluster's packets that must be reported before it is judged.
const REPORTED_SHARE: f64 = 0.8;
/// Share of a cluster's packets that must have arrived for a result.
const RECEIVED_SHARE: f64 = 0.8;
/// Clusters remembered while their feedback comes in.
const KEPT: usize = 4;

/// A cluster being sent.
#[derive(Debug, Clone, Copy)]
struct Sending {
    id: u8,
    target_bps: u64,
    started: Instant,
    packets: u32,
    bytes: u64,
}

/// What the feedback has said so far about one cluster.
#[derive(Debug, Clone, Copy)]
struct Judged {
    id: u8,
    target_bps: u64,
    sent_packets: u32,
    /// Done sending: nothing more will be added.
    complete: bool,
    reported: u32,
    received: u32,
    first_send_us: i64,
    last_send_us: i64,
    /// Bytes of all sent packets but the last (the send rate spans first to last send).
    sent_bytes: u64,
    last_size: u64,
    first_arrival_us: i64,
    last_arrival_us: i64,
    /// Bytes of all received packets but the first to arrive.
    received_bytes: u64,
    first_arrival_size: u64,
}

/// The outcome of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeResult {
    pub target_bps: u64,
    /// What the path carried, when enough of the cluster arrived; None: the probe failed.
    pub measured_bps: Option<u64>,
}

/// The probes of one transport.
#[derive(Debug, Default)]
pub struct Prober {
    next_id: u8,
    sending: Option<Sending>,
    judged: Vec<Judged>,
}

impl Prober {
    /// True while a cluster is being sent or judged.
    pub fn busy(&self) -> bool {
        self.sending.is_some() || !self.judged.is_empty()
    }

    /// Starts a cluster at `target_bps`.
    pub fn start(&mut self, target_bps: u64, now: Instant) {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        self.sending = Some(Sending {
            id,
            target_bps: target_bps.max(1),
            started: now,
            packets: 0,
            bytes: 0,
        });
        self.judged.push(Judged {
            id,
            target_bps,
            sent_packets: 0,
            complete: false,
            reported: 0,
            received: 0,
            first_send_us: i64::MAX,
            last_send_us: i64::MIN,
            sent_bytes: 0,
            last_size: 0,
            first_arrival_us: i64::MAX,
            last_arrival_us: i64::MIN,
            received_bytes: 0,
            first_arrival_size: 0,
        });
        if self.judged.len() > KEPT {
            self.judged.remove(0);
        }
    }

    /// When the next probe packet is due, if a cluster is being sent.
    pub fn next_at(&self) -> Option<Instant> {
        let s = self.sending?;
        let offset = Duration::from_micros(s.bytes * 8 * 1_000_000 / s.target_bps);
        Some(s.started + offset)
    }

    /// The cluster of the next probe packet if one is due at `now`.
    pub fn due(&self, now: Instant) -> Option<u8> {
        let at = self.next_at()?;
        (at <= now).then(|| self.sending.map(|s| s.id)).flatten()
    }

    /// A probe packet of `size` bytes was sent at `send_us` (the estimator's clock).
    pub fn on_sent(&mut self, id: u8, size: usize, send_us: i64, now: Instant) {
        let size = size as u64;
        if let Some(j) = self.judged.iter_mut().find(|j| j.id == id) {
            j.sent_packets += 1;
            if j.first_send_us == i64::MAX {
                j.first_send_us = send_us;
            } else {
                j.sent_bytes += j.last_size;
            }
            j.last_send_us = send_us;
            j.last_size = size;
        }
        let Some(s) = self.sending.as_mut().filter(|s| s.id == id) else {
            return;
        };
        s.packets += 1;
        s.bytes += size;
        let min_bytes = s.target_bps * MIN_DURATION.as_micros() as u64 / 8_000_000;
        if s.packets >= MIN_PACKETS && s.bytes >= min_bytes && now >= s.started + MIN_DURATION {
            self.sending = None;
            if let Some(j) = self.judged.iter_mut().find(|j| j.id == id) {
                j.complete = true;
            }
        }
    }

    /// Stops sending the current cluster (nothing to send it with); it is judged on what went.
    pub fn abort(&mut self) {
        if let Some(s) = self.sending.take() {
            if let Some(j) = self.judged.iter_mut().find(|j| j.id == s.id) {
                j.complete = true;
            }
        }
    }

    /// Feedback about one probe packet: arrived at `arrival_us` (receiver's clock) or lost.
    pub fn on_reported(&mut self, id: u8, size: usize, arrival_us: Option<i64>) {
        let Some(j) = self.judged.iter_mut().find(|j| j.id == id) else {
            return;
        };
        j.reported += 1;
        let Some(at) = arrival_us else {
            return;
        };
        let size = size as u64;
        j.received += 1;
        if at < j.first_arrival_us {
            if j.first_arrival_us != i64::MAX {
                j.received_bytes += j.first_arrival_size;
            }
            j.first_arrival_us = at;
            j.first_arrival_size = size;
        } else {
            j.received_bytes += size;
        }
        j.last_arrival_us = j.last_arrival_us.max(at);
    }

    /// Results of the clusters whose feedback is in (or which are too old to wait for).
    pub fn results(&mut self, out: &mut Vec<ProbeResult>) {
        self.judged.retain(|j| {
            if !j.complete || (j.reported as f64) < REPORTED_SHARE * j.sent_packets as f64 {
                return true;
            }
            out.push(ProbeResult {
                target_bps: j.target_bps,
                measured_bps: measure(j),
            });
            false
        });
    }

    /// Forgets clusters whose feedback never came (the subscriber stopped reporting).
    pub fn expire(&mut self) {
        if self.sending.is_none() {
            self.judged.clear();
        }
    }
}

fn measure(j: &Judged) -> Option<u64> {
    if j.received < MIN_PACKETS
        || (j.received as f64) < RECEIVED_SHARE * j.sent_packets as f64
        || j.last_send_us <= j.first_send_us
        || j.last_arrival_us <= j.first_arrival_us
    {
        return None;
    }
    let send_bps = j.sent_bytes * 8 * 1_000_000 / (j.last_send_us - j.first_send_us) as u64;
    let recv_bps =
        j.received_bytes * 8 * 1_000_000 / (j.last_arrival_us - j.first_arrival_us) as u64;
    // Arriving clearly slower than sent: the path's rate, with a margin. Otherwise the path
    // took what was sent.
    Some(if recv_bps * 10 < send_bps * 9 {
        recv_bps * 95 / 100
    } else {
        send_bps.min(recv_bps)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: u64, link_bps: u64) -> ProbeResult {
        let t0 = Instant::now();
        let mut p = Prober::default();
        p.start(target, t0);
        let size = 300usize;
        let mut sent = Vec::new();
        let mut now = t0;
        while let Some(at) = p.next_at() {
            now = now.max(at);
            let id = p.due(now).expect("due at its time");
            let send_us = now.duration_since(t0).as_micros() as i64;
            p.on_sent(id, size, send_us, now);
            sent.push(send_us);
        }
        // The link serializes each packet at its rate.
        let per_packet = (size as u64 * 8 * 1_000_000 / link_bps) as i64;
        let mut free = 0i64;
        for s in sent {
            free = free.max(s) + per_packet;
            p.on_reported(1, size, Some(free + 20_000));
        }
        let mut out = Vec::new();
        p.results(&mut out);
        assert!(!p.busy());
        out[0]
    }

    #[test]
    fn a_probe_on_a_fast_path_measures_its_own_rate() {
        let r = run(2_000_000, 100_000_000);
        let m = r.measured_bps.expect("measured");
        assert!((1_800_000..=2_300_000).contains(&m), "{m}");
    }

    #[test]
    fn a_probe_into_a_bottleneck_measures_the_bottleneck() {
        let r = run(4_000_000, 1_000_000);
        let m = r.measured_bps.expect("measured");
        assert!((800_000..=1_050_000).contains(&m), "{m}");
    }

    #[test]
    fn a_cluster_mostly_lost_has_no_result() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        p.start(1_000_000, t0);
        let mut now = t0;
        let mut n = 0;
        while let Some(at) = p.next_at() {
            now = now.max(at);
            p.on_sent(1, 300, n * 2_400, now);
            n += 1;
        }
        for i in 0..n {
            p.on_reported(1, 300, (i % 3 == 0).then_some(i * 2_400));
        }
        let mut out = Vec::new();
        p.results(&mut out);
        assert_eq!(out[0].measured_bps, None);
    }
}

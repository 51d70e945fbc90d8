//! Delay-based congestion detection, after Google Congestion Control
//! (draft-ietf-rmcat-gcc-02 §5): packets are grouped by send time, each group's one-way delay
//! variation against the previous group is accumulated, and the slope of the smoothed
//! accumulated delay over the last groups (a trend line) says whether a queue is building
//! (overuse), draining (underuse) or neither. The threshold the trend is compared with adapts,
//! so that a few concurrent TCP flows do not starve the media.

/// Packets sent within this span after a group's first packet belong to the group.
const GROUP_SPAN_US: i64 = 5_000;
/// Groups the trend line is fitted over.
const WINDOW: usize = 20;
/// Smoothing of the accumulated delay.
const SMOOTHING: f64 = 0.9;
/// Gain applied to the slope before comparing with the threshold.
const THRESHOLD_GAIN: f64 = 4.0;
/// How long (ms) the trend must stay above the threshold to call it overuse.
const OVERUSE_TIME_MS: f64 = 10.0;
const THRESHOLD_INITIAL: f64 = 12.5;
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;

/// What the delay says about the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Usage {
    #[default]
    Normal,
    /// A queue builds: send less.
    Over,
    /// A queue drains: hold the rate until it is empty.
    Under,
}

/// A group of packets sent close together: its last send and arrival times (µs).
#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: i64,
    last_send: i64,
    last_arrival: i64,
}

/// The detector of one transport. Feed it every received packet in transport sequence order.
#[derive(Debug)]
pub struct DelayDetector {
    current: Option<Group>,
    previous: Option<Group>,
    first_arrival: Option<i64>,
    accumulated: f64,
    smoothed: f64,
    /// (arrival ms since the first, smoothed accumulated delay ms)
    history: std::collections::VecDeque<(f64, f64)>,
    deltas: u32,
    threshold: f64,
    last_threshold_update: Option<i64>,
    time_over: f64,
    overuse_count: u32,
    prev_trend: f64,
    usage: Usage,
}

impl Default for DelayDetector {
    fn default() -> Self {
        DelayDetector {
            current: None,
            previous: None,
            first_arrival: None,
            accumulated: 0.0,
            smoothed: 0.0,
            history: std::collections::VecDeque::with_capacity(WINDOW),
            deltas: 0,
            threshold: THRESHOLD_INITIAL,
            last_threshold_update: None,
            time_over: -1.0,
            overuse_count: 0,
            prev_trend: 0.0,
            usage: Usage::Normal,
        }
    }
}

impl DelayDetector {
    /// The current verdict.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// One received packet: its send time on our clock and arrival time on the receiver's,
    /// both in µs. Returns the verdict after it.
    pub fn on_packet(&mut self, send_us: i64, arrival_us: i64) -> Usage {
        let Some(mut cur) = self.current else {
            self.current = Some(Group {
                first_send: send_us,
                last_send: send_us,
                last_arrival: arrival_us,
            });
            return self.usage;
        };
        if send_us < cur.first_send {
            // Reordered from an older group: ignore.
            return self.usage;
        }
        if send_us - cur.first_send <= GROUP_SPAN_US {
            cur.last_send = cur.last_send.max(send_us);
            cur.last_arrival = cur.last_arrival.max(arrival_us);
            self.current = Some(cur);
            return self.usage;
        }
        // The packet starts a new group: the current one is complete.
        if let Some(prev) = self.previous {
            let send_delta = cur.last_send - prev.last_send;
            let arrival_delta = cur.last_arrival - prev.last_arrival;
            if arrival_delta >= 0 {
                self.update(send_delta, arrival_delta, cur.last_arrival);
            }
        }
        self.previous = Some(cur);
        self.current = Some(Group {
            first_send: send_us,
            last_send: send_us,
            last_arrival: arrival_us,
        });
        self.usage
    }

    fn update(&mut self, send_delta_us: i64, arrival_delta_us: i64, arrival_us: i64) {
        let delta_ms = (arrival_delta_us - send_delta_us) as f64 / 1000.0;
        self.deltas = self.deltas.saturating_add(1);
        self.accumulated += delta_ms;
        self.smoothed = SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * self.accumulated;
        let first = *self.first_arrival.get_or_insert(arrival_us);
        let x = (arrival_us - first) as f64 / 1000.0;
        self.history.push_back((x, self.smoothed));
        if self.history.len() > WINDOW {
            self.history.pop_front();
        }
        let trend = if self.history.len() == WINDOW {
            slope(&self.history).unwrap_or(self.prev_trend)
        } else {
            self.prev_trend
        };
        let modified = f64::from(self.deltas.min(60)) * trend * THRESHOLD_GAIN;
        let send_delta_ms = send_delta_us as f64 / 1000.0;
        if modified > self.threshold {
            if self.time_over < 0.0 {
                self.time_over = send_delta_ms / 2.0;
            } else {
                self.time_over += send_delta_ms;
            }
            self.overuse_count += 1;
            if self.time_over > OVERUSE_TIME_MS
                && self.overuse_count > 1
                && trend >= self.prev_trend
            {
                self.time_over = 0.0;
                self.overuse_count = 0;
                self.usage = Usage::Over;
            }
        } else if modified < -self.threshold {
            self.time_over = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Under;
        } else {
            self.time_over = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Normal;
        }
        self.prev_trend = trend;
        self.adapt_threshold(modified, arrival_us);
    }

    fn adapt_threshold(&mut self, modified: f64, now_us: i64) {
        let last = *self.last_threshold_update.get_or_insert(now_us);
        if modified.abs() > self.threshold + 15.0 {
            // A spike (a route change, a burst): do not let it move the threshold.
            self.last_threshold_update = Some(now_us);
            return;
        }
        let k = if modified.abs() < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        let dt_ms = ((now_us - last) as f64 / 1000.0).min(100.0);
        self.threshold += k * (modified.abs() - self.threshold) * dt_ms;
        self.threshold = self.threshold.clamp(THRESHOLD_MIN, THRESHOLD_MAX);
        self.last_threshold_update = Some(now_us);
    }
}

/// Least-squares slope of the points.
fn slope(points: &std::collections::VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den != 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets every `gap_us`, each arriving `extra_us` later than the previous one's delay.
    fn feed(d: &mut DelayDetector, count: i64, gap_us: i64, extra_us: i64) -> Vec<Usage> {
        (0..count)
            .map(|i| d.on_packet(i * gap_us, 20_000 + i * (gap_us + extra_us)))
            .collect()
    }

    #[test]
    fn a_steady_path_is_normal() {
        let mut d = DelayDetector::default();
        let seen = feed(&mut d, 500, 10_000, 0);
        assert!(seen.iter().all(|u| *u == Usage::Normal));
    }

    #[test]
    fn a_growing_queue_is_overuse() {
        let mut d = DelayDetector::default();
        feed(&mut d, 100, 10_000, 0);
        // Each packet now waits 1 ms longer than the one before: a queue builds.
        let start = 100 * 10_000;
        let mut over = false;
        for i in 0..100 {
            let send = start + i * 10_000;
            let arrival = 20_000 + send + i * 1_000;
            over |= d.on_packet(send, arrival) == Usage::Over;
        }
        assert!(over, "a queue growing 1 ms per 10 ms is detected");
    }

    #[test]
    fn a_draining_queue_is_underuse() {
        let mut d = DelayDetector::default();
        let mut under = false;
        for i in 0..150 {
            let send = i * 10_000;
            // Starts 300 ms late and catches up 1 ms per packet.
            let arrival = send + 20_000 + (300 - i).max(0) * 1_000;
            under |= d.on_packet(send, arrival) == Usage::Under;
        }
        assert!(under);
    }
}

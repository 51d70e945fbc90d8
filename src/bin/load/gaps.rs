//! `--cpu-gaps`: how much of the server's core the machine itself takes away. A thread pinned
//! to that core reads the monotonic clock in a loop; an interval between two readings longer
//! than [`THRESHOLD`] is time the thread did not run: interrupts and, on a virtual machine,
//! the host running something else on that core. A datagram that arrives just before such a
//! gap waits for it, whatever the server does, so gaps of milliseconds put a floor under
//! every latency percentile they reach.
//!
//! Measured twice: with the other core idle, and with a thread spinning on the generator's
//! core, as during a run (the load generator keeps it busy).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::net::pin_to_cpu;

/// Shorter intervals are the loop itself and the clock read.
pub const THRESHOLD: Duration = Duration::from_micros(30);

/// Upper bounds of the histogram's buckets; the last bucket has none.
const BOUNDS: [Duration; 5] = [
    Duration::from_micros(100),
    Duration::from_micros(300),
    Duration::from_millis(1),
    Duration::from_millis(3),
    Duration::from_millis(10),
];

/// Names of the buckets, in the report.
pub const BUCKETS: [&str; 6] = [
    "30us-100us",
    "100us-300us",
    "300us-1ms",
    "1ms-3ms",
    "3ms-10ms",
    "10ms+",
];

/// The gaps one thread saw in one measurement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GapFigure {
    pub secs: f64,
    /// Intervals longer than [`THRESHOLD`].
    pub gaps: u64,
    /// Share of the time spent in those gaps (%).
    pub lost_percent: f64,
    /// Share of the time spent in gaps of 1 ms or more (%).
    pub lost_in_gaps_over_1ms_percent: f64,
    pub longest_ms: f64,
    /// How many gaps fell in each of [`BUCKETS`].
    pub histogram: [u64; 6],
}

#[derive(Debug, Clone, Serialize)]
pub struct GapsResult {
    pub cpu: usize,
    pub threshold_us: u64,
    /// The other core idle.
    pub other_idle: GapFigure,
    /// A thread spinning on `busy_cpu` meanwhile.
    pub other_busy: GapFigure,
    pub busy_cpu: usize,
}

/// Accumulates intervals into a [`GapFigure`].
#[derive(Debug, Default)]
pub struct Gaps {
    figure: GapFigure,
    lost: Duration,
    lost_long: Duration,
    longest: Duration,
}

impl Gaps {
    /// One interval between two clock readings.
    pub fn add(&mut self, interval: Duration) {
        if interval <= THRESHOLD {
            return;
        }
        self.figure.gaps += 1;
        self.lost += interval;
        if interval >= Duration::from_millis(1) {
            self.lost_long += interval;
        }
        self.longest = self.longest.max(interval);
        let bucket = BOUNDS
            .iter()
            .position(|b| interval < *b)
            .unwrap_or(BOUNDS.len());
        self.figure.histogram[bucket] += 1;
    }

    /// The figure over `elapsed` of measurement.
    pub fn finish(mut self, elapsed: Duration) -> GapFigure {
        let total = elapsed.as_secs_f64().max(1e-9);
        self.figure.secs = elapsed.as_secs_f64();
        self.figure.lost_percent = 100.0 * self.lost.as_secs_f64() / total;
        self.figure.lost_in_gaps_over_1ms_percent = 100.0 * self.lost_long.as_secs_f64() / total;
        self.figure.longest_ms = self.longest.as_secs_f64() * 1e3;
        self.figure
    }
}

/// Spins on `cpu` for `duration`, reading the clock, and returns the gaps it saw.
fn measure(duration: Duration, cpu: usize) -> anyhow::Result<GapFigure> {
    // Unpinned, the thread would measure whichever core the scheduler gave it.
    anyhow::ensure!(
        pin_to_cpu(0, cpu),
        "cannot pin the measuring thread to CPU {cpu}"
    );
    let mut gaps = Gaps::default();
    let start = Instant::now();
    let mut last = start;
    loop {
        let now = Instant::now();
        gaps.add(now - last);
        last = now;
        if now - start >= duration {
            return Ok(gaps.finish(now - start));
        }
    }
}

pub fn run(duration: Duration, cpu: usize, busy_cpu: usize) -> anyhow::Result<GapsResult> {
    let join = |h: std::thread::JoinHandle<anyhow::Result<GapFigure>>| {
        h.join()
            .map_err(|_| anyhow::anyhow!("the gap measuring thread panicked"))?
    };
    let other_idle = join(std::thread::spawn(move || measure(duration, cpu)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let spinner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            pin_to_cpu(0, busy_cpu);
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };
    let other_busy = join(std::thread::spawn(move || measure(duration, cpu)));
    stop.store(true, Ordering::Relaxed);
    let _ = spinner.join();
    Ok(GapsResult {
        cpu,
        threshold_us: THRESHOLD.as_micros() as u64,
        other_idle,
        other_busy: other_busy?,
        busy_cpu,
    })
}

/// One line of the human report.
pub fn describe(label: &str, f: &GapFigure) -> String {
    let buckets: Vec<String> = BUCKETS
        .iter()
        .zip(f.histogram)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    format!(
        "{label}: {} gaps over {} µs in {:.0} s, {:.2} % of the time ({:.2} % in gaps of 1 ms or more), longest {:.2} ms; {}\n",
        f.gaps,
        THRESHOLD.as_micros(),
        f.secs,
        f.lost_percent,
        f.lost_in_gaps_over_1ms_percent,
        f.longest_ms,
        buckets.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn intervals_up_to_the_threshold_are_not_gaps() {
        let mut g = Gaps::default();
        for _ in 0..1000 {
            g.add(us(1));
        }
        g.add(THRESHOLD);
        let f = g.finish(Duration::from_secs(1));
        assert_eq!(f.gaps, 0);
        assert_eq!(f.lost_percent, 0.0);
        assert_eq!(f.histogram, [0; 6]);
    }

    #[test]
    fn gaps_fall_in_their_buckets_and_count_as_lost_time() {
        let mut g = Gaps::default();
        for d in [
            us(50),
            us(100),
            us(299),
            us(500),
            us(1_000),
            us(2_999),
            us(5_000),
            us(12_000),
        ] {
            g.add(d);
        }
        let f = g.finish(Duration::from_secs(1));
        assert_eq!(f.gaps, 8);
        assert_eq!(f.histogram, [1, 2, 1, 2, 1, 1]);
        // 21,948 µs of 1 s lost; 20,999 of them in gaps of 1 ms or more.
        assert!((f.lost_percent - 2.1948).abs() < 1e-9, "{}", f.lost_percent);
        assert!(
            (f.lost_in_gaps_over_1ms_percent - 2.0999).abs() < 1e-9,
            "{}",
            f.lost_in_gaps_over_1ms_percent
        );
        assert!((f.longest_ms - 12.0).abs() < 1e-9);
    }
}

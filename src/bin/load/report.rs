//! Turning two engine snapshots, two /proc readings and the participant records into the
//! figures of a run; the JSON document and the human table (one column per target).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::engine::{PubSnap, Snapshot, VIDEO_BIT};
use crate::procfs::{busiest_thread, ProcSample};
use crate::scenario::{from_tag, Part};

/// Percentiles of a sample, in the unit of the field name that holds them.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: usize,
}

/// Nearest-rank percentiles of `values` (sorted in place); None when empty.
pub fn percentiles(values: &mut [f64]) -> Option<Percentiles> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    let at = |q: f64| values[(((q * n as f64).ceil() as usize).max(1) - 1).min(n - 1)];
    Some(Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: values[n - 1],
        count: n,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct SubscriberResult {
    pub participant: usize,
    pub room: usize,
    pub publisher: bool,
    pub packets: u64,
    pub bytes: u64,
    pub audio_packets: u64,
    pub video_packets: u64,
    pub expected: u64,
    pub lost: u64,
    pub loss_pct: f64,
    /// Frames that never arrived (gaps in the stamps' frame counters).
    pub frames_expected: u64,
    pub frames_lost: u64,
    pub frame_loss_pct: f64,
    pub join_ms: Option<f64>,
    /// Mean and largest stamp-to-arrival delay of this subscriber's frames in the window.
    pub latency_mean_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerResult {
    pub pid: u32,
    pub cpu_seconds: f64,
    /// Percent of one core over the window.
    pub cpu_pct: f64,
    pub busiest_thread: Option<String>,
    pub busiest_thread_cpu_seconds: Option<f64>,
    /// CPU seconds from before the first join to after the last one (joins and the media
    /// flowing meanwhile).
    pub join_phase_cpu_seconds: Option<f64>,
    /// Datagrams dropped on the server's UDP sockets from before the first join to after
    /// the last one.
    pub join_phase_udp_drops: Option<u64>,
    /// Datagrams dropped on the server's UDP sockets (receive buffer full) in the window.
    pub udp_receive_drops: u64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    /// (RSS after the window - RSS before the joins) / subscribers.
    pub rss_per_subscriber_bytes: Option<f64>,
    /// The same from anonymous RSS (`RssAnon`): without the binary's code pages, which the
    /// first joins map in once whatever the number of subscribers.
    pub rss_anon_per_subscriber_bytes: Option<f64>,
    /// RTP packets received by all subscribers / server CPU seconds, over the window.
    pub egress_pps_per_cpu_second: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientResult {
    pub engine_cpu_seconds: f64,
    pub engine_cpu_pct: f64,
    pub connections: usize,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub send_dropped: u64,
    pub published_frames: u64,
    /// Frames the publishers wrote more than 1 ms after they were due (the generator's
    /// thread was busy): such frames leave in step with others.
    pub published_frames_late: u64,
    pub latency_samples_dropped: u64,
}

/// Everything measured against one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub target: String,
    pub url: String,
    pub window_secs: f64,
    pub publishers: usize,
    pub subscribers: usize,
    /// Subscribers that received media.
    pub subscribers_with_media: usize,
    pub join_failures: usize,
    /// A few distinct participant errors.
    pub errors: Vec<String>,
    /// WebSocket open -> first RTP packet, subscribers only.
    pub join_ms: Option<Percentiles>,
    /// WebSocket open -> `join` answered (Janus: subscriber `join` answered, with the offer).
    pub join_signaled_ms: Option<Percentiles>,
    /// WebSocket open -> receive connection up (ICE + DTLS done).
    pub join_connected_ms: Option<Percentiles>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_pps: f64,
    pub rx_mbps: f64,
    pub expected_packets: u64,
    pub lost_packets: u64,
    pub loss_pct: f64,
    pub frames_expected: u64,
    pub frames_lost: u64,
    pub frame_loss_pct: f64,
    pub min_subscriber_packets: u64,
    /// Subscribers whose mean frame latency in the window exceeds 100 ms.
    pub subscribers_mean_latency_over_100ms: usize,
    /// Stamp -> arrival, per frame (first packet), over the window.
    pub latency_ms: Option<Percentiles>,
    pub latency_audio_ms: Option<Percentiles>,
    pub latency_video_ms: Option<Percentiles>,
    /// The latency the server added: stamp -> arrival less the generator's wait from the
    /// stamp to the frame's hand-off to the kernel (`handoff.rs`), per frame.
    pub added_latency_ms: Option<Percentiles>,
    /// That wait, one sample per stamp written (frames written together share one).
    pub generator_handoff_ms: Option<Percentiles>,
    pub server: Option<ServerResult>,
    pub client: ClientResult,
    pub per_subscriber: Vec<SubscriberResult>,
}

/// Inputs of [`compute`].
pub struct Measured<'a> {
    pub target: &'a str,
    pub url: &'a str,
    pub parts: &'a [Part],
    pub before: &'a Snapshot,
    pub after: &'a Snapshot,
    pub window: Duration,
    pub server_idle: Option<(u32, &'a ProcSample)>,
    /// After the last join, before the warmup.
    pub server_joined: Option<&'a ProcSample>,
    pub server_before: Option<&'a ProcSample>,
    pub server_after: Option<&'a ProcSample>,
}

pub fn compute(m: Measured<'_>) -> TargetResult {
    let secs = m.window.as_secs_f64().max(1e-9);
    let before: HashMap<u64, &crate::engine::SubSnap> =
        m.before.subs.iter().map(|s| (s.tag, s)).collect();
    let mut per_subscriber = Vec::new();
    for s in &m.after.subs {
        let (part, _) = from_tag(s.tag);
        let Some(p) = m.parts.get(part) else { continue };
        let b = before.get(&s.tag).copied().cloned().unwrap_or_default();
        let packets = s.packets.saturating_sub(b.packets);
        let expected = s.expected.saturating_sub(b.expected);
        let counted = s.counted.saturating_sub(b.counted);
        let lost = expected.saturating_sub(counted);
        let frames_expected = s.frames_expected.saturating_sub(b.frames_expected);
        let frames_lost = frames_expected.saturating_sub(s.frames.saturating_sub(b.frames));
        per_subscriber.push(SubscriberResult {
            participant: part,
            room: p.room,
            publisher: p.publisher,
            packets,
            bytes: s.bytes.saturating_sub(b.bytes),
            audio_packets: s.audio_packets.saturating_sub(b.audio_packets),
            video_packets: s.video_packets.saturating_sub(b.video_packets),
            expected,
            lost,
            loss_pct: pct(lost, expected),
            frames_expected,
            frames_lost,
            frame_loss_pct: pct(frames_lost, frames_expected),
            join_ms: join_ms(p),
            latency_mean_ms: (s.lat_count > 0)
                .then(|| s.lat_sum_us as f64 / s.lat_count as f64 / 1000.0),
            latency_max_ms: (s.lat_count > 0).then(|| s.lat_max_us as f64 / 1000.0),
        });
    }
    per_subscriber.sort_by_key(|s| s.participant);
    let subscribers: Vec<&Part> = m.parts.iter().filter(|p| !p.publisher).collect();
    let mut joins: Vec<f64> = subscribers.iter().filter_map(|p| join_ms(p)).collect();
    let since_start = |at: fn(&Part) -> Option<std::time::Instant>| -> Vec<f64> {
        subscribers
            .iter()
            .filter_map(|p| {
                Some(at(p)?.saturating_duration_since(p.started?).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    let mut signaled = since_start(|p| p.joined);
    let mut connected = since_start(|p| p.recv_connected);
    let with_media = joins.len();
    let join_failures = subscribers.len() - with_media;
    let mut errors: Vec<String> = Vec::new();
    for e in m.parts.iter().filter_map(|p| p.error.clone()) {
        if errors.len() < 8 && !errors.contains(&e) {
            errors.push(e);
        }
    }
    let rx_packets: u64 = per_subscriber.iter().map(|s| s.packets).sum();
    let rx_bytes: u64 = per_subscriber.iter().map(|s| s.bytes).sum();
    let expected: u64 = per_subscriber.iter().map(|s| s.expected).sum();
    let lost: u64 = per_subscriber.iter().map(|s| s.lost).sum();
    let frames_expected: u64 = per_subscriber.iter().map(|s| s.frames_expected).sum();
    let frames_lost: u64 = per_subscriber.iter().map(|s| s.frames_lost).sum();
    let ms = |us: u32| f64::from(us & !VIDEO_BIT) / 1000.0;
    let mut lat: Vec<f64> = m.after.latencies_us.iter().map(|&us| ms(us)).collect();
    let mut lat_audio: Vec<f64> = m
        .after
        .latencies_us
        .iter()
        .filter(|&&us| us & VIDEO_BIT == 0)
        .map(|&us| ms(us))
        .collect();
    let mut lat_video: Vec<f64> = m
        .after
        .latencies_us
        .iter()
        .filter(|&&us| us & VIDEO_BIT != 0)
        .map(|&us| ms(us))
        .collect();
    let mut added: Vec<f64> = m
        .after
        .added_latencies_us
        .iter()
        .map(|&us| ms(us))
        .collect();
    let mut handoff: Vec<f64> = m.after.handoff_waits_us.iter().map(|&us| ms(us)).collect();
    let server = match (m.server_idle, m.server_before, m.server_after) {
        (Some((pid, idle)), Some(b), Some(a)) => {
            let cpu = a.cpu.saturating_sub(b.cpu).as_secs_f64();
            let busiest = busiest_thread(b, a);
            // Growth from before the joins to the end of the window, per subscriber.
            let per_subscriber = |before: u64, after: u64| {
                (!subscribers.is_empty())
                    .then(|| (after as f64 - before as f64) / subscribers.len() as f64)
            };
            Some(ServerResult {
                pid,
                cpu_seconds: cpu,
                cpu_pct: 100.0 * cpu / secs,
                busiest_thread: busiest.as_ref().map(|b| b.0.clone()),
                busiest_thread_cpu_seconds: busiest.map(|b| b.1),
                join_phase_cpu_seconds: m
                    .server_joined
                    .map(|j| j.cpu.saturating_sub(idle.cpu).as_secs_f64()),
                join_phase_udp_drops: m
                    .server_joined
                    .map(|j| j.udp_drops.saturating_sub(idle.udp_drops)),
                udp_receive_drops: a.udp_drops.saturating_sub(b.udp_drops),
                rss_before_bytes: idle.rss_bytes,
                rss_after_bytes: a.rss_bytes,
                rss_per_subscriber_bytes: per_subscriber(idle.rss_bytes, a.rss_bytes),
                rss_anon_per_subscriber_bytes: per_subscriber(
                    idle.rss_anon_bytes,
                    a.rss_anon_bytes,
                ),
                egress_pps_per_cpu_second: (cpu > 0.0).then(|| rx_packets as f64 / cpu),
            })
        }
        _ => None,
    };
    // What the publishers counted in the window.
    let published = |count: fn(&PubSnap) -> u64| {
        m.after.pubs.iter().map(count).sum::<u64>() - m.before.pubs.iter().map(count).sum::<u64>()
    };
    let engine_cpu = m
        .after
        .engine_cpu
        .saturating_sub(m.before.engine_cpu)
        .as_secs_f64();
    TargetResult {
        target: m.target.to_string(),
        url: m.url.to_string(),
        window_secs: secs,
        publishers: m.parts.iter().filter(|p| p.publisher).count(),
        subscribers: subscribers.len(),
        subscribers_with_media: with_media,
        join_failures,
        errors,
        join_ms: percentiles(&mut joins),
        join_signaled_ms: percentiles(&mut signaled),
        join_connected_ms: percentiles(&mut connected),
        rx_packets,
        rx_bytes,
        rx_pps: rx_packets as f64 / secs,
        rx_mbps: rx_bytes as f64 * 8.0 / secs / 1e6,
        expected_packets: expected,
        lost_packets: lost,
        loss_pct: pct(lost, expected),
        frames_expected,
        frames_lost,
        frame_loss_pct: pct(frames_lost, frames_expected),
        min_subscriber_packets: per_subscriber
            .iter()
            .filter(|s| !s.publisher)
            .map(|s| s.packets)
            .min()
            .unwrap_or(0),
        subscribers_mean_latency_over_100ms: per_subscriber
            .iter()
            .filter(|s| s.latency_mean_ms.is_some_and(|l| l > 100.0))
            .count(),
        latency_ms: percentiles(&mut lat),
        latency_audio_ms: percentiles(&mut lat_audio),
        latency_video_ms: percentiles(&mut lat_video),
        added_latency_ms: percentiles(&mut added),
        generator_handoff_ms: percentiles(&mut handoff),
        server,
        client: ClientResult {
            engine_cpu_seconds: engine_cpu,
            engine_cpu_pct: 100.0 * engine_cpu / secs,
            connections: m.after.conns,
            datagrams_in: m.after.datagrams_in.saturating_sub(m.before.datagrams_in),
            datagrams_out: m.after.datagrams_out.saturating_sub(m.before.datagrams_out),
            send_dropped: m.after.send_dropped.saturating_sub(m.before.send_dropped),
            published_frames: published(|p| p.frames),
            published_frames_late: published(|p| p.late),
            latency_samples_dropped: m.after.latency_dropped,
        },
        per_subscriber,
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole > 0 {
        100.0 * part as f64 / whole as f64
    } else {
        0.0
    }
}

fn join_ms(p: &Part) -> Option<f64> {
    match (p.started, p.first_media) {
        (Some(s), Some(f)) => Some(f.saturating_duration_since(s).as_secs_f64() * 1000.0),
        _ => None,
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The human table: one row per figure, one column per target.
pub fn table(results: &[TargetResult]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&TargetResult) -> String| {
        rows.push((name.to_string(), results.iter().map(f).collect()));
    };
    row("publishers / subscribers", &|r| {
        format!("{} / {}", r.publishers, r.subscribers)
    });
    row("subscribers with media", &|r| {
        format!("{} ({} failed)", r.subscribers_with_media, r.join_failures)
    });
    row("join ms p50 / p99", &|r| {
        let j = r.join_ms.as_ref();
        format!(
            "{} / {}",
            opt(j.map(|j| j.p50), 0),
            opt(j.map(|j| j.p99), 0)
        )
    });
    row("  signaled / connected p99", &|r| {
        format!(
            "{} / {}",
            opt(r.join_signaled_ms.as_ref().map(|j| j.p99), 0),
            opt(r.join_connected_ms.as_ref().map(|j| j.p99), 0)
        )
    });
    row("window s", &|r| format!("{:.1}", r.window_secs));
    row("rx packets/s (all subs)", &|r| si(r.rx_pps));
    row("rx Mbit/s (all subs)", &|r| format!("{:.1}", r.rx_mbps));
    row("min packets per sub", &|r| {
        r.min_subscriber_packets.to_string()
    });
    row("loss % packets / frames", &|r| {
        format!("{:.3} / {:.3}", r.loss_pct, r.frame_loss_pct)
    });
    row("latency ms p50/p99/p99.9", &|r| {
        let l = r.latency_ms.as_ref();
        format!(
            "{} / {} / {}",
            opt(l.map(|l| l.p50), 2),
            opt(l.map(|l| l.p99), 2),
            opt(l.map(|l| l.p999), 2)
        )
    });
    row("  subs with mean > 100 ms", &|r| {
        r.subscribers_mean_latency_over_100ms.to_string()
    });
    for (name, pick) in [
        (
            "  audio",
            (|r: &TargetResult| r.latency_audio_ms.clone())
                as fn(&TargetResult) -> Option<Percentiles>,
        ),
        ("  video", |r: &TargetResult| r.latency_video_ms.clone()),
        ("added latency ms p50/p99/p99.9", |r: &TargetResult| {
            r.added_latency_ms.clone()
        }),
        ("  generator hand-off", |r: &TargetResult| {
            r.generator_handoff_ms.clone()
        }),
    ] {
        row(name, &|r| {
            let l = pick(r);
            format!(
                "{} / {} / {}",
                opt(l.as_ref().map(|l| l.p50), 2),
                opt(l.as_ref().map(|l| l.p99), 2),
                opt(l.as_ref().map(|l| l.p999), 2)
            )
        });
    }
    row("server CPU % of a core", &|r| {
        opt(r.server.as_ref().map(|s| s.cpu_pct), 1)
    });
    row("egress pkts / server CPU-s", &|r| {
        r.server
            .as_ref()
            .and_then(|s| s.egress_pps_per_cpu_second)
            .map(si)
            .unwrap_or_else(|| "-".into())
    });
    row("server UDP receive drops", &|r| {
        r.server
            .as_ref()
            .map(|s| s.udp_receive_drops.to_string())
            .unwrap_or_else(|| "-".into())
    });
    row("server RSS MiB (idle -> end)", &|r| {
        r.server
            .as_ref()
            .map(|s| {
                format!(
                    "{:.1} -> {:.1}",
                    s.rss_before_bytes as f64 / 1048576.0,
                    s.rss_after_bytes as f64 / 1048576.0
                )
            })
            .unwrap_or_else(|| "-".into())
    });
    for (name, pick) in [
        (
            "RSS KiB per subscriber",
            (|s: &ServerResult| s.rss_per_subscriber_bytes) as fn(&ServerResult) -> Option<f64>,
        ),
        ("  anonymous (RssAnon) per sub", |s: &ServerResult| {
            s.rss_anon_per_subscriber_bytes
        }),
    ] {
        row(name, &|r| {
            opt(r.server.as_ref().and_then(pick).map(|b| b / 1024.0), 1)
        });
    }
    row("busiest server thread", &|r| {
        r.server
            .as_ref()
            .and_then(|s| {
                s.busiest_thread
                    .as_ref()
                    .map(|n| format!("{n} {:.2}s", s.busiest_thread_cpu_seconds.unwrap_or(0.0)))
            })
            .unwrap_or_else(|| "-".into())
    });
    row("load generator CPU %", &|r| {
        format!("{:.1}", r.client.engine_cpu_pct)
    });
    row("client send drops", &|r| r.client.send_dropped.to_string());
    row("publisher frames > 1 ms late %", &|r| {
        let c = &r.client;
        format!(
            "{:.2}",
            100.0 * c.published_frames_late as f64 / c.published_frames.max(1) as f64
        )
    });

    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..results.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.1[i].len())
                .chain(std::iter::once(results[i].target.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{:w0$}", "");
    for (i, r) in results.iter().enumerate() {
        out += &format!(" | {:>w$}", r.target, w = widths[i]);
    }
    out.push('\n');
    out += &"-".repeat(out.len().saturating_sub(1));
    out.push('\n');
    for (name, vals) in &rows {
        out += &format!("{name:w0$}");
        for (i, v) in vals.iter().enumerate() {
            out += &format!(" | {v:>w$}", w = widths[i]);
        }
        out.push('\n');
    }
    for r in results {
        for e in &r.errors {
            out += &format!("[{}] error: {e}\n", r.target);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=1000).map(f64::from).collect();
        let p = percentiles(&mut v).expect("non-empty");
        assert_eq!(p.p50, 500.0);
        assert_eq!(p.p99, 990.0);
        assert_eq!(p.p999, 999.0);
        assert_eq!(p.max, 1000.0);
        assert!(percentiles(&mut []).is_none());
    }
}

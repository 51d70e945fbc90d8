//! Prometheus metrics: the counters the edge keeps itself ([`Metrics`]: signaling errors by
//! code, join durations, Redis errors, refused origins), and the text exposition of
//! everything on `/metrics` of the separate `metricsListen` listener, read at scrape time from
//! the registry (rooms, peers), the media workers (`WorkerStats`: producers, consumers,
//! bytes, packets, NACKs, PLIs, layer switches) and the relays. The names are listed in the
//! README; `promtool check metrics` validates the output in the tests.
//!
//! One [`Metrics`] per process, made before the HTTP workers start.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::relay::RelayTracker;
use crate::ids::NodeId;
use crate::room::messages::GetRegistryStats;
use crate::room::RegistryActor;
use crate::routing::{Claim, DirectoryFuture, NodeInfo, RoomDirectory};
use crate::sfu::MediaPlane;
use crate::signaling::ErrorCode;

/// Upper bounds (seconds) of the join-duration histogram buckets.
const JOIN_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A counter shared with the component that increments it.
pub type Counter = Arc<AtomicU64>;

/// The counters kept by the edge.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Error replies and notifications sent to clients, indexed like [`ErrorCode::ALL`].
    errors: [AtomicU64; ErrorCode::ALL.len()],
    /// Joins per bucket of [`JOIN_BUCKETS`] (not cumulative), the last one for `+Inf`.
    join_buckets: [AtomicU64; JOIN_BUCKETS.len() + 1],
    /// Sum of join durations in microseconds.
    join_micros: AtomicU64,
    /// Failed calls of the room directory to Redis.
    pub redis_directory_errors: Counter,
    /// Failed session-store calls to Redis.
    pub redis_session_errors: Counter,
    /// Failed health pings to Redis.
    pub redis_health_errors: Counter,
    /// WebSocket upgrades refused by the `Origin` check.
    origin_refused: AtomicU64,
}

impl Metrics {
    /// Counts an error with `code` sent to a client.
    pub fn signaling_error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a join answered after `took`.
    pub fn join(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = JOIN_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(JOIN_BUCKETS.len());
        self.join_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.join_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counts an upgrade refused for its `Origin`.
    pub fn origin_refused(&self) {
        self.origin_refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a scrape reads the live numbers.
#[derive(Clone)]
pub struct Sources {
    /// This instance.
    pub node: NodeId,
    /// Rooms and peers.
    pub registry: Addr<RegistryActor>,
    /// Media counters.
    pub media: MediaPlane,
    /// Participants relayed to other instances.
    pub relays: Arc<RelayTracker>,
    /// The edge's counters.
    pub metrics: Arc<Metrics>,
}

/// `GET /metrics` of the metrics listener.
pub async fn scrape(sources: web::Data<Sources>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(render(&sources).await)
}

/// The Prometheus text exposition of every metric.
pub async fn render(s: &Sources) -> String {
    let registry = s.registry.send(GetRegistryStats).await.unwrap_or_default();
    let media = s.media.stats().await;
    let m = &s.metrics;
    let mut out = Exposition::default();
    out.metric(
        "mm_node_info",
        "gauge",
        "This instance: its node id and version (always 1).",
        &[(
            &format!(
                "node=\"{}\",version=\"{}\"",
                escape(s.node.as_str()),
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        )],
    );
    let gauges: [(&str, &str, usize); 6] = [
        ("mm_rooms", "Rooms open on this instance.", registry.rooms),
        (
            "mm_peers",
            "Participants hosted on this instance.",
            registry.peers,
        ),
        (
            "mm_relayed_peers",
            "Participants this instance relays to the instance hosting their room.",
            s.relays.active(),
        ),
        (
            "mm_transports",
            "WebRTC transports alive.",
            media.transports,
        ),
        (
            "mm_producers",
            "Producers (tracks sent to the server).",
            media.producers,
        ),
        (
            "mm_consumers",
            "Consumers (tracks sent by the server).",
            media.consumers,
        ),
    ];
    for (name, help, value) in gauges {
        out.metric(name, "gauge", help, &[("", value as f64)]);
    }
    let counters: [(&str, &str, u64); 15] = [
        (
            "mm_media_received_bytes_total",
            "Bytes of the datagrams (and ICE-TCP frames) received on the media ports.",
            media.bytes_in,
        ),
        (
            "mm_media_sent_bytes_total",
            "Bytes of the datagrams (and ICE-TCP frames) sent from the media ports.",
            media.bytes_out,
        ),
        (
            "mm_media_received_packets_total",
            "Datagrams (and ICE-TCP frames) received on the media ports: RTP, RTCP, STUN, DTLS.",
            media.datagrams_in,
        ),
        (
            "mm_media_sent_packets_total",
            "Datagrams (and ICE-TCP frames) sent from the media ports: RTP, RTCP, STUN, DTLS.",
            media.datagrams_out,
        ),
        (
            "mm_media_sent_messages_total",
            "UDP messages handed to the kernel from the media ports: with GSO one message carries a subscriber's run of datagrams.",
            media.messages_out,
        ),
        (
            "mm_forwarded_frames_total",
            "Media frames written to consumers.",
            media.frames_forwarded,
        ),
        (
            "mm_forwarded_packets_total",
            "RTP packets written to consumers.",
            media.packets_forwarded,
        ),
        (
            "mm_nacks_received_total",
            "Packets subscribers asked to be resent (each sequence number of their NACKs).",
            media.nacks_received,
        ),
        (
            "mm_nacks_sent_total",
            "NACKs sent to publishers.",
            media.nacks_sent,
        ),
        (
            "mm_resends_from_history_total",
            "Packets resent to subscribers from a producer's shared history, for their NACKs.",
            media.resends_from_history,
        ),
        (
            "mm_keyframes_replayed_total",
            "Consumers started at a recent keyframe replayed from the history, without asking the publisher for one.",
            media.keyframes_replayed,
        ),
        (
            "mm_plis_received_total",
            "Keyframe requests (PLI or FIR) received from subscribers.",
            media.plis_received,
        ),
        (
            "mm_plis_sent_total",
            "Keyframe requests (PLI) sent to publishers, after throttling.",
            media.plis_sent,
        ),
        (
            "mm_subscriber_rtcp_dropped_total",
            "SRTCP packets from subscribers refused: failed authentication, replayed or malformed.",
            media.subscriber_rtcp_dropped,
        ),
        (
            "mm_simulcast_layer_switches_total",
            "Times the simulcast layer forwarded to a consumer changed.",
            media.layer_switches,
        ),
    ];
    for (name, help, value) in counters {
        out.metric(name, "counter", help, &[("", value as f64)]);
    }
    let errors: Vec<(String, f64)> = ErrorCode::ALL
        .iter()
        .zip(&m.errors)
        .map(|(code, n)| {
            (
                format!("code=\"{}\"", code.as_str()),
                n.load(Ordering::Relaxed) as f64,
            )
        })
        .collect();
    let errors: Vec<(&str, f64)> = errors.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    out.metric(
        "mm_signaling_errors_total",
        "counter",
        "Error responses and error notifications sent to clients, by code (docs/protocol.md).",
        &errors,
    );
    out.metric(
        "mm_origin_refused_total",
        "counter",
        "WebSocket upgrades refused with 403 because their Origin is another site's.",
        &[("", m.origin_refused.load(Ordering::Relaxed) as f64)],
    );
    let redis = [
        ("component=\"directory\"", &m.redis_directory_errors),
        ("component=\"sessions\"", &m.redis_session_errors),
        ("component=\"health\"", &m.redis_health_errors),
    ];
    let redis: Vec<(&str, f64)> = redis
        .iter()
        .map(|(l, c)| (*l, c.load(Ordering::Relaxed) as f64))
        .collect();
    out.metric(
        "mm_redis_errors_total",
        "counter",
        "Failed calls to Redis: room directory, session store, health ping.",
        &redis,
    );
    out.histogram(
        "mm_join_duration_seconds",
        "Time from a join request to its successful response.",
        &m.join_buckets,
        m.join_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    out.text
}

/// Text being written in the Prometheus exposition format (version 0.0.4).
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// One metric family: HELP, TYPE and a sample per label set (`""` = no labels).
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.text, "{name} {value}");
            } else {
                let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
            }
        }
    }

    /// A histogram from per-bucket counts (the last one above every bound).
    fn histogram(&mut self, name: &str, help: &str, buckets: &[AtomicU64], sum: f64) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, bucket) in buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = JOIN_BUCKETS
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "+Inf".into());
            let _ = writeln!(self.text, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(self.text, "{name}_sum {sum}");
        let _ = writeln!(self.text, "{name}_count {cumulative}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A [`RoomDirectory`] that counts the failed calls of the one it wraps.
pub struct CountingDirectory {
    inner: Arc<dyn RoomDirectory>,
    errors: Counter,
}

impl CountingDirectory {
    /// Counts the failures of `inner` in `errors`.
    pub fn new(inner: Arc<dyn RoomDirectory>, errors: Counter) -> Self {
        Self { inner, errors }
    }

    fn counted<T: Send + 'static>(&self, call: DirectoryFuture<T>) -> DirectoryFuture<T> {
        let errors = self.errors.clone();
        Box::pin(async move {
            let result = call.await;
            if result.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            result
        })
    }
}

impl RoomDirectory for CountingDirectory {
    fn shared(&self) -> bool {
        self.inner.shared()
    }

    fn claim(&self, room: &crate::ids::RoomId) -> DirectoryFuture<Claim> {
        self.counted(self.inner.claim(room))
    }

    fn renew(&self, rooms: Vec<crate::ids::RoomId>) -> DirectoryFuture<Vec<crate::ids::RoomId>> {
        self.counted(self.inner.renew(rooms))
    }

    fn release(&self, room: &crate::ids::RoomId) -> DirectoryFuture<()> {
        self.counted(self.inner.release(room))
    }

    fn holder(
        &self,
        room: &crate::ids::RoomId,
    ) -> DirectoryFuture<Option<(NodeId, Option<NodeInfo>)>> {
        self.counted(self.inner.holder(room))
    }

    fn announce(&self, me: NodeInfo) -> DirectoryFuture<()> {
        self.counted(self.inner.announce(me))
    }

    fn withdraw(&self) -> DirectoryFuture<()> {
        self.counted(self.inner.withdraw())
    }

    fn live_nodes(&self) -> DirectoryFuture<Vec<NodeInfo>> {
        self.counted(self.inner.live_nodes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_counts_every_join() {
        let m = Metrics::default();
        m.join(Duration::from_millis(3));
        m.join(Duration::from_millis(300));
        m.join(Duration::from_secs(60));
        let mut out = Exposition::default();
        out.histogram("h", "help", &m.join_buckets, 1.5);
        assert!(
            out.text.contains("h_bucket{le=\"0.01\"} 1\n"),
            "{}",
            out.text
        );
        assert!(
            out.text.contains("h_bucket{le=\"0.25\"} 1\n"),
            "{}",
            out.text
        );
        assert!(
            out.text.contains("h_bucket{le=\"0.5\"} 2\n"),
            "{}",
            out.text
        );
        assert!(out.text.contains("h_bucket{le=\"10\"} 2\n"), "{}", out.text);
        assert!(
            out.text.contains("h_bucket{le=\"+Inf\"} 3\n"),
            "{}",
            out.text
        );
        assert!(out.text.contains("h_count 3\n"), "{}", out.text);
    }

    #[test]
    fn errors_are_counted_by_code_and_labels_escaped() {
        let m = Metrics::default();
        m.signaling_error(ErrorCode::RateLimited);
        m.signaling_error(ErrorCode::RateLimited);
        let i = ErrorCode::ALL
            .iter()
            .position(|c| *c == ErrorCode::RateLimited)
            .unwrap();
        assert_eq!(m.errors[i].load(Ordering::Relaxed), 2);
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

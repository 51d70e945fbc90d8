//! State shared between a client's async tasks, its media threads and the `Client` handle:
//! pending requests, received notifications, per-consumer/producer media counters, and the
//! change signal that `wait_*` functions sleep on.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::error::ClientError;
use super::media::{find_stamp, is_vp8_keyframe, unix_micros};
use super::protocol::{Consumer, Kind, Notification, Response, Source};

/// Media counters of one consumer (a track the server forwards to this client).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerStats {
    /// Server-chosen consumer id.
    pub consumer_id: String,
    /// The producer it copies.
    pub producer_id: String,
    /// The peer that sends the producer.
    pub peer_id: String,
    /// Audio or video.
    pub kind: Kind,
    /// Mic, webcam or screen.
    pub source: Source,
    /// Recv-transport mid.
    pub mid: String,
    /// True after `consumerClosed` for it arrived, or its mid was reused by a later consumer.
    pub closed: bool,
    /// Complete frames (str0m `MediaData` events) received and decodable: video delta frames
    /// after a gap, until the next keyframe, are counted in `undecodable` instead.
    pub frames: u64,
    /// Payload bytes of those frames.
    pub bytes: u64,
    /// Video frames that are VP8 keyframes.
    pub keyframes: u64,
    /// Frames str0m flagged as not contiguous with the previous one (RTP sequence gap).
    pub discontinuities: u64,
    /// Video delta frames (not keyframes) that do not follow the frame received just before
    /// (by stamp sequence): frames whose references this subscriber never got, which a real
    /// decoder shows as garbage. Frames after a gap str0m saw are not decoded (as a browser
    /// does not), so one counted here is a gap the server hid: it must never happen.
    pub broken_deltas: u64,
    /// Video delta frames dropped as a decoder drops them: from a gap in the RTP sequence (a
    /// frame str0m delivers as not contiguous) to the next keyframe, which this client asks
    /// for with a PLI, as browsers do.
    pub undecodable: u64,
    /// A gap was seen and no keyframe has come since.
    pub awaiting_keyframe: bool,
    /// Stamp sequence of the latest frame received.
    pub last_seq: Option<u32>,
    /// Frames that carried this crate's sequence/timestamp stamp.
    pub stamped_frames: u64,
    /// Lowest stamp sequence seen.
    pub first_seq: Option<u32>,
    /// Highest stamp sequence seen.
    pub max_seq: Option<u32>,
    /// Sum of (receive time - send time) over stamped frames, in microseconds.
    pub latency_sum_us: u64,
    /// Largest single-frame latency seen, in microseconds.
    pub latency_max_us: u64,
    /// When the first frame arrived.
    pub first_frame_at: Option<Instant>,
    /// When the latest frame arrived.
    pub last_frame_at: Option<Instant>,
}

impl ConsumerStats {
    fn new(c: &Consumer) -> Self {
        ConsumerStats {
            consumer_id: c.id.clone(),
            producer_id: c.producer_id.clone(),
            peer_id: c.peer_id.clone(),
            kind: c.kind,
            source: c.source,
            mid: c.mid.clone(),
            closed: false,
            frames: 0,
            bytes: 0,
            keyframes: 0,
            discontinuities: 0,
            broken_deltas: 0,
            undecodable: 0,
            awaiting_keyframe: false,
            last_seq: None,
            stamped_frames: 0,
            first_seq: None,
            max_seq: None,
            latency_sum_us: 0,
            latency_max_us: 0,
            first_frame_at: None,
            last_frame_at: None,
        }
    }

    /// Frames missing between the first and highest stamp sequence seen (estimate: frames the
    /// server deliberately skips, e.g. while waiting for a keyframe, count as lost too).
    pub fn lost_estimate(&self) -> u64 {
        match (self.first_seq, self.max_seq) {
            (Some(first), Some(max)) => {
                (u64::from(max) - u64::from(first) + 1).saturating_sub(self.stamped_frames)
            }
            _ => 0,
        }
    }

    /// Mean one-way latency over stamped frames (sender and receiver share a wall clock).
    pub fn mean_latency(&self) -> Option<Duration> {
        (self.stamped_frames > 0)
            .then(|| Duration::from_micros(self.latency_sum_us / self.stamped_frames))
    }

    /// Records a frame; true when it is a video frame the decoder cannot use until a keyframe
    /// (the caller asks the sender for one).
    fn record(&mut self, data: &[u8], contiguous: bool, now: Instant, now_us: u64) -> bool {
        if !contiguous {
            self.discontinuities += 1;
        }
        let keyframe = self.kind == Kind::Video && is_vp8_keyframe(data);
        if self.kind == Kind::Video && !keyframe && (!contiguous || self.awaiting_keyframe) {
            self.awaiting_keyframe = true;
            self.undecodable += 1;
            return true;
        }
        self.awaiting_keyframe = false;
        self.frames += 1;
        self.bytes += data.len() as u64;
        if keyframe {
            self.keyframes += 1;
        }
        if let Some(stamp) = find_stamp(data) {
            if self.kind == Kind::Video && !keyframe {
                let follows = self
                    .last_seq
                    .is_some_and(|s| s.wrapping_add(1) == stamp.seq);
                if !follows {
                    self.broken_deltas += 1;
                }
            }
            self.last_seq = Some(stamp.seq);
            self.stamped_frames += 1;
            self.first_seq = Some(self.first_seq.map_or(stamp.seq, |s| s.min(stamp.seq)));
            self.max_seq = Some(self.max_seq.map_or(stamp.seq, |s| s.max(stamp.seq)));
            let latency = now_us.saturating_sub(stamp.sent_at_us);
            self.latency_sum_us += latency;
            self.latency_max_us = self.latency_max_us.max(latency);
        }
        self.first_frame_at.get_or_insert(now);
        self.last_frame_at = Some(now);
        false
    }
}

/// Media counters of one track this client publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerStats {
    /// Send-transport mid.
    pub mid: String,
    /// Server-chosen producer id (empty until `publish` returned).
    pub producer_id: String,
    /// Audio or video.
    pub kind: Kind,
    /// Mic, webcam or screen.
    pub source: Source,
    /// Frames handed to str0m (per simulcast layer each counts once).
    pub frames: u64,
    /// Payload bytes of those frames.
    pub bytes: u64,
    /// Keyframes written.
    pub keyframes: u64,
    /// PLI/FIR requests received from the server.
    pub keyframe_requests: u64,
}

/// Connection state of one of the two WebRTC transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportStatus {
    /// Not created yet.
    #[default]
    None,
    /// Created, ICE/DTLS not up yet.
    Connecting,
    /// ICE and DTLS are up.
    Connected,
    /// ICE disconnected or the Rtc failed or was stopped.
    Closed,
}

#[derive(Default)]
pub(crate) struct State {
    pub pending: HashMap<u64, oneshot::Sender<Response>>,
    pub unsolicited: VecDeque<Response>,
    pub history: Vec<Notification>,
    pub queue: VecDeque<Notification>,
    pub consumers: Vec<ConsumerStats>,
    /// mid -> index in `consumers` of the consumer that currently owns the mid.
    pub mid_owner: HashMap<String, usize>,
    pub unmatched_frames: u64,
    pub producers: Vec<ProducerStats>,
    pub send_status: TransportStatus,
    pub recv_status: TransportStatus,
    pub ws_closed: bool,
    pub errors: Vec<String>,
}

impl State {
    pub fn add_consumers(&mut self, consumers: &[Consumer]) {
        for c in consumers {
            if let Some(&old) = self.mid_owner.get(&c.mid) {
                self.consumers[old].closed = true;
            }
            self.consumers.push(ConsumerStats::new(c));
            self.mid_owner
                .insert(c.mid.clone(), self.consumers.len() - 1);
        }
    }

    pub fn close_consumer(&mut self, consumer_id: &str) {
        for c in self
            .consumers
            .iter_mut()
            .filter(|c| c.consumer_id == consumer_id)
        {
            c.closed = true;
        }
    }

    /// Records a frame of the consumer on `mid`; true when a keyframe should be requested.
    pub fn record_frame(&mut self, mid: &str, data: &[u8], contiguous: bool) -> bool {
        let now = Instant::now();
        let now_us = unix_micros();
        match self.mid_owner.get(mid) {
            Some(&i) => self.consumers[i].record(data, contiguous, now, now_us),
            None => {
                self.unmatched_frames += 1;
                false
            }
        }
    }

    pub fn producer_mut(&mut self, mid: &str) -> Option<&mut ProducerStats> {
        self.producers.iter_mut().find(|p| p.mid == mid)
    }
}

/// `State` behind a mutex plus a version counter bumped on every change.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// Loss tests: the share of incoming RTP datagrams the recv transport drops, in parts
    /// per million ([`crate::client::Client::drop_incoming_rtp`]).
    pub incoming_rtp_loss_ppm: AtomicU32,
    /// Incoming RTP datagrams seen by the recv transport, and those of them it dropped.
    pub incoming_rtp_seen: AtomicU64,
    pub incoming_rtp_dropped: AtomicU64,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            incoming_rtp_loss_ppm: AtomicU32::new(0),
            incoming_rtp_seen: AtomicU64::new(0),
            incoming_rtp_dropped: AtomicU64::new(0),
        })
    }

    /// Read-only access. Never hold the guard across an await.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic in a media thread or task while holding it; the
        // counters are still meaningful for a test report, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mutate and wake every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.send_modify(|v| *v += 1);
        r
    }

    pub fn error(&self, msg: String) {
        tracing::warn!(target: "mm_client", "{msg}");
        self.update(|s| s.errors.push(msg));
    }

    /// Call `f` after every change until it returns `Some`, or until `timeout`.
    /// `what` names the awaited thing in the timeout error; `describe` adds the current state.
    pub async fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&mut State) -> Option<T>,
        describe: impl Fn(&State) -> String,
    ) -> Result<T, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.changed.subscribe();
        loop {
            // `subscribe` marked the current version as seen, so a change made after this
            // check wakes `changed()` below: no lost wake-ups.
            if let Some(t) = f(&mut self.lock()) {
                return Ok(t);
            }
            // The sender lives in `self`, so `changed()` cannot fail while we hold `self`.
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                let state = describe(&self.lock());
                return Err(ClientError::Timeout(timeout, format!("{what}; {state}")));
            }
        }
    }
}

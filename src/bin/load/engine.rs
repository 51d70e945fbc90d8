//! The media engine: ONE thread owning every str0m `Rtc` of the run (publisher send
//! connections and subscriber receive connections) over a few [`MultiSocket`]s, in the
//! shape of the server's media worker: read datagrams in batches, feed each to its `Rtc`,
//! poll the touched ones, send in batches, fire timers from a heap, sleep in `ppoll`.
//!
//! Publishers write synthetic frames (frame API); subscribers run str0m in RTP mode and
//! count RTP packets per SSRC (loss from sequence numbers) and read the frame stamps
//! (latency). Signaling tasks talk to the engine through [`EngineHandle`] commands.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use multiparty_meeting::client::Kind;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{mpsc as tmpsc, oneshot};

use multiparty_meeting::sfu::dtls::{self, KeySlot};

use crate::handoff::Handoffs;
use crate::light::{self, Light, OfferInfo};
use crate::media::{find_stamp, offer_rids, FrameWrite, Generator, PublishSpec};
use crate::net::{self, MultiSocket, Waker};
use multiparty_meeting::client::Stamp;

/// Longest sleep without looking at the command queue.
const MAX_SLEEP: Duration = Duration::from_millis(20);
/// Batches read from one socket before the others get a turn.
const MAX_BATCHES_PER_SOCKET: usize = 8;
/// How often light subscribers send transport-wide feedback (as str0m and browsers do).
const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
/// Light subscribers are spread over this many slots of the feedback interval, each at a
/// random one: independent receivers do not send their feedback in the same millisecond,
/// and 900 feedbacks at once would hold the server's core for milliseconds every interval.
const FEEDBACK_SLOTS: usize = 50;
/// Latency samples kept per measurement window (more are dropped, counted).
const MAX_LATENCY_SAMPLES: usize = 20_000_000;

/// Marks a video sample in [`Snapshot::latencies_us`].
pub const VIDEO_BIT: u32 = 1 << 31;

/// Index of a connection in the engine.
pub type ConnId = usize;

/// Where the engine's connections get their local addresses.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// UDP sockets to spread connections over.
    pub sockets: usize,
    /// First local IP of the range (each connection gets one IP on one socket).
    pub ip_base: Ipv4Addr,
    /// Number of IPs in the range.
    pub ip_count: u32,
    /// Subscribers read SRTP themselves (`light`): no str0m receive path per packet.
    pub light_subscribers: bool,
    /// The sockets take a train of datagrams sent with GSO as one message (`UDP_GRO`).
    pub gro_receivers: bool,
}

/// What the engine tells the orchestrator.
#[derive(Debug)]
pub enum EngineEvent {
    /// ICE + DTLS up.
    Connected { tag: u64, at: Instant },
    /// First RTP packet on a subscriber connection.
    FirstMedia { tag: u64, at: Instant },
    /// The connection failed or was closed by the remote.
    Failed { tag: u64, reason: String },
}

/// Counters of one subscriber connection.
#[derive(Debug, Clone, Default)]
pub struct SubSnap {
    pub tag: u64,
    pub packets: u64,
    pub bytes: u64,
    pub audio_packets: u64,
    pub video_packets: u64,
    /// Sum over streams of (highest - first + 1) sequence numbers.
    pub expected: u64,
    /// Packets counted toward `expected` (same as `packets`, kept apart for clarity).
    pub counted: u64,
    /// Sum over streams of (highest - first + 1) frame counters read from the stamps.
    pub frames_expected: u64,
    /// Frames whose stamp arrived (in order).
    pub frames: u64,
    /// Latency samples of this subscriber in the window: sum, max (µs), count.
    pub lat_sum_us: u64,
    pub lat_max_us: u64,
    pub lat_count: u64,
}

/// Counters of one publisher connection.
#[derive(Debug, Clone, Default)]
pub struct PubSnap {
    pub frames: u64,
    /// Frames written more than [`crate::media::LATE`] after due.
    pub late: u64,
}

/// The engine's state at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub subs: Vec<SubSnap>,
    pub pubs: Vec<PubSnap>,
    /// Stamp-to-arrival delays (µs) recorded since the window started, when taken; the
    /// top bit is set for video ([`VIDEO_BIT`]).
    pub latencies_us: Vec<u32>,
    /// The same delays less the generator's wait before the frame reached the kernel
    /// ([`crate::handoff`]): the latency the server added (top bit: video).
    pub added_latencies_us: Vec<u32>,
    /// Generator waits (µs) from a frame's stamp to its hand-off to the kernel, one per
    /// stamp written in the window.
    pub handoff_waits_us: Vec<u32>,
    pub latency_dropped: u64,
    /// Largest stamp-to-arrival delay (µs) since the previous snapshot (recording or not).
    pub recent_max_latency_us: u64,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub send_dropped: u64,
    /// CPU time of the engine thread.
    pub engine_cpu: Duration,
    pub conns: usize,
}

type Reply<T> = oneshot::Sender<anyhow::Result<T>>;

/// A publisher offer: the connection, its SDP offer, and the (mid, kind) of each track.
pub struct PublisherOffer {
    pub conn: ConnId,
    pub sdp: String,
    pub tracks: Vec<(String, Kind)>,
}

enum Cmd {
    NewPublisher {
        tag: u64,
        spec: PublishSpec,
        reply: Reply<PublisherOffer>,
    },
    AcceptAnswer {
        conn: ConnId,
        sdp: String,
        reply: Reply<()>,
    },
    NewSubscriber {
        tag: u64,
        reply: Reply<ConnId>,
    },
    AcceptOffer {
        conn: ConnId,
        sdp: String,
        reply: Reply<String>,
    },
    Close {
        conn: ConnId,
    },
    StartWindow {
        reply: oneshot::Sender<()>,
    },
    Snapshot {
        take_latencies: bool,
        reply: oneshot::Sender<Snapshot>,
    },
}

/// Cheap, cloneable handle to the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    tx: Sender<Cmd>,
    waker: Arc<Waker>,
}

impl EngineHandle {
    fn send(&self, cmd: Cmd) -> anyhow::Result<()> {
        self.tx
            .send(cmd)
            .map_err(|_| anyhow!("the media engine thread is gone"))?;
        self.waker.wake();
        Ok(())
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> anyhow::Result<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await
            .map_err(|_| anyhow!("the media engine thread is gone"))?
    }

    /// A send connection with the tracks of `spec`; returns its offer.
    pub async fn new_publisher(
        &self,
        tag: u64,
        spec: PublishSpec,
    ) -> anyhow::Result<PublisherOffer> {
        self.call(|reply| Cmd::NewPublisher { tag, spec, reply })
            .await
    }

    pub async fn accept_answer(&self, conn: ConnId, sdp: String) -> anyhow::Result<()> {
        self.call(|reply| Cmd::AcceptAnswer { conn, sdp, reply })
            .await
    }

    /// A receive connection (RTP mode) waiting for an offer.
    pub async fn new_subscriber(&self, tag: u64) -> anyhow::Result<ConnId> {
        self.call(|reply| Cmd::NewSubscriber { tag, reply }).await
    }

    /// Applies a remote offer and returns our answer.
    pub async fn accept_offer(&self, conn: ConnId, sdp: String) -> anyhow::Result<String> {
        self.call(|reply| Cmd::AcceptOffer { conn, sdp, reply })
            .await
    }

    pub fn close(&self, conn: ConnId) {
        let _ = self.send(Cmd::Close { conn });
    }

    /// Starts recording latency samples (drops earlier ones).
    pub async fn start_window(&self) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::StartWindow { reply: tx })?;
        rx.await
            .map_err(|_| anyhow!("the media engine thread is gone"))
    }

    pub async fn snapshot(&self, take_latencies: bool) -> anyhow::Result<Snapshot> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Snapshot {
            take_latencies,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| anyhow!("the media engine thread is gone"))
    }
}

/// The running engine: its handle and thread. Dropping the last handle stops it.
pub struct Engine {
    pub handle: EngineHandle,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Engine {
    /// Binds the sockets and starts the thread; engine events go to `events`.
    pub fn start(
        config: EngineConfig,
        events: tmpsc::UnboundedSender<EngineEvent>,
    ) -> anyhow::Result<Engine> {
        let mut sockets = Vec::new();
        for _ in 0..config.sockets.max(1) {
            sockets.push(
                MultiSocket::bind(Ipv4Addr::UNSPECIFIED, config.gro_receivers)
                    .context("binding a UDP socket")?,
            );
        }
        let waker = Arc::new(Waker::new().context("eventfd")?);
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let base = Instant::now();
        let mut state = State {
            config: config.clone(),
            sockets,
            waker: waker.clone(),
            rx,
            events,
            conns: Vec::new(),
            heap: BinaryHeap::new(),
            base,
            recording: false,
            latencies: Vec::new(),
            added: Vec::new(),
            handoffs: Handoffs::default(),
            latency_dropped: 0,
            recent_max_latency_us: 0,
            rx_scratch: Vec::new(),
            datagrams_in: 0,
            frames: Vec::new(),
            next_feedback: Instant::now(),
            feedback_slots: vec![Vec::new(); FEEDBACK_SLOTS],
            feedback_slot: 0,
            next_frame_due: None,
            stop: stop.clone(),
            cert: str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate(),
        };
        let thread = std::thread::Builder::new()
            .name("load-media".into())
            .spawn(move || state.run())
            .context("spawning the media engine thread")?;
        Ok(Engine {
            handle: EngineHandle { tx, waker },
            thread: Some(thread),
            stop,
        })
    }

    /// Stops the thread and returns its result.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.waker.wake();
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow!("the media engine thread panicked"))?,
            None => Ok(()),
        }
    }
}

/// Per-SSRC receive counters.
#[derive(Debug)]
struct StreamStat {
    ssrc: u32,
    kind: Kind,
    first: u64,
    max: u64,
    received: u64,
    /// Frame counters (from the stamps): first, highest, and how many arrived in order.
    first_frame: Option<u32>,
    max_frame: u32,
    frames: u64,
    /// RTP time of the newest packet (light path: a new time starts a frame).
    last_time: Option<u32>,
}

#[derive(Debug, Default)]
struct SubState {
    streams: Vec<StreamStat>,
    packets: u64,
    bytes: u64,
    audio_packets: u64,
    video_packets: u64,
    got_media: bool,
    /// Latency while recording: sum and max (µs) and sample count.
    lat_sum_us: u64,
    lat_max_us: u64,
    lat_count: u64,
    /// Light mode: where DTLS leaves the SRTP keys, what the offer said, and the receive
    /// side once connected.
    keys: Option<KeySlot>,
    offer: Option<OfferInfo>,
    light: Option<Box<Light>>,
}

enum Role {
    Publisher {
        gen: Generator,
        pending: Option<SdpPendingOffer>,
    },
    Subscriber(SubState),
}

struct Conn {
    tag: u64,
    rtc: Rtc,
    local: SocketAddrV4,
    sock: usize,
    next_timeout: Instant,
    /// Earliest heap entry pending for this connection.
    scheduled: Option<Instant>,
    connected: bool,
    dead: bool,
    role: Role,
}

struct State {
    config: EngineConfig,
    sockets: Vec<MultiSocket>,
    waker: Arc<Waker>,
    rx: Receiver<Cmd>,
    events: tmpsc::UnboundedSender<EngineEvent>,
    conns: Vec<Option<Conn>>,
    heap: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Zero of the stamp clock.
    base: Instant,
    recording: bool,
    latencies: Vec<u32>,
    /// Latency samples less the generator's own wait ([`Snapshot::added_latencies_us`]).
    added: Vec<u32>,
    /// When publishers' frames were handed to the kernel.
    handoffs: Handoffs,
    latency_dropped: u64,
    recent_max_latency_us: u64,
    /// A received message copied out, to be cut into datagrams (see `on_batch`).
    rx_scratch: Vec<u8>,
    datagrams_in: u64,
    /// Scratch for due frames.
    frames: Vec<FrameWrite>,
    /// When the next slot of light subscribers sends its feedback.
    next_feedback: Instant,
    /// Light subscribers by feedback slot; a slot's turn comes every
    /// `FEEDBACK_INTERVAL / FEEDBACK_SLOTS`.
    feedback_slots: Vec<Vec<ConnId>>,
    feedback_slot: usize,
    next_frame_due: Option<Instant>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// One DTLS certificate for every connection: generating one per `Rtc` (str0m's
    /// default) costs milliseconds of the one engine thread per join.
    cert: Option<str0m::config::DtlsCert>,
}

impl State {
    fn run(&mut self) -> anyhow::Result<()> {
        let mut fds: Vec<i32> = self.sockets.iter().map(|s| s.fd()).collect();
        fds.push(self.waker.fd());
        loop {
            if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            loop {
                match self.rx.try_recv() {
                    Ok(cmd) => self.on_command(cmd),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            let now = Instant::now();
            self.write_due_frames(now);
            self.fire_timers(now);
            if self.config.light_subscribers && now >= self.next_feedback {
                self.next_feedback = now + FEEDBACK_INTERVAL / FEEDBACK_SLOTS as u32;
                self.send_feedback();
            }
            self.flush_sockets();

            let mut got = 0usize;
            for s in 0..self.sockets.len() {
                for _ in 0..MAX_BATCHES_PER_SOCKET {
                    let n = self.sockets[s]
                        .recv_batch()
                        .context("receiving on a UDP socket")?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                    self.on_batch(s, n);
                    // Frames due while this batch was read go out now, not after every
                    // socket is drained: a fan-out burst takes the generator milliseconds
                    // to read, and frames held back that long leave together, in step.
                    self.write_due_frames(Instant::now());
                    self.flush_sockets();
                    if n < net::BATCH {
                        break;
                    }
                }
            }
            if got > 0 {
                continue;
            }
            let now = Instant::now();
            let mut deadline = now + MAX_SLEEP;
            if let Some(Reverse((t, _))) = self.heap.peek() {
                deadline = deadline.min(*t);
            }
            if let Some(t) = self.next_frame_due {
                deadline = deadline.min(t);
            }
            if self.config.light_subscribers {
                deadline = deadline.min(self.next_feedback);
            }
            let sleep = deadline.saturating_duration_since(now);
            if !sleep.is_zero() {
                net::wait_readable(&fds, sleep);
                self.waker.drain();
            }
        }
        for c in self.conns.iter_mut().flatten() {
            c.rtc.disconnect();
        }
        Ok(())
    }

    fn clock_us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_micros() as u64
    }

    /// The local address of connection slot `id`.
    fn address_of(&self, id: ConnId) -> anyhow::Result<(SocketAddrV4, usize)> {
        let k = self.sockets.len();
        let ip_index = (id / k) as u32;
        if ip_index >= self.config.ip_count {
            return Err(anyhow!(
                "out of local addresses: {} IPs x {} sockets used up; widen --local-net",
                self.config.ip_count,
                k
            ));
        }
        let ip = Ipv4Addr::from(u32::from(self.config.ip_base) + ip_index);
        let sock = id % k;
        Ok((SocketAddrV4::new(ip, self.sockets[sock].port()), sock))
    }

    /// Stores `rtc` in slot `self.conns.len()`, first adding the host candidate of that
    /// slot unless the caller did already (to put it in an offer).
    fn new_conn(
        &mut self,
        tag: u64,
        mut rtc: Rtc,
        role: Role,
        has_candidate: bool,
    ) -> anyhow::Result<ConnId> {
        let id = self.conns.len();
        let (local, sock) = self.address_of(id)?;
        if !has_candidate {
            add_host_candidate(&mut rtc, local)?;
        }
        self.conns.push(Some(Conn {
            tag,
            rtc,
            local,
            sock,
            next_timeout: Instant::now(),
            scheduled: None,
            connected: false,
            dead: false,
            role,
        }));
        Ok(id)
    }

    /// A builder with the shared certificate.
    fn rtc_config(&self) -> str0m::RtcConfig {
        match &self.cert {
            Some(c) => Rtc::builder().set_dtls_cert(c.clone()),
            None => Rtc::builder(),
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> anyhow::Result<&mut Conn> {
        self.conns
            .get_mut(id)
            .and_then(|c| c.as_mut())
            .ok_or_else(|| anyhow!("no connection {id}"))
    }

    fn on_command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::NewPublisher { tag, spec, reply } => {
                let r = self.new_publisher(tag, spec);
                let _ = reply.send(r);
            }
            Cmd::AcceptAnswer { conn, sdp, reply } => {
                let r = self.accept_answer(conn, &sdp);
                self.poll(conn);
                let _ = reply.send(r);
            }
            Cmd::NewSubscriber { tag, reply } => {
                let config = self
                    .rtc_config()
                    .set_rtp_mode(true)
                    .clear_codecs()
                    .enable_opus(true, false)
                    .enable_vp8(true);
                let mut state = SubState::default();
                let rtc = if self.config.light_subscribers {
                    // Our DTLS provider, which hands over the SRTP keys (`light`).
                    let config = config.set_crypto_provider(dtls::crypto_provider());
                    let (rtc, keys) = dtls::capture_keys(|| config.build(Instant::now()));
                    state.keys = Some(keys);
                    rtc
                } else {
                    config.build(Instant::now())
                };
                let r = self.new_conn(tag, rtc, Role::Subscriber(state), false);
                let _ = reply.send(r);
            }
            Cmd::AcceptOffer { conn, sdp, reply } => {
                let r = self.accept_offer(conn, &sdp);
                self.poll(conn);
                let _ = reply.send(r);
            }
            Cmd::Close { conn } => {
                if let Some(c) = self.conns.get_mut(conn).and_then(|c| c.as_mut()) {
                    c.rtc.disconnect();
                    c.dead = true;
                }
                self.poll(conn);
                if let Some(slot) = self.conns.get_mut(conn) {
                    *slot = None;
                }
            }
            Cmd::StartWindow { reply } => {
                self.recording = true;
                for c in self.conns.iter_mut().flatten() {
                    if let Role::Subscriber(s) = &mut c.role {
                        s.lat_sum_us = 0;
                        s.lat_max_us = 0;
                        s.lat_count = 0;
                    }
                }
                self.latencies.clear();
                self.added.clear();
                self.handoffs.clear_recorded();
                self.latency_dropped = 0;
                let _ = reply.send(());
            }
            Cmd::Snapshot {
                take_latencies,
                reply,
            } => {
                let snap = self.snapshot(take_latencies);
                let _ = reply.send(snap);
            }
        }
    }

    fn new_publisher(&mut self, tag: u64, spec: PublishSpec) -> anyhow::Result<PublisherOffer> {
        let now = Instant::now();
        let mut rtc = self
            .rtc_config()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        let (local, _) = self.address_of(self.conns.len())?;
        // The offer carries the candidate, so it is added before the offer is built.
        add_host_candidate(&mut rtc, local)?;
        let stream_id = Some(format!("load-{tag}"));
        let mut api = rtc.sdp_api();
        let mut tracks = Vec::new();
        if spec.audio {
            let mid = api.add_media(
                MediaKind::Audio,
                Direction::SendOnly,
                stream_id.clone(),
                Some("mic".into()),
                None,
            );
            tracks.push((mid, Kind::Audio));
        }
        if spec.video {
            let simulcast = spec.simulcast.then(|| Simulcast {
                send: offer_rids(spec.rids_high_first)
                    .iter()
                    .map(|r| SimulcastLayer::new(r))
                    .collect(),
                recv: vec![],
            });
            let mid = api.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                stream_id,
                Some("webcam".into()),
                simulcast,
            );
            tracks.push((mid, Kind::Video));
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| anyhow!("nothing to publish: neither audio nor video"))?;
        let mut gen = Generator::new(spec);
        for (mid, kind) in &tracks {
            gen.add_track(*mid, *kind, now);
        }
        let conn = self.new_conn(
            tag,
            rtc,
            Role::Publisher {
                gen,
                pending: Some(pending),
            },
            true,
        )?;
        Ok(PublisherOffer {
            conn,
            sdp: offer.to_sdp_string(),
            tracks: tracks
                .into_iter()
                .map(|(m, k)| (m.to_string(), k))
                .collect(),
        })
    }

    fn accept_answer(&mut self, conn: ConnId, sdp: &str) -> anyhow::Result<()> {
        let c = self.conn_mut(conn)?;
        let Role::Publisher { pending, .. } = &mut c.role else {
            return Err(anyhow!("connection {conn} is not a publisher"));
        };
        let pending = pending
            .take()
            .ok_or_else(|| anyhow!("connection {conn}: no offer pending"))?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| anyhow!("parse answer: {e}"))?;
        c.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| anyhow!("accept answer: {e}"))?;
        Ok(())
    }

    fn accept_offer(&mut self, conn: ConnId, sdp: &str) -> anyhow::Result<String> {
        let light = self.config.light_subscribers;
        let c = self.conn_mut(conn)?;
        if let (true, Role::Subscriber(s)) = (light, &mut c.role) {
            let info = light::offer_info(sdp);
            if let Some(l) = s.light.as_mut() {
                // A renegotiation (more consumers): same ids, maybe more RTX types.
                l.info = info.clone();
            }
            s.offer = Some(info);
        }
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| anyhow!("parse offer: {e}"))?;
        let answer = c
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| anyhow!("accept offer: {e}"))?;
        Ok(answer.to_sdp_string())
    }

    fn snapshot(&mut self, take_latencies: bool) -> Snapshot {
        let mut snap = Snapshot {
            datagrams_in: self.datagrams_in,
            datagrams_out: self.sockets.iter().map(|s| s.tx_sent).sum(),
            send_dropped: self.sockets.iter().map(|s| s.tx_dropped).sum(),
            engine_cpu: Duration::ZERO,
            latency_dropped: self.latency_dropped,
            recent_max_latency_us: std::mem::take(&mut self.recent_max_latency_us),
            ..Snapshot::default()
        };
        for c in self.conns.iter().flatten() {
            snap.conns += 1;
            match &c.role {
                Role::Publisher { gen, .. } => snap.pubs.push(PubSnap {
                    frames: gen.frames,
                    late: gen.late,
                }),
                Role::Subscriber(s) => snap.subs.push(SubSnap {
                    tag: c.tag,
                    packets: s.packets,
                    bytes: s.bytes,
                    audio_packets: s.audio_packets,
                    video_packets: s.video_packets,
                    expected: s.streams.iter().map(|st| st.max - st.first + 1).sum(),
                    counted: s.streams.iter().map(|st| st.received).sum(),
                    frames_expected: s
                        .streams
                        .iter()
                        .filter_map(|st| {
                            st.first_frame
                                .map(|f| u64::from(st.max_frame.wrapping_sub(f)) + 1)
                        })
                        .sum(),
                    frames: s.streams.iter().map(|st| st.frames).sum(),
                    lat_sum_us: s.lat_sum_us,
                    lat_max_us: s.lat_max_us,
                    lat_count: s.lat_count,
                }),
            }
        }
        if take_latencies {
            snap.latencies_us = std::mem::take(&mut self.latencies);
            snap.added_latencies_us = std::mem::take(&mut self.added);
            snap.handoff_waits_us = self.handoffs.take_recorded();
            self.recording = false;
        }
        snap.engine_cpu = net::thread_cpu();
        snap
    }

    // ------------------------------------------------------------------ timers and frames

    fn schedule(&mut self, id: ConnId, at: Instant) {
        let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else {
            return;
        };
        if c.scheduled.is_none_or(|s| at < s) {
            c.scheduled = Some(at);
            self.heap.push(Reverse((at, id)));
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.heap.peek().copied() {
            if t > now {
                break;
            }
            self.heap.pop();
            let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else {
                continue;
            };
            if c.scheduled != Some(t) {
                continue; // stale entry
            }
            c.scheduled = None;
            if c.dead {
                continue;
            }
            if c.next_timeout <= now {
                if let Err(e) = c.rtc.handle_input(Input::Timeout(now)) {
                    self.fail(id, format!("timeout input: {e}"));
                    continue;
                }
                self.poll(id);
            } else {
                let at = c.next_timeout;
                self.schedule(id, at);
            }
        }
    }

    /// Writes every publisher's frames that are due at `now`, if any is.
    fn write_due_frames(&mut self, now: Instant) {
        if self.next_frame_due.is_none_or(|t| t > now) {
            return;
        }
        let clock = self.clock_us(now);
        let mut next: Option<Instant> = None;
        for id in 0..self.conns.len() {
            let Some(c) = self.conns[id].as_mut() else {
                continue;
            };
            if c.dead || !c.connected {
                continue;
            }
            let Role::Publisher { gen, .. } = &mut c.role else {
                continue;
            };
            let mut frames = std::mem::take(&mut self.frames);
            gen.due_frames(now, clock, &mut frames);
            if let Some(due) = gen.next_due() {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            let wrote = !frames.is_empty();
            for f in frames.drain(..) {
                write_frame(&mut c.rtc, f, now);
            }
            self.frames = frames;
            if wrote {
                self.handoffs.written(clock);
                self.poll(id);
            }
        }
        self.next_frame_due = next;
    }

    // ------------------------------------------------------------------ network

    fn on_batch(&mut self, sock: usize, n: usize) {
        let k = self.sockets.len();
        let base = u32::from(self.config.ip_base);
        let now = Instant::now();
        let wall_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // One message may hold several datagrams (`UDP_GRO`): they are copied out so that
        // each can be handled with the engine borrowed mutably.
        let mut scratch = std::mem::take(&mut self.rx_scratch);
        for i in 0..n {
            let Some(d) = self.sockets[sock].received(i) else {
                continue;
            };
            let ip_index = u32::from(d.dest_ip).wrapping_sub(base) as usize;
            let id = ip_index * k + sock;
            let (source, dest_ip, kernel_time) = (d.source, d.dest_ip, d.kernel_time);
            let size = d.datagram_size();
            scratch.clear();
            scratch.extend_from_slice(d.data);
            for data in scratch.chunks(size) {
                self.datagrams_in += 1;
                self.on_datagram(id, source, dest_ip, kernel_time, data, now, wall_now);
            }
        }
        self.rx_scratch = scratch;
    }

    /// One datagram from `source` to connection `id` (whose address is `dest_ip`).
    #[allow(clippy::too_many_arguments)]
    fn on_datagram(
        &mut self,
        id: ConnId,
        source: SocketAddrV4,
        dest_ip: Ipv4Addr,
        kernel_time: Option<Duration>,
        data: &[u8],
        now: Instant,
        wall_now: Duration,
    ) {
        let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else {
            return;
        };
        if c.dead || *c.local.ip() != dest_ip || data.is_empty() {
            return;
        }
        // The kernel's arrival time, moved onto the monotonic clock.
        let arrived = kernel_time
            .and_then(|k| now.checked_sub(wall_now.saturating_sub(k)))
            .unwrap_or(now);
        if let Role::Subscriber(SubState { light: Some(_), .. }) = &c.role {
            if (128..192).contains(&data[0]) {
                // SRTP, or the server's SRTCP (sender reports: not needed here).
                if !(data.len() > 1 && (192..224).contains(&data[1])) {
                    self.on_light_rtp(id, data, source, arrived);
                }
                return;
            }
        }
        let Ok(rx) = Receive::new(
            Protocol::Udp,
            SocketAddr::V4(source),
            SocketAddr::V4(c.local),
            data,
        ) else {
            return;
        };
        if let Err(e) = c.rtc.handle_input(Input::Receive(arrived, rx)) {
            self.fail(id, format!("input: {e}"));
            return;
        }
        self.poll(id);
    }

    fn flush_sockets(&mut self) {
        if self.handoffs.pending() {
            let now = self.clock_us(Instant::now());
            self.handoffs.flushed(now, self.recording);
        }
        for s in &mut self.sockets {
            if s.pending() > 0 {
                s.flush();
            }
        }
    }

    fn fail(&mut self, id: ConnId, reason: String) {
        if let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) {
            if !c.dead {
                c.dead = true;
                c.rtc.disconnect();
                let _ = self.events.send(EngineEvent::Failed { tag: c.tag, reason });
            }
        }
    }

    /// Drains one connection's output: datagrams to its socket, events, next timeout.
    fn poll(&mut self, id: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else {
                return;
            };
            if !c.rtc.is_alive() {
                if !c.dead {
                    self.fail(id, "connection closed".into());
                }
                return;
            }
            match c.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    c.next_timeout = t;
                    self.schedule(id, t);
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if let SocketAddr::V4(dest) = t.destination {
                        let src = *c.local.ip();
                        self.sockets[c.sock].queue(src, dest, t.contents.into());
                    }
                }
                Ok(Output::Event(e)) => self.on_event(id, e),
                Err(e) => {
                    self.fail(id, format!("poll: {e}"));
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, id: ConnId, e: Event) {
        let now = Instant::now();
        let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else {
            return;
        };
        match e {
            Event::Connected => {
                c.connected = true;
                if let Role::Subscriber(s) = &mut c.role {
                    let keys = s.keys.as_ref().and_then(|k| k.keys());
                    if let (Some(Ok(keys)), Some(info)) = (keys, s.offer.clone()) {
                        match Light::new(&keys, info) {
                            Ok(l) => {
                                s.light = Some(Box::new(l));
                                let slot = rand::random::<usize>() % FEEDBACK_SLOTS;
                                self.feedback_slots[slot].push(id);
                            }
                            Err(e) => {
                                let tag = c.tag;
                                let _ = self.events.send(EngineEvent::Failed {
                                    tag,
                                    reason: format!("light subscriber: {e}"),
                                });
                            }
                        }
                    }
                }
                let _ = self.events.send(EngineEvent::Connected {
                    tag: c.tag,
                    at: now,
                });
                if let Role::Publisher { gen, .. } = &mut c.role {
                    gen.start(now);
                    let due = gen.next_due();
                    if let Some(d) = due {
                        self.next_frame_due = Some(self.next_frame_due.map_or(d, |n| n.min(d)));
                    }
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                c.connected = false;
                let tag = c.tag;
                let _ = self.events.send(EngineEvent::Failed {
                    tag,
                    reason: "ICE disconnected".into(),
                });
            }
            Event::KeyframeRequest(req) => {
                if let Role::Publisher { gen, .. } = &mut c.role {
                    gen.request_keyframe(req.mid);
                }
            }
            Event::RtpPacket(p) => {
                let stamp = find_stamp(&p.payload, p.header.marker);
                let mid = p.header.ext_vals.mid;
                self.count_packet(
                    id,
                    *p.header.ssrc,
                    *p.seq_no,
                    mid,
                    p.payload.len(),
                    stamp,
                    p.timestamp,
                );
            }
            _ => {}
        }
    }

    /// Counts a subscriber's RTP packet: loss from its sequence number, latency and frame
    /// loss from the stamp when the packet carries one.
    #[allow(clippy::too_many_arguments)]
    fn count_packet(
        &mut self,
        id: ConnId,
        ssrc: u32,
        seq: u64,
        mid: Option<Mid>,
        payload_len: usize,
        stamp: Option<Stamp>,
        arrived: Instant,
    ) {
        let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else {
            return;
        };
        let Role::Subscriber(s) = &mut c.role else {
            return;
        };
        let i = match s.streams.iter().position(|st| st.ssrc == ssrc) {
            Some(i) => i,
            None => {
                let kind = stream_kind(&c.rtc, mid);
                s.streams.push(StreamStat {
                    ssrc,
                    kind,
                    first: seq,
                    max: seq,
                    received: 0,
                    first_frame: None,
                    max_frame: 0,
                    frames: 0,
                    last_time: None,
                });
                s.streams.len() - 1
            }
        };
        let st = &mut s.streams[i];
        st.first = st.first.min(seq);
        st.max = st.max.max(seq);
        st.received += 1;
        let kind = st.kind;
        s.packets += 1;
        s.bytes += payload_len as u64;
        match kind {
            Kind::Audio => s.audio_packets += 1,
            Kind::Video => s.video_packets += 1,
        }
        if !s.got_media {
            s.got_media = true;
            let _ = self.events.send(EngineEvent::FirstMedia {
                tag: c.tag,
                at: arrived,
            });
        }
        let Some(stamp) = stamp else {
            return;
        };
        let st = &mut s.streams[i];
        match st.first_frame {
            None => {
                st.first_frame = Some(stamp.seq);
                st.max_frame = stamp.seq;
                st.frames = 1;
            }
            Some(_) if stamp.seq > st.max_frame => {
                st.max_frame = stamp.seq;
                st.frames += 1;
            }
            // A duplicate or a frame older than one already seen: not counted.
            Some(_) => {}
        }
        let arrived = arrived.saturating_duration_since(self.base);
        let delay = (arrived.as_micros() as u64).saturating_sub(stamp.sent_at_us);
        self.recent_max_latency_us = self.recent_max_latency_us.max(delay);
        if self.recording {
            s.lat_sum_us += delay;
            s.lat_max_us = s.lat_max_us.max(delay);
            s.lat_count += 1;
            if self.latencies.len() < MAX_LATENCY_SAMPLES {
                let wait = self.handoffs.wait_of(stamp.sent_at_us).unwrap_or(0);
                let added = delay.saturating_sub(u64::from(wait));
                let bit = if kind == Kind::Video { VIDEO_BIT } else { 0 };
                let sample = |us: u64| us.min(u64::from(VIDEO_BIT - 1)) as u32 | bit;
                self.latencies.push(sample(delay));
                self.added.push(sample(added));
            } else {
                self.latency_dropped += 1;
            }
        }
    }

    /// An SRTP packet for a light subscriber: header read in the clear, payload decrypted
    /// only when the packet starts a frame (to read its stamp).
    fn on_light_rtp(&mut self, id: ConnId, data: &[u8], source: SocketAddrV4, arrived: Instant) {
        let arrival_us = arrived.saturating_duration_since(self.base).as_micros() as i64;
        let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else {
            return;
        };
        let Role::Subscriber(s) = &mut c.role else {
            return;
        };
        let Some(l) = s.light.as_mut() else {
            return;
        };
        l.server = Some(source);
        let Some(h) = light::parse_header(data, &l.info) else {
            return;
        };
        if let Some(seq) = h.twcc {
            l.on_transport_seq(seq, h.ssrc, arrival_us);
        }
        if l.info.rtx_pts.contains(&h.pt) {
            // Resends and probe padding: transport feedback only.
            return;
        }
        let mid = h
            .mid
            .and_then(|m| std::str::from_utf8(m).ok())
            .map(Mid::from);
        let st = s.streams.iter_mut().find(|st| st.ssrc == h.ssrc);
        let seq = light::extend(st.as_ref().map(|st| st.max), h.seq);
        l.on_media(h.ssrc, seq);
        let starts_frame = st.as_ref().is_none_or(|st| st.last_time != Some(h.time));
        if let Some(st) = st {
            st.last_time = Some(h.time);
        }
        let tag_len = 16;
        let payload_len = data.len().saturating_sub(h.len + tag_len);
        let stamp = if starts_frame {
            l.open(data, h.len, seq)
                .and_then(|plain| find_stamp(plain, h.marker))
        } else {
            None
        };
        self.count_packet(id, h.ssrc, seq, mid, payload_len, stamp, arrived);
        if starts_frame {
            if let Some(Role::Subscriber(s)) = self
                .conns
                .get_mut(id)
                .and_then(|c| c.as_mut())
                .map(|c| &mut c.role)
            {
                if let Some(st) = s.streams.iter_mut().find(|st| st.ssrc == h.ssrc) {
                    st.last_time = Some(h.time);
                }
            }
        }
    }

    /// Sends the feedback of the light subscribers of the slot whose turn it is.
    fn send_feedback(&mut self) {
        let slot = self.feedback_slot;
        self.feedback_slot = (slot + 1) % FEEDBACK_SLOTS;
        let mut ids = std::mem::take(&mut self.feedback_slots[slot]);
        ids.retain(|&id| {
            let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else {
                return false;
            };
            if c.dead {
                return false;
            }
            let Role::Subscriber(s) = &mut c.role else {
                return false;
            };
            let Some(l) = s.light.as_mut() else {
                return false;
            };
            if let (Some(server), Some(packet)) = (l.server, l.feedback()) {
                self.sockets[c.sock].queue(*c.local.ip(), server, packet);
            }
            true
        });
        self.feedback_slots[slot] = ids;
    }
}

/// Kind of the m-line a received packet belongs to (video when unknown).
fn stream_kind(rtc: &Rtc, mid: Option<Mid>) -> Kind {
    match mid.and_then(|m| rtc.media(m)).map(|m| m.kind()) {
        Some(MediaKind::Audio) => Kind::Audio,
        _ => Kind::Video,
    }
}

/// Hands one frame to str0m's writer for its mid (and rid).
fn write_frame(rtc: &mut Rtc, f: FrameWrite, now: Instant) {
    let Some(writer) = rtc.writer(f.mid) else {
        return;
    };
    let codec = match f.kind {
        Kind::Audio => Codec::Opus,
        Kind::Video => Codec::Vp8,
    };
    let Some(pt) = writer
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
    else {
        return;
    };
    let mut writer = match f.rid {
        Some(rid) => writer.rid(rid),
        None => writer,
    };
    if f.kind == Kind::Audio {
        writer = writer.audio_level(-30, true);
    }
    // A rejected rid or codec is not fatal for the run; the counters show it.
    let _ = writer.write(pt, now, f.rtp_time, f.data);
}

/// Adds the host candidate `local` (UDP) to `rtc`.
fn add_host_candidate(rtc: &mut Rtc, local: SocketAddrV4) -> anyhow::Result<()> {
    let candidate = Candidate::host(SocketAddr::V4(local), "udp")
        .map_err(|e| anyhow!("host candidate {local}: {e}"))?;
    rtc.add_local_candidate(candidate);
    Ok(())
}

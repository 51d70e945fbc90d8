//! One media worker: a thread that owns a UDP socket and every transport (connection) of the
//! rooms assigned to it. It routes each datagram to its transport, forwards media from
//! producers to consumers with plain function calls inside its loop, negotiates subscriber
//! connections, picks simulcast layers and detects the active speaker. It does not know
//! about WebSockets or room membership rules: the control plane tells it what to do through
//! [`WorkerCommand`]s and hears back through [`MediaEvent`]s.
//!
//! str0m runs each publisher's connection (ICE, DTLS, SDP) and receives its media. A
//! subscriber's connection is the worker's own (`sfu::recv`: ICE-lite with str0m's public
//! agent, DTLS, the offer and answer): what goes to subscribers the worker writes and
//! encrypts itself (`sfu::egress`), once that connection's DTLS has produced its keys.
//!
//! This file holds the loop, its state (transports, producers, consumers) and the polling of
//! the connections; each other job of the one loop has its own file:
//! - [`net`]: sockets, `ppoll`, ICE-TCP threads, routing each datagram to its transport (and
//!   a subscriber's RTCP to its send side);
//! - [`forward`]: the packet path from a producer's RTP packet to its consumers' send sides,
//!   NACKs answered from the producer's history, keyframe requests;
//! - [`layers`]: simulcast layer choice per subscriber connection;
//! - [`negotiate`]: SDP offers to subscribers and their answers;
//! - [`commands`]: what the control plane asks ([`WorkerCommand`]);
//! - [`consumers`]: the consumers in a slab, reached by slot on the packet path;
//! - [`hostile`]: hostile datagrams against the routing, for fuzzing.

mod commands;
mod consumers;
mod forward;
#[doc(hidden)]
pub mod hostile;
mod layers;
mod negotiate;
mod net;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Recipient;
use rustc_hash::FxHashMap;
use str0m::ice::StunMessage;
use str0m::media::{Mid, Pt, Rid};
use str0m::net::Protocol;
use str0m::rtp::Ssrc;
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tracing::{debug, info, warn};

use super::batch::{RecvBatch, SendBatch, MAX_BATCH};
use super::dtls::KeySlot;
use super::egress::{self, Egress, Requests};
use super::history::{PacketHistory, SentLog};
use super::keyframes::KeyframeGate;
use super::messages::{
    MediaError, MediaEvent, Reply, RoomMediaEvent, TransportState, WorkerCommand, WorkerStats,
};
use super::recv::conn::{ConnOutput, LocalCert, RecvConn};
use super::rewrite::Rewriter;
use super::simulcast::LayerStats;
use super::speaker::SpeakerDetector;
use super::timers::Timers;
use crate::ids::{ConsumerId, PeerId, ProducerId, RoomId};
use crate::model::{Direction, MediaKind, Source};
use consumers::{CKey, Consumers};
use net::{
    bind_in_range, dont_fragment, grow_buffer, spawn_tcp_acceptor, wait_readable, TcpEvent,
    WorkerIo, SOCKET_BUFFER,
};

/// Longest the loop sleeps without looking at its command queue (commands also wake it).
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Reads tried in one loop turn when the socket reports errors (ICMP errors for earlier
/// sends, one per call) before its datagrams; the first read that returns datagrams ends it.
const RECV_ATTEMPTS: usize = 4;
/// How often the simulcast layers of each recv transport are re-chosen. Each transport has
/// its own phase in the interval (`layers::phase`), so a worker with a thousand
/// subscribers does not re-choose them all in one turn (~1.5 ms in which no packet moved).
const LAYER_INTERVAL: Duration = Duration::from_millis(500);
/// How often the active speaker is re-evaluated.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(300);

/// Settings a worker needs from the server configuration.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Address the UDP socket binds.
    pub listen_ip: IpAddr,
    /// Address put in ICE candidates.
    pub announced_ip: IpAddr,
    /// Port range to bind in (first free port wins).
    pub port_range: (u16, u16),
    /// Starting bandwidth estimate of subscriber connections.
    pub initial_bitrate: u64,
    /// How long requests wait for the worker.
    pub request_timeout: Duration,
}

/// The control plane's handle on a worker: cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    index: usize,
    /// Command queue; the worker thread owns the receiving end until it exits.
    tx: Sender<WorkerCommand>,
    /// Socket used only to wake the worker when a command is queued.
    poke: Arc<UdpSocket>,
    /// The worker's socket address as reachable from the poke socket.
    poke_target: SocketAddr,
    /// The worker's bound socket address.
    local_addr: SocketAddr,
    request_timeout: Duration,
    /// Set to stop the loop (server shutdown).
    stop: Arc<AtomicBool>,
}

impl WorkerHandle {
    /// Index of the worker (0-based), for logs.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The UDP address the worker's socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How long [`Self::request`] waits for a reply (`requestTimeout`).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Queues a command and wakes the worker.
    pub fn send(&self, cmd: WorkerCommand) -> Result<(), MediaError> {
        self.tx.send(cmd).map_err(|_| MediaError::WorkerGone)?;
        // A lost wake-up only delays the command until the next loop turn (<= MAX_SLEEP).
        let _ = self.poke.send_to(&[0], self.poke_target);
        Ok(())
    }

    /// Sends a request built by `make` and waits for its reply, up to `requestTimeout`.
    pub async fn request<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> WorkerCommand,
    ) -> Result<T, MediaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(make(tx))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(MediaError::WorkerGone),
            Err(_) => Err(MediaError::Timeout),
        }
    }

    /// Asks the worker thread to exit.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.poke.send_to(&[0], self.poke_target);
    }
}

/// Binds a socket in the port range and starts a worker thread on it.
pub fn spawn(
    index: usize,
    settings: &WorkerSettings,
) -> std::io::Result<(WorkerHandle, JoinHandle<()>)> {
    let (socket, listener) = bind_in_range(settings.listen_ip, settings.port_range)?;
    let local_addr = socket.local_addr()?;
    let (rcv, snd) = (
        grow_buffer(&socket, libc::SO_RCVBUF, libc::SO_RCVBUFFORCE),
        grow_buffer(&socket, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE),
    );
    if !dont_fragment(&socket) {
        warn!(
            worker = index,
            "the media socket does not take Don't Fragment (IP_MTU_DISCOVER); the kernel may \
             fragment media packets on paths with a small MTU"
        );
    }
    if rcv < SOCKET_BUFFER {
        warn!(
            worker = index,
            bytes = rcv,
            "the media socket's receive buffer stays small; bursts may be dropped. Raise \
             net.core.rmem_max (sysctl) to at least {SOCKET_BUFFER} or run with CAP_NET_ADMIN"
        );
    }
    debug!(
        worker = index,
        receive = rcv,
        send = snd,
        "media socket buffers"
    );
    let poke_ip = if settings.listen_ip.is_unspecified() {
        match settings.listen_ip {
            IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        settings.listen_ip
    };
    let poke_target = SocketAddr::new(poke_ip, local_addr.port());
    let poke_bind = match poke_ip {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let poke = UdpSocket::bind(poke_bind)?;
    poke.connect(poke_target)?;
    let poke_source = poke.local_addr()?;
    let (tx, rx) = mpsc::channel();
    let (tcp_tx, tcp_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let candidate_addr = SocketAddr::new(settings.announced_ip, local_addr.port());
    let poke = Arc::new(poke);
    spawn_tcp_acceptor(index, listener, tcp_tx, poke.clone(), stop.clone())?;
    let io = WorkerIo {
        socket,
        candidate_addr,
        poke_source,
        tcp_rx,
    };
    let mut worker = Worker::new(index, io, rx, settings.initial_bitrate, stop.clone());
    let thread = std::thread::Builder::new()
        .name(format!("media-worker-{index}"))
        .spawn(move || worker.run())?;
    info!(worker = index, %local_addr, announced = %candidate_addr, "media worker started (UDP and ICE-TCP)");
    Ok((
        WorkerHandle {
            index,
            tx,
            poke,
            poke_target,
            local_addr,
            request_timeout: settings.request_timeout,
            stop,
        },
        thread,
    ))
}

/// Key of a transport inside one worker.
type TKey = u64;

/// An offer of a recv transport waiting for the client's answer.
struct InFlight {
    consumers: Vec<ConsumerId>,
}

/// A transport's connection: str0m's `Rtc` receives a publisher's media; a subscriber's
/// connection is the worker's own [`RecvConn`] (ICE, DTLS, SDP), as everything it sends is
/// the egress'.
enum Conn {
    Send(Box<Rtc>),
    Recv(Box<RecvConn>),
    /// A recv connection that could not be made (no DTLS certificate or configuration):
    /// closed from the start, so the peer hears its transport closed.
    Broken,
}

impl Conn {
    fn is_alive(&self) -> bool {
        match self {
            Conn::Send(rtc) => rtc.is_alive(),
            Conn::Recv(c) => c.is_alive(),
            Conn::Broken => false,
        }
    }

    fn disconnect(&mut self) {
        match self {
            Conn::Send(rtc) => rtc.disconnect(),
            Conn::Recv(c) => c.disconnect(),
            Conn::Broken => {}
        }
    }

    /// True when the datagram belongs to this connection: `input` is its str0m form, `stun`
    /// the datagram parsed as STUN when it is STUN.
    fn accepts(&self, input: &Input, source: SocketAddr, stun: Option<&StunMessage>) -> bool {
        match self {
            Conn::Send(rtc) => rtc.accepts(input),
            Conn::Recv(c) => c.accepts(source, stun),
            Conn::Broken => false,
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), String> {
        match self {
            Conn::Send(rtc) => rtc
                .handle_input(Input::Timeout(now))
                .map_err(|e| e.to_string()),
            Conn::Recv(c) => c.handle_timeout(now).map_err(|e| e.to_string()),
            Conn::Broken => Ok(()),
        }
    }

    /// Where a recv connection's egress sends: the pair its ICE nominated.
    fn destination(&self) -> Option<(Protocol, SocketAddr)> {
        match self {
            Conn::Recv(c) => c.destination(),
            Conn::Send(_) | Conn::Broken => None,
        }
    }

    /// A send transport's `Rtc`.
    fn rtc(&mut self) -> Option<&mut Rtc> {
        match self {
            Conn::Send(rtc) => Some(rtc),
            Conn::Recv(_) | Conn::Broken => None,
        }
    }

    /// A recv transport's connection.
    fn recv(&mut self) -> Option<&mut RecvConn> {
        match self {
            Conn::Send(_) | Conn::Broken => None,
            Conn::Recv(c) => Some(c),
        }
    }
}

/// One transport: a peer's send or recv connection.
struct Transport {
    peer: PeerId,
    direction: Direction,
    conn: Conn,
    /// When the connection next wants time.
    next_timeout: Instant,
    /// Queued in `Worker::dirty` for polling.
    dirty: bool,
    /// The Rtc stopped (ICE timeout, DTLS close); kept until the peer is removed.
    dead: bool,
    /// Send side: producer of each incoming m-line.
    producers_by_mid: HashMap<Mid, ProducerId>,
    /// Send side: the m-line and layer of each incoming SSRC, as str0m mapped them.
    rx_streams: HashMap<Ssrc, (Mid, Option<Rid>)>,
    /// Recv side: consumer of each outgoing m-line.
    consumers_by_mid: HashMap<Mid, ConsumerId>,
    /// Recv side: consumers waiting to be put into an offer.
    pending_add: Vec<ConsumerId>,
    /// Recv side: m-lines of closed consumers to turn inactive in the next offer.
    pending_inactive: Vec<Mid>,
    /// Recv side: the offer waiting for an answer.
    in_flight: Option<InFlight>,
    /// Recv side: where its DTLS leaves the SRTP keys.
    keys: Option<KeySlot>,
    /// Recv side: what the worker sends on it, from the moment DTLS is up.
    egress: Option<Box<Egress>>,
    /// Queued in `Worker::egress_dirty` for a flush of its egress.
    egress_dirty: bool,
    /// Remote addresses seen, to clean the route table.
    remotes: HashSet<SocketAddr>,
    /// NACK totals str0m last reported per incoming stream (mid, rid), so that only the
    /// increase is added to [`WorkerStats`].
    nacks_reported: HashMap<(Mid, Option<Rid>), u64>,
}

/// One output of a transport's connection, whichever kind it is.
// Lives on the stack for one step of `poll` and is never stored: boxing the event (an RTP
// packet, mostly) would cost an allocation per received packet.
#[allow(clippy::large_enum_variant)]
enum Polled {
    Timeout(Instant),
    Transmit(str0m::net::Transmit),
    Event(Event),
}

impl Transport {
    /// The increase of a stream's NACK total since its last report.
    fn nack_increase(&mut self, mid: Mid, rid: Option<Rid>, total: u64) -> u64 {
        let last = self.nacks_reported.insert((mid, rid), total);
        total.saturating_sub(last.unwrap_or(0))
    }

    /// The bandwidth estimate of a recv transport (bps): its egress', or `initial` before.
    fn estimate(&self, initial: u64) -> u64 {
        self.egress.as_ref().map_or(initial, |e| e.estimate())
    }
}

struct Producer {
    id: ProducerId,
    peer: PeerId,
    room: RoomId,
    transport: TKey,
    mid: Mid,
    kind: MediaKind,
    source: Source,
    paused: bool,
    /// Slots of its consumers in `Worker::consumers`.
    consumers: Vec<CKey>,
    /// Incoming layers, smallest first (one entry `""` without simulcast).
    layers: Vec<LayerStats>,
    /// Keyframe requests per rid: outstanding until a keyframe arrives.
    keyframes: KeyframeGate,
    /// Video: recent packets of each layer, for all consumers' NACKs, in the order the
    /// layers first appeared (`Sent::layer` indexes it), with their rids.
    history: Vec<PacketHistory>,
}

impl Producer {
    /// True when every video layer has a keyframe recent enough for a new consumer to start
    /// from (`forward::replay_keyframe`).
    fn has_recent_keyframes(&self, now: Instant) -> bool {
        self.kind == MediaKind::Video
            && !self.history.is_empty()
            && self
                .history
                .iter()
                .all(|h| forward::keyframe_replayable(h, now))
    }
}

struct Consumer {
    id: ConsumerId,
    producer: ProducerId,
    transport: TKey,
    mid: Option<Mid>,
    /// Negotiated: media may be written to its m-line.
    active: bool,
    /// Layer being forwarded.
    current: Option<String>,
    /// Layer wanted; switched to at its next keyframe.
    target: Option<String>,
    /// Displayed height reported by the client (0 = hidden).
    display_height: Option<u32>,
    /// Sequence numbers, RTP time and VP8 ids as this consumer gets them: one continuous
    /// stream across its layer switches and pauses. Video runs start at keyframes.
    rewriter: Rewriter,
    /// The producer's payload type and the consumer's for the same codec, found once.
    pt: Option<(Pt, Pt)>,
    /// Its stream in the transport's egress, set up at its first packet.
    stream: Option<usize>,
    /// What this consumer was sent, for its NACKs (answered from the producer's history).
    sent: SentLog,
}

struct PeerMedia {
    room: RoomId,
    /// Created at the first publish: a receive-only participant costs one transport.
    send: Option<TKey>,
    recv: TKey,
    /// Owned until `RemovePeer`.
    events: Recipient<MediaEvent>,
}

struct RoomMedia {
    /// Owned until `RemoveRoom`.
    events: Recipient<RoomMediaEvent>,
    speaker: SpeakerDetector,
}

/// A deferred action collected while iterating borrowed state.
enum After {
    KeyframeRequest(ProducerId, Option<String>),
    LayerChanged(TKey, ConsumerId, Option<String>),
}

struct Worker {
    index: usize,
    socket: UdpSocket,
    candidate_addr: SocketAddr,
    poke_source: SocketAddr,
    rx: Receiver<WorkerCommand>,
    /// ICE-TCP frames and connections from the TCP threads.
    tcp_rx: Receiver<TcpEvent>,
    /// Writing halves of ICE-TCP connections, by remote address; dropped on close.
    tcp_conns: HashMap<SocketAddr, TcpStream>,
    initial_bitrate: u64,
    stop: Arc<AtomicBool>,
    /// Boxed: a `Transport` holds its `Rtc` (kilobytes), and a map of values doubles its
    /// capacity as it grows; a map of boxes wastes only pointers. Hashed with Fx, not
    /// SipHash: the keys are the worker's own counter, so no outsider can choose them, and
    /// the packet path looks a transport up for every subscriber of every packet.
    transports: FxHashMap<TKey, Box<Transport>>,
    next_key: TKey,
    routes: HashMap<SocketAddr, TKey>,
    peers: HashMap<PeerId, PeerMedia>,
    rooms: HashMap<RoomId, RoomMedia>,
    producers: HashMap<ProducerId, Producer>,
    consumers: Consumers<Consumer>,
    dirty: Vec<TKey>,
    /// Recv transports with packets queued in their egress.
    egress_dirty: Vec<TKey>,
    /// When each recv transport's egress next wants time (sender reports, probes).
    egress_timers: Timers<TKey>,
    /// When each recv transport's simulcast layers are next re-chosen.
    layer_timers: Timers<TKey>,
    /// What subscribers asked for in their RTCP (reused between datagrams).
    requests: Requests,
    /// Where the egresses write each packet before it is copied into the batch.
    scratch: Box<[u8]>,
    /// Datagrams produced by polling, sent together at the end of `flush`.
    out: SendBatch,
    /// One DTLS certificate for every transport of the worker: generating a key pair per
    /// connection costs join time. None (the provider could not make one): str0m generates
    /// one per send transport, and recv transports cannot be made.
    dtls_cert: Option<LocalCert>,
    /// Recv transports to renegotiate after the current batch of commands.
    to_negotiate: Vec<TKey>,
    /// When each transport next wants `handle_timeout`; `next_wakeup` is its earliest.
    timers: Timers<TKey>,
    next_wakeup: Instant,
    last_speaker: Instant,
    stats: WorkerStats,
}

impl Worker {
    fn new(
        index: usize,
        io: WorkerIo,
        rx: Receiver<WorkerCommand>,
        initial_bitrate: u64,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let WorkerIo {
            socket,
            candidate_addr,
            poke_source,
            tcp_rx,
        } = io;
        let now = Instant::now();
        Self {
            index,
            socket,
            candidate_addr,
            poke_source,
            rx,
            tcp_rx,
            tcp_conns: HashMap::new(),
            initial_bitrate,
            stop,
            transports: FxHashMap::default(),
            next_key: 1,
            routes: HashMap::new(),
            peers: HashMap::new(),
            rooms: HashMap::new(),
            producers: HashMap::new(),
            consumers: Consumers::default(),
            dirty: Vec::new(),
            egress_dirty: Vec::new(),
            egress_timers: Timers::default(),
            layer_timers: Timers::default(),
            requests: Requests::default(),
            scratch: vec![0; egress::SCRATCH].into_boxed_slice(),
            out: SendBatch::default(),
            dtls_cert: str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate()
                .map(LocalCert::new),
            to_negotiate: Vec::new(),
            timers: Timers::default(),
            next_wakeup: now + MAX_SLEEP,
            last_speaker: now,
            stats: WorkerStats::default(),
        }
    }

    /// A worker on a fresh loopback socket that no thread runs, for the fuzzing harness
    /// (`hostile`) and unit tests: they call its methods directly, and what it sends goes
    /// nowhere anyone reads.
    fn on_loopback() -> std::io::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let candidate_addr = socket.local_addr()?;
        let (_tcp_tx, tcp_rx) = mpsc::channel();
        let (_cmd_tx, cmd_rx) = mpsc::channel();
        let io = WorkerIo {
            socket,
            candidate_addr,
            poke_source: SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
            tcp_rx,
        };
        Ok(Self::new(
            0,
            io,
            cmd_rx,
            300_000,
            Arc::new(AtomicBool::new(false)),
        ))
    }

    fn run(&mut self) {
        let mut inbox = RecvBatch::default();
        if let Err(e) = self.socket.set_nonblocking(true) {
            tracing::error!(
                worker = self.index,
                "cannot make the media socket non-blocking: {e}"
            );
            return;
        }
        loop {
            if self.stop.load(Ordering::SeqCst) {
                info!(worker = self.index, "media worker stopping");
                return;
            }
            loop {
                match self.rx.try_recv() {
                    Ok(cmd) => self.on_command(cmd),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        info!(worker = self.index, "media worker: control plane gone");
                        return;
                    }
                }
            }
            self.negotiate_pending();
            while let Ok(ev) = self.tcp_rx.try_recv() {
                match ev {
                    TcpEvent::Opened(peer, stream) => {
                        self.tcp_conns.insert(peer, stream);
                    }
                    TcpEvent::Frame(peer, frame) => {
                        self.stats.datagrams_in += 1;
                        self.stats.bytes_in += frame.len() as u64;
                        self.on_packet(Protocol::Tcp, peer, &frame);
                    }
                    TcpEvent::Closed(peer) => {
                        self.tcp_conns.remove(&peer);
                    }
                }
            }
            let now = Instant::now();
            if now >= self.next_wakeup {
                self.on_timeouts(now);
            }
            self.choose_due_layers(now);
            self.flush();
            // Take whatever arrived, in one batch, then poll the transports it touched.
            let mut received = false;
            for _ in 0..RECV_ATTEMPTS {
                match inbox.recv(&self.socket) {
                    Ok(0) => break,
                    Ok(_) => {
                        for (source, data) in inbox.datagrams() {
                            received = true;
                            if source == self.poke_source {
                                continue;
                            }
                            self.stats.datagrams_in += 1;
                            self.stats.bytes_in += data.len() as u64;
                            self.on_packet(Protocol::Udp, source, data);
                        }
                        break;
                    }
                    // ICMP errors for earlier sends surface here on Linux, one per call;
                    // nothing to do but read on.
                    Err(e) => debug!(worker = self.index, "recvmmsg: {e}"),
                }
            }
            if received {
                self.flush();
                continue;
            }
            // Nothing to read: sleep until str0m's next deadline or a datagram (commands
            // and ICE-TCP frames send a wake-up datagram).
            let sleep = self
                .next_wakeup
                .saturating_duration_since(Instant::now())
                .min(MAX_SLEEP);
            if !sleep.is_zero() {
                wait_readable(&self.socket, sleep);
            }
        }
    }

    // ---------------------------------------------------------------- timers and polling

    fn on_timeouts(&mut self, now: Instant) {
        // Only the transports that are due, from the worker's timer heap: no walk over all.
        while let Some(k) = self.timers.pop_due(now) {
            let Some(t) = self.transports.get_mut(&k) else {
                continue;
            };
            if t.dead {
                continue;
            }
            if t.next_timeout > now {
                // Woken by an earlier deadline the transport has since moved on from.
                self.timers.schedule(k, t.next_timeout);
                continue;
            }
            if let Err(e) = t.conn.handle_timeout(now) {
                warn!(peer = %t.peer, "transport timeout error: {e}");
                t.conn.disconnect();
            }
            // Polled in this turn's flush, which schedules its next deadline.
            self.mark_dirty(k);
        }
        while let Some(k) = self.egress_timers.pop_due(now) {
            self.egress_timeout(k, now);
        }
        self.next_wakeup = [
            self.timers.next_deadline(),
            self.egress_timers.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .fold(now + MAX_SLEEP, Instant::min);
        if now.saturating_duration_since(self.last_speaker) >= SPEAKER_INTERVAL {
            self.last_speaker = now;
            for room in self.rooms.values_mut() {
                if let Some(peer) = room.speaker.update(now) {
                    room.events
                        .do_send(RoomMediaEvent::ActiveSpeakerChanged { peer });
                }
            }
        }
    }

    /// Re-chooses the simulcast layers of the recv transports whose time has come. Their
    /// deadlines do not wake the worker: it wakes at least every `MAX_SLEEP`, and a choice
    /// made a few milliseconds late is as good.
    fn choose_due_layers(&mut self, now: Instant) {
        while let Some(k) = self.layer_timers.pop_due(now) {
            if self.transports.get(&k).is_some_and(|t| !t.dead) {
                self.select_layers(k);
                self.layer_timers.schedule(k, now + LAYER_INTERVAL);
            }
        }
    }

    fn mark_dirty(&mut self, key: TKey) {
        if let Some(t) = self.transports.get_mut(&key) {
            if !t.dirty {
                t.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Polls every dirty transport until it has nothing more to say, writes what the
    /// egresses have queued, and sends it all.
    fn flush(&mut self) {
        while let Some(key) = self.dirty.pop() {
            if let Some(t) = self.transports.get_mut(&key) {
                t.dirty = false;
            }
            self.poll(key);
        }
        self.flush_egress();
        if !self.out.is_empty() {
            self.stats.messages_out += self.out.flush(&self.socket).messages as u64;
        }
    }

    /// Writes and encrypts the packets queued in each dirty egress into the send batch: the
    /// packets of one subscriber one after the other, which GSO sends as one message.
    fn flush_egress(&mut self) {
        if self.egress_dirty.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut dirty = std::mem::take(&mut self.egress_dirty);
        for key in dirty.drain(..) {
            if let Some(t) = self.transports.get_mut(&key) {
                t.egress_dirty = false;
            }
            // The first packet of a stream schedules its first sender report.
            self.with_egress(key, |e, buf, mut out| {
                e.flush(now, buf, &mut out).then(|| e.next_timeout(now))
            });
        }
        // The list's allocation serves the next turn.
        self.egress_dirty = dirty;
    }

    /// A recv transport's egress wants time: sender reports, probe packets.
    fn egress_timeout(&mut self, key: TKey, now: Instant) {
        self.with_egress(key, |e, buf, mut out| {
            Some(e.on_timeout(now, buf, &mut out))
        });
    }

    /// Runs `f` on a live recv transport's egress with the worker's scratch buffer and a sink
    /// that sends each datagram to the subscriber; `f` returns the egress' next deadline when
    /// it changed. Without a destination yet, what was queued is dropped.
    fn with_egress(
        &mut self,
        key: TKey,
        f: impl FnOnce(&mut Egress, &mut [u8], &mut dyn FnMut(&[u8])) -> Option<Instant>,
    ) {
        let Worker {
            transports,
            egress_timers,
            scratch,
            out,
            socket,
            tcp_conns,
            stats,
            ..
        } = self;
        let Some(t) = transports.get_mut(&key).filter(|t| !t.dead) else {
            return;
        };
        let Some(e) = t.egress.as_mut() else {
            return;
        };
        let Some(dest) = t.conn.destination() else {
            e.discard_queued();
            return;
        };
        let next = f(e, scratch, &mut |d: &[u8]| {
            send(out, socket, tcp_conns, stats, dest, d)
        });
        if let Some(next) = next {
            egress_timers.schedule(key, next);
        }
    }

    fn poll(&mut self, key: TKey) {
        // Packets written since the last poll are due at once (str0m's pacer releases them on
        // a timeout). Feeding those due timeouts here, rather than on the next turn of the
        // loop, sends them in this flush. Bounded so one busy transport cannot starve the
        // others; what is left is due at the next turn.
        let mut due_timeouts = MAX_BATCH;
        loop {
            let Some(t) = self.transports.get_mut(&key) else {
                return;
            };
            if t.dead {
                return;
            }
            if !t.conn.is_alive() {
                t.dead = true;
                let (peer, direction) = (t.peer.clone(), t.direction);
                for r in t.remotes.drain() {
                    self.routes.remove(&r);
                }
                info!(worker = self.index, %peer, ?direction, "transport closed");
                self.notify_peer(
                    &peer,
                    MediaEvent::TransportStateChanged {
                        direction,
                        state: TransportState::Closed,
                    },
                );
                return;
            }
            let polled = match &mut t.conn {
                Conn::Send(rtc) => match rtc.poll_output() {
                    Ok(Output::Timeout(at)) => Polled::Timeout(at),
                    Ok(Output::Transmit(tx)) => Polled::Transmit(tx),
                    Ok(Output::Event(e)) => Polled::Event(e),
                    Err(e) => {
                        warn!(peer = %t.peer, "transport failed: {e}");
                        rtc.disconnect();
                        continue;
                    }
                },
                Conn::Recv(c) => match c.poll_output() {
                    ConnOutput::Timeout(at) => Polled::Timeout(at),
                    ConnOutput::Transmit(tx) => Polled::Transmit(tx),
                    ConnOutput::Connected => Polled::Event(Event::Connected),
                    ConnOutput::Ice(state) => Polled::Event(Event::IceConnectionStateChange(state)),
                },
                // Not alive: handled above.
                Conn::Broken => return,
            };
            let event = match polled {
                Polled::Timeout(at) => {
                    let now = Instant::now();
                    if at <= now && due_timeouts > 0 {
                        due_timeouts -= 1;
                        if let Err(e) = t.conn.handle_timeout(now) {
                            warn!(peer = %t.peer, "transport timeout error: {e}");
                            t.conn.disconnect();
                        }
                        continue;
                    }
                    t.next_timeout = at;
                    self.timers.schedule(key, at);
                    self.next_wakeup = self.next_wakeup.min(at);
                    return;
                }
                Polled::Transmit(tx) => {
                    let dest = (tx.proto, tx.destination);
                    send(
                        &mut self.out,
                        &self.socket,
                        &mut self.tcp_conns,
                        &mut self.stats,
                        dest,
                        &tx.contents,
                    );
                    continue;
                }
                Polled::Event(e) => e,
            };
            self.on_event(key, event);
        }
    }

    // ---------------------------------------------------------------- str0m events

    fn on_event(&mut self, key: TKey, event: Event) {
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let (peer, direction) = (t.peer.clone(), t.direction);
        match event {
            Event::Connected => {
                debug!(%peer, ?direction, "transport connected");
                if direction == Direction::Recv {
                    self.start_egress(key);
                }
                self.notify_peer(
                    &peer,
                    MediaEvent::TransportStateChanged {
                        direction,
                        state: TransportState::Connected,
                    },
                );
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.notify_peer(
                    &peer,
                    MediaEvent::TransportStateChanged {
                        direction,
                        state: TransportState::Disconnected,
                    },
                );
            }
            Event::RtpPacket(packet) => self.on_rtp(key, packet),
            Event::KeyframeRequest(req) => {
                self.stats.plis_received += 1;
                let Some(cid) = t.consumers_by_mid.get(&req.mid).cloned() else {
                    return;
                };
                let Some(c) = self.consumers.get(&cid) else {
                    return;
                };
                let layer = c.current.clone().or_else(|| c.target.clone());
                let pid = c.producer.clone();
                self.request_keyframe(&pid, layer, req.kind);
            }
            // NACKs this server sent to a publisher.
            Event::MediaIngressStats(s) => {
                self.stats.nacks_sent += t.nack_increase(s.mid, s.rid, s.nacks);
            }
            _ => {}
        }
    }

    /// A recv transport's DTLS is up: from now on the worker sends on it itself, with the
    /// keys the handshake made.
    fn start_egress(&mut self, key: TKey) {
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        if t.egress.is_some() {
            return;
        }
        let started = match t.keys.as_ref().and_then(|slot| slot.keys()) {
            Some(Ok(keys)) => {
                Egress::new(&keys, self.initial_bitrate, Instant::now()).map_err(|e| e.to_string())
            }
            Some(Err(e)) => Err(e.to_string()),
            None => Err("DTLS connected without SRTP keys".to_string()),
        };
        match started {
            Ok(egress) => {
                debug!(peer = %t.peer, ?egress, "egress started");
                t.egress = Some(Box::new(egress));
                self.egress_timers.schedule(key, Instant::now());
                self.select_layers(key);
                // Its consumers can start now, each at a keyframe: ask at once rather than at
                // their producers' next packet, unless a recent one is there to replay
                // (`forward::replay_keyframe`).
                let now = Instant::now();
                let producers: Vec<ProducerId> = self
                    .consumers
                    .values()
                    .filter(|c| c.transport == key && c.active)
                    .map(|c| c.producer.clone())
                    .filter(|pid| {
                        !self
                            .producers
                            .get(pid)
                            .is_some_and(|p| p.has_recent_keyframes(now))
                    })
                    .collect();
                for pid in producers {
                    self.request_keyframes(&pid);
                }
            }
            Err(e) => {
                // Cannot happen with the profiles str0m negotiates; without keys nothing
                // could be sent, so the subscriber is told the connection is gone.
                warn!(peer = %t.peer, "cannot send to this subscriber: {e}");
                t.conn.disconnect();
            }
        }
    }

    fn notify_peer(&self, peer: &PeerId, event: MediaEvent) {
        if let Some(p) = self.peers.get(peer) {
            p.events.do_send(event);
        }
    }
}

/// Sends a datagram to `dest`: into the UDP batch (sent when it is full or at the end of the
/// flush), or framed (RFC 4571) on its ICE-TCP connection.
fn send(
    out: &mut SendBatch,
    socket: &UdpSocket,
    tcp_conns: &mut HashMap<SocketAddr, TcpStream>,
    stats: &mut WorkerStats,
    (proto, dest): (Protocol, SocketAddr),
    data: &[u8],
) {
    stats.datagrams_out += 1;
    stats.bytes_out += data.len() as u64;
    if proto == Protocol::Tcp {
        let framed = tcp_conns.get_mut(&dest).map(|conn| {
            let len = (data.len() as u16).to_be_bytes();
            conn.write_all(&len).and_then(|_| conn.write_all(data))
        });
        if let Some(Err(e)) = framed {
            debug!("ICE-TCP write to {dest}: {e}");
            tcp_conns.remove(&dest);
        }
    } else {
        // A full batch goes at the end of a subscriber's run, not in its middle: the run
        // stays one GSO message.
        if out.full_before(dest) {
            stats.messages_out += out.flush(socket).messages as u64;
        }
        out.push(dest, data);
    }
}

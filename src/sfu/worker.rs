//! One media worker: a thread that owns a UDP socket and every str0m `Rtc` (transport) of the
//! rooms assigned to it. It routes each datagram to its transport, forwards media from
//! producers to consumers with plain function calls inside its loop, negotiates subscriber
//! connections, picks simulcast layers and detects the active speaker. It does not know
//! about WebSockets or room membership rules: the control plane tells it what to do through
//! [`WorkerCommand`]s and hears back through [`MediaEvent`]s.

#[doc(hidden)]
pub mod hostile;

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Recipient;
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::format::CodecExtra;
use str0m::media::{
    Direction as SdpDirection, KeyframeRequestKind, MediaData, MediaKind as SdpKind,
};
use str0m::media::{MediaTime, Mid, Rid};
use str0m::net::{DatagramRecv, Protocol, Receive, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tracing::{debug, info, trace, warn};

use super::batch::{SendBatch, MAX_BATCH};
use super::messages::{
    MediaError, MediaEvent, NewProducer, Reply, RoomMediaEvent, TransportState, WorkerCommand,
    WorkerStats,
};
use super::references::{Frame, Verdict, Vp8Frame};
use super::simulcast::{choose_layers, rid_rank, vp8_keyframe_height, Demand, LayerStats};
use super::speaker::SpeakerDetector;
use crate::ids::{ConsumerId, PeerId, ProducerId, RoomId};
use crate::model::{ConsumerInfo, Direction, MediaKind, Source};

/// Longest the loop sleeps without looking at its command queue (commands also wake it).
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Video packets kept per outgoing stream for resends (NACK) and probing.
const VIDEO_SEND_BUFFER: usize = 300;
/// Datagrams read before the touched transports are polled.
const RECV_BATCH: usize = 64;
/// How often simulcast layers are re-chosen.
const LAYER_INTERVAL: Duration = Duration::from_millis(500);
/// How often the active speaker is re-evaluated.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(300);
/// Minimum time between two keyframe requests for the same producer layer.
const KEYFRAME_THROTTLE: Duration = Duration::from_millis(500);
/// How often str0m reports stream statistics (the NACK counters of [`WorkerStats`]).
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Budget kept for each audio consumer when sharing a subscriber's bandwidth.
const AUDIO_RESERVE_BPS: u64 = 64_000;

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

/// Socket buffer the media sockets ask for: a few hundred milliseconds of a busy worker's
/// traffic, so join bursts and scheduling hiccups do not drop datagrams.
const SOCKET_BUFFER: usize = 8 << 20;

/// Asks for [`SOCKET_BUFFER`] bytes (beyond `net.core.*mem_max` when privileged); returns what
/// the kernel granted (it reports twice the usable size).
fn grow_buffer(socket: &UdpSocket, opt: libc::c_int, force: libc::c_int) -> usize {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let want = SOCKET_BUFFER as libc::c_int;
    let set = |name: libc::c_int| {
        // SAFETY: `fd` is an open socket; the value is a c_int of the given size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                &want as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(force) != 0 {
        set(opt);
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `got` and `len` are valid for writes of the sizes given.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &mut got as *mut _ as *mut libc::c_void,
            &mut len,
        );
    }
    usize::try_from(got).unwrap_or(0) / 2
}

/// Blocks until `socket` is readable or `timeout` passes. `ppoll` sleeps with high-resolution
/// timers; a socket read timeout would round up to the kernel tick (4 ms here) and delay
/// every packet str0m wants sent at a precise time.
fn wait_readable(socket: &UdpSocket, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` is one valid pollfd for the duration of the call, `ts` a valid timespec,
    // and no signal mask is passed. An error (EINTR) only shortens the sleep.
    unsafe {
        libc::ppoll(&mut fds, 1, &ts, std::ptr::null());
    }
}

/// Binds UDP and TCP on the same port, the first free one of the range.
fn bind_in_range(ip: IpAddr, (min, max): (u16, u16)) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for port in min..=max {
        let udp = match UdpSocket::bind(SocketAddr::new(ip, port)) {
            Ok(s) => s,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        match TcpListener::bind(SocketAddr::new(ip, port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(std::io::Error::new(
        ErrorKind::AddrInUse,
        format!(
            "no port free for both UDP and TCP in {min}-{max} on {ip} (last error: {}); widen rtcMinPort-rtcMaxPort",
            last_err.map(|e| e.to_string()).unwrap_or_default()
        ),
    ))
}

/// What the ICE-TCP threads tell the worker.
enum TcpEvent {
    /// A browser connected; the stream is the worker's writing half.
    Opened(SocketAddr, TcpStream),
    /// One RFC 4571 frame (a STUN, DTLS, RTP or RTCP packet).
    Frame(SocketAddr, Vec<u8>),
    /// The connection ended.
    Closed(SocketAddr),
}

/// Accepts ICE-TCP connections (passive candidates) and starts a reader thread for each,
/// which de-frames RFC 4571 packets into the worker's queue.
fn spawn_tcp_acceptor(
    index: usize,
    listener: TcpListener,
    events: Sender<TcpEvent>,
    poke: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("media-tcp-{index}"))
        .spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let Ok(peer) = stream.peer_addr() else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                let Ok(writer) = stream.try_clone() else {
                    continue;
                };
                if events.send(TcpEvent::Opened(peer, writer)).is_err() {
                    return;
                }
                let (events, poke) = (events.clone(), poke.clone());
                let _ = std::thread::Builder::new()
                    .name(format!("media-tcp-{index}-conn"))
                    .spawn(move || read_frames(peer, stream, events, poke));
            }
        })?;
    Ok(())
}

fn read_frames(
    peer: SocketAddr,
    mut stream: TcpStream,
    events: Sender<TcpEvent>,
    poke: Arc<UdpSocket>,
) {
    let mut len = [0u8; 2];
    loop {
        if stream.read_exact(&mut len).is_err() {
            break;
        }
        let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut frame).is_err() {
            break;
        }
        if events.send(TcpEvent::Frame(peer, frame)).is_err() {
            return;
        }
        let _ = poke.send(&[0]);
    }
    let _ = events.send(TcpEvent::Closed(peer));
    let _ = poke.send(&[0]);
}

/// The network side a worker is built with.
struct WorkerIo {
    /// The UDP socket, owned by the worker thread.
    socket: UdpSocket,
    /// Announced address:port of the UDP and TCP candidates.
    candidate_addr: SocketAddr,
    /// Source address of wake-up datagrams, to drop them.
    poke_source: SocketAddr,
    /// ICE-TCP events from the TCP threads.
    tcp_rx: Receiver<TcpEvent>,
}

/// Key of a transport inside one worker.
type TKey = u64;

/// An offer of a recv transport waiting for the client's answer.
struct InFlight {
    pending: SdpPendingOffer,
    consumers: Vec<ConsumerId>,
}

/// One str0m `Rtc`: a peer's send or recv connection.
struct Transport {
    peer: PeerId,
    direction: Direction,
    rtc: Rtc,
    /// When str0m next wants `Input::Timeout`.
    next_timeout: Instant,
    /// Queued in `Worker::dirty` for polling.
    dirty: bool,
    /// A frame was written since the last poll: the transport is polled (which packetizes
    /// what is due) before the next frame is written to it, so a burst of frames for one
    /// subscriber never piles up in str0m's queue.
    written: bool,
    /// The Rtc stopped (ICE timeout, DTLS close); kept until the peer is removed.
    dead: bool,
    /// Send side: producer of each incoming m-line.
    producers_by_mid: HashMap<Mid, ProducerId>,
    /// Recv side: consumer of each outgoing m-line.
    consumers_by_mid: HashMap<Mid, ConsumerId>,
    /// Recv side: consumers waiting to be put into an offer.
    pending_add: Vec<ConsumerId>,
    /// Recv side: m-lines of closed consumers to turn inactive in the next offer.
    pending_inactive: Vec<Mid>,
    /// Recv side: the offer waiting for an answer.
    in_flight: Option<InFlight>,
    /// Recv side: latest bandwidth estimate (bps).
    estimate: u64,
    /// Remote addresses seen, to clean the route table.
    remotes: HashSet<SocketAddr>,
    /// NACK totals str0m last reported per stream (mid, rid, incoming?), so that only the
    /// increase is added to [`WorkerStats`].
    nacks_reported: HashMap<(Mid, Option<Rid>, bool), u64>,
}

impl Transport {
    /// The increase of a stream's NACK total since its last report.
    fn nack_increase(&mut self, mid: Mid, rid: Option<Rid>, incoming: bool, total: u64) -> u64 {
        let last = self.nacks_reported.insert((mid, rid, incoming), total);
        total.saturating_sub(last.unwrap_or(0))
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
    consumers: Vec<ConsumerId>,
    /// Incoming layers, smallest first (one entry `""` without simulcast).
    layers: Vec<LayerStats>,
    /// Last keyframe request per rid.
    last_keyframe_request: HashMap<String, Instant>,
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
    /// Added to the producer's RTP time so the output clock stays continuous across layers.
    time_offset: u64,
    /// Last RTP time written.
    last_out: Option<u64>,
    /// Video: forward nothing until the next keyframe of the forwarded layer. Set at the
    /// start, after a frame str0m could not deliver contiguously (loss NACK did not repair in
    /// time) and while the producer is paused: a delta frame whose references the subscriber
    /// never got decodes as garbage, so the picture freezes instead.
    need_keyframe: bool,
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
    transports: HashMap<TKey, Transport>,
    next_key: TKey,
    routes: HashMap<SocketAddr, TKey>,
    peers: HashMap<PeerId, PeerMedia>,
    rooms: HashMap<RoomId, RoomMedia>,
    producers: HashMap<ProducerId, Producer>,
    consumers: HashMap<ConsumerId, Consumer>,
    dirty: Vec<TKey>,
    /// Datagrams produced by polling, sent together at the end of `flush`.
    out: SendBatch,
    /// One DTLS certificate for every transport of the worker: generating a key pair per
    /// connection costs join time. None = let str0m generate one per transport.
    dtls_cert: Option<DtlsCert>,
    /// Recv transports to renegotiate after the current batch of commands.
    to_negotiate: Vec<TKey>,
    next_wakeup: Instant,
    last_layers: Instant,
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
            transports: HashMap::new(),
            next_key: 1,
            routes: HashMap::new(),
            peers: HashMap::new(),
            rooms: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            dirty: Vec::new(),
            out: SendBatch::default(),
            dtls_cert: str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate(),
            to_negotiate: Vec::new(),
            next_wakeup: now + MAX_SLEEP,
            last_layers: now,
            last_speaker: now,
            stats: WorkerStats::default(),
        }
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; 2000];
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
            self.flush();
            // Take whatever arrived, in a batch, then poll the transports it touched.
            let mut received = false;
            for _ in 0..RECV_BATCH {
                match self.socket.recv_from(&mut buf) {
                    Ok((n, source)) => {
                        if source == self.poke_source {
                            received = true;
                            continue;
                        }
                        self.stats.datagrams_in += 1;
                        self.stats.bytes_in += n as u64;
                        self.on_packet(Protocol::Udp, source, &buf[..n]);
                        received = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // ICMP errors for earlier sends surface here on Linux; nothing to do.
                    Err(e) => debug!(worker = self.index, "recv_from: {e}"),
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

    // ---------------------------------------------------------------- network input

    fn on_packet(&mut self, proto: Protocol, source: SocketAddr, data: &[u8]) {
        let Ok(contents) = DatagramRecv::try_from(data) else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto,
                source,
                destination: self.candidate_addr,
                contents,
            },
        );
        let routed = self
            .routes
            .get(&source)
            .copied()
            .filter(|k| {
                self.transports
                    .get(k)
                    .is_some_and(|t| !t.dead && t.rtc.accepts(&input))
            })
            .or_else(|| {
                self.transports
                    .iter()
                    .find(|(_, t)| !t.dead && t.rtc.accepts(&input))
                    .map(|(k, _)| *k)
            });
        let Some(key) = routed else {
            debug!(worker = self.index, %source, "datagram for no transport");
            return;
        };
        self.routes.insert(source, key);
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        t.remotes.insert(source);
        if let Err(e) = t.rtc.handle_input(input) {
            warn!(peer = %t.peer, "transport input error: {e}");
            t.rtc.disconnect();
        }
        self.mark_dirty(key);
    }

    fn on_timeouts(&mut self, now: Instant) {
        let mut next = now + MAX_SLEEP;
        let mut due = Vec::new();
        for (k, t) in &mut self.transports {
            if t.dead {
                continue;
            }
            if t.next_timeout <= now {
                if let Err(e) = t.rtc.handle_input(Input::Timeout(now)) {
                    warn!(peer = %t.peer, "transport timeout error: {e}");
                    t.rtc.disconnect();
                }
                due.push(*k);
            } else {
                next = next.min(t.next_timeout);
            }
        }
        self.next_wakeup = next;
        for k in due {
            self.mark_dirty(k);
        }
        if now.saturating_duration_since(self.last_layers) >= LAYER_INTERVAL {
            self.last_layers = now;
            let keys: Vec<TKey> = self
                .transports
                .iter()
                .filter(|(_, t)| t.direction == Direction::Recv && !t.dead)
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                self.select_layers(k);
            }
        }
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

    fn mark_dirty(&mut self, key: TKey) {
        if let Some(t) = self.transports.get_mut(&key) {
            if !t.dirty {
                t.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Polls every dirty transport until it has nothing more to say.
    fn flush(&mut self) {
        while let Some(key) = self.dirty.pop() {
            if let Some(t) = self.transports.get_mut(&key) {
                t.dirty = false;
            }
            self.poll(key);
        }
        if !self.out.is_empty() {
            self.out.flush(&self.socket);
        }
    }

    fn poll(&mut self, key: TKey) {
        // str0m packetizes one queued frame per media on each timeout; frames written since
        // are due at once. Feeding those due timeouts here, rather than on the next turn of
        // the loop, keeps its queue short when many frames arrive in one batch (past 512
        // queued frames str0m refuses writes). Bounded so one busy transport cannot starve
        // the others; what is left is due at the next turn.
        let mut due_timeouts = MAX_BATCH;
        loop {
            let Some(t) = self.transports.get_mut(&key) else {
                return;
            };
            if t.dead {
                return;
            }
            t.written = false;
            if !t.rtc.is_alive() {
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
            let event = match t.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    let now = Instant::now();
                    if at <= now && due_timeouts > 0 {
                        due_timeouts -= 1;
                        if let Err(e) = t.rtc.handle_input(Input::Timeout(now)) {
                            warn!(peer = %t.peer, "transport timeout error: {e}");
                            t.rtc.disconnect();
                        }
                        continue;
                    }
                    t.next_timeout = at;
                    self.next_wakeup = self.next_wakeup.min(at);
                    return;
                }
                Ok(Output::Transmit(tx)) => {
                    self.stats.datagrams_out += 1;
                    self.stats.bytes_out += tx.contents.len() as u64;
                    if tx.proto == Protocol::Tcp {
                        let framed = self.tcp_conns.get_mut(&tx.destination).map(|conn| {
                            let len = (tx.contents.len() as u16).to_be_bytes();
                            conn.write_all(&len)
                                .and_then(|_| conn.write_all(&tx.contents))
                        });
                        if let Some(Err(e)) = framed {
                            debug!(
                                worker = self.index,
                                "ICE-TCP write to {}: {e}", tx.destination
                            );
                            self.tcp_conns.remove(&tx.destination);
                        }
                    } else {
                        self.out.push(tx.destination, &tx.contents);
                        if self.out.len() >= MAX_BATCH {
                            self.out.flush(&self.socket);
                        }
                    }
                    continue;
                }
                Ok(Output::Event(e)) => e,
                Err(e) => {
                    warn!(peer = %t.peer, "transport failed: {e}");
                    t.rtc.disconnect();
                    continue;
                }
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
            Event::MediaData(data) => self.on_media(key, data),
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
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                t.estimate = estimate.as_u64();
            }
            // NACKs this server sent to a publisher, and received from a subscriber.
            Event::MediaIngressStats(s) => {
                self.stats.nacks_sent += t.nack_increase(s.mid, s.rid, true, s.nacks);
            }
            Event::MediaEgressStats(s) => {
                self.stats.nacks_received += t.nack_increase(s.mid, s.rid, false, s.nacks);
            }
            _ => {}
        }
    }

    fn on_media(&mut self, key: TKey, data: MediaData) {
        let Some(t) = self.transports.get(&key) else {
            return;
        };
        let Some(pid) = t.producers_by_mid.get(&data.mid).cloned() else {
            return;
        };
        let now = Instant::now();
        let Some(producer) = self.producers.get_mut(&pid) else {
            return;
        };
        let rid: String = data.rid.map(|r| r.to_string()).unwrap_or_default();
        let layer_index = match producer.layers.iter().position(|l| l.rid == rid) {
            Some(i) => i,
            None => {
                producer.layers.push(LayerStats::new(rid.clone(), now));
                producer
                    .layers
                    .sort_by(|a, b| rid_rank(&a.rid).cmp(&rid_rank(&b.rid)));
                // Invariant: the layer was pushed just above.
                producer
                    .layers
                    .iter()
                    .position(|l| l.rid == rid)
                    .expect("layer just added")
            }
        };
        let keyframe = producer.kind == MediaKind::Video && data.is_keyframe();
        let vp8 = match data.codec_extra {
            CodecExtra::Vp8(v) => Some(Vp8Frame {
                picture_id: v.picture_id,
                temporal_layer: v.layer_index,
                layer_sync: v.sync,
            }),
            _ => None,
        };
        let layer = &mut producer.layers[layer_index];
        layer.on_frame(data.data.len(), now);
        let verdict = if producer.kind == MediaKind::Video {
            let verdict = layer.references.on_frame(Frame {
                keyframe,
                contiguous: data.contiguous,
                vp8,
            });
            trace!(producer = %pid, rid, ?vp8, keyframe, ?verdict, "video frame in");
            verdict
        } else {
            Verdict::Forward
        };
        if keyframe {
            if let Some(h) = vp8_keyframe_height(&data.data) {
                layer.height = Some(h);
            }
        }
        if producer.kind == MediaKind::Audio {
            if let (Some(level), Some(room)) = (
                data.ext_vals.audio_level,
                self.rooms.get_mut(&producer.room),
            ) {
                trace!(peer = %producer.peer, level, "audio level");
                room.speaker.on_level(&producer.peer, level, now);
            }
        }
        if producer.paused {
            // Frames dropped here are references the subscribers will not have.
            for cid in &producer.consumers {
                if let Some(c) = self.consumers.get_mut(cid) {
                    c.need_keyframe = true;
                }
            }
            return;
        }
        let producer = &*producer;
        let video = producer.kind == MediaKind::Video;
        let simulcast = !rid.is_empty();
        let mut after = Vec::new();
        let mut writes = Vec::new();
        for cid in &producer.consumers {
            let Some(c) = self.consumers.get_mut(cid) else {
                continue;
            };
            let Some(mid) = c.mid.filter(|_| c.active) else {
                continue;
            };
            if simulcast {
                if c.target.as_deref() == Some(rid.as_str())
                    && c.current.as_deref() != Some(rid.as_str())
                {
                    if !keyframe {
                        after.push(After::KeyframeRequest(
                            producer.id.clone(),
                            Some(rid.clone()),
                        ));
                        continue;
                    }
                    // Switch at this keyframe; keep the output clock continuous.
                    if let Some(last) = c.last_out {
                        let step = u64::from(data.time.frequency().get() / 30);
                        c.time_offset = last.wrapping_add(step).wrapping_sub(data.time.numer());
                    }
                    c.current = Some(rid.clone());
                    after.push(After::LayerChanged(
                        c.transport,
                        c.id.clone(),
                        c.current.clone(),
                    ));
                }
                if c.current.as_deref() != Some(rid.as_str()) {
                    continue;
                }
            }
            if video {
                if keyframe {
                    c.need_keyframe = false;
                } else if c.need_keyframe || verdict == Verdict::NeedKeyframe {
                    // Something before this frame is missing for this subscriber: wait for a
                    // keyframe of this layer (requested, throttled) rather than forward a
                    // frame that cannot decode.
                    if !c.need_keyframe {
                        debug!(consumer = %c.id, rid, "a frame is missing: the layer waits for a keyframe");
                    }
                    c.need_keyframe = true;
                    after.push(After::KeyframeRequest(producer.id.clone(), layer_rid(&rid)));
                    continue;
                } else if verdict == Verdict::Hold {
                    // It may read a picture that was lost: the base layer goes on alone
                    // until the next layer sync.
                    continue;
                }
            }
            let out = data.time.numer().wrapping_add(c.time_offset);
            c.last_out = Some(out);
            writes.push((c.transport, c.id.clone(), mid, out));
        }
        // Written after the loop, with a poll between two frames for the same transport: under
        // load several frames for one subscriber arrive in one batch, and each must be
        // packetized before the next is queued.
        for (tkey, cid, mid, out) in writes {
            if self.transports.get(&tkey).is_some_and(|t| t.written) {
                self.poll(tkey);
            }
            let Some(rt) = self.transports.get_mut(&tkey) else {
                continue;
            };
            if rt.dead {
                continue;
            }
            let Some(writer) = rt.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                debug!(consumer = %cid, "subscriber did not negotiate the producer's codec");
                continue;
            };
            let time = MediaTime::new(out, data.time.frequency());
            let writer = match data.ext_vals.audio_level {
                Some(level) => {
                    writer.audio_level(level, data.ext_vals.voice_activity.unwrap_or(false))
                }
                None => writer,
            };
            if let Err(e) = writer.write(pt, data.network_time, time, data.data.clone()) {
                debug!(consumer = %cid, "write failed: {e}");
                continue;
            }
            rt.written = true;
            self.stats.frames_forwarded += 1;
            if !rt.dirty {
                rt.dirty = true;
                self.dirty.push(tkey);
            }
        }
        self.run_after(after);
    }

    fn run_after(&mut self, mut after: Vec<After>) {
        // One request per layer and frame is enough (the requests are throttled anyway).
        after.dedup_by(|a, b| match (a, b) {
            (After::KeyframeRequest(p1, r1), After::KeyframeRequest(p2, r2)) => {
                p1 == p2 && r1 == r2
            }
            _ => false,
        });
        for a in after {
            match a {
                After::KeyframeRequest(pid, rid) => {
                    self.request_keyframe(&pid, rid, KeyframeRequestKind::Pli)
                }
                After::LayerChanged(tkey, cid, layer) => {
                    self.stats.layer_switches += 1;
                    if let Some(peer) = self.transports.get(&tkey).map(|t| t.peer.clone()) {
                        self.notify_peer(
                            &peer,
                            MediaEvent::LayerChanged {
                                consumer: cid,
                                layer,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Asks a producer's sender for a keyframe on one layer, at most every
    /// [`KEYFRAME_THROTTLE`].
    fn request_keyframe(
        &mut self,
        pid: &ProducerId,
        rid: Option<String>,
        kind: KeyframeRequestKind,
    ) {
        let Some(p) = self.producers.get_mut(pid) else {
            return;
        };
        if p.kind != MediaKind::Video {
            return;
        }
        let now = Instant::now();
        let slot = rid.clone().unwrap_or_default();
        if p.last_keyframe_request
            .get(&slot)
            .is_some_and(|t| now.saturating_duration_since(*t) < KEYFRAME_THROTTLE)
        {
            return;
        }
        p.last_keyframe_request.insert(slot, now);
        let (tkey, mid) = (p.transport, p.mid);
        let Some(t) = self.transports.get_mut(&tkey) else {
            return;
        };
        if let Some(mut writer) = t.rtc.writer(mid) {
            let rid = rid.filter(|r| !r.is_empty()).map(|r| Rid::from(r.as_str()));
            match writer.request_keyframe(rid, kind) {
                Ok(()) => self.stats.plis_sent += 1,
                Err(e) => debug!(producer = %pid, "keyframe request failed: {e}"),
            }
        }
        self.mark_dirty(tkey);
    }

    fn notify_peer(&self, peer: &PeerId, event: MediaEvent) {
        if let Some(p) = self.peers.get(peer) {
            p.events.do_send(event);
        }
    }

    // ---------------------------------------------------------------- simulcast

    /// Re-chooses the layer of every video consumer of one recv transport.
    fn select_layers(&mut self, key: TKey) {
        let Some(t) = self.transports.get(&key) else {
            return;
        };
        let now = Instant::now();
        let mut audio = 0u64;
        let mut fixed = 0u64;
        let mut simulcast: Vec<(ConsumerId, Vec<String>, Demand)> = Vec::new();
        let mut desired = 0u64;
        for cid in t.consumers_by_mid.values() {
            let Some(c) = self.consumers.get(cid) else {
                continue;
            };
            let Some(p) = self.producers.get(&c.producer) else {
                continue;
            };
            if p.kind == MediaKind::Audio {
                audio += AUDIO_RESERVE_BPS;
                continue;
            }
            let active: Vec<&LayerStats> = p.layers.iter().filter(|l| l.is_active(now)).collect();
            if active.len() == 1 && active[0].rid.is_empty() {
                fixed += active[0].bitrate;
                desired += active[0].bitrate;
                continue;
            }
            let layers: Vec<(u64, Option<u32>)> = active
                .iter()
                .map(|l| (effective_bitrate(l), l.height))
                .collect();
            desired += layers.last().map(|l| l.0).unwrap_or(0);
            let current = c
                .target
                .as_ref()
                .and_then(|rid| active.iter().position(|l| &l.rid == rid));
            simulcast.push((
                cid.clone(),
                active.iter().map(|l| l.rid.clone()).collect(),
                Demand {
                    layers,
                    display_height: c.display_height,
                    current,
                },
            ));
        }
        let budget = t.estimate.saturating_sub(audio + fixed);
        let demands: Vec<Demand> = simulcast.iter().map(|s| s.2.clone()).collect();
        let chosen = choose_layers(budget, &demands);
        let mut after = Vec::new();
        for ((cid, rids, _), pick) in simulcast.into_iter().zip(chosen) {
            let target = pick.map(|i| rids[i].clone());
            let Some(c) = self.consumers.get_mut(&cid) else {
                continue;
            };
            if c.target != target {
                c.target = target.clone();
                if target.is_none() {
                    c.current = None;
                    after.push(After::LayerChanged(key, cid.clone(), None));
                } else if c.current != target {
                    after.push(After::KeyframeRequest(c.producer.clone(), target));
                }
            }
        }
        if let Some(t) = self.transports.get_mut(&key) {
            let desired = (desired + audio).max(300_000);
            t.rtc
                .bwe()
                .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
        }
        self.run_after(after);
    }

    // ---------------------------------------------------------------- commands

    fn on_command(&mut self, cmd: WorkerCommand) {
        match cmd {
            WorkerCommand::AddRoom { room, events } => {
                self.rooms.insert(
                    room,
                    RoomMedia {
                        events,
                        speaker: SpeakerDetector::default(),
                    },
                );
            }
            WorkerCommand::RemoveRoom { room } => {
                let peers: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.room == room)
                    .map(|(id, _)| id.clone())
                    .collect();
                for p in peers {
                    self.remove_peer(&p);
                }
                self.rooms.remove(&room);
            }
            WorkerCommand::AddPeer { room, peer, events } => {
                if self.peers.contains_key(&peer) {
                    return;
                }
                let recv = self.add_transport(&peer, Direction::Recv);
                self.peers.insert(
                    peer,
                    PeerMedia {
                        room,
                        send: None,
                        recv,
                        events,
                    },
                );
            }
            WorkerCommand::RemovePeer { peer } => self.remove_peer(&peer),
            WorkerCommand::Publish {
                peer,
                offer,
                producers,
                reply,
            } => {
                let _ = reply.send(self.publish(&peer, &offer, producers));
            }
            WorkerCommand::RecvAnswer {
                peer,
                answer,
                reply,
            } => {
                let _ = reply.send(self.recv_answer(&peer, &answer));
            }
            WorkerCommand::AddConsumer {
                peer,
                consumer,
                producer,
            } => self.add_consumer(&peer, consumer, producer),
            WorkerCommand::CloseProducer { producer } => self.close_producer(&producer),
            WorkerCommand::SetProducerPaused { producer, paused } => {
                if let Some(p) = self.producers.get_mut(&producer) {
                    p.paused = paused;
                    let rids: Vec<String> = p.layers.iter().map(|l| l.rid.clone()).collect();
                    if !paused {
                        p.last_keyframe_request.clear();
                        for rid in rids {
                            self.request_keyframe(&producer, Some(rid), KeyframeRequestKind::Pli);
                        }
                    }
                }
            }
            WorkerCommand::SetConsumerPreferences {
                peer,
                consumer,
                height,
                reply,
                ..
            } => {
                let result = match self.own_consumer(&peer, &consumer) {
                    Ok(key) => {
                        if let Some(c) = self.consumers.get_mut(&consumer) {
                            c.display_height = Some(height);
                        }
                        self.select_layers(key);
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            WorkerCommand::RequestKeyFrame {
                peer,
                consumer,
                reply,
            } => {
                let result = self.own_consumer(&peer, &consumer).map(|_| {
                    if let Some(c) = self.consumers.get(&consumer) {
                        let (pid, layer) = (c.producer.clone(), c.current.clone());
                        self.request_keyframe(&pid, layer, KeyframeRequestKind::Pli);
                    }
                });
                let _ = reply.send(result);
            }
            WorkerCommand::Stats { reply } => {
                let mut s = self.stats;
                s.rooms = self.rooms.len();
                s.transports = self.transports.values().filter(|t| !t.dead).count();
                s.producers = self.producers.len();
                s.consumers = self.consumers.len();
                let _ = reply.send(Ok(s));
            }
        }
    }

    fn add_transport(&mut self, peer: &PeerId, direction: Direction) -> TKey {
        let mut builder = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            // Resend history: ~2 s of 1.5 Mbit/s video instead of str0m's 1000 packets, which
            // made every subscriber connection cost over a megabyte.
            .set_send_buffer_video(VIDEO_SEND_BUFFER)
            .set_stats_interval(Some(STATS_INTERVAL));
        if let Some(cert) = &self.dtls_cert {
            builder = builder.set_dtls_cert(cert.clone());
        }
        if direction == Direction::Recv {
            builder = builder.enable_bwe(Some(Bitrate::bps(self.initial_bitrate)));
        }
        let now = Instant::now();
        let mut rtc = builder.build(now);
        let tcp = Candidate::builder()
            .tcp()
            .host(self.candidate_addr)
            .tcptype(TcpType::Passive)
            .build();
        for candidate in [Candidate::host(self.candidate_addr, "udp"), tcp] {
            match candidate {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => warn!("cannot make a candidate for {}: {e}", self.candidate_addr),
            }
        }
        let key = self.next_key;
        self.next_key += 1;
        self.transports.insert(
            key,
            Transport {
                peer: peer.clone(),
                direction,
                rtc,
                next_timeout: now,
                dirty: false,
                written: false,
                dead: false,
                producers_by_mid: HashMap::new(),
                consumers_by_mid: HashMap::new(),
                pending_add: Vec::new(),
                pending_inactive: Vec::new(),
                in_flight: None,
                estimate: self.initial_bitrate,
                remotes: HashSet::new(),
                nacks_reported: HashMap::new(),
            },
        );
        key
    }

    fn remove_peer(&mut self, peer: &PeerId) {
        let Some(pm) = self.peers.remove(peer) else {
            return;
        };
        let own: Vec<ProducerId> = self
            .producers
            .values()
            .filter(|p| &p.peer == peer)
            .map(|p| p.id.clone())
            .collect();
        for pid in own {
            self.close_producer(&pid);
        }
        let theirs: Vec<ConsumerId> = self
            .consumers
            .values()
            .filter(|c| c.transport == pm.recv)
            .map(|c| c.id.clone())
            .collect();
        for cid in theirs {
            self.close_consumer(&cid);
        }
        for key in pm.send.into_iter().chain([pm.recv]) {
            if let Some(mut t) = self.transports.remove(&key) {
                for r in t.remotes.drain() {
                    self.routes.remove(&r);
                }
                t.rtc.disconnect();
            }
        }
        if let Some(room) = self.rooms.get_mut(&pm.room) {
            room.speaker.remove(peer);
        }
        debug!(worker = self.index, %peer, "peer media removed");
    }

    fn publish(
        &mut self,
        peer: &PeerId,
        offer: &str,
        producers: Vec<NewProducer>,
    ) -> Result<String, MediaError> {
        let pm = self
            .peers
            .get(peer)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        let (send, room) = (pm.send, pm.room.clone());
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let key = match send {
            Some(key) => key,
            None => {
                let key = self.add_transport(peer, Direction::Send);
                if let Some(pm) = self.peers.get_mut(peer) {
                    pm.send = Some(key);
                }
                key
            }
        };
        let t = self
            .transports
            .get_mut(&key)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        for p in &producers {
            if t.producers_by_mid.contains_key(&Mid::from(p.mid.as_str())) {
                return Err(MediaError::BadTrack(format!(
                    "mid '{}' already carries a producer; close it first",
                    p.mid
                )));
            }
        }
        let answer = t
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let mut problems = Vec::new();
        for p in producers {
            let mid = Mid::from(p.mid.as_str());
            let kind_ok = match t.rtc.media(mid) {
                None => {
                    problems.push(format!("the offer has no m-line with mid '{}'", p.mid));
                    continue;
                }
                Some(m) => matches!(
                    (m.kind(), p.kind),
                    (SdpKind::Audio, MediaKind::Audio) | (SdpKind::Video, MediaKind::Video)
                ),
            };
            if !kind_ok || p.source.kind() != p.kind {
                problems.push(format!(
                    "mid '{}' is not a {:?} {:?} track",
                    p.mid, p.source, p.kind
                ));
                continue;
            }
            t.producers_by_mid.insert(mid, p.id.clone());
            self.producers.insert(
                p.id.clone(),
                Producer {
                    id: p.id,
                    peer: peer.clone(),
                    room: room.clone(),
                    transport: key,
                    mid,
                    kind: p.kind,
                    source: p.source,
                    paused: false,
                    consumers: Vec::new(),
                    layers: Vec::new(),
                    last_keyframe_request: HashMap::new(),
                },
            );
        }
        self.mark_dirty(key);
        if problems.is_empty() {
            Ok(answer.to_sdp_string())
        } else {
            Err(MediaError::BadTrack(problems.join("; ")))
        }
    }

    fn recv_answer(&mut self, peer: &PeerId, answer: &str) -> Result<(), MediaError> {
        let key = self
            .peers
            .get(peer)
            .map(|p| p.recv)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        let answer = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let t = self
            .transports
            .get_mut(&key)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        let in_flight = t.in_flight.take().ok_or(MediaError::NoPendingOffer)?;
        t.rtc
            .sdp_api()
            .accept_answer(in_flight.pending, answer)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let mut wake = Vec::new();
        for cid in in_flight.consumers {
            if let Some(c) = self.consumers.get_mut(&cid) {
                c.active = true;
                wake.push(c.producer.clone());
            }
        }
        self.mark_dirty(key);
        self.select_layers(key);
        for pid in wake {
            self.request_keyframe(&pid, None, KeyframeRequestKind::Pli);
            let rids: Vec<String> = self
                .producers
                .get(&pid)
                .map(|p| p.layers.iter().map(|l| l.rid.clone()).collect())
                .unwrap_or_default();
            for rid in rids.into_iter().filter(|r| !r.is_empty()) {
                self.request_keyframe(&pid, Some(rid), KeyframeRequestKind::Pli);
            }
        }
        self.negotiate(key);
        Ok(())
    }

    fn add_consumer(&mut self, peer: &PeerId, id: ConsumerId, producer: ProducerId) {
        let Some(key) = self.peers.get(peer).map(|p| p.recv) else {
            debug!(%peer, "consumer for a peer without media session");
            return;
        };
        let Some(p) = self.producers.get_mut(&producer) else {
            debug!(%producer, "consumer of a producer that is gone");
            return;
        };
        p.consumers.push(id.clone());
        self.consumers.insert(
            id.clone(),
            Consumer {
                id: id.clone(),
                producer,
                transport: key,
                mid: None,
                active: false,
                current: None,
                target: None,
                display_height: None,
                time_offset: 0,
                last_out: None,
                need_keyframe: true,
            },
        );
        if let Some(t) = self.transports.get_mut(&key) {
            t.pending_add.push(id);
        }
        self.negotiate(key);
    }

    fn close_producer(&mut self, pid: &ProducerId) {
        let Some(p) = self.producers.remove(pid) else {
            return;
        };
        if let Some(t) = self.transports.get_mut(&p.transport) {
            t.producers_by_mid.remove(&p.mid);
        }
        for cid in p.consumers {
            self.close_consumer(&cid);
        }
    }

    fn close_consumer(&mut self, cid: &ConsumerId) {
        let Some(c) = self.consumers.remove(cid) else {
            return;
        };
        if let Some(p) = self.producers.get_mut(&c.producer) {
            p.consumers.retain(|x| x != cid);
        }
        if let Some(t) = self.transports.get_mut(&c.transport) {
            t.pending_add.retain(|x| x != cid);
            if let Some(mid) = c.mid {
                t.consumers_by_mid.remove(&mid);
                t.pending_inactive.push(mid);
            }
            if let Some(f) = t.in_flight.as_mut() {
                f.consumers.retain(|x| x != cid);
            }
        }
        self.negotiate(c.transport);
    }

    /// Marks a recv transport for renegotiation once the queued commands are handled, so
    /// consumers added together go out in one offer.
    fn negotiate(&mut self, key: TKey) {
        if !self.to_negotiate.contains(&key) {
            self.to_negotiate.push(key);
        }
    }

    fn negotiate_pending(&mut self) {
        for key in std::mem::take(&mut self.to_negotiate) {
            self.negotiate_now(key);
        }
    }

    /// Starts a new offer on a recv transport when changes wait and none is in flight.
    fn negotiate_now(&mut self, key: TKey) {
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        if t.dead
            || t.in_flight.is_some()
            || (t.pending_add.is_empty() && t.pending_inactive.is_empty())
        {
            return;
        }
        let mut api = t.rtc.sdp_api();
        let mut added = Vec::new();
        let mut infos = Vec::new();
        for cid in t.pending_add.drain(..) {
            let Some(c) = self.consumers.get_mut(&cid) else {
                continue;
            };
            let Some(p) = self.producers.get(&c.producer) else {
                continue;
            };
            let kind = match p.kind {
                MediaKind::Audio => SdpKind::Audio,
                MediaKind::Video => SdpKind::Video,
            };
            let mid = api.add_media(
                kind,
                SdpDirection::SendOnly,
                Some(p.peer.to_string()),
                Some(p.id.to_string()),
                None,
            );
            c.mid = Some(mid);
            t.consumers_by_mid.insert(mid, cid.clone());
            infos.push(ConsumerInfo {
                id: cid.clone(),
                producer_id: p.id.clone(),
                peer_id: p.peer.clone(),
                kind: p.kind,
                source: p.source,
                mid: mid.to_string(),
                paused: p.paused,
            });
            added.push(cid);
        }
        for mid in t.pending_inactive.drain(..) {
            api.set_direction(mid, SdpDirection::Inactive);
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        t.in_flight = Some(InFlight {
            pending,
            consumers: added,
        });
        let peer = t.peer.clone();
        self.notify_peer(
            &peer,
            MediaEvent::RecvOffer {
                sdp: offer.to_sdp_string(),
                consumers: infos,
            },
        );
    }

    fn own_consumer(&self, peer: &PeerId, cid: &ConsumerId) -> Result<TKey, MediaError> {
        let recv = self
            .peers
            .get(peer)
            .map(|p| p.recv)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        match self.consumers.get(cid) {
            Some(c) if c.transport == recv => Ok(recv),
            _ => Err(MediaError::UnknownConsumer(cid.clone())),
        }
    }
}

/// A layer's bitrate for budgeting; before it is measured, assume typical figures.
fn effective_bitrate(l: &LayerStats) -> u64 {
    if l.bitrate > 0 {
        return l.bitrate;
    }
    match rid_rank(&l.rid).0 {
        0 => 150_000,
        1 => 500_000,
        _ => 1_500_000,
    }
}

/// The rid of a layer for a keyframe request: `None` without simulcast.
fn layer_rid(rid: &str) -> Option<String> {
    (!rid.is_empty()).then(|| rid.to_string())
}

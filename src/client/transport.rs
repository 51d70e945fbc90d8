//! One WebRTC transport (str0m `Rtc` + its UDP socket) driven on a dedicated thread; the
//! async side talks to it through `Command`s. The send transport generates synthetic media,
//! the recv transport counts what arrives.
//!
//! The thread runs a small current-thread tokio runtime so that it can wait on the socket, the
//! next str0m/frame deadline and the command queue at once with millisecond precision. (A
//! std socket read timeout would do, but Linux rounds it up to scheduler ticks: a 1 ms
//! `SO_RCVTIMEO` sleeps 4-12 ms here, which showed up as that much added latency per frame.)

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::error::ClientError;
use super::media::{FrameWrite, Generator, LocalTrack, PublishSpec};
use super::protocol::{Kind, Source};
use super::state::{ProducerStats, Shared, State, TransportStatus};

/// Iterations in a row that may find str0m already due before the loop waits anyway; guards
/// against spinning should an `Rtc` keep reporting a past deadline.
const MAX_IMMEDIATE: u32 = 64;
/// Simulcast rids, smallest first, as the protocol prescribes for camera video.
const SIMULCAST_RIDS: [&str; 3] = ["l", "m", "h"];

/// Which of the client's two peer connections this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportDir {
    Send,
    Recv,
}

impl TransportDir {
    fn name(self) -> &'static str {
        match self {
            TransportDir::Send => "send",
            TransportDir::Recv => "recv",
        }
    }

    fn status(self, s: &mut State) -> &mut TransportStatus {
        match self {
            TransportDir::Send => &mut s.send_status,
            TransportDir::Recv => &mut s.recv_status,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

pub(crate) enum Command {
    /// Send transport: add the tracks of the spec and create the offer.
    CreateOffer(Reply<(String, Vec<LocalTrack>)>),
    /// Send transport: apply the server's answer.
    AcceptAnswer(String, Reply<()>),
    /// Recv transport: apply the server's offer, return our answer.
    AcceptOffer(String, Reply<String>),
    /// Send transport: stop/restart writing frames of a kind (producer pause/resume).
    SetSending(Kind, bool),
    /// Hostile-input tests: send these datagrams from this transport's socket to the server
    /// (its known address), and, when asked, replay the datagrams it sent last; replies the
    /// number sent.
    Inject(Vec<Vec<u8>>, bool, Reply<usize>),
    /// Loss tests: do not send the next N outgoing RTP datagrams (RTCP, STUN and DTLS still
    /// go), retransmissions included: a burst of loss that NACK cannot repair.
    DropRtp(u32),
    /// Send transport: send only the lowest N simulcast layers of the camera.
    SetVideoLayers(usize),
    Stop,
}

/// Handle to a transport thread. Dropping it stops the thread (without waiting for it).
pub(crate) struct Transport {
    dir: TransportDir,
    cmd_tx: mpsc::UnboundedSender<Command>,
    join: Option<JoinHandle<()>>,
}

impl Transport {
    pub fn spawn(
        dir: TransportDir,
        bind_ip: IpAddr,
        spec: Option<PublishSpec>,
        shared: Arc<Shared>,
    ) -> Result<Transport, ClientError> {
        let socket = StdUdpSocket::bind(SocketAddr::new(bind_ip, 0))?;
        socket.set_nonblocking(true)?;
        let local_addr = socket.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        shared.update(|s| *dir.status(s) = TransportStatus::Connecting);
        let join = thread::Builder::new()
            .name(format!("mm-client-{}-{}", dir.name(), local_addr.port()))
            .spawn(move || {
                let result = runtime.block_on(async {
                    let mut driver = Driver {
                        dir,
                        socket: UdpSocket::from_std(socket)?,
                        local_addr,
                        rtc: {
                            let mut config = Rtc::builder()
                                .clear_codecs()
                                .enable_opus(true, false)
                                .enable_vp8(true);
                            if let Some(n) = spec.as_ref().and_then(|s| s.resend_buffer_video) {
                                config = config.set_send_buffer_video(n);
                            }
                            config.build(Instant::now())
                        },
                        pending: None,
                        generator: spec.map(Generator::new),
                        connected: false,
                        write_failed: false,
                        shared: shared.clone(),
                        remote: None,
                        recent: VecDeque::new(),
                        keyframe_asked: HashMap::new(),
                        loss_rng: u64::from(local_addr.port()) | 1 << 40,
                        drop_rtp: 0,
                    };
                    let result = driver.run(cmd_rx).await;
                    driver.rtc.disconnect();
                    result
                });
                if let Err(e) = result {
                    shared.error(format!("{} transport: {e}", dir.name()));
                }
                shared.update(|s| *dir.status(s) = TransportStatus::Closed);
            })?;
        Ok(Transport {
            dir,
            cmd_tx,
            join: Some(join),
        })
    }

    /// Send a command that replies, and await the reply.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(make(tx))
            .map_err(|_| ClientError::MediaThreadGone(self.dir.name()))?;
        rx.await
            .map_err(|_| ClientError::MediaThreadGone(self.dir.name()))?
    }

    pub fn send(&self, cmd: Command) -> Result<(), ClientError> {
        self.cmd_tx
            .send(cmd)
            .map_err(|_| ClientError::MediaThreadGone(self.dir.name()))
    }

    /// Stop the thread and wait (off the async runtime thread) until it has closed its socket.
    pub async fn stop(mut self) {
        let _ = self.cmd_tx.send(Command::Stop);
        if let Some(join) = self.join.take() {
            let _ = tokio::task::spawn_blocking(move || join.join()).await;
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        // The thread wakes on the command, exits (also when this sender is gone) and closes
        // its socket; it is not joined here so Drop never blocks a runtime thread.
        let _ = self.cmd_tx.send(Command::Stop);
    }
}

struct Driver {
    dir: TransportDir,
    socket: UdpSocket,
    local_addr: SocketAddr,
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    generator: Option<Generator>,
    connected: bool,
    /// A write error was reported already (report once, not 50 times a second).
    write_failed: bool,
    shared: Arc<Shared>,
    /// Where the last datagram went (the server's media address).
    remote: Option<SocketAddr>,
    /// The last datagrams sent, for replay by [`Command::Inject`].
    recent: VecDeque<Vec<u8>>,
    /// Outgoing RTP datagrams still to drop (`Command::DropRtp`).
    drop_rtp: u32,
    /// When a keyframe was last asked for, per receiving mid.
    keyframe_asked: HashMap<Mid, Instant>,
    /// xorshift state for the incoming loss of loss tests.
    loss_rng: u64,
}

/// Least time between two keyframe requests of one receiving mid.
const PLI_INTERVAL: Duration = Duration::from_millis(300);

/// Datagrams kept for replay.
const RECENT_KEPT: usize = 32;

impl Driver {
    /// Loss tests: whether this incoming datagram is an RTP packet the recv transport drops
    /// (a share of them, [`Shared::incoming_rtp_loss_ppm`], chosen at random).
    fn drops_incoming(&mut self, datagram: &[u8]) -> bool {
        if self.dir != TransportDir::Recv || !is_rtp(datagram) {
            return false;
        }
        self.shared
            .incoming_rtp_seen
            .fetch_add(1, Ordering::Relaxed);
        let ppm = self.shared.incoming_rtp_loss_ppm.load(Ordering::Relaxed);
        if ppm == 0 {
            return false;
        }
        self.loss_rng ^= self.loss_rng << 13;
        self.loss_rng ^= self.loss_rng >> 7;
        self.loss_rng ^= self.loss_rng << 17;
        let drop = self.loss_rng % 1_000_000 < u64::from(ppm);
        if drop {
            self.shared
                .incoming_rtp_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        drop
    }

    async fn run(
        &mut self,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    ) -> Result<(), ClientError> {
        let candidate = Candidate::host(self.local_addr, "udp")
            .map_err(|e| ClientError::Rtc(format!("host candidate: {e}")))?;
        self.rtc.add_local_candidate(candidate);
        let mut buf = vec![0u8; 2000];
        let mut immediate = 0u32;

        loop {
            // Every mutation below is followed by `continue`, which comes back here and
            // drains the Rtc to its next timeout (str0m's single-mutation invariant).
            let timeout = self.drain()?;
            if !self.rtc.is_alive() {
                return Ok(());
            }

            match cmd_rx.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return Ok(()),
                Ok(cmd) => {
                    self.handle_command(cmd);
                    continue;
                }
                Err(TryRecvError::Empty) => {}
            }

            let now = Instant::now();
            if self.connected {
                if let Some(frame) = self.generator.as_mut().and_then(|g| g.next_write(now)) {
                    self.write_frame(frame)?;
                    continue;
                }
            }

            // str0m is due now (e.g. packetizing a frame just written): no sleep at all.
            if timeout <= now && immediate < MAX_IMMEDIATE {
                immediate += 1;
                self.rtc.handle_input(Input::Timeout(now))?;
                continue;
            }
            immediate = 0;

            let mut deadline = timeout.max(now + Duration::from_micros(100));
            if let Some(due) = self.generator.as_ref().and_then(|g| g.next_due()) {
                deadline = deadline.min(due);
            }
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, source)) => {
                        if self.drops_incoming(&buf[..n]) {
                            continue;
                        }
                        let Ok(rx) = Receive::new(Protocol::Udp, source, self.local_addr, &buf[..n])
                        else {
                            tracing::debug!(target: "mm_client", "unparseable datagram from {source}");
                            continue;
                        };
                        self.rtc.handle_input(Input::Receive(Instant::now(), rx))?;
                    }
                    // ICMP errors for earlier sends (the server's port went away) land here.
                    Err(e) if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                    ) => {
                        tracing::debug!(target: "mm_client", "udp recv: {e}");
                    }
                    Err(e) => return Err(e.into()),
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now()))?;
                }
                cmd = cmd_rx.recv() => match cmd {
                    None | Some(Command::Stop) => return Ok(()),
                    Some(cmd) => self.handle_command(cmd),
                },
            }
        }
    }

    /// Poll the Rtc until it returns its next timeout.
    fn drain(&mut self) -> Result<Instant, ClientError> {
        loop {
            if !self.rtc.is_alive() {
                return Ok(Instant::now());
            }
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    self.remote = Some(t.destination);
                    if self.recent.len() == RECENT_KEPT {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(t.contents.to_vec());
                    if self.drop_rtp > 0 && is_rtp(&t.contents) {
                        self.drop_rtp -= 1;
                        continue;
                    }
                    // Non-blocking: a full send buffer drops the datagram, as a network would.
                    if let Err(e) = self.socket.try_send_to(&t.contents, t.destination) {
                        tracing::debug!(target: "mm_client", "udp send to {}: {e}", t.destination);
                    }
                }
                Output::Event(e) => self.handle_event(e),
            }
        }
    }

    fn handle_event(&mut self, e: Event) {
        let dir = self.dir;
        match e {
            Event::Connected => {
                tracing::debug!(target: "mm_client", "{} transport connected", dir.name());
                self.connected = true;
                if let Some(g) = self.generator.as_mut() {
                    g.start(Instant::now());
                }
                self.shared
                    .update(|s| *dir.status(s) = TransportStatus::Connected);
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(target: "mm_client", "{} transport ice {state:?}", dir.name());
                if state == IceConnectionState::Disconnected {
                    self.connected = false;
                    self.shared
                        .update(|s| *dir.status(s) = TransportStatus::Closed);
                }
            }
            Event::MediaData(data) => {
                let mid = data.mid.to_string();
                let undecodable = self
                    .shared
                    .update(|s| s.record_frame(&mid, &data.data, data.contiguous));
                // As a browser does: after a gap, ask for a keyframe (at most every 300 ms).
                let now = Instant::now();
                let due = self
                    .keyframe_asked
                    .get(&data.mid)
                    .is_none_or(|at| now.saturating_duration_since(*at) >= PLI_INTERVAL);
                if undecodable && due {
                    self.keyframe_asked.insert(data.mid, now);
                    if let Some(mut w) = self.rtc.writer(data.mid) {
                        if let Err(e) = w.request_keyframe(data.rid, KeyframeRequestKind::Pli) {
                            tracing::debug!(target: "mm_client", "keyframe request: {e}");
                        }
                    }
                }
            }
            Event::KeyframeRequest(req) => {
                if let Some(g) = self.generator.as_mut() {
                    g.request_keyframe(req.mid);
                }
                let mid = req.mid.to_string();
                self.shared.update(|s| {
                    if let Some(p) = s.producer_mut(&mid) {
                        p.keyframe_requests += 1;
                    }
                });
            }
            Event::Closed => {
                tracing::debug!(target: "mm_client", "{} transport closed by remote", dir.name());
                self.connected = false;
            }
            other => {
                tracing::trace!(target: "mm_client", "{} transport event {other:?}", dir.name());
            }
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::CreateOffer(reply) => {
                let _ = reply.send(self.create_offer());
            }
            Command::AcceptAnswer(sdp, reply) => {
                let _ = reply.send(self.accept_answer(&sdp));
            }
            Command::AcceptOffer(sdp, reply) => {
                let _ = reply.send(self.accept_offer(&sdp));
            }
            Command::SetSending(kind, on) => {
                if let Some(g) = self.generator.as_mut() {
                    g.set_sending(kind, on);
                }
            }
            Command::DropRtp(n) => self.drop_rtp = n,
            Command::SetVideoLayers(n) => {
                if let Some(g) = self.generator.as_mut() {
                    g.set_video_layers(n);
                }
            }
            Command::Inject(datagrams, replay, reply) => {
                let Some(to) = self.remote else {
                    let _ = reply.send(Err(ClientError::Rtc("nothing sent yet".into())));
                    return;
                };
                let recent: Vec<Vec<u8>> = if replay {
                    self.recent.iter().cloned().collect()
                } else {
                    Vec::new()
                };
                let sent = datagrams
                    .iter()
                    .chain(recent.iter())
                    .filter(|d| self.socket.try_send_to(d, to).is_ok())
                    .count();
                let _ = reply.send(Ok(sent));
            }
            // Handled by the loop before dispatching here.
            Command::Stop => {}
        }
    }

    fn create_offer(&mut self) -> Result<(String, Vec<LocalTrack>), ClientError> {
        let spec = self
            .generator
            .as_ref()
            .map(|g| g.spec().clone())
            .ok_or_else(|| ClientError::Rtc("create_offer on a recv transport".into()))?;
        let stream_id = Some(format!("mm-{}", self.local_addr.port()));
        let mut api = self.rtc.sdp_api();
        let mut tracks = Vec::new();
        if spec.audio {
            let mid = api.add_media(
                MediaKind::Audio,
                Direction::SendOnly,
                stream_id.clone(),
                Some("mic".into()),
                None,
            );
            tracks.push(LocalTrack {
                mid,
                kind: Kind::Audio,
                source: Source::Mic,
            });
        }
        if spec.video {
            let simulcast = spec.simulcast.then(|| Simulcast {
                send: SIMULCAST_RIDS
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
            tracks.push(LocalTrack {
                mid,
                kind: Kind::Video,
                source: Source::Webcam,
            });
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| ClientError::Rtc("nothing to publish (no audio, no video)".into()))?;
        self.pending = Some(pending);
        if let Some(g) = self.generator.as_mut() {
            for t in &tracks {
                let rids: &[&str] = if t.kind == Kind::Video && spec.simulcast {
                    &SIMULCAST_RIDS
                } else {
                    &[]
                };
                g.add_track(t.mid, t.kind, rids);
            }
        }
        self.shared.update(|s| {
            for t in &tracks {
                s.producers.push(ProducerStats {
                    mid: t.mid.to_string(),
                    producer_id: String::new(),
                    kind: t.kind,
                    source: t.source,
                    frames: 0,
                    bytes: 0,
                    keyframes: 0,
                    keyframe_requests: 0,
                });
            }
        });
        Ok((offer.to_sdp_string(), tracks))
    }

    fn accept_answer(&mut self, sdp: &str) -> Result<(), ClientError> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| ClientError::Rtc("no offer pending".into()))?;
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| ClientError::Rtc(format!("parse answer: {e}")))?;
        self.rtc.sdp_api().accept_answer(pending, answer)?;
        Ok(())
    }

    fn accept_offer(&mut self, sdp: &str) -> Result<String, ClientError> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| ClientError::Rtc(format!("parse offer: {e}")))?;
        let answer = self.rtc.sdp_api().accept_offer(offer)?;
        Ok(answer.to_sdp_string())
    }

    fn write_frame(&mut self, f: FrameWrite) -> Result<(), ClientError> {
        let Some(writer) = self.rtc.writer(f.mid) else {
            return Ok(());
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
            // The answer did not accept our codec for this mid; nothing can be sent.
            return Ok(());
        };
        let mut writer = match f.rid {
            Some(rid) => writer.rid(rid),
            None => writer,
        };
        if let Some(level) = f.audio_level {
            writer = writer.audio_level(level, true);
        }
        let len = f.data.len() as u64;
        if let Err(e) = writer.write(pt, Instant::now(), f.rtp_time, f.data) {
            // Not fatal for the transport (e.g. a rid the answer rejected); report it once.
            if !self.write_failed {
                self.write_failed = true;
                self.shared.error(format!(
                    "{} transport write on {}: {e}",
                    self.dir.name(),
                    f.mid
                ));
            }
            return Ok(());
        }
        let mid = f.mid.to_string();
        self.shared.update(|s| {
            if let Some(p) = s.producer_mut(&mid) {
                p.frames += 1;
                p.bytes += len;
                if f.keyframe {
                    p.keyframes += 1;
                }
            }
        });
        Ok(())
    }
}

/// An (S)RTP packet, not RTCP (RFC 5761: payload types 64-95 with the marker bit are RTCP),
/// STUN or DTLS (RFC 7983: first byte 128-191 is RTP/RTCP).
fn is_rtp(datagram: &[u8]) -> bool {
    match datagram {
        [first, second, ..] => (128..=191).contains(first) && !(192..=223).contains(second),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::protocol::Consumer;
    use std::net::Ipv4Addr;

    /// The client's send transport talks straight to its recv transport (no server): frames
    /// arrive stamped, in order, and the client alone adds little latency.
    #[tokio::test]
    async fn send_transport_reaches_recv_transport_directly() {
        let shared = Shared::new();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let send = Transport::spawn(
            TransportDir::Send,
            ip,
            Some(PublishSpec::audio_video()),
            shared.clone(),
        )
        .expect("send transport");
        let recv =
            Transport::spawn(TransportDir::Recv, ip, None, shared.clone()).expect("recv transport");

        let (offer, tracks) = send.call(Command::CreateOffer).await.expect("offer");
        shared.update(|s| {
            let consumers: Vec<Consumer> = tracks
                .iter()
                .map(|t| Consumer {
                    id: format!("c-{}", t.mid),
                    producer_id: format!("p-{}", t.mid),
                    peer_id: "self".into(),
                    kind: t.kind,
                    source: t.source,
                    mid: t.mid.to_string(),
                    paused: false,
                })
                .collect();
            s.add_consumers(&consumers);
        });
        let answer = recv
            .call(|r| Command::AcceptOffer(offer, r))
            .await
            .expect("answer");
        send.call(|r| Command::AcceptAnswer(answer, r))
            .await
            .expect("answer accepted");

        let stats = shared
            .wait(
                Duration::from_secs(10),
                "30 frames of each kind",
                |s| {
                    (s.consumers.len() == 2 && s.consumers.iter().all(|c| c.frames >= 30))
                        .then(|| s.consumers.clone())
                },
                |s| format!("{:?} {:?}", s.consumers, s.errors),
            )
            .await
            .expect("media flows");
        for c in &stats {
            assert_eq!(c.stamped_frames, c.frames, "every frame is stamped: {c:?}");
            assert_eq!(c.discontinuities, 0, "no gaps on loopback: {c:?}");
            assert_eq!(c.first_seq, Some(0), "nothing lost at the start: {c:?}");
            // Generous bound: debug builds on a loaded CI machine.
            assert!(
                c.mean_latency() < Some(Duration::from_millis(50)),
                "loopback latency: {c:?}"
            );
        }
        let video = stats.iter().find(|c| c.kind == Kind::Video).expect("video");
        assert!(
            video.keyframes >= 1,
            "first video frame is a keyframe: {video:?}"
        );
        assert!(
            shared.lock().errors.is_empty(),
            "{:?}",
            shared.lock().errors
        );
        eprintln!(
            "loopback latency: {:?}",
            stats
                .iter()
                .map(|c| (c.kind, c.mean_latency()))
                .collect::<Vec<_>>()
        );
        send.stop().await;
        recv.stop().await;
    }
}

//! A subscriber's connection (a recv transport) without str0m's `Rtc`.
//!
//! On a recv transport the worker sends and reads everything media itself (`sfu::egress`):
//! what str0m's `Rtc` still did there was ICE, DTLS and the SDP, and it cost ~55 KiB per
//! subscriber for streams, caches and reports nobody used (`docs/benchmarks.md`, "Memory per
//! subscriber"). [`RecvConn`] does those three jobs with str0m's public ICE agent (the same
//! one `Rtc` runs, as ICE-lite), one DTLS instance of the worker's shared provider
//! (`sfu::dtls`, which hands over the SRTP keys), and the offer and answer of
//! [`super::sdp`].
//!
//! Sans-IO like `Rtc`: datagrams and time go in, datagrams to send, events and the next
//! deadline come out ([`RecvConn::poll_output`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::config::DtlsCert;
use str0m::crypto::dtls::{DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion};
use str0m::format::{CodecConfig, PayloadParams};
use str0m::ice::{IceAgent, IceAgentEvent, IceCreds, StunMessage, StunPacket};
use str0m::media::{Mid, Pt};
use str0m::net::{Protocol, Transmit};
use str0m::{Candidate, IceConnectionState};
use tracing::debug;

use super::sdp::{self, Answer, AnswerMedia, OfferDirection, OfferLine, OfferSession};
use crate::model::MediaKind;
use crate::sfu::dtls::{self, KeySlot};
use crate::sfu::egress::{ExtIds, StreamSpec};

/// The MTU DTLS fragments its flights to: str0m's default for `Rtc`.
const DTLS_MTU: usize = str0m::DATAGRAM_MTU_TARGET;
/// When nothing is planned, the connection asks for time again after this.
const IDLE: Duration = Duration::from_secs(3600);
/// DTLS records are at most this large here (the MTU above, with room to spare).
const DTLS_BUF: usize = 2048;

/// Why a connection failed or refused an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// BUNDLE: every offered m-line must be in the answer.
    #[error("the answer has no m-line for mid '{0}'")]
    MissingMid(String),
    /// The answer has m-lines the offer did not have.
    #[error("the answer has {answered} m-lines, the offer {offered}")]
    TooManyLines { answered: usize, offered: usize },
    /// A later answer changed what the first one fixed (no ICE restart, one DTLS session).
    #[error("the answer changes the {0} of the connection")]
    AnswerChanged(&'static str),
    /// A fingerprint hash this server does not compute.
    #[error("the answer's fingerprint uses '{0}', which this server cannot check")]
    UnsupportedFingerprint(String),
    /// The peer's certificate is not the one its answer announced.
    #[error("the peer's DTLS certificate does not match the fingerprint of its answer")]
    FingerprintMismatch,
    /// The DTLS library refused a packet or a timeout; its message.
    #[error("DTLS: {0}")]
    Dtls(String),
}

/// What [`RecvConn::poll_output`] hands out.
#[derive(Debug)]
pub enum ConnOutput {
    /// A datagram to send.
    Transmit(Transmit),
    /// DTLS is up: the SRTP keys are in the connection's [`KeySlot`].
    Connected,
    /// ICE changed state (`Disconnected`: the subscriber stopped its consent checks).
    Ice(IceConnectionState),
    /// Nothing more until this time, or an input.
    Timeout(Instant),
}

/// What the subscriber accepted on one m-line: what the egress needs, nothing more of the
/// answer is kept.
#[derive(Debug)]
struct Accepted {
    mid: String,
    /// Our payload types it accepted (a subset of what we offered).
    pts: Vec<u8>,
    exts: ExtIds,
}

/// A recv transport's connection: see the module documentation.
pub struct RecvConn {
    ice: IceAgent,
    dtls: Box<dyn DtlsInstance>,
    /// Our certificate's SHA-256, for the offer's `a=fingerprint`: the worker's, shared.
    fingerprint: Arc<[u8]>,
    /// The first answer's ICE credentials and `a=fingerprint` (algorithm, digest): later
    /// answers must repeat them; the peer's certificate must match the fingerprint.
    remote: Option<(IceCreds, (String, Vec<u8>))>,
    /// Our DTLS side, from the first answer (true: we start the handshake). None: DTLS has
    /// not started, and DTLS datagrams are dropped (none can come before: the client sends
    /// DTLS only after an ICE check succeeded, and checks wait for the answer's credentials).
    dtls_active: Option<bool>,
    /// The handshake finished (reported once as [`ConnOutput::Connected`]).
    dtls_connected: bool,
    /// When DTLS wants `handle_timeout` (retransmissions), as it last said.
    dtls_timeout: Option<Instant>,
    /// DTLS datagrams waiting for ICE to nominate a pair.
    dtls_out: VecDeque<Vec<u8>>,
    /// Where to send: the pair ICE nominated (protocol, our address, the peer's).
    send: Option<(Protocol, SocketAddr, SocketAddr)>,
    /// Events for [`Self::poll_output`], in order.
    events: VecDeque<ConnOutput>,
    /// False once closed or failed: nothing more is sent or accepted.
    alive: bool,
    /// The latest time an input gave (sans-IO: the connection never reads the clock).
    last_now: Instant,
    /// Why the connection stopped, for the caller of the input that stopped it.
    failure: Option<ConnError>,
    /// The offer's `o=` session id and version (one more per offer).
    session_id: u64,
    version: u64,
    /// The mid of the next m-line.
    next_mid: u32,
    /// Every m-line offered so far, in order (m-lines are never removed).
    lines: Vec<OfferLine>,
    /// What the last answer accepted, per m-line.
    accepted: Vec<Accepted>,
}

impl std::fmt::Debug for RecvConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvConn")
            .field("ice", &self.ice.state())
            .field("dtls_connected", &self.dtls_connected)
            .field("send", &self.send)
            .field("lines", &self.lines.len())
            .field("alive", &self.alive)
            .finish()
    }
}

/// The codecs of every transport: what recv transports offer, and what publishers' str0m
/// connections accept (`worker::commands`).
pub fn codecs() -> &'static CodecConfig {
    static CODECS: std::sync::OnceLock<CodecConfig> = std::sync::OnceLock::new();
    CODECS.get_or_init(|| {
        let mut c = CodecConfig::new_with_defaults();
        c.clear();
        c.enable_opus(true, false);
        c.enable_vp8(true);
        c.enable_h264(true);
        c
    })
}

/// A worker's DTLS certificate and its SHA-256 fingerprint, computed once for all the
/// connections that present it.
#[derive(Clone)]
pub struct LocalCert {
    pub cert: DtlsCert,
    /// For the offers' `a=fingerprint`.
    fingerprint: Arc<[u8]>,
}

impl LocalCert {
    pub fn new(cert: DtlsCert) -> Self {
        let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert.certificate)
            .as_ref()
            .into();
        Self { cert, fingerprint }
    }
}

impl RecvConn {
    /// A connection presenting `local` in DTLS, offering `candidates`; the [`KeySlot`] gets
    /// the SRTP keys when DTLS is up.
    pub fn new(
        local: &LocalCert,
        candidates: &[Candidate],
        now: Instant,
    ) -> Result<(Self, KeySlot), ConnError> {
        let cert = &local.cert;
        let provider = dtls::crypto_provider();
        let mut ice = IceAgent::with_hmac(IceCreds::new(), provider.sha1_hmac_provider);
        ice.set_ice_lite(true);
        for c in candidates {
            ice.add_local_candidate(c.clone());
        }
        let (made, keys) = dtls::capture_keys(|| {
            dtls::shared().new_dtls(cert, now, DtlsVersion::Dtls12, Some(DTLS_MTU))
        });
        let dtls = made.map_err(|e| ConnError::Dtls(e.to_string()))?;
        let conn = Self {
            ice,
            dtls,
            fingerprint: local.fingerprint.clone(),
            remote: None,
            dtls_active: None,
            dtls_connected: false,
            dtls_timeout: None,
            dtls_out: VecDeque::new(),
            send: None,
            events: VecDeque::new(),
            alive: true,
            last_now: now,
            failure: None,
            session_id: rand::random::<u64>() >> 1,
            version: 0,
            next_mid: 0,
            lines: Vec::new(),
            accepted: Vec::new(),
        };
        Ok((conn, keys))
    }

    /// Our ICE credentials (the offer's `a=ice-ufrag` and `a=ice-pwd`).
    pub fn local_ice_credentials(&self) -> &IceCreds {
        self.ice.local_credentials()
    }

    /// Where to send (protocol, the peer's address): the pair ICE nominated last. The egress
    /// sends media there, also after ICE moved to another pair.
    pub fn destination(&self) -> Option<(Protocol, SocketAddr)> {
        self.send.map(|(proto, _, to)| (proto, to))
    }

    /// False once DTLS closed, the connection failed or [`Self::disconnect`] was called.
    pub fn is_alive(&self) -> bool {
        self.alive
    }

    /// Stops the connection: nothing more is sent or accepted. No DTLS close_notify is sent
    /// (the worker stops polling a closed transport, as with str0m's `Rtc`): the client
    /// hears of it through signaling or stops getting answers to its consent checks.
    pub fn disconnect(&mut self) {
        self.alive = false;
    }

    // ------------------------------------------------------------------ SDP

    /// A new `sendonly` m-line for a consumer of `kind`, in the next offer. `stream` and
    /// `track` are its msid (the publisher and the producer).
    pub fn add_line(&mut self, kind: MediaKind, stream: &str, track: &str) -> Mid {
        let mid = Mid::from(self.next_mid.to_string().as_str());
        self.next_mid += 1;
        let ssrc = self.new_ssrc();
        let rtx_ssrc = (kind == MediaKind::Video).then(|| self.new_ssrc_besides(ssrc));
        self.lines.push(OfferLine {
            mid: mid.to_string(),
            kind,
            direction: OfferDirection::SendOnly,
            stream: stream.to_string(),
            track: track.to_string(),
            ssrc,
            rtx_ssrc,
            cname: track.to_string(),
        });
        mid
    }

    /// The m-line of a closed consumer turns `inactive` in the next offer (m-lines are
    /// never removed).
    pub fn set_inactive(&mut self, mid: Mid) {
        if let Some(l) = self.line_mut(mid) {
            l.direction = OfferDirection::Inactive;
        }
    }

    /// The offer of every m-line so far, with a new version.
    pub fn offer(&mut self) -> String {
        self.version += 1;
        let ice = self.ice.local_credentials();
        // The agent's candidates, as it adjusted them (priorities, ufrag).
        let candidates: Vec<Candidate> = self.ice.local_candidates().collect();
        sdp::write_offer(
            &OfferSession {
                ufrag: &ice.ufrag,
                pwd: &ice.pass,
                fingerprint: ("sha-256", &self.fingerprint),
                candidates: &candidates,
                session_id: self.session_id,
                version: self.version,
            },
            &self.lines,
            codecs(),
        )
    }

    /// The subscriber's answer to the last offer. The first one gives the peer's ICE
    /// credentials and fingerprint and starts DTLS on the side it chose; later ones must
    /// keep them.
    pub fn accept_answer(&mut self, answer: Answer, now: Instant) -> Result<(), ConnError> {
        if answer.media.len() > self.lines.len() {
            return Err(ConnError::TooManyLines {
                answered: answer.media.len(),
                offered: self.lines.len(),
            });
        }
        if let Some(l) = self
            .lines
            .iter()
            .find(|l| !answer.media.iter().any(|m| m.mid == l.mid))
        {
            return Err(ConnError::MissingMid(l.mid.clone()));
        }
        let creds = IceCreds {
            ufrag: answer.ufrag.clone(),
            pass: answer.pwd.clone(),
        };
        match &self.remote {
            Some((c, _)) if *c != creds => return Err(ConnError::AnswerChanged("ICE credentials")),
            Some((_, f)) if *f != answer.fingerprint => {
                return Err(ConnError::AnswerChanged("DTLS fingerprint"))
            }
            Some(_) => {}
            None => {
                self.ice.set_remote_credentials(creds.clone());
                self.remote = Some((creds, answer.fingerprint.clone()));
            }
        }
        self.accepted = self
            .lines
            .iter()
            .filter_map(|l| answer.media.iter().find(|m| m.mid == l.mid))
            .map(|m| accepted(m, codecs()))
            .collect();
        if self.dtls_active.is_none() {
            // We offered actpass: the answer's side decides (browsers answer active, str0m
            // passive).
            let active = answer.offerer_is_dtls_client();
            self.dtls_active = Some(active);
            self.dtls.set_active(active);
            self.dtls
                .handle_timeout(now)
                .map_err(|e| ConnError::Dtls(e.to_string()))?;
            if active {
                // An empty datagram makes the client write its ClientHello now (as str0m's
                // `Rtc` does).
                let _ = self.dtls.handle_packet(&[]);
            }
            self.drain_dtls();
        }
        // Checks that came before the credentials are answered now.
        self.ice.handle_timeout(now);
        self.drain_ice();
        self.check()
    }

    /// What the egress needs to send a producer's packets of `params` on the m-line `mid`:
    /// our payload type for them, the RTX stream, the header extensions the subscriber
    /// accepted. None when the subscriber did not accept the codec.
    pub fn stream_spec(&self, mid: Mid, params: PayloadParams) -> Option<(StreamSpec, Pt)> {
        let ours = codecs().match_params(params)?;
        let (pt, rtx_pt, clock_rate) = (ours.pt(), ours.resend(), ours.spec().clock_rate.get());
        let line = self.lines.iter().find(|l| l.mid == *mid)?;
        let accepted = self.accepted.iter().find(|a| a.mid == *mid)?;
        if !accepted.pts.contains(&*pt) {
            return None;
        }
        let rtx = line
            .rtx_ssrc
            .zip(rtx_pt)
            .filter(|(_, p)| accepted.pts.contains(&**p))
            .map(|(s, p)| (s, *p));
        let exts = accepted.exts;
        let spec = StreamSpec {
            mid,
            ssrc: line.ssrc,
            pt: *pt,
            rtx,
            clock_rate,
            audio: line.kind == MediaKind::Audio,
            cname: line.cname.clone(),
            exts,
        };
        Some((spec, pt))
    }

    fn line_mut(&mut self, mid: Mid) -> Option<&mut OfferLine> {
        self.lines.iter_mut().find(|l| l.mid == *mid)
    }

    fn new_ssrc(&self) -> u32 {
        self.new_ssrc_besides(0)
    }

    /// A random SSRC no m-line of this connection uses, nor `other`.
    fn new_ssrc_besides(&self, other: u32) -> u32 {
        loop {
            let s: u32 = rand::random();
            let taken = s == 0
                || s == other
                || self
                    .lines
                    .iter()
                    .any(|l| l.ssrc == s || l.rtx_ssrc == Some(s));
            if !taken {
                return s;
            }
        }
    }

    // ------------------------------------------------------------------ datagrams

    /// True when the datagram from `source` belongs to this connection; `stun` is the
    /// datagram parsed as STUN, when it is STUN (parsed once for all connections).
    pub fn accepts(&self, source: SocketAddr, stun: Option<&StunMessage>) -> bool {
        if !self.alive {
            return false;
        }
        if self.send.is_some_and(|(_, _, to)| to == source) {
            return true;
        }
        match stun {
            Some(m) => self.ice.accepts_message(m),
            None => self.ice.has_viable_remote_candidate(source),
        }
    }

    /// A datagram [`Self::accepts`] took: `stun` is what [`parse_stun`] made of it. STUN goes
    /// to ICE, DTLS to DTLS; anything else is not this connection's (its SRTCP goes to the
    /// egress).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        stun: Option<StunMessage>,
    ) -> Result<(), ConnError> {
        match stun {
            Some(message) => {
                self.handle_stun(
                    now,
                    StunPacket {
                        proto,
                        source,
                        destination,
                        message,
                    },
                );
                Ok(())
            }
            None if is_dtls(data) => self.handle_dtls(now, data),
            None => Ok(()),
        }
    }

    /// A STUN message for this connection: a consent check of the subscriber, mostly.
    fn handle_stun(&mut self, now: Instant, packet: StunPacket) {
        if !self.alive {
            return;
        }
        self.last_now = self.last_now.max(now);
        self.ice.handle_packet(now, packet);
        // An ICE-lite agent nominates and changes state in its timeout handling (as str0m's
        // `Rtc` runs it after every datagram): without this, DTLS would wait for the next
        // deadline, up to seconds.
        self.ice.handle_timeout(now);
        self.drain_ice();
    }

    /// A DTLS datagram for this connection.
    fn handle_dtls(&mut self, now: Instant, data: &[u8]) -> Result<(), ConnError> {
        if !self.alive || self.dtls_active.is_none() {
            return Ok(());
        }
        self.last_now = self.last_now.max(now);
        // dimpl counts its flight and handshake timers from the time it was last told.
        self.tick_dtls(now)?;
        let handled = self.dtls.handle_packet(data);
        // A packet DTLS refused may still have moved its state: read what it has.
        self.drain_dtls();
        self.check()?;
        handled.map_err(|e| ConnError::Dtls(e.to_string()))
    }

    /// Time passes: ICE consent and retransmissions, DTLS retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnError> {
        if !self.alive {
            return Ok(());
        }
        self.last_now = self.last_now.max(now);
        self.ice.handle_timeout(now);
        self.drain_ice();
        if self.dtls_timeout.is_some_and(|t| t <= now) {
            self.dtls_timeout = None;
            self.tick_dtls(now)?;
            self.drain_dtls();
            self.check()?;
        }
        Ok(())
    }

    /// Tells DTLS the time; a failure there leaves it unusable, and the connection stops.
    fn tick_dtls(&mut self, now: Instant) -> Result<(), ConnError> {
        self.dtls.handle_timeout(now).map_err(|e| {
            self.alive = false;
            ConnError::Dtls(e.to_string())
        })
    }

    /// The next thing to do: send a datagram, report an event, or wait.
    pub fn poll_output(&mut self) -> ConnOutput {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        if !self.alive {
            return ConnOutput::Timeout(self.last_now + IDLE);
        }
        if let Some(t) = self.ice.poll_transmit() {
            return ConnOutput::Transmit(t);
        }
        if let Some((proto, source, destination)) = self.send {
            if let Some(contents) = self.dtls_out.pop_front() {
                return ConnOutput::Transmit(Transmit {
                    proto,
                    source,
                    destination,
                    contents: contents.into(),
                });
            }
        }
        let next = [self.ice.poll_timeout(), self.dtls_timeout]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.last_now + IDLE);
        ConnOutput::Timeout(next)
    }

    fn drain_ice(&mut self) {
        while let Some(e) = self.ice.poll_event() {
            match e {
                IceAgentEvent::IceConnectionStateChange(s) => {
                    self.events.push_back(ConnOutput::Ice(s));
                }
                IceAgentEvent::NominatedSend {
                    proto,
                    source,
                    destination,
                } => {
                    debug!(%destination, ?proto, "ICE nominated");
                    self.send = Some((proto, source, destination));
                }
                IceAgentEvent::DiscoveredRecv { .. } | IceAgentEvent::IceRestart(_) => {}
            }
        }
    }

    /// Reads everything DTLS has to say: datagrams, the end of the handshake, the peer's
    /// certificate, its deadline.
    fn drain_dtls(&mut self) {
        if self.dtls_active.is_none() {
            return;
        }
        let mut buf = [0u8; DTLS_BUF];
        loop {
            match self.dtls.poll_output(&mut buf) {
                DtlsOutput::Packet(p) => self.dtls_out.push_back(p.to_vec()),
                DtlsOutput::Timeout(t) => {
                    self.dtls_timeout = Some(t);
                    return;
                }
                DtlsOutput::Connected if !self.dtls_connected => {
                    self.dtls_connected = true;
                    self.events.push_back(ConnOutput::Connected);
                }
                DtlsOutput::PeerCert(der) => {
                    if let Err(e) = self.verify(der) {
                        self.fail(e);
                        return;
                    }
                }
                DtlsOutput::CloseNotify => {
                    debug!("DTLS closed by the peer");
                    self.alive = false;
                    return;
                }
                DtlsOutput::BufferTooSmall { needed } => {
                    self.fail(ConnError::Dtls(format!("a record of {needed} bytes")));
                    return;
                }
                // The keys went to the key slot (`sfu::dtls`); no data channels here.
                _ => {}
            }
        }
    }

    /// The peer's certificate against its answer's fingerprint (RFC 8122 §5).
    fn verify(&self, der: &[u8]) -> Result<(), ConnError> {
        use aws_lc_rs::digest;
        let Some((_, (alg, expected))) = &self.remote else {
            return Err(ConnError::FingerprintMismatch);
        };
        let algorithm = match alg.as_str() {
            "sha-256" => &digest::SHA256,
            "sha-384" => &digest::SHA384,
            "sha-512" => &digest::SHA512,
            "sha-1" => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            other => return Err(ConnError::UnsupportedFingerprint(other.to_string())),
        };
        if digest::digest(algorithm, der).as_ref() == expected.as_slice() {
            Ok(())
        } else {
            Err(ConnError::FingerprintMismatch)
        }
    }

    /// The failure an input caused, once.
    fn check(&mut self) -> Result<(), ConnError> {
        self.failure.take().map_or(Ok(()), Err)
    }

    fn fail(&mut self, e: ConnError) {
        debug!("recv connection failed: {e}");
        self.alive = false;
        self.failure = Some(e);
    }
}

/// What `m` accepted of our offer: the payload types of `codecs` it kept, and the ids of the
/// header extensions the egress writes.
fn accepted(m: &AnswerMedia, codecs: &CodecConfig) -> Accepted {
    let pts = if m.rejected {
        Vec::new()
    } else {
        codecs
            .params()
            .iter()
            .flat_map(|p| [Some(*p.pt()), p.resend().map(|r| *r)])
            .flatten()
            .filter(|pt| m.accepts(*pt))
            .collect()
    };
    Accepted {
        mid: m.mid.clone(),
        pts,
        exts: ExtIds {
            mid: m.ext_id(sdp::URI_MID),
            abs_send_time: m.ext_id(sdp::URI_ABS_SEND_TIME),
            transport_cc: m.ext_id(sdp::URI_TRANSPORT_CC),
            audio_level: m.ext_id(sdp::URI_AUDIO_LEVEL),
            video_orientation: m.ext_id(sdp::URI_VIDEO_ORIENTATION),
        },
    }
}

/// `data` as STUN, when it is STUN (RFC 7983: it starts with 0-3) and parses. Parsed once
/// per datagram by the worker, then offered to each connection's [`RecvConn::accepts`].
pub fn parse_stun(data: &[u8]) -> Option<StunMessage<'_>> {
    data.first()
        .is_some_and(|b| *b < 4)
        .then(|| StunMessage::parse(data).ok())
        .flatten()
}

/// RFC 7983: DTLS starts with 20-63.
fn is_dtls(data: &[u8]) -> bool {
    data.first().is_some_and(|b| (20..64).contains(b))
}

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
use std::time::{Duration, Instant};

use str0m::config::DtlsCert;
use str0m::crypto::dtls::{DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion};
use str0m::format::{CodecConfig, PayloadParams};
use str0m::ice::{IceAgent, IceAgentEvent, IceCreds, StunMessage, StunPacket};
use str0m::media::{Mid, Pt};
use str0m::net::{Protocol, Transmit};
use str0m::{Candidate, IceConnectionState};
use tracing::debug;

use super::sdp::{self, Answer, OfferDirection, OfferLine, OfferSession, Setup};
use crate::model::MediaKind;
use crate::sfu::dtls::{self, KeySlot};
use crate::sfu::egress::{ExtIds, StreamSpec};

/// The MTU DTLS fragments its flights to: str0m's default for `Rtc`.
const DTLS_MTU: usize = str0m::DATAGRAM_MTU_TARGET;
/// DTLS datagrams that arrive before the answer says which side starts the handshake: a
/// browser's ClientHello and its retransmissions. Kept until the answer, not more.
const MAX_EARLY_DTLS: usize = 4;
/// DTLS records are at most this large here (the MTU above, with room to spare).
const DTLS_BUF: usize = 2048;

/// Why a connection failed or refused an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    #[error("the answer has no m-line for mid '{0}'")]
    MissingMid(String),
    #[error("the answer's fingerprint uses '{0}', which this server cannot check")]
    UnsupportedFingerprint(String),
    #[error("the peer's DTLS certificate does not match the fingerprint of its answer")]
    FingerprintMismatch,
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

/// A recv transport's connection: see the module documentation.
pub struct RecvConn {
    ice: IceAgent,
    dtls: Box<dyn DtlsInstance>,
    /// Our certificate's SHA-256, for the offer's `a=fingerprint`.
    fingerprint: Vec<u8>,
    /// The answer's `a=fingerprint` (algorithm, digest), checked against the peer's
    /// certificate.
    remote_fingerprint: Option<(String, Vec<u8>)>,
    /// The side DTLS plays, once an answer said it (true: we start the handshake).
    dtls_active: Option<bool>,
    dtls_connected: bool,
    dtls_timeout: Option<Instant>,
    /// DTLS datagrams received before the answer.
    early_dtls: Vec<Vec<u8>>,
    /// DTLS datagrams waiting for ICE to nominate a pair.
    dtls_out: VecDeque<Vec<u8>>,
    /// Where to send: the pair ICE nominated.
    send: Option<(Protocol, SocketAddr, SocketAddr)>,
    events: VecDeque<ConnOutput>,
    alive: bool,
    /// Why the connection stopped, for the caller of the input that stopped it.
    failure: Option<ConnError>,
    candidates: Vec<Candidate>,
    session_id: u64,
    version: u64,
    next_mid: u32,
    /// Every m-line offered so far, in order (m-lines are never removed).
    lines: Vec<OfferLine>,
    answer: Option<Answer>,
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

/// The codecs every recv transport offers: the same as the worker's str0m connections.
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

impl RecvConn {
    /// A connection with `cert` for DTLS, offering `candidates`; the [`KeySlot`] gets the
    /// SRTP keys when DTLS is up.
    pub fn new(
        cert: &DtlsCert,
        candidates: Vec<Candidate>,
        now: Instant,
    ) -> Result<(Self, KeySlot), ConnError> {
        let provider = dtls::crypto_provider();
        let mut ice = IceAgent::with_hmac(IceCreds::new(), provider.sha1_hmac_provider);
        ice.set_ice_lite(true);
        for c in &candidates {
            ice.add_local_candidate(c.clone());
        }
        let (made, keys) = dtls::capture_keys(|| {
            dtls::shared().new_dtls(cert, now, DtlsVersion::Dtls12, Some(DTLS_MTU))
        });
        let dtls = made.map_err(|e| ConnError::Dtls(e.to_string()))?;
        let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert.certificate)
            .as_ref()
            .to_vec();
        let conn = Self {
            ice,
            dtls,
            fingerprint,
            remote_fingerprint: None,
            dtls_active: None,
            dtls_connected: false,
            dtls_timeout: None,
            early_dtls: Vec::new(),
            dtls_out: VecDeque::new(),
            send: None,
            events: VecDeque::new(),
            alive: true,
            failure: None,
            candidates,
            session_id: rand::random::<u64>() >> 1,
            version: 0,
            next_mid: 0,
            lines: Vec::new(),
            answer: None,
        };
        Ok((conn, keys))
    }

    /// Our ICE credentials (the offer's `a=ice-ufrag` and `a=ice-pwd`).
    pub fn local_ice_credentials(&self) -> &IceCreds {
        self.ice.local_credentials()
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
        sdp::write_offer(
            &OfferSession {
                ufrag: &ice.ufrag,
                pwd: &ice.pass,
                fingerprint: ("sha-256", &self.fingerprint),
                candidates: &self.candidates,
                session_id: self.session_id,
                version: self.version,
            },
            &self.lines,
            codecs(),
        )
    }

    /// The subscriber's answer to the last offer. The first one starts DTLS on the side it
    /// chose.
    pub fn accept_answer(&mut self, answer: Answer) -> Result<(), ConnError> {
        if let Some(l) = self
            .lines
            .iter()
            .find(|l| !answer.media.iter().any(|m| m.mid == l.mid))
        {
            return Err(ConnError::MissingMid(l.mid.clone()));
        }
        self.ice.set_remote_credentials(IceCreds {
            ufrag: answer.ufrag.clone(),
            pass: answer.pwd.clone(),
        });
        self.remote_fingerprint = Some(answer.fingerprint.clone());
        if self.dtls_active.is_none() {
            // We offered actpass: the answer's side decides. Browsers answer active.
            let active = answer.setup == Setup::Passive;
            self.dtls_active = Some(active);
            self.dtls.set_active(active);
            let now = Instant::now();
            self.dtls
                .handle_timeout(now)
                .map_err(|e| ConnError::Dtls(e.to_string()))?;
            for early in std::mem::take(&mut self.early_dtls) {
                // A stale retransmission may be refused: the handshake goes on.
                let _ = self.dtls.handle_packet(&early);
            }
            self.drain_dtls();
        }
        self.answer = Some(answer);
        self.check()
    }

    /// What the egress needs to send a producer's packets of `params` on the m-line `mid`:
    /// our payload type for them, the RTX stream, the header extensions the subscriber
    /// accepted. None when the subscriber did not accept the codec.
    pub fn stream_spec(&self, mid: Mid, params: PayloadParams) -> Option<(StreamSpec, Pt)> {
        let ours = codecs().match_params(params)?;
        let (pt, rtx_pt, clock_rate) = (ours.pt(), ours.resend(), ours.spec().clock_rate.get());
        let line = self.lines.iter().find(|l| l.mid == *mid)?;
        let answered = self
            .answer
            .as_ref()?
            .media
            .iter()
            .find(|m| m.mid == *mid && !m.rejected)?;
        if !answered.accepts(*pt) {
            return None;
        }
        let rtx = line
            .rtx_ssrc
            .zip(rtx_pt)
            .filter(|(_, p)| answered.accepts(**p))
            .map(|(s, p)| (s, *p));
        let exts = ExtIds {
            mid: answered.ext_id(sdp::URI_MID),
            abs_send_time: answered.ext_id(sdp::URI_ABS_SEND_TIME),
            transport_cc: answered.ext_id(sdp::URI_TRANSPORT_CC),
            audio_level: answered.ext_id(sdp::URI_AUDIO_LEVEL),
            video_orientation: answered.ext_id(sdp::URI_VIDEO_ORIENTATION),
        };
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

    /// True when the datagram from `source` belongs to this connection.
    pub fn accepts(&self, source: SocketAddr, data: &[u8]) -> bool {
        if !self.alive {
            return false;
        }
        if self.send.is_some_and(|(_, _, to)| to == source) {
            return true;
        }
        if is_stun(data) {
            return StunMessage::parse(data).is_ok_and(|m| self.ice.accepts_message(&m));
        }
        self.ice.has_viable_remote_candidate(source)
    }

    /// A STUN or DTLS datagram for this connection (its SRTCP goes to the egress).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<(), ConnError> {
        if !self.alive {
            return Ok(());
        }
        if is_stun(data) {
            let Ok(message) = StunMessage::parse(data) else {
                return Ok(());
            };
            self.ice.handle_packet(
                now,
                StunPacket {
                    proto,
                    source,
                    destination,
                    message,
                },
            );
            self.drain_ice();
            return Ok(());
        }
        if !is_dtls(data) {
            return Ok(());
        }
        if self.dtls_active.is_none() {
            if self.early_dtls.len() < MAX_EARLY_DTLS {
                self.early_dtls.push(data.to_vec());
            }
            return Ok(());
        }
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
        self.ice.handle_timeout(now);
        self.drain_ice();
        if self.dtls_timeout.is_some_and(|t| t <= now) {
            self.dtls_timeout = None;
            if let Err(e) = self.dtls.handle_timeout(now) {
                self.alive = false;
                return Err(ConnError::Dtls(e.to_string()));
            }
            self.drain_dtls();
            self.check()?;
        }
        Ok(())
    }

    /// The next thing to do: send a datagram, report an event, or wait.
    pub fn poll_output(&mut self) -> ConnOutput {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        if !self.alive {
            return ConnOutput::Timeout(far_future());
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
            .unwrap_or_else(far_future);
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
        let Some((alg, expected)) = &self.remote_fingerprint else {
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

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// RFC 7983: STUN starts with 0-3, DTLS with 20-63.
fn is_stun(data: &[u8]) -> bool {
    data.first().is_some_and(|b| *b < 4)
}

fn is_dtls(data: &[u8]) -> bool {
    data.first().is_some_and(|b| (20..64).contains(b))
}

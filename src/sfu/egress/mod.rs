//! The send side of a subscriber connection, done by the worker itself: str0m negotiates the
//! connection (ICE, DTLS, SDP) and this takes over once DTLS has produced the SRTP keys. Per
//! forwarded packet it writes the RTP header of the subscriber's stream (its SSRC, the
//! rewritten sequence number and time, the header extensions the subscriber negotiated, a
//! transport sequence number), patches the VP8 ids, encrypts, and hands the datagram to the
//! worker's batch: one pass, no copy of the payload besides the one encryption needs, no
//! per-connection timer or queue per packet.
//!
//! It also reads what the subscriber sends back (SRTCP: receiver reports, NACKs, keyframe
//! requests, transport-wide feedback), sends sender reports so that the browser can
//! synchronise audio and video, keeps the bandwidth estimate ([`bwe`]) and sends its probes.
//!
//! Why not str0m's own send path: its per-packet work (a queue, a pacer and a session timeout
//! per packet, a resend cache and congestion records per stream) was two thirds of a
//! forwarded packet's cost and most of a subscriber's memory (`docs/benchmarks.md`).
//!
//! Owns: SRTP contexts, per-stream counters, the estimator. Does not own: which packets exist
//! and who gets them (the worker's forwarding), the packet history for NACKs
//! (`sfu::history`), the socket (the worker's batch).

pub mod bwe;
pub mod rtcp;
pub mod srtp;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use str0m::media::Mid;

use crate::sfu::rewrite::Vp8Ids;
use bwe::probe::PROBE_PADDING;
use rtcp::{Feedback, TwccResult};
use srtp::{Keys, SrtpError, MAX_RTCP_OVERHEAD, MAX_RTP_OVERHEAD};

/// Sender reports: every second for video, every five for audio (str0m's and libwebrtc's
/// intervals), the first soon after the first packet.
const SR_VIDEO: Duration = Duration::from_secs(1);
const SR_AUDIO: Duration = Duration::from_secs(5);
const SR_FIRST: Duration = Duration::from_millis(100);
/// Longest a connection goes without the worker looking at it (sender reports, probes).
const IDLE: Duration = Duration::from_secs(1);
/// Bytes of the scratch buffer a packet is written in ([`Egress::flush`]'s `buf`): one per
/// worker, not per connection.
pub const SCRATCH: usize = 2048;
/// NTP's epoch (1900) is this many seconds before Unix's.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The header extension ids a subscriber's m-line negotiated (None: not negotiated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtIds {
    pub mid: Option<u8>,
    pub abs_send_time: Option<u8>,
    pub transport_cc: Option<u8>,
    pub audio_level: Option<u8>,
    pub video_orientation: Option<u8>,
}

/// One outgoing stream (one consumer's m-line) as negotiated.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub mid: Mid,
    pub ssrc: u32,
    pub pt: u8,
    /// The repair stream: its SSRC and payload type, when the subscriber negotiated RTX.
    pub rtx: Option<(u32, u8)>,
    pub clock_rate: u32,
    pub audio: bool,
    /// The CNAME of the m-line's `a=ssrc` lines, for SDES.
    pub cname: String,
    pub exts: ExtIds,
}

#[derive(Debug)]
struct OutStream {
    spec: StreamSpec,
    /// Sent on the SSRC, for sender reports.
    packets: u32,
    octets: u32,
    /// RTP time of the newest packet and the wall clock it stands for.
    last: Option<(u32, Instant)>,
    highest_seq: u64,
    /// A receiver report named the SSRC: the MID extension is no longer needed.
    acked: bool,
    /// The MID extension's id and value, when negotiated (a `Mid` reads as text only by
    /// validating and trimming it, too slow for every packet).
    mid_ext: Option<(u8, MidBytes)>,
    /// Next sequence number of the repair stream (extended).
    rtx_seq: u64,
    next_sr: Option<Instant>,
    closed: bool,
}

/// What to send: a packet of a consumer's stream, rewritten for it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// From [`Egress::add_stream`].
    pub stream: usize,
    /// The consumer's extended sequence number.
    pub seq: u64,
    pub time: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    /// New VP8 picture id and TL0PICIDX, when the consumer's run shifts them.
    pub vp8: Option<Vp8Ids>,
    /// Audio level (-dBov) and voice activity.
    pub audio_level: Option<(i8, bool)>,
    pub video_orientation: Option<u8>,
    /// The wall clock the RTP time stands for (the packet's arrival at the server).
    pub wallclock: Instant,
    /// A resend for a NACK: goes on the repair stream when there is one.
    pub resend: bool,
}

/// What the subscriber asked for in its RTCP, for the worker to act on.
#[derive(Debug, Default)]
pub struct Requests {
    /// NACKed sequence numbers (extended, the consumer's), by m-line.
    pub nacks: Vec<(Mid, u64)>,
    /// Keyframes asked for (PLI or FIR), by m-line.
    pub keyframes: Vec<Mid>,
}

impl Requests {
    pub fn clear(&mut self) {
        self.nacks.clear();
        self.keyframes.clear();
    }
}

/// Why a datagram from the subscriber was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error(transparent)]
    Srtp(#[from] SrtpError),
    #[error(transparent)]
    Rtcp(#[from] rtcp::RtcpError),
}

/// Counters of one connection's send side, for the worker's statistics.
#[derive(Debug, Default, Clone, Copy)]
pub struct EgressCounters {
    pub packets: u64,
    pub bytes: u64,
    pub probe_packets: u64,
    pub sender_reports: u64,
}

/// The send side of one subscriber connection. See the module documentation.
pub struct Egress {
    sender: srtp::Sender,
    receiver: srtp::RtcpReceiver,
    streams: Vec<OutStream>,
    queue: Vec<Outgoing>,
    bwe: bwe::Estimator,
    /// Next transport sequence number.
    twcc_seq: u64,
    /// An instant and the NTP time it is, for sender reports and abs-send-time.
    ntp_base: (Instant, u64),
    results: Vec<TwccResult>,
    counters: EgressCounters,
    /// A write scheduled a first sender report: the worker must ask [`Egress::next_timeout`].
    timers_changed: bool,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("streams", &self.streams.len())
            .field("queued", &self.queue.len())
            .field("estimate", &self.bwe.estimate())
            .finish()
    }
}

fn ntp_now() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    to_ntp(Duration::from_secs(NTP_UNIX_OFFSET) + since)
}

fn to_ntp(d: Duration) -> u64 {
    (d.as_secs() << 32) + ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

impl Egress {
    /// The send side of a connection whose DTLS produced `keys`; `initial_bps` starts the
    /// bandwidth estimate.
    pub fn new(keys: &Keys, initial_bps: u64, now: Instant) -> Result<Egress, SrtpError> {
        let mut sender = keys.sender()?;
        // str0m keeps its own SRTCP context on these keys (its reports are dropped, never
        // sent); starting far from its index keeps every (SSRC, index) pair unique anyway.
        sender.set_srtcp_index(1 << 30);
        Ok(Egress {
            sender,
            receiver: keys.rtcp_receiver()?,
            streams: Vec::new(),
            queue: Vec::new(),
            bwe: bwe::Estimator::new(initial_bps, now),
            twcc_seq: 0,
            ntp_base: (now, ntp_now()),
            results: Vec::new(),
            counters: EgressCounters::default(),
            timers_changed: false,
        })
    }

    /// The bandwidth estimate (bps).
    pub fn estimate(&self) -> u64 {
        self.bwe.estimate()
    }

    /// What the connection would like to send; above the estimate it is probed for.
    pub fn set_desired(&mut self, bps: u64) {
        self.bwe.set_desired(bps);
    }

    pub fn counters(&self) -> EgressCounters {
        self.counters
    }

    /// Adds an outgoing stream (or replaces the one on the same m-line); returns its index
    /// for [`Outgoing::stream`].
    pub fn add_stream(&mut self, spec: StreamSpec) -> usize {
        let mid_ext = spec
            .exts
            .mid
            .and_then(|id| Some((id, MidBytes::new(&spec.mid)?)));
        let stream = OutStream {
            mid_ext,
            spec,
            packets: 0,
            octets: 0,
            last: None,
            highest_seq: 0,
            acked: false,
            rtx_seq: u64::from(rand::random::<u16>() & 0x7fff),
            next_sr: None,
            closed: false,
        };
        let i = match self
            .streams
            .iter()
            .position(|s| s.spec.mid == stream.spec.mid)
        {
            Some(i) => {
                self.streams[i] = stream;
                i
            }
            None => {
                self.streams.push(stream);
                self.streams.len() - 1
            }
        };
        self.update_can_probe();
        i
    }

    /// The stream's consumer is gone: no more reports about it.
    pub fn close_stream(&mut self, stream: usize) {
        if let Some(s) = self.streams.get_mut(stream) {
            s.closed = true;
        }
        self.update_can_probe();
    }

    fn update_can_probe(&mut self) {
        let can = self.probe_stream().is_some();
        self.bwe.set_can_probe(can);
    }

    /// The stream probes are padded on: an open video stream with RTX and the transport
    /// sequence number extension (without which a probe tells nothing).
    fn probe_stream(&self) -> Option<usize> {
        self.streams.iter().position(|s| {
            !s.closed && !s.spec.audio && s.spec.rtx.is_some() && s.spec.exts.transport_cc.is_some()
        })
    }

    /// Queues a packet; it is written at the next [`Egress::flush`].
    pub fn queue(&mut self, packet: Outgoing) {
        self.queue.push(packet);
    }

    /// Drops what is queued (there is nowhere to send it).
    pub fn discard_queued(&mut self) {
        self.queue.clear();
    }

    /// True when packets wait for [`Egress::flush`].
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    fn ntp(&self, at: Instant) -> u64 {
        let (base_at, base_ntp) = self.ntp_base;
        match at.checked_duration_since(base_at) {
            Some(d) => base_ntp.wrapping_add(to_ntp(d)),
            None => base_ntp.wrapping_sub(to_ntp(base_at.duration_since(at))),
        }
    }

    /// Writes, encrypts and hands to `out` every queued packet, each written in `buf`
    /// ([`SCRATCH`] bytes). Returns true when [`Egress::next_timeout`] moved earlier (a
    /// stream's first sender report is due).
    pub fn flush(&mut self, now: Instant, buf: &mut [u8], out: &mut impl FnMut(&[u8])) -> bool {
        let queue = std::mem::take(&mut self.queue);
        let abs_send_time = ((self.ntp(now) >> 14) & 0x00ff_ffff) as u32;
        for p in &queue {
            match self.write(p, now, abs_send_time, buf) {
                Ok(n) => out(&buf[..n]),
                Err(e) => tracing::debug!("packet not sent: {e}"),
            }
        }
        // Keep the queue's allocation for the next turn.
        self.queue = queue;
        self.queue.clear();
        std::mem::take(&mut self.timers_changed)
    }

    fn write(
        &mut self,
        p: &Outgoing,
        now: Instant,
        abs_send_time: u32,
        buf: &mut [u8],
    ) -> Result<usize, SrtpError> {
        let Some(s) = self.streams.get_mut(p.stream) else {
            return Err(SrtpError::NoRoom);
        };
        let repair = if p.resend { s.spec.rtx } else { None };
        let (ssrc, pt, index) = match repair {
            Some((ssrc, pt)) => {
                let index = s.rtx_seq;
                s.rtx_seq += 1;
                (ssrc, pt, index)
            }
            None => (s.spec.ssrc, s.spec.pt, p.seq),
        };
        let twcc = s.spec.exts.transport_cc.map(|id| {
            let seq = self.twcc_seq;
            self.twcc_seq += 1;
            (id, seq)
        });
        let exts = Exts {
            mid: s.mid_ext.filter(|_| !s.acked || repair.is_some()),
            abs_send_time: s.spec.exts.abs_send_time.map(|id| (id, abs_send_time)),
            transport_cc: twcc.map(|(id, seq)| (id, seq as u16)),
            audio_level: s.spec.exts.audio_level.zip(p.audio_level),
            video_orientation: s.spec.exts.video_orientation.zip(p.video_orientation),
        };
        let mut at = write_header(buf, p.marker, pt, index as u16, p.time, ssrc, false, &exts);
        let header_len = at;
        if repair.is_some() {
            buf[at..at + 2].copy_from_slice(&(p.seq as u16).to_be_bytes());
            at += 2;
        }
        let payload_at = at;
        let end = at + p.payload.len();
        let protected = if end + MAX_RTP_OVERHEAD > buf.len() {
            Err(SrtpError::NoRoom)
        } else {
            buf[payload_at..end].copy_from_slice(&p.payload);
            if let Some(ids) = p.vp8 {
                patch_vp8(&mut buf[payload_at..end], ids);
            }
            self.sender.protect_rtp(buf, header_len, end, ssrc, index)
        };
        let n = match protected {
            Ok(n) => n,
            Err(e) => {
                // Nothing went out: the sequence numbers it took are given back, so that the
                // transport's and the repair stream's stay without gaps.
                if twcc.is_some() {
                    self.twcc_seq -= 1;
                }
                if repair.is_some() {
                    s.rtx_seq -= 1;
                }
                return Err(e);
            }
        };
        if repair.is_none() {
            s.packets = s.packets.wrapping_add(1);
            s.octets = s.octets.wrapping_add(p.payload.len() as u32);
            if p.seq >= s.highest_seq {
                s.highest_seq = p.seq;
                s.last = Some((p.time, p.wallclock));
            }
            if s.next_sr.is_none() {
                s.next_sr = Some(now + SR_FIRST);
                self.timers_changed = true;
            }
        }
        if let Some((_, seq)) = twcc {
            self.bwe.on_sent(seq, now, n, None);
        }
        self.counters.packets += 1;
        self.counters.bytes += n as u64;
        Ok(n)
    }

    /// Sends what is due at `now` (sender reports, probe packets) through `out`, each written
    /// in `buf` ([`SCRATCH`] bytes); returns when it next wants to be called.
    pub fn on_timeout(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        out: &mut impl FnMut(&[u8]),
    ) -> Instant {
        for i in 0..self.streams.len() {
            let s = &self.streams[i];
            if s.closed || s.next_sr.is_none_or(|at| at > now) {
                continue;
            }
            match self.sender_report(i, now, buf) {
                Ok(n) => {
                    self.counters.sender_reports += 1;
                    out(&buf[..n]);
                }
                Err(e) => tracing::debug!("sender report not sent: {e}"),
            }
            let s = &mut self.streams[i];
            s.next_sr = Some(now + if s.spec.audio { SR_AUDIO } else { SR_VIDEO });
        }
        self.bwe.next_probe_at(now);
        while let Some(cluster) = self.bwe.probe_due(now) {
            match self.probe_packet(cluster, now, buf) {
                Some(n) => {
                    self.counters.probe_packets += 1;
                    out(&buf[..n]);
                }
                None => {
                    self.bwe.set_can_probe(false);
                    break;
                }
            }
        }
        self.next_timeout(now)
    }

    /// When [`Egress::on_timeout`] next has something to do.
    pub fn next_timeout(&mut self, now: Instant) -> Instant {
        let sr = self
            .streams
            .iter()
            .filter(|s| !s.closed)
            .filter_map(|s| s.next_sr)
            .min();
        let probe = self.bwe.next_probe_at(now);
        [sr, probe]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + IDLE)
            .min(now + IDLE)
    }

    fn sender_report(
        &mut self,
        i: usize,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<usize, SrtpError> {
        let ntp = self.ntp(now);
        let s = &self.streams[i];
        let rtp_time = match s.last {
            Some((time, wallclock)) => {
                let elapsed = now.saturating_duration_since(wallclock);
                let ticks = elapsed.as_micros() * u128::from(s.spec.clock_rate) / 1_000_000;
                time.wrapping_add(ticks as u32)
            }
            None => 0,
        };
        let n = rtcp::write_sender_report(buf, s.spec.ssrc, ntp, rtp_time, s.packets, s.octets);
        let n = n + rtcp::write_sdes_cname(&mut buf[n..], s.spec.ssrc, &s.spec.cname);
        if n + MAX_RTCP_OVERHEAD > buf.len() {
            return Err(SrtpError::NoRoom);
        }
        self.sender.protect_rtcp(buf, n)
    }

    fn probe_packet(&mut self, cluster: u8, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let i = self.probe_stream()?;
        let abs = ((self.ntp(now) >> 14) & 0x00ff_ffff) as u32;
        let s = &mut self.streams[i];
        let (ssrc, pt) = s.spec.rtx?;
        let id = s.spec.exts.transport_cc?;
        let seq = self.twcc_seq;
        self.twcc_seq += 1;
        let index = s.rtx_seq;
        s.rtx_seq += 1;
        let exts = Exts {
            mid: s.mid_ext,
            abs_send_time: s.spec.exts.abs_send_time.map(|e| (e, abs)),
            transport_cc: Some((id, seq as u16)),
            audio_level: None,
            video_orientation: None,
        };
        let time = s.last.map_or(0, |l| l.0);
        let header_len = write_header(buf, false, pt, index as u16, time, ssrc, true, &exts);
        let end = header_len + PROBE_PADDING;
        buf[header_len..end].fill(0);
        buf[end - 1] = PROBE_PADDING as u8;
        let n = self
            .sender
            .protect_rtp(buf, header_len, end, ssrc, index)
            .ok()?;
        self.bwe.on_sent(seq, now, n, Some(cluster));
        self.counters.packets += 1;
        self.counters.bytes += n as u64;
        Some(n)
    }

    /// Reads an SRTCP datagram from the subscriber: acts on reports and transport-wide
    /// feedback here, and puts NACKs and keyframe requests in `requests` for the worker.
    pub fn on_rtcp(
        &mut self,
        datagram: &[u8],
        now: Instant,
        requests: &mut Requests,
    ) -> Result<(), EgressError> {
        let now_ntp = rtcp::ntp_middle(self.ntp(now));
        let plain = self.receiver.unprotect(datagram)?;
        let mut twcc: Vec<&[u8]> = Vec::new();
        let mut reports = Vec::new();
        let streams = &self.streams;
        let by_ssrc = |ssrc: u32| {
            streams
                .iter()
                .position(|s| !s.closed && s.spec.ssrc == ssrc)
        };
        let read = rtcp::read_compound(plain, |f| match f {
            Feedback::Report(rb) => reports.push(rb),
            Feedback::Nack {
                media_ssrc,
                pid,
                blp,
            } => {
                if let Some(i) = by_ssrc(media_ssrc) {
                    let s = &streams[i];
                    for seq in rtcp::nacked(pid, blp) {
                        if let Some(ext) = extend_seq(s.highest_seq, seq) {
                            requests.nacks.push((s.spec.mid, ext));
                        }
                    }
                }
            }
            Feedback::Pli { media_ssrc } | Feedback::Fir { media_ssrc } => {
                if let Some(i) = by_ssrc(media_ssrc) {
                    requests.keyframes.push(streams[i].spec.mid);
                }
            }
            Feedback::Twcc(body) => twcc.push(body),
        });
        for rb in reports {
            if let Some(s) = self.streams.iter_mut().find(|s| s.spec.ssrc == rb.ssrc) {
                s.acked = true;
            }
            if rb.last_sr != 0 {
                // RFC 3550 §6.4.1: now - LSR - DLSR, in 1/65536 s.
                let rtt = now_ntp
                    .wrapping_sub(rb.last_sr)
                    .wrapping_sub(rb.delay_since_last_sr);
                if rtt < 65_536 * 2 {
                    self.bwe
                        .set_rtt(Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536));
                }
            }
        }
        for body in twcc {
            let mut results = std::mem::take(&mut self.results);
            let r = rtcp::read_twcc(body, &mut results);
            if r.is_ok() {
                self.bwe.on_feedback(&results, now);
            }
            self.results = results;
            r?;
        }
        read?;
        Ok(())
    }
}

/// The sequence number `seq` nearest below or at `highest` with the same low 16 bits.
fn extend_seq(highest: u64, seq: u16) -> Option<u64> {
    let mut ext = (highest & !0xffff) | u64::from(seq);
    if ext > highest {
        ext = ext.checked_sub(0x1_0000)?;
    }
    Some(ext)
}

/// The header extensions of one packet: (id, value) of each one it carries.
struct Exts {
    mid: Option<(u8, MidBytes)>,
    abs_send_time: Option<(u8, u32)>,
    transport_cc: Option<(u8, u16)>,
    audio_level: Option<(u8, (i8, bool))>,
    video_orientation: Option<(u8, u8)>,
}

/// A MID as the bytes of its header extension: 1 to 16 of them (RFC 8285's one-byte form).
#[derive(Debug, Clone, Copy)]
struct MidBytes {
    bytes: [u8; 16],
    len: u8,
}

impl MidBytes {
    /// None for a MID the one-byte form cannot carry (empty, or longer than 16 bytes).
    fn new(mid: &str) -> Option<MidBytes> {
        let len = mid.len();
        if !(1..=16).contains(&len) {
            return None;
        }
        let mut bytes = [0; 16];
        bytes[..len].copy_from_slice(mid.as_bytes());
        Some(MidBytes {
            bytes,
            len: len as u8,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Writes an RTP header with the one-byte-form extensions (RFC 8285) at the start of `buf`;
/// returns its length (a multiple of 4).
#[allow(clippy::too_many_arguments)]
fn write_header(
    buf: &mut [u8],
    marker: bool,
    pt: u8,
    seq: u16,
    time: u32,
    ssrc: u32,
    padding: bool,
    exts: &Exts,
) -> usize {
    buf[1] = (u8::from(marker) << 7) | (pt & 0x7f);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&time.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let mut at = 16;
    let mut element = |id: u8, value: &[u8]| {
        buf[at] = (id << 4) | (value.len() as u8 - 1);
        buf[at + 1..at + 1 + value.len()].copy_from_slice(value);
        at += 1 + value.len();
    };
    if let Some((id, mid)) = &exts.mid {
        element(*id, mid.as_bytes());
    }
    if let Some((id, t)) = exts.abs_send_time {
        element(id, &t.to_be_bytes()[1..]);
    }
    if let Some((id, seq)) = exts.transport_cc {
        element(id, &seq.to_be_bytes());
    }
    if let Some((id, (level, voice))) = exts.audio_level {
        element(
            id,
            &[(u8::from(voice) << 7) | (level.unsigned_abs() & 0x7f)],
        );
    }
    if let Some((id, orientation)) = exts.video_orientation {
        element(id, &[orientation & 0x0f]);
    }
    let has_exts = at > 16;
    buf[0] = 0x80 | (u8::from(padding) << 5) | (u8::from(has_exts) << 4);
    if !has_exts {
        return 12;
    }
    while at % 4 != 0 {
        buf[at] = 0;
        at += 1;
    }
    buf[12..14].copy_from_slice(&[0xbe, 0xde]);
    buf[14..16].copy_from_slice(&(((at - 16) / 4) as u16).to_be_bytes());
    at
}

/// Writes a consumer's picture id and TL0PICIDX into a VP8 payload descriptor (RFC 7741
/// §4.2), keeping each field's size. A descriptor without the field is left as it is.
fn patch_vp8(p: &mut [u8], ids: Vp8Ids) {
    if p.len() < 2 || p[0] & 0x80 == 0 {
        return;
    }
    let x = p[1];
    let mut at = 2;
    if x & 0x80 != 0 {
        let Some(&b) = p.get(at) else {
            return;
        };
        let long = b & 0x80 != 0;
        if long && p.len() < at + 2 {
            return;
        }
        if let Some((id, _)) = ids.picture_id {
            if long {
                p[at] = 0x80 | ((id >> 8) as u8 & 0x7f);
                p[at + 1] = id as u8;
            } else {
                p[at] = id as u8 & 0x7f;
            }
        }
        at += if long { 2 } else { 1 };
    }
    if x & 0x40 != 0 {
        if let (Some(t), Some(slot)) = (ids.tl0_pic_idx, p.get_mut(at)) {
            *slot = t;
        }
    }
}

#[cfg(test)]
mod tests;

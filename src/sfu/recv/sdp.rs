//! The SDP of a recv transport: the offer the server writes for a subscriber's receive-only
//! `RTCPeerConnection`, and the reading of the answer the browser sends back. Not the ICE,
//! DTLS or SRTP that follow from them (the rest of `sfu::recv`), and not which consumer owns
//! which mid (the worker).
//!
//! The offer copies the shape str0m 0.25's `sdp_api()` writes for an ICE-lite sender, which
//! Chromium, Firefox and str0m all accept: BUNDLE over every mid, candidates in the first
//! m-line only, `a=setup:actpass`, codecs from the same `CodecConfig` the worker's `Rtc` had.

use std::fmt::{self, Write as _};

use str0m::format::{Codec, CodecConfig, PayloadParams};
use str0m::Candidate;
use thiserror::Error;

use crate::model::MediaKind;

/// `a=extmap` id of the audio level extension (audio m-lines only).
pub const EXT_AUDIO_LEVEL: u8 = 1;
/// `a=extmap` id of abs-send-time.
pub const EXT_ABS_SEND_TIME: u8 = 2;
/// `a=extmap` id of transport-wide sequence numbers (the egress' bandwidth estimation).
pub const EXT_TRANSPORT_CC: u8 = 3;
/// `a=extmap` id of the mid extension, which lets the browser demultiplex the BUNDLE.
pub const EXT_MID: u8 = 4;
/// `a=extmap` id of video orientation (video m-lines only).
pub const EXT_VIDEO_ORIENTATION: u8 = 13;

/// URI of the audio level extension (RFC 6464).
pub const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// URI of abs-send-time.
pub const URI_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
/// URI of transport-wide congestion control sequence numbers.
pub const URI_TRANSPORT_CC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// URI of the mid extension (RFC 9143).
pub const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// URI of video orientation (3GPP TS 26.114).
pub const URI_VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";

/// Header extensions offered on audio m-lines, in the order they are written. No
/// rtp-stream-id: the server sends one stream per m-line, never simulcast.
pub const AUDIO_EXTENSIONS: &[(u8, &str)] = &[
    (EXT_AUDIO_LEVEL, URI_AUDIO_LEVEL),
    (EXT_ABS_SEND_TIME, URI_ABS_SEND_TIME),
    (EXT_TRANSPORT_CC, URI_TRANSPORT_CC),
    (EXT_MID, URI_MID),
];

/// Header extensions offered on video m-lines, in the order they are written.
pub const VIDEO_EXTENSIONS: &[(u8, &str)] = &[
    (EXT_ABS_SEND_TIME, URI_ABS_SEND_TIME),
    (EXT_TRANSPORT_CC, URI_TRANSPORT_CC),
    (EXT_MID, URI_MID),
    (EXT_VIDEO_ORIENTATION, URI_VIDEO_ORIENTATION),
];

/// JSEP (RFC 8829 §5.2.1): the session id must be below 2^63 - 1; Firefox parses it as a
/// signed 64-bit number.
const MAX_SESSION_ID: u64 = i64::MAX as u64;

/// Longest excerpt of an offending line kept in an [`SdpError`], so an error built from a
/// hostile answer stays small in logs.
const EXCERPT_CHARS: usize = 80;

/// Direction of an offered m-line, from the server's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferDirection {
    /// The server sends a consumer's track.
    SendOnly,
    /// The consumer closed. m-lines are never removed from a session, so a closed one stays
    /// in the offer with this direction.
    Inactive,
}

/// What the offer says about the transport as a whole.
#[derive(Debug, Clone, Copy)]
pub struct OfferSession<'a> {
    /// The server's ICE username fragment.
    pub ufrag: &'a str,
    /// The server's ICE password.
    pub pwd: &'a str,
    /// The hash function name as SDP spells it ("sha-256") and the certificate's digest.
    pub fingerprint: (&'a str, &'a [u8]),
    /// The server's candidates, written in the first m-line (the BUNDLE tag).
    pub candidates: &'a [Candidate],
    /// `o=` session id, fixed for the life of the transport. Values from 2^63 - 1 up are
    /// reduced modulo 2^63 - 1 (JSEP's limit).
    pub session_id: u64,
    /// `o=` session version: increase it with every new offer (RFC 3264 §8). Browsers do
    /// not enforce it, str0m always wrote 2.
    pub version: u64,
}

/// One offered m-line: a consumer, alive or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferLine {
    /// The m-line's mid: a token without whitespace, unique in the session. str0m answerers
    /// take at most 16 bytes.
    pub mid: String,
    /// Audio or video; decides the codecs and header extensions written.
    pub kind: MediaKind,
    /// Sending, or closed.
    pub direction: OfferDirection,
    /// `msid` stream id: the publisher's peer id, so a browser groups a peer's tracks.
    pub stream: String,
    /// `msid` track id: the producer id.
    pub track: String,
    /// The SSRC the server sends this consumer's media with.
    pub ssrc: u32,
    /// Video only: the RTX SSRC, announced in an `a=ssrc-group:FID`.
    pub rtx_ssrc: Option<u32>,
    /// RTCP CNAME of the stream.
    pub cname: String,
}

/// `a=setup` of a DTLS endpoint (RFC 4145, RFC 5763).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The endpoint starts the DTLS handshake (it is the client).
    Active,
    /// The endpoint waits for the handshake (it is the server).
    Passive,
    /// Either; what an offer says. [`parse_answer`] rejects it in an answer.
    ActPass,
}

impl Setup {
    /// The SDP token.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
        }
    }
}

/// Direction of an answered m-line, from the answerer's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaDirection {
    /// `a=sendrecv`, also the default when an m-line names no direction (RFC 4566 §6).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`: what a subscriber answers to a live consumer.
    RecvOnly,
    /// `a=inactive`: what a subscriber answers to a closed consumer.
    Inactive,
}

impl MediaDirection {
    /// The direction an `a=` flag names, if it names one.
    fn from_flag(flag: &str) -> Option<Self> {
        match flag {
            "sendrecv" => Some(MediaDirection::SendRecv),
            "sendonly" => Some(MediaDirection::SendOnly),
            "recvonly" => Some(MediaDirection::RecvOnly),
            "inactive" => Some(MediaDirection::Inactive),
            _ => None,
        }
    }
}

/// What the subscriber's answer says, as far as a recv transport needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answerer's ICE username fragment.
    pub ufrag: String,
    /// The answerer's ICE password.
    pub pwd: String,
    /// Hash function name in lowercase ("sha-256") and the digest of the answerer's DTLS
    /// certificate.
    pub fingerprint: (String, Vec<u8>),
    /// The answerer's DTLS role: never [`Setup::ActPass`].
    pub setup: Setup,
    /// The m-lines in the order the answer has them (the offer's order).
    pub media: Vec<AnswerMedia>,
}

impl Answer {
    /// Whether the server, as offerer, must start the DTLS handshake. Browsers answer
    /// `active` (the server waits); str0m answers `passive` to `actpass` (the server starts).
    pub fn offerer_is_dtls_client(&self) -> bool {
        self.setup == Setup::Passive
    }

    /// The answered m-line with this mid (tests; the connection walks `media` in order).
    #[cfg(test)]
    pub fn media(&self, mid: &str) -> Option<&AnswerMedia> {
        self.media.iter().find(|m| m.mid == mid)
    }
}

/// One answered m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerMedia {
    /// The m-line's mid.
    pub mid: String,
    /// Audio or video; `None` for another media type (the server offers none).
    pub kind: Option<MediaKind>,
    /// Port 0: the answerer rejected the m-line.
    pub rejected: bool,
    /// The answerer's direction.
    pub direction: MediaDirection,
    /// Payload types on the `m=` line: the codecs the answerer accepts.
    pub pts: Vec<u8>,
    /// (RTX pt, apt) from `a=fmtp:X apt=Y` where `a=rtpmap:X rtx/...`.
    pub rtx: Vec<(u8, u8)>,
    /// (id, URI) of the `a=extmap` lines: the header extensions the answerer accepts.
    pub extmap: Vec<(u8, String)>,
}

impl AnswerMedia {
    /// Whether the answerer accepts media of this payload type on this m-line: not rejected,
    /// willing to receive (an answer of `inactive` or `sendonly` wants nothing from us), and
    /// the payload type listed.
    pub fn accepts(&self, pt: u8) -> bool {
        !self.rejected
            && matches!(
                self.direction,
                MediaDirection::RecvOnly | MediaDirection::SendRecv
            )
            && self.pts.contains(&pt)
    }

    /// The accepted RTX payload type that repairs `pt`, if any (tests: the egress repairs
    /// with the RTX type of its own offer, which `accepts` checks).
    #[cfg(test)]
    pub fn rtx_for(&self, pt: u8) -> Option<u8> {
        self.rtx
            .iter()
            .find(|(rtx, apt)| *apt == pt && self.accepts(*rtx))
            .map(|(rtx, _)| *rtx)
    }

    /// The id the answerer gave the header extension with this URI.
    pub fn ext_id(&self, uri: &str) -> Option<u8> {
        self.extmap
            .iter()
            .find(|(_, u)| u == uri)
            .map(|(id, _)| *id)
    }
}

/// Why an answer could not be read. Strings in variants are excerpts of the offending text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The text does not begin with `v=0`.
    #[error("not an SDP: the first line is not v=0")]
    NotSdp,
    /// A line is not `<letter>=<value>`.
    #[error("line {line} is not <type>=<value>")]
    BadLine {
        /// 1-based line number.
        line: usize,
    },
    /// An `m=` line without port, protocol or valid payload types.
    #[error("malformed media line: {0}")]
    BadMediaLine(String),
    /// An m-line without `a=mid`, which BUNDLE requires.
    #[error("m-line {index} has no a=mid")]
    MissingMid {
        /// 0-based index of the m-line.
        index: usize,
    },
    /// Two m-lines with the same mid.
    #[error("mid {0} appears twice")]
    DuplicateMid(String),
    /// A malformed `a=rtpmap`, `a=fmtp` or `a=extmap`.
    #[error("malformed attribute: {0}")]
    BadAttribute(String),
    /// No `a=ice-ufrag` or `a=ice-pwd`, neither at session level nor in an m-line.
    #[error("the answer has no ICE ufrag/pwd")]
    MissingIceCredentials,
    /// No `a=fingerprint`, neither at session level nor in an m-line.
    #[error("the answer has no a=fingerprint")]
    MissingFingerprint,
    /// An `a=fingerprint` that is not `<hash> <hex>:<hex>...` of the hash's length.
    #[error("malformed fingerprint: {0}")]
    BadFingerprint(String),
    /// No `a=setup`, neither at session level nor in an m-line.
    #[error("the answer has no a=setup")]
    MissingSetup,
    /// An `a=setup` other than active or passive: an answerer must choose (RFC 5763 §5).
    #[error("bad a=setup in an answer: {0}")]
    BadSetup(String),
}

/// Writes the offer for a recv transport: one m-line per consumer, in `lines` order, with
/// the codecs of `codecs` for the line's kind.
///
/// `codecs` must be built as the worker built its `Rtc`'s:
/// `CodecConfig::new_with_defaults()`, `clear()`, `enable_opus(true, false)`,
/// `enable_vp8(true)`, `enable_h264(true)`. A kind without codecs gets payload type 0 on its
/// m-line, as str0m writes it.
pub fn write_offer(session: &OfferSession, lines: &[OfferLine], codecs: &CodecConfig) -> String {
    let mut out = String::with_capacity(1024 + lines.len() * 2048);
    write_session(&mut out, session, lines);
    for (index, line) in lines.iter().enumerate() {
        write_media(&mut out, session, line, index == 0, codecs);
    }
    out
}

/// Appends one SDP line, ending it with CRLF as RFC 4566 and str0m do.
fn put(out: &mut String, args: fmt::Arguments) {
    // Writing into a String cannot fail: its fmt::Write never returns an error.
    let _ = out.write_fmt(args);
    out.push_str("\r\n");
}

/// The session part: origin, BUNDLE, msid semantic, ICE-lite.
fn write_session(out: &mut String, session: &OfferSession, lines: &[OfferLine]) {
    put(out, format_args!("v=0"));
    put(
        out,
        format_args!(
            "o=- {} {} IN IP4 0.0.0.0",
            session.session_id % MAX_SESSION_ID,
            session.version
        ),
    );
    put(out, format_args!("s=-"));
    put(out, format_args!("t=0 0"));
    if !lines.is_empty() {
        let mids: Vec<&str> = lines.iter().map(|l| l.mid.as_str()).collect();
        put(out, format_args!("a=group:BUNDLE {}", mids.join(" ")));
    }
    put(out, format_args!("a=extmap-allow-mixed"));
    let streams = sending_streams(lines);
    if streams.is_empty() {
        put(out, format_args!("a=msid-semantic: WMS"));
    } else {
        put(
            out,
            format_args!("a=msid-semantic: WMS {}", streams.join(" ")),
        );
    }
    put(out, format_args!("a=ice-lite"));
}

/// The msid stream ids of the lines that send, each once, in order.
fn sending_streams(lines: &[OfferLine]) -> Vec<&str> {
    let mut streams: Vec<&str> = Vec::new();
    for l in lines {
        if l.direction == OfferDirection::SendOnly && !streams.contains(&l.stream.as_str()) {
            streams.push(&l.stream);
        }
    }
    streams
}

/// One m-line in str0m's attribute order: transport, mid, extensions, direction, codecs,
/// SSRCs.
fn write_media(
    out: &mut String,
    session: &OfferSession,
    line: &OfferLine,
    first: bool,
    codecs: &CodecConfig,
) {
    let params: Vec<&PayloadParams> = codecs
        .params()
        .iter()
        .filter(|p| is_kind(p.spec().codec, line.kind))
        .collect();
    let (media, extensions) = match line.kind {
        MediaKind::Audio => ("audio", AUDIO_EXTENSIONS),
        MediaKind::Video => ("video", VIDEO_EXTENSIONS),
    };
    put(
        out,
        format_args!("m={media} 9 UDP/TLS/RTP/SAVPF {}", m_line_pts(&params)),
    );
    put(out, format_args!("c=IN IP4 0.0.0.0"));
    write_transport(out, session, first);
    put(out, format_args!("a=mid:{}", line.mid));
    for (id, uri) in extensions {
        put(out, format_args!("a=extmap:{id} {uri}"));
    }
    let sending = line.direction == OfferDirection::SendOnly;
    put(
        out,
        format_args!("a={}", if sending { "sendonly" } else { "inactive" }),
    );
    if sending {
        put(out, format_args!("a=msid:{} {}", line.stream, line.track));
    }
    put(out, format_args!("a=rtcp-mux"));
    for p in &params {
        write_codec(out, p);
    }
    // A closed consumer's SSRCs are not announced any more: the browser ends the track, and
    // the SSRCs may be handed to a later consumer without two m-lines claiming them.
    if sending {
        write_ssrcs(out, line);
    }
}

/// Whether a codec belongs on an m-line of this kind. Telephone events ride with audio, as
/// in str0m's offers.
fn is_kind(codec: Codec, kind: MediaKind) -> bool {
    match kind {
        MediaKind::Audio => codec.is_audio() || codec.is_tele(),
        MediaKind::Video => codec.is_video(),
    }
}

/// The payload types of the `m=` line: per codec its RED, itself, its RTX (str0m's order;
/// libwebrtc enables RED only when it precedes its primary).
fn m_line_pts(params: &[&PayloadParams]) -> String {
    let pts: Vec<String> = params
        .iter()
        .flat_map(|p| [p.red(), Some(p.pt()), p.resend()])
        .flatten()
        .map(|pt| pt.to_string())
        .collect();
    if pts.is_empty() {
        "0".to_string()
    } else {
        pts.join(" ")
    }
}

/// ICE credentials, fingerprint and setup, repeated in every m-line as str0m and Chromium
/// do; candidates in the first only (the BUNDLE tag carries the transport).
fn write_transport(out: &mut String, session: &OfferSession, first: bool) {
    if first {
        for c in session.candidates {
            put(out, format_args!("a={}", c.to_sdp_string()));
        }
    }
    put(out, format_args!("a=ice-ufrag:{}", session.ufrag));
    put(out, format_args!("a=ice-pwd:{}", session.pwd));
    put(out, format_args!("a=ice-options:trickle"));
    let (hash, digest) = session.fingerprint;
    put(
        out,
        format_args!("a=fingerprint:{hash} {}", fingerprint_hex(digest)),
    );
    put(out, format_args!("a=setup:{}", Setup::ActPass.as_str()));
}

/// A digest as SDP writes it: uppercase hex pairs joined by colons.
fn fingerprint_hex(digest: &[u8]) -> String {
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    pairs.join(":")
}

/// rtpmap, rtcp-fb and fmtp of one codec, then its RTX and RED, exactly as str0m's
/// `PayloadParams::as_media_attrs` writes them.
fn write_codec(out: &mut String, p: &PayloadParams) {
    let spec = p.spec();
    let pt = p.pt();
    let clock = rtp_clock_rate(p);
    match spec.channels {
        Some(ch) => put(
            out,
            format_args!("a=rtpmap:{pt} {}/{clock}/{ch}", spec.codec),
        ),
        None => put(out, format_args!("a=rtpmap:{pt} {}/{clock}", spec.codec)),
    }
    let feedback = [
        (p.fb_transport_cc(), "transport-cc"),
        (p.fb_remb(), "goog-remb"),
        (p.fb_fir(), "ccm fir"),
        (p.fb_nack(), "nack"),
        (p.fb_pli(), "nack pli"),
    ];
    for (_, fb) in feedback.iter().filter(|(on, _)| *on) {
        put(out, format_args!("a=rtcp-fb:{pt} {fb}"));
    }
    let fmtp = if spec.codec.is_tele() {
        // str0m's default range when none is configured (FormatParams::DEFAULT_TELEPHONE_EVENT_MAX).
        format!("0-{}", spec.format.telephone_event_max.unwrap_or(16))
    } else {
        spec.format.to_string()
    };
    if !fmtp.is_empty() {
        put(out, format_args!("a=fmtp:{pt} {fmtp}"));
    }
    if let Some(rtx) = p.resend() {
        put(out, format_args!("a=rtpmap:{rtx} rtx/{clock}"));
        put(out, format_args!("a=fmtp:{rtx} apt={pt}"));
    }
    if let Some(red) = p.red() {
        match spec.channels {
            Some(ch) => put(out, format_args!("a=rtpmap:{red} red/{clock}/{ch}")),
            None => put(out, format_args!("a=rtpmap:{red} red/{clock}")),
        }
        put(out, format_args!("a=fmtp:{red} {pt}/{pt}"));
    }
}

/// The clock rate SDP names: G722 samples at 16 kHz but is signalled at 8000 (RFC 3551
/// §4.5.2); str0m keeps 16 kHz in its config and maps it only when writing.
fn rtp_clock_rate(p: &PayloadParams) -> u32 {
    let spec = p.spec();
    if spec.codec == Codec::G722 {
        8000
    } else {
        spec.clock_rate.get()
    }
}

/// `a=ssrc` cname and msid of the media SSRC and the RTX SSRC, then the FID group.
fn write_ssrcs(out: &mut String, line: &OfferLine) {
    let ssrcs = [Some(line.ssrc), line.rtx_ssrc];
    for ssrc in ssrcs.iter().flatten() {
        put(out, format_args!("a=ssrc:{ssrc} cname:{}", line.cname));
        put(
            out,
            format_args!("a=ssrc:{ssrc} msid:{} {}", line.stream, line.track),
        );
    }
    if let Some(rtx) = line.rtx_ssrc {
        put(out, format_args!("a=ssrc-group:FID {} {rtx}", line.ssrc));
    }
}

/// Reads a subscriber's answer. Accepts CRLF or LF line endings and ignores attributes it
/// does not know. ICE credentials, fingerprint and setup are taken at session level, else
/// from the first m-line that has them (Chromium writes them per m-line, Firefox puts the
/// fingerprint at session level).
pub fn parse_answer(sdp: &str) -> Result<Answer, SdpError> {
    let mut session = TransportAttrs::default();
    let mut sections: Vec<Section> = Vec::new();
    let mut seen_version = false;
    for (n, raw) in sdp.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let (typ, value) = split_line(line).ok_or(SdpError::BadLine { line: n + 1 })?;
        if !seen_version {
            if typ != 'v' || value.trim() != "0" {
                return Err(SdpError::NotSdp);
            }
            seen_version = true;
            continue;
        }
        match (typ, sections.last_mut()) {
            ('m', _) => sections.push(Section::from_m_line(value)?),
            ('a', Some(section)) => section.attribute(value)?,
            ('a', None) => {
                session.attribute(value)?;
            }
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::NotSdp);
    }
    finish(session, sections)
}

/// Splits `x=value` into its type letter and value.
fn split_line(line: &str) -> Option<(char, &str)> {
    let (typ, value) = line.split_once('=')?;
    let mut chars = typ.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => Some((c, value)),
        _ => None,
    }
}

/// An excerpt of offending text for an error: at most [`EXCERPT_CHARS`] characters.
fn excerpt(s: &str) -> String {
    s.chars().take(EXCERPT_CHARS).collect()
}

/// Splits `name:value` (or a bare `flag`) of an `a=` line.
fn split_attribute(value: &str) -> (&str, &str) {
    value.split_once(':').unwrap_or((value, ""))
}

/// The transport attributes one level (session or m-line) of the answer carries.
#[derive(Debug, Default)]
struct TransportAttrs {
    ufrag: Option<String>,
    pwd: Option<String>,
    fingerprint: Option<(String, Vec<u8>)>,
    setup: Option<Setup>,
}

impl TransportAttrs {
    /// Takes the attribute if it is a transport one; tells whether it was.
    fn attribute(&mut self, value: &str) -> Result<bool, SdpError> {
        let (name, arg) = split_attribute(value);
        let arg = arg.trim();
        match name {
            "ice-ufrag" if !arg.is_empty() => self.ufrag = Some(arg.to_string()),
            "ice-pwd" if !arg.is_empty() => self.pwd = Some(arg.to_string()),
            "fingerprint" => {
                let fp = parse_fingerprint(arg)?;
                // Several hashes may be listed: keep the first, unless a later one is
                // sha-256, the hash the DTLS layer checks.
                let replace = match &self.fingerprint {
                    None => true,
                    Some((alg, _)) => alg != "sha-256" && fp.0 == "sha-256",
                };
                if replace {
                    self.fingerprint = Some(fp);
                }
            }
            "setup" => self.setup = Some(parse_setup(arg)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Fills what this level lacks from `other`.
    fn or(self, other: &TransportAttrs) -> TransportAttrs {
        TransportAttrs {
            ufrag: self.ufrag.or_else(|| other.ufrag.clone()),
            pwd: self.pwd.or_else(|| other.pwd.clone()),
            fingerprint: self.fingerprint.or_else(|| other.fingerprint.clone()),
            setup: self.setup.or(other.setup),
        }
    }
}

/// `<hash> <hex>:<hex>...` into the lowercase hash name and the digest bytes.
fn parse_fingerprint(arg: &str) -> Result<(String, Vec<u8>), SdpError> {
    let bad = || SdpError::BadFingerprint(excerpt(arg));
    let mut words = arg.split_ascii_whitespace();
    let (Some(hash), Some(hex)) = (words.next(), words.next()) else {
        return Err(bad());
    };
    let hash = hash.to_ascii_lowercase();
    let digest = hex
        .split(':')
        .map(|pair| match pair.len() {
            2 => u8::from_str_radix(pair, 16).ok(),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    match digest_len(&hash) {
        Some(len) if len != digest.len() => Err(bad()),
        _ => Ok((hash, digest)),
    }
}

/// Digest length of the hash functions RFC 8122 registers; `None` for others.
fn digest_len(hash: &str) -> Option<usize> {
    match hash {
        "sha-1" => Some(20),
        "sha-224" => Some(28),
        "sha-256" => Some(32),
        "sha-384" => Some(48),
        "sha-512" => Some(64),
        "md5" | "md2" => Some(16),
        _ => None,
    }
}

/// An answer's `a=setup`: active or passive.
fn parse_setup(arg: &str) -> Result<Setup, SdpError> {
    if arg.eq_ignore_ascii_case("active") {
        Ok(Setup::Active)
    } else if arg.eq_ignore_ascii_case("passive") {
        Ok(Setup::Passive)
    } else {
        Err(SdpError::BadSetup(excerpt(arg)))
    }
}

/// One m-line of the answer while it is read.
#[derive(Debug)]
struct Section {
    kind: Option<MediaKind>,
    rejected: bool,
    pts: Vec<u8>,
    mid: Option<String>,
    direction: Option<MediaDirection>,
    /// (pt, encoding name) of the `a=rtpmap` lines.
    rtpmap: Vec<(u8, String)>,
    /// (pt, apt) of `a=fmtp` lines with `apt=`; kept as RTX once the rtpmaps are known
    /// (Firefox writes fmtp before rtpmap).
    apt: Vec<(u8, u8)>,
    extmap: Vec<(u8, String)>,
    transport: TransportAttrs,
}

impl Section {
    /// `<media> <port>[/<n>] <proto> <fmt>...`.
    fn from_m_line(value: &str) -> Result<Section, SdpError> {
        let bad = || SdpError::BadMediaLine(excerpt(value));
        let mut words = value.split_ascii_whitespace();
        let (Some(media), Some(port), Some(proto)) = (words.next(), words.next(), words.next())
        else {
            return Err(bad());
        };
        let port = port.split('/').next().unwrap_or(port);
        let port: u16 = port.parse().map_err(|_| bad())?;
        let kind = match media {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            _ => None,
        };
        // Formats of non-RTP m-lines (a data channel's "webrtc-datachannel") are no
        // payload types; RTP ones must all be.
        let pts = if proto.contains("RTP") {
            words
                .map(|w| parse_pt(w).ok_or_else(bad))
                .collect::<Result<Vec<u8>, SdpError>>()?
        } else {
            Vec::new()
        };
        Ok(Section {
            kind,
            rejected: port == 0,
            pts,
            mid: None,
            direction: None,
            rtpmap: Vec::new(),
            apt: Vec::new(),
            extmap: Vec::new(),
            transport: TransportAttrs::default(),
        })
    }

    /// Takes one `a=` line of the m-line.
    fn attribute(&mut self, value: &str) -> Result<(), SdpError> {
        if self.transport.attribute(value)? {
            return Ok(());
        }
        let bad = || SdpError::BadAttribute(excerpt(value));
        let (name, arg) = split_attribute(value);
        match name {
            "mid" => self.mid = Some(arg.trim().to_string()).filter(|m| !m.is_empty()),
            "rtpmap" => {
                let (pt, rest) = pt_and_rest(arg).ok_or_else(bad)?;
                let encoding = rest.split('/').next().unwrap_or(rest).trim();
                self.rtpmap.push((pt, encoding.to_string()));
            }
            "fmtp" => {
                let (pt, rest) = pt_and_rest(arg).ok_or_else(bad)?;
                if let Some(apt) = fmtp_apt(rest) {
                    self.apt.push((pt, apt.ok_or_else(bad)?));
                }
            }
            "extmap" => self.extmap.push(parse_extmap(arg).ok_or_else(bad)?),
            flag => {
                if let Some(d) = MediaDirection::from_flag(flag) {
                    self.direction = Some(d);
                }
            }
        }
        Ok(())
    }

    /// The finished m-line; `index` names it in errors.
    fn finish(self, index: usize) -> Result<(AnswerMedia, TransportAttrs), SdpError> {
        let mid = self.mid.ok_or(SdpError::MissingMid { index })?;
        let rtpmap = self.rtpmap;
        let rtx = self
            .apt
            .into_iter()
            .filter(|(pt, _)| {
                rtpmap
                    .iter()
                    .any(|(p, enc)| p == pt && enc.eq_ignore_ascii_case("rtx"))
            })
            .collect();
        let media = AnswerMedia {
            mid,
            kind: self.kind,
            rejected: self.rejected,
            direction: self.direction.unwrap_or(MediaDirection::SendRecv),
            pts: self.pts,
            rtx,
            extmap: self.extmap,
        };
        Ok((media, self.transport))
    }
}

/// An RTP payload type: 0..=127.
fn parse_pt(s: &str) -> Option<u8> {
    s.parse::<u8>().ok().filter(|pt| *pt <= 127)
}

/// `<pt> <rest>` of rtpmap and fmtp.
fn pt_and_rest(arg: &str) -> Option<(u8, &str)> {
    let (pt, rest) = arg.trim_start().split_once(' ')?;
    Some((parse_pt(pt)?, rest.trim()))
}

/// The `apt=` of an fmtp parameter list: `None` when there is none, `Some(None)` when it
/// is not a payload type.
fn fmtp_apt(params: &str) -> Option<Option<u8>> {
    params.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("apt")
            .then(|| parse_pt(v.trim()))
    })
}

/// `<id>[/<direction>] <uri> [<attributes>]`.
fn parse_extmap(arg: &str) -> Option<(u8, String)> {
    let mut words = arg.split_ascii_whitespace();
    let id = words.next()?;
    let id = id.split('/').next().unwrap_or(id);
    // 1..=14 for one-byte headers, up to 255 with two-byte ones (RFC 8285); 0 is padding.
    let id = id.parse::<u8>().ok().filter(|id| *id > 0)?;
    let uri = words.next()?;
    Some((id, uri.to_string()))
}

/// Checks mids and resolves the transport attributes of the whole answer.
fn finish(session: TransportAttrs, sections: Vec<Section>) -> Result<Answer, SdpError> {
    let mut media: Vec<AnswerMedia> = Vec::with_capacity(sections.len());
    // A set, not a scan of the lines before: a hostile answer may have thousands of m-lines.
    let mut mids = std::collections::HashSet::with_capacity(sections.len());
    let mut transport = session;
    for (index, section) in sections.into_iter().enumerate() {
        let (m, level) = section.finish(index)?;
        if !mids.insert(m.mid.clone()) {
            return Err(SdpError::DuplicateMid(excerpt(&m.mid)));
        }
        transport = transport.or(&level);
        media.push(m);
    }
    let (Some(ufrag), Some(pwd)) = (transport.ufrag, transport.pwd) else {
        return Err(SdpError::MissingIceCredentials);
    };
    Ok(Answer {
        ufrag,
        pwd,
        fingerprint: transport.fingerprint.ok_or(SdpError::MissingFingerprint)?,
        setup: transport.setup.ok_or(SdpError::MissingSetup)?,
        media,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use str0m::change::SdpOffer;
    use str0m::media::{Direction, MediaKind as Str0mKind};
    use str0m::rtp::Ssrc;
    use str0m::Rtc;

    use super::*;

    /// The codec table exactly as the worker builds its `Rtc` (`worker::commands`).
    fn worker_codecs() -> CodecConfig {
        let mut c = CodecConfig::new_with_defaults();
        c.clear();
        c.enable_opus(true, false);
        c.enable_vp8(true);
        c.enable_h264(true);
        c
    }

    fn candidates() -> Vec<Candidate> {
        let addr = "127.0.0.1:40000".parse().expect("a valid address");
        let udp = Candidate::host(addr, "udp").expect("a host candidate");
        let tcp = Candidate::builder()
            .tcp()
            .host(addr)
            .tcptype(str0m::net::TcpType::Passive)
            .build()
            .expect("a tcp candidate");
        vec![udp, tcp]
    }

    const DIGEST: [u8; 32] = [
        0x2D, 0x74, 0x09, 0x6E, 0x8D, 0x13, 0x97, 0x77, 0xEA, 0x3C, 0x03, 0x61, 0x05, 0xC0, 0x26,
        0x60, 0x0C, 0x40, 0xAB, 0xDD, 0xD5, 0xE3, 0x91, 0xC6, 0x5C, 0xD2, 0x43, 0xF9, 0x39, 0x32,
        0x76, 0x07,
    ];

    fn line(mid: &str, kind: MediaKind, direction: OfferDirection, ssrc: u32) -> OfferLine {
        OfferLine {
            mid: mid.to_string(),
            kind,
            direction,
            stream: "peerA".to_string(),
            track: format!("prod-{mid}"),
            ssrc,
            rtx_ssrc: (kind == MediaKind::Video).then_some(ssrc + 1),
            cname: format!("cname-{mid}"),
        }
    }

    /// One audio line, one video line and one closed video line.
    fn offer_lines() -> Vec<OfferLine> {
        vec![
            line(
                "a0",
                MediaKind::Audio,
                OfferDirection::SendOnly,
                552_650_172,
            ),
            line(
                "v1",
                MediaKind::Video,
                OfferDirection::SendOnly,
                3_194_722_912,
            ),
            line("v2", MediaKind::Video, OfferDirection::Inactive, 1_000_000),
        ]
    }

    fn offer() -> String {
        let candidates = candidates();
        let session = OfferSession {
            ufrag: "2Gi0yCxGi3I02o3f",
            pwd: "1i93Y8A9ofp0h6q7Yodskr",
            fingerprint: ("sha-256", &DIGEST),
            candidates: &candidates,
            session_id: 3_121_459_471_387_112_819,
            version: 2,
        };
        write_offer(&session, &offer_lines(), &worker_codecs())
    }

    /// The m-sections of an SDP, each as its lines.
    fn sections(sdp: &str) -> Vec<Vec<&str>> {
        let mut out: Vec<Vec<&str>> = Vec::new();
        for l in sdp.split("\r\n") {
            if l.starts_with("m=") {
                out.push(Vec::new());
            }
            if let Some(s) = out.last_mut() {
                s.push(l);
            }
        }
        out
    }

    #[test]
    fn offer_has_bundle_inactive_line_and_fid_group() {
        let sdp = offer();
        assert!(sdp.ends_with("\r\n"));
        assert!(!sdp.replace("\r\n", "").contains('\n'), "bare LF in {sdp}");
        assert!(sdp.contains("\r\na=group:BUNDLE a0 v1 v2\r\n"), "{sdp}");
        assert!(sdp.contains("\r\na=ice-lite\r\n"));
        assert!(sdp.contains("\r\na=msid-semantic: WMS peerA\r\n"));
        let s = sections(&sdp);
        assert_eq!(s.len(), 3);

        assert_eq!(s[0][0], "m=audio 9 UDP/TLS/RTP/SAVPF 111");
        assert!(s[0].contains(&"a=mid:a0"));
        assert!(s[0].contains(&"a=sendonly"));
        assert!(s[0].contains(&"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level"));
        assert!(!s[0].iter().any(|l| l.contains("video-orientation")));
        assert!(s[0].contains(&"a=fmtp:111 minptime=10;useinbandfec=1"));
        assert!(s[0].contains(&"a=ssrc:552650172 cname:cname-a0"));
        assert!(
            s[0].iter()
                .filter(|l| l.starts_with("a=candidate:"))
                .count()
                == 2
        );

        assert_eq!(
            s[1][0],
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97 127 121 125 107 108 109 124 120 123 119 35 36 114 115"
        );
        assert!(s[1].contains(&"a=mid:v1"));
        assert!(s[1].contains(&"a=msid:peerA prod-v1"));
        assert!(s[1].contains(&"a=ssrc-group:FID 3194722912 3194722913"));
        assert!(s[1].contains(&"a=ssrc:3194722913 msid:peerA prod-v1"));
        assert!(s[1].contains(&"a=extmap:13 urn:3gpp:video-orientation"));
        assert!(!s[1].iter().any(|l| l.contains("ssrc-audio-level")));
        assert!(!s[1].iter().any(|l| l.starts_with("a=candidate:")));
        assert!(!sdp.contains("rtp-stream-id"));

        assert!(s[2].contains(&"a=mid:v2"));
        assert!(s[2].contains(&"a=inactive"));
        assert!(!s[2].contains(&"a=sendonly"));
        assert!(s[2].contains(&"a=rtpmap:96 VP8/90000"));
        assert!(!s[2]
            .iter()
            .any(|l| l.starts_with("a=ssrc") || l.starts_with("a=msid")));
        for section in &s {
            assert!(section.contains(&"a=setup:actpass"));
            assert!(section.contains(&"a=ice-ufrag:2Gi0yCxGi3I02o3f"));
            assert!(section.contains(
                &"a=fingerprint:sha-256 2D:74:09:6E:8D:13:97:77:EA:3C:03:61:05:C0:26:60:0C:40:AB:DD:D5:E3:91:C6:5C:D2:43:F9:39:32:76:07"
            ));
        }
    }

    #[test]
    fn session_id_stays_below_jsep_limit_and_empty_offer_does_not_panic() {
        let session = OfferSession {
            ufrag: "u",
            pwd: "p",
            fingerprint: ("sha-256", &[]),
            candidates: &[],
            session_id: u64::MAX,
            version: 7,
        };
        let sdp = write_offer(&session, &[], &CodecConfig::empty());
        assert!(sdp.contains("o=- 1 7 IN IP4 0.0.0.0\r\n"), "{sdp}");
        assert!(!sdp.contains("BUNDLE"));
    }

    /// Our rtpmap/rtcp-fb/fmtp lines are the ones str0m's own offer has for the same codecs.
    #[test]
    fn codec_lines_match_str0m_offer() {
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .build(Instant::now());
        let mut api = rtc.sdp_api();
        api.add_media(Str0mKind::Audio, Direction::SendOnly, None, None, None);
        api.add_media(Str0mKind::Video, Direction::SendOnly, None, None, None);
        let (theirs, _) = api.apply().expect("changes were made");
        let theirs = theirs.to_sdp_string();
        let ours = offer();
        let codec_lines = |section: &Vec<&str>| -> Vec<String> {
            section
                .iter()
                .filter(|l| {
                    l.starts_with("m=")
                        || l.starts_with("a=rtpmap")
                        || l.starts_with("a=rtcp-fb")
                        || l.starts_with("a=fmtp")
                })
                .map(|l| l.to_string())
                .collect()
        };
        let (t, o) = (sections(&theirs), sections(&ours));
        assert_eq!(codec_lines(&t[0]), codec_lines(&o[0]), "{theirs}");
        assert_eq!(codec_lines(&t[1]), codec_lines(&o[1]), "{theirs}");
    }

    /// str0m as the answerer: it must take our offer and its answer must read back.
    #[test]
    fn str0m_accepts_offer_and_its_answer_parses() {
        let offer_sdp = offer();
        let offer = SdpOffer::from_sdp_string(&offer_sdp).expect("str0m parses our offer");
        let mut rtc = Rtc::builder().build(Instant::now());
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("str0m accepts our offer");
        let answer = parse_answer(&answer.to_sdp_string()).expect("str0m's answer parses");

        let creds = rtc.direct_api().local_ice_credentials();
        assert_eq!(answer.ufrag, creds.ufrag);
        assert_eq!(answer.pwd, creds.pass);
        let fp = rtc.direct_api().local_dtls_fingerprint().clone();
        assert_eq!(answer.fingerprint.0, "sha-256");
        assert_eq!(answer.fingerprint.1.len(), 32);
        assert_eq!(answer.fingerprint.1, fp.bytes);
        // str0m takes the passive role when offered actpass: the server must start DTLS.
        assert_eq!(answer.setup, Setup::Passive);
        assert!(answer.offerer_is_dtls_client());

        let mids: Vec<&str> = answer.media.iter().map(|m| m.mid.as_str()).collect();
        assert_eq!(mids, ["a0", "v1", "v2"]);
        let audio = &answer.media[0];
        assert_eq!(audio.kind, Some(MediaKind::Audio));
        assert_eq!(audio.direction, MediaDirection::RecvOnly);
        assert!(audio.accepts(111));
        let video = &answer.media[1];
        assert_eq!(video.direction, MediaDirection::RecvOnly);
        assert!(video.accepts(96));
        assert_eq!(video.rtx_for(96), Some(97));
        assert!(video.accepts(127));
        assert_eq!(video.rtx_for(127), Some(121));
        for m in &answer.media[..2] {
            assert_eq!(m.ext_id(URI_MID), Some(EXT_MID));
            assert_eq!(m.ext_id(URI_TRANSPORT_CC), Some(EXT_TRANSPORT_CC));
            assert!(!m.rejected);
        }
        assert_eq!(answer.media[2].direction, MediaDirection::Inactive);

        // str0m learnt our SSRCs from the a=ssrc lines.
        let mut direct = rtc.direct_api();
        assert!(direct.stream_rx(&Ssrc::from(552_650_172)).is_some());
        assert!(direct.stream_rx(&Ssrc::from(3_194_722_912)).is_some());
    }

    /// What Chromium answers to such an offer: transport per m-line, setup active.
    const CHROMIUM_ANSWER: &str = "v=0\r\n\
o=- 6054093392514871408 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1 2\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Yx1G\r\n\
a=ice-pwd:uRqj2+mSbFSeKdVRe6dgQyqM\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 4F:6A:1C:0E:93:77:D2:5B:08:A1:3E:CC:70:19:B4:2D:E6:51:0F:9A:83:C7:2E:64:1B:D8:F0:39:AA:5E:72:C1\r\n\
a=setup:active\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 127 121 125 107 108 109 124 120 123 119 35 36 114 115\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Yx1G\r\n\
a=ice-pwd:uRqj2+mSbFSeKdVRe6dgQyqM\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 4F:6A:1C:0E:93:77:D2:5B:08:A1:3E:CC:70:19:B4:2D:E6:51:0F:9A:83:C7:2E:64:1B:D8:F0:39:AA:5E:72:C1\r\n\
a=setup:active\r\n\
a=mid:1\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=extmap:13 urn:3gpp:video-orientation\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 transport-cc\r\n\
a=rtcp-fb:96 ccm fir\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:127 H264/90000\r\n\
a=rtcp-fb:127 goog-remb\r\n\
a=rtcp-fb:127 transport-cc\r\n\
a=rtcp-fb:127 ccm fir\r\n\
a=rtcp-fb:127 nack\r\n\
a=rtcp-fb:127 nack pli\r\n\
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:121 rtx/90000\r\n\
a=fmtp:121 apt=127\r\n\
a=rtpmap:125 H264/90000\r\n\
a=fmtp:125 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
a=rtpmap:107 rtx/90000\r\n\
a=fmtp:107 apt=125\r\n\
a=rtpmap:108 H264/90000\r\n\
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:109 rtx/90000\r\n\
a=fmtp:109 apt=108\r\n\
a=rtpmap:124 H264/90000\r\n\
a=fmtp:124 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
a=rtpmap:120 rtx/90000\r\n\
a=fmtp:120 apt=124\r\n\
a=rtpmap:123 H264/90000\r\n\
a=fmtp:123 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
a=rtpmap:119 rtx/90000\r\n\
a=fmtp:119 apt=123\r\n\
a=rtpmap:35 H264/90000\r\n\
a=fmtp:35 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f\r\n\
a=rtpmap:36 rtx/90000\r\n\
a=fmtp:36 apt=35\r\n\
a=rtpmap:114 H264/90000\r\n\
a=fmtp:114 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
a=rtpmap:115 rtx/90000\r\n\
a=fmtp:115 apt=114\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Yx1G\r\n\
a=ice-pwd:uRqj2+mSbFSeKdVRe6dgQyqM\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 4F:6A:1C:0E:93:77:D2:5B:08:A1:3E:CC:70:19:B4:2D:E6:51:0F:9A:83:C7:2E:64:1B:D8:F0:39:AA:5E:72:C1\r\n\
a=setup:active\r\n\
a=mid:2\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=extmap:13 urn:3gpp:video-orientation\r\n\
a=inactive\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 transport-cc\r\n\
a=rtcp-fb:96 ccm fir\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n";

    /// What Firefox answers: fingerprint and ice-options at session level, attributes sorted,
    /// fmtp before rtpmap, only the H264 profiles it decodes, lowercase hex here to check
    /// that either case reads.
    const FIREFOX_ANSWER: &str = "v=0\r\n\
o=mozilla...THIS_IS_SDPARTA-128.0 8136254915837591224 0 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=fingerprint:sha-256 0b:7d:59:a3:14:e2:c8:6f:90:35:d1:4a:be:07:62:f8:1c:93:e5:28:4d:b6:0a:7f:c2:58:e1:33:9d:06:af:42\r\n\
a=group:BUNDLE 0 1 2\r\n\
a=ice-options:trickle\r\n\
a=msid-semantic:WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=recvonly\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=fmtp:111 maxplaybackrate=48000;stereo=1;useinbandfec=1\r\n\
a=ice-pwd:a7e5b0e8c2f04b0a9c9d1e2f3a4b5c6d\r\n\
a=ice-ufrag:5b3f0e2c\r\n\
a=mid:0\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=setup:active\r\n\
a=ssrc:3512312313 cname:{7c9c1e3a-4f21-4a8e-b1d2-93f0c6e5a7b4}\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 127 121 125 107 108 109 124 120\r\n\
c=IN IP4 0.0.0.0\r\n\
a=recvonly\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=extmap:13 urn:3gpp:video-orientation\r\n\
a=fmtp:127 profile-level-id=42001f;level-asymmetry-allowed=1;packetization-mode=1\r\n\
a=fmtp:125 profile-level-id=42001f;level-asymmetry-allowed=1\r\n\
a=fmtp:108 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1\r\n\
a=fmtp:124 profile-level-id=42e01f;level-asymmetry-allowed=1\r\n\
a=fmtp:96 max-fs=12288;max-fr=60\r\n\
a=fmtp:97 apt=96\r\n\
a=fmtp:121 apt=127\r\n\
a=fmtp:107 apt=125\r\n\
a=fmtp:109 apt=108\r\n\
a=fmtp:120 apt=124\r\n\
a=ice-pwd:a7e5b0e8c2f04b0a9c9d1e2f3a4b5c6d\r\n\
a=ice-ufrag:5b3f0e2c\r\n\
a=mid:1\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtcp-fb:96 ccm fir\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 transport-cc\r\n\
a=rtcp-fb:127 nack\r\n\
a=rtcp-fb:127 nack pli\r\n\
a=rtcp-fb:127 ccm fir\r\n\
a=rtcp-fb:127 goog-remb\r\n\
a=rtcp-fb:127 transport-cc\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=rtpmap:127 H264/90000\r\n\
a=rtpmap:121 rtx/90000\r\n\
a=rtpmap:125 H264/90000\r\n\
a=rtpmap:107 rtx/90000\r\n\
a=rtpmap:108 H264/90000\r\n\
a=rtpmap:109 rtx/90000\r\n\
a=rtpmap:124 H264/90000\r\n\
a=rtpmap:120 rtx/90000\r\n\
a=setup:active\r\n\
a=ssrc:1874620145 cname:{7c9c1e3a-4f21-4a8e-b1d2-93f0c6e5a7b4}\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
c=IN IP4 0.0.0.0\r\n\
a=inactive\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=fmtp:97 apt=96\r\n\
a=ice-pwd:a7e5b0e8c2f04b0a9c9d1e2f3a4b5c6d\r\n\
a=ice-ufrag:5b3f0e2c\r\n\
a=mid:2\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=setup:active\r\n";

    #[test]
    fn reads_chromium_answer() {
        let a = parse_answer(CHROMIUM_ANSWER).expect("Chromium's answer parses");
        assert_eq!(a.ufrag, "Yx1G");
        assert_eq!(a.pwd, "uRqj2+mSbFSeKdVRe6dgQyqM");
        assert_eq!(a.fingerprint.0, "sha-256");
        assert_eq!(a.fingerprint.1.len(), 32);
        assert_eq!(a.fingerprint.1[..2], [0x4F, 0x6A]);
        assert_eq!(a.setup, Setup::Active);
        assert!(!a.offerer_is_dtls_client());
        let mids: Vec<&str> = a.media.iter().map(|m| m.mid.as_str()).collect();
        assert_eq!(mids, ["0", "1", "2"]);
        let audio = a.media("0").expect("mid 0");
        assert_eq!(audio.kind, Some(MediaKind::Audio));
        assert_eq!(audio.direction, MediaDirection::RecvOnly);
        assert!(audio.accepts(111));
        assert!(!audio.accepts(96));
        assert_eq!(audio.ext_id(URI_AUDIO_LEVEL), Some(EXT_AUDIO_LEVEL));
        let video = a.media("1").expect("mid 1");
        assert_eq!(video.kind, Some(MediaKind::Video));
        assert_eq!(video.rtx_for(96), Some(97));
        assert_eq!(video.rtx_for(114), Some(115));
        assert_eq!(video.rtx_for(97), None);
        assert_eq!(video.ext_id(URI_VIDEO_ORIENTATION), Some(13));
        assert_eq!(video.ext_id(URI_TRANSPORT_CC), Some(3));
        assert_eq!(video.rtx.len(), 8);
        let closed = a.media("2").expect("mid 2");
        assert_eq!(closed.direction, MediaDirection::Inactive);
        assert!(!closed.rejected);
        assert!(closed.pts.contains(&96));
        assert!(!closed.accepts(96), "an inactive line wants no media");
    }

    #[test]
    fn a_line_answered_inactive_or_sendonly_accepts_no_media() {
        for direction in ["a=inactive", "a=sendonly"] {
            let answer = CHROMIUM_ANSWER.replacen("a=recvonly", direction, 1);
            let a = parse_answer(&answer).expect("the answer parses");
            let audio = a.media("0").expect("mid 0");
            assert_ne!(audio.direction, MediaDirection::RecvOnly, "{direction}");
            assert!(!audio.accepts(111), "{direction}");
            let video = a.media("1").expect("mid 1");
            assert!(video.accepts(96), "the other line keeps its media");
        }
    }

    #[test]
    fn reads_firefox_answer() {
        let a = parse_answer(FIREFOX_ANSWER).expect("Firefox's answer parses");
        assert_eq!(a.ufrag, "5b3f0e2c");
        assert_eq!(a.pwd, "a7e5b0e8c2f04b0a9c9d1e2f3a4b5c6d");
        assert_eq!(a.fingerprint.0, "sha-256");
        assert_eq!(a.fingerprint.1.len(), 32);
        assert_eq!(a.fingerprint.1[..2], [0x0B, 0x7D]);
        assert_eq!(a.setup, Setup::Active);
        let mids: Vec<&str> = a.media.iter().map(|m| m.mid.as_str()).collect();
        assert_eq!(mids, ["0", "1", "2"]);
        let audio = &a.media[0];
        assert!(audio.accepts(111));
        assert_eq!(audio.ext_id(URI_ABS_SEND_TIME), None);
        assert_eq!(audio.ext_id(URI_MID), Some(EXT_MID));
        let video = &a.media[1];
        assert_eq!(video.direction, MediaDirection::RecvOnly);
        // fmtp before rtpmap: the RTX pairs are still found.
        assert_eq!(video.rtx_for(96), Some(97));
        assert_eq!(video.rtx_for(124), Some(120));
        assert!(!video.accepts(123));
        assert_eq!(video.rtx_for(123), None);
        assert_eq!(a.media[2].direction, MediaDirection::Inactive);
    }

    #[test]
    fn reads_lf_endings_rejected_lines_and_uppercase_hex() {
        let lf = CHROMIUM_ANSWER.replace("\r\n", "\n").replace(
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97\n",
            "m=video 0 UDP/TLS/RTP/SAVPF 96 97\n",
        );
        let a = parse_answer(&lf).expect("LF endings parse");
        assert!(a.media[2].rejected);
        assert!(!a.media[2].accepts(96));
        assert_eq!(a.media[2].rtx_for(96), None);
        assert!(!a.media[1].rejected);
    }

    #[test]
    fn missing_or_bad_transport_attributes_are_named() {
        let no_fp: String = FIREFOX_ANSWER
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("a=fingerprint"))
            .collect();
        assert_eq!(parse_answer(&no_fp), Err(SdpError::MissingFingerprint));
        let no_setup = CHROMIUM_ANSWER.replace("a=setup:active\r\n", "");
        assert_eq!(parse_answer(&no_setup), Err(SdpError::MissingSetup));
        let no_pwd: String = CHROMIUM_ANSWER
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("a=ice-pwd"))
            .collect();
        assert_eq!(parse_answer(&no_pwd), Err(SdpError::MissingIceCredentials));
        let actpass = CHROMIUM_ANSWER.replace("a=setup:active", "a=setup:actpass");
        assert_eq!(
            parse_answer(&actpass),
            Err(SdpError::BadSetup("actpass".into()))
        );
        let short = FIREFOX_ANSWER.replace(":af:42\r\n", "\r\n");
        assert!(matches!(
            parse_answer(&short),
            Err(SdpError::BadFingerprint(_))
        ));
        let no_mid = CHROMIUM_ANSWER.replace("a=mid:1\r\n", "");
        assert_eq!(
            parse_answer(&no_mid),
            Err(SdpError::MissingMid { index: 1 })
        );
        let dup = CHROMIUM_ANSWER.replace("a=mid:2\r\n", "a=mid:1\r\n");
        assert_eq!(parse_answer(&dup), Err(SdpError::DuplicateMid("1".into())));
        let bad_pt = CHROMIUM_ANSWER.replace("SAVPF 111\r\n", "SAVPF 300\r\n");
        assert!(matches!(
            parse_answer(&bad_pt),
            Err(SdpError::BadMediaLine(_))
        ));
        assert_eq!(parse_answer(""), Err(SdpError::NotSdp));
        assert_eq!(parse_answer("hello"), Err(SdpError::BadLine { line: 1 }));
        assert_eq!(parse_answer("x=1\r\n"), Err(SdpError::NotSdp));
    }

    /// Every prefix and hundreds of corrupted copies of real answers: an answer or an error,
    /// never a panic.
    #[test]
    fn hostile_answers_never_panic() {
        let str0m_answer = {
            let offer = SdpOffer::from_sdp_string(&offer()).expect("str0m parses our offer");
            let mut rtc = Rtc::builder().build(Instant::now());
            rtc.sdp_api()
                .accept_offer(offer)
                .expect("str0m accepts our offer")
                .to_sdp_string()
        };
        let answers = [CHROMIUM_ANSWER, FIREFOX_ANSWER, str0m_answer.as_str()];
        for answer in answers {
            for (i, _) in answer.char_indices() {
                let _ = parse_answer(&answer[..i]);
            }
        }
        let mut rng = StdRng::seed_from_u64(0x5d9);
        const NOISE: &[char] = &[
            ':', ' ', '=', '/', ';', '\r', '\n', '0', '9', 'a', 'm', '-', 'é', '€', '\0',
        ];
        for round in 0..600 {
            let mut chars: Vec<char> = answers[round % answers.len()].chars().collect();
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..chars.len());
                match rng.gen_range(0..4) {
                    0 => chars[at] = NOISE[rng.gen_range(0..NOISE.len())],
                    1 => {
                        let end = (at + rng.gen_range(1..40)).min(chars.len());
                        chars.drain(at..end);
                    }
                    2 => chars.insert(at, char::from(rng.gen_range(0x20u8..0x7f))),
                    _ => chars.insert(at, NOISE[rng.gen_range(0..NOISE.len())]),
                }
                if chars.is_empty() {
                    break;
                }
            }
            let text: String = chars.into_iter().collect();
            let _ = parse_answer(&text);
        }
    }
}

//! Light subscribers (`--light-subscribers`): str0m keeps each subscriber connection's ICE
//! and DTLS, but its SRTP packets are read here instead of by str0m: the RTP header (in the
//! clear) gives sequence numbers for loss and the transport sequence number for feedback; a
//! packet is decrypted only when it starts a frame (its RTP time differs from the previous
//! packet's), to read the frame stamp for latency. Every 50 ms the subscriber sends a
//! transport-wide congestion control feedback, as browsers and str0m do, so a server sees
//! the same RTCP load; in the first feedback and about once a second after it, a receiver
//! report leads it, as a browser's does (a server may stop sending the MID extension once
//! a report names the stream). No NACKs; the reports' loss and jitter fields are zero.
//!
//! Why: a str0m subscriber costs the generator's one thread ~4.5 µs per packet (decryption,
//! str0m's receive path), so the generator saturated near 220k packets/s, before the server
//! did. This path costs the kernel's receive and a header parse for most packets.

use std::net::SocketAddrV4;

use multiparty_meeting::sfu::egress::rtcp::{write_receiver_report, write_twcc, ReportBlock};
use multiparty_meeting::sfu::egress::srtp::{
    Keys, RtpReceiver, Sender, SrtpError, MAX_RTCP_OVERHEAD,
};

/// One feedback in this many (50 ms apart) carries a receiver report: about one a second.
const REPORT_EVERY: u32 = 20;
/// Streams a receiver report names at most (RFC 3550's limit for one report).
const MAX_REPORTED: usize = 31;

/// What a subscriber's light path needs from the server's offer.
#[derive(Debug, Clone, Default)]
pub struct OfferInfo {
    /// Header extension ids: transport-wide sequence number, MID.
    pub twcc_id: Option<u8>,
    pub mid_id: Option<u8>,
    /// Payload types of RTX streams (resends and probes: not counted as media).
    pub rtx_pts: Vec<u8>,
}

/// Reads the extension ids and RTX payload types from an SDP offer.
pub fn offer_info(sdp: &str) -> OfferInfo {
    let mut info = OfferInfo::default();
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("a=extmap:") {
            let mut parts = rest.split_whitespace();
            let id = parts
                .next()
                .and_then(|i| i.split('/').next())
                .and_then(|i| i.parse::<u8>().ok());
            match parts.next() {
                Some(uri) if uri.ends_with("transport-wide-cc-extensions-01") => info.twcc_id = id,
                Some("urn:ietf:params:rtp-hdrext:sdes:mid") => info.mid_id = id,
                _ => {}
            }
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let mut parts = rest.split_whitespace();
            if let (Some(pt), Some(codec)) = (parts.next(), parts.next()) {
                if codec.to_ascii_lowercase().starts_with("rtx/") {
                    if let Ok(pt) = pt.parse::<u8>() {
                        if !info.rtx_pts.contains(&pt) {
                            info.rtx_pts.push(pt);
                        }
                    }
                }
            }
        }
    }
    info
}

/// An RTP header as the light path reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub time: u32,
    pub ssrc: u32,
    pub len: usize,
    pub twcc: Option<u16>,
    pub mid: Option<&'a [u8]>,
}

/// Parses an RTP header with one-byte or two-byte extensions; None when malformed.
pub fn parse_header<'a>(p: &'a [u8], info: &OfferInfo) -> Option<Header<'a>> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let csrcs = usize::from(p[0] & 0x0f);
    let mut len = 12 + 4 * csrcs;
    let mut h = Header {
        marker: p[1] & 0x80 != 0,
        pt: p[1] & 0x7f,
        seq: u16::from_be_bytes([p[2], p[3]]),
        time: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        len,
        twcc: None,
        mid: None,
    };
    if p[0] & 0x10 != 0 {
        let profile = u16::from_be_bytes([*p.get(len)?, *p.get(len + 1)?]);
        let words = usize::from(u16::from_be_bytes([*p.get(len + 2)?, *p.get(len + 3)?]));
        let data = p.get(len + 4..len + 4 + 4 * words)?;
        let two_byte = profile & 0xfff0 == 0x1000;
        let mut at = 0;
        while at < data.len() {
            let (id, size, head) = if two_byte {
                if at + 1 >= data.len() {
                    break;
                }
                (data[at], usize::from(data[at + 1]), 2)
            } else {
                if data[at] == 0 {
                    at += 1;
                    continue;
                }
                (data[at] >> 4, usize::from(data[at] & 0x0f) + 1, 1)
            };
            if id == 0 {
                at += head;
                continue;
            }
            let value = data.get(at + head..at + head + size)?;
            if Some(id) == info.twcc_id && size == 2 {
                h.twcc = Some(u16::from_be_bytes([value[0], value[1]]));
            } else if Some(id) == info.mid_id {
                h.mid = Some(value);
            }
            at += head + size;
        }
        len += 4 + 4 * words;
    }
    h.len = len;
    Some(h)
}

/// Extends a 16-bit sequence number next to the last extended one.
pub fn extend(last: Option<u64>, seq: u16) -> u64 {
    let Some(last) = last else {
        return u64::from(seq);
    };
    let base = last & !0xffff;
    let candidates = [
        base.wrapping_sub(0x1_0000) | u64::from(seq),
        base | u64::from(seq),
        (base + 0x1_0000) | u64::from(seq),
    ];
    // Invariant: the array is not empty.
    *candidates
        .iter()
        .min_by_key(|c| c.abs_diff(last))
        .expect("three candidates")
}

/// The light receive side of one subscriber connection.
pub struct Light {
    rtp: RtpReceiver,
    rtcp: Sender,
    pub info: OfferInfo,
    /// Where the server sends from (feedback goes there).
    pub server: Option<SocketAddrV4>,
    sender_ssrc: u32,
    /// Media SSRC named in feedback: the first stream seen.
    media_ssrc: u32,
    twcc_last: Option<u64>,
    /// Transport sequence numbers received since the last feedback, with arrival (µs).
    pending: Vec<(u64, i64)>,
    /// The first sequence number the next feedback starts at.
    next_base: Option<u64>,
    fb_count: u8,
    /// Feedbacks sent; every [`REPORT_EVERY`]th, from the first, carries a receiver report.
    feedbacks: u32,
    /// Media streams received: SSRC and highest extended sequence number.
    streams: Vec<(u32, u64)>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Light {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Light")
            .field("server", &self.server)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Light {
    pub fn new(keys: &Keys, info: OfferInfo) -> Result<Light, SrtpError> {
        Ok(Light {
            rtp: keys.rtp_receiver()?,
            rtcp: keys.sender()?,
            info,
            server: None,
            sender_ssrc: rand::random::<u32>() | 1,
            media_ssrc: 0,
            twcc_last: None,
            pending: Vec::new(),
            next_base: None,
            fb_count: 0,
            feedbacks: 0,
            streams: Vec::new(),
            scratch: Vec::with_capacity(2048),
        })
    }

    /// A packet with transport sequence number `seq` arrived at `arrival_us`.
    pub fn on_transport_seq(&mut self, seq: u16, ssrc: u32, arrival_us: i64) {
        let ext = extend(self.twcc_last, seq);
        self.twcc_last = Some(self.twcc_last.map_or(ext, |l| l.max(ext)));
        if self.media_ssrc == 0 {
            self.media_ssrc = ssrc;
        }
        self.pending.push((ext, arrival_us));
    }

    /// A media packet (not a resend) of stream `ssrc` with extended sequence number `seq`.
    pub fn on_media(&mut self, ssrc: u32, seq: u64) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.0 == ssrc) {
            s.1 = s.1.max(seq);
        } else if self.streams.len() < MAX_REPORTED {
            self.streams.push((ssrc, seq));
        }
    }

    /// The plain payload of `packet` (its header `header_len` bytes, extended sequence number
    /// `index`), decrypted in a copy.
    pub fn open(&mut self, packet: &[u8], header_len: usize, index: u64) -> Option<&[u8]> {
        self.scratch.clear();
        self.scratch.extend_from_slice(packet);
        self.rtp
            .unprotect(&mut self.scratch, header_len, index)
            .ok()
    }

    /// The transport-wide feedback for what arrived since the last one (led by a receiver
    /// report when one is due), protected, ready to send; None when nothing arrived.
    pub fn feedback(&mut self) -> Option<Vec<u8>> {
        let mut buf = self.plain_feedback()?;
        let n = buf.len();
        buf.resize(n + MAX_RTCP_OVERHEAD, 0);
        let n = self.rtcp.protect_rtcp(&mut buf, n).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// [`Light::feedback`] before protection.
    fn plain_feedback(&mut self) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            return None;
        }
        self.pending.sort_unstable_by_key(|p| p.0);
        let last = self.pending.last()?.0;
        // From where the previous feedback stopped (so losses in between are reported), but
        // never more than 500 packets back.
        let first = self.pending[0].0;
        let base = self
            .next_base
            .filter(|b| *b <= first && first - *b < 500)
            .unwrap_or(first);
        let span = (last - base + 1) as usize;
        let mut arrivals: Vec<Option<i64>> = vec![None; span];
        for &(seq, at) in &self.pending {
            if seq >= base {
                arrivals[(seq - base) as usize] = Some(at);
            }
        }
        let mut buf = vec![0u8; 8 + 24 * MAX_REPORTED + 64 + 4 * span + 32];
        let report = if self.feedbacks.is_multiple_of(REPORT_EVERY) && !self.streams.is_empty() {
            let blocks: Vec<ReportBlock> = self
                .streams
                .iter()
                .map(|&(ssrc, seq)| ReportBlock {
                    ssrc,
                    fraction_lost: 0,
                    highest_seq: seq as u32,
                    jitter: 0,
                    last_sr: 0,
                    delay_since_last_sr: 0,
                })
                .collect();
            write_receiver_report(&mut buf, self.sender_ssrc, &blocks)
        } else {
            0
        };
        let n = write_twcc(
            &mut buf[report..],
            self.sender_ssrc,
            self.media_ssrc,
            base as u16,
            self.fb_count,
            &arrivals,
        );
        if n == 0 {
            self.pending.clear();
            return None;
        }
        self.fb_count = self.fb_count.wrapping_add(1);
        self.feedbacks = self.feedbacks.wrapping_add(1);
        // What the feedback covered is done; a delta too large for one feedback waits.
        let covered = {
            let count = u16::from_be_bytes([buf[report + 14], buf[report + 15]]);
            base + u64::from(count)
        };
        self.pending.retain(|p| p.0 >= covered);
        self.next_base = Some(covered);
        buf.truncate(report + n);
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_gives_extension_ids_and_rtx_payload_types() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
                   a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
                   a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
                   a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n";
        let info = offer_info(sdp);
        assert_eq!(info.twcc_id, Some(3));
        assert_eq!(info.mid_id, Some(4));
        assert_eq!(info.rtx_pts, vec![97]);
    }

    #[test]
    fn headers_with_extensions_are_read() {
        let info = OfferInfo {
            twcc_id: Some(3),
            mid_id: Some(1),
            rtx_pts: vec![],
        };
        let mut p = vec![0x90, 0x80 | 96, 0x12, 0x34, 0, 0, 0, 9, 0, 0, 0, 7];
        p.extend([0xbe, 0xde, 0, 2, 0x10, b'3', 0x31, 0x00, 0x05, 0, 0, 0]);
        p.extend([1, 2, 3]);
        let h = parse_header(&p, &info).unwrap();
        assert_eq!((h.seq, h.time, h.ssrc, h.pt), (0x1234, 9, 7, 96));
        assert!(h.marker);
        assert_eq!(h.mid, Some(&b"3"[..]));
        assert_eq!(h.twcc, Some(5));
        assert_eq!(h.len, 24);
        assert!(
            parse_header(&p[..15], &info).is_none(),
            "truncated extension"
        );
    }

    #[test]
    fn a_receiver_report_leads_the_first_feedback_and_one_in_twenty() {
        use multiparty_meeting::sfu::egress::rtcp::{read_compound, Feedback};
        use multiparty_meeting::sfu::egress::srtp::Profile;
        let material: Vec<u8> = (0..56u8).collect();
        let keys = Keys::from_dtls(Profile::AeadAes128Gcm, &material, true).unwrap();
        let mut l = Light::new(&keys, OfferInfo::default()).unwrap();
        let pieces = |l: &mut Light, n: u16| {
            l.on_media(7, u64::from(n) + 65_536);
            l.on_transport_seq(n, 7, i64::from(n) * 1_000);
            let plain = l.plain_feedback().expect("something arrived");
            let mut got = Vec::new();
            read_compound(&plain, |f| {
                got.push(match f {
                    Feedback::Report(rb) => format!("rr {} {}", rb.ssrc, rb.highest_seq),
                    Feedback::Twcc(_) => "twcc".to_string(),
                    _ => "other".to_string(),
                })
            })
            .unwrap();
            got
        };
        assert_eq!(pieces(&mut l, 1), ["rr 7 65537", "twcc"]);
        for n in 2..=20 {
            assert_eq!(pieces(&mut l, n), ["twcc"], "feedback {n}");
        }
        assert_eq!(pieces(&mut l, 21), ["rr 7 65557", "twcc"]);
        assert!(l.plain_feedback().is_none(), "nothing new arrived");
        assert!(l.feedback().is_none());
        l.on_transport_seq(22, 7, 22_000);
        assert!(l.feedback().is_some_and(|f| f.len() > 20), "protected");
    }

    #[test]
    fn sequence_numbers_extend_across_the_wrap() {
        assert_eq!(extend(None, 65_535), 65_535);
        assert_eq!(extend(Some(65_535), 0), 65_536);
        assert_eq!(extend(Some(65_536), 65_535), 65_535, "a late packet");
        assert_eq!(extend(Some(200_000), 100), 196_708);
    }
}

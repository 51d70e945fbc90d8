//! RTCP between the worker and its subscribers, as bytes: reading the feedback a subscriber
//! sends about the streams it receives (receiver reports, NACK, PLI, FIR, transport-wide
//! congestion control feedback) and writing the sender reports the worker sends about them.
//! Pure functions over plain (decrypted) packets; malformed input is an [`RtcpError`], never a
//! panic: these bytes come from the network.

/// Why a compound RTCP packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Shorter than a header, or than the length a header states.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Not RTP version 2.
    #[error("RTCP version is not 2")]
    Version,
    /// A transport-wide feedback whose chunks or deltas do not add up.
    #[error("malformed transport-wide congestion control feedback")]
    Twcc,
}

/// RTCP packet types (RFC 3550, RFC 4585).
const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const PT_RTPFB: u8 = 205;
const PT_PSFB: u8 = 206;

/// One piece of feedback from a compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback<'a> {
    /// A report block about one of our streams (from an RR or SR).
    Report(ReportBlock),
    /// Generic NACK (RFC 4585 §6.2.1): `pid` and the 16 following in the bitmask `blp`.
    Nack { media_ssrc: u32, pid: u16, blp: u16 },
    /// Picture loss indication.
    Pli { media_ssrc: u32 },
    /// Full intra request (RFC 5104), one per entry.
    Fir { media_ssrc: u32 },
    /// Transport-wide congestion control feedback; read it with [`read_twcc`].
    Twcc(&'a [u8]),
}

/// A reception report about one SSRC (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    pub highest_seq: u32,
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from us, 0 if none.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Calls `each` for every piece of feedback in the compound packet `buf`. Packet types it
/// does not need (SDES, BYE, XR, application feedback) are skipped. Stops at the first
/// malformed packet, after the feedback before it.
pub fn read_compound<'a>(
    buf: &'a [u8],
    mut each: impl FnMut(Feedback<'a>),
) -> Result<(), RtcpError> {
    let mut at = 0;
    while at < buf.len() {
        if buf.len() - at < 4 {
            return Err(RtcpError::Truncated);
        }
        let first = buf[at];
        if first >> 6 != 2 {
            return Err(RtcpError::Version);
        }
        let count = first & 0x1f;
        let pt = buf[at + 1];
        let len = (usize::from(be16(buf, at + 2)) + 1) * 4;
        if buf.len() - at < len {
            return Err(RtcpError::Truncated);
        }
        let packet = &buf[at..at + len];
        // Padding (P bit) only counts at the end; the blocks below never read into it.
        match pt {
            PT_SR | PT_RR => {
                let blocks_at = if pt == PT_SR { 28 } else { 8 };
                for i in 0..usize::from(count) {
                    let b = blocks_at + i * 24;
                    if packet.len() < b + 24 {
                        return Err(RtcpError::Truncated);
                    }
                    each(Feedback::Report(ReportBlock {
                        ssrc: be32(packet, b),
                        fraction_lost: packet[b + 4],
                        highest_seq: be32(packet, b + 8),
                        jitter: be32(packet, b + 12),
                        last_sr: be32(packet, b + 16),
                        delay_since_last_sr: be32(packet, b + 20),
                    }));
                }
            }
            PT_RTPFB | PT_PSFB => {
                if packet.len() < 12 {
                    return Err(RtcpError::Truncated);
                }
                let media_ssrc = be32(packet, 8);
                let fci = &packet[12..];
                match (pt, count) {
                    (PT_RTPFB, 1) => {
                        for entry in fci.chunks_exact(4) {
                            each(Feedback::Nack {
                                media_ssrc,
                                pid: be16(entry, 0),
                                blp: be16(entry, 2),
                            });
                        }
                    }
                    (PT_RTPFB, 15) => each(Feedback::Twcc(&packet[8..])),
                    (PT_PSFB, 1) => each(Feedback::Pli { media_ssrc }),
                    (PT_PSFB, 4) => {
                        for entry in fci.chunks_exact(8) {
                            each(Feedback::Fir {
                                media_ssrc: be32(entry, 0),
                            });
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        at += len;
    }
    Ok(())
}

/// The sequence numbers a NACK entry asks for.
pub fn nacked(pid: u16, blp: u16) -> impl Iterator<Item = u16> {
    std::iter::once(pid).chain(
        (0..16)
            .filter(move |i| blp & (1 << i) != 0)
            .map(move |i| pid.wrapping_add(i + 1)),
    )
}

/// What a transport-wide feedback says besides the per-packet results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccHeader {
    pub base_seq: u16,
    pub status_count: u16,
    /// Reference time, in multiples of 64 ms on the receiver's clock.
    pub reference_time: i32,
    pub feedback_count: u8,
}

/// One packet's fate in a transport-wide feedback: its transport sequence number and, when it
/// arrived, the arrival time in microseconds on the receiver's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccResult {
    pub seq: u16,
    pub arrival_us: Option<i64>,
}

/// Reads a transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
/// extensions-01 §3.1), starting at the media SSRC field as [`Feedback::Twcc`] gives it, into
/// `out` (cleared first).
pub fn read_twcc(fci: &[u8], out: &mut Vec<TwccResult>) -> Result<TwccHeader, RtcpError> {
    out.clear();
    if fci.len() < 12 {
        return Err(RtcpError::Truncated);
    }
    let base_seq = be16(fci, 4);
    let status_count = be16(fci, 6);
    // 24-bit signed.
    let raw = (u32::from(fci[8]) << 16) | (u32::from(fci[9]) << 8) | u32::from(fci[10]);
    let reference_time = ((raw << 8) as i32) >> 8;
    let header = TwccHeader {
        base_seq,
        status_count,
        reference_time,
        feedback_count: fci[11],
    };
    // Statuses: 0 not received, 1 small delta, 2 large or negative delta.
    let mut statuses: Vec<u8> = Vec::with_capacity(usize::from(status_count));
    let mut at = 12;
    while statuses.len() < usize::from(status_count) {
        if fci.len() < at + 2 {
            return Err(RtcpError::Truncated);
        }
        let chunk = be16(fci, at);
        at += 2;
        let left = usize::from(status_count) - statuses.len();
        if chunk & 0x8000 == 0 {
            let symbol = ((chunk >> 13) & 0x03) as u8;
            let run = usize::from(chunk & 0x1fff);
            if symbol == 3 {
                return Err(RtcpError::Twcc);
            }
            statuses.extend(std::iter::repeat_n(symbol, run.min(left)));
        } else if chunk & 0x4000 == 0 {
            for i in (0..14).rev().take(left) {
                statuses.push(((chunk >> i) & 1) as u8);
            }
        } else {
            for i in (0..7).rev().take(left) {
                let symbol = ((chunk >> (2 * i)) & 0x03) as u8;
                if symbol == 3 {
                    return Err(RtcpError::Twcc);
                }
                statuses.push(symbol);
            }
        }
    }
    let mut arrival = i64::from(reference_time) * 64_000;
    for (i, status) in statuses.into_iter().enumerate() {
        let seq = base_seq.wrapping_add(i as u16);
        let delta = match status {
            0 => {
                out.push(TwccResult {
                    seq,
                    arrival_us: None,
                });
                continue;
            }
            1 => {
                let d = *fci.get(at).ok_or(RtcpError::Truncated)?;
                at += 1;
                i64::from(d)
            }
            _ => {
                if fci.len() < at + 2 {
                    return Err(RtcpError::Truncated);
                }
                let d = be16(fci, at) as i16;
                at += 2;
                i64::from(d)
            }
        };
        arrival += delta * 250;
        out.push(TwccResult {
            seq,
            arrival_us: Some(arrival),
        });
    }
    Ok(header)
}

/// Writes a sender report without report blocks (RFC 3550 §6.4.1) at the start of `buf`
/// (28 bytes); returns its length.
pub fn write_sender_report(
    buf: &mut [u8],
    ssrc: u32,
    ntp: u64,
    rtp_time: u32,
    packets: u32,
    octets: u32,
) -> usize {
    buf[0] = 0x80;
    buf[1] = PT_SR;
    buf[2..4].copy_from_slice(&6u16.to_be_bytes());
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    buf[8..16].copy_from_slice(&ntp.to_be_bytes());
    buf[16..20].copy_from_slice(&rtp_time.to_be_bytes());
    buf[20..24].copy_from_slice(&packets.to_be_bytes());
    buf[24..28].copy_from_slice(&octets.to_be_bytes());
    28
}

/// Writes an SDES packet with one CNAME item (RFC 3550 §6.5) at the start of `buf`; returns
/// its length. A CNAME is cut at 255 bytes.
pub fn write_sdes_cname(buf: &mut [u8], ssrc: u32, cname: &str) -> usize {
    let name = &cname.as_bytes()[..cname.len().min(255)];
    // SSRC, type, length, text, then a null item; padded to 32 bits.
    let body = 4 + 2 + name.len() + 1;
    let len = 4 + body.div_ceil(4) * 4;
    buf[..len].fill(0);
    buf[0] = 0x81;
    buf[1] = PT_SDES;
    buf[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    buf[8] = 1;
    buf[9] = name.len() as u8;
    buf[10..10 + name.len()].copy_from_slice(name);
    len
}

/// Writes a receiver report (RFC 3550 §6.4.2) with `blocks` (at most 31) at the start of
/// `buf`; returns its length. The receive side of the load generator's light subscribers.
pub fn write_receiver_report(buf: &mut [u8], sender_ssrc: u32, blocks: &[ReportBlock]) -> usize {
    let blocks = &blocks[..blocks.len().min(31)];
    let len = 8 + 24 * blocks.len();
    buf[0] = 0x80 | blocks.len() as u8;
    buf[1] = PT_RR;
    buf[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    for (i, b) in blocks.iter().enumerate() {
        let at = 8 + 24 * i;
        buf[at..at + 4].copy_from_slice(&b.ssrc.to_be_bytes());
        buf[at + 4..at + 8].copy_from_slice(&[b.fraction_lost, 0, 0, 0]);
        buf[at + 8..at + 12].copy_from_slice(&b.highest_seq.to_be_bytes());
        buf[at + 12..at + 16].copy_from_slice(&b.jitter.to_be_bytes());
        buf[at + 16..at + 20].copy_from_slice(&b.last_sr.to_be_bytes());
        buf[at + 20..at + 24].copy_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
    len
}

/// Writes a transport-wide congestion control feedback at the start of `buf` for the
/// packets from `base_seq` on, `arrivals[i]` being packet `base_seq + i`'s arrival (µs on
/// the receiver's clock) or None when lost; returns its length, 0 when `buf` is too small.
/// Arrivals are rounded to 250 µs; a delta that does not fit 16 bits ends the feedback early
/// (the rest goes in the next one).
pub fn write_twcc(
    buf: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    base_seq: u16,
    feedback_count: u8,
    arrivals: &[Option<i64>],
) -> usize {
    let Some(first) = arrivals.iter().flatten().next() else {
        return 0;
    };
    // Reference time: 64 ms units, at or before the first arrival.
    let reference = first.div_euclid(64_000);
    let mut deltas: Vec<(u8, i16)> = Vec::with_capacity(arrivals.len());
    let mut last = reference * 64_000;
    let mut count = 0usize;
    for a in arrivals {
        match a {
            None => deltas.push((0, 0)),
            Some(at) => {
                let ticks = (at - last).div_euclid(250);
                let Ok(d) = i16::try_from(ticks) else {
                    break;
                };
                deltas.push(if (0..=255).contains(&d) {
                    (1, d)
                } else {
                    (2, d)
                });
                last += i64::from(d) * 250;
            }
        }
        count += 1;
    }
    // Trailing losses say nothing the next feedback cannot.
    while deltas.last().is_some_and(|d| d.0 == 0) {
        deltas.pop();
        count -= 1;
    }
    let chunks = deltas.len().div_ceil(7);
    let delta_bytes: usize = deltas.iter().map(|d| usize::from(d.0)).sum();
    let body = 20 + 2 * chunks + delta_bytes;
    let len = body.div_ceil(4) * 4;
    if buf.len() < len || count == 0 {
        return 0;
    }
    buf[..len].fill(0);
    buf[0] = 0x80 | 15 | if len > body { 0x20 } else { 0 };
    buf[1] = PT_RTPFB;
    buf[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    buf[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    buf[12..14].copy_from_slice(&base_seq.to_be_bytes());
    buf[14..16].copy_from_slice(&(count as u16).to_be_bytes());
    let r = (reference as u32 & 0x00ff_ffff).to_be_bytes();
    buf[16..19].copy_from_slice(&r[1..]);
    buf[19] = feedback_count;
    let mut at = 20;
    // Two-bit status vectors, seven statuses a chunk.
    for chunk in deltas.chunks(7) {
        let mut c: u16 = 0xc000;
        for (i, d) in chunk.iter().enumerate() {
            c |= u16::from(d.0) << (12 - 2 * i);
        }
        buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
        at += 2;
    }
    for &(status, d) in &deltas {
        match status {
            1 => {
                buf[at] = d as u8;
                at += 1;
            }
            2 => {
                buf[at..at + 2].copy_from_slice(&d.to_be_bytes());
                at += 2;
            }
            _ => {}
        }
    }
    if len > body {
        // RTCP padding: the last byte counts the padding bytes.
        buf[len - 1] = (len - body) as u8;
    }
    len
}

/// The middle 32 bits of an NTP time, as receiver reports echo it (`last_sr`).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(blocks: &[(u32, u8, u32, u32)]) -> Vec<u8> {
        let mut p = vec![0x80 | blocks.len() as u8, PT_RR, 0, 0, 0, 0, 0, 9];
        for &(ssrc, lost, lsr, dlsr) in blocks {
            p.extend(ssrc.to_be_bytes());
            p.extend([lost, 0, 0, 1]);
            p.extend(1000u32.to_be_bytes());
            p.extend(7u32.to_be_bytes());
            p.extend(lsr.to_be_bytes());
            p.extend(dlsr.to_be_bytes());
        }
        let words = (p.len() / 4 - 1) as u16;
        p[2..4].copy_from_slice(&words.to_be_bytes());
        p
    }

    fn feedback(pt: u8, fmt: u8, media: u32, fci: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80 | fmt, pt, 0, 0, 0, 0, 0, 9];
        p.extend(media.to_be_bytes());
        p.extend(fci);
        let words = (p.len() / 4 - 1) as u16;
        p[2..4].copy_from_slice(&words.to_be_bytes());
        p
    }

    fn read_all(buf: &[u8]) -> (Vec<Feedback<'_>>, Result<(), RtcpError>) {
        let mut got = Vec::new();
        let r = read_compound(buf, |f| got.push(f));
        (got, r)
    }

    #[test]
    fn a_compound_packet_gives_each_report_and_request() {
        let mut p = rr(&[(0xaaaa, 64, 0x1234_5678, 655), (0xbbbb, 0, 0, 0)]);
        p.extend(feedback(
            PT_RTPFB,
            1,
            0xaaaa,
            &[0, 10, 0b1000_0000, 0b0000_0101],
        ));
        p.extend(feedback(PT_PSFB, 1, 0xbbbb, &[]));
        p.extend(feedback(PT_PSFB, 4, 0, &[0, 0, 0xcc, 0xcc, 1, 0, 0, 0]));
        let (got, r) = read_all(&p);
        r.unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(
            got[0],
            Feedback::Report(ReportBlock {
                ssrc: 0xaaaa,
                fraction_lost: 64,
                highest_seq: 1000,
                jitter: 7,
                last_sr: 0x1234_5678,
                delay_since_last_sr: 655,
            })
        );
        assert_eq!(
            got[2],
            Feedback::Nack {
                media_ssrc: 0xaaaa,
                pid: 10,
                blp: 0x8005
            }
        );
        assert_eq!(
            nacked(10, 0x8005).collect::<Vec<_>>(),
            vec![10, 11, 13, 26],
            "the pid, then bits 0, 2 and 15"
        );
        assert_eq!(got[3], Feedback::Pli { media_ssrc: 0xbbbb });
        assert_eq!(got[4], Feedback::Fir { media_ssrc: 0xcccc });
    }

    #[test]
    fn malformed_packets_are_errors_after_what_came_before() {
        let mut p = feedback(PT_PSFB, 1, 0xbbbb, &[]);
        p.extend([0x80, PT_RR, 0, 20, 0, 0]);
        let (got, r) = read_all(&p);
        assert_eq!(got.len(), 1, "the PLI before the broken packet");
        assert_eq!(r, Err(RtcpError::Truncated));
        assert_eq!(read_all(&[0x40, 200, 0, 0]).1, Err(RtcpError::Version));
        // An RR claiming a report block it does not carry.
        assert_eq!(
            read_all(&[0x81, PT_RR, 0, 1, 0, 0, 0, 1]).1,
            Err(RtcpError::Truncated)
        );
        assert_eq!(read_all(&[]).1, Ok(()));
    }

    /// The feedback of the draft's example shapes: a run, a 1-bit vector and a 2-bit vector,
    /// small and large deltas.
    #[test]
    fn transport_wide_feedback_gives_each_packet_and_its_arrival() {
        let mut fci = Vec::new();
        fci.extend(0x1111_1111u32.to_be_bytes()); // media SSRC
        fci.extend(65534u16.to_be_bytes()); // base seq: wraps
        fci.extend(19u16.to_be_bytes()); // status count
        fci.extend([0x00, 0x00, 0x02, 7]); // reference time 2 (128 ms), count 7
                                           // Run of 3 "small delta".
        fci.extend((0x2000u16 | 3).to_be_bytes());
        // 1-bit vector of 14: received, lost, then 12 received.
        fci.extend((0x8000u16 | 0b10_1111_1111_1111).to_be_bytes());
        // 2-bit vector, 7 symbols of which 2 are used: large delta, not received.
        fci.extend((0xc000u16 | (2 << 12)).to_be_bytes());
        let mut deltas = vec![4u8, 4, 4, 8];
        deltas.extend([1u8; 12]);
        fci.extend(&deltas);
        fci.extend((-8i16).to_be_bytes()); // large negative delta: -2 ms
        let p = feedback(PT_RTPFB, 15, 0x1111_1111, &fci[4..]);
        let (got, r) = read_all(&p);
        r.unwrap();
        let Feedback::Twcc(body) = got[0] else {
            panic!("expected transport-wide feedback, got {got:?}");
        };
        let mut out = Vec::new();
        let header = read_twcc(body, &mut out).unwrap();
        assert_eq!(header.base_seq, 65534);
        assert_eq!(header.reference_time, 2);
        assert_eq!(header.feedback_count, 7);
        assert_eq!(out.len(), 19);
        assert_eq!(out[0].seq, 65534);
        assert_eq!(out[2].seq, 0, "sequence numbers wrap");
        assert_eq!(out[0].arrival_us, Some(128_000 + 1_000));
        assert_eq!(out[2].arrival_us, Some(128_000 + 3_000));
        assert_eq!(out[3].arrival_us, Some(128_000 + 5_000));
        assert_eq!(out[4].arrival_us, None);
        assert_eq!(out[16].arrival_us, Some(128_000 + 5_000 + 12 * 250));
        assert_eq!(out[17].arrival_us, Some(128_000 + 5_000 + 12 * 250 - 2_000));
        assert_eq!(out[18].arrival_us, None);
    }

    #[test]
    fn truncated_transport_wide_feedback_is_an_error() {
        let mut fci = vec![0, 0, 0, 1, 0, 5, 0, 3, 0, 0, 0, 0];
        fci.extend((0x2000u16 | 3).to_be_bytes());
        fci.extend([1, 1]); // one delta missing
        let mut out = Vec::new();
        assert_eq!(read_twcc(&fci, &mut out), Err(RtcpError::Truncated));
        let mut reserved = vec![0, 0, 0, 1, 0, 5, 0, 1, 0, 0, 0, 0];
        reserved.extend((0x6000u16 | 1).to_be_bytes());
        assert_eq!(read_twcc(&reserved, &mut out), Err(RtcpError::Twcc));
    }

    #[test]
    fn written_transport_wide_feedback_reads_back() {
        let arrivals = [
            Some(1_000_000),
            Some(1_000_250),
            None,
            Some(1_001_000),
            Some(1_100_000), // 99 ms later: a large delta
            Some(1_099_000), // arrived before the one sent earlier: negative
            None,
            Some(1_100_500),
            None,
            None,
        ];
        let mut buf = [0u8; 256];
        let n = write_twcc(&mut buf, 9, 0xabcd, 65_530, 3, &arrivals);
        assert!(n > 0 && n.is_multiple_of(4));
        let (got, r) = read_all(&buf[..n]);
        r.unwrap();
        let Feedback::Twcc(body) = got[0] else {
            panic!("{got:?}");
        };
        let mut out = Vec::new();
        let h = read_twcc(body, &mut out).unwrap();
        assert_eq!((h.base_seq, h.feedback_count), (65_530, 3));
        assert_eq!(
            out.len(),
            8,
            "trailing losses are left for the next feedback"
        );
        for (i, r) in out.iter().enumerate() {
            assert_eq!(r.seq, 65_530u16.wrapping_add(i as u16));
            assert_eq!(r.arrival_us, arrivals[i], "packet {i}");
        }
        // Nothing arrived: nothing to say.
        assert_eq!(write_twcc(&mut buf, 9, 1, 0, 0, &[None, None]), 0);
    }

    #[test]
    fn a_written_receiver_report_reads_back() {
        let block = ReportBlock {
            ssrc: 77,
            fraction_lost: 12,
            highest_seq: 70_000,
            jitter: 3,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 99,
        };
        let mut buf = [0u8; 64];
        let n = write_receiver_report(&mut buf, 5, &[block]);
        let (got, r) = read_all(&buf[..n]);
        r.unwrap();
        assert_eq!(got, vec![Feedback::Report(block)]);
    }

    #[test]
    fn sender_report_and_cname_are_well_formed() {
        let mut buf = [0u8; 128];
        let n = write_sender_report(&mut buf, 0xabcd, 0x0102_0304_0506_0708, 90_000, 10, 12_000);
        let m = write_sdes_cname(&mut buf[n..], 0xabcd, "a-cname");
        assert_eq!(n, 28);
        assert_eq!(m % 4, 0);
        assert_eq!(usize::from(be16(&buf, 2) + 1) * 4, n);
        assert_eq!(usize::from(be16(&buf, n + 2) + 1) * 4, m);
        assert_eq!(&buf[n + 10..n + 17], b"a-cname");
        assert_eq!(buf[n + 17], 0, "the null item ends the chunk");
        // Our own reader walks the compound packet without error.
        let (got, r) = read_all(&buf[..n + m]);
        r.unwrap();
        assert!(got.is_empty(), "no report blocks, no requests");
        assert_eq!(ntp_middle(0x0102_0304_0506_0708), 0x0304_0506);
    }
}

//! Forwarding at the RTP level: what the worker reads once from each incoming packet
//! ([`inspect`]: does it start a keyframe, its VP8 picture ids), and, per consumer, the
//! [`Rewriter`] that keeps the outgoing stream one continuous stream although its packets come
//! from different simulcast layers over time, with pauses between.
//!
//! A consumer's stream is a sequence of *runs*: a run starts at a keyframe (video) or at any
//! packet (audio), when the consumer starts, switches layer or resumes after a pause. Within a
//! run, sequence numbers, RTP time, VP8 picture id and TL0PICIDX are the producer's shifted by
//! constant offsets, chosen at the run's start so that it follows the previous run without a
//! gap. So a subscriber sees exactly the losses the server saw (and can ask for them with NACK
//! or, when they are gone, for a keyframe) and never a gap the server made itself.
//! Pure code: the worker feeds it; the unit tests below are the specification.

use std::time::Instant;

/// The codecs whose keyframes the worker recognizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Vp8,
    H264,
    /// Audio and anything else: no keyframes, no picture ids.
    Other,
}

/// The VP8 payload descriptor fields a rewrite may shift (RFC 7741 section 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Ids {
    /// Picture id and whether it has 15 bits (else 7).
    pub picture_id: Option<(u16, bool)>,
    pub tl0_pic_idx: Option<u8>,
}

/// What the worker reads once from an incoming packet, for all its consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inbound {
    /// The first packet of a keyframe: a run of a video consumer may start here.
    pub keyframe_start: bool,
    pub vp8: Option<Vp8Ids>,
    /// Frame height, read from a VP8 keyframe's first packet.
    pub height: Option<u32>,
}

/// Reads what forwarding needs from an RTP payload. Malformed payloads read as plain packets
/// that start nothing.
pub fn inspect(codec: Codec, payload: &[u8]) -> Inbound {
    match codec {
        Codec::Vp8 => inspect_vp8(payload),
        Codec::H264 => Inbound {
            keyframe_start: h264_keyframe_start(payload),
            ..Inbound::default()
        },
        Codec::Other => Inbound::default(),
    }
}

fn inspect_vp8(p: &[u8]) -> Inbound {
    let Some(&first) = p.first() else {
        return Inbound::default();
    };
    let mut at = 1;
    let mut ids = Vp8Ids {
        picture_id: None,
        tl0_pic_idx: None,
    };
    if first & 0x80 != 0 {
        let Some(&x) = p.get(at) else {
            return Inbound::default();
        };
        at += 1;
        if x & 0x80 != 0 {
            let Some(&b) = p.get(at) else {
                return Inbound::default();
            };
            if b & 0x80 != 0 {
                let Some(&b2) = p.get(at + 1) else {
                    return Inbound::default();
                };
                ids.picture_id = Some(((u16::from(b & 0x7f) << 8) | u16::from(b2), true));
                at += 2;
            } else {
                ids.picture_id = Some((u16::from(b), false));
                at += 1;
            }
        }
        if x & 0x40 != 0 {
            let Some(&t) = p.get(at) else {
                return Inbound::default();
            };
            ids.tl0_pic_idx = Some(t);
            at += 1;
        }
        if x & 0x30 != 0 {
            at += 1;
        }
    }
    let Some(frame) = p.get(at..).filter(|f| !f.is_empty()) else {
        return Inbound::default();
    };
    // S bit set, partition 0, and the frame header's P bit clear.
    let keyframe_start = first & 0x10 != 0 && first & 0x07 == 0 && frame[0] & 0x01 == 0;
    Inbound {
        keyframe_start,
        vp8: Some(ids),
        height: if keyframe_start {
            super::simulcast::vp8_keyframe_height(frame)
        } else {
            None
        },
    }
}

/// True when an H.264 payload (RFC 6184) carries a sequence parameter set or the start of an
/// IDR slice: the first packet of a keyframe.
fn h264_keyframe_start(p: &[u8]) -> bool {
    let starts = |nal: u8| matches!(nal & 0x1f, 5 | 7);
    match p.first().map(|b| b & 0x1f) {
        Some(1..=23) => starts(p[0]),
        // STAP-A: 16-bit sizes, each followed by a NAL unit.
        Some(24) => {
            let mut at = 1;
            while let (Some(&hi), Some(&lo)) = (p.get(at), p.get(at + 1)) {
                let size = usize::from(u16::from_be_bytes([hi, lo]));
                match p.get(at + 2) {
                    Some(&nal) if size > 0 && starts(nal) => return true,
                    Some(_) => at += 2 + size,
                    None => return false,
                }
            }
            false
        }
        // FU-A: the start bit and the fragmented unit's type.
        Some(28) => p.get(1).is_some_and(|h| h & 0x80 != 0 && h & 0x1f == 5),
        _ => false,
    }
}

/// A packet as one consumer gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended sequence number (the first run starts below 65536, so no rollover counter has
    /// to be signalled).
    pub seq: u64,
    pub time: u32,
    /// Set when the VP8 descriptor must be patched: the run shifts its ids.
    pub vp8: Option<Vp8Ids>,
}

/// The offsets of a run: what the producer's numbers become in the consumer's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First incoming sequence number of the run; older packets belong to what came before.
    first_in: u64,
    seq_offset: u64,
    time_offset: u32,
    picture_id_offset: u16,
    tl0_offset: u8,
}

impl Run {
    /// The producer's packet `seq` (time, VP8 ids) as this run writes it.
    pub fn apply(&self, seq: u64, time: u32, vp8: Option<Vp8Ids>) -> Rewritten {
        let shifted = vp8.map(|ids| self.shift(ids));
        Rewritten {
            seq: seq.wrapping_add(self.seq_offset),
            time: time.wrapping_add(self.time_offset),
            vp8: shifted.filter(|_| self.shifts_vp8()),
        }
    }

    /// The producer's sequence number of the consumer's `out_seq`.
    pub fn source_seq(&self, out_seq: u64) -> u64 {
        out_seq.wrapping_sub(self.seq_offset)
    }

    /// True when the run rewrites VP8 picture ids (the payload must be patched).
    pub fn shifts_vp8(&self) -> bool {
        self.picture_id_offset != 0 || self.tl0_offset != 0
    }

    fn shift(&self, ids: Vp8Ids) -> Vp8Ids {
        Vp8Ids {
            picture_id: ids.picture_id.map(|(id, long)| {
                (
                    id.wrapping_add(self.picture_id_offset) & picture_id_mask(long),
                    long,
                )
            }),
            tl0_pic_idx: ids.tl0_pic_idx.map(|t| t.wrapping_add(self.tl0_offset)),
        }
    }
}

/// The newest packet written (by sequence number), which the next run continues.
#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u64,
    time: u32,
    at: Instant,
    ids: Option<Vp8Ids>,
}

/// One consumer's rewrite. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Rewriter {
    run: Option<Run>,
    last: Option<Last>,
}

impl Rewriter {
    /// True while a run goes on: packets of the forwarded layer are rewritten and written.
    pub fn running(&self) -> bool {
        self.run.is_some()
    }

    /// True once a packet has been written: the stream has begun.
    pub fn has_written(&self) -> bool {
        self.last.is_some()
    }

    /// The current run's offsets.
    pub fn run(&self) -> Option<Run> {
        self.run
    }

    /// Ends the current run (pause, layer switched off): nothing is written until the next
    /// [`Rewriter::start`].
    pub fn stop(&mut self) {
        self.run = None;
    }

    /// Starts a run at this packet, continuing the last one: its sequence number follows the
    /// last written, its RTP time advances by the wall time since (`clock_rate` per second),
    /// and its VP8 ids follow the last written ids.
    pub fn start(
        &mut self,
        seq: u64,
        time: u32,
        vp8: Option<Vp8Ids>,
        clock_rate: u32,
        now: Instant,
    ) {
        let mut run = Run {
            first_in: seq,
            // The first run keeps the low 16 bits: no rollover counter to signal.
            seq_offset: (seq & 0xffff).wrapping_sub(seq),
            time_offset: 0,
            picture_id_offset: 0,
            tl0_offset: 0,
        };
        if let Some(last) = self.last {
            run.seq_offset = last.seq.wrapping_add(1).wrapping_sub(seq);
            let elapsed = now.saturating_duration_since(last.at);
            let ticks = (elapsed.as_micros() * u128::from(clock_rate) / 1_000_000).max(1);
            let out_time = last
                .time
                .wrapping_add(u32::try_from(ticks).unwrap_or(u32::MAX));
            run.time_offset = out_time.wrapping_sub(time);
            if let (Some(prev), Some(ids)) = (last.ids, vp8) {
                if let (Some((last_id, _)), Some((id, long))) = (prev.picture_id, ids.picture_id) {
                    let mask = picture_id_mask(long);
                    run.picture_id_offset = last_id.wrapping_add(1).wrapping_sub(id) & mask;
                }
                if let (Some(last_tl0), Some(tl0)) = (prev.tl0_pic_idx, ids.tl0_pic_idx) {
                    run.tl0_offset = last_tl0.wrapping_add(1).wrapping_sub(tl0);
                }
            }
        }
        self.run = Some(run);
    }

    /// The packet as this consumer gets it, or `None` outside a run or when it belongs before
    /// the run's start (a late packet of a layer left, or of a time the consumer skipped).
    pub fn rewrite(
        &mut self,
        seq: u64,
        time: u32,
        vp8: Option<Vp8Ids>,
        now: Instant,
    ) -> Option<Rewritten> {
        let run = self.run?;
        if seq < run.first_in {
            return None;
        }
        let shifted = vp8.map(|ids| run.shift(ids));
        let out = run.apply(seq, time, vp8);
        if self.last.is_none_or(|l| out.seq > l.seq) {
            self.last = Some(Last {
                seq: out.seq,
                time: out.time,
                at: now,
                ids: shifted,
            });
        }
        Some(out)
    }
}

fn picture_id_mask(long: bool) -> u16 {
    if long {
        0x7fff
    } else {
        0x7f
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A VP8 payload: descriptor with a 15-bit picture id and TL0PICIDX, then a frame header.
    fn vp8(start: bool, picture_id: u16, tl0: u8, keyframe: bool) -> Vec<u8> {
        let mut p = vec![
            0x80 | if start { 0x10 } else { 0 },
            0xc0,
            0x80 | (picture_id >> 8) as u8,
            picture_id as u8,
            tl0,
        ];
        if keyframe {
            // Keyframe header: P bit clear, start code, 640x360.
            p.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
        } else {
            p.extend_from_slice(&[0x01, 0x00, 0x00]);
        }
        p
    }

    fn ids(picture_id: u16, tl0: u8) -> Option<Vp8Ids> {
        Some(Vp8Ids {
            picture_id: Some((picture_id, true)),
            tl0_pic_idx: Some(tl0),
        })
    }

    #[test]
    fn vp8_keyframe_starts_and_ids_are_read() {
        let k = inspect(Codec::Vp8, &vp8(true, 300, 7, true));
        assert!(k.keyframe_start);
        assert_eq!(k.vp8, ids(300, 7));
        assert_eq!(k.height, Some(360));
        // The second packet of that keyframe, and a delta frame, start nothing.
        assert!(!inspect(Codec::Vp8, &vp8(false, 300, 7, true)).keyframe_start);
        let d = inspect(Codec::Vp8, &vp8(true, 301, 7, false));
        assert!(!d.keyframe_start);
        assert_eq!(d.vp8, ids(301, 7));
        // Truncated descriptors read as nothing, without panicking.
        let full = vp8(true, 300, 7, true);
        for n in 0..6 {
            assert_eq!(
                inspect(Codec::Vp8, &full[..n]),
                Inbound::default(),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn h264_keyframe_starts() {
        assert!(inspect(Codec::H264, &[0x67, 1, 2]).keyframe_start, "SPS");
        assert!(inspect(Codec::H264, &[0x65, 1, 2]).keyframe_start, "IDR");
        assert!(
            !inspect(Codec::H264, &[0x41, 1, 2]).keyframe_start,
            "P slice"
        );
        // STAP-A with SPS and PPS.
        let stap = [0x78, 0, 2, 0x67, 1, 0, 2, 0x68, 1];
        assert!(inspect(Codec::H264, &stap).keyframe_start);
        assert!(!inspect(Codec::H264, &[0x78, 0, 2, 0x68, 1]).keyframe_start);
        assert!(!inspect(Codec::H264, &[0x78, 0xff, 0xff]).keyframe_start);
        // FU-A: start of an IDR, and its continuation.
        assert!(inspect(Codec::H264, &[0x7c, 0x85, 1]).keyframe_start);
        assert!(!inspect(Codec::H264, &[0x7c, 0x05, 1]).keyframe_start);
        assert!(!inspect(Codec::H264, &[]).keyframe_start);
    }

    #[test]
    fn the_first_run_keeps_the_producers_numbers_below_the_rollover() {
        let now = Instant::now();
        let mut r = Rewriter::default();
        assert_eq!(r.rewrite(70_000, 1000, None, now), None, "no run yet");
        r.start(70_000, 1000, ids(5, 1), 90_000, now);
        let out = r.rewrite(70_000, 1000, ids(5, 1), now).unwrap();
        assert_eq!(out.seq, 70_000 - 65_536);
        assert_eq!(out.time, 1000);
        assert_eq!(out.vp8, None, "nothing to patch");
        // A gap the server saw stays a gap: the subscriber can ask for it.
        assert_eq!(r.rewrite(70_003, 1000, ids(6, 1), now).unwrap().seq, 4_467);
        // A late (repaired) packet of the run is forwarded at its place.
        assert_eq!(r.rewrite(70_001, 1000, ids(5, 1), now).unwrap().seq, 4_465);
    }

    #[test]
    fn a_layer_switch_continues_sequence_time_and_picture_ids() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        // Layer "l": seq 100.., time 5000, picture ids 40.., tl0 9.
        r.start(100, 5000, ids(40, 9), 90_000, t0);
        for i in 0..3 {
            r.rewrite(100 + i, 5000, ids(40, 9), t0).unwrap();
        }
        // Layer "h" keyframe 100 ms later: a different SSRC's numbers.
        let t1 = t0 + Duration::from_millis(100);
        r.start(9_000, 777_000, ids(30_000, 200), 90_000, t1);
        let first = r.rewrite(9_000, 777_000, ids(30_000, 200), t1).unwrap();
        assert_eq!(first.seq, 103, "follows the last packet written");
        assert_eq!(
            first.time,
            5000 + 9000,
            "advanced by 100 ms of a 90 kHz clock"
        );
        assert_eq!(
            first.vp8,
            ids(41, 10),
            "picture id and TL0PICIDX follow too"
        );
        let next = r.rewrite(9_001, 780_000, ids(30_001, 200), t1).unwrap();
        assert_eq!((next.seq, next.time), (104, 5000 + 9000 + 3000));
        assert_eq!(next.vp8, ids(42, 10));
        // A late packet of layer "l", or of "h" from before the switch, is not written.
        assert_eq!(r.rewrite(103, 5000, ids(41, 9), t1), None, "old layer");
        assert_eq!(r.rewrite(8_999, 770_000, ids(29_999, 199), t1), None);
    }

    #[test]
    fn picture_ids_wrap_in_their_own_width() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        r.start(1, 0, ids(0x7fff, 255), 90_000, t0);
        r.rewrite(1, 0, ids(0x7fff, 255), t0).unwrap();
        r.start(50, 0, ids(10, 3), 90_000, t0);
        let out = r.rewrite(50, 0, ids(10, 3), t0).unwrap();
        assert_eq!(
            out.vp8,
            ids(0, 0),
            "15-bit id and 8-bit TL0PICIDX wrap to 0"
        );
        let seven = Some(Vp8Ids {
            picture_id: Some((127, false)),
            tl0_pic_idx: None,
        });
        let mut r = Rewriter::default();
        r.start(1, 0, seven, 90_000, t0);
        r.rewrite(1, 0, seven, t0).unwrap();
        let next = Some(Vp8Ids {
            picture_id: Some((60, false)),
            tl0_pic_idx: None,
        });
        r.start(9, 0, next, 90_000, t0);
        let out = r.rewrite(9, 0, next, t0).unwrap();
        assert_eq!(out.vp8.unwrap().picture_id, Some((0, false)));
    }

    #[test]
    fn a_pause_ends_the_run_and_the_resume_leaves_no_gap() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        r.start(10, 0, None, 48_000, t0);
        r.rewrite(10, 0, None, t0).unwrap();
        r.rewrite(11, 960, None, t0).unwrap();
        r.stop();
        assert!(!r.running());
        assert_eq!(r.rewrite(12, 1920, None, t0), None, "paused");
        // 200 packets later, one second on.
        let t1 = t0 + Duration::from_secs(1);
        r.start(212, 200 * 960, None, 48_000, t1);
        let out = r.rewrite(212, 200 * 960, None, t1).unwrap();
        assert_eq!(out.seq, 12);
        assert_eq!(out.time, 960 + 48_000);
    }
}

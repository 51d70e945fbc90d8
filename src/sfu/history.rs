//! One packet history per producer layer, shared by all of the layer's consumers, and per
//! consumer a small log of what it was sent. Together they answer a subscriber's NACK with
//! the producer's packet, rewritten exactly as that consumer first got it (its sequence
//! number, RTP time and VP8 ids), across layer switches.
//!
//! The alternative, str0m's resend cache in every subscriber's stream, kept a copy of the
//! packet header (~440 bytes) per packet per subscriber: ~69 KiB each at 160 packets. Here
//! a subscriber costs its last [`RUNS_KEPT`] runs (~50 bytes each), and the packets are kept
//! once per producer layer.
//!
//! The worker's own send side (`sfu::egress`) reads the subscribers' NACKs and resends what
//! this finds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::rtp::VideoOrientation;

use crate::sfu::rewrite::{inspect, Codec, Rewritten, Run};

/// Packets kept per producer layer: ~1.8 s at 280 packets/s (2.5 Mbit/s).
pub const HISTORY_SLOTS: usize = 512;

/// Oldest packet answered: several round trips, and what a decoder still waits for.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// A producer's packet as it arrived.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The producer's extended sequence number.
    pub seq: u64,
    pub time: u32,
    pub marker: bool,
    pub video_orientation: Option<VideoOrientation>,
    pub payload: Arc<[u8]>,
    /// Arrival; also the wallclock the packet was first written with.
    pub at: Instant,
}

/// The recent packets of one producer layer.
#[derive(Debug, Default)]
pub struct PacketHistory {
    /// The layer's rid (`""` without simulcast).
    pub rid: String,
    slots: Vec<Option<Stored>>,
    /// Sequence number of the first packet of the latest keyframe.
    keyframe: Option<u64>,
    /// The oldest sequence number that may still hold a packet: where eviction goes on.
    oldest: Option<u64>,
}

impl PacketHistory {
    pub fn new(rid: &str) -> Self {
        PacketHistory {
            rid: rid.to_string(),
            slots: Vec::new(),
            keyframe: None,
            oldest: None,
        }
    }

    /// Keeps `packet`, and lets go of the packets older than [`MAX_AGE`] before it: a
    /// low-bitrate layer would otherwise keep [`HISTORY_SLOTS`] payloads, tens of seconds
    /// of them, that no NACK can ask for any more.
    pub fn insert(&mut self, packet: Stored) {
        if self.slots.is_empty() {
            self.slots = vec![None; HISTORY_SLOTS];
        }
        let (seq, at) = (packet.seq, packet.at);
        let i = (seq % HISTORY_SLOTS as u64) as usize;
        self.slots[i] = Some(packet);
        let mut oldest = self
            .oldest
            .unwrap_or(seq)
            .max(seq.saturating_sub(HISTORY_SLOTS as u64 - 1));
        while oldest < seq {
            let j = (oldest % HISTORY_SLOTS as u64) as usize;
            match &self.slots[j] {
                Some(p) if p.seq == oldest && at.saturating_duration_since(p.at) <= MAX_AGE => {
                    break
                }
                _ => self.slots[j] = None,
            }
            oldest += 1;
        }
        self.oldest = Some(oldest);
    }

    /// The packet `seq` starts a keyframe.
    pub fn mark_keyframe(&mut self, seq: u64) {
        if self.keyframe.is_none_or(|k| seq > k) {
            self.keyframe = Some(seq);
        }
    }

    /// No keyframe to start from until the next one (the producer paused).
    pub fn forget_keyframe(&mut self) {
        self.keyframe = None;
    }

    /// The first packet of the latest keyframe, if it is still kept.
    pub fn latest_keyframe(&self, now: Instant) -> Option<&Stored> {
        self.get(self.keyframe?, now)
    }

    /// The packet with the producer's sequence number `seq`, if it is still kept and not
    /// older than [`MAX_AGE`].
    pub fn get(&self, seq: u64, now: Instant) -> Option<&Stored> {
        let slot = self.slots.get((seq % HISTORY_SLOTS as u64) as usize)?;
        slot.as_ref()
            .filter(|p| p.seq == seq && now.saturating_duration_since(p.at) <= MAX_AGE)
    }
}

/// Runs remembered per consumer: a layer switch, pause or restart each starts one, so a
/// second of NACKs reaches back over at most a few.
pub const RUNS_KEPT: usize = 8;

/// One run of a consumer's stream: the consumer's sequence numbers it covered, the producer
/// history (`layer`) its packets came from and the offsets that rewrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SentRun {
    layer: u8,
    first_out: u64,
    last_out: u64,
    run: Run,
}

/// Per consumer: what it was sent, as the runs of its stream. A run rewrites every packet of
/// one producer layer by the same offsets, so the runs map each of the consumer's sequence
/// numbers back to the producer's packet, and the packet forward to what the consumer got,
/// in a few dozen bytes instead of an entry per packet.
#[derive(Debug, Default)]
pub struct SentLog {
    runs: std::collections::VecDeque<SentRun>,
}

impl SentLog {
    /// The consumer was sent its sequence number `out_seq`, from history `layer`, by `run`.
    pub fn record(&mut self, layer: u8, out_seq: u64, run: Run) {
        if let Some(last) = self.runs.back_mut() {
            if last.run == run && last.layer == layer {
                last.first_out = last.first_out.min(out_seq);
                last.last_out = last.last_out.max(out_seq);
                return;
            }
        }
        if self.runs.len() == RUNS_KEPT {
            self.runs.pop_front();
        }
        self.runs.push_back(SentRun {
            layer,
            first_out: out_seq,
            last_out: out_seq,
            run,
        });
    }

    /// The run and history that the consumer's `seq` came from.
    fn find(&self, seq: u64) -> Option<&SentRun> {
        self.runs
            .iter()
            .rev()
            .find(|r| r.first_out <= seq && seq <= r.last_out)
    }
}

/// A resend for a NACK: the producer's packet and this consumer's rewrite of it.
#[derive(Debug, Clone)]
pub struct Resend<'a> {
    pub packet: &'a Stored,
    pub out: Rewritten,
}

/// Looks the consumer's NACKed sequence number `seq` up in its runs, then in the producer's
/// histories (indexed by the run's layer), and rewrites the packet as the run did.
pub fn resend<'a>(
    log: &SentLog,
    histories: &'a [PacketHistory],
    seq: u64,
    now: Instant,
) -> Option<Resend<'a>> {
    let sent = log.find(seq)?;
    let packet = histories
        .get(usize::from(sent.layer))?
        .get(sent.run.source_seq(seq), now)?;
    // Only a run that shifts VP8 ids needs them, and only VP8 runs shift them.
    let vp8 = if sent.run.shifts_vp8() {
        inspect(Codec::Vp8, &packet.payload).vp8
    } else {
        None
    };
    Some(Resend {
        packet,
        out: sent.run.apply(packet.seq, packet.time, vp8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::rewrite::{Rewriter, Vp8Ids};

    /// A VP8 packet of the producer: descriptor with a 15-bit picture id and TL0PICIDX.
    fn stored(seq: u64, time: u32, picture_id: u16, at: Instant) -> Stored {
        let payload = vec![
            0x80,
            0xc0,
            0x80 | (picture_id >> 8) as u8,
            picture_id as u8,
            picture_id as u8,
            seq as u8,
        ];
        Stored {
            seq,
            time,
            marker: false,
            video_orientation: None,
            payload: Arc::from(payload),
            at,
        }
    }

    fn vp8(picture_id: u16) -> Option<Vp8Ids> {
        Some(Vp8Ids {
            picture_id: Some((picture_id, true)),
            tl0_pic_idx: Some(picture_id as u8),
        })
    }

    /// Forwards `count` packets of a layer from `seq` as the worker does: rewritten by the
    /// consumer's run, recorded in its log. Returns what the consumer got.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        rewriter: &mut Rewriter,
        log: &mut SentLog,
        history: &mut PacketHistory,
        layer: u8,
        seq: u64,
        time: u32,
        picture_id: u16,
        count: u64,
        at: Instant,
    ) -> Vec<Rewritten> {
        (0..count)
            .map(|i| {
                let p = stored(seq + i, time + 3000 * i as u32, picture_id + i as u16, at);
                history.insert(p.clone());
                let out = rewriter
                    .rewrite(p.seq, p.time, vp8(picture_id + i as u16), at)
                    .expect("running");
                log.record(layer, out.seq, rewriter.run().expect("a run"));
                out
            })
            .collect()
    }

    /// A consumer forwarded layer 0, switched to layer 1 at a keyframe: a NACK for a packet
    /// on either side of the switch gets that layer's packet, with the consumer's own
    /// sequence number, time and VP8 ids, not the producer's.
    #[test]
    fn nack_answered_from_the_shared_history_across_a_layer_switch() {
        let t0 = Instant::now();
        let mut histories = vec![PacketHistory::default(), PacketHistory::default()];
        let mut log = SentLog::default();
        let mut rewriter = Rewriter::default();
        rewriter.start(1000, 90_000, vp8(100), 90_000, t0);
        let layer0 = forward(
            &mut rewriter,
            &mut log,
            &mut histories[0],
            0,
            1000,
            90_000,
            100,
            5,
            t0,
        );
        // Layer 1 from its keyframe at producer seq 7000, unrelated time and ids.
        let t1 = t0 + Duration::from_millis(33);
        rewriter.start(7000, 500_000, vp8(9000), 90_000, t1);
        let layer1 = forward(
            &mut rewriter,
            &mut log,
            &mut histories[1],
            1,
            7000,
            500_000,
            9000,
            5,
            t1,
        );
        let now = t1 + Duration::from_millis(50);
        let before = resend(&log, &histories, layer0[4].seq, now).expect("layer 0 packet");
        assert_eq!(before.packet.seq, 1004);
        assert_eq!(before.out, layer0[4]);
        let after = resend(&log, &histories, layer1[2].seq, now).expect("layer 1 packet");
        assert_eq!(after.packet.seq, 7002);
        assert_eq!(
            after.out, layer1[2],
            "sequence number, time and VP8 ids as first sent"
        );
        assert!(after.out.vp8.is_some(), "the switch shifted the VP8 ids");
        assert_eq!(after.out.seq, layer0[4].seq + 3, "one continuous stream");
        assert_eq!(after.packet.payload[5], 7002u64 as u8);
    }

    #[test]
    fn too_old_overwritten_or_never_sent_packets_are_not_resent() {
        let t0 = Instant::now();
        let mut histories = vec![PacketHistory::default()];
        let mut log = SentLog::default();
        let mut rewriter = Rewriter::default();
        rewriter.start(0, 0, vp8(0), 90_000, t0);
        let n = HISTORY_SLOTS as u64 + 10;
        let sent = forward(
            &mut rewriter,
            &mut log,
            &mut histories[0],
            0,
            0,
            0,
            0,
            n,
            t0,
        );
        let now = t0 + Duration::from_millis(10);
        // Overwritten in the producer's history.
        assert!(resend(&log, &histories, sent[3].seq, now).is_none());
        // Still there.
        let last = sent[n as usize - 1];
        assert_eq!(
            resend(&log, &histories, last.seq, now).map(|r| r.packet.seq),
            Some(n - 1)
        );
        // Too old.
        assert!(resend(&log, &histories, last.seq, t0 + MAX_AGE * 2).is_none());
        // Never sent.
        assert!(resend(&log, &histories, last.seq + 1, now).is_none());
        // A run whose history is gone.
        let mut other = SentLog::default();
        other.record(7, last.seq, rewriter.run().unwrap());
        assert!(resend(&other, &histories, last.seq, now).is_none());
    }

    #[test]
    fn only_the_last_runs_are_kept() {
        let t0 = Instant::now();
        let mut histories = vec![PacketHistory::default()];
        let mut log = SentLog::default();
        let mut rewriter = Rewriter::default();
        let mut first = None;
        for i in 0..(RUNS_KEPT as u64 + 2) {
            // Each restart (a pause, a switch) begins a run.
            rewriter.start(i * 100, 0, None, 90_000, t0);
            let out = forward(
                &mut rewriter,
                &mut log,
                &mut histories[0],
                0,
                i * 100,
                0,
                0,
                2,
                t0,
            );
            first.get_or_insert(out[0]);
        }
        assert_eq!(log.runs.len(), RUNS_KEPT);
        assert!(resend(&log, &histories, first.unwrap().seq, t0).is_none());
    }

    #[test]
    fn packets_older_than_the_age_limit_are_let_go() {
        let t0 = Instant::now();
        let mut h = PacketHistory::default();
        // A slow layer: 10 packets a second for 5 seconds.
        for i in 0..50u64 {
            h.insert(stored(i, 0, 0, t0 + Duration::from_millis(100 * i)));
        }
        let held = h.slots.iter().flatten().count();
        assert!(
            (10..=12).contains(&held),
            "about a second of packets is held, not 50: {held}"
        );
        let now = t0 + Duration::from_millis(4_900);
        assert!(h.get(49, now).is_some());
        assert!(h.get(35, now).is_none(), "let go");
        // A late, out-of-order packet is kept too.
        h.insert(stored(45, 0, 0, t0 + Duration::from_millis(4_950)));
        assert!(h.get(45, now).is_some());
    }

    #[test]
    fn nothing_is_allocated_before_the_first_packet() {
        let h = PacketHistory::default();
        let l = SentLog::default();
        assert!(h.get(0, Instant::now()).is_none());
        assert!(l.find(0).is_none());
        assert_eq!(h.slots.capacity() + l.runs.capacity(), 0);
    }
}

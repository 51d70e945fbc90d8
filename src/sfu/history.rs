//! One packet history per producer layer, shared by all of the layer's consumers, and per
//! consumer a small log of what it was sent. Together they answer a subscriber's NACK with
//! the producer's packet, rewritten exactly as that consumer first got it (its sequence
//! number, RTP time and VP8 ids), across layer switches.
//!
//! The alternative, str0m's resend cache in every subscriber's stream, keeps a copy of the
//! packet header (~440 bytes) per packet per subscriber: ~69 KiB each at 160 packets. Here
//! a subscriber costs [`SENT_SLOTS`] entries of [`Sent`] (~32 bytes), and the packets are
//! kept once per producer layer.
//!
//! The worker's own send side (`sfu::egress`) reads the subscribers' NACKs and resends what
//! this finds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::rtp::VideoOrientation;

use crate::sfu::rewrite::Rewritten;

/// Packets kept per producer layer: ~1.8 s at 280 packets/s (2.5 Mbit/s).
pub const HISTORY_SLOTS: usize = 512;

/// Oldest packet answered: several round trips, and what a decoder still waits for.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Packets remembered per consumer: ~0.9 s at 280 packets/s.
pub const SENT_SLOTS: usize = 256;

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
}

impl PacketHistory {
    pub fn new(rid: &str) -> Self {
        PacketHistory {
            rid: rid.to_string(),
            slots: Vec::new(),
        }
    }

    pub fn insert(&mut self, packet: Stored) {
        if self.slots.is_empty() {
            self.slots = vec![None; HISTORY_SLOTS];
        }
        let i = (packet.seq % HISTORY_SLOTS as u64) as usize;
        self.slots[i] = Some(packet);
    }

    /// The packet with the producer's sequence number `seq`, if it is still kept and not
    /// older than [`MAX_AGE`].
    pub fn get(&self, seq: u64, now: Instant) -> Option<&Stored> {
        let slot = self.slots.get((seq % HISTORY_SLOTS as u64) as usize)?;
        slot.as_ref()
            .filter(|p| p.seq == seq && now.saturating_duration_since(p.at) <= MAX_AGE)
    }
}

/// What one consumer was sent for one of its sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The packet as this consumer got it.
    pub out: Rewritten,
    /// Which of the producer's histories, and the producer's sequence number there.
    pub layer: u8,
    pub source_seq: u64,
}

/// Per consumer: its sequence numbers mapped back to the producer's packets.
#[derive(Debug, Default)]
pub struct SentLog {
    slots: Vec<Option<Sent>>,
}

impl SentLog {
    pub fn record(&mut self, sent: Sent) {
        if self.slots.is_empty() {
            self.slots = vec![None; SENT_SLOTS];
        }
        let i = (sent.out.seq % SENT_SLOTS as u64) as usize;
        self.slots[i] = Some(sent);
    }

    /// What was sent as the consumer's sequence number `seq`.
    pub fn get(&self, seq: u64) -> Option<Sent> {
        let slot = self.slots.get((seq % SENT_SLOTS as u64) as usize)?;
        slot.filter(|s| s.out.seq == seq)
    }
}

/// A resend for a NACK: the producer's packet and this consumer's rewrite of it.
#[derive(Debug, Clone)]
pub struct Resend<'a> {
    pub packet: &'a Stored,
    pub out: Rewritten,
}

/// Looks the consumer's NACKed sequence number `seq` up in its log, then in the producer's
/// histories (indexed by [`Sent::layer`]).
pub fn resend<'a>(
    log: &SentLog,
    histories: &'a [PacketHistory],
    seq: u64,
    now: Instant,
) -> Option<Resend<'a>> {
    let sent = log.get(seq)?;
    let packet = histories
        .get(sent.layer as usize)?
        .get(sent.source_seq, now)?;
    Some(Resend {
        packet,
        out: sent.out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::rewrite::{Rewriter, Vp8Ids};

    fn stored(seq: u64, time: u32, at: Instant) -> Stored {
        Stored {
            seq,
            time,
            marker: false,
            video_orientation: None,
            payload: Arc::from(vec![seq as u8; 4]),
            at,
        }
    }

    fn vp8(picture_id: u16) -> Option<Vp8Ids> {
        Some(Vp8Ids {
            picture_id: Some((picture_id, true)),
            tl0_pic_idx: Some(picture_id as u8),
        })
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
        // Layer 0: producer seq 1000.., time 90000 + 3000 per packet.
        rewriter.start(1000, 90_000, vp8(100), 90_000, t0);
        for i in 0..5u64 {
            let p = stored(1000 + i, 90_000 + 3000 * i as u32, t0);
            histories[0].insert(p.clone());
            let out = rewriter
                .rewrite(p.seq, p.time, vp8(100 + i as u16), t0)
                .expect("running");
            log.record(Sent {
                out,
                layer: 0,
                source_seq: p.seq,
            });
        }
        // Layer 1 from its keyframe at producer seq 7000, unrelated time and ids.
        let t1 = t0 + Duration::from_millis(33);
        rewriter.start(7000, 500_000, vp8(9000), 90_000, t1);
        let mut layer1_out = Vec::new();
        for i in 0..5u64 {
            let p = stored(7000 + i, 500_000 + 3000 * i as u32, t1);
            histories[1].insert(p.clone());
            let out = rewriter
                .rewrite(p.seq, p.time, vp8(9000 + i as u16), t1)
                .expect("running");
            log.record(Sent {
                out,
                layer: 1,
                source_seq: p.seq,
            });
            layer1_out.push(out);
        }
        // Other consumers' packets do not disturb this one: histories are per producer.
        let now = t1 + Duration::from_millis(50);
        let first = layer1_out[0];
        let before = resend(&log, &histories, first.seq - 1, now).expect("layer 0 packet");
        assert_eq!(before.packet.seq, 1004);
        assert_eq!(before.out.seq, first.seq - 1);
        let after = resend(&log, &histories, first.seq + 2, now).expect("layer 1 packet");
        assert_eq!(after.packet.seq, 7002);
        assert_eq!(after.out, layer1_out[2]);
        // The consumer's stream is continuous across the switch, and the resend says so.
        assert!(after.out.time > before.out.time);
        assert_eq!(&*after.packet.payload, &[7002u64 as u8; 4]);
    }

    #[test]
    fn too_old_or_overwritten_packets_are_not_resent() {
        let t0 = Instant::now();
        let mut histories = vec![PacketHistory::default()];
        let mut log = SentLog::default();
        for seq in 0..(HISTORY_SLOTS as u64 + 10) {
            histories[0].insert(stored(seq, 0, t0));
            let out = Rewritten {
                seq: seq + 1,
                time: 0,
                vp8: None,
            };
            log.record(Sent {
                out,
                layer: 0,
                source_seq: seq,
            });
        }
        let now = t0 + Duration::from_millis(10);
        // Overwritten in the consumer's log.
        assert!(resend(&log, &histories, 3, now).is_none());
        // Still there.
        let last = HISTORY_SLOTS as u64 + 9;
        assert_eq!(
            resend(&log, &histories, last + 1, now).map(|r| r.packet.seq),
            Some(last)
        );
        // Too old.
        assert!(resend(&log, &histories, last + 1, t0 + MAX_AGE * 2).is_none());
        // Never sent, and an unknown layer.
        assert!(resend(&log, &histories, last + 100, now).is_none());
        log.record(Sent {
            out: Rewritten {
                seq: 5000,
                time: 0,
                vp8: None,
            },
            layer: 7,
            source_seq: last,
        });
        assert!(resend(&log, &histories, 5000, now).is_none());
    }

    #[test]
    fn nothing_is_allocated_before_the_first_packet() {
        let h = PacketHistory::default();
        let l = SentLog::default();
        assert!(h.get(0, Instant::now()).is_none());
        assert!(l.get(0).is_none());
        assert_eq!(h.slots.capacity() + l.slots.capacity(), 0);
    }
}

//! The packet path: a producer's RTP packet, handed over by str0m in RTP mode, goes to each
//! consumer of the layer it belongs to, rewritten for that consumer (`sfu::rewrite`) and
//! queued in its connection's send side (`sfu::egress`), which writes and encrypts it at the
//! end of the loop turn. The payload is not copied until then: the queue, and the producer's
//! history for NACKs, hold the same `Arc` of the packet's bytes. The history is kept once per
//! producer layer (`sfu::history`); a subscriber's NACK is answered from there, rewritten for
//! the consumer that asked. Keyframe requests go back to the publisher, one outstanding per
//! layer.

use std::time::{Duration, Instant};

use str0m::format::Codec as SdpCodec;
use str0m::media::{KeyframeRequestKind, Rid};
use str0m::rtp::RtpPacket;
use tracing::{debug, trace};

use super::layers::layer_rid;
use super::{After, Conn, Consumer, TKey, Worker};
use crate::ids::{ConsumerId, ProducerId};
use crate::model::MediaKind;
use crate::sfu::egress::{Egress, Outgoing};
use crate::sfu::history::{resend, PacketHistory, Stored};
use crate::sfu::messages::MediaEvent;
use crate::sfu::rewrite::{inspect, Codec};
use crate::sfu::simulcast::{rid_rank, LayerStats};

impl Worker {
    pub(super) fn on_rtp(&mut self, key: TKey, packet: RtpPacket) {
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let Conn::Send(rtc) = &mut t.conn else {
            return;
        };
        let ssrc = packet.header.ssrc;
        let (mid, rid) = match t.rx_streams.get(&ssrc) {
            Some(found) => *found,
            None => {
                let mut api = rtc.direct_api();
                let Some(found) = api.stream_rx(&ssrc).map(|s| (s.mid(), s.rid())) else {
                    return;
                };
                t.rx_streams.insert(ssrc, found);
                found
            }
        };
        let pt = packet.header.payload_type;
        let Some(params) = rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == pt)
            .copied()
        else {
            trace!(%pt, "RTP packet of a payload type the offer did not have");
            return;
        };
        let Some(producer) = t
            .producers_by_mid
            .get(&mid)
            .and_then(|pid| self.producers.get_mut(pid))
        else {
            return;
        };
        let now = Instant::now();
        let rid: &str = rid.as_deref().unwrap_or("");
        let layer_index = match producer.layers.iter().position(|l| l.rid == rid) {
            Some(i) => i,
            None => {
                producer.layers.push(LayerStats::new(rid.to_string(), now));
                producer
                    .layers
                    .sort_by(|a, b| rid_rank(&a.rid).cmp(&rid_rank(&b.rid)));
                // Invariant: the layer was pushed just above.
                producer
                    .layers
                    .iter()
                    .position(|l| l.rid == rid)
                    .expect("layer just added")
            }
        };
        let video = producer.kind == MediaKind::Video;
        let codec = match params.spec().codec {
            SdpCodec::Vp8 if video => Codec::Vp8,
            SdpCodec::H264 if video => Codec::H264,
            _ => Codec::Other,
        };
        let inbound = inspect(codec, &packet.payload);
        if video && inbound.keyframe_start {
            debug!(producer = %producer.id, rid, seq = *packet.seq_no, "a keyframe arrives");
            producer.keyframes.on_keyframe(rid);
        }
        let layer = &mut producer.layers[layer_index];
        layer.on_packet(packet.payload.len(), now);
        if inbound.height.is_some() {
            layer.height = inbound.height;
        }
        if !video {
            if let (Some(level), Some(room)) = (
                packet.header.ext_vals.audio_level,
                self.rooms.get_mut(&producer.room),
            ) {
                trace!(peer = %producer.peer, level, "audio level");
                room.speaker.on_level(&producer.peer, level, now);
            }
        }
        let history_layer = if video {
            let i = match producer.history.iter().position(|h| h.rid == rid) {
                Some(i) => i,
                None => {
                    producer.history.push(PacketHistory::new(rid));
                    producer.history.len() - 1
                }
            };
            producer.history[i].insert(Stored {
                seq: *packet.seq_no,
                time: packet.header.timestamp,
                marker: packet.header.marker,
                video_orientation: packet.header.ext_vals.video_orientation,
                payload: packet.payload.clone(),
                at: packet.timestamp,
            });
            if inbound.keyframe_start {
                producer.history[i].mark_keyframe(*packet.seq_no);
            }
            i as u8
        } else {
            0
        };
        if producer.paused {
            // What is dropped here the subscribers will not have: each starts a new run at the
            // next keyframe after the resume, and none starts from a keyframe of the pause.
            for h in &mut producer.history {
                h.forget_keyframe();
            }
            for &k in &producer.consumers {
                if let Some(c) = self.consumers.at_mut(k) {
                    c.rewriter.stop();
                }
            }
            return;
        }
        let producer = &*producer;
        let simulcast = !rid.is_empty();
        let seq = *packet.seq_no;
        let time = packet.header.timestamp;
        let clock_rate = params.spec().clock_rate.get();
        let ext = &packet.header.ext_vals;
        let audio_level = ext
            .audio_level
            .map(|level| (level, ext.voice_activity.unwrap_or(false)));
        let video_orientation = ext.video_orientation.map(|o| o as u8);
        let marker = packet.header.marker;
        let mut after = Vec::new();
        for &k in &producer.consumers {
            let Some(c) = self.consumers.at_mut(k) else {
                continue;
            };
            let Some(mid) = c.mid.filter(|_| c.active) else {
                continue;
            };
            let Some(rt) = self
                .transports
                .get_mut(&c.transport)
                .filter(|t| !t.dead && t.egress.is_some())
            else {
                // Not connected yet: nothing can be sent, so no run starts.
                continue;
            };
            // The consumer's stream in the egress, set up at its first packet.
            let stream = match c.stream {
                Some(s) if c.pt.is_some_and(|(from, _)| from == pt) => s,
                _ => {
                    let Some((spec, out_pt)) = rt
                        .conn
                        .recv()
                        .and_then(|conn| conn.stream_spec(mid, params))
                    else {
                        debug!(consumer = %c.id, "subscriber did not negotiate the producer's codec");
                        continue;
                    };
                    c.pt = Some((pt, out_pt));
                    let Some(egress) = rt.egress.as_mut() else {
                        continue;
                    };
                    let s = egress.add_stream(spec);
                    c.stream = Some(s);
                    s
                }
            };
            let Some(egress) = rt.egress.as_mut() else {
                continue;
            };
            // A consumer that has sent nothing yet may start at the layer's latest keyframe,
            // replayed from the history, instead of waiting for a new one.
            let replay = |c: &mut Consumer, egress: &mut Egress| {
                let fresh = !c.rewriter.has_written();
                let history = producer.history.get(usize::from(history_layer));
                fresh
                    && history.is_some_and(|h| {
                        replay_keyframe(
                            c,
                            egress,
                            stream,
                            h,
                            history_layer,
                            seq,
                            codec,
                            clock_rate,
                            now,
                        )
                    })
            };
            let mut start = !c.rewriter.running();
            if simulcast {
                if c.target.as_deref() == Some(rid) && c.current.as_deref() != Some(rid) {
                    if inbound.keyframe_start {
                        // Switch at this keyframe; the rewrite continues the previous layer.
                        start = true;
                    } else if replay(c, egress) {
                        start = false;
                        self.stats.keyframes_replayed += 1;
                    } else {
                        after.push(After::KeyframeRequest(
                            producer.id.clone(),
                            Some(rid.to_string()),
                        ));
                        continue;
                    }
                    c.current = Some(rid.to_string());
                    after.push(After::LayerChanged(
                        c.transport,
                        c.id.clone(),
                        c.current.clone(),
                    ));
                }
                if c.current.as_deref() != Some(rid) {
                    continue;
                }
            }
            if start {
                if video && !inbound.keyframe_start {
                    if replay(c, egress) {
                        self.stats.keyframes_replayed += 1;
                    } else {
                        // A video run starts at a keyframe: before it, the subscriber has
                        // nothing a delta frame could refer to.
                        after.push(After::KeyframeRequest(producer.id.clone(), layer_rid(rid)));
                        continue;
                    }
                } else {
                    debug!(consumer = %c.id, rid, seq, "a run of packets starts");
                    c.rewriter.start(seq, time, inbound.vp8, clock_rate, now);
                }
            }
            let Some(out) = c.rewriter.rewrite(seq, time, inbound.vp8, now) else {
                continue;
            };
            egress.queue(Outgoing {
                stream,
                seq: out.seq,
                time: out.time,
                marker,
                payload: packet.payload.clone(),
                vp8: out.vp8,
                audio_level,
                video_orientation,
                wallclock: packet.timestamp,
                resend: false,
            });
            if let (true, Some(run)) = (video, c.rewriter.run()) {
                c.sent.record(history_layer, out.seq, run);
            }
            self.stats.packets_forwarded += 1;
            if marker || !video {
                self.stats.frames_forwarded += 1;
            }
            if !rt.egress_dirty {
                rt.egress_dirty = true;
                self.egress_dirty.push(c.transport);
            }
        }
        self.run_after(after);
    }

    pub(super) fn run_after(&mut self, mut after: Vec<After>) {
        // One request per layer and frame is enough (the requests are throttled anyway).
        after.dedup_by(|a, b| match (a, b) {
            (After::KeyframeRequest(p1, r1), After::KeyframeRequest(p2, r2)) => {
                p1 == p2 && r1 == r2
            }
            _ => false,
        });
        for a in after {
            match a {
                After::KeyframeRequest(pid, rid) => {
                    self.request_keyframe(&pid, rid, KeyframeRequestKind::Pli)
                }
                After::LayerChanged(tkey, cid, layer) => {
                    self.stats.layer_switches += 1;
                    if let Some(peer) = self.transports.get(&tkey).map(|t| t.peer.clone()) {
                        self.notify_peer(
                            &peer,
                            MediaEvent::LayerChanged {
                                consumer: cid,
                                layer,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Answers a subscriber's NACK from the producer's shared history: each packet as this
    /// consumer first got it, resent on its repair stream.
    pub(super) fn answer_nack(&mut self, key: TKey, cid: &ConsumerId, seqs: &[u64]) {
        let Some(c) = self.consumers.get(cid) else {
            return;
        };
        let Some(stream) = c.stream else {
            return;
        };
        let Some(p) = self.producers.get(&c.producer) else {
            return;
        };
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let Some(egress) = t.egress.as_mut() else {
            return;
        };
        let now = Instant::now();
        let (mut answered, mut missing) = (0u64, 0u64);
        for &seq in seqs {
            let Some(r) = resend(&c.sent, &p.history, seq, now) else {
                missing += 1;
                continue;
            };
            egress.queue(Outgoing {
                stream,
                seq: r.out.seq,
                time: r.out.time,
                marker: r.packet.marker,
                payload: r.packet.payload.clone(),
                vp8: r.out.vp8,
                audio_level: None,
                video_orientation: r.packet.video_orientation.map(|o| o as u8),
                wallclock: r.packet.at,
                resend: true,
            });
            answered += 1;
        }
        trace!(consumer = %cid, answered, missing, "NACK answered from the shared history");
        self.stats.resends_from_history += answered;
        if answered > 0 && !t.egress_dirty {
            t.egress_dirty = true;
            self.egress_dirty.push(key);
        }
    }

    /// Asks a producer's sender for a keyframe on one layer, unless a request is already
    /// outstanding there (`sfu::keyframes`).
    pub(super) fn request_keyframe(
        &mut self,
        pid: &ProducerId,
        rid: Option<String>,
        kind: KeyframeRequestKind,
    ) {
        let Some(p) = self.producers.get_mut(pid) else {
            return;
        };
        if p.kind != MediaKind::Video {
            return;
        }
        if !p
            .keyframes
            .request(rid.as_deref().unwrap_or(""), Instant::now())
        {
            debug!(producer = %pid, ?rid, "keyframe request: one is already on its way");
            return;
        }
        debug!(producer = %pid, ?rid, ?kind, "keyframe request to the publisher");
        let (tkey, mid) = (p.transport, p.mid);
        let Some(t) = self.transports.get_mut(&tkey) else {
            return;
        };
        let rid = rid.filter(|r| !r.is_empty()).map(|r| Rid::from(r.as_str()));
        let Some(rtc) = t.conn.rtc() else {
            return;
        };
        match rtc.direct_api().stream_rx_by_mid(mid, rid) {
            Some(stream) => {
                stream.request_keyframe(kind);
                self.stats.plis_sent += 1;
            }
            None => debug!(producer = %pid, ?rid, "keyframe request: no such incoming stream"),
        }
        self.mark_dirty(tkey);
    }
}

/// How old a keyframe a fresh consumer may start from: the packets since are replayed to it
/// at once (at most a few frames), rather than asking the publisher for another keyframe and
/// waiting for it (up to [`crate::sfu::keyframes::MIN_GAP`] plus a frame).
const REPLAY_MAX_AGE: Duration = Duration::from_millis(250);
/// Most packets a replay sends at once.
const REPLAY_MAX_PACKETS: u64 = 128;

/// `history`'s latest keyframe when it is recent enough to start a consumer from.
fn replayable_keyframe(history: &PacketHistory, now: Instant) -> Option<&Stored> {
    history
        .latest_keyframe(now)
        .filter(|k| now.saturating_duration_since(k.at) <= REPLAY_MAX_AGE)
}

/// True when `history`'s latest keyframe is recent enough to start a consumer from.
pub(super) fn keyframe_replayable(history: &PacketHistory, now: Instant) -> bool {
    replayable_keyframe(history, now).is_some()
}

/// Starts `c`'s run at the latest keyframe of `history` and queues the packets from it up to,
/// not including, the producer's `seq`, when the keyframe is recent and every packet since is
/// still there. True when it did: the run goes on with `seq`.
#[allow(clippy::too_many_arguments)]
fn replay_keyframe(
    c: &mut Consumer,
    egress: &mut Egress,
    stream: usize,
    history: &PacketHistory,
    layer: u8,
    seq: u64,
    codec: Codec,
    clock_rate: u32,
    now: Instant,
) -> bool {
    let Some(key) = replayable_keyframe(history, now) else {
        return false;
    };
    if key.seq >= seq || seq - key.seq > REPLAY_MAX_PACKETS {
        return false;
    }
    let Some(packets) = (key.seq..seq)
        .map(|s| history.get(s, now))
        .collect::<Option<Vec<_>>>()
    else {
        // A packet since the keyframe is missing: the replay would show a broken picture.
        return false;
    };
    let ids = |p: &Stored| inspect(codec, &p.payload).vp8;
    c.rewriter
        .start(key.seq, key.time, ids(key), clock_rate, key.at);
    debug!(consumer = %c.id, from = key.seq, packets = packets.len(), "a run starts at a replayed keyframe");
    for p in packets {
        let Some(out) = c.rewriter.rewrite(p.seq, p.time, ids(p), p.at) else {
            continue;
        };
        egress.queue(Outgoing {
            stream,
            seq: out.seq,
            time: out.time,
            marker: p.marker,
            payload: p.payload.clone(),
            vp8: out.vp8,
            audio_level: None,
            video_orientation: p.video_orientation.map(|o| o as u8),
            wallclock: p.at,
            resend: false,
        });
        if let Some(run) = c.rewriter.run() {
            c.sent.record(layer, out.seq, run);
        }
    }
    true
}

//! The packet path: a producer's RTP packet, handed over by str0m in RTP mode, goes to each
//! consumer of the layer it belongs to, rewritten for that consumer (`sfu::rewrite`) and
//! written to the consumer's outgoing stream. The payload is not copied: every consumer's
//! stream, and its resend history for NACK, holds the same `Arc` of the packet's bytes.
//! Built with `shared-history` (str0m with `docs/str0m-patches/0004`), str0m keeps no resend
//! history: the producer's packets are kept once per layer (`sfu::history`) and NACKs are
//! answered from there, rewritten for the consumer that asked.
//! Keyframe requests go back to the publisher, one outstanding per layer.

use std::time::Instant;

use str0m::format::Codec as SdpCodec;
use str0m::media::{KeyframeRequestKind, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo, Vp8Descriptor, Vp8Patch};
use tracing::{debug, trace};

use super::layers::layer_rid;
use super::{After, TKey, Worker};
#[cfg(feature = "shared-history")]
use crate::ids::ConsumerId;
use crate::ids::ProducerId;
use crate::model::MediaKind;
#[cfg(feature = "shared-history")]
use crate::sfu::history::{resend, PacketHistory, Sent, Stored};
use crate::sfu::messages::MediaEvent;
use crate::sfu::rewrite::{inspect, Codec, Rewritten, Vp8Ids};
use crate::sfu::simulcast::{rid_rank, LayerStats};

impl Worker {
    pub(super) fn on_rtp(&mut self, key: TKey, packet: RtpPacket) {
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let ssrc = packet.header.ssrc;
        let (mid, rid) = match t.rx_streams.get(&ssrc) {
            Some(found) => *found,
            None => {
                let mut api = t.rtc.direct_api();
                let Some(found) = api.stream_rx(&ssrc).map(|s| (s.mid(), s.rid())) else {
                    return;
                };
                t.rx_streams.insert(ssrc, found);
                found
            }
        };
        let pt = packet.header.payload_type;
        let Some(params) = t
            .rtc
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
        #[cfg(feature = "shared-history")]
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
            i as u8
        } else {
            0
        };
        if producer.paused {
            // What is dropped here the subscribers will not have: each starts a new run at the
            // next keyframe after the resume.
            for cid in &producer.consumers {
                if let Some(c) = self.consumers.get_mut(cid) {
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
        let mut after = Vec::new();
        let mut writes = Vec::new();
        for cid in &producer.consumers {
            let Some(c) = self.consumers.get_mut(cid) else {
                continue;
            };
            let Some(mid) = c.mid.filter(|_| c.active) else {
                continue;
            };
            let mut start = !c.rewriter.running();
            if simulcast {
                if c.target.as_deref() == Some(rid) && c.current.as_deref() != Some(rid) {
                    if !inbound.keyframe_start {
                        after.push(After::KeyframeRequest(
                            producer.id.clone(),
                            Some(rid.to_string()),
                        ));
                        continue;
                    }
                    // Switch at this keyframe; the rewrite continues the previous layer.
                    start = true;
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
                    // A video run starts at a keyframe: before it, the subscriber has nothing
                    // a delta frame could refer to.
                    after.push(After::KeyframeRequest(producer.id.clone(), layer_rid(rid)));
                    continue;
                }
                debug!(consumer = %c.id, rid, seq, "a run of packets starts");
                c.rewriter.start(seq, time, inbound.vp8, clock_rate, now);
            }
            let Some(out) = c.rewriter.rewrite(seq, time, inbound.vp8, now) else {
                continue;
            };
            // The consumer's payload type for the producer's codec, found once.
            let out_pt = match c.pt {
                Some((from, to)) if from == pt => Some(to),
                _ => None,
            };
            writes.push((c.transport, mid, out, out_pt, cid));
        }
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..ExtensionValues::default()
        };
        let marker = packet.header.marker;
        // Parsed once for all the consumers whose run shifts the VP8 ids.
        let descriptor = if writes.iter().any(|w| w.2.vp8.is_some()) {
            Vp8Descriptor::parse(&packet.payload).ok()
        } else {
            None
        };
        for (tkey, mid, out, out_pt, cid) in writes {
            let Some(rt) = self.transports.get_mut(&tkey) else {
                continue;
            };
            if rt.dead {
                continue;
            }
            let out_pt = match out_pt {
                Some(p) => p,
                None => {
                    let Some(found) = rt.rtc.codec_config().match_params(params).map(|p| p.pt())
                    else {
                        debug!(consumer = %cid, "subscriber did not negotiate the producer's codec");
                        continue;
                    };
                    if let Some(c) = self.consumers.get_mut(cid) {
                        c.pt = Some((pt, found));
                    }
                    found
                }
            };
            let mut api = rt.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            let Rewritten { seq, time, vp8 } = out;
            let mut write = RtpWrite::new(
                out_pt,
                SeqNo::from(seq),
                time,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(marker)
            .ext_vals(ext.clone())
            // With the shared history, str0m keeps no copy: the worker answers the NACKs.
            .nackable(video && !cfg!(feature = "shared-history"));
            if let Some(ids) = vp8 {
                match descriptor.as_ref().and_then(|d| vp8_patch(d, ids)) {
                    Some(patch) => write = write.vp8_patch(patch),
                    None => continue,
                }
            }
            stream.write_rtp(write);
            #[cfg(feature = "shared-history")]
            if video {
                if let Some(c) = self.consumers.get_mut(cid) {
                    c.sent.record(Sent {
                        out,
                        layer: history_layer,
                        source_seq: *packet.seq_no,
                    });
                }
            }
            self.stats.packets_forwarded += 1;
            if marker || !video {
                self.stats.frames_forwarded += 1;
            }
            if !rt.dirty {
                rt.dirty = true;
                self.dirty.push(tkey);
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
    /// consumer first got it, sent on its RTX stream.
    #[cfg(feature = "shared-history")]
    pub(super) fn answer_nack(&mut self, key: TKey, cid: &ConsumerId, seqs: &[u64]) {
        let Some(c) = self.consumers.get(cid) else {
            return;
        };
        let (Some(mid), Some((_, out_pt))) = (c.mid, c.pt) else {
            return;
        };
        let Some(p) = self.producers.get(&c.producer) else {
            return;
        };
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        let now = Instant::now();
        let mut api = t.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        let (mut answered, mut missing) = (0u64, 0u64);
        for &seq in seqs {
            let Some(r) = resend(&c.sent, &p.history, seq, now) else {
                missing += 1;
                continue;
            };
            let mut write = RtpWrite::new(
                out_pt,
                SeqNo::from(r.out.seq),
                r.out.time,
                r.packet.at,
                r.packet.payload.clone(),
            )
            .marker(r.packet.marker)
            .ext_vals(ExtensionValues {
                video_orientation: r.packet.video_orientation,
                ..ExtensionValues::default()
            })
            .nackable(true);
            if let Some(ids) = r.out.vp8 {
                let descriptor = Vp8Descriptor::parse(&r.packet.payload).ok();
                match descriptor.as_ref().and_then(|d| vp8_patch(d, ids)) {
                    Some(patch) => write = write.vp8_patch(patch),
                    None => continue,
                }
            }
            if stream.write_resend(write) {
                answered += 1;
            }
        }
        trace!(consumer = %cid, answered, missing, "NACK answered from the shared history");
        self.stats.resends_from_history += answered;
        if answered > 0 {
            self.mark_dirty(key);
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
            return;
        }
        let (tkey, mid) = (p.transport, p.mid);
        let Some(t) = self.transports.get_mut(&tkey) else {
            return;
        };
        let rid = rid.filter(|r| !r.is_empty()).map(|r| Rid::from(r.as_str()));
        match t.rtc.direct_api().stream_rx_by_mid(mid, rid) {
            Some(stream) => {
                stream.request_keyframe(kind);
                self.stats.plis_sent += 1;
            }
            None => debug!(producer = %pid, ?rid, "keyframe request: no such incoming stream"),
        }
        self.mark_dirty(tkey);
    }
}

/// The patch that rewrites a VP8 packet's picture id and TL0PICIDX for one consumer, applied
/// by str0m as it writes the packet (the shared payload is not touched).
fn vp8_patch(descriptor: &Vp8Descriptor, ids: Vp8Ids) -> Option<Vp8Patch> {
    let mut patch = descriptor.patch();
    if let Some((id, _)) = ids.picture_id {
        patch = patch.picture_id(id);
    }
    if let Some(tl0) = ids.tl0_pic_idx {
        patch = patch.tl0_pic_idx(tl0);
    }
    patch.build().ok()
}

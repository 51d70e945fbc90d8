//! The packet path: a producer's frame, handed over by str0m, goes to each consumer that may
//! decode it (simulcast layer, keyframe waits, temporal-layer holds), and keyframe requests go
//! back to the publisher, throttled.

use std::time::{Duration, Instant};

use str0m::format::CodecExtra;
use str0m::media::{KeyframeRequestKind, MediaData, MediaTime, Rid};
use tracing::{debug, trace};

use super::layers::layer_rid;
use super::{After, TKey, Worker};
use crate::ids::ProducerId;
use crate::model::MediaKind;
use crate::sfu::messages::MediaEvent;
use crate::sfu::references::{Frame, Verdict, Vp8Frame};
use crate::sfu::simulcast::{rid_rank, vp8_keyframe_height, LayerStats};

/// Minimum time between two keyframe requests for the same producer layer.
const KEYFRAME_THROTTLE: Duration = Duration::from_millis(500);

impl Worker {
    pub(super) fn on_media(&mut self, key: TKey, data: MediaData) {
        let Some(t) = self.transports.get(&key) else {
            return;
        };
        let Some(pid) = t.producers_by_mid.get(&data.mid).cloned() else {
            return;
        };
        let now = Instant::now();
        let Some(producer) = self.producers.get_mut(&pid) else {
            return;
        };
        let rid: String = data.rid.map(|r| r.to_string()).unwrap_or_default();
        let layer_index = match producer.layers.iter().position(|l| l.rid == rid) {
            Some(i) => i,
            None => {
                producer.layers.push(LayerStats::new(rid.clone(), now));
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
        let keyframe = producer.kind == MediaKind::Video && data.is_keyframe();
        let vp8 = match data.codec_extra {
            CodecExtra::Vp8(v) => Some(Vp8Frame {
                picture_id: v.picture_id,
                temporal_layer: v.layer_index,
                layer_sync: v.sync,
            }),
            _ => None,
        };
        let layer = &mut producer.layers[layer_index];
        layer.on_frame(data.data.len(), now);
        let verdict = if producer.kind == MediaKind::Video {
            let verdict = layer.references.on_frame(Frame {
                keyframe,
                contiguous: data.contiguous,
                vp8,
            });
            trace!(producer = %pid, rid, ?vp8, keyframe, ?verdict, "video frame in");
            verdict
        } else {
            Verdict::Forward
        };
        if keyframe {
            if let Some(h) = vp8_keyframe_height(&data.data) {
                layer.height = Some(h);
            }
        }
        if producer.kind == MediaKind::Audio {
            if let (Some(level), Some(room)) = (
                data.ext_vals.audio_level,
                self.rooms.get_mut(&producer.room),
            ) {
                trace!(peer = %producer.peer, level, "audio level");
                room.speaker.on_level(&producer.peer, level, now);
            }
        }
        if producer.paused {
            // Frames dropped here are references the subscribers will not have.
            for cid in &producer.consumers {
                if let Some(c) = self.consumers.get_mut(cid) {
                    c.need_keyframe = true;
                }
            }
            return;
        }
        let producer = &*producer;
        let video = producer.kind == MediaKind::Video;
        let simulcast = !rid.is_empty();
        let mut after = Vec::new();
        let mut writes = Vec::new();
        for cid in &producer.consumers {
            let Some(c) = self.consumers.get_mut(cid) else {
                continue;
            };
            let Some(mid) = c.mid.filter(|_| c.active) else {
                continue;
            };
            if simulcast {
                if c.target.as_deref() == Some(rid.as_str())
                    && c.current.as_deref() != Some(rid.as_str())
                {
                    if !keyframe {
                        after.push(After::KeyframeRequest(
                            producer.id.clone(),
                            Some(rid.clone()),
                        ));
                        continue;
                    }
                    // Switch at this keyframe; keep the output clock continuous.
                    if let Some(last) = c.last_out {
                        let step = u64::from(data.time.frequency().get() / 30);
                        c.time_offset = last.wrapping_add(step).wrapping_sub(data.time.numer());
                    }
                    c.current = Some(rid.clone());
                    after.push(After::LayerChanged(
                        c.transport,
                        c.id.clone(),
                        c.current.clone(),
                    ));
                }
                if c.current.as_deref() != Some(rid.as_str()) {
                    continue;
                }
            }
            if video {
                if keyframe {
                    c.need_keyframe = false;
                } else if c.need_keyframe || verdict == Verdict::NeedKeyframe {
                    // Something before this frame is missing for this subscriber: wait for a
                    // keyframe of this layer (requested, throttled) rather than forward a
                    // frame that cannot decode.
                    if !c.need_keyframe {
                        debug!(consumer = %c.id, rid, "a frame is missing: the layer waits for a keyframe");
                    }
                    c.need_keyframe = true;
                    after.push(After::KeyframeRequest(producer.id.clone(), layer_rid(&rid)));
                    continue;
                } else if verdict == Verdict::Hold {
                    // It may read a picture that was lost: the base layer goes on alone
                    // until the next layer sync.
                    continue;
                }
            }
            let out = data.time.numer().wrapping_add(c.time_offset);
            c.last_out = Some(out);
            writes.push((c.transport, c.id.clone(), mid, out));
        }
        // Written after the loop, with a poll between two frames for the same transport: under
        // load several frames for one subscriber arrive in one batch, and each must be
        // packetized before the next is queued.
        for (tkey, cid, mid, out) in writes {
            if self.transports.get(&tkey).is_some_and(|t| t.written) {
                self.poll(tkey);
            }
            let Some(rt) = self.transports.get_mut(&tkey) else {
                continue;
            };
            if rt.dead {
                continue;
            }
            let Some(writer) = rt.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                debug!(consumer = %cid, "subscriber did not negotiate the producer's codec");
                continue;
            };
            let time = MediaTime::new(out, data.time.frequency());
            let writer = match data.ext_vals.audio_level {
                Some(level) => {
                    writer.audio_level(level, data.ext_vals.voice_activity.unwrap_or(false))
                }
                None => writer,
            };
            if let Err(e) = writer.write(pt, data.network_time, time, data.data.clone()) {
                debug!(consumer = %cid, "write failed: {e}");
                continue;
            }
            rt.written = true;
            self.stats.frames_forwarded += 1;
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

    /// Asks a producer's sender for a keyframe on one layer, at most every
    /// [`KEYFRAME_THROTTLE`].
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
        let now = Instant::now();
        let slot = rid.clone().unwrap_or_default();
        if p.last_keyframe_request
            .get(&slot)
            .is_some_and(|t| now.saturating_duration_since(*t) < KEYFRAME_THROTTLE)
        {
            return;
        }
        p.last_keyframe_request.insert(slot, now);
        let (tkey, mid) = (p.transport, p.mid);
        let Some(t) = self.transports.get_mut(&tkey) else {
            return;
        };
        if let Some(mut writer) = t.rtc.writer(mid) {
            let rid = rid.filter(|r| !r.is_empty()).map(|r| Rid::from(r.as_str()));
            match writer.request_keyframe(rid, kind) {
                Ok(()) => self.stats.plis_sent += 1,
                Err(e) => debug!(producer = %pid, "keyframe request failed: {e}"),
            }
        }
        self.mark_dirty(tkey);
    }
}

//! Which frames of one incoming video layer a subscriber can still decode after something
//! before them went missing.
//!
//! str0m hands over each depacketized frame with `contiguous`. For VP8 with temporal layers it
//! judges a base-layer (TL0) frame by the TL0 chain alone, and it emits an upper-layer frame
//! only when it directly follows the frame before it. That misses one dependency of the
//! temporal pattern browsers use (libwebrtc's three-layer VP8 pattern): the TL1 frame of one
//! half-cycle updates the `golden` buffer, and TL1/TL2 frames of the *next* half-cycle, after
//! a TL0 frame, read it. When that TL1 frame was lost, str0m calls those later frames
//! contiguous, and a subscriber decodes them against a golden picture it never got: blocks
//! of an old picture in the new one.
//!
//! [`References`] closes that gap. A skipped picture id means a frame is missing. TL0 frames
//! go on (they read only `last`, written by TL0, and the last keyframe). Upper-layer frames
//! are held back until a frame marks a layer sync (VP8 `Y` bit: it reads only TL0's buffer,
//! and TL1 then rewrites `golden`) or a keyframe resets everything. No keyframe is needed for
//! this: the base layer keeps the picture moving at a lower frame rate. A broken TL0 chain
//! (`contiguous == false`) still needs a keyframe, which the worker asks for.

/// What the worker should do with one frame of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every frame it references was forwarded: forward it.
    Forward,
    /// It may read a buffer that a missing frame wrote: do not forward it, and no keyframe is
    /// needed for that (a later sync frame repairs the layer).
    Hold,
    /// Something the base layer needs is missing: only a keyframe repairs this.
    NeedKeyframe,
}

/// The VP8 payload descriptor fields that say what a frame depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Frame {
    /// Extended picture id, when the publisher sends one.
    pub picture_id: Option<u64>,
    /// Temporal layer (0 when the publisher sends no temporal layers).
    pub temporal_layer: u8,
    /// The `Y` bit: this frame reads only buffers of lower layers (a layer sync).
    pub layer_sync: bool,
}

/// One frame as str0m handed it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// A keyframe: it needs nothing before it.
    pub keyframe: bool,
    /// str0m's verdict: nothing the frame's layer chain needs is missing.
    pub contiguous: bool,
    /// VP8 details, `None` for other codecs (which then rely on `contiguous` alone).
    pub vp8: Option<Vp8Frame>,
}

/// The reference state of one incoming layer, fed every frame str0m emits for it.
#[derive(Debug, Default, Clone)]
pub struct References {
    /// Picture id of the last frame fed.
    last_picture_id: Option<u64>,
    /// A frame was skipped since the last keyframe or layer sync: upper layers may read a
    /// buffer their subscribers do not have.
    upper_layers_stale: bool,
}

impl References {
    /// Judges `frame`, the next one emitted for this layer.
    pub fn on_frame(&mut self, frame: Frame) -> Verdict {
        let vp8 = frame.vp8;
        let picture_id = vp8.and_then(|v| v.picture_id);
        let skipped = match (self.last_picture_id, picture_id) {
            (Some(last), Some(id)) => id != last.wrapping_add(1),
            _ => false,
        };
        if picture_id.is_some() {
            self.last_picture_id = picture_id;
        }
        if frame.keyframe {
            self.upper_layers_stale = false;
            return Verdict::Forward;
        }
        if skipped {
            self.upper_layers_stale = true;
        }
        if !frame.contiguous {
            return Verdict::NeedKeyframe;
        }
        let Some(vp8) = vp8 else {
            return Verdict::Forward;
        };
        if !self.upper_layers_stale || vp8.temporal_layer == 0 {
            return Verdict::Forward;
        }
        // TL1 with the sync bit reads only TL0's buffer and rewrites `golden`: from here on
        // every layer has what it reads again.
        if vp8.temporal_layer == 1 && vp8.layer_sync {
            self.upper_layers_stale = false;
            return Verdict::Forward;
        }
        Verdict::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libwebrtc's three-layer VP8 pattern: temporal layer and sync bit of each frame of one
    /// cycle (TL0, TL2, TL1 sync, TL2 / TL0, TL2, TL1, TL2).
    const CYCLE: [(u8, bool); 8] = [
        (0, false),
        (2, true),
        (1, true),
        (2, false),
        (0, false),
        (2, false),
        (1, false),
        (2, false),
    ];

    fn frame(picture_id: u64, keyframe: bool, contiguous: bool) -> Frame {
        let (temporal_layer, layer_sync) = CYCLE[(picture_id % 8) as usize];
        Frame {
            keyframe,
            contiguous,
            vp8: Some(Vp8Frame {
                picture_id: Some(picture_id),
                temporal_layer,
                layer_sync,
            }),
        }
    }

    /// Feeds pictures `ids` (keyframe at 0) and returns the verdict of each.
    fn run(ids: impl IntoIterator<Item = u64>) -> Vec<(u64, Verdict)> {
        let mut refs = References::default();
        ids.into_iter()
            .map(|id| (id, refs.on_frame(frame(id, id == 0, true))))
            .collect()
    }

    #[test]
    fn an_unbroken_stream_is_forwarded_whole() {
        assert!(run(0..40).iter().all(|(_, v)| *v == Verdict::Forward));
    }

    #[test]
    fn a_lost_golden_update_holds_the_upper_layers_until_the_next_sync() {
        // Picture 2 (TL1 sync, writes golden) is lost, and with it 3 (str0m does not emit a
        // frame that does not directly follow). 4 is TL0: str0m calls it contiguous.
        let verdicts = run((0..20).filter(|id| !(2..=3).contains(id)));
        let held: Vec<u64> = verdicts
            .iter()
            .filter(|(_, v)| *v == Verdict::Hold)
            .map(|(id, _)| *id)
            .collect();
        // 5, 6 and 7 read the golden picture 2 wrote (6 also rewrites it from itself); 8 is
        // TL0; 9, a TL2 sync, would decode but is held too (only a TL1 sync repairs golden);
        // 10 is that TL1 sync.
        assert_eq!(held, vec![5, 6, 7, 9]);
        let forwarded_after: Vec<u64> = verdicts
            .iter()
            .filter(|(id, v)| *id >= 10 && *v == Verdict::Forward)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(forwarded_after, (10..20).collect::<Vec<_>>());
    }

    #[test]
    fn a_lost_top_layer_frame_costs_only_the_frames_until_the_sync() {
        // Picture 5 (TL2, reads golden, writes nothing) is lost.
        let verdicts = run((0..12).filter(|id| *id != 5));
        let held: Vec<u64> = verdicts
            .iter()
            .filter(|(_, v)| *v == Verdict::Hold)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(held, vec![6, 7, 9]);
    }

    #[test]
    fn a_broken_base_layer_needs_a_keyframe_and_the_keyframe_repairs_everything() {
        let mut refs = References::default();
        for id in 0..4 {
            assert_eq!(refs.on_frame(frame(id, id == 0, true)), Verdict::Forward);
        }
        // TL0 picture 4 is lost; str0m emits 8 (the next TL0) as not contiguous.
        assert_eq!(refs.on_frame(frame(8, false, false)), Verdict::NeedKeyframe);
        assert_eq!(refs.on_frame(frame(9, false, true)), Verdict::Hold);
        assert_eq!(refs.on_frame(frame(10, true, true)), Verdict::Forward);
        for id in 11..20 {
            assert_eq!(refs.on_frame(frame(id, false, true)), Verdict::Forward);
        }
    }

    #[test]
    fn without_picture_ids_or_vp8_the_contiguous_flag_decides() {
        let mut refs = References::default();
        let plain = |keyframe, contiguous| Frame {
            keyframe,
            contiguous,
            vp8: None,
        };
        assert_eq!(refs.on_frame(plain(true, true)), Verdict::Forward);
        assert_eq!(refs.on_frame(plain(false, true)), Verdict::Forward);
        assert_eq!(refs.on_frame(plain(false, false)), Verdict::NeedKeyframe);
        let no_id = Frame {
            keyframe: false,
            contiguous: true,
            vp8: Some(Vp8Frame {
                picture_id: None,
                temporal_layer: 0,
                layer_sync: false,
            }),
        };
        assert_eq!(refs.on_frame(no_id), Verdict::Forward);
    }

    #[test]
    fn picture_ids_that_wrap_are_not_a_gap() {
        let mut refs = References::default();
        let at = |id: u64| Frame {
            keyframe: false,
            contiguous: true,
            vp8: Some(Vp8Frame {
                picture_id: Some(id),
                temporal_layer: 2,
                layer_sync: false,
            }),
        };
        assert_eq!(refs.on_frame(at(u64::MAX)), Verdict::Forward);
        assert_eq!(refs.on_frame(at(0)), Verdict::Forward);
    }
}

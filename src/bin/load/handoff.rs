//! When each publisher frame was handed to the kernel, so that a subscriber's latency can be
//! split into the generator's part and the server's.
//!
//! A frame's stamp is taken when the engine writes it into its publisher's `Rtc`; its packets
//! are handed to the kernel at the engine's next socket flush, after the other frames,
//! timers and feedback of that turn. That wait is the generator's, not the server's: a
//! subscriber's **added latency** is its latency minus the wait of the frame it measured.
//! The flush's start is taken as the hand-off of every frame written before it, the
//! earliest any of their packets can leave: what is left is the server's share at most.

use std::collections::VecDeque;

/// Hand-offs are kept this long after their stamp (a frame arrives within milliseconds;
/// later arrivals count without a hand-off, i.e. whole).
const KEEP_US: u64 = 5_000_000;

#[derive(Debug, Default)]
pub struct Handoffs {
    /// Stamps written since the last flush (increasing, each once).
    unflushed: Vec<u64>,
    /// (stamp, µs from the stamp to the flush that handed it to the kernel), stamps
    /// increasing.
    done: VecDeque<(u64, u32)>,
    /// Waits of the flushes since recording started, one per stamp.
    recorded: Vec<u32>,
}

impl Handoffs {
    /// Frames stamped `stamp_us` were written and wait for the next flush.
    pub fn written(&mut self, stamp_us: u64) {
        if self.unflushed.last().is_none_or(|&l| l < stamp_us)
            && self.done.back().is_none_or(|&(l, _)| l < stamp_us)
        {
            self.unflushed.push(stamp_us);
        }
    }

    /// Whether frames wait for a flush (the caller reads the clock only then).
    pub fn pending(&self) -> bool {
        !self.unflushed.is_empty()
    }

    /// A flush starts at `now_us` (the stamp clock): every waiting frame is handed over.
    pub fn flushed(&mut self, now_us: u64, recording: bool) {
        for stamp in self.unflushed.drain(..) {
            let wait = now_us.saturating_sub(stamp).min(u64::from(u32::MAX)) as u32;
            self.done.push_back((stamp, wait));
            if recording {
                self.recorded.push(wait);
            }
        }
        while self
            .done
            .front()
            .is_some_and(|&(s, _)| s + KEEP_US < now_us)
        {
            self.done.pop_front();
        }
    }

    /// µs the frames stamped `stamp_us` waited in the generator before the kernel had them;
    /// None when unknown (not flushed yet, or too old).
    pub fn wait_of(&self, stamp_us: u64) -> Option<u32> {
        let i = self.done.partition_point(|&(s, _)| s < stamp_us);
        self.done
            .get(i)
            .filter(|&&(s, _)| s == stamp_us)
            .map(|&(_, w)| w)
    }

    /// The waits recorded since the last call (and forgets them).
    pub fn take_recorded(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.recorded)
    }

    /// Forgets what was recorded (a new window starts).
    pub fn clear_recorded(&mut self) {
        self.recorded.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_waits_from_its_stamp_to_the_next_flush() {
        let mut h = Handoffs::default();
        h.written(100);
        h.written(100);
        h.written(130);
        assert!(h.pending());
        assert_eq!(h.wait_of(100), None, "not handed over yet");
        h.flushed(400, true);
        assert!(!h.pending());
        assert_eq!(h.wait_of(100), Some(300));
        assert_eq!(h.wait_of(130), Some(270));
        assert_eq!(h.wait_of(120), None, "no frame was stamped then");
        assert_eq!(h.take_recorded(), vec![300, 270], "one wait per stamp");
        assert!(h.take_recorded().is_empty());
    }

    #[test]
    fn a_flush_hands_over_only_what_was_written_before_it() {
        let mut h = Handoffs::default();
        h.written(10);
        h.flushed(50, false);
        h.written(60);
        h.flushed(61, false);
        assert_eq!((h.wait_of(10), h.wait_of(60)), (Some(40), Some(1)));
        assert!(
            h.take_recorded().is_empty(),
            "nothing recorded outside a window"
        );
        // A stamp already handed over is not handed over again by a later flush.
        h.written(60);
        h.flushed(900, true);
        assert_eq!(h.wait_of(60), Some(1));
    }

    #[test]
    fn old_hand_offs_are_forgotten() {
        let mut h = Handoffs::default();
        h.written(1);
        h.flushed(2, false);
        h.written(KEEP_US + 10);
        h.flushed(KEEP_US + 20, false);
        assert_eq!(h.wait_of(1), None);
        assert_eq!(h.wait_of(KEEP_US + 10), Some(10));
    }
}

//! Synthetic media: what a publishing client sends (`PublishSpec`, the frame generator) and
//! the payload stamp (sequence + send time) a receiver reads back to measure loss and latency.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use str0m::media::{Frequency, MediaTime, Mid, Rid};

use super::protocol::{Kind, Source};

/// Magic bytes in front of every stamp.
pub const STAMP_MAGIC: [u8; 4] = *b"MMT1";
/// Bytes of a stamp: magic, u32 sequence, u64 send time (µs since the Unix epoch), big endian.
pub const STAMP_LEN: usize = 16;
/// Where a receiver looks for the stamp (it sits right after the codec header).
const STAMP_SEARCH_WINDOW: usize = 32;

/// What `Client::publish` sends. Frame contents are synthetic but shaped like the codec's so
/// the server's keyframe detection and audio-level handling see realistic input.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishSpec {
    /// Publish a microphone track (Opus).
    pub audio: bool,
    /// Publish a webcam track (VP8).
    pub video: bool,
    /// Send the webcam as three simulcast layers with rids `l`, `m`, `h` (as browsers do).
    pub simulcast: bool,
    /// Video frames per second.
    pub video_fps: u32,
    /// Every Nth video frame is a keyframe (the first one always is; 0 = only the first and
    /// those requested by the server).
    pub keyframe_interval: u32,
    /// Bytes of each 20 ms audio frame.
    pub audio_frame_bytes: usize,
    /// Bytes of a delta video frame (top layer; `m` gets 1/4, `l` 1/16).
    pub video_frame_bytes: usize,
    /// Bytes of a video keyframe (top layer; scaled like delta frames).
    pub keyframe_bytes: usize,
    /// Audio level written in the audio-level header extension (dBov, 0 loudest, -127 silence).
    pub audio_level: i8,
    /// Video packets kept for retransmission (NACK); `None`: str0m's default. A small value
    /// makes lost packets unrepairable, as when a resend also gets lost or comes too late.
    pub resend_buffer_video: Option<usize>,
}

impl Default for PublishSpec {
    fn default() -> Self {
        PublishSpec {
            audio: true,
            video: true,
            simulcast: false,
            video_fps: 30,
            keyframe_interval: 60,
            audio_frame_bytes: 120,
            video_frame_bytes: 1_000,
            keyframe_bytes: 4_000,
            audio_level: -30,
            resend_buffer_video: None,
        }
    }
}

impl PublishSpec {
    /// Microphone and webcam, single video encoding.
    pub fn audio_video() -> Self {
        PublishSpec::default()
    }

    /// Microphone only.
    pub fn audio_only() -> Self {
        PublishSpec {
            video: false,
            ..PublishSpec::default()
        }
    }

    /// Webcam only.
    pub fn video_only() -> Self {
        PublishSpec {
            audio: false,
            ..PublishSpec::default()
        }
    }
}

/// The stamp embedded in each synthetic frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Per-track frame counter starting at 0 (shared by all simulcast layers of a frame).
    pub seq: u32,
    /// Send time, microseconds since the Unix epoch.
    pub sent_at_us: u64,
}

/// Microseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn push_stamp(buf: &mut Vec<u8>, stamp: Stamp) {
    buf.extend_from_slice(&STAMP_MAGIC);
    buf.extend_from_slice(&stamp.seq.to_be_bytes());
    buf.extend_from_slice(&stamp.sent_at_us.to_be_bytes());
}

/// Find the stamp in a received frame.
pub fn find_stamp(data: &[u8]) -> Option<Stamp> {
    let window = &data[..data.len().min(STAMP_SEARCH_WINDOW + STAMP_LEN)];
    let at = window.windows(4).position(|w| w == STAMP_MAGIC)?;
    let s = data.get(at + 4..at + STAMP_LEN)?;
    let mut seq = [0u8; 4];
    seq.copy_from_slice(&s[..4]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&s[4..12]);
    Some(Stamp {
        seq: u32::from_be_bytes(seq),
        sent_at_us: u64::from_be_bytes(ts),
    })
}

/// A synthetic Opus frame: a TOC byte (config 15 = hybrid fullband 20 ms, mono, one frame),
/// the stamp, and filler up to `size`.
pub fn opus_frame(stamp: Stamp, size: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(size.max(1 + STAMP_LEN));
    buf.push(15 << 3);
    push_stamp(&mut buf, stamp);
    buf.resize(size.max(buf.len()), 0x55);
    buf
}

/// A synthetic VP8 frame. Keyframes carry the 10-byte keyframe header (frame tag with P = 0,
/// start code 9d 01 2a, 14-bit width and height little endian); delta frames the 3-byte frame
/// tag with P = 1. Then the stamp and filler up to `size`.
pub fn vp8_frame(stamp: Stamp, keyframe: bool, width: u16, height: u16, size: usize) -> Vec<u8> {
    let header = if keyframe { 10 } else { 3 };
    let total = size.max(header + STAMP_LEN);
    // First partition size (19 bits): claim everything after the header.
    let part = ((total - header) as u32) & 0x7_ffff;
    // Frame tag bits: 0 = P (0 key / 1 inter), 1..3 version 0, 4 show_frame, 5..23 partition size.
    let tag = u32::from(!keyframe) | (1 << 4) | (part << 5);
    let mut buf = Vec::with_capacity(total);
    buf.extend_from_slice(&tag.to_le_bytes()[..3]);
    if keyframe {
        buf.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        buf.extend_from_slice(&(width & 0x3fff).to_le_bytes());
        buf.extend_from_slice(&(height & 0x3fff).to_le_bytes());
    }
    push_stamp(&mut buf, stamp);
    buf.resize(total, 0xaa);
    buf
}

/// VP8 keyframe test as a server would do it: P bit clear and the start code present.
pub fn is_vp8_keyframe(data: &[u8]) -> bool {
    data.len() >= 10 && data[0] & 1 == 0 && data[3..6] == [0x9d, 0x01, 0x2a]
}

/// One frame for str0m's `Writer::write`.
#[derive(Debug)]
pub(crate) struct FrameWrite {
    pub mid: Mid,
    pub rid: Option<Rid>,
    pub kind: Kind,
    pub rtp_time: MediaTime,
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub audio_level: Option<i8>,
}

/// One simulcast layer (or the single encoding).
#[derive(Debug)]
struct Layer {
    rid: Option<Rid>,
    /// Size divisor relative to the top layer, for both dimensions.
    scale: u16,
}

#[derive(Debug)]
struct Track {
    mid: Mid,
    kind: Kind,
    layers: Vec<Layer>,
    seq: u32,
    next_at: Option<Instant>,
    sending: bool,
    force_keyframe: bool,
    /// Simulcast layers sent, from the lowest (the others are switched off, as a browser
    /// does under CPU or bandwidth limits).
    layers_on: usize,
}

/// A track the generator is set up to send (its mid and source), for the `publish` request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LocalTrack {
    pub mid: Mid,
    pub kind: Kind,
    pub source: Source,
}

/// Produces `FrameWrite`s on schedule once started.
#[derive(Debug)]
pub(crate) struct Generator {
    spec: PublishSpec,
    tracks: Vec<Track>,
    started: Option<Instant>,
    queue: VecDeque<FrameWrite>,
}

const AUDIO_PTIME: Duration = Duration::from_millis(20);
/// When the thread falls further behind than this, skip ahead instead of bursting.
const MAX_LAG: Duration = Duration::from_millis(200);
const TOP_WIDTH: u16 = 640;
const TOP_HEIGHT: u16 = 360;

impl Generator {
    pub fn new(spec: PublishSpec) -> Self {
        Generator {
            spec,
            tracks: Vec::new(),
            started: None,
            queue: VecDeque::new(),
        }
    }

    pub fn spec(&self) -> &PublishSpec {
        &self.spec
    }

    pub fn add_track(&mut self, mid: Mid, kind: Kind, rids: &[&str]) {
        let layers = if rids.is_empty() {
            vec![Layer {
                rid: None,
                scale: 1,
            }]
        } else {
            // rids are given smallest first (l, m, h): l = 1/4, m = 1/2, h = 1.
            let n = rids.len() as u32;
            rids.iter()
                .enumerate()
                .map(|(i, r)| Layer {
                    rid: Some(Rid::from(*r)),
                    scale: 1u16 << (n - 1 - i as u32),
                })
                .collect()
        };
        self.tracks.push(Track {
            mid,
            kind,
            layers,
            seq: 0,
            next_at: None,
            sending: true,
            force_keyframe: true,
            layers_on: usize::MAX,
        });
    }

    /// Begin the schedule (call when the transport is connected).
    pub fn start(&mut self, now: Instant) {
        if self.started.is_none() {
            self.started = Some(now);
            for t in &mut self.tracks {
                t.next_at = Some(now);
            }
        }
    }

    pub fn request_keyframe(&mut self, mid: Mid) {
        for t in self.tracks.iter_mut().filter(|t| t.mid == mid) {
            t.force_keyframe = true;
        }
    }

    pub fn set_sending(&mut self, kind: Kind, sending: bool) {
        for t in self.tracks.iter_mut().filter(|t| t.kind == kind) {
            if sending && !t.sending {
                // A resumed camera starts with a keyframe, like a real encoder.
                t.force_keyframe = true;
            }
            t.sending = sending;
        }
    }

    /// Sends only the lowest `n` simulcast layers of the video tracks; a layer switched back
    /// on starts with a keyframe, like a real encoder.
    pub fn set_video_layers(&mut self, n: usize) {
        for t in self.tracks.iter_mut().filter(|t| t.kind == Kind::Video) {
            if n > t.layers_on.min(t.layers.len()) {
                t.force_keyframe = true;
            }
            t.layers_on = n;
        }
    }

    /// When the next frame is due, if the generator runs.
    pub fn next_due(&self) -> Option<Instant> {
        if !self.queue.is_empty() {
            return self.started;
        }
        self.tracks.iter().filter_map(|t| t.next_at).min()
    }

    /// The next frame to write now, if one is due.
    pub fn next_write(&mut self, now: Instant) -> Option<FrameWrite> {
        if self.queue.is_empty() {
            self.generate_due(now);
        }
        self.queue.pop_front()
    }

    fn generate_due(&mut self, now: Instant) {
        let spec = &self.spec;
        let frame_interval = Duration::from_secs(1) / spec.video_fps.max(1);
        for t in &mut self.tracks {
            let Some(next_at) = t.next_at else { continue };
            if next_at > now {
                continue;
            }
            let interval = match t.kind {
                Kind::Audio => AUDIO_PTIME,
                Kind::Video => frame_interval,
            };
            t.next_at = Some(if now - next_at > MAX_LAG {
                now + interval
            } else {
                next_at + interval
            });
            if !t.sending {
                continue;
            }
            let seq = t.seq;
            t.seq = t.seq.wrapping_add(1);
            let stamp = Stamp {
                seq,
                sent_at_us: unix_micros(),
            };
            match t.kind {
                Kind::Audio => self.queue.push_back(FrameWrite {
                    mid: t.mid,
                    rid: None,
                    kind: Kind::Audio,
                    // 20 ms at 48 kHz.
                    rtp_time: MediaTime::new(u64::from(seq) * 960, Frequency::FORTY_EIGHT_KHZ),
                    data: opus_frame(stamp, spec.audio_frame_bytes),
                    keyframe: false,
                    audio_level: Some(spec.audio_level),
                }),
                Kind::Video => {
                    let keyframe = t.force_keyframe
                        || (spec.keyframe_interval > 0 && seq % spec.keyframe_interval == 0);
                    t.force_keyframe = false;
                    let rtp_time = MediaTime::from_90khz(
                        u64::from(seq) * 90_000 / u64::from(spec.video_fps.max(1)),
                    );
                    for layer in t.layers.iter().take(t.layers_on.max(1)) {
                        let bytes = if keyframe {
                            spec.keyframe_bytes
                        } else {
                            spec.video_frame_bytes
                        };
                        let div = usize::from(layer.scale) * usize::from(layer.scale);
                        self.queue.push_back(FrameWrite {
                            mid: t.mid,
                            rid: layer.rid,
                            kind: Kind::Video,
                            rtp_time,
                            data: vp8_frame(
                                stamp,
                                keyframe,
                                TOP_WIDTH / layer.scale,
                                TOP_HEIGHT / layer.scale,
                                bytes / div,
                            ),
                            keyframe,
                            audio_level: None,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_header_and_stamp_round_trip() {
        let stamp = Stamp {
            seq: 7,
            sent_at_us: 123,
        };
        let key = vp8_frame(stamp, true, 320, 240, 100);
        assert_eq!(key.len(), 100);
        assert!(is_vp8_keyframe(&key));
        assert_eq!(&key[6..10], &[0x40, 0x01, 0xf0, 0x00]);
        assert_eq!(find_stamp(&key), Some(stamp));

        let delta = vp8_frame(stamp, false, 320, 240, 10);
        assert_eq!(delta[0] & 1, 1);
        assert!(!is_vp8_keyframe(&delta));
        assert_eq!(find_stamp(&delta), Some(stamp));

        let opus = opus_frame(stamp, 60);
        assert_eq!(opus.len(), 60);
        assert_eq!(find_stamp(&opus), Some(stamp));
    }
}

//! What publishers send: synthetic VP8 (shaped like the codec's frames, see
//! `multiparty_meeting::client::vp8_frame`) or the frames of an IVF file, Opus-shaped audio,
//! at a set bitrate and frame rate, optionally as three simulcast layers; and the stamp each
//! frame carries (frame counter + send time) that subscribers read back to measure latency.
//!
//! The stamp is the client module's layout (magic `MMT1`, u32 counter, u64 microseconds,
//! big endian) but its clock is the load generator's monotonic clock (microseconds since
//! the engine started): sender and receiver are the same process.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use multiparty_meeting::client::{opus_frame, vp8_frame, Kind, Stamp};
use str0m::media::{Frequency, MediaTime, Mid, Rid};

/// Stamp magic (same as the client module's).
const STAMP_MAGIC: [u8; 4] = *b"MMT1";
/// Stamp length in bytes.
pub const STAMP_LEN: usize = 16;
/// How far into a payload the stamp is looked for (RTP payload descriptor + codec header).
const STAMP_WINDOW: usize = 48;
/// Audio packet time.
const AUDIO_PTIME: Duration = Duration::from_millis(20);
/// When the loop fell further behind than this, skip ahead instead of bursting frames.
const MAX_LAG: Duration = Duration::from_millis(200);
/// A frame written later than this after it was due counts as late: the generator's one
/// thread was busy, and late frames bunch up into bursts no independent cameras would send.
pub const LATE: Duration = Duration::from_millis(1);
/// A keyframe is this many times a delta frame of the same layer.
const KEYFRAME_FACTOR: usize = 3;

/// Parses the stamp at `at`.
fn stamp_at(data: &[u8], at: usize) -> Option<Stamp> {
    let s = data.get(at..at + STAMP_LEN)?;
    if s[..4] != STAMP_MAGIC {
        return None;
    }
    let mut seq = [0u8; 4];
    seq.copy_from_slice(&s[4..8]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&s[8..16]);
    Some(Stamp {
        seq: u32::from_be_bytes(seq),
        sent_at_us: u64::from_be_bytes(ts),
    })
}

/// The stamp of an RTP payload: near its start (synthetic frames, first packet of a frame)
/// or, for the last packet of a frame (`marker`), at its very end (IVF frames).
pub fn find_stamp(payload: &[u8], marker: bool) -> Option<Stamp> {
    let window = &payload[..payload.len().min(STAMP_WINDOW + STAMP_LEN)];
    if let Some(at) = window.windows(4).position(|w| w == STAMP_MAGIC) {
        if let Some(s) = stamp_at(payload, at) {
            return Some(s);
        }
    }
    if marker && payload.len() >= STAMP_LEN {
        return stamp_at(payload, payload.len() - STAMP_LEN);
    }
    None
}

fn push_stamp(buf: &mut Vec<u8>, stamp: Stamp) {
    buf.extend_from_slice(&STAMP_MAGIC);
    buf.extend_from_slice(&stamp.seq.to_be_bytes());
    buf.extend_from_slice(&stamp.sent_at_us.to_be_bytes());
}

/// Frames of a VP8 IVF file, loaded once and shared by all publishers.
#[derive(Debug)]
pub struct IvfClip {
    /// (keyframe, frame bytes).
    pub frames: Vec<(bool, Vec<u8>)>,
}

impl IvfClip {
    /// Reads a VP8 IVF file (32-byte header, then 12-byte frame headers).
    pub fn load(path: &Path) -> anyhow::Result<IvfClip> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if data.len() < 32 || &data[..4] != b"DKIF" {
            bail!("{} is not an IVF file", path.display());
        }
        if &data[8..12] != b"VP80" {
            bail!("{}: only VP8 IVF files are supported", path.display());
        }
        let header_len = usize::from(u16::from_le_bytes([data[6], data[7]])).max(32);
        let mut frames = Vec::new();
        let mut at = header_len;
        while at + 12 <= data.len() {
            let len =
                u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            let start = at + 12;
            let Some(frame) = data.get(start..start + len) else {
                break;
            };
            let key = frame.first().is_some_and(|b| b & 1 == 0);
            frames.push((key, frame.to_vec()));
            at = start + len;
        }
        if !frames.first().is_some_and(|f| f.0) {
            bail!(
                "{}: no frames, or the first is not a keyframe",
                path.display()
            );
        }
        Ok(IvfClip { frames })
    }
}

/// What each publisher sends.
#[derive(Debug, Clone)]
pub struct PublishSpec {
    pub audio: bool,
    pub video: bool,
    pub simulcast: bool,
    pub fps: u32,
    /// Top layer video bitrate, bits per second (`m` gets 1/4, `l` 1/16).
    pub video_bitrate: u64,
    /// Audio bitrate, bits per second.
    pub audio_bitrate: u64,
    /// Top layer size.
    pub width: u16,
    pub height: u16,
    /// Every Nth frame is a keyframe (0 = only the first and requested ones).
    pub keyframe_interval: u32,
    /// Frames from a file instead of synthetic ones (the same frames on every layer).
    pub ivf: Option<std::sync::Arc<IvfClip>>,
    /// List simulcast rids largest first in the offer (Janus); smallest first otherwise.
    pub rids_high_first: bool,
}

impl PublishSpec {
    /// Delta frame bytes of a layer with bitrate `bps`, so that the average with keyframes
    /// matches the bitrate.
    fn delta_bytes(&self, bps: u64) -> usize {
        let per_frame = bps as f64 / 8.0 / f64::from(self.fps.max(1));
        let key_share = if self.keyframe_interval > 0 {
            (KEYFRAME_FACTOR as f64 - 1.0) / f64::from(self.keyframe_interval)
        } else {
            0.0
        };
        ((per_frame / (1.0 + key_share)) as usize).max(64)
    }
}

/// One frame to hand to str0m's `Writer::write`.
#[derive(Debug)]
pub struct FrameWrite {
    pub mid: Mid,
    pub rid: Option<Rid>,
    pub kind: Kind,
    pub rtp_time: MediaTime,
    pub data: Vec<u8>,
}

#[derive(Debug)]
struct Layer {
    rid: Option<Rid>,
    /// Divisor of the top layer's width and height.
    scale: u16,
    delta_bytes: usize,
}

#[derive(Debug)]
struct Track {
    mid: Mid,
    kind: Kind,
    layers: Vec<Layer>,
    seq: u32,
    next_at: Instant,
    force_keyframe: bool,
    /// IVF: index of the next frame.
    ivf_pos: usize,
}

/// Produces the frames of one publisher on schedule.
#[derive(Debug)]
pub struct Generator {
    spec: PublishSpec,
    tracks: Vec<Track>,
    started: bool,
    /// Frames written.
    pub frames: u64,
    /// Frames written more than [`LATE`] after they were due.
    pub late: u64,
    /// Payload bytes written.
    pub bytes: u64,
}

/// Simulcast rids, smallest first, as docs/protocol.md prescribes.
pub const SIMULCAST_RIDS: [&str; 3] = ["l", "m", "h"];

/// The rids in the order the offer lists them: smallest first (our protocol) or largest
/// first (what Janus expects, as browsers send them).
pub fn offer_rids(high_first: bool) -> Vec<&'static str> {
    let mut r = SIMULCAST_RIDS.to_vec();
    if high_first {
        r.reverse();
    }
    r
}

impl Generator {
    pub fn new(spec: PublishSpec) -> Generator {
        Generator {
            spec,
            tracks: Vec::new(),
            started: false,
            frames: 0,
            late: 0,
            bytes: 0,
        }
    }

    /// Adds a track on `mid` (video with the simulcast rids when the spec asks for them).
    pub fn add_track(&mut self, mid: Mid, kind: Kind, now: Instant) {
        let layers = match kind {
            Kind::Audio => vec![Layer {
                rid: None,
                scale: 1,
                delta_bytes: (self.spec.audio_bitrate / 8 / 50).max(20) as usize,
            }],
            Kind::Video if self.spec.simulcast => offer_rids(self.spec.rids_high_first)
                .into_iter()
                .map(|r| {
                    // l = 1/4, m = 1/2, h = full size (1/16, 1/4, 1 of the bitrate).
                    let scale: u16 = match r {
                        "l" => 4,
                        "m" => 2,
                        _ => 1,
                    };
                    let div = u64::from(scale) * u64::from(scale);
                    Layer {
                        rid: Some(Rid::from(r)),
                        scale,
                        delta_bytes: self.spec.delta_bytes(self.spec.video_bitrate / div),
                    }
                })
                .collect(),
            Kind::Video => vec![Layer {
                rid: None,
                scale: 1,
                delta_bytes: self.spec.delta_bytes(self.spec.video_bitrate),
            }],
        };
        self.tracks.push(Track {
            mid,
            kind,
            layers,
            seq: 0,
            next_at: now,
            force_keyframe: true,
            ivf_pos: 0,
        });
    }

    /// Starts the schedule (when the transport is connected).
    pub fn start(&mut self, now: Instant) {
        if !self.started {
            self.started = true;
            let frame_interval = Duration::from_secs(1) / self.spec.fps.max(1);
            for t in &mut self.tracks {
                // Each track starts at a random point of its interval: independent cameras
                // and microphones do not capture in step, and publishers that connected
                // together would otherwise send their frames in the same millisecond, every
                // frame, for the whole run.
                let interval = match t.kind {
                    Kind::Audio => AUDIO_PTIME,
                    Kind::Video => frame_interval,
                };
                t.next_at = now + interval.mul_f64(rand::random::<f64>());
            }
        }
    }

    pub fn request_keyframe(&mut self, mid: Mid) {
        for t in self.tracks.iter_mut().filter(|t| t.mid == mid) {
            t.force_keyframe = true;
        }
    }

    /// When the next frame is due, once started.
    pub fn next_due(&self) -> Option<Instant> {
        if !self.started {
            return None;
        }
        self.tracks.iter().map(|t| t.next_at).min()
    }

    /// Appends every frame due at `now` to `out`; `clock_us` is the stamp clock now.
    pub fn due_frames(&mut self, now: Instant, clock_us: u64, out: &mut Vec<FrameWrite>) {
        if !self.started {
            return;
        }
        let fps = self.spec.fps.max(1);
        let frame_interval = Duration::from_secs(1) / fps;
        for t in &mut self.tracks {
            if t.next_at > now {
                continue;
            }
            let late = u64::from(now - t.next_at > LATE);
            let interval = match t.kind {
                Kind::Audio => AUDIO_PTIME,
                Kind::Video => frame_interval,
            };
            t.next_at = if now - t.next_at > MAX_LAG {
                now + interval
            } else {
                t.next_at + interval
            };
            let seq = t.seq;
            t.seq = t.seq.wrapping_add(1);
            let stamp = Stamp {
                seq,
                sent_at_us: clock_us,
            };
            match t.kind {
                Kind::Audio => {
                    let data = opus_frame(stamp, t.layers[0].delta_bytes);
                    self.frames += 1;
                    self.late += late;
                    self.bytes += data.len() as u64;
                    out.push(FrameWrite {
                        mid: t.mid,
                        rid: None,
                        kind: Kind::Audio,
                        rtp_time: MediaTime::new(u64::from(seq) * 960, Frequency::FORTY_EIGHT_KHZ),
                        data,
                    });
                }
                Kind::Video => {
                    let rtp_time = MediaTime::from_90khz(u64::from(seq) * 90_000 / u64::from(fps));
                    let keyframe = t.force_keyframe
                        || (self.spec.keyframe_interval > 0
                            && seq % self.spec.keyframe_interval == 0);
                    t.force_keyframe = false;
                    let ivf_frame = self.spec.ivf.as_ref().map(|clip| {
                        let n = clip.frames.len();
                        if keyframe {
                            // Jump to the next keyframe of the clip (the first one exists).
                            let mut i = t.ivf_pos % n;
                            while !clip.frames[i].0 {
                                i = (i + 1) % n;
                            }
                            t.ivf_pos = i;
                        }
                        let (_, f) = &clip.frames[t.ivf_pos % n];
                        t.ivf_pos = (t.ivf_pos + 1) % n;
                        f.clone()
                    });
                    for layer in &t.layers {
                        let data = match &ivf_frame {
                            Some(f) => {
                                let mut d = Vec::with_capacity(f.len() + STAMP_LEN);
                                d.extend_from_slice(f);
                                push_stamp(&mut d, stamp);
                                d
                            }
                            None => {
                                let bytes = if keyframe {
                                    layer.delta_bytes * KEYFRAME_FACTOR
                                } else {
                                    layer.delta_bytes
                                };
                                vp8_frame(
                                    stamp,
                                    keyframe,
                                    self.spec.width / layer.scale,
                                    self.spec.height / layer.scale,
                                    bytes,
                                )
                            }
                        };
                        self.frames += 1;
                        self.late += late;
                        self.bytes += data.len() as u64;
                        out.push(FrameWrite {
                            mid: t.mid,
                            rid: layer.rid,
                            kind: Kind::Video,
                            rtp_time,
                            data,
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
    fn stamps_are_found_at_start_and_end() {
        let s = Stamp {
            seq: 9,
            sent_at_us: 77,
        };
        let f = vp8_frame(s, true, 640, 360, 500);
        assert_eq!(find_stamp(&f, false), Some(s));
        let mut tail = vec![0u8; 300];
        push_stamp(&mut tail, s);
        assert_eq!(find_stamp(&tail, false), None);
        assert_eq!(find_stamp(&tail, true), Some(s));
    }

    fn spec() -> PublishSpec {
        PublishSpec {
            audio: true,
            video: true,
            simulcast: false,
            fps: 30,
            video_bitrate: 1_200_000,
            audio_bitrate: 32_000,
            width: 1280,
            height: 720,
            keyframe_interval: 0,
            ivf: None,
            rids_high_first: false,
        }
    }

    #[test]
    fn frame_sizes_follow_the_bitrate() {
        let spec = spec();
        assert_eq!(spec.delta_bytes(1_200_000), 5_000);
        let now = Instant::now();
        let mut g = Generator::new(spec);
        g.add_track(Mid::from("0"), Kind::Audio, now);
        g.add_track(Mid::from("1"), Kind::Video, now);
        g.start(now);
        let mut out = Vec::new();
        // Both tracks' first frames are due within one video frame interval.
        g.due_frames(now + Duration::from_millis(34), 5, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data.len(), 80);
        assert_eq!(out[1].data.len(), 15_000, "first video frame is a keyframe");
    }

    #[test]
    fn frames_written_after_their_time_are_counted_late() {
        let now = Instant::now();
        let mut g = Generator::new(spec());
        g.add_track(Mid::from("1"), Kind::Video, now);
        g.start(now);
        let due = g.next_due().expect("started");
        let mut out = Vec::new();
        g.due_frames(due, 0, &mut out);
        assert_eq!((out.len(), g.late), (1, 0), "on time");
        let due = g.next_due().expect("next frame");
        g.due_frames(due + LATE + Duration::from_micros(100), 0, &mut out);
        assert_eq!((out.len(), g.frames, g.late), (2, 2, 1), "late");
    }

    #[test]
    fn publishers_started_together_do_not_send_in_step() {
        let now = Instant::now();
        let firsts: Vec<Instant> = (0..20)
            .map(|_| {
                let mut g = Generator::new(spec());
                g.add_track(Mid::from("1"), Kind::Video, now);
                g.start(now);
                g.next_due().expect("started")
            })
            .collect();
        let interval = Duration::from_secs(1) / 30;
        assert!(firsts.iter().all(|t| *t >= now && *t < now + interval));
        assert!(firsts.iter().any(|t| *t != firsts[0]), "{firsts:?}");
    }
}

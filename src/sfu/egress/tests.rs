//! The send side against a subscriber played by the tests: what goes out decrypts with the
//! subscriber's keys and carries what it negotiated; what it sends back becomes requests.

use std::time::{Duration, Instant};

use super::srtp::{Keys, Profile};
use super::*;

const SSRC: u32 = 0x1111_2222;
const RTX: u32 = 0x3333_4444;

fn keys(profile: Profile) -> Keys {
    let len = match profile {
        Profile::Aes128CmSha1_80 => 60,
        Profile::AeadAes128Gcm => 56,
        Profile::AeadAes256Gcm => 88,
    };
    let material: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    // The server (DTLS passive) sends with the server keys.
    Keys::from_dtls(profile, &material, false).unwrap()
}

fn spec(rtx: bool) -> StreamSpec {
    StreamSpec {
        mid: Mid::from("3"),
        ssrc: SSRC,
        pt: 96,
        rtx: rtx.then_some((RTX, 97)),
        clock_rate: 90_000,
        audio: false,
        cname: "cname-of-3".into(),
        exts: ExtIds {
            mid: Some(1),
            abs_send_time: Some(2),
            transport_cc: Some(3),
            audio_level: None,
            video_orientation: Some(4),
        },
    }
}

/// A VP8 payload: descriptor with a 15-bit picture id and TL0PICIDX, then some bytes.
fn vp8(picture_id: u16, tl0: u8) -> Vec<u8> {
    let mut p = vec![
        0x90,
        0xc0,
        0x80 | (picture_id >> 8) as u8,
        picture_id as u8,
        tl0,
    ];
    p.extend((0..40).map(|i| i as u8));
    p
}

fn outgoing(stream: usize, seq: u64, payload: &[u8], at: Instant) -> Outgoing {
    Outgoing {
        stream,
        seq,
        time: 9_000,
        marker: true,
        payload: payload.into(),
        vp8: None,
        audio_level: None,
        video_orientation: Some(1),
        wallclock: at,
        resend: false,
    }
}

fn flush(e: &mut Egress, now: Instant) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    e.flush(now, &mut [0; SCRATCH], &mut |d: &[u8]| {
        sent.push(d.to_vec())
    });
    sent
}

/// The header extension elements of a packet: (id, value).
fn extensions(p: &[u8]) -> Vec<(u8, Vec<u8>)> {
    if p[0] & 0x10 == 0 {
        return Vec::new();
    }
    assert_eq!(&p[12..14], &[0xbe, 0xde], "one-byte form");
    let words = usize::from(u16::from_be_bytes([p[14], p[15]]));
    let data = &p[16..16 + words * 4];
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        if data[at] == 0 {
            at += 1;
            continue;
        }
        let id = data[at] >> 4;
        let len = usize::from(data[at] & 0x0f) + 1;
        out.push((id, data[at + 1..at + 1 + len].to_vec()));
        at += 1 + len;
    }
    out
}

fn header_len(p: &[u8]) -> usize {
    if p[0] & 0x10 == 0 {
        12
    } else {
        16 + usize::from(u16::from_be_bytes([p[14], p[15]])) * 4
    }
}

#[test]
fn a_packet_goes_out_as_the_subscriber_negotiated_it_with_every_profile() {
    for profile in [
        Profile::Aes128CmSha1_80,
        Profile::AeadAes128Gcm,
        Profile::AeadAes256Gcm,
    ] {
        let now = Instant::now();
        let keys = keys(profile);
        let mut e = Egress::new(&keys, 1_000_000, now).unwrap();
        let s = e.add_stream(spec(true));
        let payload = vp8(1000, 7);
        let mut p = outgoing(s, 70_000, &payload, now);
        p.vp8 = Some(Vp8Ids {
            picture_id: Some((20_000, true)),
            tl0_pic_idx: Some(200),
        });
        e.queue(p);
        let sent = flush(&mut e, now);
        assert_eq!(sent.len(), 1, "{profile:?}");
        let d = &sent[0];
        assert_eq!(d[1], 0x80 | 96, "marker and payload type");
        assert_eq!(u16::from_be_bytes([d[2], d[3]]), 70_000u64 as u16);
        assert_eq!(u32::from_be_bytes([d[4], d[5], d[6], d[7]]), 9_000);
        assert_eq!(u32::from_be_bytes([d[8], d[9], d[10], d[11]]), SSRC);
        let exts = extensions(d);
        let ids: Vec<u8> = exts.iter().map(|x| x.0).collect();
        assert_eq!(
            ids,
            vec![1, 2, 3, 4],
            "mid, abs-send-time, transport-cc, orientation"
        );
        assert_eq!(exts[0].1, b"3");
        assert_eq!(exts[2].1, vec![0, 0], "the first transport sequence number");
        assert_eq!(exts[3].1, vec![1]);
        let hl = header_len(d);
        let plain = keys
            .peer()
            .open_rtp(d, hl, 70_000)
            .unwrap_or_else(|| panic!("{profile:?}: the subscriber opens it (ROC 1)"));
        let mut expected = payload.clone();
        expected[2] = 0x80 | (20_000u16 >> 8) as u8;
        expected[3] = 20_000u16 as u8;
        expected[4] = 200;
        assert_eq!(
            &plain[hl..],
            &expected[..],
            "{profile:?}: the VP8 ids are patched"
        );
        assert!(
            keys.peer().open_rtp(d, hl, 4_464).is_none(),
            "another rollover counter does not open it"
        );
    }
}

#[test]
fn a_resend_goes_on_the_repair_stream_with_the_original_sequence_number() {
    let now = Instant::now();
    let keys = keys(Profile::AeadAes256Gcm);
    let mut e = Egress::new(&keys, 1_000_000, now).unwrap();
    let s = e.add_stream(spec(true));
    let payload = vp8(5, 1);
    let mut p = outgoing(s, 1_234, &payload, now);
    p.resend = true;
    e.queue(p);
    let d = &flush(&mut e, now)[0];
    assert_eq!(u32::from_be_bytes([d[8], d[9], d[10], d[11]]), RTX);
    assert_eq!(d[1] & 0x7f, 97);
    let rtx_seq = u16::from_be_bytes([d[2], d[3]]);
    let hl = header_len(d);
    let plain = keys.peer().open_rtp(d, hl, u64::from(rtx_seq)).unwrap();
    assert_eq!(
        &plain[hl..hl + 2],
        &1_234u16.to_be_bytes(),
        "original sequence number"
    );
    assert_eq!(&plain[hl + 2..], &payload[..]);

    // Without RTX the resend is the packet again, on the main stream.
    let mut e = Egress::new(&keys, 1_000_000, now).unwrap();
    let s = e.add_stream(spec(false));
    let mut p = outgoing(s, 1_234, &payload, now);
    p.resend = true;
    e.queue(p);
    let d = &flush(&mut e, now)[0];
    assert_eq!(u32::from_be_bytes([d[8], d[9], d[10], d[11]]), SSRC);
    assert_eq!(u16::from_be_bytes([d[2], d[3]]), 1_234);
}

/// Reads the first RTCP packet of a compound: (type, SSRC, body after the SSRC).
fn first_rtcp(plain: &[u8]) -> (u8, u32, &[u8]) {
    let len = (usize::from(u16::from_be_bytes([plain[2], plain[3]])) + 1) * 4;
    (
        plain[1],
        u32::from_be_bytes([plain[4], plain[5], plain[6], plain[7]]),
        &plain[8..len],
    )
}

#[test]
fn sender_reports_follow_the_first_packet_and_count_what_was_sent() {
    let t0 = Instant::now();
    let keys = keys(Profile::AeadAes128Gcm);
    let mut opener = keys.peer().rtcp_receiver().unwrap();
    let mut e = Egress::new(&keys, 1_000_000, t0).unwrap();
    let s = e.add_stream(spec(false));
    let mut out = Vec::new();
    e.on_timeout(t0, &mut [0; SCRATCH], &mut |d: &[u8]| out.push(d.to_vec()));
    assert!(out.is_empty(), "nothing to report before the first packet");
    for i in 0..3 {
        e.queue(outgoing(s, 10 + i, &[1u8; 100], t0));
    }
    flush(&mut e, t0);
    let due = e.next_timeout(t0);
    assert_eq!(due, t0 + SR_FIRST);
    let at = t0 + Duration::from_millis(100);
    e.on_timeout(at, &mut [0; SCRATCH], &mut |d: &[u8]| out.push(d.to_vec()));
    assert_eq!(out.len(), 1);
    let plain = opener.unprotect(&out[0]).unwrap().to_vec();
    let (pt, ssrc, body) = first_rtcp(&plain);
    assert_eq!((pt, ssrc), (200, SSRC));
    let rtp_time = u32::from_be_bytes([body[8], body[9], body[10], body[11]]);
    assert_eq!(
        rtp_time,
        9_000 + 9_000,
        "100 ms of a 90 kHz clock after the last packet"
    );
    assert_eq!(
        u32::from_be_bytes([body[12], body[13], body[14], body[15]]),
        3
    );
    assert_eq!(
        u32::from_be_bytes([body[16], body[17], body[18], body[19]]),
        300
    );
    assert!(
        plain.windows(10).any(|w| w == b"cname-of-3"),
        "an SDES with the m-line's CNAME follows"
    );
    assert_eq!(e.next_timeout(at), at + SR_VIDEO);
}

/// A compound packet from the subscriber: an RR about our stream, a NACK, a PLI and a
/// transport-wide feedback for the first two packets.
fn subscriber_rtcp(lsr: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7, 0, 0, 0, 9];
    p.extend(SSRC.to_be_bytes());
    p.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend(lsr.to_be_bytes());
    p.extend(0u32.to_be_bytes());
    // NACK for 65535 and 0 (the stream wrapped past 65535).
    p.extend([0x81, 205, 0, 3, 0, 0, 0, 9]);
    p.extend(SSRC.to_be_bytes());
    p.extend([0xff, 0xff, 0x00, 0x01]);
    p.extend([0x81, 206, 0, 2, 0, 0, 0, 9]);
    p.extend(SSRC.to_be_bytes());
    // Transport-wide feedback: base 0, two packets received 1 ms apart.
    p.extend([0x8f, 205, 0, 5, 0, 0, 0, 9]);
    p.extend(SSRC.to_be_bytes());
    p.extend([0, 0, 0, 2, 0, 0, 1, 0]);
    p.extend((0x2000u16 | 2).to_be_bytes());
    p.extend([4, 4]);
    p
}

#[test]
fn what_the_subscriber_sends_back_becomes_requests() {
    let t0 = Instant::now();
    let keys = keys(Profile::Aes128CmSha1_80);
    let mut e = Egress::new(&keys, 1_000_000, t0).unwrap();
    let s = e.add_stream(spec(true));
    e.queue(outgoing(s, 65_535, &[1u8; 100], t0));
    e.queue(outgoing(s, 65_537, &[1u8; 100], t0));
    flush(&mut e, t0);

    let mut subscriber = keys.peer().sender().unwrap();
    let plain = subscriber_rtcp(0);
    let mut buf = plain.clone();
    buf.resize(plain.len() + srtp::MAX_RTCP_OVERHEAD, 0);
    let n = subscriber.protect_rtcp(&mut buf, plain.len()).unwrap();
    let mut requests = Requests::default();
    e.on_rtcp(&buf[..n], t0, &mut requests).unwrap();
    assert_eq!(
        requests.nacks,
        vec![(Mid::from("3"), 65_535), (Mid::from("3"), 65_536)],
        "NACKed sequence numbers extended past the wrap"
    );
    assert_eq!(requests.keyframes, vec![Mid::from("3")]);

    // The receiver report named the stream: the MID extension is no longer sent.
    e.queue(outgoing(s, 65_538, &[1u8; 100], t0));
    let d = &flush(&mut e, t0)[0];
    assert!(extensions(d).iter().all(|x| x.0 != 1));

    // The same datagram again is a replay; garbage is an error, not a panic.
    assert!(e.on_rtcp(&buf[..n], t0, &mut requests).is_err());
    assert!(e
        .on_rtcp(&[0x80, 200, 0, 1, 0, 0], t0, &mut requests)
        .is_err());
    assert!(e.on_rtcp(&[0xff; 64], t0, &mut requests).is_err());
}

#[test]
fn probes_pad_on_the_repair_stream_when_more_is_wanted() {
    let t0 = Instant::now();
    let keys = keys(Profile::AeadAes256Gcm);
    let mut e = Egress::new(&keys, 500_000, t0).unwrap();
    let s = e.add_stream(spec(true));
    e.queue(outgoing(s, 1, &[1u8; 100], t0));
    flush(&mut e, t0);
    e.set_desired(2_000_000);
    let mut out = Vec::new();
    let mut now = t0;
    for _ in 0..40 {
        let next = e.on_timeout(now, &mut [0; SCRATCH], &mut |d: &[u8]| out.push(d.to_vec()));
        now = next
            .min(now + Duration::from_millis(1))
            .max(now + Duration::from_micros(100));
    }
    let probes: Vec<&Vec<u8>> = out
        .iter()
        .filter(|d| d[1] & 0x7f == 97 && d[0] & 0x20 != 0)
        .collect();
    assert!(
        probes.len() >= 5,
        "a probe cluster went out: {}",
        probes.len()
    );
    let d = probes[0];
    assert_eq!(u32::from_be_bytes([d[8], d[9], d[10], d[11]]), RTX);
    let hl = header_len(d);
    let seq = u16::from_be_bytes([d[2], d[3]]);
    let plain = keys.peer().open_rtp(d, hl, u64::from(seq)).unwrap();
    assert_eq!(plain.len() - hl, 255);
    assert_eq!(
        plain[plain.len() - 1],
        255,
        "the padding says its own length"
    );

    // Audio only: nothing to pad on, no probes.
    let mut e = Egress::new(&keys, 500_000, t0).unwrap();
    let mut audio = spec(true);
    audio.audio = true;
    e.add_stream(audio);
    e.set_desired(2_000_000);
    let mut out = Vec::new();
    e.on_timeout(t0, &mut [0; SCRATCH], &mut |d: &[u8]| out.push(d.to_vec()));
    assert!(out.is_empty());
}

/// What a subscriber sends is untrusted even when it authenticates: it holds the keys.
/// Thousands of random compound packets, some built from valid RTCP headers with random
/// bodies, sealed with the subscriber's keys or not: every one is read or refused, none
/// panics, and the estimate stays a finite number of bits per second.
#[test]
fn random_rtcp_from_the_subscriber_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let t0 = Instant::now();
    let keys = keys(Profile::AeadAes128Gcm);
    let mut e = Egress::new(&keys, 1_000_000, t0).unwrap();
    let s = e.add_stream(spec(true));
    for i in 0..50 {
        e.queue(outgoing(s, i, &[1u8; 100], t0));
    }
    flush(&mut e, t0);
    let mut subscriber = keys.peer().sender().unwrap();
    let mut requests = Requests::default();
    for round in 0..20_000u32 {
        let mut plain = Vec::new();
        for _ in 0..rng.gen_range(1..4) {
            let pt = [200u8, 201, 202, 205, 206, 207][rng.gen_range(0..6)];
            let fmt = [1u8, 4, 15, rng.gen_range(0..32)][rng.gen_range(0..4)];
            let words: u16 = rng.gen_range(1..12);
            plain.extend([0x80 | fmt, pt]);
            plain.extend(words.to_be_bytes());
            let body: Vec<u8> = (0..usize::from(words) * 4).map(|_| rng.gen()).collect();
            plain.extend(body);
            if rng.gen_bool(0.5) {
                // Name our stream, so that the reads go deep.
                let at = plain.len() - usize::from(words) * 4;
                if plain.len() >= at + 8 {
                    plain[at + 4..at + 8].copy_from_slice(&SSRC.to_be_bytes());
                }
            }
        }
        if rng.gen_bool(0.1) {
            // Lengths that lie.
            let n = plain.len();
            plain[2] = rng.gen();
            plain.truncate(rng.gen_range(1..=n));
        }
        let datagram = if rng.gen_bool(0.8) {
            let mut buf = plain.clone();
            buf.resize(plain.len() + srtp::MAX_RTCP_OVERHEAD, 0);
            match subscriber.protect_rtcp(&mut buf, plain.len()) {
                Ok(n) => buf[..n].to_vec(),
                Err(_) => plain,
            }
        } else {
            plain
        };
        requests.clear();
        let now = t0 + Duration::from_millis(u64::from(round));
        let _ = e.on_rtcp(&datagram, now, &mut requests);
        let _ = e.on_timeout(now, &mut [0; SCRATCH], &mut |_: &[u8]| {});
        assert!(e.estimate() > 0, "round {round}");
    }
}

#[test]
fn a_packet_too_large_to_send_leaves_no_gap_in_the_transport_sequence() {
    let now = Instant::now();
    let keys = keys(Profile::AeadAes256Gcm);
    let mut e = Egress::new(&keys, 1_000_000, now).unwrap();
    let s = e.add_stream(spec(true));
    e.queue(outgoing(s, 1, &[1u8; 100], now));
    e.queue(outgoing(s, 2, &[1u8; SCRATCH], now));
    e.queue(outgoing(s, 3, &[1u8; 100], now));
    let sent = flush(&mut e, now);
    assert_eq!(sent.len(), 2, "the oversized packet is not sent");
    let twcc: Vec<Vec<u8>> = sent
        .iter()
        .map(|d| extensions(d).into_iter().find(|x| x.0 == 3).unwrap().1)
        .collect();
    assert_eq!(
        twcc,
        vec![vec![0, 0], vec![0, 1]],
        "transport sequence numbers 0 and 1"
    );
}

#[test]
fn a_mid_the_one_byte_form_cannot_carry_is_left_out() {
    assert_eq!(MidBytes::new("3").unwrap().as_bytes(), b"3");
    let longest = "abcdefghijklmnop";
    assert_eq!(
        MidBytes::new(longest).unwrap().as_bytes(),
        longest.as_bytes()
    );
    assert!(MidBytes::new("").is_none());
    assert!(MidBytes::new("abcdefghijklmnopq").is_none(), "17 bytes");
}

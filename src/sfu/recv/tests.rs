//! [`RecvConn`] against a real answerer: str0m's `Rtc`, as the load generator's and the Rust
//! client's subscribers run it. Datagrams go between the two in memory, with simulated time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::crypto::dtls::DtlsProvider;
use str0m::format::{Codec, PayloadParams};
use str0m::media::Mid;
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::conn::{codecs, parse_stun, ConnError, ConnOutput, LocalCert, RecvConn};
use super::sdp::{parse_answer, Setup};
use crate::model::MediaKind;
use crate::sfu::dtls;

fn server_addr() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

/// A connection offering an audio and a video m-line, and a str0m client that answered.
fn pair(now: Instant) -> (RecvConn, crate::sfu::dtls::KeySlot, Rtc, String, [Mid; 2]) {
    let cert = LocalCert::new(dtls::shared().generate_certificate().unwrap());
    let candidates = vec![Candidate::host(server_addr(), "udp").unwrap()];
    let (mut conn, keys) = RecvConn::new(&cert, &candidates, now).unwrap();
    let audio = conn.add_line(MediaKind::Audio, "peer-a", "prod-a");
    let video = conn.add_line(MediaKind::Video, "peer-a", "prod-v");
    let offer = conn.offer();
    let mut client = Rtc::builder().build(now);
    client.add_local_candidate(Candidate::host(client_addr(), "udp").unwrap());
    let offer = SdpOffer::from_sdp_string(&offer).unwrap();
    let answer = client.sdp_api().accept_offer(offer).unwrap();
    (conn, keys, client, answer.to_sdp_string(), [audio, video])
}

/// Runs both ends for up to two simulated seconds: each is given time only when the
/// deadline it asked for comes (as the worker does), datagrams arrive at once. Whether each
/// saw its connection up.
fn run(conn: &mut RecvConn, client: &mut Rtc, start: Instant) -> (bool, bool) {
    run_timed(conn, client, start).0
}

/// [`run`], and the simulated time it took.
fn run_timed(conn: &mut RecvConn, client: &mut Rtc, start: Instant) -> ((bool, bool), Duration) {
    let (mut conn_up, mut client_up) = (false, false);
    let (mut now, mut conn_at, mut client_at) = (start, start, start);
    while now < start + Duration::from_secs(2) {
        if client_at <= now {
            client.handle_input(Input::Timeout(now)).unwrap();
        }
        if conn_at <= now {
            let _ = conn.handle_timeout(now);
        }
        loop {
            let mut moved = false;
            loop {
                match client.poll_output().unwrap() {
                    Output::Transmit(tx) => {
                        moved = true;
                        to_conn(conn, now, tx.source, tx.destination, &tx.contents);
                    }
                    Output::Event(Event::Connected) => client_up = true,
                    Output::Event(_) => {}
                    Output::Timeout(at) => {
                        client_at = at;
                        break;
                    }
                }
            }
            loop {
                match conn.poll_output() {
                    ConnOutput::Transmit(tx) => {
                        moved = true;
                        let input = Input::Receive(
                            now,
                            Receive {
                                proto: Protocol::Udp,
                                source: tx.source,
                                destination: tx.destination,
                                contents: DatagramRecv::try_from(&tx.contents[..]).unwrap(),
                            },
                        );
                        if client.accepts(&input) {
                            client.handle_input(input).unwrap();
                        }
                    }
                    ConnOutput::Connected => conn_up = true,
                    ConnOutput::Ice(_) => {}
                    ConnOutput::Timeout(at) => {
                        conn_at = at;
                        break;
                    }
                }
            }
            if !moved {
                break;
            }
        }
        if conn_up && client_up {
            break;
        }
        now = conn_at.min(client_at).max(now + Duration::from_millis(1));
    }
    ((conn_up, client_up), now - start)
}

/// A datagram from the client, routed as the worker routes it.
fn to_conn(
    conn: &mut RecvConn,
    now: Instant,
    source: SocketAddr,
    destination: SocketAddr,
    data: &[u8],
) {
    let stun = parse_stun(data);
    if conn.accepts(source, stun.as_ref()) {
        let _ = conn.handle_datagram(now, Protocol::Udp, source, destination, data, stun);
    }
}

/// Our payload parameters of `codec`.
fn ours(codec: Codec) -> PayloadParams {
    *codecs()
        .params()
        .iter()
        .find(|p| p.spec().codec == codec)
        .unwrap()
}

#[test]
fn a_str0m_answerer_connects_and_the_keys_and_streams_are_ready() {
    let now = Instant::now();
    let (mut conn, keys, mut client, answer, [audio, video]) = pair(now);
    let parsed = parse_answer(&answer).unwrap();
    // str0m answers passive: the server starts the handshake.
    assert_eq!(parsed.setup, Setup::Passive);
    conn.accept_answer(parsed, now).unwrap();
    let (up, took) = run_timed(&mut conn, &mut client, now);
    assert_eq!(up, (true, true));
    // The egress sends media where ICE nominated: the client's candidate.
    assert_eq!(conn.destination(), Some((Protocol::Udp, client_addr())));
    // A few round trips of simulated time, not a DTLS retransmission timeout (1 s): the
    // server wrote its ClientHello as soon as ICE let it.
    assert!(
        took < Duration::from_millis(200),
        "connected after {took:?}"
    );
    assert!(keys.keys().is_some_and(|k| k.is_ok()), "SRTP keys exported");
    assert!(conn.is_alive());

    let vp8 = ours(Codec::Vp8);
    let (spec, pt) = conn.stream_spec(video, vp8).expect("VP8 negotiated");
    assert_eq!(pt, vp8.pt());
    assert!(!spec.audio);
    let (rtx_ssrc, rtx_pt) = spec.rtx.expect("RTX negotiated");
    assert_ne!(rtx_ssrc, spec.ssrc);
    assert_eq!(Some(rtx_pt), vp8.resend().map(|p| *p));
    assert!(spec.exts.mid.is_some() && spec.exts.transport_cc.is_some());

    let opus = ours(Codec::Opus);
    let (spec, _) = conn.stream_spec(audio, opus).expect("Opus negotiated");
    assert!(spec.audio && spec.rtx.is_none());
    // No video codec on an audio m-line.
    assert!(conn.stream_spec(audio, vp8).is_none());

    // The client saw our SSRCs in the offer: its receive streams are declared.
    let mut api = client.direct_api();
    assert!(api.stream_rx(&spec.ssrc.into()).is_some());
}

#[test]
fn a_certificate_that_does_not_match_the_answer_stops_the_connection() {
    let now = Instant::now();
    let (mut conn, _keys, mut client, answer, _) = pair(now);
    // Another certificate's fingerprint in the answer.
    let other = dtls::shared().generate_certificate().unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &other.certificate);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let forged: String = answer
        .lines()
        .map(|l| {
            if l.starts_with("a=fingerprint:") {
                format!("a=fingerprint:sha-256 {}", hex.join(":"))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n";
    conn.accept_answer(parse_answer(&forged).unwrap(), now)
        .unwrap();
    let (conn_up, _) = run(&mut conn, &mut client, now);
    assert!(!conn_up);
    assert!(!conn.is_alive());
}

#[test]
fn an_answer_missing_an_offered_m_line_is_refused() {
    let now = Instant::now();
    let (mut conn, _keys, _client, answer, [_, video]) = pair(now);
    // Cut the answer before its second m-line.
    let cut = answer.find("m=video").unwrap();
    let err = conn
        .accept_answer(parse_answer(&answer[..cut]).unwrap(), now)
        .unwrap_err();
    assert_eq!(err, ConnError::MissingMid(video.to_string()));
    // The full answer is still welcome afterwards.
    conn.accept_answer(parse_answer(&answer).unwrap(), now)
        .unwrap();
}

#[test]
fn stun_and_dtls_from_strangers_are_not_accepted() {
    let now = Instant::now();
    let (conn, ..) = pair(now);
    let stranger: SocketAddr = "127.0.0.9:1234".parse().unwrap();
    // A binding request header with a username for some other ufrag.
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"abcd:efg");
    let parsed = parse_stun(&stun);
    assert!(parsed.is_none() || !conn.accepts(stranger, parsed.as_ref()));
    // Not STUN (DTLS, or nothing) from an address ICE never checked.
    assert!(!conn.accepts(stranger, None));
}

#[test]
fn inactive_lines_stay_in_later_offers() {
    let now = Instant::now();
    let (mut conn, _keys, _client, answer, [audio, video]) = pair(now);
    conn.accept_answer(parse_answer(&answer).unwrap(), now)
        .unwrap();
    conn.set_inactive(audio);
    let offer = conn.offer();
    let sections: Vec<&str> = offer.split("m=").skip(1).collect();
    assert_eq!(sections.len(), 2);
    assert!(sections[0].contains(&format!("a=mid:{audio}")));
    assert!(sections[0].contains("a=inactive"));
    assert!(sections[1].contains(&format!("a=mid:{video}")));
    assert!(sections[1].contains("a=sendonly"));
}

#[test]
fn a_later_answer_must_keep_the_first_ones_credentials_and_fingerprint() {
    let now = Instant::now();
    let (mut conn, _keys, _client, answer, _) = pair(now);
    let first = parse_answer(&answer).unwrap();
    conn.accept_answer(first.clone(), now).unwrap();
    // The same answer again (a renegotiation that changed nothing) is fine.
    conn.accept_answer(first.clone(), now).unwrap();
    let mut other_ufrag = first.clone();
    other_ufrag.ufrag.push('x');
    assert_eq!(
        conn.accept_answer(other_ufrag, now),
        Err(ConnError::AnswerChanged("ICE credentials"))
    );
    let mut other_cert = first.clone();
    other_cert.fingerprint.1[0] ^= 1;
    assert_eq!(
        conn.accept_answer(other_cert, now),
        Err(ConnError::AnswerChanged("DTLS fingerprint"))
    );
    // Lines nobody offered.
    let mut more = first;
    let extra = more.media[0].clone();
    more.media.push(extra);
    assert_eq!(
        conn.accept_answer(more, now),
        Err(ConnError::TooManyLines {
            answered: 3,
            offered: 2
        })
    );
}

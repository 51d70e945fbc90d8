//! Hostile datagrams on the media port: garbage, truncated and malformed STUN, DTLS, RTP and
//! RTCP, oversized datagrams, from addresses the server does not know and from a
//! participant's own address (which the server routes to that participant's transport),
//! plus replays of that participant's last real datagrams. The server must not panic, and
//! the media of the participant whose address was used, and of another room, must go on.
//! The real server in-process (one media worker, so every datagram reaches the one loop that
//! carries both rooms), the Rust client over the real protocol.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use multiparty_meeting::client::{Client, Kind, PublishSpec};
use multiparty_meeting::{server, Config};

const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
/// Video frames a subscriber must receive after the attack: about 2 s of the test camera,
/// enough to show the stream continues rather than a few frames queued before.
const FRAMES_AFTER: u64 = 40;

/// A small deterministic generator (xorshift64*): the same hostile datagrams on every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Random bytes, fewer than `max`.
    fn some(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max.max(1));
        self.bytes(n)
    }

    /// One hostile datagram; `i` picks its kind so that every kind appears.
    fn datagram(&mut self, i: usize) -> Vec<u8> {
        match i % 9 {
            // Plain garbage of any size, including empty and one byte.
            0 => {
                let n = self.below(1500);
                self.bytes(n)
            }
            1 => self.bytes(i % 2),
            // STUN binding request headers with lying lengths and garbage attributes
            // (USERNAME, MESSAGE-INTEGRITY, FINGERPRINT types with random contents).
            2 => {
                let body = self.below(120);
                let mut d = vec![0x00, 0x01];
                d.extend_from_slice(&((self.below(600)) as u16).to_be_bytes());
                d.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
                d.extend(self.bytes(12));
                for attr in [0x0006u16, 0x0008, 0x8028, 0x0024, 0xc057] {
                    d.extend_from_slice(&attr.to_be_bytes());
                    d.extend_from_slice(&((self.below(300)) as u16).to_be_bytes());
                    d.extend(self.some(body + 1));
                }
                d
            }
            // STUN truncated inside its header.
            3 => {
                let mut d = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
                d.truncate(1 + self.below(8));
                d
            }
            // DTLS records: handshake, change cipher spec, alert, application data, with
            // record and fragment lengths that do not match the datagram.
            4 => {
                let content = [20u8, 21, 22, 23][self.below(4)];
                let mut d = vec![content, 0xfe, [0xfd, 0xff][self.below(2)]];
                d.extend(self.bytes(8)); // epoch + sequence number
                d.extend_from_slice(&((self.below(20_000)) as u16).to_be_bytes());
                d.push(1); // ClientHello
                d.extend(self.some(400));
                d
            }
            // RTP with our payload types, random SSRCs and sequence numbers.
            5 => {
                let mut d = vec![
                    0x80 | (self.below(16) as u8),
                    [96u8, 111, 97, 0xe0][self.below(4)],
                ];
                d.extend(self.bytes(10));
                d.extend(self.some(1200));
                d
            }
            // RTCP (SR, RR, SDES, BYE, RTPFB, PSFB, XR) with lying length fields.
            6 => {
                let pt = [200u8, 201, 202, 203, 205, 206, 207][self.below(7)];
                let mut d = vec![0x80 | (self.below(32) as u8), pt];
                d.extend_from_slice(&((self.below(500)) as u16).to_be_bytes());
                d.extend(self.some(200));
                d
            }
            // RTP/RTCP truncated inside the fixed header, and a header with CSRCs and an
            // extension claimed but absent.
            7 => {
                let mut d = vec![0x9f, 96];
                d.extend(self.some(12));
                d
            }
            // Oversized: jumbo and the largest UDP datagram.
            _ => {
                let n = [9000, 65_507][i % 2];
                let mut d = self.bytes(n);
                d[0] = [0x00, 0x16, 0x80][self.below(3)];
                d
            }
        }
    }
}

fn webcam_frames(at: &Client, from: &str) -> u64 {
    at.received()
        .iter()
        .filter(|c| c.peer_id == from && c.kind == Kind::Video)
        .map(|c| c.frames)
        .sum()
}

/// A publisher and a subscriber in `room`; returns them once video flows.
async fn meeting(base: &str, room: &str) -> (Client, Client) {
    let mut publisher = Client::connect(base, room, "Pub").await.expect("Pub joins");
    publisher
        .publish(PublishSpec::default())
        .await
        .expect("Pub publishes camera and microphone");
    let subscriber = Client::connect(base, room, "Sub").await.expect("Sub joins");
    let from = publisher.peer_id().to_string();
    subscriber
        .wait_for(MEDIA_TIMEOUT, "Pub's video before the attack", |s| {
            s.iter()
                .any(|c| c.peer_id == from && c.kind == Kind::Video && c.frames > 10)
        })
        .await
        .expect("video flows before the attack");
    (publisher, subscriber)
}

#[actix_rt::test]
async fn hostile_datagrams_neither_crash_the_server_nor_stop_anyones_media() {
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let media: Vec<SocketAddr> = srv.media_addrs.clone();
    let (victim, victim_sub) = meeting(&base, "attacked").await;
    let (other, other_sub) = meeting(&base, "bystander").await;
    let mut noise = Noise(0x5eed_1234_abcd_ef01);

    // From addresses the server does not know: 8 sockets, 4,000 datagrams in all.
    let strangers: Vec<UdpSocket> = (0..8)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind a stranger socket"))
        .collect();
    let mut sent = 0usize;
    for i in 0..4000 {
        let d = noise.datagram(i);
        for to in &media {
            if strangers[i % strangers.len()].send_to(&d, to).is_ok() {
                sent += 1;
            }
        }
        if i % 200 == 199 {
            // Paced a little so the socket buffer of the server is not the thing tested.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(sent > 3000, "only {sent} stranger datagrams went out");

    // From the victim's own address, which the server routes to its transport: garbage of
    // every kind, then its own last 32 real datagrams replayed, ten times over.
    for round in 0..10 {
        let batch: Vec<Vec<u8>> = (0..100).map(|i| noise.datagram(round * 100 + i)).collect();
        let n = victim
            .inject_datagrams(batch, true)
            .await
            .expect("inject from the victim's socket");
        assert!(n >= 100, "round {round}: only {n} datagrams sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The server still answers, and both meetings still carry video: the attacked one and
    // the one that only shares the media worker.
    let health = reqwest_health(&base).await;
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    for (sub, publisher, what) in [
        (&victim_sub, &victim, "the attacked participant's video"),
        (&other_sub, &other, "the other room's video"),
    ] {
        let from = publisher.peer_id().to_string();
        let before = webcam_frames(sub, &from);
        sub.wait_for(MEDIA_TIMEOUT, what, |s| {
            s.iter()
                .filter(|c| c.peer_id == from && c.kind == Kind::Video)
                .map(|c| c.frames)
                .sum::<u64>()
                > before + FRAMES_AFTER
        })
        .await
        .unwrap_or_else(|e| panic!("{what} stopped after the hostile datagrams: {e}"));
    }
    srv.stop().await;
}

/// GET /health with a plain HTTP/1.1 request over TCP (no HTTP client crate needed).
async fn reqwest_health(base: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the HTTP listener still accepts");
    s.write_all(
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

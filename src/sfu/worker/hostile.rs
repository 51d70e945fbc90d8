//! Hostile datagrams against a worker's routing, without its thread or the network: the
//! cargo-fuzz target `route_datagram` and the stable property test `tests/fuzz_datagrams.rs`
//! feed a real [`Worker`] (with the transports the worker makes for peers) datagrams that a
//! fuzz input describes, through the same `on_packet` and `poll` the socket loop calls, and
//! check its promises after each one. What the worker would send is discarded.
//!
//! A fuzz input is a sequence of records. The first byte of each says who sends what:
//! - bits 0-2: the source, one of eight loopback addresses (`127.0.0.10:5000` and up);
//! - bit 3: over ICE-TCP instead of UDP;
//! - bits 4-5: the kind: `0` the next bytes as they are (a big-endian `u16` length, then the
//!   datagram), `1` a STUN binding request correctly signed for the transport named by bit 6
//!   (what only its real peer can send; the next byte is the length of the remote ufrag that
//!   follows), `2` a replay of an earlier datagram of this input (the next byte picks it),
//!   `3` a truncated replay (two bytes: which one, where it is cut).
//!
//! The promises: no panic; a datagram that no transport accepts changes no route and reaches
//! no transport; a route always leads to a live transport that accepted a datagram from that
//! source; a transport that no datagram reached is still alive at the end.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::Input;

use super::{Conn, Direction, TKey, Worker};
use crate::ids::PeerId;
use crate::sfu::recv::conn::parse_stun;

/// Largest datagram a record may carry (a little above an Ethernet MTU, as an attacker may).
const MAX_DATAGRAM: usize = 2048;

/// One worker with a peer's send transport and another's recv transport, fed hostile
/// datagrams.
pub struct Harness {
    worker: Worker,
    /// The transports, and the ICE ufrag and password of each.
    transports: Vec<(TKey, String, String)>,
    /// Every datagram fed so far, for replays.
    sent: Vec<Vec<u8>>,
    /// Transports that accepted at least one datagram.
    reached: HashSet<TKey>,
    /// Sources each transport accepted a datagram from.
    accepted_from: HashMap<TKey, HashSet<SocketAddr>>,
}

impl Harness {
    /// A worker on a loopback socket (never written to: output is discarded) with two
    /// peers' transports made as for a real join.
    pub fn new() -> std::io::Result<Self> {
        let mut worker = Worker::on_loopback()?;
        let mut transports = Vec::new();
        // A publisher's connection (str0m's) and a subscriber's (the worker's own).
        for (n, direction) in [(0, Direction::Send), (1, Direction::Recv)] {
            let peer = PeerId::from_raw(format!("p-fuzz{n}"));
            let key = worker.add_transport(&peer, direction);
            // Invariant: add_transport just inserted `key`.
            let t = worker
                .transports
                .get_mut(&key)
                .expect("transport just added");
            let creds = match &mut t.conn {
                Conn::Send(rtc) => rtc.direct_api().local_ice_credentials(),
                Conn::Recv(c) => c.local_ice_credentials().clone(),
                Conn::Broken => return Err(std::io::Error::other("no recv connection")),
            };
            transports.push((key, creds.ufrag, creds.pass));
        }
        Ok(Self {
            worker,
            transports,
            sent: Vec::new(),
            reached: HashSet::new(),
            accepted_from: HashMap::new(),
        })
    }

    /// Feeds every record of `input`, checking the promises after each; panics (the fuzzer's
    /// finding) when one is broken.
    pub fn feed(&mut self, input: &[u8]) {
        let mut rest = input;
        while let Some((&head, tail)) = rest.split_first() {
            rest = tail;
            let source = SocketAddr::from((
                Ipv4Addr::new(127, 0, 0, 10 + (head & 7)),
                5000 + u16::from(head & 7),
            ));
            let proto = if head & 8 != 0 {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            let datagram = match (head >> 4) & 3 {
                0 => {
                    let len = match rest {
                        [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
                        _ => 0,
                    };
                    rest = rest.get(2..).unwrap_or_default();
                    let len = len.min(rest.len()).min(MAX_DATAGRAM);
                    let (d, r) = rest.split_at(len);
                    rest = r;
                    d.to_vec()
                }
                1 => {
                    let (_, ufrag, pass) = &self.transports[usize::from((head >> 6) & 1)];
                    let len = rest.first().map_or(0, |n| usize::from(n % 32));
                    rest = rest.get(1..).unwrap_or_default();
                    let len = len.min(rest.len());
                    let (remote, r) = rest.split_at(len);
                    rest = r;
                    let remote: String = remote.iter().map(|b| char::from(b'a' + b % 26)).collect();
                    let txid = (self.sent.len() as u64).to_be_bytes();
                    binding_request(ufrag, &remote, pass, &txid)
                }
                kind => {
                    let pick = rest.first().copied().unwrap_or(0);
                    let cut = rest.get(1).copied();
                    rest = rest
                        .get(if kind == 3 { 2 } else { 1 }..)
                        .unwrap_or_default();
                    if self.sent.is_empty() {
                        continue;
                    }
                    let mut d = self.sent[usize::from(pick) % self.sent.len()].clone();
                    if let (3, Some(cut)) = (kind, cut) {
                        d.truncate(usize::from(cut) % (d.len() + 1));
                    }
                    d
                }
            };
            self.one(proto, source, &datagram);
            self.sent.push(datagram);
        }
        for (key, ..) in &self.transports {
            if !self.reached.contains(key) {
                let t = &self.worker.transports[key];
                assert!(
                    !t.dead && t.conn.is_alive(),
                    "transport {key} was closed though no datagram reached it"
                );
            }
        }
    }

    /// Routes the worker holds now (one per source a transport accepted).
    pub fn routes(&self) -> usize {
        self.worker.routes.len()
    }

    /// One datagram through the worker's own routing and polling.
    fn one(&mut self, proto: Protocol, source: SocketAddr, data: &[u8]) {
        let routes_before = self.worker.routes.clone();
        let stun = parse_stun(data);
        let accepting: Vec<TKey> = match DatagramRecv::try_from(data) {
            Ok(contents) => {
                let input = Input::Receive(
                    std::time::Instant::now(),
                    Receive {
                        proto,
                        source,
                        destination: self.worker.candidate_addr,
                        contents,
                    },
                );
                self.worker
                    .transports
                    .iter()
                    .filter(|(_, t)| !t.dead && t.conn.accepts(&input, source, stun.as_ref()))
                    .map(|(k, _)| *k)
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        self.worker.on_packet(proto, source, data);
        while let Some(key) = self.worker.dirty.pop() {
            if let Some(t) = self.worker.transports.get_mut(&key) {
                t.dirty = false;
            }
            self.worker.poll(key);
        }
        self.worker.out.clear();

        if accepting.is_empty() {
            assert_eq!(
                self.worker.routes, routes_before,
                "a datagram no transport accepts changed the routes: {data:02x?}"
            );
        } else {
            let to = self.worker.routes.get(&source).copied();
            assert!(
                to.is_some_and(|k| accepting.contains(&k)),
                "an accepted datagram from {source} was routed to {to:?}, not to one of {accepting:?}"
            );
            for k in &accepting {
                self.reached.insert(*k);
            }
            if let Some(k) = to {
                self.accepted_from.entry(k).or_default().insert(source);
            }
        }
        for (source, key) in &self.worker.routes {
            let t = self.worker.transports.get(key);
            assert!(
                t.is_some_and(|t| !t.dead),
                "the route of {source} leads to transport {key}, which is gone or closed"
            );
            assert!(
                self.accepted_from
                    .get(key)
                    .is_some_and(|s| s.contains(source)),
                "a route from {source} to transport {key} that accepted nothing from there"
            );
        }
    }
}

/// Checks the promises for one fuzz input, on a fresh worker.
pub fn check(input: &[u8]) {
    // Invariant: binding a loopback UDP socket only fails when the machine is out of them.
    let mut harness = Harness::new().expect("a loopback UDP socket for the harness");
    harness.feed(input);
}

/// A STUN binding request from the peer that knows `pass`, as a browser sends it (RFC 8445
/// section 7.1.2: USERNAME, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY, FINGERPRINT).
pub fn binding_request(
    local_ufrag: &str,
    remote_ufrag: &str,
    pass: &str,
    txid: &[u8; 8],
) -> Vec<u8> {
    fn attribute(msg: &mut Vec<u8>, kind: u16, value: &[u8]) {
        msg.extend_from_slice(&kind.to_be_bytes());
        msg.extend_from_slice(&(value.len() as u16).to_be_bytes());
        msg.extend_from_slice(value);
        while !msg.len().is_multiple_of(4) {
            msg.push(0);
        }
    }
    fn set_length(msg: &mut [u8], extra: usize) {
        let len = (msg.len() - 20 + extra) as u16;
        msg[2..4].copy_from_slice(&len.to_be_bytes());
    }
    let mut msg = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    msg.extend_from_slice(&[0xfa, 0xce, 0xb0, 0x0c]);
    msg.extend_from_slice(txid);
    attribute(
        &mut msg,
        0x0006,
        format!("{local_ufrag}:{remote_ufrag}").as_bytes(),
    );
    attribute(&mut msg, 0x0024, &0x6e7f_00ffu32.to_be_bytes());
    attribute(&mut msg, 0x802a, &0x0102_0304_0506_0708u64.to_be_bytes());
    // MESSAGE-INTEGRITY covers the message with its length already counting the attribute.
    set_length(&mut msg, 24);
    // Invariant: HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(pass.as_bytes()).expect("HMAC takes any key");
    mac.update(&msg);
    attribute(&mut msg, 0x0008, &mac.finalize().into_bytes());
    set_length(&mut msg, 8);
    let fingerprint = crc32(&msg) ^ 0x5354_554e;
    attribute(&mut msg, 0x8028, &fingerprint.to_be_bytes());
    msg
}

/// CRC-32 (ISO-HDLC), as STUN's FINGERPRINT uses it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn a_signed_binding_request_reaches_its_transport_and_makes_a_route() {
        let mut h = Harness::new().unwrap();
        // Source 2 sends a binding request signed for transport 1 (remote ufrag "abcd").
        h.feed(&[0b0101_0010, 4, 0, 1, 2, 3]);
        let key = h.transports[1].0;
        let source = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 12), 5002));
        assert_eq!(
            h.worker.routes.get(&source),
            Some(&key),
            "routes: {:?}",
            h.worker.routes
        );
        assert!(h.reached.contains(&key));
    }

    #[test]
    fn garbage_from_strangers_changes_nothing() {
        let mut h = Harness::new().unwrap();
        // Raw datagrams: STUN-looking with a wrong signature, DTLS-, RTP- and RTCP-looking.
        let mut input = Vec::new();
        for (i, d) in [
            &[
                0x00u8, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                11, 12,
            ][..],
            &[0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
            &[0x80, 0x60, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 9, 9],
            &[0x80, 0xc8, 0, 6, 0xde, 0xad, 0xbe, 0xef],
        ]
        .iter()
        .enumerate()
        {
            input.push(i as u8);
            input.extend_from_slice(&(d.len() as u16).to_be_bytes());
            input.extend_from_slice(d);
        }
        h.feed(&input);
        assert!(h.worker.routes.is_empty());
        assert!(h.reached.is_empty());
    }
}

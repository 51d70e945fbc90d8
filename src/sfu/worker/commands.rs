//! What the control plane asks of the worker ([`WorkerCommand`]): rooms, peers and their
//! transports, producers, consumers, pauses, keyframe requests and statistics.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaKind as SdpKind, Mid};
use str0m::net::TcpType;
use str0m::{Candidate, Rtc};
use tracing::{debug, warn};

use super::{Conn, Consumer, PeerMedia, Producer, RoomMedia, TKey, Transport, Worker};
use crate::ids::{ConsumerId, PeerId, ProducerId};
use crate::model::{Direction, MediaKind};
use crate::sfu::keyframes::KeyframeGate;
use crate::sfu::messages::{MediaError, NewProducer, WorkerCommand};
use crate::sfu::recv::conn::RecvConn;
use crate::sfu::recv::sdp;
use crate::sfu::rewrite::Rewriter;
use crate::sfu::speaker::SpeakerDetector;

/// How often str0m reports a send transport's stream statistics (the NACKs sent to
/// publishers, [`WorkerStats`]).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

impl Worker {
    pub(super) fn on_command(&mut self, cmd: WorkerCommand) {
        match cmd {
            WorkerCommand::AddRoom { room, events } => {
                self.rooms.insert(
                    room,
                    RoomMedia {
                        events,
                        speaker: SpeakerDetector::default(),
                    },
                );
            }
            WorkerCommand::RemoveRoom { room } => {
                let peers: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.room == room)
                    .map(|(id, _)| id.clone())
                    .collect();
                for p in peers {
                    self.remove_peer(&p);
                }
                self.rooms.remove(&room);
            }
            WorkerCommand::AddPeer { room, peer, events } => {
                if self.peers.contains_key(&peer) {
                    return;
                }
                let recv = self.add_transport(&peer, Direction::Recv);
                self.peers.insert(
                    peer,
                    PeerMedia {
                        room,
                        send: None,
                        recv,
                        events,
                    },
                );
            }
            WorkerCommand::RemovePeer { peer } => self.remove_peer(&peer),
            WorkerCommand::Publish {
                peer,
                offer,
                producers,
                reply,
            } => {
                let _ = reply.send(self.publish(&peer, &offer, producers));
            }
            WorkerCommand::RecvAnswer {
                peer,
                answer,
                reply,
            } => {
                let _ = reply.send(self.recv_answer(&peer, &answer));
            }
            WorkerCommand::AddConsumer {
                peer,
                consumer,
                producer,
            } => self.add_consumer(&peer, consumer, producer),
            WorkerCommand::CloseProducer { producer } => self.close_producer(&producer),
            WorkerCommand::SetProducerPaused { producer, paused } => {
                if let Some(p) = self.producers.get_mut(&producer) {
                    p.paused = paused;
                    let rids: Vec<String> = p.layers.iter().map(|l| l.rid.clone()).collect();
                    if !paused {
                        p.keyframes.reset();
                        for rid in rids {
                            self.request_keyframe(&producer, Some(rid), KeyframeRequestKind::Pli);
                        }
                    }
                }
            }
            WorkerCommand::SetConsumerPreferences {
                peer,
                consumer,
                height,
                reply,
                ..
            } => {
                let result = match self.own_consumer(&peer, &consumer) {
                    Ok(key) => {
                        if let Some(c) = self.consumers.get_mut(&consumer) {
                            c.display_height = Some(height);
                        }
                        self.select_layers(key);
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            WorkerCommand::RequestKeyFrame {
                peer,
                consumer,
                reply,
            } => {
                let result = self.own_consumer(&peer, &consumer).map(|_| {
                    if let Some(c) = self.consumers.get(&consumer) {
                        let (pid, layer) = (c.producer.clone(), c.current.clone());
                        self.request_keyframe(&pid, layer, KeyframeRequestKind::Pli);
                    }
                });
                let _ = reply.send(result);
            }
            WorkerCommand::Stats { reply } => {
                let mut s = self.stats;
                s.rooms = self.rooms.len();
                s.transports = self.transports.values().filter(|t| !t.dead).count();
                s.producers = self.producers.len();
                s.consumers = self.consumers.len();
                let _ = reply.send(Ok(s));
            }
        }
    }

    pub(super) fn add_transport(&mut self, peer: &PeerId, direction: Direction) -> TKey {
        let now = Instant::now();
        let tcp = Candidate::builder()
            .tcp()
            .host(self.candidate_addr)
            .tcptype(TcpType::Passive)
            .build();
        let mut candidates = Vec::new();
        for candidate in [Candidate::host(self.candidate_addr, "udp"), tcp] {
            match candidate {
                Ok(c) => candidates.push(c),
                Err(e) => warn!("cannot make a candidate for {}: {e}", self.candidate_addr),
            }
        }
        let (conn, keys) = match direction {
            Direction::Send => (Conn::Send(Box::new(self.send_rtc(candidates, now))), None),
            Direction::Recv => match self
                .dtls_cert
                .as_ref()
                .map(|cert| RecvConn::new(cert, &candidates, now))
            {
                Some(Ok((c, keys))) => (Conn::Recv(Box::new(c)), Some(keys)),
                Some(Err(e)) => {
                    warn!(%peer, "cannot make a recv connection: {e}");
                    (Conn::Broken, None)
                }
                None => {
                    warn!(%peer, "cannot make a recv connection: no DTLS certificate");
                    (Conn::Broken, None)
                }
            },
        };
        let key = self.next_key;
        self.next_key += 1;
        self.timers.schedule(key, now);
        if direction == Direction::Recv {
            self.layer_timers
                .schedule(key, now + super::layers::phase(key, super::LAYER_INTERVAL));
        }
        self.next_wakeup = self.next_wakeup.min(now);
        self.transports.insert(
            key,
            Box::new(Transport {
                peer: peer.clone(),
                direction,
                conn,
                next_timeout: now,
                dirty: false,
                dead: false,
                producers_by_mid: HashMap::new(),
                rx_streams: HashMap::new(),
                consumers_by_mid: HashMap::new(),
                pending_add: Vec::new(),
                pending_inactive: Vec::new(),
                in_flight: None,
                keys,
                egress: None,
                egress_dirty: false,
                remotes: HashSet::new(),
                nacks_reported: HashMap::new(),
            }),
        );
        key
    }

    /// A publisher's connection: str0m receives its media (in RTP mode) and runs its ICE,
    /// DTLS and SDP.
    fn send_rtc(&self, candidates: Vec<Candidate>, now: Instant) -> Rtc {
        let mut builder = Rtc::builder()
            .set_ice_lite(true)
            // Forward RTP packets as they come, not frames: no depacketizing and packetizing
            // again per subscriber (`worker::forward`).
            .set_rtp_mode(true)
            // One DTLS configuration for all transports: building one costs more than the
            // handshake (`sfu::dtls`).
            .set_crypto_provider(crate::sfu::dtls::crypto_provider())
            // The NACKs sent to the publisher ([`WorkerStats::nacks_sent`]).
            .set_stats_interval(Some(STATS_INTERVAL));
        // The codecs subscribers are offered: what a publisher sends, they can receive.
        *builder.codec_config() = crate::sfu::recv::conn::codecs().clone();
        if let Some(local) = &self.dtls_cert {
            builder = builder.set_dtls_cert(local.cert.clone());
        }
        // No bandwidth estimation in str0m: a send transport only receives.
        let mut rtc = builder.build(now);
        for c in candidates {
            rtc.add_local_candidate(c);
        }
        rtc
    }

    pub(super) fn remove_peer(&mut self, peer: &PeerId) {
        let Some(pm) = self.peers.remove(peer) else {
            return;
        };
        let own: Vec<ProducerId> = self
            .producers
            .values()
            .filter(|p| &p.peer == peer)
            .map(|p| p.id.clone())
            .collect();
        for pid in own {
            self.close_producer(&pid);
        }
        let theirs: Vec<ConsumerId> = self
            .consumers
            .values()
            .filter(|c| c.transport == pm.recv)
            .map(|c| c.id.clone())
            .collect();
        for cid in theirs {
            self.close_consumer(&cid);
        }
        for key in pm.send.into_iter().chain([pm.recv]) {
            self.timers.remove(key);
            self.egress_timers.remove(key);
            self.layer_timers.remove(key);
            if let Some(mut t) = self.transports.remove(&key) {
                for r in t.remotes.drain() {
                    self.routes.remove(&r);
                }
                t.conn.disconnect();
            }
        }
        if let Some(room) = self.rooms.get_mut(&pm.room) {
            room.speaker.remove(peer);
        }
        debug!(worker = self.index, %peer, "peer media removed");
    }

    pub(super) fn publish(
        &mut self,
        peer: &PeerId,
        offer: &str,
        producers: Vec<NewProducer>,
    ) -> Result<String, MediaError> {
        let pm = self
            .peers
            .get(peer)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        let (send, room) = (pm.send, pm.room.clone());
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let key = match send {
            Some(key) => key,
            None => {
                let key = self.add_transport(peer, Direction::Send);
                if let Some(pm) = self.peers.get_mut(peer) {
                    pm.send = Some(key);
                }
                key
            }
        };
        let t = self
            .transports
            .get_mut(&key)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        for p in &producers {
            if t.producers_by_mid.contains_key(&Mid::from(p.mid.as_str())) {
                return Err(MediaError::BadTrack(format!(
                    "mid '{}' already carries a producer; close it first",
                    p.mid
                )));
            }
        }
        let rtc = t
            .conn
            .rtc()
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let mut problems = Vec::new();
        for p in producers {
            let mid = Mid::from(p.mid.as_str());
            let kind_ok = match rtc.media(mid) {
                None => {
                    problems.push(format!("the offer has no m-line with mid '{}'", p.mid));
                    continue;
                }
                Some(m) => matches!(
                    (m.kind(), p.kind),
                    (SdpKind::Audio, MediaKind::Audio) | (SdpKind::Video, MediaKind::Video)
                ),
            };
            if !kind_ok || p.source.kind() != p.kind {
                problems.push(format!(
                    "mid '{}' is not a {:?} {:?} track",
                    p.mid, p.source, p.kind
                ));
                continue;
            }
            t.producers_by_mid.insert(mid, p.id.clone());
            self.producers.insert(
                p.id.clone(),
                Producer {
                    id: p.id,
                    peer: peer.clone(),
                    room: room.clone(),
                    transport: key,
                    mid,
                    kind: p.kind,
                    source: p.source,
                    paused: false,
                    consumers: Vec::new(),
                    layers: Vec::new(),
                    keyframes: KeyframeGate::default(),
                    history: Vec::new(),
                },
            );
        }
        self.mark_dirty(key);
        if problems.is_empty() {
            Ok(answer.to_sdp_string())
        } else {
            Err(MediaError::BadTrack(problems.join("; ")))
        }
    }

    pub(super) fn recv_answer(&mut self, peer: &PeerId, answer: &str) -> Result<(), MediaError> {
        let key = self
            .peers
            .get(peer)
            .map(|p| p.recv)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        let answer =
            sdp::parse_answer(answer).map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let t = self
            .transports
            .get_mut(&key)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        if t.in_flight.is_none() {
            return Err(MediaError::NoPendingOffer);
        }
        let conn = t
            .conn
            .recv()
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        // A refused answer leaves the offer waiting: the client may answer again.
        conn.accept_answer(answer, Instant::now())
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let in_flight = t.in_flight.take().ok_or(MediaError::NoPendingOffer)?;
        let mut wake = Vec::new();
        for cid in in_flight.consumers {
            if let Some(c) = self.consumers.get_mut(&cid) {
                c.active = true;
                wake.push(c.producer.clone());
            }
        }
        self.mark_dirty(key);
        self.select_layers(key);
        // The new consumers start at a keyframe. Before the connection is up nothing could
        // be sent: the egress asks when it starts (`Worker::start_egress`).
        if self
            .transports
            .get(&key)
            .is_some_and(|t| t.egress.is_some())
        {
            for pid in wake {
                self.request_keyframes(&pid);
            }
        }
        self.negotiate(key);
        Ok(())
    }

    /// Asks a producer's publisher for a keyframe on every layer (a consumer starts).
    pub(super) fn request_keyframes(&mut self, pid: &ProducerId) {
        self.request_keyframe(pid, None, KeyframeRequestKind::Pli);
        let rids: Vec<String> = self
            .producers
            .get(pid)
            .map(|p| p.layers.iter().map(|l| l.rid.clone()).collect())
            .unwrap_or_default();
        for rid in rids.into_iter().filter(|r| !r.is_empty()) {
            self.request_keyframe(pid, Some(rid), KeyframeRequestKind::Pli);
        }
    }

    pub(super) fn add_consumer(&mut self, peer: &PeerId, id: ConsumerId, producer: ProducerId) {
        let Some(key) = self.peers.get(peer).map(|p| p.recv) else {
            debug!(%peer, "consumer for a peer without media session");
            return;
        };
        let Some(p) = self.producers.get_mut(&producer) else {
            debug!(%producer, "consumer of a producer that is gone");
            return;
        };
        let slot = self.consumers.insert(
            id.clone(),
            Consumer {
                id: id.clone(),
                producer,
                transport: key,
                mid: None,
                active: false,
                current: None,
                target: None,
                display_height: None,
                rewriter: Rewriter::default(),
                pt: None,
                stream: None,
                sent: Default::default(),
            },
        );
        let Some(slot) = slot else {
            debug!(consumer = %id, "a consumer with this id exists already");
            return;
        };
        p.consumers.push(slot);
        if let Some(t) = self.transports.get_mut(&key) {
            t.pending_add.push(id);
        }
        self.negotiate(key);
    }

    pub(super) fn close_producer(&mut self, pid: &ProducerId) {
        let Some(p) = self.producers.remove(pid) else {
            return;
        };
        if let Some(t) = self.transports.get_mut(&p.transport) {
            t.producers_by_mid.remove(&p.mid);
        }
        let ids: Vec<ConsumerId> = p
            .consumers
            .iter()
            .filter_map(|&k| self.consumers.at(k).map(|c| c.id.clone()))
            .collect();
        for cid in ids {
            self.close_consumer(&cid);
        }
    }

    pub(super) fn close_consumer(&mut self, cid: &ConsumerId) {
        let Some((slot, c)) = self.consumers.remove(cid) else {
            return;
        };
        if let Some(p) = self.producers.get_mut(&c.producer) {
            p.consumers.retain(|&k| k != slot);
        }
        if let Some(t) = self.transports.get_mut(&c.transport) {
            if let (Some(e), Some(stream)) = (t.egress.as_mut(), c.stream) {
                e.close_stream(stream);
            }
            t.pending_add.retain(|x| x != cid);
            if let Some(mid) = c.mid {
                t.consumers_by_mid.remove(&mid);
                t.pending_inactive.push(mid);
            }
            if let Some(f) = t.in_flight.as_mut() {
                f.consumers.retain(|x| x != cid);
            }
        }
        self.negotiate(c.transport);
    }

    pub(super) fn own_consumer(&self, peer: &PeerId, cid: &ConsumerId) -> Result<TKey, MediaError> {
        let recv = self
            .peers
            .get(peer)
            .map(|p| p.recv)
            .ok_or_else(|| MediaError::UnknownPeer(peer.clone()))?;
        match self.consumers.get(cid) {
            Some(c) if c.transport == recv => Ok(recv),
            _ => Err(MediaError::UnknownConsumer(cid.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix::prelude::*;

    use super::*;
    use crate::ids::RoomId;
    use crate::model::Source;
    use crate::sfu::messages::MediaEvent;

    /// Takes the subscriber's media events (its offers) and drops them.
    struct Sink;

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<MediaEvent> for Sink {
        type Result = ();
        fn handle(&mut self, _: MediaEvent, _: &mut Self::Context) {}
    }

    /// A worker on a loopback socket with one subscriber (`p-sub`) and two video producers
    /// (`pr-1`, `pr-2`) of another peer, put in place as `publish` would.
    fn worker_with_subscriber() -> Worker {
        let mut w = Worker::on_loopback().unwrap();
        let room = RoomId::parse("slots").unwrap();
        w.on_command(WorkerCommand::AddPeer {
            room: room.clone(),
            peer: PeerId::from_raw("p-sub"),
            events: Sink.start().recipient(),
        });
        let publisher = PeerId::from_raw("p-pub");
        let send = w.add_transport(&publisher, Direction::Send);
        for (n, mid) in [(1, "0"), (2, "1")] {
            let id = ProducerId::from_raw(format!("pr-{n}"));
            w.producers.insert(
                id.clone(),
                Producer {
                    id,
                    peer: publisher.clone(),
                    room: room.clone(),
                    transport: send,
                    mid: Mid::from(mid),
                    kind: MediaKind::Video,
                    source: Source::Webcam,
                    paused: false,
                    consumers: Vec::new(),
                    layers: Vec::new(),
                    keyframes: KeyframeGate::default(),
                    history: Vec::new(),
                },
            );
        }
        w
    }

    /// The consumers a producer forwards to, by the ids in their slots.
    fn forwarded_to(w: &Worker, producer: &str) -> Vec<String> {
        w.producers[&ProducerId::from_raw(producer)]
            .consumers
            .iter()
            .map(|&k| w.consumers.at(k).expect("a live slot").id.to_string())
            .collect()
    }

    #[actix_rt::test]
    async fn a_closed_consumers_slot_leaves_its_producer_before_another_consumer_takes_it() {
        let mut w = worker_with_subscriber();
        let sub = PeerId::from_raw("p-sub");
        let c = |s: &str| ConsumerId::from_raw(s);
        w.add_consumer(&sub, c("c-1"), ProducerId::from_raw("pr-1"));
        w.add_consumer(&sub, c("c-2"), ProducerId::from_raw("pr-2"));
        assert_eq!(forwarded_to(&w, "pr-1"), ["c-1"]);
        assert_eq!(forwarded_to(&w, "pr-2"), ["c-2"]);
        let freed = w.consumers.key(&c("c-1")).unwrap();

        w.close_consumer(&c("c-1"));
        assert!(forwarded_to(&w, "pr-1").is_empty());

        // The next consumer takes the freed slot; only its own producer forwards to it.
        w.add_consumer(&sub, c("c-3"), ProducerId::from_raw("pr-2"));
        assert_eq!(w.consumers.key(&c("c-3")), Some(freed));
        assert!(forwarded_to(&w, "pr-1").is_empty());
        assert_eq!(forwarded_to(&w, "pr-2"), ["c-2", "c-3"]);

        // A second consumer with a taken id is refused: no slot, no producer entry.
        w.add_consumer(&sub, c("c-3"), ProducerId::from_raw("pr-1"));
        assert!(forwarded_to(&w, "pr-1").is_empty());
        assert_eq!(w.consumers.len(), 2);

        // Closing the producer closes both of its consumers.
        w.close_producer(&ProducerId::from_raw("pr-2"));
        assert_eq!(w.consumers.len(), 0);
        assert!(w.consumers.get(&c("c-2")).is_none());
        assert!(w.consumers.get(&c("c-3")).is_none());
    }
}

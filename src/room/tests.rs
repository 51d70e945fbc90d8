//! Actor-level tests of the control plane: real `RoomActor`, `RegistryActor` and `PeerActor`,
//! fake recipients that record what they are told, and either a fake media worker (that records
//! the room's commands and answers requests) or a real one on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::messages::*;
use super::*;
use crate::config::Config;
use crate::ids::{ConsumerId, PeerId, ProducerId, RoomId};
use crate::model::Source;
use crate::routing::InMemoryDirectory;
use crate::sfu::{MediaError, MediaEvent, MediaPlane, WorkerCommand};

/// What the fake worker was told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    AddRoom,
    RemoveRoom,
    AddPeer(PeerId),
    RemovePeer(PeerId),
    Publish(PeerId, Vec<ProducerId>),
    RecvAnswer(PeerId),
    AddConsumer(PeerId, ConsumerId, ProducerId),
    CloseProducer(ProducerId),
    SetProducerPaused(ProducerId, bool),
    SetConsumerPreferences(ConsumerId, u32),
    RequestKeyFrame(ConsumerId),
    Stats,
}

/// A media worker without sockets: records every command and answers requests at once
/// (a publish gets the answer `"fake answer"`, or `invalidSdp` once `refuse_publish` is set).
#[derive(Debug, Default, Clone)]
pub(super) struct FakeWorker {
    pub(super) seen: Arc<Mutex<Vec<Seen>>>,
    pub(super) refuse_publish: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeWorker {
    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl MediaWorker for FakeWorker {
    fn send(&self, cmd: WorkerCommand) -> Result<(), MediaError> {
        let seen = match cmd {
            WorkerCommand::AddRoom { .. } => Seen::AddRoom,
            WorkerCommand::RemoveRoom { .. } => Seen::RemoveRoom,
            WorkerCommand::AddPeer { peer, .. } => Seen::AddPeer(peer),
            WorkerCommand::RemovePeer { peer } => Seen::RemovePeer(peer),
            WorkerCommand::Publish {
                peer,
                producers,
                reply,
                ..
            } => {
                let refuse = self
                    .refuse_publish
                    .load(std::sync::atomic::Ordering::SeqCst);
                let _ = reply.send(if refuse {
                    Err(MediaError::InvalidSdp("refused by the fake worker".into()))
                } else {
                    Ok("fake answer".into())
                });
                Seen::Publish(peer, producers.into_iter().map(|p| p.id).collect())
            }
            WorkerCommand::RecvAnswer { peer, reply, .. } => {
                let _ = reply.send(Ok(()));
                Seen::RecvAnswer(peer)
            }
            WorkerCommand::AddConsumer {
                peer,
                consumer,
                producer,
            } => Seen::AddConsumer(peer, consumer, producer),
            WorkerCommand::CloseProducer { producer } => Seen::CloseProducer(producer),
            WorkerCommand::SetProducerPaused { producer, paused } => {
                Seen::SetProducerPaused(producer, paused)
            }
            WorkerCommand::SetConsumerPreferences {
                consumer,
                height,
                reply,
                ..
            } => {
                let _ = reply.send(Ok(()));
                Seen::SetConsumerPreferences(consumer, height)
            }
            WorkerCommand::RequestKeyFrame {
                consumer, reply, ..
            } => {
                let _ = reply.send(Ok(()));
                Seen::RequestKeyFrame(consumer)
            }
            WorkerCommand::Stats { reply } => {
                let _ = reply.send(Ok(Default::default()));
                Seen::Stats
            }
        };
        self.seen.lock().unwrap().push(seen);
        Ok(())
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn index(&self) -> usize {
        0
    }
}

/// Records every room and media event it receives.
#[derive(Default, Clone)]
pub(super) struct Recorder {
    pub(super) room: Arc<Mutex<Vec<RoomEvent>>>,
    media: Arc<Mutex<Vec<MediaEvent>>>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<RoomEvent> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RoomEvent, _: &mut Self::Context) {
        self.room.lock().unwrap().push(msg);
    }
}

impl Handler<MediaEvent> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: MediaEvent, _: &mut Self::Context) {
        self.media.lock().unwrap().push(msg);
    }
}

impl Recorder {
    pub(super) fn events(&self) -> Vec<RoomEvent> {
        self.room.lock().unwrap().clone()
    }
}

pub(super) fn media() -> MediaPlane {
    MediaPlane::start(&Config::for_tests()).expect("media worker on loopback")
}

/// A room on a fake worker.
pub(super) fn room(max_users: usize, close_delay: Duration) -> (Addr<RoomActor>, FakeWorker) {
    let worker = FakeWorker::default();
    let room = RoomActor::new(
        RoomId::parse("test").unwrap(),
        1,
        RoomSettings {
            max_users,
            close_delay,
            ..RoomSettings::default()
        },
        Arc::new(worker.clone()),
        None,
    )
    .start();
    (room, worker)
}

/// The room `id`, opened here by the registry.
pub(super) async fn local_room(registry: &Addr<RegistryActor>, id: &RoomId) -> Addr<RoomActor> {
    let route = registry
        .send(Resolve {
            room: id.clone(),
            relayed: false,
        })
        .await
        .expect("registry alive")
        .expect("room opened");
    match route {
        Route::Local(room) => room,
        Route::Remote(node) => panic!("a single instance hosts every room, not {node:?}"),
    }
}

/// A registry on a real media worker (loopback).
pub(super) fn registry(close_delay: Duration) -> Addr<RegistryActor> {
    RegistryActor::new(
        crate::ids::NodeId::random(),
        Arc::new(media()),
        RoomSettings {
            max_users: 0,
            close_delay,
            ..RoomSettings::default()
        },
        Arc::new(InMemoryDirectory),
    )
    .start()
}

pub(super) async fn join(room: &Addr<RoomActor>, name: &str) -> (PeerId, Recorder, Joined) {
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let peer = PeerId::random();
    let joined = room
        .send(Join {
            peer: peer.clone(),
            display_name: name.into(),
            user: None,
            access_code: None,
            granted_roles: Vec::new(),
            events: addr.clone().recipient(),
            media_events: addr.recipient(),
        })
        .await
        .expect("room alive")
        .expect("join accepted");
    (peer, rec, joined)
}

/// `peer` publishes one track per source (mids "0", "1", ...); returns the producer ids.
pub(super) async fn publish(
    room: &Addr<RoomActor>,
    peer: &PeerId,
    sources: &[Source],
) -> Vec<ProducerId> {
    let tracks = sources
        .iter()
        .enumerate()
        .map(|(i, s)| NewTrack {
            mid: i.to_string(),
            kind: s.kind(),
            source: *s,
        })
        .collect();
    let published = room
        .send(Publish {
            peer: peer.clone(),
            sdp: "fake offer".into(),
            tracks,
        })
        .await
        .expect("room alive")
        .expect("publish accepted");
    assert_eq!(published.sdp, "fake answer");
    published.producers.into_iter().map(|(_, id)| id).collect()
}

pub(super) async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[actix_rt::test]
async fn joining_peers_see_each_other() {
    let (room, _worker) = room(0, Duration::from_secs(5));
    let (a, rec_a, joined_a) = join(&room, "Alice").await;
    assert!(joined_a.peers.is_empty());
    let (b, rec_b, joined_b) = join(&room, "Bob").await;
    assert_eq!(joined_b.peers.len(), 1);
    assert_eq!(joined_b.peers[0].id, a);
    assert_eq!(joined_b.peers[0].display_name, "Alice");
    settle().await;
    assert!(
        matches!(&rec_a.events()[..], [RoomEvent::PeerJoined(p)] if p.id == b && p.display_name == "Bob"),
        "Alice is told about Bob: {:?}",
        rec_a.events()
    );
    assert!(rec_b.events().is_empty(), "Bob is not told about himself");
    let snap = room.send(GetSnapshot).await.unwrap();
    assert_eq!(snap.peers.len(), 2);
}

#[actix_rt::test]
async fn a_full_room_refuses_and_a_second_join_is_rejected() {
    let (room, _worker) = room(1, Duration::from_secs(5));
    let (a, rec, _) = join(&room, "A").await;
    let addr = rec.start();
    let full = room
        .send(Join {
            peer: PeerId::random(),
            display_name: "B".into(),
            user: None,
            access_code: None,
            granted_roles: Vec::new(),
            events: addr.clone().recipient(),
            media_events: addr.clone().recipient(),
        })
        .await
        .unwrap();
    assert_eq!(full.unwrap_err(), JoinError::RoomFull(1));
    let again = room
        .send(Join {
            peer: a,
            display_name: "A".into(),
            user: None,
            access_code: None,
            granted_roles: Vec::new(),
            events: addr.clone().recipient(),
            media_events: addr.recipient(),
        })
        .await
        .unwrap();
    assert_eq!(again.unwrap_err(), JoinError::AlreadyJoined);
}

#[actix_rt::test]
async fn producers_get_one_consumer_per_other_peer() {
    let (room, _worker) = room(0, Duration::from_secs(5));
    let (a, _rec_a, _) = join(&room, "A").await;
    let (b, rec_b, _) = join(&room, "B").await;
    let ids = publish(&room, &a, &[Source::Mic, Source::Webcam]).await;
    let (mic, cam) = (ids[0].clone(), ids[1].clone());
    // A late joiner is subscribed to what is already published.
    let (c, rec_c, joined_c) = join(&room, "C").await;
    assert_eq!(
        joined_c
            .peers
            .iter()
            .find(|p| p.id == a)
            .unwrap()
            .producers
            .len(),
        2
    );
    let snap = room.send(GetSnapshot).await.unwrap();
    let consumers_of = |peer: &PeerId| {
        snap.consumers
            .iter()
            .filter(|(p, _, _)| p == peer)
            .map(|(_, _, prod)| prod.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        consumers_of(&a).len(),
        0,
        "no consumer of one's own producers"
    );
    for peer in [&b, &c] {
        let mut got = consumers_of(peer);
        got.sort();
        let mut want = vec![mic.clone(), cam.clone()];
        want.sort();
        assert_eq!(got, want, "{peer} consumes both producers of A");
    }
    settle().await;
    assert!(rec_b
        .events()
        .iter()
        .any(|e| matches!(e, RoomEvent::ProducerAdded(p) if p.id == cam)));

    // Only the owner may close; closing removes the consumers and tells their owners.
    let err = room
        .send(CloseProducer {
            peer: b.clone(),
            producer: cam.clone(),
        })
        .await
        .unwrap();
    assert_eq!(err, Err(RoomError::UnknownProducer(cam.clone())));
    room.send(CloseProducer {
        peer: a.clone(),
        producer: cam.clone(),
    })
    .await
    .unwrap()
    .unwrap();
    settle().await;
    for rec in [&rec_b, &rec_c] {
        let ev = rec.events();
        assert!(
            ev.iter().any(
                |e| matches!(e, RoomEvent::ConsumerClosed { producer, .. } if *producer == cam)
            ),
            "{ev:?}"
        );
        assert!(
            ev.iter().any(
                |e| matches!(e, RoomEvent::ProducerClosed { producer, .. } if *producer == cam)
            ),
            "{ev:?}"
        );
    }
    let snap = room.send(GetSnapshot).await.unwrap();
    assert_eq!(
        snap.consumers.len(),
        2,
        "only the mic consumers of B and C remain"
    );

    // Pausing is owner-only and announced.
    room.send(SetProducerPaused {
        peer: a.clone(),
        producer: mic.clone(),
        paused: true,
    })
    .await
    .unwrap()
    .unwrap();
    settle().await;
    assert!(rec_c.events().iter().any(|e| matches!(e, RoomEvent::ProducerPaused { paused: true, producer, .. } if *producer == mic)));
}

#[actix_rt::test]
async fn a_publish_on_a_used_mid_replaces_its_producer() {
    let (room, worker) = room(0, Duration::from_secs(5));
    let (a, _rec_a, _) = join(&room, "A").await;
    let (b, rec_b, _) = join(&room, "B").await;
    let first = publish(&room, &a, &[Source::Mic, Source::Screen]).await;
    // The screen-share transceiver (mid "1") is reused: the old producer goes, a new one comes.
    let tracks = vec![NewTrack {
        mid: "1".into(),
        kind: Source::Screen.kind(),
        source: Source::Screen,
    }];
    let again = room
        .send(Publish {
            peer: a.clone(),
            sdp: "offer 2".into(),
            tracks,
        })
        .await
        .unwrap()
        .unwrap();
    let new_screen = again.producers[0].1.clone();
    assert_ne!(new_screen, first[1]);
    settle().await;
    let seen = worker.seen();
    let closed_at = seen
        .iter()
        .position(|s| *s == Seen::CloseProducer(first[1].clone()))
        .expect("the worker stops the replaced producer");
    let published_at = seen
        .iter()
        .position(|s| *s == Seen::Publish(a.clone(), vec![new_screen.clone()]))
        .expect("the worker applies the new offer");
    assert!(
        closed_at < published_at,
        "replaced before the new offer: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| matches!(s, Seen::AddConsumer(p, _, pr) if *p == b && *pr == new_screen)),
        "B consumes the new screen: {seen:?}"
    );
    let ev = rec_b.events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, RoomEvent::ProducerClosed { producer, .. } if *producer == first[1])));
    let snap = room.send(GetSnapshot).await.unwrap();
    let a_info = snap.peers.iter().find(|p| p.id == a).unwrap();
    let mut ids: Vec<_> = a_info.producers.iter().map(|p| p.id.clone()).collect();
    ids.sort();
    let mut want = vec![first[0].clone(), new_screen];
    want.sort();
    assert_eq!(ids, want, "mic kept, screen replaced");
}

#[actix_rt::test]
async fn a_publish_the_worker_refuses_leaves_no_trace() {
    let (room, worker) = room(0, Duration::from_secs(5));
    let (a, _rec_a, _) = join(&room, "A").await;
    let (_b, rec_b, _) = join(&room, "B").await;
    worker
        .refuse_publish
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let tracks = vec![NewTrack {
        mid: "0".into(),
        kind: Source::Mic.kind(),
        source: Source::Mic,
    }];
    let refused = room
        .send(Publish {
            peer: a.clone(),
            sdp: "bad offer".into(),
            tracks,
        })
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(RoomError::Media(MediaError::InvalidSdp(_)))),
        "{refused:?}"
    );
    settle().await;
    let snap = room.send(GetSnapshot).await.unwrap();
    assert!(
        snap.peers.iter().all(|p| p.producers.is_empty()),
        "{snap:?}"
    );
    assert!(snap.consumers.is_empty());
    assert!(
        !rec_b
            .events()
            .iter()
            .any(|e| matches!(e, RoomEvent::ProducerAdded(_))),
        "nobody is told of a producer that does not exist"
    );
    // Whatever the worker kept of the refused offer is dropped.
    let seen = worker.seen();
    let Some(Seen::Publish(_, ids)) = seen.iter().find(|s| matches!(s, Seen::Publish(..))) else {
        panic!("no publish reached the worker: {seen:?}");
    };
    assert!(
        seen.contains(&Seen::CloseProducer(ids[0].clone())),
        "{seen:?}"
    );
    // A track whose source and kind disagree never reaches the worker.
    let mismatched = room
        .send(Publish {
            peer: a.clone(),
            sdp: "offer".into(),
            tracks: vec![NewTrack {
                mid: "0".into(),
                kind: Source::Webcam.kind(),
                source: Source::Mic,
            }],
        })
        .await
        .unwrap();
    assert!(matches!(mismatched, Err(RoomError::BadTrack(_))));
    assert_eq!(
        worker
            .seen()
            .iter()
            .filter(|s| matches!(s, Seen::Publish(..)))
            .count(),
        1
    );
}

#[actix_rt::test]
async fn consumer_requests_reach_the_worker_only_for_the_consumers_owner() {
    let (room, worker) = room(0, Duration::from_secs(5));
    let (a, _rec_a, _) = join(&room, "A").await;
    let (b, _rec_b, _) = join(&room, "B").await;
    let cam = publish(&room, &a, &[Source::Webcam]).await.remove(0);
    let snap = room.send(GetSnapshot).await.unwrap();
    let (_, consumer, _) = snap
        .consumers
        .iter()
        .find(|(peer, _, p)| *peer == b && *p == cam)
        .cloned()
        .expect("B consumes A's camera");
    // A does not own B's consumer.
    let refused = room
        .send(SetConsumerPreferences {
            peer: a.clone(),
            consumer: consumer.clone(),
            width: 320,
            height: 180,
        })
        .await
        .unwrap();
    assert!(matches!(
        refused,
        Err(RoomError::Media(MediaError::UnknownConsumer(_)))
    ));
    room.send(SetConsumerPreferences {
        peer: b.clone(),
        consumer: consumer.clone(),
        width: 320,
        height: 180,
    })
    .await
    .unwrap()
    .unwrap();
    room.send(RequestKeyFrame {
        peer: b.clone(),
        consumer: consumer.clone(),
    })
    .await
    .unwrap()
    .unwrap();
    room.send(RecvAnswer {
        peer: b.clone(),
        sdp: "answer".into(),
    })
    .await
    .unwrap()
    .unwrap();
    let seen = worker.seen();
    assert_eq!(
        seen.iter()
            .filter(|s| matches!(s, Seen::SetConsumerPreferences(..)))
            .collect::<Vec<_>>(),
        vec![&Seen::SetConsumerPreferences(consumer.clone(), 180)],
        "only the owner's request reached the worker"
    );
    assert!(seen.contains(&Seen::RequestKeyFrame(consumer)));
    assert!(seen.contains(&Seen::RecvAnswer(b.clone())));
    // A stranger is refused before the worker hears of it.
    let stranger = room
        .send(RecvAnswer {
            peer: PeerId::random(),
            sdp: "answer".into(),
        })
        .await
        .unwrap();
    assert_eq!(stranger, Err(RoomError::NotInRoom));
    room.send(Leave { peer: b.clone() }).await.unwrap();
    settle().await;
    assert!(worker.seen().contains(&Seen::RemovePeer(b)));
}

#[actix_rt::test]
async fn leaving_removes_the_peer_its_producers_and_consumers() {
    let (room, _worker) = room(0, Duration::from_secs(5));
    let (a, _rec_a, _) = join(&room, "A").await;
    let (b, rec_b, _) = join(&room, "B").await;
    let mic = publish(&room, &a, &[Source::Mic]).await.remove(0);
    publish(&room, &b, &[Source::Webcam]).await;
    room.send(Leave { peer: a.clone() }).await.unwrap();
    settle().await;
    let ev = rec_b.events();
    let closed = ev
        .iter()
        .position(|e| matches!(e, RoomEvent::ConsumerClosed { producer, .. } if *producer == mic))
        .expect("B's consumer of A's mic closed");
    let left = ev
        .iter()
        .position(|e| *e == RoomEvent::PeerLeft(a.clone()))
        .expect("B told A left");
    assert!(
        closed < left,
        "consumers close before the peer is gone: {ev:?}"
    );
    let snap = room.send(GetSnapshot).await.unwrap();
    assert_eq!(snap.peers.len(), 1);
    assert!(
        snap.consumers.is_empty(),
        "A's consumer of B's camera is gone too: {snap:?}"
    );
    // Leaving twice is harmless.
    room.send(Leave { peer: a }).await.unwrap();
}

#[actix_rt::test]
async fn an_empty_room_closes_after_the_delay_and_reopens_fresh() {
    let registry = registry(Duration::from_millis(150));
    let id = RoomId::parse("closing").unwrap();
    let first = local_room(&registry, &id).await;
    let (a, _rec, _) = join(&first, "A").await;
    assert_eq!(
        registry.send(GetRegistryStats).await.unwrap(),
        RegistryStats { rooms: 1, peers: 1 }
    );
    first.send(Leave { peer: a }).await.unwrap();
    // Someone coming back within the delay keeps the room.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (b, _rec_b, _) = join(&first, "B").await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(first.connected(), "a join cancels the pending close");
    first.send(Leave { peer: b }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!first.connected(), "the empty room stopped");
    assert_eq!(registry.send(GetRegistryStats).await.unwrap().rooms, 0);
    let second = local_room(&registry, &id).await;
    assert!(second.connected());
    assert_ne!(first, second, "a new room actor, with fresh media state");
}

// ------------------------------------------------------------------ PeerActor exit paths

struct PeerHarness {
    peer: Addr<PeerActor>,
    out: mpsc::UnboundedReceiver<Outbound>,
    other: Recorder,
    room: Addr<RoomActor>,
}

async fn peer_in_room(heartbeat: Heartbeat) -> PeerHarness {
    let registry = registry(Duration::from_secs(5));
    let id = RoomId::parse("exits").unwrap();
    let room = local_room(&registry, &id).await;
    let (_other_id, other, _) = join(&room, "Other").await;
    let (tx, mut out) = mpsc::unbounded_channel();
    let peer = PeerActor::new(
        PeerId::random(),
        id,
        Origin::default(),
        registry.recipient(),
        tx,
        heartbeat,
    )
    .start();
    peer.do_send(ClientText(
        r#"{"type":"request","id":1,"method":"join","data":{"displayName":"P","protocolVersion":1}}"#.into(),
    ));
    // welcome, then the join response
    let welcome = next_text(&mut out).await;
    assert!(welcome.contains("\"welcome\""), "{welcome}");
    let joined = next_text(&mut out).await;
    assert!(joined.contains("\"ok\":true"), "{joined}");
    PeerHarness {
        peer,
        out,
        other,
        room,
    }
}

async fn next_text(out: &mut mpsc::UnboundedReceiver<Outbound>) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), out.recv()).await {
            Ok(Some(Outbound::Text(t))) => return t,
            Ok(Some(Outbound::Ping)) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn expect_close(out: &mut mpsc::UnboundedReceiver<Outbound>) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), out.recv()).await {
            Ok(Some(Outbound::Close(reason))) => return reason,
            Ok(Some(_)) => continue,
            other => panic!("expected the socket to be closed, got {other:?}"),
        }
    }
}

async fn assert_left(h: &PeerHarness) {
    settle().await;
    let snap = h.room.send(GetSnapshot).await.unwrap();
    assert_eq!(snap.peers.len(), 1, "only the other peer remains: {snap:?}");
    assert!(
        h.other
            .events()
            .iter()
            .any(|e| matches!(e, RoomEvent::PeerLeft(_))),
        "the other peer is told: {:?}",
        h.other.events()
    );
}

const SLOW: Heartbeat = Heartbeat {
    interval: Duration::from_secs(10),
    timeout: Duration::from_secs(30),
};

#[actix_rt::test]
async fn peer_leaves_on_leave_request() {
    let mut h = peer_in_room(SLOW).await;
    h.peer.do_send(ClientText(
        r#"{"type":"request","id":2,"method":"leave"}"#.into(),
    ));
    let reply = next_text(&mut h.out).await;
    assert!(
        reply.contains("\"id\":2") && reply.contains("\"ok\":true"),
        "{reply}"
    );
    assert_eq!(expect_close(&mut h.out).await, "left");
    assert_left(&h).await;
}

#[actix_rt::test]
async fn peer_leaves_when_the_socket_closes() {
    let mut h = peer_in_room(SLOW).await;
    h.peer.do_send(ConnectionClosed::Closed);
    expect_close(&mut h.out).await;
    assert_left(&h).await;
}

#[actix_rt::test]
async fn peer_leaves_when_the_socket_fails() {
    let mut h = peer_in_room(SLOW).await;
    h.peer
        .do_send(ConnectionClosed::Error("reset by peer".into()));
    let reason = expect_close(&mut h.out).await;
    assert!(reason.contains("reset by peer"), "{reason}");
    assert_left(&h).await;
}

#[actix_rt::test]
async fn peer_leaves_on_heartbeat_timeout_but_not_while_heard() {
    let hb = Heartbeat {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(200),
    };
    let mut h = peer_in_room(hb).await;
    // Answering pings keeps it in.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.peer.do_send(Heard);
    }
    assert!(h.peer.connected(), "a peer that answers stays");
    assert_eq!(h.room.send(GetSnapshot).await.unwrap().peers.len(), 2);
    // Silence ends it.
    assert_eq!(expect_close(&mut h.out).await, "heartbeat timeout");
    assert_left(&h).await;
}

#[actix_rt::test]
async fn bad_requests_get_error_replies_and_change_nothing() {
    let mut h = peer_in_room(SLOW).await;
    for (text, code) in [
        ("{", "badRequest"),
        (
            r#"{"type":"request","id":7,"method":"fly"}"#,
            "unknownMethod",
        ),
        (
            r#"{"type":"request","id":8,"method":"pauseProducer","data":{"producerId":"nope"}}"#,
            "notFound",
        ),
        (
            r#"{"type":"request","id":9,"method":"join","data":{"displayName":"P","protocolVersion":1}}"#,
            "alreadyJoined",
        ),
        (
            r#"{"type":"request","id":10,"method":"recvAnswer","data":{"sdp":"garbage"}}"#,
            "invalidSdp",
        ),
        (
            r#"{"type":"request","id":11,"method":"changeDisplayName","data":{"displayName":""}}"#,
            "badRequest",
        ),
    ] {
        h.peer.do_send(ClientText(text.into()));
        let reply = next_text(&mut h.out).await;
        assert!(
            reply.contains(&format!("\"code\":\"{code}\"")),
            "{text} -> {reply}"
        );
    }
    assert!(h.peer.connected());
    assert_eq!(h.room.send(GetSnapshot).await.unwrap().peers.len(), 2);
}

#[actix_rt::test]
async fn random_input_never_breaks_the_peer_or_the_room() {
    use rand::{Rng, SeedableRng};
    let mut h = peer_in_room(SLOW).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Every method of the protocol but `leave` (which would end the test), and an unknown one.
    let methods: Vec<&str> = crate::signaling::protocol::METHODS
        .iter()
        .copied()
        .filter(|m| *m != "leave")
        .chain(["x"])
        .collect();
    let values = [
        "null",
        "1",
        "-1",
        "1e400",
        "\"\"",
        "\"v=0\\r\\n\"",
        "[]",
        "{}",
        "true",
        "\"\\u0000\"",
        "18446744073709551616",
        "{\"a\":[[[[[]]]]]}",
    ];
    let keys = [
        "sdp",
        "producers",
        "producerId",
        "consumerId",
        "width",
        "height",
        "displayName",
        "mid",
    ];
    let mut sent = 0;
    for i in 0..400u64 {
        let text = match rng.gen_range(0..4) {
            0 => (0..rng.gen_range(0..64))
                .map(|_| rng.gen_range(1u8..128) as char)
                .collect::<String>(),
            1 => "[".repeat(rng.gen_range(1..300)),
            _ => {
                let mut data = String::from("{");
                for k in 0..rng.gen_range(0..4) {
                    if k > 0 {
                        data.push(',');
                    }
                    let key = keys[rng.gen_range(0..keys.len())];
                    let value = values[rng.gen_range(0..values.len())];
                    data.push_str(&format!("\"{key}\":{value}"));
                }
                data.push('}');
                format!(
                    r#"{{"type":"request","id":{},"method":"{}","data":{}}}"#,
                    1000 + i,
                    methods[rng.gen_range(0..methods.len())],
                    data
                )
            }
        };
        h.peer.do_send(ClientText(text));
        sent += 1;
    }
    // Every frame gets exactly one error (or, rarely, success) response, in order.
    let mut responses = 0;
    while responses < sent {
        let t = next_text(&mut h.out).await;
        if t.contains("\"type\":\"response\"") {
            responses += 1;
        }
    }
    assert!(h.peer.connected(), "the peer survives garbage");
    let snap = h.room.send(GetSnapshot).await.unwrap();
    assert_eq!(snap.peers.len(), 2, "the room is unchanged");
}

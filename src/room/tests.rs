//! Actor-level tests of the control plane: real `RoomActor`, `RegistryActor` and `PeerActor`
//! (with a real media worker on loopback), fake recipients that record what they are told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::messages::*;
use super::*;
use crate::config::Config;
use crate::ids::{PeerId, ProducerId, RoomId};
use crate::model::{ProducerInfo, Source};
use crate::routing::InMemoryDirectory;
use crate::sfu::{MediaEvent, MediaPlane};

/// Records every room and media event it receives.
#[derive(Default, Clone)]
struct Recorder {
    room: Arc<Mutex<Vec<RoomEvent>>>,
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
    fn events(&self) -> Vec<RoomEvent> {
        self.room.lock().unwrap().clone()
    }
}

fn media() -> MediaPlane {
    MediaPlane::start(&Config::for_tests()).expect("media worker on loopback")
}

fn room(max_users: usize, close_delay: Duration) -> Addr<RoomActor> {
    RoomActor::new(
        RoomId::parse("test").unwrap(),
        1,
        RoomSettings {
            max_users,
            close_delay,
        },
        media().assign(),
        None,
    )
    .start()
}

fn registry(close_delay: Duration) -> Addr<RegistryActor> {
    RegistryActor::new(
        crate::ids::NodeId::random(),
        media(),
        RoomSettings {
            max_users: 0,
            close_delay,
        },
        Arc::new(InMemoryDirectory::default()),
    )
    .start()
}

async fn join(room: &Addr<RoomActor>, name: &str) -> (PeerId, Recorder, Joined) {
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let peer = PeerId::random();
    let joined = room
        .send(Join {
            peer: peer.clone(),
            display_name: name.into(),
            events: addr.clone().recipient(),
            media_events: addr.recipient(),
        })
        .await
        .expect("room alive")
        .expect("join accepted");
    (peer, rec, joined)
}

fn producer(peer: &PeerId, source: Source) -> ProducerInfo {
    ProducerInfo {
        id: ProducerId::random(),
        peer_id: peer.clone(),
        kind: source.kind(),
        source,
        paused: false,
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[actix_rt::test]
async fn joining_peers_see_each_other() {
    let room = room(0, Duration::from_secs(5));
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
    let room = room(1, Duration::from_secs(5));
    let (a, rec, _) = join(&room, "A").await;
    let addr = rec.start();
    let full = room
        .send(Join {
            peer: PeerId::random(),
            display_name: "B".into(),
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
            events: addr.clone().recipient(),
            media_events: addr.recipient(),
        })
        .await
        .unwrap();
    assert_eq!(again.unwrap_err(), JoinError::AlreadyJoined);
}

#[actix_rt::test]
async fn producers_get_one_consumer_per_other_peer() {
    let room = room(0, Duration::from_secs(5));
    let (a, _rec_a, _) = join(&room, "A").await;
    let (b, rec_b, _) = join(&room, "B").await;
    let mic = producer(&a, Source::Mic);
    let cam = producer(&a, Source::Webcam);
    room.send(AddProducers {
        peer: a.clone(),
        producers: vec![mic.clone(), cam.clone()],
    })
    .await
    .unwrap();
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
        let mut want = vec![mic.id.clone(), cam.id.clone()];
        want.sort();
        assert_eq!(got, want, "{peer} consumes both producers of A");
    }
    settle().await;
    assert!(rec_b
        .events()
        .iter()
        .any(|e| matches!(e, RoomEvent::ProducerAdded(p) if p.id == cam.id)));

    // Only the owner may close; closing removes the consumers and tells their owners.
    let err = room
        .send(CloseProducer {
            peer: b.clone(),
            producer: cam.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(err, Err(RoomError::UnknownProducer(cam.id.clone())));
    room.send(CloseProducer {
        peer: a.clone(),
        producer: cam.id.clone(),
    })
    .await
    .unwrap()
    .unwrap();
    settle().await;
    for rec in [&rec_b, &rec_c] {
        let ev = rec.events();
        assert!(
            ev.iter().any(
                |e| matches!(e, RoomEvent::ConsumerClosed { producer, .. } if *producer == cam.id)
            ),
            "{ev:?}"
        );
        assert!(
            ev.iter().any(
                |e| matches!(e, RoomEvent::ProducerClosed { producer, .. } if *producer == cam.id)
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
        producer: mic.id.clone(),
        paused: true,
    })
    .await
    .unwrap()
    .unwrap();
    settle().await;
    assert!(rec_c.events().iter().any(|e| matches!(e, RoomEvent::ProducerPaused { paused: true, producer, .. } if *producer == mic.id)));
}

#[actix_rt::test]
async fn leaving_removes_the_peer_its_producers_and_consumers() {
    let room = room(0, Duration::from_secs(5));
    let (a, _rec_a, _) = join(&room, "A").await;
    let (b, rec_b, _) = join(&room, "B").await;
    let mic = producer(&a, Source::Mic);
    room.send(AddProducers {
        peer: a.clone(),
        producers: vec![mic.clone()],
    })
    .await
    .unwrap();
    let b_cam = producer(&b, Source::Webcam);
    room.send(AddProducers {
        peer: b.clone(),
        producers: vec![b_cam],
    })
    .await
    .unwrap();
    room.send(Leave { peer: a.clone() }).await.unwrap();
    settle().await;
    let ev = rec_b.events();
    let closed = ev
        .iter()
        .position(
            |e| matches!(e, RoomEvent::ConsumerClosed { producer, .. } if *producer == mic.id),
        )
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
    let first = registry
        .send(GetRoom { room: id.clone() })
        .await
        .unwrap()
        .unwrap();
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
    let second = registry.send(GetRoom { room: id }).await.unwrap().unwrap();
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
    let room = registry
        .send(GetRoom { room: id.clone() })
        .await
        .unwrap()
        .unwrap();
    let (_other_id, other, _) = join(&room, "Other").await;
    let (tx, mut out) = mpsc::unbounded_channel();
    let peer = PeerActor::new(PeerId::random(), id, registry.recipient(), tx, heartbeat).start();
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

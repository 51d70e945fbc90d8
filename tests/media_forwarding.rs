//! End-to-end media forwarding: the real server in-process, headless clients
//! (`multiparty_meeting::client`, str0m) talking docs/protocol.md over WebSocket and WebRTC.
//! Run with `RUST_LOG=debug` to see server and client logs.

use std::time::Duration;

use multiparty_meeting::client::{
    Client, ConsumerStats, Kind, PublishSpec, PublishedTrack, RecvOffer, Response,
};
use multiparty_meeting::{server, Config};
use serde_json::json;

const MEDIA_TIMEOUT: Duration = Duration::from_secs(10);
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames of each kind a subscriber must receive for media to count as forwarded.
const MIN_FRAMES: u64 = 20;

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Frames received from `peer`'s producers of `kind`, summed over consumers.
fn frames_from(stats: &[ConsumerStats], peer: &str, kind: Kind) -> u64 {
    stats
        .iter()
        .filter(|c| c.peer_id == peer && c.kind == kind)
        .map(|c| c.frames)
        .sum()
}

/// True when at least `min` audio and `min` video frames arrived from `peer`.
fn has_media_from(stats: &[ConsumerStats], peer: &str, min: u64) -> bool {
    frames_from(stats, peer, Kind::Audio) > min && frames_from(stats, peer, Kind::Video) > min
}

fn parse_offer(data: serde_json::Value) -> RecvOffer {
    serde_json::from_value(data.clone())
        .unwrap_or_else(|e| panic!("recvOffer data does not match the protocol ({e}): {data}"))
}

fn error_code(resp: &Response) -> Option<&str> {
    resp.error.as_ref().map(|e| e.code.as_str())
}

/// A running server, Alice publishing mic and webcam, then Bob joined (receive only).
struct Meeting {
    srv: server::RunningServer,
    base: String,
    alice: Client,
    published: Vec<PublishedTrack>,
    bob: Client,
}

async fn alice_publishes_then_bob_joins(room: &str) -> Meeting {
    init_logs();
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let mut alice = Client::connect(&base, room, "Alice")
        .await
        .expect("Alice joins");
    let published = alice
        .publish(PublishSpec::audio_video())
        .await
        .expect("Alice publishes mic and webcam");
    let bob = Client::connect(&base, room, "Bob")
        .await
        .expect("Bob joins");
    Meeting {
        srv,
        base,
        alice,
        published,
        bob,
    }
}

#[actix_rt::test]
async fn publisher_media_reaches_subscriber() {
    let Meeting {
        srv,
        alice,
        published,
        bob,
        ..
    } = alice_publishes_then_bob_joins("forward").await;

    // docs/protocol.md lets the server add consumers over several offers (one per answer
    // round trip), so collect them until both of Alice's producers are covered.
    let mut consumers = Vec::new();
    while consumers.len() < published.len() {
        let offer = bob
            .next_notification("recvOffer", SIGNAL_TIMEOUT)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "Bob should get recvOffers for Alice's producers (so far {consumers:?}): {e}"
                )
            });
        consumers.extend(parse_offer(offer.data).consumers);
    }
    assert_eq!(
        consumers.len(),
        2,
        "Bob's recvOffers should list one consumer per producer of Alice: {consumers:?}"
    );
    for c in &consumers {
        assert_eq!(
            c.peer_id,
            alice.peer_id(),
            "consumer {c:?} should belong to Alice"
        );
        assert!(
            published
                .iter()
                .any(|p| p.producer_id == c.producer_id && p.kind == c.kind),
            "consumer {c:?} should copy one of Alice's producers {published:?}"
        );
    }

    let stats = bob
        .wait_for(MEDIA_TIMEOUT, "audio and video frames from Alice", |s| {
            has_media_from(s, alice.peer_id(), MIN_FRAMES)
        })
        .await
        .unwrap_or_else(|e| panic!("Bob should receive > {MIN_FRAMES} frames of each kind: {e}"));
    for c in &stats {
        assert!(
            c.stamped_frames == c.frames,
            "every frame Bob receives should be one Alice sent (carry her stamp): {c:?}"
        );
    }

    let joined = alice
        .next_notification("peerJoined", SIGNAL_TIMEOUT)
        .await
        .expect("Alice is told that Bob joined");
    assert_eq!(
        joined.data["peer"]["id"].as_str(),
        Some(bob.peer_id()),
        "peerJoined should name Bob: {}",
        joined.data
    );
    assert!(
        bob.errors().is_empty(),
        "Bob saw problems: {:?}",
        bob.errors()
    );
    assert!(
        alice.errors().is_empty(),
        "Alice saw problems: {:?}",
        alice.errors()
    );

    alice.close().await;
    bob.close().await;
    srv.stop().await;
}

#[actix_rt::test]
async fn late_joiner_receives_existing_producers() {
    init_logs();
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);

    // Bob is in the room first; Alice arrives later and only then publishes.
    let bob = Client::connect(&base, "late", "Bob")
        .await
        .expect("Bob joins");
    let mut alice = Client::connect(&base, "late", "Alice")
        .await
        .expect("Alice joins");
    alice
        .publish(PublishSpec::audio_video())
        .await
        .expect("Alice publishes mic and webcam");

    let stats = bob
        .wait_for(MEDIA_TIMEOUT, "audio and video frames from Alice", |s| {
            has_media_from(s, alice.peer_id(), MIN_FRAMES)
        })
        .await
        .unwrap_or_else(|e| {
            panic!("Bob, in the room before Alice published, should receive her media: {e}")
        });
    assert_eq!(
        stats
            .iter()
            .filter(|c| c.peer_id == alice.peer_id())
            .count(),
        2,
        "Bob should have exactly one consumer per producer of Alice: {stats:?}"
    );
    assert!(
        bob.errors().is_empty(),
        "Bob saw problems: {:?}",
        bob.errors()
    );

    alice.close().await;
    bob.close().await;
    srv.stop().await;
}

#[actix_rt::test]
async fn leaving_publisher_closes_consumers() {
    let Meeting {
        srv, alice, bob, ..
    } = alice_publishes_then_bob_joins("leave").await;
    let stats = bob
        .wait_for(MEDIA_TIMEOUT, "audio and video frames from Alice", |s| {
            has_media_from(s, alice.peer_id(), 5)
        })
        .await
        .unwrap_or_else(|e| panic!("Bob should receive Alice's media before she leaves: {e}"));
    let alice_id = alice.peer_id().to_string();
    let mut open: Vec<String> = stats
        .iter()
        .filter(|c| c.peer_id == alice_id)
        .map(|c| c.consumer_id.clone())
        .collect();

    alice.close().await;

    bob.wait_notification(SIGNAL_TIMEOUT, "peerLeft for Alice", |n| {
        n.method == "peerLeft" && n.data["peerId"].as_str() == Some(alice_id.as_str())
    })
    .await
    .unwrap_or_else(|e| panic!("Bob should be told that Alice left: {e}"));
    while !open.is_empty() {
        let closed = bob
            .next_notification("consumerClosed", SIGNAL_TIMEOUT)
            .await
            .unwrap_or_else(|e| {
                panic!("Bob should get consumerClosed for each of {open:?} after Alice left: {e}")
            });
        let id = closed.data["consumerId"].as_str().unwrap_or_default();
        assert!(
            open.iter().any(|c| c == id),
            "consumerClosed names a consumer that is not one of Alice's open ones {open:?}: {}",
            closed.data
        );
        open.retain(|c| c != id);
    }
    assert!(
        bob.errors().is_empty(),
        "Bob saw problems: {:?}",
        bob.errors()
    );

    bob.close().await;
    srv.stop().await;
}

#[actix_rt::test]
async fn malformed_messages_get_error_replies() {
    let Meeting {
        srv,
        base,
        alice,
        bob,
        ..
    } = alice_publishes_then_bob_joins("garbage").await;
    let mallory = Client::connect(&base, "garbage", "Mallory")
        .await
        .expect("Mallory joins");
    bob.wait_for(MEDIA_TIMEOUT, "audio and video frames from Alice", |s| {
        has_media_from(s, alice.peer_id(), 5)
    })
    .await
    .unwrap_or_else(|e| panic!("Bob should receive Alice's media: {e}"));

    let cases: [(&str, Option<u64>, &str); 3] = [
        ("not json", None, "badRequest"),
        (
            r#"{"type":"request","id":5,"method":"nope"}"#,
            Some(5),
            "unknownMethod",
        ),
        (
            r#"{"type":"request","id":6,"method":"publish","data":{"sdp":42}}"#,
            Some(6),
            "badRequest",
        ),
    ];
    for (frame, id, code) in cases {
        mallory.send_raw_text(frame).expect("frame sent");
        let resp = mallory
            .next_response(SIGNAL_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{frame:?} should get an error response: {e}"));
        assert!(!resp.ok, "{frame:?} should be refused: {:?}", resp.raw);
        assert_eq!(
            resp.id, id,
            "{frame:?} response should carry id {id:?}: {:?}",
            resp.raw
        );
        assert_eq!(
            error_code(&resp),
            Some(code),
            "{frame:?} should be refused with {code}: {:?}",
            resp.raw
        );
    }

    let resp = mallory
        .request_response("pauseProducer", json!({"producerId": "no-such-producer"}))
        .await
        .expect("pauseProducer gets a response");
    assert_eq!(
        error_code(&resp),
        Some("notFound"),
        "pausing an unknown producer should be notFound: {:?}",
        resp.raw
    );

    mallory
        .change_display_name("Mallory (reformed)")
        .await
        .expect("after bad input the connection still serves requests");
    let before = bob.received();
    let (audio0, video0) = (
        frames_from(&before, alice.peer_id(), Kind::Audio),
        frames_from(&before, alice.peer_id(), Kind::Video),
    );
    bob.wait_for(MEDIA_TIMEOUT, "more frames from Alice", |s| {
        frames_from(s, alice.peer_id(), Kind::Audio) > audio0 + MIN_FRAMES
            && frames_from(s, alice.peer_id(), Kind::Video) > video0 + MIN_FRAMES
    })
    .await
    .unwrap_or_else(|e| {
        panic!("Bob should keep receiving Alice's media after Mallory's garbage: {e}")
    });
    assert!(
        mallory.is_open(),
        "the server should not close Mallory's connection"
    );

    alice.close().await;
    bob.close().await;
    mallory.close().await;
    srv.stop().await;
}

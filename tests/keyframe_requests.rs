//! Keyframe requests: a subscriber's request reaches the publisher, and repeated requests
//! are merged so a struggling subscriber cannot flood the publisher: one outstanding request
//! per layer, and at most one per `sfu::keyframes::MIN_GAP`. A subscriber that joins shortly
//! after a keyframe starts from it, replayed from the server's history, without a request.

use std::time::Duration;

#[path = "edge/support.rs"]
mod support;

use multiparty_meeting::client::{Client, Kind, PublishSpec};
use multiparty_meeting::sfu::keyframes::MIN_GAP;
use multiparty_meeting::{server, Config};

const WAIT: Duration = Duration::from_secs(10);

/// Keyframe requests `publisher` has received from the server, over all its streams.
fn keyframe_requests(publisher: &Client) -> u64 {
    publisher.sent().iter().map(|p| p.keyframe_requests).sum()
}

#[actix_rt::test]
async fn requests_are_forwarded_and_throttled() {
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let mut alice = Client::connect(&base, "pli", "Alice").await.unwrap();
    alice
        .publish(PublishSpec {
            keyframe_interval: 0,
            ..PublishSpec::video_only()
        })
        .await
        .unwrap();
    let bob = Client::connect(&base, "pli", "Bob").await.unwrap();
    let stats = bob
        .wait_for(WAIT, "video", |s| {
            s.iter().any(|c| c.kind == Kind::Video && c.frames > 10)
        })
        .await
        .unwrap();
    let video = stats
        .iter()
        .find(|c| c.kind == Kind::Video)
        .unwrap()
        .consumer_id
        .clone();
    let keyframes = || {
        bob.received()
            .iter()
            .find(|c| c.consumer_id == video)
            .map(|c| c.keyframes)
            .unwrap_or(0)
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (req0, kf0) = (keyframe_requests(&alice), keyframes());

    bob.request_key_frame(&video).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while keyframe_requests(&alice) == req0 || keyframes() == kf0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request reaches Alice ({req0} -> {}) and a keyframe reaches Bob ({kf0} -> {})",
            keyframe_requests(&alice),
            keyframes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A burst of 20 requests reaches the publisher once, plus at most once per minimum gap
    // that the burst lasted.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let req1 = keyframe_requests(&alice);
    let started = tokio::time::Instant::now();
    for _ in 0..20 {
        bob.request_key_frame(&video).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lasted = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forwarded = keyframe_requests(&alice) - req1;
    let most = 1 + (lasted.as_millis() / MIN_GAP.as_millis()) as u64;
    assert!(
        (1..=most).contains(&forwarded),
        "20 requests in {lasted:?} reach the publisher 1 to {most} times, got {forwarded}"
    );

    let err = bob.request_key_frame("c-not-mine").await.unwrap_err();
    assert!(err.to_string().contains("notFound"), "{err}");
    srv.stop().await;
}

#[actix_rt::test]
async fn a_joiner_starts_from_a_recent_keyframe_without_asking_for_one() {
    support::init_logs();
    let srv = server::start(Config {
        metrics_listen: Some("127.0.0.1:0".into()),
        ..Config::for_tests()
    })
    .await
    .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let mut alice = Client::connect(&base, "replay", "Alice").await.unwrap();
    alice
        .publish(PublishSpec {
            // A keyframe every 5 frames (~170 ms): there is always a recent one.
            keyframe_interval: 5,
            ..PublishSpec::video_only()
        })
        .await
        .unwrap();
    let replayed = || async {
        support::metric_values(srv.metrics_addr.unwrap())
            .await
            .get("mm_keyframes_replayed_total")
            .copied()
            .expect("the replay counter is exposed")
    };
    // Alice's frames flow through the server first, so that it has keyframes to replay.
    let bob = Client::connect(&base, "replay", "Bob").await.unwrap();
    bob.wait_for(WAIT, "video for Bob", |s| {
        s.iter().any(|c| c.kind == Kind::Video && c.frames > 10)
    })
    .await
    .unwrap();
    let (req0, replayed0) = (keyframe_requests(&alice), replayed().await);

    // Four more join one after the other; a joiner whose first packet happens to start a
    // keyframe needs no replay, the others start at the last one.
    // Joins are paced by the waits below, so the pause before each shifts where in the
    // keyframe interval its connection comes up.
    let mut joiners = Vec::new();
    for (i, name) in ["Carol", "Dave", "Erin", "Frank"].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(40 * i as u64)).await;
        let c = Client::connect(&base, "replay", name).await.unwrap();
        let stats = c
            .wait_for(WAIT, "video", |s| {
                s.iter().any(|c| c.kind == Kind::Video && c.frames > 20)
            })
            .await
            .unwrap_or_else(|e| panic!("video for {name}: {e}"));
        let video = stats
            .iter()
            .find(|c| c.kind == Kind::Video)
            .unwrap()
            .clone();
        assert!(video.keyframes > 0, "{name} got a keyframe: {video:?}");
        assert_eq!(
            video.broken_deltas, 0,
            "every frame follows the one before: {video:?}"
        );
        assert_eq!(video.undecodable, 0, "{name}: {video:?}");
        joiners.push(c);
    }
    assert!(
        replayed().await > replayed0,
        "a joiner started at a replayed keyframe"
    );
    assert_eq!(
        keyframe_requests(&alice),
        req0,
        "no keyframe was asked of Alice for them"
    );
}

//! Keyframe requests: a subscriber's request reaches the publisher, and repeated requests
//! are merged so a struggling subscriber cannot flood the publisher: one outstanding request
//! per layer, and at most one per `sfu::keyframes::MIN_GAP`.

use std::time::Duration;

use multiparty_meeting::client::{Client, Kind, PublishSpec};
use multiparty_meeting::sfu::keyframes::MIN_GAP;
use multiparty_meeting::{server, Config};

const WAIT: Duration = Duration::from_secs(10);

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
    let requests = || {
        alice
            .sent()
            .iter()
            .map(|p| p.keyframe_requests)
            .sum::<u64>()
    };
    let keyframes = || {
        bob.received()
            .iter()
            .find(|c| c.consumer_id == video)
            .map(|c| c.keyframes)
            .unwrap_or(0)
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (req0, kf0) = (requests(), keyframes());

    bob.request_key_frame(&video).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while requests() == req0 || keyframes() == kf0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request reaches Alice ({req0} -> {}) and a keyframe reaches Bob ({kf0} -> {})",
            requests(),
            keyframes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A burst of 20 requests reaches the publisher once, plus at most once per minimum gap
    // that the burst lasted.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let req1 = requests();
    let started = tokio::time::Instant::now();
    for _ in 0..20 {
        bob.request_key_frame(&video).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lasted = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forwarded = requests() - req1;
    let most = 1 + (lasted.as_millis() / MIN_GAP.as_millis()) as u64;
    assert!(
        (1..=most).contains(&forwarded),
        "20 requests in {lasted:?} reach the publisher 1 to {most} times, got {forwarded}"
    );

    let err = bob.request_key_frame("c-not-mine").await.unwrap_err();
    assert!(err.to_string().contains("notFound"), "{err}");
    srv.stop().await;
}

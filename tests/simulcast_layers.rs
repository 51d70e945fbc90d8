//! Simulcast: the server forwards one layer per subscriber, picked from the size the
//! subscriber displays (and its bandwidth estimate), switching at keyframes it requests
//! from the publisher.

use std::time::Duration;

use multiparty_meeting::client::{Client, Kind, PublishSpec};
use multiparty_meeting::{server, Config};

const WAIT: Duration = Duration::from_secs(10);

async fn layer_change(bob: &Client, consumer: &str, layer: &str) {
    let n = bob
        .wait_notification(WAIT, &format!("consumerLayerChanged to {layer}"), |n| {
            n.method == "consumerLayerChanged"
                && n.data["consumerId"] == consumer
                && n.data["layer"] == layer
        })
        .await
        .unwrap_or_else(|e| panic!("layer {layer} expected for {consumer}: {e}"));
    assert_eq!(n.data["layer"], layer);
}

#[actix_rt::test]
async fn the_layer_follows_the_displayed_size() {
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let mut alice = Client::connect(&base, "simulcast", "Alice").await.unwrap();
    alice
        .publish(PublishSpec {
            simulcast: true,
            // Keyframes only when asked: every switch below proves a forwarded request.
            keyframe_interval: 0,
            ..PublishSpec::video_only()
        })
        .await
        .expect("Alice publishes three layers");
    let bob = Client::connect(&base, "simulcast", "Bob").await.unwrap();
    let stats = bob
        .wait_for(WAIT, "video from Alice", |s| {
            s.iter().any(|c| c.kind == Kind::Video && c.frames > 20)
        })
        .await
        .expect("Bob receives Alice's video");
    let video = stats
        .iter()
        .find(|c| c.kind == Kind::Video)
        .expect("a video consumer")
        .consumer_id
        .clone();

    // Plenty of bandwidth and no size reported: the top layer.
    layer_change(&bob, &video, "h").await;

    let requests_before: u64 = alice.sent().iter().map(|p| p.keyframe_requests).sum();
    bob.set_consumer_preferences(&video, 160, 90).await.unwrap();
    layer_change(&bob, &video, "l").await;
    let requests_after: u64 = alice.sent().iter().map(|p| p.keyframe_requests).sum();
    assert!(
        requests_after > requests_before,
        "switching layers asks the publisher for a keyframe ({requests_before} -> {requests_after})"
    );

    let frames = |s: &[multiparty_meeting::client::ConsumerStats]| {
        s.iter()
            .find(|c| c.consumer_id == video)
            .map(|c| c.frames)
            .unwrap_or(0)
    };
    let before = frames(&bob.received());
    bob.set_consumer_preferences(&video, 1280, 720)
        .await
        .unwrap();
    layer_change(&bob, &video, "h").await;
    bob.wait_for(WAIT, "video keeps flowing after the switches", |s| {
        frames(s) > before + 30
    })
    .await
    .expect("frames after switching back up");

    // A hidden tile gets nothing.
    bob.set_consumer_preferences(&video, 0, 0).await.unwrap();
    let n = bob
        .wait_notification(WAIT, "layer null", |n| {
            n.method == "consumerLayerChanged"
                && n.data["consumerId"] == video.as_str()
                && n.data["layer"].is_null()
        })
        .await
        .expect("hiding the tile stops the video");
    assert!(n.data["layer"].is_null());
    srv.stop().await;
}

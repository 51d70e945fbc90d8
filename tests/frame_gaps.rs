//! A subscriber never decodes a video frame whose references it did not get (issues 15, 11).
//! Frames lost between publisher and server beyond what NACK repairs, a paused and resumed
//! camera, and upper simulcast layers switched off and on. The server forwards RTP packets:
//! a loss it could not repair reaches the subscriber as the same sequence gap, and the
//! subscriber (the Rust client, as a browser) drops delta frames after it and asks for a
//! keyframe, which the server relays; a pause or a layer switch starts the consumer's stream
//! again at a keyframe, without a gap. So the picture freezes and recovers instead of
//! decoding garbage.
//!
//! The oracle: each generated frame carries its frame number; a delta frame the subscriber
//! decodes (str0m delivers it as contiguous) whose number does not follow the frame decoded
//! just before is a gap the server hid: a decoder would show garbage.

use std::time::{Duration, Instant};

use multiparty_meeting::client::{Client, ConsumerStats, Kind, PublishSpec};
use multiparty_meeting::{server, Config};

const WAIT: Duration = Duration::from_secs(10);

fn video(c: &Client) -> ConsumerStats {
    c.received()
        .into_iter()
        .find(|s| s.kind == Kind::Video && !s.closed)
        .expect("a video consumer")
}

/// Waits until the subscriber received `more` frames beyond `from`, with a keyframe among them.
async fn recovers(bob: &Client, from: &ConsumerStats, more: u64, what: &str) {
    let (frames, keyframes) = (from.frames, from.keyframes);
    bob.wait_for(WAIT, what, |s| {
        s.iter().any(|c| {
            c.consumer_id == from.consumer_id
                && c.frames >= frames + more
                && c.keyframes > keyframes
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}; before: {from:?}; now: {:?}", video(bob)));
}

#[actix_rt::test]
async fn frames_lost_beyond_repair_cost_frames_until_the_next_keyframe() {
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let mut alice = Client::connect(&base, "gaps", "Alice").await.unwrap();
    alice
        .publish(PublishSpec {
            // Keyframes only when asked: each recovery below proves a request.
            keyframe_interval: 0,
            // Lost packets stay lost: NACK finds nothing to resend.
            resend_buffer_video: Some(4),
            ..PublishSpec::video_only()
        })
        .await
        .unwrap();
    let bob = Client::connect(&base, "gaps", "Bob").await.unwrap();
    bob.wait_for(WAIT, "video from Alice", |s| {
        s.iter().any(|c| c.kind == Kind::Video && c.frames > 20)
    })
    .await
    .unwrap();

    let mut bursts = Vec::new();
    for burst in [20u32, 40, 90] {
        let before = video(&bob);
        alice.drop_next_rtp(burst).unwrap();
        recovers(
            &bob,
            &before,
            30,
            &format!("Bob's video back after {burst} RTP packets lost"),
        )
        .await;
        let after = video(&bob);
        bursts.push((
            burst,
            after.frames - before.frames,
            after.keyframes - before.keyframes,
        ));
    }
    let end = video(&bob);
    println!("bursts (packets lost, frames then received, keyframes then received): {bursts:?}");
    println!(
        "Bob: {} frames, {} keyframes, {} broken delta frames",
        end.frames, end.keyframes, end.broken_deltas
    );
    assert_eq!(
        end.broken_deltas, 0,
        "Bob received delta frames whose references he never got: {end:?}"
    );
    let sent: u64 = alice.sent().iter().map(|p| p.frames).sum();
    assert!(
        end.frames + 30 < sent,
        "the loss bursts must cost Bob frames (else this test shows nothing): sent {sent}, received {}",
        end.frames
    );
}

#[actix_rt::test]
async fn a_paused_camera_and_switched_off_layers_resume_at_a_keyframe() {
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let mut alice = Client::connect(&base, "layers-off", "Alice").await.unwrap();
    let tracks = alice
        .publish(PublishSpec {
            simulcast: true,
            keyframe_interval: 0,
            ..PublishSpec::video_only()
        })
        .await
        .unwrap();
    let bob = Client::connect(&base, "layers-off", "Bob").await.unwrap();
    bob.wait_for(WAIT, "video from Alice", |s| {
        s.iter().any(|c| c.kind == Kind::Video && c.frames > 20)
    })
    .await
    .unwrap();
    let consumer = video(&bob).consumer_id;
    bob.wait_notification(WAIT, "the top layer", |n| {
        n.method == "consumerLayerChanged"
            && n.data["consumerId"] == consumer
            && n.data["layer"] == "h"
    })
    .await
    .expect("Bob gets the top layer first");

    // The browser switches its upper layers off (CPU or bandwidth), then on again.
    for round in 0..3 {
        for (layers, layer) in [(1, "l"), (3, "h")] {
            let before = video(&bob);
            let t0 = Instant::now();
            alice.set_video_layers(layers).unwrap();
            bob.wait_notification(WAIT, &format!("a switch to {layer}"), |n| {
                n.method == "consumerLayerChanged"
                    && n.data["consumerId"] == consumer
                    && n.data["layer"] == layer
                    && n.received_at > t0
            })
            .await
            .unwrap_or_else(|e| {
                panic!("round {round}: {layers} layer(s) sent, no switch to {layer}: {e}")
            });
            recovers(&bob, &before, 20, &format!("Bob's video on layer {layer}")).await;
        }
    }

    // The camera paused on the server (frames still arrive, dropped there) and resumed.
    let producer = tracks
        .iter()
        .find(|t| t.kind == Kind::Video)
        .expect("the camera")
        .producer_id
        .clone();
    alice.pause_producer(&producer).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = video(&bob);
    alice.resume_producer(&producer).await.unwrap();
    recovers(&bob, &before, 20, "Bob's video after the resume").await;

    let end = video(&bob);
    println!(
        "Bob: {} frames, {} keyframes, {} broken delta frames",
        end.frames, end.keyframes, end.broken_deltas
    );
    assert_eq!(
        end.broken_deltas, 0,
        "Bob received delta frames whose references he never got: {end:?}"
    );
}

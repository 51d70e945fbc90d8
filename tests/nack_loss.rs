//! Loss between server and subscriber is repaired by NACK (issue 11). The subscriber's recv
//! transport drops 10 % of the RTP datagrams it receives, retransmissions included, for ten
//! seconds; it asks for what is missing and the server resends it, from the producer's
//! history, shared by all its consumers and rewritten for each (`sfu::history`), on the
//! subscriber's repair stream (`sfu::egress`).
//! The publisher sends no keyframes unless asked, so a frame lost for good shows as a gap in
//! the frame stamps and as a keyframe request. Prints the loss applied and the residual loss.

#[path = "edge/support.rs"]
mod support;

use std::time::Duration;

use multiparty_meeting::client::{Client, ConsumerStats, Kind, PublishSpec};
use multiparty_meeting::{server, Config};
use support::{init_logs, metric_values};

const LOSS: f64 = 0.10;
const LOSSY_FOR: Duration = Duration::from_secs(10);

fn video(c: &Client) -> ConsumerStats {
    c.received()
        .into_iter()
        .find(|s| s.kind == Kind::Video && !s.closed)
        .expect("a video consumer")
}

#[actix_rt::test]
async fn nack_repairs_loss_between_server_and_subscriber() {
    init_logs();
    let srv = server::start(Config {
        metrics_listen: Some("127.0.0.1:0".into()),
        ..Config::for_tests()
    })
    .await
    .expect("server starts");
    let metrics = srv.metrics_addr.expect("a metrics listener");
    let base = format!("http://{}", srv.http_addr);
    let mut alice = Client::connect(&base, "lossy", "Alice").await.unwrap();
    alice
        .publish(PublishSpec {
            keyframe_interval: 0,
            // Four packets a frame: a frame is lost when any of them is.
            video_frame_bytes: 4_000,
            ..PublishSpec::video_only()
        })
        .await
        .unwrap();
    let bob = Client::connect(&base, "lossy", "Bob").await.unwrap();
    bob.wait_for(Duration::from_secs(10), "video from Alice", |s| {
        s.iter().any(|c| c.kind == Kind::Video && c.frames > 20)
    })
    .await
    .unwrap();

    let before = video(&bob);
    let nacks_before = metric_values(metrics).await["mm_nacks_received_total"];
    let resends_before = metric_values(metrics).await["mm_resends_from_history_total"];
    let (seen_before, dropped_before) = bob.incoming_rtp();
    bob.drop_incoming_rtp(LOSS);
    tokio::time::sleep(LOSSY_FOR).await;
    bob.drop_incoming_rtp(0.0);
    let (seen, dropped) = bob.incoming_rtp();
    // Let the last repairs of the lossy period arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = video(&bob);
    let nacks = metric_values(metrics).await["mm_nacks_received_total"] - nacks_before;
    let resends = metric_values(metrics).await["mm_resends_from_history_total"] - resends_before;

    let (seen, dropped) = (seen - seen_before, dropped - dropped_before);
    let applied = dropped as f64 / seen as f64;
    let frames = after.max_seq.unwrap() - before.max_seq.unwrap();
    let lost = after.lost_estimate() - before.lost_estimate();
    let residual = lost as f64 / f64::from(frames);
    let unusable = after.undecodable - before.undecodable;
    // A gap str0m could not fill before giving the frame up: a packet NACK did not bring back.
    let gaps = after.discontinuities - before.discontinuities;
    println!(
        "{seen} RTP datagrams reached Bob's socket in {LOSSY_FOR:?}, {dropped} dropped ({:.1} %); \
         NACKs the server received: {nacks}; packets resent from the shared history: \
         {resends}; unrepaired gaps: {gaps} (residual packet loss \
         {:.2} %); frames sent meanwhile: {frames}, lost for good: {lost} ({:.2} %), of which \
         {unusable} undecodable after a gap, until the keyframe asked for",
        applied * 100.0,
        gaps as f64 * 100.0 / seen as f64,
        residual * 100.0
    );
    assert!(
        applied > LOSS / 2.0,
        "the test must lose packets to show anything: {dropped} of {seen}"
    );
    assert!(nacks > 0.0, "Bob asked for the lost packets");
    assert!(
        resends > 0.0,
        "the worker answered the NACKs from the producer's history"
    );
    // Without repair every dropped packet is a gap, and a frame of four packets is lost with
    // 1 - 0.9^4 = 34 % probability. A packet whose retransmission is lost too (1 % of them)
    // may come too late for the receiver: at most 5 % of the dropped packets may stay lost.
    assert!(
        gaps * 20 <= dropped,
        "NACK left {gaps} of {dropped} dropped packets missing; before: {before:?}; after: {after:?}"
    );
    // Each unrepaired gap costs the frames until the keyframe (requests are throttled to two
    // a second): a bound on the frames, with room for the gaps allowed above.
    assert!(
        residual < 0.15,
        "{lost} of {frames} frames lost ({:.2} %); before: {before:?}; after: {after:?}",
        residual * 100.0
    );
    assert_eq!(after.broken_deltas, 0, "{after:?}");
}

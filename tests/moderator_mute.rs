//! A moderator's mute is enforced by the server, not asked of the client: the muted peer's
//! audio stops reaching the others even though its client keeps sending, its own
//! `resumeProducer` is refused, and nothing flows again until the moderator allows it and the
//! peer resumes. The real server in-process, the Rust client over the real protocol.

use std::time::Duration;

use multiparty_meeting::client::{Client, Kind, PublishSpec};
use multiparty_meeting::{server, Config};
use serde_json::json;

const MEDIA_TIMEOUT: Duration = Duration::from_secs(15);

/// Audio frames `from` sent that `at` received.
fn audio_from(at: &Client, from: &str) -> u64 {
    at.received()
        .iter()
        .filter(|c| c.peer_id == from && c.kind == Kind::Audio)
        .map(|c| c.frames)
        .sum()
}

#[actix_rt::test]
async fn a_muted_peers_audio_stops_and_it_cannot_unmute_itself() {
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    // The first participant of a new meeting moderates.
    let moderator = Client::connect(&base, "muting", "Mod")
        .await
        .expect("Mod joins");
    assert!(
        moderator
            .join_response()
            .roles
            .iter()
            .any(|r| r == "moderator"),
        "the first participant is moderator: {:?}",
        moderator.join_response()
    );
    let mut speaker = Client::connect(&base, "muting", "Sam")
        .await
        .expect("Sam joins");
    let published = speaker
        .publish(PublishSpec::audio_only())
        .await
        .expect("Sam publishes a microphone");
    let mic = published[0].producer_id.clone();
    let sam = speaker.peer_id().to_string();

    moderator
        .wait_for(MEDIA_TIMEOUT, "Sam's audio", |s| {
            s.iter()
                .any(|c| c.peer_id == sam && c.kind == Kind::Audio && c.frames > 20)
        })
        .await
        .expect("Mod hears Sam before the mute");

    moderator
        .request("mutePeer", json!({"peerId": sam}))
        .await
        .expect("a moderator may mute");
    let paused = speaker
        .wait_notification(Duration::from_secs(5), "producerPaused byModerator", |n| {
            n.method == "producerPaused" && n.data["byModerator"] == true
        })
        .await;
    assert!(paused.is_ok(), "Sam is told it was muted: {paused:?}");
    let blocked = speaker
        .wait_notification(Duration::from_secs(5), "mediaBlocked audio", |n| {
            n.method == "mediaBlocked" && n.data["kind"] == "audio"
        })
        .await;
    assert!(blocked.is_ok(), "{blocked:?}");

    // Sam's client keeps sending audio; the server forwards none of it. Frames in flight when
    // the mute took effect are let through during the first half second.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let muted_at = audio_from(&moderator, &sam);
    let refused = speaker
        .request("resumeProducer", json!({"producerId": mic}))
        .await;
    assert_eq!(
        refused.as_ref().err().and_then(|e| e.server_code()),
        Some("forbidden"),
        "Sam cannot unmute itself: {refused:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = audio_from(&moderator, &sam);
    assert_eq!(
        later, muted_at,
        "no audio of Sam reached Mod while muted ({muted_at} -> {later} frames)"
    );
    assert!(
        speaker.sent().iter().any(|p| p.frames > 0),
        "Sam's client did keep sending"
    );

    // The moderator allows it; Sam unmutes itself; audio flows again.
    moderator
        .request("allowMedia", json!({"peerId": sam, "kind": "audio"}))
        .await
        .expect("a moderator may allow");
    speaker
        .request("resumeProducer", json!({"producerId": mic}))
        .await
        .expect("Sam may unmute once allowed");
    moderator
        .wait_for(MEDIA_TIMEOUT, "Sam's audio after the unmute", |s| {
            s.iter()
                .filter(|c| c.peer_id == sam && c.kind == Kind::Audio)
                .map(|c| c.frames)
                .sum::<u64>()
                > later + 20
        })
        .await
        .expect("Mod hears Sam again");

    // A normal peer cannot mute anyone.
    let refused = speaker
        .request("mutePeer", json!({"peerId": moderator.peer_id()}))
        .await;
    assert_eq!(
        refused.as_ref().err().and_then(|e| e.server_code()),
        Some("forbidden")
    );
    drop(srv);
}

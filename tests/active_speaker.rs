//! Active speaker: the server reads the audio-level header extension and tells everyone who
//! speaks; silence does not win, and a speaker who leaves is cleared.

use std::time::Duration;

use multiparty_meeting::client::{Client, PublishSpec};
use multiparty_meeting::{server, Config};

const WAIT: Duration = Duration::from_secs(10);

#[actix_rt::test]
async fn the_loud_peer_is_announced_and_cleared_when_it_leaves() {
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let mut quiet = Client::connect(&base, "speaker", "Quiet").await.unwrap();
    quiet
        .publish(PublishSpec {
            audio_level: -120,
            ..PublishSpec::audio_only()
        })
        .await
        .unwrap();
    let mut loud = Client::connect(&base, "speaker", "Loud").await.unwrap();
    loud.publish(PublishSpec {
        audio_level: -15,
        ..PublishSpec::audio_only()
    })
    .await
    .unwrap();
    let listener = Client::connect(&base, "speaker", "Listener").await.unwrap();
    let loud_id = loud.peer_id().to_string();

    for who in [&quiet, &listener] {
        let n = who
            .wait_notification(WAIT, "activeSpeaker", |n| n.method == "activeSpeaker")
            .await
            .expect("an activeSpeaker notification");
        assert_eq!(
            n.data["peerId"],
            loud_id.as_str(),
            "the loud peer speaks: {n:?}"
        );
    }
    assert!(
        !listener
            .notifications()
            .iter()
            .any(|n| n.method == "activeSpeaker" && n.data["peerId"] == quiet.peer_id()),
        "a peer at -120 dBov is never the speaker"
    );

    loud.leave().await.unwrap();
    let n = listener
        .wait_notification(WAIT, "activeSpeaker null", |n| {
            n.method == "activeSpeaker" && n.data["peerId"].is_null()
        })
        .await
        .expect("the speaker is cleared when it leaves");
    assert!(n.data["peerId"].is_null());
    srv.stop().await;
}

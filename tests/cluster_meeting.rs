//! One meeting across three instances sharing a real Redis: A's WebSocket goes to instance 1,
//! B's to instance 2, C's to instance 3, and they are in one meeting. One instance hosts it,
//! the other two relay their participant to it; everyone receives everyone's media.

#[path = "cluster/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{Instance, Participant, Redis};

const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);

fn others(p: &Participant) -> BTreeSet<String> {
    p.names().into_values().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[actix_rt::test]
async fn participants_on_three_instances_share_one_meeting() {
    let redis = Redis::start();
    let nodes = [
        Instance::start("n1", &redis, &[]),
        Instance::start("n2", &redis, &[]),
        Instance::start("n3", &redis, &[]),
    ];
    let logs = || {
        nodes
            .iter()
            .map(|n| {
                format!(
                    "--- {}\n{}",
                    n.name,
                    n.log.tail(if std::env::var("MM_TEST_DEBUG").is_ok() {
                        400
                    } else {
                        25
                    })
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let a = Participant::join("A", "standup", &nodes[0].url)
        .await
        .unwrap_or_else(|e| panic!("A joins through n1: {e}\n{}", logs()));
    let b = Participant::join("B", "standup", &nodes[1].url)
        .await
        .unwrap_or_else(|e| panic!("B joins through n2: {e}\n{}", logs()));
    let c = Participant::join("C", "standup", &nodes[2].url)
        .await
        .unwrap_or_else(|e| panic!("C joins through n3: {e}\n{}", logs()));

    // The join responses and peerJoined notifications list everyone.
    let c_client = c.client.as_ref().unwrap();
    let listed: BTreeSet<String> = c_client
        .join_response()
        .peers
        .iter()
        .map(|p| p.display_name.clone())
        .collect();
    assert_eq!(listed, set(&["A", "B"]), "C's join response lists A and B");
    let until = Instant::now() + Duration::from_secs(10);
    while (others(&a) != set(&["B", "C"]) || others(&b) != set(&["A", "C"]))
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(others(&a), set(&["B", "C"]), "A is told of B and C");
    assert_eq!(others(&b), set(&["A", "C"]), "B knows A and is told of C");

    // Exactly one instance hosts the meeting; the other two relay their participant.
    let rooms: Vec<u64> = nodes.iter().map(Instance::rooms).collect();
    assert_eq!(
        rooms.iter().sum::<u64>(),
        1,
        "one host in all: {rooms:?}\n{}",
        logs()
    );
    let relayed: Vec<u64> = nodes
        .iter()
        .map(|n| {
            n.health()
                .and_then(|h| h["relayedPeers"].as_u64())
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(
        relayed.iter().sum::<u64>(),
        2,
        "two participants relayed: {relayed:?}"
    );
    let host = rooms.iter().position(|r| *r == 1).unwrap();
    assert_eq!(relayed[host], 0, "the host relays nobody");

    // Everyone receives everyone's media from the host.
    let until = Instant::now() + MEDIA_TIMEOUT;
    loop {
        let done = a.has_video_from(&["B", "C"], 20)
            && b.has_video_from(&["A", "C"], 20)
            && c.has_video_from(&["A", "B"], 20);
        if done {
            break;
        }
        assert!(
            Instant::now() < until,
            "media did not reach everyone: A<-B {} A<-C {} B<-A {} B<-C {} C<-A {} C<-B {}\n{}",
            a.video_frames_from("B"),
            a.video_frames_from("C"),
            b.video_frames_from("A"),
            b.video_frames_from("C"),
            c.video_frames_from("A"),
            c.video_frames_from("B"),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Signaling crosses the relays both ways: a rename on n2 reaches n1 and n3.
    b.client
        .as_ref()
        .unwrap()
        .change_display_name("Bea")
        .await
        .expect("rename through a relay");
    for p in [&a, &c] {
        let got = p
            .client
            .as_ref()
            .unwrap()
            .wait_notification(Duration::from_secs(5), "peerUpdated Bea", |n| {
                n.method == "peerUpdated" && n.data["displayName"] == "Bea"
            })
            .await;
        assert!(got.is_ok(), "{} sees the rename: {got:?}", p.name);
    }

    // A participant leaving through its relay leaves the meeting.
    let a_id = a.client.as_ref().unwrap().peer_id().to_string();
    a.client.unwrap().leave().await.expect("A leaves");
    for p in [&b, &c] {
        let left = p
            .client
            .as_ref()
            .unwrap()
            .wait_notification(Duration::from_secs(5), "peerLeft A", |n| {
                n.method == "peerLeft" && n.data["peerId"] == a_id.as_str()
            })
            .await;
        assert!(left.is_ok(), "{} is told A left: {left:?}", p.name);
    }
}

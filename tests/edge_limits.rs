//! Limits against abuse (`[limits]`): each exceeded with a typed error, none affecting anyone
//! else. A flood on one connection gets `rateLimited` while another room's media flows; too
//! many connections or joins from one client address (the trusted forwarded one, or for a
//! relayed participant the one in the signed relay claims), too many participants or rooms on
//! the instance get `rateLimited`/`tooMany`, and places come back when people leave.

#[path = "edge/support.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use multiparty_meeting::client::{Client, Kind, PublishSpec};
use multiparty_meeting::config::LimitsConfig;
use multiparty_meeting::ids::{NodeId, RoomId};
use multiparty_meeting::server::relay::{claims, RelayAuth, RELAY_HEADER};
use multiparty_meeting::{server, Config};
use serde_json::json;
use support::{error_code, init_logs, ws, Frame, Ws};

const WAIT: Duration = Duration::from_secs(15);

/// No per-address exemption (every test client is on loopback), trusted forwarded headers.
fn config(limits: LimitsConfig) -> Config {
    Config {
        behind_reverse_proxy: true,
        limits: LimitsConfig {
            exempt_ips: Vec::new(),
            ..limits
        },
        ..Config::for_tests()
    }
}

async fn from(addr: std::net::SocketAddr, room: &str, ip: &str) -> Ws {
    ws(addr, room, &[("X-Forwarded-For", ip)])
        .await
        .unwrap_or_else(|e| panic!("upgrade from {ip} refused: {e:?}"))
}

/// Frames of `kind` Bob received from Alice so far.
fn frames(bob: &Client, kind: Kind) -> u64 {
    bob.received()
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.frames)
        .sum()
}

#[actix_rt::test]
async fn a_flood_gets_rate_limited_while_another_rooms_media_flows() {
    init_logs();
    let srv = server::start(config(LimitsConfig {
        signaling_rate: 20,
        signaling_burst: 40,
        ..LimitsConfig::default()
    }))
    .await
    .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let mut alice = Client::connect(&base, "calm", "Alice")
        .await
        .expect("Alice joins");
    alice
        .publish(PublishSpec::audio_video())
        .await
        .expect("Alice publishes");
    let bob = Client::connect(&base, "calm", "Bob")
        .await
        .expect("Bob joins");
    bob.wait_for(WAIT, "Bob receives Alice's audio and video", |c| {
        c.iter().filter(|c| c.frames > 10).count() == 2
    })
    .await
    .expect("media flows before the flood");

    let mut mallory = from(srv.http_addr, "flood", "198.51.100.66").await;
    assert_eq!(mallory.join("Mallory").await["ok"], true);
    let (video_before, audio_before) = (frames(&bob, Kind::Video), frames(&bob, Kind::Audio));
    // Mallory floods until Bob has received well over a second of media meanwhile. Every
    // request is answered: processed, or refused at once without being processed. Sent in
    // chunks, each read back before the next, so neither side's socket buffer fills.
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = stop.clone();
    let flood = actix_rt::spawn(async move {
        const CHUNK: u64 = 200;
        let (mut sent, mut limited) = (0u64, 0u64);
        while !flooding.load(Ordering::SeqCst) {
            let mut ids = Vec::new();
            for _ in 0..CHUNK {
                let name = format!("M{sent}");
                sent += 1;
                ids.push(
                    mallory
                        .send_request("changeDisplayName", json!({"displayName": name}))
                        .await,
                );
            }
            for (id, response) in mallory.responses(&ids).await {
                match error_code(&response) {
                    None => assert_eq!(response["ok"], true, "{response}"),
                    Some("rateLimited") => {
                        limited += 1;
                        assert!(
                            response["error"]["message"]
                                .as_str()
                                .unwrap()
                                .contains("per second"),
                            "{response}"
                        );
                    }
                    Some(other) => panic!("request {id}: unexpected error {other}: {response}"),
                }
            }
        }
        (mallory, sent, limited)
    });
    let during = bob
        .wait_for(WAIT, "Bob's media continues during the flood", |c| {
            let (v, a) = (
                c.iter()
                    .filter(|c| c.kind == Kind::Video)
                    .map(|c| c.frames)
                    .sum::<u64>(),
                c.iter()
                    .filter(|c| c.kind == Kind::Audio)
                    .map(|c| c.frames)
                    .sum::<u64>(),
            );
            v > video_before + 40 && a > audio_before + 40
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    let (mut mallory, sent, limited) = flood.await.expect("the flood task ends");
    during.expect("the calm room is unaffected by the flood");
    assert!(
        sent >= 400 && limited > sent / 2,
        "most of {sent} requests over a budget of 40 + 20/s must be refused, {limited} were"
    );
    let names: Vec<String> = bob
        .notifications()
        .iter()
        .filter(|n| n.method == "peerJoined" || n.method == "peerUpdated")
        .map(|n| n.data.to_string())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("Mallory") && !n.contains("\"M1")),
        "nothing of the flood reaches the other room: {names:?}"
    );
    // The flooder's connection stays usable once its budget refills.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let id = mallory
        .send_request("changeDisplayName", json!({"displayName": "Mallory"}))
        .await;
    let after = mallory.response(id).await;
    assert_eq!(
        after["ok"], true,
        "after a pause requests are served again: {after}"
    );
    srv.stop().await;
}

#[actix_rt::test]
async fn connections_per_address_are_limited_and_given_back() {
    init_logs();
    let srv = server::start(config(LimitsConfig {
        connections_per_ip: 2,
        ..LimitsConfig::default()
    }))
    .await
    .expect("server starts");
    let addr = srv.http_addr;
    let first = from(addr, "many", "198.51.100.7").await;
    let mut second = from(addr, "many", "198.51.100.7").await;
    assert_eq!(second.join("Second").await["ok"], true);
    let mut third = from(addr, "many", "198.51.100.7").await;
    match third.next().await {
        Frame::Json(v) => {
            assert_eq!(v["method"], "error", "instead of welcome: {v}");
            assert_eq!(v["data"]["code"], "tooMany", "{v}");
        }
        other => panic!("the third connection must be told why: {other:?}"),
    }
    match third.next().await {
        Frame::Closed(code, _) => assert_eq!(code, 1008, "closed as a policy violation"),
        other => panic!("then closed: {other:?}"),
    }
    // Another address, and the room, are not affected.
    let mut other = from(addr, "many", "198.51.100.8").await;
    assert_eq!(other.join("Other").await["ok"], true);
    // A closed connection gives its place back.
    first.close().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = from(addr, "many", "198.51.100.7").await;
        match again.next().await {
            Frame::Json(v) if v["method"] == "welcome" => break,
            other => assert!(
                Instant::now() < deadline,
                "the place of a closed connection never came back: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().await;
}

#[actix_rt::test]
async fn joins_per_address_per_minute_are_rate_limited() {
    init_logs();
    let srv = server::start(config(LimitsConfig {
        joins_per_ip_per_minute: 2,
        ..LimitsConfig::default()
    }))
    .await
    .expect("server starts");
    let mut held = Vec::new();
    for i in 0..2 {
        let mut c = from(srv.http_addr, "joins", "198.51.100.9").await;
        assert_eq!(c.join(&format!("J{i}")).await["ok"], true);
        held.push(c);
    }
    let mut third = from(srv.http_addr, "joins", "198.51.100.9").await;
    let refused = third.join("J2").await;
    assert_eq!(error_code(&refused), Some("rateLimited"), "{refused}");
    // The refused connection stays open; another address joins.
    let mut other = from(srv.http_addr, "joins", "198.51.100.10").await;
    assert_eq!(other.join("Other").await["ok"], true);
    let id = third.send_request("leave", json!({})).await;
    assert_eq!(third.response(id).await["error"]["code"], "notJoined");
    srv.stop().await;
}

#[actix_rt::test]
async fn participants_per_instance_are_limited_and_given_back() {
    init_logs();
    let srv = server::start(config(LimitsConfig {
        max_peers: 2,
        ..LimitsConfig::default()
    }))
    .await
    .expect("server starts");
    let mut a = from(srv.http_addr, "room-a", "198.51.100.11").await;
    assert_eq!(a.join("A").await["ok"], true);
    let mut b = from(srv.http_addr, "room-b", "198.51.100.12").await;
    assert_eq!(b.join("B").await["ok"], true);
    let mut c = from(srv.http_addr, "room-a", "198.51.100.13").await;
    let refused = c.join("C").await;
    assert_eq!(error_code(&refused), Some("tooMany"), "{refused}");
    // A participant leaving frees a place.
    let id = b.send_request("leave", json!({})).await;
    assert_eq!(b.response(id).await["ok"], true);
    let deadline = Instant::now() + WAIT;
    loop {
        let id = c
            .send_request("join", json!({"displayName": "C", "protocolVersion": 1}))
            .await;
        let r = c.response(id).await;
        if r["ok"] == true {
            break;
        }
        assert_eq!(error_code(&r), Some("tooMany"), "{r}");
        assert!(
            Instant::now() < deadline,
            "the place of a leaver never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().await;
}

#[actix_rt::test]
async fn rooms_per_instance_are_limited_without_touching_open_rooms() {
    init_logs();
    let srv = server::start(config(LimitsConfig {
        max_rooms: 1,
        ..LimitsConfig::default()
    }))
    .await
    .expect("server starts");
    let mut a = from(srv.http_addr, "first", "198.51.100.21").await;
    assert_eq!(a.join("A").await["ok"], true);
    let mut b = from(srv.http_addr, "second", "198.51.100.22").await;
    let refused = b.join("B").await;
    assert_eq!(error_code(&refused), Some("tooMany"), "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rooms"),
        "{refused}"
    );
    let mut c = from(srv.http_addr, "first", "198.51.100.23").await;
    assert_eq!(
        c.join("C").await["ok"],
        true,
        "the open room still takes people"
    );
    srv.stop().await;
}

#[actix_rt::test]
async fn a_relayed_participant_counts_under_the_address_in_its_claims() {
    init_logs();
    const SECRET: &str = "an-edge-test-cookie-secret-0123456789abcdef";
    let srv = server::start(Config {
        cookie_secret: Some(SECRET.into()),
        ..config(LimitsConfig {
            connections_per_ip: 1,
            ..LimitsConfig::default()
        })
    })
    .await
    .expect("server starts");
    let relayed = |ip: &str| {
        RelayAuth::new(Some(SECRET)).sign(&claims(
            &NodeId::from_raw("edge-1"),
            &RoomId::parse("relay-limits").unwrap(),
            ip.into(),
            "https".into(),
            "meet.example.org".into(),
            None,
        ))
    };
    let header = relayed("198.51.100.30");
    let mut first = ws(
        srv.http_addr,
        "relay-limits",
        &[(RELAY_HEADER, header.as_str())],
    )
    .await
    .expect("relayed upgrade");
    assert_eq!(first.join("R1").await["ok"], true);
    let header = relayed("198.51.100.30");
    let mut second = ws(
        srv.http_addr,
        "relay-limits",
        &[(RELAY_HEADER, header.as_str())],
    )
    .await
    .expect("relayed upgrade");
    match second.next().await {
        Frame::Json(v) => assert_eq!(v["data"]["code"], "tooMany", "{v}"),
        other => panic!("the second relayed connection of 198.51.100.30 is refused: {other:?}"),
    }
    // The relaying instance's own (loopback) address is not what counts.
    let header = relayed("198.51.100.31");
    let mut third = ws(
        srv.http_addr,
        "relay-limits",
        &[(RELAY_HEADER, header.as_str())],
    )
    .await
    .expect("relayed upgrade");
    assert_eq!(third.join("R3").await["ok"], true);
    srv.stop().await;
}

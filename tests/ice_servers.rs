//! ICE servers in the `join` response: the static `iceServers` of the configuration as they
//! are, then TURN credentials of the participant's own from `[turn]` (coturn's REST scheme:
//! username `expiry:peerId`, credential base64(HMAC-SHA1(secret, username))).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use multiparty_meeting::client::Client;
use multiparty_meeting::config::{IceServerConfig, TurnConfig};
use multiparty_meeting::server::turn::rest_credential;
use multiparty_meeting::{server, Config};

#[actix_rt::test]
async fn join_hands_out_static_servers_and_own_turn_credentials() {
    let srv = server::start(Config {
        ice_servers: vec![
            IceServerConfig::Url("stun:stun.example.org:3478".into()),
            IceServerConfig::Server {
                urls: vec!["turn:fixed.example.org:3478".into()],
                username: Some("meet".into()),
                credential: Some("fixed-password".into()),
            },
        ],
        turn: TurnConfig {
            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            secret: Some("north-wind-secret".into()),
            ttl: 3600,
        },
        ..Config::for_tests()
    })
    .await
    .expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let alice = Client::connect(&base, "ice", "Alice")
        .await
        .expect("Alice joins");
    let bob = Client::connect(&base, "ice", "Bob")
        .await
        .expect("Bob joins");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let mut credentials = Vec::new();
    for client in [&alice, &bob] {
        let servers = serde_json::to_value(&client.join_response().ice_servers).unwrap();
        assert_eq!(
            servers[0]["urls"][0], "stun:stun.example.org:3478",
            "{servers}"
        );
        assert!(servers[0].get("username").is_none(), "{servers}");
        assert_eq!(servers[1]["username"], "meet", "{servers}");
        assert_eq!(servers[1]["credential"], "fixed-password", "{servers}");
        let turn = &servers[2];
        assert_eq!(
            turn["urls"][0], "turn:127.0.0.1:3478?transport=udp",
            "{servers}"
        );
        let username = turn["username"].as_str().expect("a username");
        let (expiry, peer) = username.split_once(':').expect("expiry:peerId");
        assert_eq!(peer, client.peer_id(), "the username names the peer");
        let expiry: u64 = expiry.parse().expect("Unix seconds");
        assert!(
            expiry >= now + 3590 && expiry <= now + 3610,
            "valid for ttl from now: {expiry} vs {now}"
        );
        assert_eq!(
            turn["credential"].as_str(),
            Some(rest_credential("north-wind-secret", username).as_str()),
            "coturn's check of the credential passes"
        );
        credentials.push(turn["credential"].clone());
    }
    assert_ne!(
        credentials[0], credentials[1],
        "each participant has its own"
    );
    srv.stop().await;
}

#[actix_rt::test]
async fn without_configuration_clients_get_no_servers() {
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let alice = Client::connect(&format!("http://{}", srv.http_addr), "ice", "Alice")
        .await
        .expect("Alice joins");
    assert!(alice.join_response().ice_servers.is_empty());
    srv.stop().await;
}

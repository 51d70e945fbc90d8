//! Prometheus metrics on the separate `metricsListen` listener: the output of a running
//! meeting parses with a real parser (`promtool check metrics`, Debian `prometheus`) and
//! counts that meeting; the public port does not serve them, and without `metricsListen`
//! there is no listener.

#[path = "edge/support.rs"]
mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use multiparty_meeting::client::{Client, Kind, PublishSpec};
use multiparty_meeting::{server, Config};
use serde_json::json;
use support::{http_get, init_logs};

const WAIT: Duration = Duration::from_secs(15);

/// `promtool check metrics` on `text`: its complaints, empty when the text is valid and clean.
fn promtool_check(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool not found ({e}): install it with `apt-get install -y prometheus` (scripts/test does)")
        });
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(text.as_bytes())
        .expect("promtool reads the metrics");
    let out = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        said.trim().to_string()
    } else {
        format!("exit {}: {said}", out.status)
    }
}

/// Samples by name with labels (`name{labels}`), as promtool parsed them.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse::<f64>().expect("a number")))
        .collect()
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let (status, headers, body) = http_get(addr, "/metrics", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    body
}

#[actix_rt::test]
async fn metrics_parse_with_promtool_and_count_a_running_meeting() {
    init_logs();
    let srv = server::start(Config {
        metrics_listen: Some("127.0.0.1:0".into()),
        ..Config::for_tests()
    })
    .await
    .expect("server starts");
    let metrics_addr = srv.metrics_addr.expect("a metrics listener");
    assert_ne!(metrics_addr.port(), srv.http_addr.port());
    let idle = scrape(metrics_addr).await;
    assert_eq!(
        promtool_check(&idle),
        "",
        "promtool on an idle server:\n{idle}"
    );
    assert_eq!(samples(&idle)["mm_rooms"], 0.0);

    let base = format!("http://{}", srv.http_addr);
    let mut alice = Client::connect(&base, "measured", "Alice")
        .await
        .expect("Alice joins");
    alice
        .publish(PublishSpec {
            simulcast: true,
            keyframe_interval: 0,
            ..PublishSpec::audio_video()
        })
        .await
        .expect("Alice publishes audio and simulcast video");
    let bob = Client::connect(&base, "measured", "Bob")
        .await
        .expect("Bob joins");
    // With keyframes only on request, Bob decodes video only after the server asked Alice.
    bob.wait_for(WAIT, "Bob receives Alice's audio and video", |c| {
        c.iter().filter(|c| c.frames > 10).count() == 2 && c.iter().any(|c| c.kind == Kind::Video)
    })
    .await
    .expect("media flows");
    // One refused request, counted by its code.
    bob.send_raw_text("not json").expect("sent");
    let refused = bob.next_response(WAIT).await.expect("an error response");
    assert_eq!(refused.error.map(|e| e.code).as_deref(), Some("badRequest"));

    let text = scrape(metrics_addr).await;
    assert_eq!(
        promtool_check(&text),
        "",
        "promtool on a running meeting:\n{text}"
    );
    let s = samples(&text);
    let node = format!(
        "mm_node_info{{node=\"{}\",version=\"{}\"}}",
        srv.node,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(s.get(&node), Some(&1.0), "{text}");
    assert_eq!(s["mm_rooms"], 1.0, "{text}");
    assert_eq!(s["mm_peers"], 2.0, "{text}");
    assert_eq!(s["mm_relayed_peers"], 0.0, "{text}");
    assert_eq!(s["mm_producers"], 2.0, "Alice's mic and camera: {text}");
    assert_eq!(s["mm_consumers"], 2.0, "Bob's copies of them: {text}");
    for name in [
        "mm_media_received_bytes_total",
        "mm_media_sent_bytes_total",
        "mm_media_received_packets_total",
        "mm_media_sent_packets_total",
        "mm_media_sent_messages_total",
        "mm_forwarded_frames_total",
        "mm_forwarded_packets_total",
        "mm_plis_sent_total",
        "mm_simulcast_layer_switches_total",
    ] {
        assert!(s[name] > 0.0, "{name} counts the meeting: {text}");
    }
    assert!(s["mm_media_received_bytes_total"] > s["mm_media_received_packets_total"] * 10.0);
    assert!(
        s["mm_media_sent_messages_total"] <= s["mm_media_sent_packets_total"],
        "a message carries one datagram or more: {text}"
    );
    for name in [
        "mm_nacks_received_total",
        "mm_nacks_sent_total",
        "mm_plis_received_total",
        "mm_resends_from_history_total",
        "mm_keyframes_replayed_total",
    ] {
        assert!(s.contains_key(name), "{name} is exposed: {text}");
    }
    assert_eq!(
        s["mm_subscriber_rtcp_dropped_total"], 0.0,
        "Bob's reports and feedback are all read: {text}"
    );
    assert_eq!(s["mm_join_duration_seconds_count"], 2.0, "{text}");
    assert_eq!(
        s["mm_join_duration_seconds_bucket{le=\"+Inf\"}"], 2.0,
        "{text}"
    );
    assert!(s["mm_join_duration_seconds_sum"] > 0.0, "{text}");
    assert_eq!(
        s["mm_signaling_errors_total{code=\"badRequest\"}"], 1.0,
        "{text}"
    );
    assert_eq!(
        s["mm_signaling_errors_total{code=\"rateLimited\"}"], 0.0,
        "{text}"
    );
    assert_eq!(
        s["mm_redis_errors_total{component=\"directory\"}"], 0.0,
        "{text}"
    );

    // When Bob leaves, the gauges follow.
    bob.request("leave", json!({})).await.expect("Bob leaves");
    let mut last = String::new();
    for _ in 0..100 {
        last = scrape(metrics_addr).await;
        let s = samples(&last);
        if s["mm_peers"] == 1.0 && s["mm_consumers"] == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = samples(&last);
    assert_eq!((s["mm_peers"], s["mm_consumers"]), (1.0, 0.0), "{last}");
    drop(alice);
    srv.stop().await;
}

#[actix_rt::test]
async fn metrics_are_never_on_the_public_port() {
    init_logs();
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    assert!(
        srv.metrics_addr.is_none(),
        "no listener without metricsListen"
    );
    let (status, _, body) = http_get(srv.http_addr, "/metrics", &[]).await;
    assert_eq!(status, 404, "/metrics on the public port: {body}");
    assert!(!body.contains("mm_rooms"));
    srv.stop().await;
}

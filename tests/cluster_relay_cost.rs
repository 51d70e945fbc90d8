//! What relaying costs a participant: join time and signaling round trip of a participant
//! connected to the instance hosting its meeting, against one connected to another instance
//! that relays it. Prints the figures (docs/benchmarks.md); asserts only that both work.
//! For figures, run it in the release profile:
//! `cargo nextest run --release --no-capture -E 'test(relay_cost)'`.

#[path = "cluster/support.rs"]
mod support;

use std::time::{Duration, Instant};

use multiparty_meeting::client::Client;
use serde_json::json;
use support::{percentile, Instance, Redis};

const JOINS: usize = 30;
const ROUND_TRIPS: usize = 300;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn measure(url: &str, room: &str) -> (Vec<f64>, Vec<f64>) {
    let mut joins = Vec::new();
    let mut rtts = Vec::new();
    for i in 0..JOINS {
        let start = Instant::now();
        let client = Client::connect(url, room, &format!("P{i}"))
            .await
            .expect("join");
        joins.push(ms(start.elapsed()));
        if i == 0 {
            for _ in 0..ROUND_TRIPS {
                let start = Instant::now();
                client
                    .request("changeDisplayName", json!({"displayName": "P0"}))
                    .await
                    .expect("round trip");
                rtts.push(ms(start.elapsed()));
            }
        }
        client.close().await;
    }
    (joins, rtts)
}

fn line(what: &str, v: &[f64]) -> String {
    format!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        percentile(v, 50.0),
        percentile(v, 99.0),
        v.len()
    )
}

#[actix_rt::test]
async fn relay_cost_join_and_round_trip() {
    let redis = Redis::start();
    // The benchmark sends requests back to back: the per-connection signaling rate limit
    // (on by default) is turned off so that it measures the relay, not the limiter.
    let unlimited = [("MM_LIMITS_SIGNALING_RATE", "0")];
    let host = Instance::start("host", &redis, &unlimited);
    let edge = Instance::start("edge", &redis, &unlimited);
    // The meeting lives on `host` for the whole run.
    let anchor = Client::connect(&host.url, "bench", "Anchor")
        .await
        .expect("anchor joins");
    assert_eq!(host.rooms(), 1);
    let (direct_joins, direct_rtts) = measure(&host.url, "bench").await;
    let (relayed_joins, relayed_rtts) = measure(&edge.url, "bench").await;
    assert_eq!(edge.rooms(), 0, "the edge relayed, it hosted nothing");
    println!("{}", line("join, direct  ", &direct_joins));
    println!("{}", line("join, relayed ", &relayed_joins));
    println!("{}", line("round trip, direct  ", &direct_rtts));
    println!("{}", line("round trip, relayed ", &relayed_rtts));
    println!(
        "relay adds {:.2} ms to a join and {:.2} ms to a round trip (p50)",
        percentile(&relayed_joins, 50.0) - percentile(&direct_joins, 50.0),
        percentile(&relayed_rtts, 50.0) - percentile(&direct_rtts, 50.0)
    );
    anchor.close().await;
}

//! Failover of a meeting spanning instances: `kill -9` of the hosting instance (ten times,
//! printing the time from the kill to media again, p50/p99), a lease left by a dead instance,
//! and SIGTERM of the host. The participants rejoin by themselves through any live instance,
//! as the web client does; nobody reloads anything.

#[path = "cluster/support.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use support::{percentile, Instance, Participant, Redis};

/// Video frames from each other participant that count as "media flowing" again.
const FRAMES: u64 = 10;
/// A meeting that has not recovered after this long has failed (a liveness bound, far above
/// the recovery time the test measures and prints).
const GIVE_UP: Duration = Duration::from_secs(40);

const NAMES: [&str; 3] = ["A", "B", "C"];

fn logs(nodes: &[Instance]) -> String {
    nodes
        .iter()
        .map(|n| format!("--- {}\n{}", n.name, n.log.tail(20)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn peer_ids(people: &[Participant]) -> Vec<String> {
    people
        .iter()
        .map(|p| {
            p.client
                .as_ref()
                .map(|c| c.peer_id().to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// Rejoins whoever must, through live instances (round robin, as a balancer would), until
/// every participant is on a new connection (not one of `before`) and receives video from
/// every other; returns how long it took from `start`.
async fn recover(
    people: &mut [Participant],
    nodes: &mut [Instance],
    start: Instant,
    before: &[String],
) -> Duration {
    let mut turn = 0usize;
    let mut reported = false;
    loop {
        let live: Vec<String> = nodes
            .iter_mut()
            .filter_map(|n| n.running().then(|| n.url.clone()))
            .collect();
        let mut rejoins = Vec::new();
        for p in people.iter_mut() {
            if p.must_rejoin() {
                turn += 1;
                let url = live[turn % live.len()].clone();
                rejoins.push(async move {
                    if let Err(e) = p.rejoin(&url).await {
                        // Dropped: tried again on the next round.
                        p.client = None;
                        eprintln!("{} rejoin through {url} failed: {e}", p.name);
                    }
                });
            }
        }
        join_all(rejoins).await;
        let flowing = people.iter().all(|p| {
            let others: Vec<&str> = NAMES.iter().copied().filter(|n| *n != p.name).collect();
            let moved = p
                .client
                .as_ref()
                .is_some_and(|c| !before.iter().any(|b| b == c.peer_id()));
            moved && p.has_video_from(&others, FRAMES)
        });
        if flowing {
            return start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(8) && !reported {
            reported = true;
            eprintln!("slow recovery, state after 8 s:\n{}", state(people, nodes));
            if std::env::var("MM_TEST_DEBUG").is_ok() {
                eprintln!("{}", logs(nodes));
            }
        }
        assert!(
            start.elapsed() < GIVE_UP,
            "the meeting did not recover within {GIVE_UP:?}\n{}\n{}",
            state(people, nodes),
            logs(nodes)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Who is connected where and receives what, for a failure message.
fn state(people: &[Participant], nodes: &mut [Instance]) -> String {
    let mut out = String::new();
    for p in people {
        let frames: Vec<String> = NAMES
            .iter()
            .filter(|n| **n != p.name)
            .map(|n| format!("{n}:{}", p.video_frames_from(n)))
            .collect();
        let (id, open, notes) = match &p.client {
            Some(c) => (
                c.peer_id().to_string(),
                c.is_open(),
                c.notifications()
                    .iter()
                    .map(|n| match n.method.as_str() {
                        "transportState" => format!("transportState {}", n.data),
                        m => m.to_string(),
                    })
                    .chain([format!(
                        "errors {:?} send {:?} recv {:?} names {:?} received {:?}",
                        c.errors(),
                        c.send_status(),
                        c.recv_status(),
                        p.names(),
                        c.received()
                            .iter()
                            .map(|s| format!(
                                "{}/{:?}/{}/closed={}",
                                s.peer_id, s.kind, s.frames, s.closed
                            ))
                            .collect::<Vec<_>>()
                    )])
                    .collect::<Vec<_>>(),
            ),
            None => (String::new(), false, Vec::new()),
        };
        out.push_str(&format!(
            "{} via {} peer {id} open {open} frames {frames:?} notifications {notes:?}\n",
            p.name, p.via
        ));
    }
    for n in nodes.iter_mut() {
        let running = n.running();
        out.push_str(&format!(
            "{} {} running {running} health {:?}\n",
            n.name,
            n.url,
            n.health()
        ));
    }
    out
}

fn host_index(nodes: &[Instance]) -> Option<usize> {
    nodes.iter().position(|n| n.rooms() == 1)
}

#[actix_rt::test]
async fn kill_9_of_the_host_ten_times_everyone_is_back_with_media() {
    let redis = Redis::start();
    let mut nodes: Vec<Instance> = (1..=3)
        .map(|i| Instance::start(&format!("n{i}"), &redis, &[]))
        .collect();
    let mut people = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        people.push(
            Participant::join(name, "failover", &nodes[i].url)
                .await
                .unwrap_or_else(|e| panic!("{name} joins: {e}\n{}", logs(&nodes))),
        );
    }
    recover(&mut people, &mut nodes, Instant::now(), &[]).await;

    let mut samples = Vec::new();
    for rep in 1..=10 {
        let host = host_index(&nodes).unwrap_or_else(|| panic!("no host\n{}", logs(&nodes)));
        let killed = nodes[host].name.clone();
        let before = peer_ids(&people);
        let start = Instant::now();
        nodes[host].kill9();
        let took = recover(&mut people, &mut nodes, start, &before).await;
        let new_host = host_index(&nodes).map(|i| nodes[i].name.clone());
        println!(
            "failover {rep:2}: killed {killed}, media again after {:.2} s on {}",
            took.as_secs_f64(),
            new_host.as_deref().unwrap_or("?")
        );
        assert_ne!(new_host.as_deref(), Some(killed.as_str()));
        samples.push(took.as_secs_f64());
        // Keep three instances: a fresh one replaces the dead one.
        nodes[host] = Instance::start(&format!("n{}", rep + 3), &redis, &[]);
    }
    println!(
        "kill -9 of the host to media again, {} runs: p50 {:.2} s, p99 {:.2} s, max {:.2} s (samples {:?})",
        samples.len(),
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        percentile(&samples, 100.0),
        samples.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>()
    );
}

#[actix_rt::test]
async fn a_lease_left_by_a_dead_instance_does_not_block_the_room() {
    let redis = Redis::start();
    let node = Instance::start("alive", &redis, &[]);
    // An instance that died while hosting `orphan`: its lease, no announcement.
    let set = redis.command(&["SET", "mm:room:orphan:host", "dead-node", "PX", "2000"]);
    assert!(set.starts_with("+OK"), "{set}");
    let start = Instant::now();
    let p = Participant::join("A", "orphan", &node.url)
        .await
        .unwrap_or_else(|e| panic!("join after the lease runs out: {e}\n{}", node.log.tail(20)));
    println!(
        "join over a dead instance's lease answered after {:.2} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(node.rooms(), 1, "the live instance hosts the room now");
    let holder = redis.command(&["GET", "mm:room:orphan:host"]);
    assert!(
        holder.contains("alive"),
        "the lease names the live instance: {holder}"
    );
    drop(p);
}

#[actix_rt::test]
async fn sigterm_of_the_host_moves_the_meeting_to_a_live_instance() {
    let redis = Redis::start();
    let drain = [("MM_DRAIN_TIMEOUT", "1500")];
    let mut nodes: Vec<Instance> = (1..=3)
        .map(|i| Instance::start(&format!("t{i}"), &redis, &drain))
        .collect();
    let mut people = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        people.push(
            Participant::join(name, "drained", &nodes[i].url)
                .await
                .unwrap_or_else(|e| panic!("{name} joins: {e}\n{}", logs(&nodes))),
        );
    }
    recover(&mut people, &mut nodes, Instant::now(), &[]).await;
    let host = host_index(&nodes).expect("one host");
    let drained = nodes[host].name.clone();
    let before = peer_ids(&people);
    let start = Instant::now();
    nodes[host].term();
    // The meeting goes on during the drain, then everyone is asked to reconnect and lands on
    // a live instance.
    let exit = tokio::task::spawn_blocking({
        let mut n = std::mem::replace(&mut nodes[host], Instance::start("t4", &redis, &drain));
        move || (n.wait_exit(Duration::from_secs(20)), n.log.tail(30))
    });
    let took = recover(&mut people, &mut nodes, start, &before).await;
    let (code, tail) = exit.await.expect("waiter");
    assert_eq!(code, Some(0), "the drained host exits 0\n{tail}");
    let new_host = host_index(&nodes).map(|i| nodes[i].name.clone());
    assert!(new_host.is_some() && new_host.as_deref() != Some(drained.as_str()));
    println!(
        "SIGTERM of the host ({drained}) to media again on {}: {:.2} s (drainTimeout 1.5 s)",
        new_host.unwrap_or_default(),
        took.as_secs_f64()
    );
}

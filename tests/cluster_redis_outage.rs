//! Redis goes away while a meeting spans three instances: the meeting keeps its media and its
//! signaling (the relays are direct instance-to-instance connections), a new meeting is refused
//! with a clear error, and everything recovers without restarts when Redis is back (empty, as
//! after a crash): the host re-takes its lease and newcomers reach the same meeting.

#[path = "cluster/support.rs"]
mod support;

use std::time::{Duration, Instant};

use multiparty_meeting::client::{Client, ClientError};
use support::{Instance, Participant, Redis};

async fn wait_media(people: &[&Participant], min: u64, what: &str, logs: impl Fn() -> String) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = people.iter().all(|p| {
            let others: Vec<&str> = people
                .iter()
                .map(|o| o.name.as_str())
                .filter(|n| *n != p.name)
                .collect();
            p.has_video_from(&others, min)
        });
        if ok {
            return;
        }
        if Instant::now() >= until {
            let matrix: Vec<String> = people
                .iter()
                .flat_map(|p| {
                    people
                        .iter()
                        .filter(|o| o.name != p.name)
                        .map(|o| {
                            format!("{}<-{}: {}", p.name, o.name, p.video_frames_from(&o.name))
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            panic!("{what}: media stopped {matrix:?}\n{}", logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn a_meeting_survives_a_redis_outage_and_everything_recovers() {
    let mut redis = Redis::start();
    let nodes = [
        Instance::start("r1", &redis, &[]),
        Instance::start("r2", &redis, &[]),
        Instance::start("r3", &redis, &[]),
    ];
    let logs = || {
        nodes
            .iter()
            .map(|n| format!("--- {}\n{}", n.name, n.log.tail(25)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let a = Participant::join("A", "steady", &nodes[0].url)
        .await
        .unwrap();
    let b = Participant::join("B", "steady", &nodes[1].url)
        .await
        .unwrap();
    let mut c = Participant::join("C", "steady", &nodes[2].url)
        .await
        .unwrap();
    wait_media(&[&a, &b, &c], 20, "before the outage", &logs).await;
    let host = nodes.iter().position(|n| n.rooms() == 1).expect("one host");

    redis.kill();
    // Every instance notices (its /health turns 503 within a couple of seconds).
    let until = Instant::now() + Duration::from_secs(10);
    while nodes
        .iter()
        .any(|n| n.health().is_some_and(|h| h["redis"] == "ok"))
    {
        assert!(Instant::now() < until, "health still reports Redis ok");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Media keeps flowing: the frame counts keep growing for everyone.
    let before: Vec<u64> = [&a, &b, &c]
        .iter()
        .map(|p| p.video_frames_from(if p.name == "A" { "B" } else { "A" }))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_media(&[&a, &b, &c], 0, "during the outage", &logs).await;
    let after: Vec<u64> = [&a, &b, &c]
        .iter()
        .map(|p| p.video_frames_from(if p.name == "A" { "B" } else { "A" }))
        .collect();
    for (i, (x, y)) in before.iter().zip(&after).enumerate() {
        assert!(
            y > x,
            "participant {i} received no new video during the outage: {x} -> {y}\n{}",
            logs()
        );
    }
    // Signaling keeps working across the relays.
    c.client
        .as_ref()
        .unwrap()
        .change_display_name("Cy")
        .await
        .expect("rename during the outage");
    c.name = "Cy".into();
    for p in [&a, &b] {
        let seen = p
            .client
            .as_ref()
            .unwrap()
            .wait_notification(Duration::from_secs(5), "peerUpdated Cy", |n| {
                n.method == "peerUpdated" && n.data["displayName"] == "Cy"
            })
            .await;
        assert!(
            seen.is_ok(),
            "{} sees the rename during the outage: {seen:?}",
            p.name
        );
    }
    // A new meeting cannot be opened: a clear, typed refusal (the client retries later).
    let refused = Client::connect(&nodes[(host + 1) % 3].url, "brand-new", "D").await;
    match refused {
        Err(ClientError::Server { code, message }) => {
            assert_eq!(code, "unavailable", "{message}");
            assert!(message.contains("directory"), "{message}");
        }
        Err(e) => panic!("expected an 'unavailable' join error, got {e}"),
        Ok(_) => panic!("a new meeting opened without Redis"),
    }

    // Redis comes back empty (a crash loses its data): no restart of ours.
    redis.restart();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let holder = redis.command(&["GET", "mm:room:steady:host"]);
        if holder.contains(&nodes[host].name) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the host did not re-take its lease: {holder}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A newcomer through a non-host instance lands in the same meeting.
    let d = Participant::join("D", "steady", &nodes[(host + 1) % 3].url)
        .await
        .unwrap_or_else(|e| panic!("join after Redis returned: {e}\n{}", logs()));
    let names: Vec<String> = d
        .client
        .as_ref()
        .unwrap()
        .join_response()
        .peers
        .iter()
        .map(|p| p.display_name.clone())
        .collect();
    assert_eq!(names.len(), 3, "D meets A, B and Cy: {names:?}");
    wait_media(&[&a, &b, &c, &d], 10, "after Redis returned", &logs).await;
    // New meetings open again.
    let fresh = Client::connect(&nodes[(host + 2) % 3].url, "brand-new", "E").await;
    assert!(
        fresh.is_ok(),
        "a new meeting opens once Redis is back: {:?}",
        fresh.err()
    );
    assert!(nodes
        .iter()
        .all(|n| n.health().is_some_and(|h| h["redis"] == "ok")));
}

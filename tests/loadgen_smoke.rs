//! Smoke test of the load generator (`multiparty-meeting-load`): it starts our server binary,
//! runs 1 room x 1 publisher x 3 subscribers for 3 seconds and writes its JSON report; the
//! report must be internally consistent. Once with str0m subscribers, once with the light
//! ones (`--light-subscribers`, which read SRTP themselves), and both again with sockets that
//! take the server's GSO trains whole (`--gro-receivers`). And `--cpu-gaps`, which measures
//! no server but the machine. A check that the tool works, not a benchmark.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn num(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} is missing or not a number in {v:#}"))
}

#[test]
fn one_publisher_three_subscribers() {
    smoke(&[]);
}

#[test]
fn one_publisher_three_light_subscribers() {
    smoke(&["--light-subscribers"]);
}

#[test]
fn one_publisher_three_subscribers_taking_gso_trains_whole() {
    smoke(&["--gro-receivers"]);
}

#[test]
fn one_publisher_three_light_subscribers_taking_gso_trains_whole() {
    smoke(&["--light-subscribers", "--gro-receivers"]);
}

/// `--cpu-gaps` measures for the seconds asked, twice, and its figures add up. With the
/// CPUs given as in docs/benchmarks.md: `--client-cpu` pins the tool first, and the CPUs it
/// may name are still all of the machine's.
#[test]
fn cpu_gaps_are_measured_with_the_other_core_idle_and_busy() {
    let last = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    let run = Command::new(env!("CARGO_BIN_EXE_multiparty-meeting-load"))
        .args(["--cpu-gaps", "--gaps-secs", "0.5", "--json", "-"])
        .args(["--server-cpu", "0", "--client-cpu", &last.to_string()])
        .output()
        .expect("the load generator runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{}: {stdout}\n{stderr}", run.status);
    assert!(
        stderr.contains("other core idle") && stderr.contains("busy"),
        "human lines on stderr: {stderr}"
    );
    let doc: Value = serde_json::from_str(&stdout).expect("JSON report parses");
    let g = &doc["cpu_gaps"];
    assert_eq!(num(g, "/threshold_us"), 30.0, "{g:#}");
    for which in ["other_idle", "other_busy"] {
        let f = &g[which];
        let secs = num(f, "/secs");
        assert!(
            (0.5..1.5).contains(&secs),
            "{which} measured {secs} s: {g:#}"
        );
        let histogram: f64 = f["histogram"]
            .as_array()
            .expect("histogram")
            .iter()
            .filter_map(Value::as_f64)
            .sum();
        assert_eq!(histogram, num(f, "/gaps"), "{which}: buckets add up: {g:#}");
        let (lost, long) = (
            num(f, "/lost_percent"),
            num(f, "/lost_in_gaps_over_1ms_percent"),
        );
        assert!((0.0..=100.0).contains(&lost), "{which}: {g:#}");
        assert!(long <= lost, "{which}: long gaps are part of all: {g:#}");
        assert!(
            num(f, "/longest_ms") * 1e3 >= if num(f, "/gaps") > 0.0 { 30.0 } else { 0.0 },
            "{which}: the longest gap is a gap: {g:#}"
        );
    }
}

/// A CPU the machine does not have stops the tool, naming the flag, instead of measuring
/// whichever core the scheduler picks.
#[test]
fn a_cpu_the_machine_lacks_is_refused_by_name() {
    refused(
        &["--cpu-gaps", "--gaps-secs", "0.1", "--server-cpu", "4096"],
        "--server-cpu 4096",
    );
}

/// A duration that is not a positive number of seconds stops the tool, naming the flag.
#[test]
fn a_bad_gap_duration_is_refused_by_name() {
    refused(&["--cpu-gaps", "--gaps-secs", "0"], "--gaps-secs");
}

/// Runs the load generator with `args`: it must fail, and say `names` on stderr.
fn refused(args: &[&str], names: &str) {
    let run = Command::new(env!("CARGO_BIN_EXE_multiparty-meeting-load"))
        .args(args)
        .output()
        .expect("the load generator runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(stderr.contains(names), "{stderr}");
}

fn smoke(extra: &[&str]) {
    let out: PathBuf = std::env::temp_dir().join(format!(
        "loadgen-smoke-{}-{}.json",
        std::process::id(),
        rand::random::<u32>()
    ));
    let started = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_multiparty-meeting-load"))
        .args(["--spawn-server", env!("CARGO_BIN_EXE_multiparty-meeting")])
        .args(["--rooms", "1", "--publishers", "1", "--subscribers", "3"])
        .args([
            "--duration-secs",
            "3",
            "--warmup-secs",
            "1",
            "--join-timeout-secs",
            "8",
        ])
        .args(["--video-bitrate", "300k", "--quiet"])
        .args(extra)
        .arg("--json")
        .arg(&out)
        .env_remove("RUST_LOG")
        .output()
        .expect("the load generator runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "load generator failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the smoke run took {:?}",
        started.elapsed()
    );
    assert!(
        stdout.contains("egress pkts / server CPU-s"),
        "human table on stdout: {stdout}"
    );
    let text = std::fs::read_to_string(&out).expect("JSON report written");
    let _ = std::fs::remove_file(&out);
    let doc: Value = serde_json::from_str(&text).expect("JSON report parses");
    let t = doc
        .pointer("/targets/0")
        .unwrap_or_else(|| panic!("one target in {doc:#}"));
    let ctx = format!("{t:#}\n{stderr}");

    assert_eq!(num(t, "/subscribers"), 3.0, "{ctx}");
    assert_eq!(num(t, "/subscribers_with_media"), 3.0, "{ctx}");
    assert_eq!(num(t, "/join_failures"), 0.0, "{ctx}");
    assert!(
        t["errors"].as_array().is_some_and(|e| e.is_empty()),
        "{ctx}"
    );
    let window = num(t, "/window_secs");
    assert!((2.5..6.0).contains(&window), "window {window}: {ctx}");

    let subs = t["per_subscriber"].as_array().expect("per_subscriber");
    assert_eq!(subs.len(), 3, "{ctx}");
    let mut total = 0.0;
    for s in subs {
        let packets = num(s, "/packets");
        assert!(packets > 0.0, "every subscriber receives: {ctx}");
        assert_eq!(
            num(s, "/audio_packets") + num(s, "/video_packets"),
            packets,
            "audio + video = all: {ctx}"
        );
        assert!(num(s, "/bytes") > packets, "bytes counted: {ctx}");
        assert!(num(s, "/loss_pct") < 5.0, "loss: {ctx}");
        assert!(num(s, "/frames_expected") > 0.0, "frames counted: {ctx}");
        assert!(num(s, "/frame_loss_pct") < 5.0, "frame loss: {ctx}");
        assert!(num(s, "/join_ms") > 0.0, "join time: {ctx}");
        total += packets;
    }
    assert_eq!(num(t, "/rx_packets"), total, "totals add up: {ctx}");
    assert!(num(t, "/loss_pct") < 5.0, "{ctx}");
    // 3 subscribers x (50 audio + >= 30 video packets/s): far more than 100 a second.
    assert!(num(t, "/rx_pps") > 100.0, "{ctx}");

    for p in ["/latency_ms", "/latency_audio_ms", "/latency_video_ms"] {
        let count = num(t, &format!("{p}/count"));
        let (p50, p99) = (num(t, &format!("{p}/p50")), num(t, &format!("{p}/p99")));
        assert!(count > 0.0, "{p} samples: {ctx}");
        assert!(p50 >= 0.0 && p50 <= p99, "{p} ordered: {ctx}");
    }
    // The server's share: every sample less the generator's wait before the kernel had the
    // frame, so never above the whole, and as many samples.
    for q in ["count", "p50", "p99", "max"] {
        let (whole, added) = (
            num(t, &format!("/latency_ms/{q}")),
            num(t, &format!("/added_latency_ms/{q}")),
        );
        if q == "count" {
            assert_eq!(added, whole, "one added sample per sample: {ctx}");
        } else {
            assert!(
                (0.0..=whole).contains(&added),
                "added {q} within the whole: {ctx}"
            );
        }
    }
    let handoff = num(t, "/generator_handoff_ms/p50");
    assert!(
        num(t, "/generator_handoff_ms/count") > 0.0 && handoff >= 0.0,
        "{ctx}"
    );
    assert!(num(t, "/join_ms/p50") > 0.0, "{ctx}");
    assert!(num(t, "/server/cpu_seconds") > 0.0, "{ctx}");
    assert!(num(t, "/server/rss_after_bytes") > 0.0, "{ctx}");
    assert!(num(t, "/server/egress_pps_per_cpu_second") > 0.0, "{ctx}");
}

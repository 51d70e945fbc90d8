//! `logFormat = "json"`: the binary writes one JSON object per line, every line names the
//! node, and the lines about a participant carry its trusted client address (from a trusted
//! proxy's `X-Forwarded-For`), its room and its peer id.

#[path = "edge/support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::ws;

const SERVER_BIN: &str = env!("CARGO_BIN_EXE_multiparty-meeting");

fn free_port() -> u16 {
    // Invariant: binding port 0 on loopback always succeeds with lo up.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("bound").port()
}

/// The server process; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_rt::test]
async fn json_lines_name_the_node_and_who_a_line_concerns() {
    let port = free_port();
    let rtc = 40000 + (port % 40) * 200;
    let mut child = Command::new(SERVER_BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("MM_LOG_FORMAT", "json")
        .env("MM_NODE_ID", "log-node-1")
        .env("MM_LISTENING_HOST", "127.0.0.1")
        .env("MM_LISTENING_PORT", port.to_string())
        .env("MM_ANNOUNCED_IP", "127.0.0.1")
        .env("MM_RTC_LISTEN_IP", "127.0.0.1")
        .env("MM_RTC_MIN_PORT", rtc.to_string())
        .env("MM_RTC_MAX_PORT", (rtc + 199).to_string())
        .env("MM_NUM_WORKERS", "1")
        .env("MM_BEHIND_REVERSE_PROXY", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    let _server = Server(child);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut peer = loop {
        match ws(addr, "logged", &[("X-Forwarded-For", "203.0.113.77")]).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "server never answered: {e:?}\n{:?}",
                    lines.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let joined = peer.join("Logged").await;
    assert_eq!(joined["ok"], true, "{joined}");
    let peer_id = joined["data"]["peerId"].as_str().unwrap().to_string();
    let id = peer.send_request("leave", json!({})).await;
    assert_eq!(peer.response(id).await["ok"], true);

    let find = |message: &str| -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .filter(|v| v["message"] == message)
            });
            if let Some(v) = found {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no log line '{message}':\n{}",
                lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for message in ["joined", "peer gone"] {
        let line = find(message);
        assert_eq!(line["node"], "log-node-1", "{line}");
        assert_eq!(
            line["client"], "203.0.113.77",
            "the trusted client address: {line}"
        );
        assert_eq!(line["room"], "logged", "{line}");
        assert_eq!(line["peer"], peer_id.as_str(), "{line}");
    }
    let room_line = find("peer joined");
    assert_eq!(
        (room_line["room"].as_str(), room_line["peer"].as_str()),
        (Some("logged"), Some(peer_id.as_str())),
        "{room_line}"
    );
    let request = find("request");
    assert_eq!(request["client"], "203.0.113.77", "{request}");
    for line in lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert_eq!(v["node"], "log-node-1", "every line names the node: {line}");
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}

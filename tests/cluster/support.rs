//! Support for the cluster tests: a real `redis-server` and real `multiparty-meeting` processes
//! on loopback ports (started here, stopped when dropped), and participants (the Rust client)
//! that rejoin by themselves, as the web client does, when their connection ends.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multiparty_meeting::client::{Client, ClientError, Kind, PublishSpec};
use serde_json::Value;

/// The server binary cargo built for these tests.
pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_multiparty-meeting");

/// Shared by every instance of a test cluster.
pub const SECRET: &str = "a-test-cookie-secret-0123456789abcdef-xyz";

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    // Invariant: binding port 0 on loopback always succeeds in a network namespace with lo up.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("bound").port()
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mm-{label}-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Fails with what to install when `bin` is missing.
fn require(bin: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("{bin} not found: install it with `apt-get install -y {package}` (scripts/test does)");
}

/// The last lines a child process printed.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn follow(&self, stream: impl Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut l = lines.lock().unwrap();
                l.push(line);
                if l.len() > 2000 {
                    l.drain(..1000);
                }
            }
        });
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> String {
        let l = self.0.lock().unwrap();
        l[l.len().saturating_sub(n)..].join("\n")
    }

    /// True when a line contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

/// A real redis-server.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts redis-server on a free loopback port, without persistence.
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir: temp_dir("redis"),
        };
        r.restart();
        r
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it again (on the same port) after [`Redis::kill`].
    pub fn restart(&mut self) {
        let bin = require("redis-server", "redis-server");
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        wait_for(
            Duration::from_secs(10),
            "redis-server to accept connections",
            || TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
        );
    }

    /// SIGKILL: Redis is gone, its data with it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs a command with redis-cli semantics over RESP; returns the raw reply text.
    pub fn command(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("redis reachable");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `multiparty-meeting` process.
pub struct Instance {
    child: Option<Child>,
    /// Its node id.
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// What it printed.
    pub log: Log,
}

/// Waits until `ok` holds, polling; panics with `what` after `timeout`.
pub fn wait_for(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP GET on loopback: (status, body).
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(authority).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Some((status, body))
}

impl Instance {
    /// Starts an instance named `name` sharing `redis`, with extra `MM_*` settings.
    pub fn start(name: &str, redis: &Redis, extra: &[(&str, &str)]) -> Instance {
        let port = free_port();
        let rtc = 20000 + (rand::random::<u16>() % 400) * 100;
        let mut cmd = Command::new(SERVER_BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("MM_TEST_SERVER_LOG").unwrap_or_else(|_| "info,str0m=warn".into()),
            )
            .env("NO_COLOR", "1")
            .env("MM_LISTENING_HOST", "127.0.0.1")
            .env("MM_LISTENING_PORT", port.to_string())
            .env("MM_ANNOUNCED_IP", "127.0.0.1")
            .env("MM_RTC_LISTEN_IP", "127.0.0.1")
            .env("MM_RTC_MIN_PORT", rtc.to_string())
            .env("MM_RTC_MAX_PORT", (rtc + 99).to_string())
            .env("MM_NUM_WORKERS", "1")
            .env("MM_NODE_ID", name)
            .env("MM_REDIS_URL", redis.url())
            .env("MM_COOKIE_SECRET", SECRET)
            .env("MM_EMPTY_ROOM_CLOSE_DELAY", "1000")
            .env("MM_HEARTBEAT_INTERVAL", "1000")
            .env("MM_HEARTBEAT_TIMEOUT", "5000");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn multiparty-meeting");
        let log = Log::default();
        // Invariant: both streams were requested as pipes just above.
        log.follow(child.stdout.take().expect("stdout piped"));
        log.follow(child.stderr.take().expect("stderr piped"));
        let inst = Instance {
            child: Some(child),
            name: name.to_string(),
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let live = format!("{}/health/live", inst.url);
        let until = Instant::now() + Duration::from_secs(20);
        while http_get(&live).map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < until,
                "{name} did not answer /health/live:\n{}",
                inst.log.tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        inst
    }

    /// `/health` as JSON (any status).
    pub fn health(&self) -> Option<Value> {
        let (_, body) = http_get(&format!("{}/health", self.url))?;
        serde_json::from_str(&body).ok()
    }

    /// Rooms this instance hosts.
    pub fn rooms(&self) -> u64 {
        self.health().and_then(|h| h["rooms"].as_u64()).unwrap_or(0)
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (graceful drain).
    pub fn term(&mut self) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) with a pid of our own child and a valid signal number.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let until = Instant::now() + timeout;
        let c = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A participant that publishes audio and video and rejoins, through any live instance, when
/// its connection ends or the server asks it to reconnect — as the web client does.
pub struct Participant {
    pub name: String,
    pub room: String,
    pub client: Option<Client>,
    /// Instance URL of its current connection.
    pub via: String,
}

impl Participant {
    /// Joins `room` through `url` and publishes.
    pub async fn join(name: &str, room: &str, url: &str) -> Result<Participant, ClientError> {
        let mut p = Participant {
            name: name.to_string(),
            room: room.to_string(),
            client: None,
            via: url.to_string(),
        };
        p.rejoin(url).await?;
        Ok(p)
    }

    /// Connects again through `url` and publishes.
    pub async fn rejoin(&mut self, url: &str) -> Result<(), ClientError> {
        if let Some(old) = self.client.take() {
            drop(old);
        }
        let mut client = Client::connect(url, &self.room, &self.name).await?;
        client.publish(PublishSpec::audio_video()).await?;
        self.client = Some(client);
        self.via = url.to_string();
        Ok(())
    }

    /// True when its connection ended or the server asked it to reconnect.
    pub fn must_rejoin(&self) -> bool {
        match &self.client {
            None => true,
            Some(c) => !c.is_open() || c.notifications().iter().any(|n| n.method == "reconnect"),
        }
    }

    /// Display names of the other peers it knows (join response, `peerJoined`, renames by
    /// `peerUpdated`), by peer id.
    pub fn names(&self) -> HashMap<String, String> {
        let mut names = HashMap::new();
        let Some(c) = &self.client else {
            return names;
        };
        for p in &c.join_response().peers {
            names.insert(p.id.clone(), p.display_name.clone());
        }
        for n in c.notifications() {
            let (id, name) = match n.method.as_str() {
                "peerJoined" => (&n.data["peer"]["id"], &n.data["peer"]["displayName"]),
                "peerUpdated" => (&n.data["peerId"], &n.data["displayName"]),
                _ => continue,
            };
            if let (Some(id), Some(name)) = (id.as_str(), name.as_str()) {
                names.insert(id.to_string(), name.to_string());
            }
        }
        names
    }

    /// Video frames received from the participant named `other` on this connection.
    pub fn video_frames_from(&self, other: &str) -> u64 {
        let Some(c) = &self.client else {
            return 0;
        };
        let names = self.names();
        c.received()
            .iter()
            .filter(|s| s.kind == Kind::Video)
            .filter(|s| names.get(&s.peer_id).map(String::as_str) == Some(other))
            .map(|s| s.frames)
            .sum()
    }

    /// True when at least `min` video frames arrived from each of `others`.
    pub fn has_video_from(&self, others: &[&str], min: u64) -> bool {
        others.iter().all(|o| self.video_frames_from(o) >= min)
    }
}

/// Nearest-rank percentile of `values` (sorted here).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

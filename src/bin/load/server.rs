//! Starting our server (`multiparty-meeting`) for a run: a free HTTP port, a UDP range, one
//! media worker, announced and listening on the given IP, optionally pinned to a CPU; its
//! log goes to a file. No `MM_*` variable of our own environment leaks into it (an unknown
//! one would make it refuse to start).

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::net;

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A server process we started; killed on drop.
pub struct SpawnedServer {
    child: Child,
    pub pid: u32,
    /// `http://ip:port`.
    pub url: String,
    pub log: PathBuf,
}

fn free_tcp_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    let l = TcpListener::bind(SocketAddr::from((ip, 0))).context("finding a free TCP port")?;
    Ok(l.local_addr()?.port())
}

/// Starts `bin` listening on `ip`, one media worker, RTC ports `rtc_port..rtc_port+99`.
pub fn spawn(
    bin: &Path,
    ip: Ipv4Addr,
    rtc_port: u16,
    cpu: Option<usize>,
    log_dir: &Path,
) -> anyhow::Result<SpawnedServer> {
    let port = free_tcp_port(ip)?;
    let log = log_dir.join(format!("multiparty-meeting-{port}.log"));
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MM_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("MM_LISTENING_HOST", ip.to_string())
        .env("MM_LISTENING_PORT", port.to_string())
        .env("MM_ANNOUNCED_IP", ip.to_string())
        .env("MM_RTC_LISTEN_IP", ip.to_string())
        .env("MM_NUM_WORKERS", "1")
        .env("MM_RTC_MIN_PORT", rtc_port.to_string())
        .env("MM_RTC_MAX_PORT", (rtc_port + 99).to_string())
        .env("MM_DRAIN_TIMEOUT", "1000")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    // The generator may have pinned itself (`--client-cpu`), and a child inherits that:
    // the server gets its own CPU, or all of them.
    // SAFETY: only an async-signal-safe syscall between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            match cpu {
                Some(cpu) => net::pin_to_cpu(0, cpu),
                None => net::allow_all_cpus(0),
            };
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let mut text = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
            bail!("the server exited at start ({status}): {text}");
        }
        if TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(200))
            .is_ok()
        {
            break;
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            bail!("the server did not listen on {ip}:{port} within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(SpawnedServer {
        child,
        pid,
        url: format!("http://{ip}:{port}"),
        log,
    })
}

impl SpawnedServer {
    /// SIGTERM twice (the second one skips the drain), then SIGKILL after 3 s.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let pid = self.pid as libc::pid_t;
        for _ in 0..2 {
            // SAFETY: signalling our own child by its pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

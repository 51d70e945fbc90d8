//! `multiparty-meeting-load`: a load generator for our SFU and, with the same scenarios, for
//! Janus VideoRoom. One thread drives every peer connection (str0m, sans-IO) over a few UDP
//! sockets; signaling runs on a small tokio runtime. Scenarios: N rooms x P publishers x S
//! subscribers, audio and/or video (synthetic VP8 or an IVF file, optional simulcast) at a
//! set bitrate and frame rate, subscribers joining in bursts. Measures join time, packets,
//! loss, forwarding latency, the server's CPU and RSS, egress packets per server CPU-second;
//! `--udp-floor` measures the kernel's loopback UDP floor, `--cpu-gaps` how much of the
//! server's core the machine takes away (interrupts, a VM's host). Prints a table (one column per
//! target) and writes JSON. Exits non-zero only on its own errors (arguments, sockets, a
//! server it cannot reach), never because results are slow.
//!
//! ```text
//! multiparty-meeting-load --spawn-server target/release/multiparty-meeting \
//!     --rooms 1 --publishers 1 --subscribers 100 --duration-secs 10 --json out.json
//! multiparty-meeting-load --target ours=http://10.99.0.1:3000 --pid ours=1234 \
//!     --target janus=ws://10.99.0.1:8188 --pid janus=5678 --local-net 10.98.0.0/16 ...
//! ```

mod direct;
mod engine;
mod floor;
mod gaps;
mod handoff;
mod janus;
mod light;
mod media;
mod mm;
mod net;
mod procfs;
mod report;
mod scenario;
mod server;
mod ws;

use std::io::{IsTerminal, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use engine::{Engine, EngineConfig, EngineEvent, EngineHandle};
use media::{IvfClip, PublishSpec};
use procfs::ProcSample;
use report::TargetResult;
use scenario::{from_tag, Ctx, Dialect, Part, Tracker};

/// Load generator for multiparty-meeting (and Janus VideoRoom, side by side).
#[derive(Debug, Clone, Parser)]
#[command(version)] // no bare `about`: it would show the server crate's description
struct Args {
    /// A server to load: `ours=http://IP:PORT` or `janus=ws://IP:PORT` (repeatable; run in
    /// order, figures side by side); `direct=-` runs without a server (each subscriber gets
    /// its own publisher in-process), the load generator's own floor.
    #[arg(long = "target", value_name = "NAME=URL")]
    targets: Vec<String>,
    /// PID of a target's server process, for CPU and RSS: `ours=1234` (repeatable).
    #[arg(long = "pid", value_name = "NAME=PID")]
    pids: Vec<String>,
    /// Start this multiparty-meeting binary for the run (adds the target `ours`).
    #[arg(long, value_name = "PATH")]
    spawn_server: Option<PathBuf>,
    /// IP the spawned server listens on and announces.
    #[arg(long, default_value = "127.0.0.1")]
    server_ip: Ipv4Addr,
    /// First UDP port of the spawned server's range (100 ports; random when absent).
    #[arg(long)]
    rtc_port: Option<u16>,
    /// Pin the spawned server to this CPU.
    #[arg(long)]
    server_cpu: Option<usize>,
    /// Pin the load generator (every thread: media, signaling, reports) to this CPU.
    #[arg(long)]
    client_cpu: Option<usize>,

    /// Rooms.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Publishers per room.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribers per room (receive only).
    #[arg(long, default_value_t = 3)]
    subscribers: usize,
    /// Publish no audio.
    #[arg(long)]
    no_audio: bool,
    /// Publish no video.
    #[arg(long)]
    no_video: bool,
    /// Send video as three simulcast layers l, m, h (bitrates 1/16, 1/4, 1).
    #[arg(long)]
    simulcast: bool,
    /// Video bitrate of the top layer (bits/s; k and M suffixes).
    #[arg(long, default_value = "1.5M", value_parser = parse_rate)]
    video_bitrate: u64,
    /// Audio bitrate (bits/s; k and M suffixes).
    #[arg(long, default_value = "32k", value_parser = parse_rate)]
    audio_bitrate: u64,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Top layer resolution, WIDTHxHEIGHT (written in synthetic keyframes).
    #[arg(long, default_value = "1280x720")]
    resolution: String,
    /// A keyframe every N frames (0: only the first and requested ones).
    #[arg(long, default_value_t = 90)]
    keyframe_interval: u32,
    /// Send the frames of this VP8 IVF file (looped) instead of synthetic frames.
    #[arg(long, value_name = "FILE")]
    ivf: Option<PathBuf>,

    /// Subscribers join in bursts of this many concurrent joins.
    #[arg(long, default_value_t = 10)]
    burst: usize,
    /// Pause between bursts (ms).
    #[arg(long, default_value_t = 0)]
    burst_gap_ms: u64,
    /// How long a join may take before it counts as failed (s).
    #[arg(long, default_value_t = 15)]
    join_timeout_secs: u64,
    /// Settling time after the last join, before measuring (s).
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Measurement window (s).
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,

    /// Subscribers read their SRTP packets themselves instead of through str0m: the RTP
    /// header for loss and transport feedback, the payload only where a frame starts (its
    /// stamp). Several times cheaper per packet, for runs beyond ~200k packets/s, where a
    /// str0m subscriber saturates the generator's one thread. No NACKs, no receiver reports.
    #[arg(long)]
    light_subscribers: bool,

    /// The generator's sockets take a train of datagrams the server sent with GSO as one
    /// message (`UDP_GRO`), as a receiver behind a real network gets it: segmenting it and
    /// delivering each datagram into a socket is then not done on the server's core, which
    /// on loopback it otherwise is (a quarter of the server's time at 900 streams).
    #[arg(long)]
    gro_receivers: bool,

    /// UDP sockets the engine spreads connections over.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Local address range for the peer connections (one IP per connection per socket);
    /// must be local: any of 127.0.0.0/8, or a range routed `local` in a namespace.
    #[arg(long, default_value = "127.100.0.0/16")]
    local_net: String,

    /// Measure the loopback UDP floor (1200-byte datagrams, sendmmsg/recvmmsg, one core).
    #[arg(long)]
    udp_floor: bool,
    /// Seconds per UDP floor measurement.
    #[arg(long, default_value_t = 3.0)]
    floor_secs: f64,
    /// Measure the gaps in which a thread spinning on the server's core (`--server-cpu`,
    /// default 0) does not run: with the other core idle, then with the generator's core
    /// (`--client-cpu`, default the next one) kept busy. Time the machine takes from a server.
    #[arg(long)]
    cpu_gaps: bool,
    /// Seconds per gap measurement.
    #[arg(long, default_value_t = 10.0)]
    gaps_secs: f64,

    /// Write the JSON report here (`-` = stdout, then the table goes to stderr).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Free text stored in the JSON report.
    #[arg(long, default_value = "")]
    label: String,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Directory for the spawned server's log.
    #[arg(long, default_value = "/tmp")]
    log_dir: PathBuf,
}

fn parse_rate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    num.parse::<f64>()
        .map(|v| (v * mult) as u64)
        .map_err(|e| format!("bad rate {s:?}: {e}"))
}

fn parse_net(s: &str) -> anyhow::Result<(Ipv4Addr, u32)> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("--local-net wants IP/LEN, got {s}"))?;
    let ip: Ipv4Addr = ip.parse().with_context(|| format!("--local-net {s}"))?;
    let len: u32 = len.parse().with_context(|| format!("--local-net {s}"))?;
    if !(8..=30).contains(&len) {
        bail!("--local-net prefix length must be 8..30");
    }
    let mask = u32::MAX << (32 - len);
    let net = u32::from(ip) & mask;
    Ok((Ipv4Addr::from(net + 1), (1u32 << (32 - len)) - 2))
}

fn named(list: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|t| {
            t.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| anyhow!("--{what} wants NAME=VALUE, got {t}"))
        })
        .collect()
}

/// One server to run the scenario against.
struct Target {
    name: String,
    dialect: Dialect,
    url: String,
    pid: Option<u32>,
}

fn main() {
    let args = Args::parse();
    match real_main(args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("multiparty-meeting-load: {e:#}");
            std::process::exit(2);
        }
    }
}

fn real_main(args: Args) -> anyhow::Result<()> {
    if let Some(cpu) = args.client_cpu {
        // Before any thread starts, so that all inherit it: the signaling and report
        // threads must not run on the server's CPU and delay its worker (they did, and
        // added up to ~2 ms to the measured latency's tail).
        if !net::pin_to_cpu(0, cpu) {
            eprintln!("warning: could not pin the load generator to CPU {cpu}");
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let mut spawned = None;
    let mut targets = Vec::new();
    let pids = named(&args.pids, "pid")?;
    if let Some(bin) = &args.spawn_server {
        let port = args
            .rtc_port
            .unwrap_or_else(|| 41_000 + (rand::random::<u16>() % 80) * 100);
        let s = server::spawn(bin, args.server_ip, port, args.server_cpu, &args.log_dir)?;
        eprintln!(
            "started {} (pid {}) at {}, log {}",
            bin.display(),
            s.pid,
            s.url,
            s.log.display()
        );
        targets.push(Target {
            name: "ours".into(),
            dialect: Dialect::Ours,
            url: s.url.clone(),
            pid: Some(s.pid),
        });
        spawned = Some(s);
    }
    for (name, url) in named(&args.targets, "target")? {
        let dialect = match name.as_str() {
            "ours" | "mm" => Dialect::Ours,
            "direct" => Dialect::Direct,
            n if n.starts_with("janus") => Dialect::Janus,
            _ => bail!("unknown target kind {name}: use ours=URL or janus=URL"),
        };
        let pid = pids
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.parse::<u32>())
            .transpose()
            .with_context(|| format!("--pid for {name}"))?;
        targets.push(Target {
            name,
            dialect,
            url,
            pid,
        });
    }
    if targets.is_empty() && !args.udp_floor && !args.cpu_gaps {
        bail!("nothing to do: give --spawn-server, --target, --udp-floor or --cpu-gaps");
    }
    for (flag, secs) in [
        ("--gaps-secs", args.gaps_secs),
        ("--floor-secs", args.floor_secs),
    ] {
        if !(secs.is_finite() && secs > 0.0) {
            bail!("{flag} must be a positive number of seconds, not {secs}");
        }
    }
    let cpu_gaps = if args.cpu_gaps {
        eprintln!("measuring CPU gaps ({}s x 2)...", args.gaps_secs);
        let cpus = net::online_cpus();
        let cpu = args.server_cpu.unwrap_or(0);
        let busy = args.client_cpu.unwrap_or((cpu + 1) % cpus);
        for (flag, c) in [("--server-cpu", cpu), ("--client-cpu", busy)] {
            if c >= cpus {
                bail!("{flag} {c}: this machine has CPUs 0 to {}", cpus - 1);
            }
        }
        Some(gaps::run(
            Duration::from_secs_f64(args.gaps_secs),
            cpu,
            busy,
        )?)
    } else {
        None
    };
    let floor = if args.udp_floor {
        eprintln!(
            "measuring the loopback UDP floor ({}s x 2)...",
            args.floor_secs
        );
        let cpu = args.client_cpu.unwrap_or(0);
        let other = (cpu + 1) % net::online_cpus();
        Some(floor::run(
            Duration::from_secs_f64(args.floor_secs),
            cpu,
            other,
        )?)
    } else {
        None
    };

    let spec = publish_spec(&args)?;
    let mut results: Vec<TargetResult> = Vec::new();
    for t in &targets {
        let r = runtime.block_on(run_target(&args, t, spec.clone()))?;
        results.push(r);
    }
    if let Some(s) = spawned.take() {
        s.stop();
    }

    let doc = json!({
        "tool": "multiparty-meeting-load",
        "version": env!("CARGO_PKG_VERSION"),
        "label": args.label,
        "machine": machine(),
        "scenario": scenario_json(&args),
        "udp_floor": floor,
        "cpu_gaps": cpu_gaps,
        "targets": results.iter().map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            if let (Some(f), Some(e)) = (&floor, r.server.as_ref().and_then(|s| s.egress_pps_per_cpu_second)) {
                v["egress_fraction_of_udp_floor"] = json!(e / f.send_recv_one_core.per_wall_second);
            }
            v
        }).collect::<Vec<_>>(),
    });
    let to_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    let mut human = String::new();
    if let Some(f) = &floor {
        human += &format!(
            "loopback UDP floor, {}-byte datagrams: send+recv on one core {:.0}/s ({:.0} per thread CPU-s); send only {:.0}/s ({:.0} per thread CPU-s)\n",
            f.datagram_bytes,
            f.send_recv_one_core.per_wall_second,
            f.send_recv_one_core.per_thread_cpu_second,
            f.send_only.per_wall_second,
            f.send_only.per_thread_cpu_second
        );
    }
    if let Some(g) = &cpu_gaps {
        human += &gaps::describe(&format!("CPU {}, other core idle", g.cpu), &g.other_idle);
        human += &gaps::describe(
            &format!("CPU {}, CPU {} busy", g.cpu, g.busy_cpu),
            &g.other_busy,
        );
    }
    if !results.is_empty() {
        human += &report::table(&results);
    }
    if to_stdout {
        eprint!("{human}");
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{human}");
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&doc)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

fn publish_spec(args: &Args) -> anyhow::Result<PublishSpec> {
    let (w, h) = args
        .resolution
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u16>().ok()?, h.parse::<u16>().ok()?)))
        .ok_or_else(|| anyhow!("--resolution wants WIDTHxHEIGHT, got {}", args.resolution))?;
    let ivf = match &args.ivf {
        Some(p) => Some(Arc::new(IvfClip::load(p)?)),
        None => None,
    };
    if args.no_audio && args.no_video {
        bail!("--no-audio and --no-video leave nothing to publish");
    }
    Ok(PublishSpec {
        audio: !args.no_audio,
        video: !args.no_video,
        simulcast: args.simulcast,
        fps: args.fps.max(1),
        video_bitrate: args.video_bitrate,
        audio_bitrate: args.audio_bitrate,
        width: w,
        height: h,
        keyframe_interval: args.keyframe_interval,
        ivf,
        rids_high_first: false,
    })
}

fn scenario_json(args: &Args) -> Value {
    json!({
        "rooms": args.rooms, "publishers_per_room": args.publishers,
        "subscribers_per_room": args.subscribers, "audio": !args.no_audio,
        "video": !args.no_video, "simulcast": args.simulcast,
        "video_bitrate": args.video_bitrate, "audio_bitrate": args.audio_bitrate,
        "fps": args.fps, "resolution": args.resolution,
        "keyframe_interval": args.keyframe_interval,
        "ivf": args.ivf.as_ref().map(|p| p.display().to_string()),
        "burst": args.burst, "burst_gap_ms": args.burst_gap_ms,
        "warmup_secs": args.warmup_secs, "duration_secs": args.duration_secs,
        "sockets": args.sockets, "local_net": args.local_net,
        "light_subscribers": args.light_subscribers, "gro_receivers": args.gro_receivers,
        "server_cpu": args.server_cpu, "client_cpu": args.client_cpu,
    })
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .ok();
    json!({"nproc": net::online_cpus(), "cpu_model": model, "kernel": kernel})
}

/// Waits until `done` holds for every participant in `parts`, or `timeout`.
async fn wait_parts(
    tracker: &Tracker,
    parts: &[usize],
    timeout: Duration,
    done: impl Fn(&Part) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if parts
            .iter()
            .all(|&i| tracker.get(i).is_none_or(|p| done(&p)))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Shared text of the progress line.
type Phase = Arc<Mutex<String>>;

fn set_phase(phase: &Phase, s: String) {
    *phase.lock().unwrap_or_else(|e| e.into_inner()) = s;
}

/// Prints a progress line every second until `stop`.
async fn progress(
    name: String,
    engine: EngineHandle,
    pid: Option<u32>,
    phase: Phase,
    mut stop: watch::Receiver<bool>,
) {
    let tty = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last: Option<(Instant, u64, Option<Duration>)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let Ok(snap) = engine.snapshot(false).await else {
            break;
        };
        let now = Instant::now();
        let rx: u64 = snap.subs.iter().map(|s| s.packets).sum();
        let expected: u64 = snap.subs.iter().map(|s| s.expected).sum();
        let counted: u64 = snap.subs.iter().map(|s| s.counted).sum();
        let proc_ = pid.and_then(|p| procfs::sample(p).ok());
        let cpu = proc_.as_ref().map(|p| p.cpu);
        let drops = proc_.as_ref().map(|p| p.udp_drops);
        let mut line = format!(
            "[{name}] {} | conns {} | ",
            phase.lock().unwrap_or_else(|e| e.into_inner()),
            snap.conns
        );
        if let Some((t, prev_rx, prev_cpu)) = last {
            let dt = now.duration_since(t).as_secs_f64().max(1e-6);
            line += &format!("rx {:.0} pkt/s | ", (rx - prev_rx) as f64 / dt);
            if let (Some(c), Some(pc)) = (cpu, prev_cpu) {
                line += &format!("server cpu {:.0}% | ", 100.0 * (c - pc).as_secs_f64() / dt);
            }
        }
        line += &format!(
            "max latency {:.1} ms | loss {:.2}%",
            snap.recent_max_latency_us as f64 / 1000.0,
            100.0 * expected.saturating_sub(counted) as f64 / expected.max(1) as f64
        );
        if let Some(p) = &proc_ {
            line += &format!(
                " | server udp drops {} | rss {:.0} MiB",
                drops.unwrap_or(0),
                p.rss_bytes as f64 / 1048576.0
            );
        }
        if tty {
            eprint!("\r{line:<110}");
        } else {
            eprintln!("{line}");
        }
        let _ = std::io::stderr().flush();
        last = Some((now, rx, cpu));
    }
    if tty {
        eprintln!();
    }
}

async fn run_target(args: &Args, t: &Target, spec: PublishSpec) -> anyhow::Result<TargetResult> {
    let (ip_base, ip_count) = parse_net(&args.local_net)?;
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let engine = Engine::start(
        EngineConfig {
            sockets: args.sockets,
            ip_base,
            ip_count,
            light_subscribers: args.light_subscribers,
            gro_receivers: args.gro_receivers,
        },
        ev_tx,
    )?;
    let handle = engine.handle.clone();
    let timeout = Duration::from_secs(args.join_timeout_secs.max(1));

    let mut parts = Vec::new();
    for room in 0..args.rooms {
        for _ in 0..args.publishers {
            parts.push(Part {
                room,
                publisher: true,
                ..Part::default()
            });
        }
        for _ in 0..args.subscribers {
            parts.push(Part {
                room,
                publisher: false,
                ..Part::default()
            });
        }
    }
    let publishers: Vec<usize> = (0..parts.len()).filter(|&i| parts[i].publisher).collect();
    let subscribers: Vec<usize> = (0..parts.len()).filter(|&i| !parts[i].publisher).collect();
    let tracker = Arc::new(Tracker::new(parts));

    let run_id: u32 = rand::random();
    let (url, rooms) = match t.dialect {
        Dialect::Ours => {
            let ws = if let Some(r) = t.url.strip_prefix("http://") {
                format!("ws://{}", r.trim_end_matches('/'))
            } else {
                t.url.trim_end_matches('/').to_string()
            };
            let rooms = (0..args.rooms)
                .map(|i| format!("load-{run_id:08x}-{i}"))
                .collect();
            (ws, rooms)
        }
        Dialect::Direct => (String::new(), vec![String::new(); args.rooms]),
        Dialect::Janus => {
            let first = 100_000 + u64::from(run_id % 1_000_000) * 1_000;
            let rooms =
                janus::create_rooms(&t.url, first, args.rooms, args.publishers, timeout).await?;
            (t.url.clone(), rooms)
        }
    };
    // Before anything joins: the server must be reachable, or this is our error.
    if t.dialect == Dialect::Ours {
        ws::JsonWs::connect(&format!("{url}/ws/{}", rooms[0]), None, |_| None, timeout)
            .await
            .with_context(|| format!("cannot reach {}", t.url))?
            .close()
            .await;
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        dialect: t.dialect,
        url,
        engine: handle.clone(),
        spec: PublishSpec {
            rids_high_first: t.dialect == Dialect::Janus,
            ..spec
        },
        tracker: tracker.clone(),
        timeout,
        shutdown: shutdown_rx.clone(),
        rooms,
    });

    // Engine events -> participant records.
    let ev_tracker = tracker.clone();
    let ev_shutdown = shutdown_rx.clone();
    let events = tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            match ev {
                EngineEvent::Connected { tag, at } => {
                    let (part, recv) = from_tag(tag);
                    ev_tracker.update(part, |p| {
                        if recv {
                            p.recv_connected.get_or_insert(at);
                        } else {
                            p.send_connected.get_or_insert(at);
                        }
                    });
                }
                EngineEvent::FirstMedia { tag, at } => {
                    let (part, _) = from_tag(tag);
                    ev_tracker.update(part, |p| {
                        p.first_media.get_or_insert(at);
                    });
                }
                EngineEvent::Failed { tag, reason } => {
                    if !*ev_shutdown.borrow() {
                        let (part, recv) = from_tag(tag);
                        let dir = if recv { "receive" } else { "send" };
                        ev_tracker.fail(part, format!("{dir} connection: {reason}"));
                    }
                }
            }
        }
    });

    let idle = match t.pid {
        Some(pid) => Some(procfs::sample(pid)?),
        None => None,
    };
    let phase: Phase = Arc::new(Mutex::new(String::from("starting")));
    let progress_task = (!args.quiet).then(|| {
        tokio::spawn(progress(
            t.name.clone(),
            handle.clone(),
            t.pid,
            phase.clone(),
            shutdown_rx.clone(),
        ))
    });

    let spawn_part = |i: usize| {
        let ctx = ctx.clone();
        match ctx.dialect {
            Dialect::Ours => tokio::spawn(mm::participant(ctx, i)),
            Dialect::Janus => tokio::spawn(janus::participant(ctx, i)),
            Dialect::Direct => tokio::spawn(direct::participant(ctx, i)),
        }
    };
    let mut tasks = Vec::new();
    set_phase(&phase, format!("publishers 0/{}", publishers.len()));
    for &i in &publishers {
        tasks.push(spawn_part(i));
    }
    wait_parts(&tracker, &publishers, timeout, |p| {
        p.send_connected.is_some() || p.error.is_some()
    })
    .await;
    let burst = args.burst.max(1);
    let mut joined = 0;
    for chunk in subscribers.chunks(burst) {
        set_phase(&phase, format!("joins {joined}/{}", subscribers.len()));
        for &i in chunk {
            tasks.push(spawn_part(i));
        }
        wait_parts(&tracker, chunk, timeout, |p| {
            p.first_media.is_some() || p.error.is_some()
        })
        .await;
        joined += chunk.len();
        if args.burst_gap_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.burst_gap_ms)).await;
        }
    }
    let server_joined: Option<ProcSample> = match t.pid {
        Some(pid) => Some(procfs::sample(pid)?),
        None => None,
    };
    set_phase(&phase, format!("warmup, {joined} joined"));
    tokio::time::sleep(Duration::from_secs_f64(args.warmup_secs.max(0.0))).await;

    let server_before: Option<ProcSample> = match t.pid {
        Some(pid) => Some(procfs::sample(pid)?),
        None => None,
    };
    handle.start_window().await?;
    let before = handle.snapshot(false).await?;
    let t0 = Instant::now();
    set_phase(&phase, "measuring".to_string());
    tokio::time::sleep(Duration::from_secs_f64(args.duration_secs.max(0.1))).await;
    let after = handle.snapshot(true).await?;
    let window = t0.elapsed();
    let server_after: Option<ProcSample> = match t.pid {
        Some(pid) => Some(procfs::sample(pid)?),
        None => None,
    };

    let _ = shutdown_tx.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let Some(p) = progress_task {
        let _ = p.await;
    }
    drop(ctx);
    drop(handle);
    engine.stop()?;
    let _ = tokio::time::timeout(Duration::from_secs(1), events).await;

    let parts = tracker.all();
    Ok(report::compute(report::Measured {
        target: &t.name,
        url: &t.url,
        parts: &parts,
        before: &before,
        after: &after,
        window,
        server_idle: t.pid.zip(idle.as_ref()),
        server_joined: server_joined.as_ref(),
        server_before: server_before.as_ref(),
        server_after: server_after.as_ref(),
    }))
}

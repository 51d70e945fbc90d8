//! The `multiparty-meeting` binary: parse flags, load the configuration, set up logging, run
//! until SIGINT/SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use multiparty_meeting::config::LogFormat;
use multiparty_meeting::ids::NodeId;
use multiparty_meeting::{server, Config};
use tracing::{info, warn};

/// Self-hosted multi-party video meetings.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (see config/config.example.toml); MM_* variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config =
        Config::load(args.config.as_deref(), std::env::vars()).context("configuration refused")?;
    // The node id is fixed before logging starts, so that every line names it.
    let node = config
        .node_id
        .get_or_insert_with(|| NodeId::random().to_string())
        .clone();
    server::logging::init(config.log_format, &node).context("setting up logging")?;
    if config.announced_ip.is_none() {
        warn!(
            "announcedIp is not set: media is announced on 127.0.0.1, so only browsers on this \
             machine can connect. Set announcedIp (or MM_ANNOUNCED_IP) to this server's public \
             or LAN address for remote participants."
        );
    }
    let running = server::start(config.clone()).await?;
    let host = match config.listening_host.as_str() {
        "0.0.0.0" | "::" => "localhost".to_string(),
        h => h.to_string(),
    };
    let scheme = if config.http_only { "http" } else { "https" };
    info!(
        "meetings at {scheme}://{host}:{}/<room>  (media on UDP {:?})",
        running.http_addr.port(),
        running.media_addrs
    );
    // For the person who ran the command; a JSON log stream stays JSON lines only.
    if config.log_format == LogFormat::Text {
        println!(
            "multiparty-meeting is up: open {scheme}://{host}:{}/my-room",
            running.http_addr.port()
        );
    }
    let mut signals = Signals::new()?;
    signals.next().await;
    info!("SIGTERM/SIGINT: draining (send it again to exit at once)");
    tokio::select! {
        _ = running.drain(config.drain_timeout()) => {}
        _ = signals.next() => {
            warn!("second signal: exiting now");
            std::process::exit(0);
        }
    }
    running.stop().await;
    info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT as one stream.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

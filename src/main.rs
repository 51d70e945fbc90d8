//! The `multiparty-meeting` binary: parse flags, load the configuration, set up logging, run
//! until SIGINT/SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use multiparty_meeting::auth;
use multiparty_meeting::config::LogFormat;
use multiparty_meeting::ids::{NodeId, RoomId};
use multiparty_meeting::model::Role;
use multiparty_meeting::{server, Config};
use tracing::{info, warn};

/// Self-hosted multi-party video meetings.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (see config/config.example.toml); MM_* variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a room access token signed with a key of [auth] (see config/config.example.toml).
    Token {
        /// TOML configuration file holding [auth] keys; MM_* variables (MM_AUTH_KEYS) apply.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The room the token opens, or `*` for every room.
        #[arg(long)]
        room: String,
        /// The display name the holder gets.
        #[arg(long)]
        name: Option<String>,
        /// A role to grant (presenter, moderator, admin); repeat for several.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// How long the token is valid: 90s, 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The key id to sign with (needed when [auth] has several keys).
        #[arg(long)]
        kid: Option<String>,
    },
}

/// `multiparty-meeting token …`: the token on stdout, what it grants on stderr.
fn print_token(command: Command) -> anyhow::Result<()> {
    let Command::Token {
        config,
        room,
        name,
        roles,
        ttl,
        kid,
    } = command;
    let config =
        Config::load(config.as_deref(), std::env::vars()).context("configuration refused")?;
    if room != "*" {
        RoomId::parse(&room).map_err(|e| anyhow::anyhow!("--room {room:?}: {e}"))?;
    }
    let roles = roles
        .iter()
        .map(|r| {
            serde_json::from_value::<Role>(serde_json::Value::String(r.clone())).map_err(|_| {
                anyhow::anyhow!(
                    "--role {r:?}: not a role; use presenter, moderator, admin, authenticated or normal"
                )
            })
        })
        .collect::<anyhow::Result<Vec<Role>>>()?;
    let ttl = auth::parse_ttl(&ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    let tokens = auth::Tokens::new(config.auth.mode, config.auth.keys.clone());
    let claims = auth::claims(&room, name, roles, ttl, std::time::SystemTime::now());
    let token = tokens
        .mint(kid.as_deref(), &claims)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{token}");
    eprintln!(
        "valid {} s for room {room}; give it as ?token=<token> in the room URL{}",
        ttl.as_secs(),
        if config.auth.mode == auth::AuthMode::Open {
            " (note: [auth] mode is \"open\", so this server does not read tokens)"
        } else {
            ""
        }
    );
    Ok(())
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(command) = args.command {
        return print_token(command);
    }
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

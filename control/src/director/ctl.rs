//! `chancectl director ...` against a running chance-director: its backends (state, health,
//! shares of the table's rows), a flow's lookup, its counters and its configuration, as text or
//! JSON. The requests and replies are [`super::api`]'s.

use super::api::{BackendsReply, DirectorConfigReply, DirectorLookupReply, DirectorStatsReply};
use crate::api::{Client, Request};
use crate::control_config::default_socket;
use crate::director_config::{self, TableSource, DEFAULT_FILE_PREFIX};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where chance-director's configuration is installed (its API socket is read from it).
pub const DEFAULT_DIRECTOR_CONFIG: &str = "/etc/chance/director.toml";

/// `chancectl director` subcommands for a running director.
#[derive(Debug, clap::Subcommand)]
pub enum DirectorCommand {
    /// Offline tools, which need no running director.
    #[command(flatten)]
    Offline(crate::director_cli::OfflineCommand),
    /// Every backend: state, health, rows held as primary and as secondary, checks.
    Backends {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The bind, row and hop list of a flow, and why.
    Lookup {
        /// tcp or udp.
        proto: String,
        /// The VIP side, ADDR:PORT ([ADDR]:PORT for IPv6).
        vip: String,
        /// The client side.
        client: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The director's counters.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The running director's configuration.
    Config {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The director's socket: `--socket`, else the installed configuration's, else the default.
pub fn socket_path(socket: Option<PathBuf>) -> PathBuf {
    socket.unwrap_or_else(|| {
        director_config::load(Path::new(DEFAULT_DIRECTOR_CONFIG))
            .ok()
            .and_then(|c| c.control.api_socket)
            .unwrap_or_else(|| default_socket(DEFAULT_FILE_PREFIX))
    })
}

/// `chancectl config check` of a director's file: its one-line summary, or the loader's error.
pub fn check(file: &Path) -> Result<String, crate::ConfigError> {
    let config = director_config::load(file)?;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let source = match &config.source {
        TableSource::Inline => format!(
            "{} bind{}, {} backend{}",
            config.binds.len(),
            plural(config.binds.len()),
            config.backends.len(),
            plural(config.backends.len()),
        ),
        TableSource::GlbJson(path) => format!("binds and backends from {}", path.display()),
    };
    Ok(format!(
        "{}: OK: director {}, GUE port {}, {source}, health checks {}\n",
        file.display(),
        config.director.address,
        config.director.gue_port,
        if config.healthcheck.is_some() {
            "on"
        } else {
            "off"
        },
    ))
}

/// Runs `command` against the director at `socket`; what to print.
pub fn run(socket: &Path, command: &DirectorCommand) -> anyhow::Result<String> {
    let (request, json) = match command {
        DirectorCommand::Offline(offline) => return crate::director_cli::run(offline),
        DirectorCommand::Backends { json } => (Request::DirectorBackends, *json),
        DirectorCommand::Lookup {
            proto,
            vip,
            client,
            json,
        } => (
            Request::DirectorLookup {
                proto: proto.clone(),
                vip: vip.clone(),
                client: client.clone(),
            },
            *json,
        ),
        DirectorCommand::Stats { json } => (Request::Stats, *json),
        DirectorCommand::Config { json } => (Request::Config, *json),
    };
    let value = Client::connect(socket)?.call(&request)?;
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value)?));
    }
    Ok(match command {
        DirectorCommand::Backends { .. } => backends(&serde_json::from_value(value)?),
        DirectorCommand::Lookup { .. } => lookup(&serde_json::from_value(value)?),
        DirectorCommand::Stats { .. } => stats(&serde_json::from_value(value)?),
        DirectorCommand::Config { .. } => config(&serde_json::from_value(value)?),
        DirectorCommand::Offline(_) => String::new(),
    })
}

fn backends(reply: &BackendsReply) -> String {
    let rows = |n: Option<u32>| n.map_or("-".to_owned(), |n| n.to_string());
    let mut out = format!(
        "{:<16} {:<9} {:<9} {:>7} {:>9} {:>13} {:>7}  LAST ERROR\n",
        "BACKEND", "STATE", "HEALTH", "PRIMARY", "SECONDARY", "CHECKS OK/NO", "UP/DOWN"
    );
    for b in &reply.backends {
        let _ = writeln!(
            out,
            "{:<16} {:<9} {:<9} {:>7} {:>9} {:>13} {:>7}  {}",
            b.address,
            b.state,
            if b.healthy { "healthy" } else { "unhealthy" },
            rows(b.primary_rows),
            rows(b.secondary_rows),
            format!("{}/{}", b.checks_passed, b.checks_failed),
            format!("{}/{}", b.went_up, b.went_down),
            b.last_error.as_deref().unwrap_or(""),
        );
    }
    if !reply.health_checks {
        out.push_str("health checks off: the file's `healthy` values hold\n");
    }
    if !reply.table {
        out.push_str("no forwarding table built: shares unknown\n");
    }
    out
}

fn lookup(reply: &DirectorLookupReply) -> String {
    let mut out = format!("flow: {}\n", reply.flow);
    let _ = writeln!(out, "bind: {}", reply.bind.as_deref().unwrap_or("none"));
    if let Some(row) = reply.row {
        let _ = writeln!(out, "row: {row}");
        let _ = writeln!(out, "hops: {}", reply.hops.join(" "));
    }
    let _ = writeln!(out, "why: {}", reply.why);
    out
}

fn stats(reply: &DirectorStatsReply) -> String {
    let mut out = format!(
        "chance-director {}, up {:.0} s, {}\n",
        reply.version,
        reply.uptime_secs,
        if reply.dataplane {
            "dataplane running"
        } else {
            "control plane only"
        }
    );
    for (k, v) in reply.backends.iter().chain(&reply.daemon) {
        let _ = writeln!(out, "{k:<32} {v}");
    }
    for (k, v) in reply.director.iter().chain(&reply.path) {
        let _ = writeln!(out, "{k:<32} {v}");
    }
    out
}

fn config(c: &DirectorConfigReply) -> String {
    let or_off = |v: &Option<String>| v.clone().unwrap_or_else(|| "off".into());
    let mut out = format!("chance-director {} with {}\n", c.version, c.path);
    let _ = writeln!(out, "address {}, GUE port {}", c.address, c.gue_port);
    let _ = writeln!(
        out,
        "hash fields {} (alt: {})",
        c.hash_fields.join(" "),
        if c.alt_hash_fields.is_empty() {
            "none".to_owned()
        } else {
            c.alt_hash_fields.join(" ")
        }
    );
    let _ = writeln!(out, "binds: {}", c.binds.join(", "));
    let _ = writeln!(out, "backends: {}", c.backends);
    let _ = writeln!(out, "health checks: {}", or_off(&c.healthcheck));
    let _ = writeln!(
        out,
        "API {}, metrics {}, log {}",
        or_off(&c.api_socket),
        or_off(&c.metrics_bound),
        c.log_level
    );
    let _ = writeln!(
        out,
        "reloads: {} ok, {} failed{}",
        c.reloads_total,
        c.reload_failures_total,
        c.last_reload_error
            .as_ref()
            .map_or(String::new(), |e| format!(" (last: {e})"))
    );
    if !c.pending_restart.is_empty() {
        let _ = writeln!(out, "needs a restart: {}", c.pending_restart.join(", "));
    }
    out
}

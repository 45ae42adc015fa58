//! chance-director's answers on the local API (the socket is [`crate::shell::api_server`]'s):
//! `stats`, `config`, `reload`, `director_backends` and `director_lookup`. chanced's flow-table
//! requests are refused: a director keeps no per-flow state.

use super::table::{self, Flow};
use super::{lock, reload, Shared};
use crate::api::Request;
use crate::shell::api_server::ApiHandler;
use chance_director::{BackendState, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The director's API over its shared state.
#[derive(Debug)]
pub(crate) struct DirectorApi(pub Arc<Shared>);

impl ApiHandler for DirectorApi {
    fn handle(&self, request: Request) -> Result<Value, String> {
        let shared = &self.0;
        match request {
            Request::Stats => json(stats(shared)),
            Request::Config => json(config(shared)),
            Request::Reload => json(reload::reload(shared, "API")?),
            Request::DirectorBackends => json(backends(shared)),
            Request::DirectorLookup { proto, vip, client } => {
                json(lookup(shared, &proto, &vip, &client)?)
            }
            other => Err(format!(
                "`{}` is chanced's: this socket is chance-director's, which keeps no flow table",
                other.name()
            )),
        }
    }
}

fn json<T: Serialize>(value: T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// `stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DirectorStatsReply {
    /// Version and git revision.
    pub version: String,
    /// Seconds since the director started.
    pub uptime_secs: f64,
    /// Whether a dataplane runs (false with `--no-dataplane`).
    pub dataplane: bool,
    /// Backends by health: `healthy`, `unhealthy`.
    pub backends: BTreeMap<String, u64>,
    /// Daemon counters: reloads, table builds, health checks and transitions.
    pub daemon: BTreeMap<String, u64>,
    /// The director's packet counters summed over the workers (empty without a dataplane).
    #[serde(default)]
    pub director: BTreeMap<String, u64>,
    /// The workers' path counters (received, encapsulated, passed to the kernel, ...) and the
    /// ports' own (`nic_port_*`, `kernel_port_*`), at the dataplane's last tick.
    #[serde(default)]
    pub path: BTreeMap<String, u64>,
}

fn stats(shared: &Shared) -> DirectorStatsReply {
    let health = shared.health.snapshot();
    let healthy = health.values().filter(|h| h.healthy).count() as u64;
    let sum = |f: fn(&super::health::BackendHealth) -> u64| health.values().map(f).sum::<u64>();
    let daemon = [
        (
            "reloads_total",
            shared.reload.reloads.load(Ordering::Relaxed),
        ),
        (
            "reload_failures_total",
            shared.reload.failures.load(Ordering::Relaxed),
        ),
        (
            "table_builds_total",
            shared.table_builds.load(Ordering::Relaxed),
        ),
        (
            "table_build_failures_total",
            shared.table_build_failures.load(Ordering::Relaxed),
        ),
        ("health_checks_passed_total", sum(|h| h.checks_passed)),
        ("health_checks_failed_total", sum(|h| h.checks_failed)),
        ("health_transitions_up_total", sum(|h| h.went_up)),
        ("health_transitions_down_total", sum(|h| h.went_down)),
    ];
    DirectorStatsReply {
        version: crate::daemon::version(),
        uptime_secs: shared.started.elapsed().as_secs_f64(),
        dataplane: shared.dataplane,
        backends: [
            ("healthy".to_owned(), healthy),
            ("unhealthy".to_owned(), health.len() as u64 - healthy),
        ]
        .into(),
        daemon: daemon.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
        director: director_counters(shared)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        path: path_counters(shared),
    }
}

/// The director's packet counters summed over the workers (none before the dataplane runs).
pub(crate) fn director_counters(shared: &Shared) -> Vec<(&'static str, u64)> {
    lock(&shared.dataplane_stats)
        .as_ref()
        .map_or_else(Vec::new, |stats| {
            stats
                .totals()
                .into_iter()
                .map(|(counter, value)| (counter.name(), value))
                .collect()
        })
}

/// The runtime's path and port counters at the last tick.
pub(crate) fn path_counters(shared: &Shared) -> BTreeMap<String, u64> {
    let Some(snapshot) = lock(&shared.snapshot).clone() else {
        return BTreeMap::new();
    };
    let (_, path) = snapshot.total();
    let mut out: BTreeMap<String, u64> = path
        .iter()
        .map(|(counter, value)| (counter.name().to_owned(), value))
        .collect();
    for (port, stats) in [("nic", &snapshot.nic), ("kernel", &snapshot.kernel)] {
        out.insert(format!("{port}_port_rx_packets"), stats.ipackets);
        out.insert(format!("{port}_port_tx_packets"), stats.opackets);
        out.insert(format!("{port}_port_rx_missed"), stats.imissed);
        out.insert(format!("{port}_port_rx_nombuf"), stats.rx_nombuf);
    }
    out
}

/// One backend in `director_backends`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendReport {
    /// Its address.
    pub address: String,
    /// active, filling, draining or inactive.
    pub state: String,
    /// Whether it counts as healthy (the checks', or the file's without checks).
    pub healthy: bool,
    /// Rows with it as first hop (`None`: no table built).
    pub primary_rows: Option<u32>,
    /// Rows with it as second hop.
    pub secondary_rows: Option<u32>,
    /// Health-check rounds passed and failed, transitions up and down.
    pub checks_passed: u64,
    /// Rounds failed.
    pub checks_failed: u64,
    /// Transitions to healthy.
    pub went_up: u64,
    /// Transitions to unhealthy.
    pub went_down: u64,
    /// Why its last failed round failed.
    pub last_error: Option<String>,
}

/// `director_backends`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendsReply {
    /// Whether health checks run.
    pub health_checks: bool,
    /// Whether a table is built (the shares are `None` without one).
    pub table: bool,
    /// Every backend, in file order.
    pub backends: Vec<BackendReport>,
}

pub(crate) fn state_name(state: BackendState) -> &'static str {
    match state {
        BackendState::Active => "active",
        BackendState::Filling => "filling",
        BackendState::Draining => "draining",
        BackendState::Inactive => "inactive",
    }
}

fn backends(shared: &Shared) -> BackendsReply {
    let loaded = shared.current();
    let health = shared.health.snapshot();
    let table = shared.table();
    let shares = table.as_deref().map(table::shares);
    BackendsReply {
        health_checks: loaded.config.healthcheck.is_some(),
        table: table.is_some(),
        backends: loaded
            .backends
            .iter()
            .map(|b| {
                let h = health.get(&b.address).cloned().unwrap_or_default();
                let share = shares
                    .as_ref()
                    .map(|s| s.get(&b.address).copied().unwrap_or_default());
                BackendReport {
                    address: b.address.to_string(),
                    state: state_name(b.state).into(),
                    healthy: h.healthy,
                    primary_rows: share.map(|s| s.0),
                    secondary_rows: share.map(|s| s.1),
                    checks_passed: h.checks_passed,
                    checks_failed: h.checks_failed,
                    went_up: h.went_up,
                    went_down: h.went_down,
                    last_error: h.last_error,
                }
            })
            .collect(),
    }
}

/// `director_lookup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectorLookupReply {
    /// The flow as understood.
    pub flow: String,
    /// The first bind that matches (`bind[i] PREFIX PROTO PORTS`), if any.
    pub bind: Option<String>,
    /// The row the flow hashes to, when a table is built.
    pub row: Option<u16>,
    /// The row's hop list, first hop first.
    pub hops: Vec<String>,
    /// Why: which bind, or why the flow is not forwarded, or why there is no row.
    pub why: String,
}

fn lookup(
    shared: &Shared,
    proto: &str,
    vip: &str,
    client: &str,
) -> Result<DirectorLookupReply, String> {
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => return Err(format!("proto `{other}`: expected tcp or udp")),
    };
    let endpoint = |what: &str, text: &str| -> Result<SocketAddr, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("{what} `{text}` is not ADDR:PORT (or [ADDR]:PORT)"))
    };
    let flow = Flow {
        protocol,
        vip: endpoint("vip", vip)?,
        client: endpoint("client", client)?,
    };
    let shown = format!("{proto} {} -> {}", flow.client, flow.vip);
    let loaded = shared.current();
    let Some((i, bind)) = loaded
        .binds
        .iter()
        .enumerate()
        .find(|(_, b)| b.matches(flow.vip.ip(), protocol, flow.vip.port()))
    else {
        return Ok(DirectorLookupReply {
            flow: shown,
            bind: None,
            row: None,
            hops: Vec::new(),
            why: "no bind matches: the frame goes to the kernel port, not to a backend".into(),
        });
    };
    let bind_text = format!(
        "bind[{i}] {} {} {}-{}",
        bind.prefix,
        proto.to_ascii_lowercase(),
        bind.ports.start(),
        bind.ports.end()
    );
    let Some(table) = shared.table() else {
        return Ok(DirectorLookupReply {
            flow: shown,
            bind: Some(bind_text),
            row: None,
            hops: Vec::new(),
            why: "matches the bind, but no forwarding table is built in this daemon".into(),
        });
    };
    let row = table.row_of(&flow);
    let hops: Vec<String> = table
        .hops_of(&flow, row)
        .iter()
        .map(|h| h.to_string())
        .collect();
    let why = match hops.first() {
        Some(first) => format!(
            "matches {bind_text}; hashes to row {row}; sent to {first} first, and on along the hop list while a hop does not own the flow"
        ),
        None => format!("matches {bind_text}; row {row} has no usable backend: dropped"),
    };
    Ok(DirectorLookupReply {
        flow: shown,
        bind: Some(bind_text),
        row: Some(row),
        hops,
        why,
    })
}

/// `config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectorConfigReply {
    /// The file.
    pub path: String,
    /// Version and git revision.
    pub version: String,
    /// director.address.
    pub address: String,
    /// director.gue_port.
    pub gue_port: u16,
    /// director.hash_fields.
    pub hash_fields: Vec<String>,
    /// director.alt_hash_fields.
    pub alt_hash_fields: Vec<String>,
    /// The binds, `PREFIX PROTO LOW-HIGH`.
    pub binds: Vec<String>,
    /// Backends in the file.
    pub backends: usize,
    /// Health checks: interval, timeout, rise, fall, hold-down, checks (`None`: off).
    pub healthcheck: Option<String>,
    /// The API socket served.
    pub api_socket: Option<String>,
    /// The metrics address served.
    pub metrics_bound: Option<String>,
    /// The log filter in force.
    pub log_level: String,
    /// Keys of the loaded file waiting for a restart.
    pub pending_restart: Vec<String>,
    /// Successful reloads.
    pub reloads_total: u64,
    /// Failed reloads.
    pub reload_failures_total: u64,
    /// Why the last reload failed.
    pub last_reload_error: Option<String>,
}

fn config(shared: &Shared) -> DirectorConfigReply {
    let loaded = shared.current();
    let c = &loaded.config;
    let fields = |f: Option<chance_director::HashFields>| {
        f.map_or_else(Vec::new, |f| {
            f.names().into_iter().map(str::to_owned).collect()
        })
    };
    let controls = lock(&shared.controls);
    DirectorConfigReply {
        path: shared.config_path.display().to_string(),
        version: crate::daemon::version(),
        address: c.director.address.to_string(),
        gue_port: c.director.gue_port,
        hash_fields: fields(Some(c.director.hash_fields)),
        alt_hash_fields: fields(c.director.alt_hash_fields),
        binds: loaded
            .binds
            .iter()
            .map(|b| {
                let proto = if b.protocol == Protocol::Tcp {
                    "tcp"
                } else {
                    "udp"
                };
                format!("{} {proto} {}-{}", b.prefix, b.ports.start(), b.ports.end())
            })
            .collect(),
        backends: loaded.backends.len(),
        healthcheck: c.healthcheck.as_ref().map(|h| {
            let mut checks = Vec::new();
            if h.gue {
                checks.push("gue".to_owned());
            }
            if let Some(p) = h.tcp_port {
                checks.push(format!("tcp:{p}"));
            }
            if let Some(http) = &h.http {
                checks.push(format!("http:{}{}", http.port, http.path));
            }
            format!(
                "every {} ms, timeout {} ms, rise {}, fall {}, hold-down {} ms: {}",
                h.interval.as_millis(),
                h.timeout.as_millis(),
                h.rise,
                h.fall,
                h.hold_down.as_millis(),
                checks.join(" ")
            )
        }),
        api_socket: controls
            .api
            .as_ref()
            .map(|a| a.path().display().to_string()),
        metrics_bound: controls.metrics.as_ref().map(|m| m.address().to_string()),
        log_level: shared.log.current(),
        pending_restart: lock(&shared.pending_restart).clone(),
        reloads_total: shared.reload.reloads.load(Ordering::Relaxed),
        reload_failures_total: shared.reload.failures.load(Ordering::Relaxed),
        last_reload_error: shared.reload.last_error(),
    }
}

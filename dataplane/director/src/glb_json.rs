//! glb-director's forwarding-table JSON (`forwarding_table.json`, or the healthchecker's
//! `forwarding_table.checked.json`): tables of binds and backends.
//!
//! Every file `glb-director-cli build-config` turns into the same table is read the same way, with
//! two differences, both refusals with an error that names the key:
//! - input GLB reads as something else without a word (a port that is not a number reads as 0, a
//!   hash key that is not hex as whatever the stack held, a 257th backend is dropped, an unknown
//!   key is ignored, a bind with host bits set past its prefix);
//! - input GLB's code has no defined answer for (a table whose backends are all inactive, the same
//!   backend twice) or that cannot be reached (IPv6 backends: GLB's outer header is IPv4).
//!
//! A backend without `healthy` is unhealthy, as in GLB (the healthchecker fills it in).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

use crate::model::{Backend, BackendState, Bind, Prefix, Protocol};
use crate::table::{TableError, MAX_BACKENDS};

/// The most binds a table may hold (GLB's binary format has room for this many).
pub const MAX_BINDS: usize = 256;

/// A whole forwarding-table file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlbConfig {
    /// The tables, in file order (a table's index is its position).
    pub tables: Vec<GlbTable>,
    /// The healthchecker's timing, when the file carries it.
    pub healthchecks: Option<GlbHealthcheckTiming>,
}

/// One table: a load balancer's binds and backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlbTable {
    /// Its name (the healthchecker's label), when given.
    pub name: Option<String>,
    /// The SipHash key packets are hashed with.
    pub hash_key: [u8; 16],
    /// The rendezvous seed rows are built from.
    pub seed: [u8; 16],
    /// The traffic the table serves.
    pub binds: Vec<Bind>,
    /// The backends, in file order (rows name them by this index).
    pub backends: Vec<GlbBackend>,
}

impl GlbTable {
    /// The backends as a table build takes them.
    pub fn backend_list(&self) -> Vec<Backend> {
        self.backends.iter().map(GlbBackend::backend).collect()
    }
}

/// One backend entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlbBackend {
    /// Its address.
    pub address: Ipv4Addr,
    /// Its state.
    pub state: BackendState,
    /// `healthy` as the file gives it (`None` when absent).
    pub healthy: Option<bool>,
    /// The checks the healthchecker runs against it.
    pub healthchecks: Option<GlbHealthchecks>,
}

impl GlbBackend {
    /// The backend; absent health reads as unhealthy, as in GLB.
    pub fn backend(&self) -> Backend {
        Backend {
            address: self.address,
            state: self.state,
            healthy: self.healthy.unwrap_or(false),
        }
    }
}

/// A backend's health checks (the healthchecker's `healthchecks`): ports to probe.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlbHealthchecks {
    /// HTTP check port.
    pub http: Option<u16>,
    /// The HTTP check's path.
    pub http_uri: Option<String>,
    /// GUE tunnel check port.
    pub gue: Option<u16>,
    /// The legacy FOU tunnel check port.
    pub fou: Option<u16>,
    /// TCP connect check port.
    pub tcp: Option<u16>,
}

/// The healthchecker's timing (the file's top-level `healthchecks`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlbHealthcheckTiming {
    /// Milliseconds a check may take.
    pub timeout_ms: Option<u64>,
    /// Milliseconds between checks.
    pub interval_ms: Option<u64>,
    /// Consecutive results before a backend's health flips.
    pub trigger: Option<u32>,
}

/// Why a file is not a valid forwarding table: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlbJsonError {
    /// The key, as `tables[0].backends[2].state` (empty for the document itself).
    pub path: String,
    /// The line and column, for a syntax or type error.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for GlbJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.position {
            write!(f, "{line}:{column}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for GlbJsonError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tables: Vec<RawTable>,
    #[serde(default)]
    healthchecks: Option<GlbHealthcheckTiming>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    name: Option<String>,
    hash_key: String,
    seed: String,
    binds: Vec<RawBind>,
    backends: Vec<RawBackend>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBind {
    ip: String,
    proto: RawProtocol,
    port: Option<u16>,
    port_start: Option<u16>,
    port_end: Option<u16>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawProtocol {
    Tcp,
    Udp,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawState {
    Active,
    Filling,
    Draining,
    Inactive,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    ip: String,
    state: RawState,
    #[serde(default)]
    healthy: Option<bool>,
    #[serde(default)]
    healthchecks: Option<GlbHealthchecks>,
}

/// Reads a forwarding-table file's text.
pub fn parse(text: &str) -> Result<GlbConfig, GlbJsonError> {
    let deserializer = &mut serde_json::Deserializer::from_str(text);
    let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        GlbJsonError {
            path: if path == "." { String::new() } else { path },
            position: Some((inner.line(), inner.column())),
            message: strip_position(&inner.to_string()),
        }
    })?;
    let tables = raw
        .tables
        .into_iter()
        .enumerate()
        .map(|(t, table)| table_from_raw(table, &format!("tables[{t}]")))
        .collect::<Result<_, _>>()?;
    Ok(GlbConfig {
        tables,
        healthchecks: raw.healthchecks,
    })
}

/// serde_json's message without its " at line L column C" (the error carries them apart).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn error(path: String, message: impl Into<String>) -> GlbJsonError {
    GlbJsonError {
        path,
        position: None,
        message: message.into(),
    }
}

fn table_from_raw(raw: RawTable, path: &str) -> Result<GlbTable, GlbJsonError> {
    let hash_key = key_from_hex(&raw.hash_key).map_err(|m| error(format!("{path}.hash_key"), m))?;
    let seed = key_from_hex(&raw.seed).map_err(|m| error(format!("{path}.seed"), m))?;
    if raw.binds.len() > MAX_BINDS {
        return Err(error(
            format!("{path}.binds"),
            format!(
                "{} binds: a table holds at most {MAX_BINDS}",
                raw.binds.len()
            ),
        ));
    }
    let binds = raw
        .binds
        .into_iter()
        .enumerate()
        .map(|(b, bind)| bind_from_raw(bind, &format!("{path}.binds[{b}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.backends.len() > MAX_BACKENDS {
        return Err(error(
            format!("{path}.backends"),
            TableError::TooManyBackends {
                count: raw.backends.len(),
            }
            .to_string(),
        ));
    }
    let mut seen = HashSet::new();
    let backends = raw
        .backends
        .into_iter()
        .enumerate()
        .map(|(b, backend)| {
            let backend = backend_from_raw(backend, &format!("{path}.backends[{b}]"))?;
            if !seen.insert(backend.address) {
                return Err(error(
                    format!("{path}.backends[{b}].ip"),
                    TableError::DuplicateBackend {
                        address: backend.address,
                    }
                    .to_string(),
                ));
            }
            Ok(backend)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let table = GlbTable {
        name: raw.name,
        hash_key,
        seed,
        binds,
        backends,
    };
    if table
        .backends
        .iter()
        .all(|b| b.state == BackendState::Inactive)
    {
        return Err(error(
            format!("{path}.backends"),
            TableError::NoUsableBackend.to_string(),
        ));
    }
    Ok(table)
}

/// A 16-byte key from exactly 32 hex digits.
fn key_from_hex(text: &str) -> Result<[u8; 16], String> {
    let mut key = [0u8; 16];
    if text.len() != 32 {
        return Err(format!(
            "must be 32 hex digits (16 bytes), not {} characters",
            text.len()
        ));
    }
    hex::decode_to_slice(text, &mut key).map_err(|e| format!("not hex: {e}"))?;
    Ok(key)
}

fn bind_from_raw(raw: RawBind, path: &str) -> Result<Bind, GlbJsonError> {
    let prefix = parse_prefix(&raw.ip).map_err(|m| error(format!("{path}.ip"), m))?;
    let ports = match (raw.port, raw.port_start, raw.port_end) {
        (Some(port), None, None) => port..=port,
        (None, Some(start), Some(end)) if start <= end => start..=end,
        (None, Some(start), Some(end)) => {
            return Err(error(
                format!("{path}.port_end"),
                format!("port_end {end} is below port_start {start}"),
            ))
        }
        _ => {
            return Err(error(
                path.to_owned(),
                "give either `port` or both `port_start` and `port_end`",
            ))
        }
    };
    let protocol = match raw.proto {
        RawProtocol::Tcp => Protocol::Tcp,
        RawProtocol::Udp => Protocol::Udp,
    };
    Ok(Bind {
        prefix,
        protocol,
        ports,
    })
}

/// An address, or an address and a prefix length (`10.0.0.0/24`, `2001:db8::/32`).
fn parse_prefix(text: &str) -> Result<Prefix, String> {
    let (address, len) = match text.split_once('/') {
        Some((address, len)) => (address, Some(len)),
        None => (text, None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
    match len {
        None => Ok(Prefix::host(address)),
        Some(len) => {
            let len: u8 = len
                .parse()
                .map_err(|_| format!("prefix length {len:?} is not a number"))?;
            Prefix::new(address, len).map_err(|e| format!("{text}: {e}"))
        }
    }
}

fn backend_from_raw(raw: RawBackend, path: &str) -> Result<GlbBackend, GlbJsonError> {
    let address = match raw.ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4,
        Ok(IpAddr::V6(_)) => {
            return Err(error(
                format!("{path}.ip"),
                "IPv6 backends are not supported: GLB's encapsulation (outer header) is IPv4",
            ))
        }
        Err(_) => {
            return Err(error(
                format!("{path}.ip"),
                format!("{:?} is not an IPv4 address", raw.ip),
            ))
        }
    };
    let state = match raw.state {
        RawState::Active => BackendState::Active,
        RawState::Filling => BackendState::Filling,
        RawState::Draining => BackendState::Draining,
        RawState::Inactive => BackendState::Inactive,
    };
    Ok(GlbBackend {
        address,
        state,
        healthy: raw.healthy,
        healthchecks: raw.healthchecks,
    })
}

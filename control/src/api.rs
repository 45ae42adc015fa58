//! The daemons' local API (chanced's and chance-director's): newline-delimited JSON over a Unix
//! socket, versioned. Each daemon answers the requests it serves and refuses the other's clearly.
//!
//! A request is one line, a JSON object with `version` and `request` and the request's own fields:
//!
//! ```text
//! {"version":1,"request":"stats"}
//! {"version":1,"request":"flows_list","source":"static","limit":100}
//! {"version":1,"request":"flows_lookup","flow":{"proto":"tcp","local":"203.0.113.10:443","remote":"198.51.100.7:51234"}}
//! {"version":1,"request":"flows_add","flow":{...}}        flows_del likewise (static entries only)
//! {"version":1,"request":"simulate","frame":"<hex>"}
//! {"version":1,"request":"reload"}
//! {"version":1,"request":"config"}
//! {"version":1,"request":"capture","port":"nic","verdict":"drop","filter":"udp/*/6080","count":5,"snaplen":256,"timeout_ms":10000}
//! {"version":1,"request":"director_backends"}                       chance-director only
//! {"version":1,"request":"director_lookup","proto":"tcp","vip":"203.0.113.10:443","client":"198.51.100.7:51234"}
//! ```
//!
//! Each gets one line back: `{"version":1,"ok":{...}}` or `{"version":1,"error":"..."}`. A
//! connection may carry any number of requests, one at a time. A request longer than
//! [`MAX_REQUEST_BYTES`] gets an error and the connection is closed; a malformed one, or one of
//! another version, gets an error and the connection stays usable.

use crate::report::PortReport;
use chance_engine::{FlowKey, L4Proto};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// The longest request line, newline included.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The longest frame `simulate` takes.
pub const MAX_SIMULATED_FRAME: usize = 16 * 1024;

/// A flow as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// "tcp" or "udp".
    pub proto: String,
    /// The host's side, `ADDR:PORT` (`[ADDR]:PORT` for IPv6).
    pub local: String,
    /// The remote side.
    pub remote: String,
}

impl FlowSpec {
    /// The flow key, or why there is none.
    pub fn key(&self) -> Result<FlowKey, String> {
        let proto = match self.proto.to_ascii_lowercase().as_str() {
            "tcp" => L4Proto::Tcp,
            "udp" => L4Proto::Udp,
            other => return Err(format!("proto `{other}`: expected tcp or udp")),
        };
        let endpoint = |what: &str, text: &str| -> Result<SocketAddr, String> {
            text.trim()
                .parse()
                .map_err(|_| format!("{what} `{text}` is not ADDR:PORT (or [ADDR]:PORT)"))
        };
        let local = endpoint("local", &self.local)?;
        let remote = endpoint("remote", &self.remote)?;
        if local.port() == 0 || remote.port() == 0 {
            return Err("port 0 is not a flow port".into());
        }
        FlowKey::new(proto, local, remote)
            .ok_or_else(|| "local and remote are of different address families".into())
    }

    /// The spec of a key.
    pub fn of(key: &FlowKey) -> Self {
        Self {
            proto: key.proto().name().to_owned(),
            local: key.local().to_string(),
            remote: key.remote().to_string(),
        }
    }
}

/// A live capture's parameters (`port`, `verdict` and `filter` default to any; see
/// [`chance_runtime::capture`] for the filter's syntax).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// nic, kernel or any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// accept, forward, drop, pass, egress or any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// `PROTO[/ADDR[/PORT]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// How many frames (1 to [`MAX_CAPTURE_COUNT`]).
    pub count: u64,
    /// Bytes kept of each frame (default [`DEFAULT_SNAPLEN`], at most [`MAX_SNAPLEN`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snaplen: Option<usize>,
    /// How long to wait for them (at most [`MAX_CAPTURE_TIMEOUT_MS`]).
    pub timeout_ms: u64,
}

/// The most frames one capture takes.
pub const MAX_CAPTURE_COUNT: u64 = 10_000;
/// The snap length when none is given.
pub const DEFAULT_SNAPLEN: usize = 256;
/// The longest snap length.
pub const MAX_SNAPLEN: usize = 2048;
/// The longest a capture waits.
pub const MAX_CAPTURE_TIMEOUT_MS: u64 = 3_600_000;

/// A captured frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedFrameReply {
    /// nic or kernel.
    pub port: String,
    /// accept, forward, drop, pass or egress.
    pub verdict: String,
    /// When the worker received it, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Its length on the wire.
    pub len: usize,
    /// Its first snaplen bytes as received, in hex.
    pub data: String,
}

/// A capture's frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureReply {
    /// The filter as the daemon understood it.
    pub filter: String,
    /// The snap length used.
    pub snaplen: usize,
    /// The frames, in the order the workers queued them.
    pub frames: Vec<CapturedFrameReply>,
    /// Matching frames lost because the capture's queue was full.
    pub dropped: u64,
    /// Whether the timeout ended the capture before `count` frames.
    pub timed_out: bool,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Counters: engine and path per lcore and summed, ports, flow table, reconciliation.
    Stats,
    /// Flow-table entries.
    FlowsList {
        /// Only entries of this source (syn, egress, socket, static).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// At most this many (default 100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// One flow's entry.
    FlowsLookup {
        /// The flow.
        flow: FlowSpec,
    },
    /// Adds a static entry.
    FlowsAdd {
        /// The flow.
        flow: FlowSpec,
    },
    /// Removes a static entry (learned entries are the reconciliation's business).
    FlowsDel {
        /// The flow.
        flow: FlowSpec,
    },
    /// Runs a frame through an engine over the live table, which it does not change.
    Simulate {
        /// The Ethernet frame in hex.
        frame: String,
    },
    /// Reloads the configuration file (as SIGHUP does).
    Reload,
    /// The running configuration.
    Config,
    /// Captures live frames until `count` are taken or `timeout_ms` passes, then answers them.
    Capture(CaptureRequest),
    /// chance-director: every backend's state, health and share of the table's rows.
    DirectorBackends,
    /// chance-director: the bind, row and hop list of a flow.
    DirectorLookup {
        /// "tcp" or "udp".
        proto: String,
        /// The VIP side, `ADDR:PORT` (`[ADDR]:PORT` for IPv6).
        vip: String,
        /// The client side.
        client: String,
    },
}

impl Request {
    /// The request's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Stats => "stats",
            Request::FlowsList { .. } => "flows_list",
            Request::FlowsLookup { .. } => "flows_lookup",
            Request::FlowsAdd { .. } => "flows_add",
            Request::FlowsDel { .. } => "flows_del",
            Request::Simulate { .. } => "simulate",
            Request::Reload => "reload",
            Request::Config => "config",
            Request::Capture(_) => "capture",
            Request::DirectorBackends => "director_backends",
            Request::DirectorLookup { .. } => "director_lookup",
        }
    }

    /// The request as one line (newline included).
    pub fn to_line(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("version".into(), VERSION.into());
        }
        let mut line = value.to_string();
        line.push('\n');
        line
    }
}

/// Parses one request line (without its newline); the error is the reply's message.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let mut value: Value =
        serde_json::from_slice(line).map_err(|e| format!("malformed request: {e}"))?;
    let Some(object) = value.as_object_mut() else {
        return Err("malformed request: expected a JSON object".into());
    };
    match object.remove("version") {
        Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
        Some(v) => {
            return Err(format!(
                "unsupported version {v}: this chanced speaks version {VERSION}"
            ))
        }
        None => return Err(format!("missing `version` (this chanced speaks {VERSION})")),
    }
    if !object.contains_key("request") {
        return Err("missing `request`".into());
    }
    let fields: Vec<String> = object.keys().filter(|k| *k != "request").cloned().collect();
    let request = Request::deserialize(value).map_err(|e| format!("bad request: {e}"))?;
    // serde's deny_unknown_fields does not reach the unit variants of a tagged enum.
    if matches!(
        request,
        Request::Stats | Request::Reload | Request::Config | Request::DirectorBackends
    ) {
        if let Some(field) = fields.first() {
            return Err(format!(
                "bad request: unknown field `{field}`: `{}` takes none",
                request.name()
            ));
        }
    }
    Ok(request)
}

/// A reply line: `ok` or `error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// The protocol version.
    pub version: u32,
    /// The result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Value>,
    /// Why the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A reply line (newline included).
    pub fn line(result: Result<Value, String>) -> String {
        let response = match result {
            Ok(ok) => Response {
                version: VERSION,
                ok: Some(ok),
                error: None,
            },
            Err(error) => Response {
                version: VERSION,
                ok: None,
                error: Some(error),
            },
        };
        let mut line = serde_json::to_string(&response)
            .unwrap_or_else(|e| format!("{{\"version\":{VERSION},\"error\":\"{e}\"}}"));
        line.push('\n');
        line
    }
}

/// Counters of one lcore, or their sum; every counter, zeros included.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CounterSet {
    /// The lcore id (absent for the sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lcore: Option<u32>,
    /// The engine's counters by name.
    pub engine: BTreeMap<String, u64>,
    /// The path counters by name.
    pub path: BTreeMap<String, u64>,
}

/// The `stats` reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatsReply {
    /// chanced's version.
    pub version: String,
    /// CLOCK_MONOTONIC, in nanoseconds, when the counters were read: rates are differences
    /// over differences of this.
    pub monotonic_ns: u64,
    /// Seconds since chanced started.
    pub uptime_secs: f64,
    /// False until the workers have published their first counters.
    pub running: bool,
    /// Summed over the lcores.
    pub total: CounterSet,
    /// Per worker lcore.
    pub lcores: Vec<CounterSet>,
    /// The ports' own counters (`nic`, `kernel`).
    pub ports: BTreeMap<String, PortReport>,
    /// The flow table's counters.
    pub flow_table: BTreeMap<String, u64>,
    /// The socket reconciliation's counters (empty when it is off).
    pub reconcile: BTreeMap<String, u64>,
    /// The daemon's own: reloads, reload failures, the live egress-learning switch.
    pub daemon: BTreeMap<String, u64>,
}

/// One flow-table entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowEntry {
    /// "tcp" or "udp".
    pub proto: String,
    /// The host's side.
    pub local: String,
    /// The remote side.
    pub remote: String,
    /// syn, egress, socket or static.
    pub source: String,
    /// Seconds since it was inserted or last confirmed.
    pub age_secs: u64,
}

/// The `flows_list` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowsListReply {
    /// Entries in the table.
    pub entries: u64,
    /// Entries that matched the filter.
    pub matched: u64,
    /// The first `limit` of them.
    pub flows: Vec<FlowEntry>,
}

/// The `flows_lookup` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupReply {
    /// The flow, as `tcp 203.0.113.10:443 <- 198.51.100.7:51234`.
    pub flow: String,
    /// The table has an entry.
    pub present: bool,
    /// The entry owns the flow now (an expired embryonic entry is present but does not).
    pub owned: bool,
    /// The entry's source.
    pub source: Option<String>,
    /// The entry's age in seconds.
    pub age_secs: Option<u64>,
}

/// The `flows_add` and `flows_del` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowChangeReply {
    /// The flow.
    pub flow: String,
    /// What happened: inserted, refreshed (an existing entry became static), removed.
    pub outcome: String,
}

/// One flow-table question the engine asked while simulating.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimulatedLookup {
    /// The flow.
    pub flow: String,
    /// The answer: owned (source), miss, expired, contended.
    pub answer: String,
}

/// The `simulate` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimulateReply {
    /// accept, forward, pass or drop.
    pub verdict: String,
    /// The counter that decided it (none for a pass).
    pub reason: Option<String>,
    /// The input frame's headers, outermost first.
    pub input_headers: Vec<String>,
    /// The flow-table lookups, in order.
    pub lookups: Vec<SimulatedLookup>,
    /// The output frame in hex (none for a drop).
    pub output: Option<String>,
    /// The output frame's headers.
    pub output_headers: Vec<String>,
}

/// The `reload` reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReloadReply {
    /// What changed and was applied, one line each.
    pub applied: Vec<String>,
    /// Keys whose new value waits for a restart (the running value stays).
    pub restart_required: Vec<String>,
    /// Successful reloads so far (this one included).
    pub reloads_total: u64,
    /// Failed reloads so far.
    pub reload_failures_total: u64,
}

/// The `[encap]` part of the `config` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncapSummary {
    /// Encapsulation addresses.
    pub addresses: Vec<String>,
    /// GUE port.
    pub port: u16,
    /// Egress MTU.
    pub mtu: u16,
}

/// The `config` reply: what the daemon runs with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigReply {
    /// The configuration file.
    pub path: String,
    /// chanced's version.
    pub version: String,
    /// What the lcores' engines run with (from start-up: `[encap]` needs a restart).
    pub encap: EncapSummary,
    /// Static flows in the file.
    pub static_flows: usize,
    /// The EAL arguments chanced started with (derived, `[dpdk] eal_args`, then the command
    /// line's), without the program name.
    #[serde(default)]
    pub eal_args: Vec<String>,
    /// CPUs, the first the main lcore.
    pub lcores: Vec<u32>,
    /// The NIC.
    pub nic: String,
    /// The kernel port.
    pub kernel: String,
    /// Flow-table capacity.
    pub flow_table_capacity: usize,
    /// Embryonic entries' lifetime.
    pub syn_lifetime_secs: u64,
    /// The live egress-learning switch.
    pub egress_learning: bool,
    /// Reconciliation interval (0: off).
    pub reconcile_interval_ms: u64,
    /// Reconciliation grace.
    pub reconcile_grace_secs: u64,
    /// Reconciled namespaces.
    pub reconcile_namespaces: Vec<String>,
    /// The API socket.
    pub api_socket: Option<String>,
    /// The API group.
    pub api_group: Option<String>,
    /// The configured metrics address.
    pub metrics_address: Option<String>,
    /// Where metrics are actually served (port 0 resolved; none if binding failed).
    pub metrics_bound: Option<String>,
    /// The log filter in force.
    pub log_level: String,
    /// The shutdown deadline.
    pub shutdown_deadline_ms: u64,
    /// How long an API request may take to arrive (docs/api.md).
    #[serde(default)]
    pub api_request_timeout_ms: u64,
    /// Keys of the loaded file that wait for a restart.
    pub pending_restart: Vec<String>,
    /// Reloads so far.
    pub reloads_total: u64,
    /// Failed reloads so far.
    pub reload_failures_total: u64,
    /// Why the last reload failed, if it did.
    pub last_reload_error: Option<String>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached or the connection broke.
    #[error("{path}: {error}")]
    Io {
        /// The socket.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The daemon answered with an error.
    #[error("{0}")]
    Daemon(String),
    /// The answer could not be understood.
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

/// A connection to chanced's API.
#[derive(Debug)]
pub struct Client {
    path: String,
    stream: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let name = path.display().to_string();
        let io = |error| ClientError::Io {
            path: name.clone(),
            error,
        };
        let stream = UnixStream::connect(path).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(io)?;
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(io)?;
        Ok(Self {
            path: name,
            stream: BufReader::new(stream),
        })
    }

    /// Waits for replies up to `timeout` (60 s by default; a capture may take longer).
    pub fn set_reply_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.stream
            .get_ref()
            .set_read_timeout(Some(timeout))
            .map_err(|error| ClientError::Io {
                path: self.path.clone(),
                error,
            })
    }

    /// Sends one raw line and returns the raw reply line (for tests and debugging).
    pub fn raw(&mut self, line: &[u8]) -> Result<String, ClientError> {
        let io = |error| ClientError::Io {
            path: self.path.clone(),
            error,
        };
        let sent = self.stream.get_mut().write_all(line);
        let mut reply = String::new();
        let read = self.stream.read_line(&mut reply);
        // A daemon with no slot free answers "busy" and closes without reading: its reply,
        // if any, says more than the broken pipe.
        if let Err(error) = sent {
            return match read {
                Ok(n) if n > 0 => Ok(reply),
                _ => Err(io(error)),
            };
        }
        let n = read.map_err(io)?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "the daemon closed the connection".into(),
            ));
        }
        Ok(reply)
    }

    /// Sends `request`; the `ok` value, or the daemon's error.
    pub fn call(&mut self, request: &Request) -> Result<Value, ClientError> {
        let line = self.raw(request.to_line().as_bytes())?;
        let response: Response = serde_json::from_str(&line)
            .map_err(|e| ClientError::Protocol(format!("{e}: {line}")))?;
        if response.version != VERSION {
            return Err(ClientError::Protocol(format!(
                "version {} (this chancectl speaks {VERSION})",
                response.version
            )));
        }
        match (response.ok, response.error) {
            (_, Some(error)) => Err(ClientError::Daemon(error)),
            (Some(ok), None) => Ok(ok),
            (None, None) => Err(ClientError::Protocol(line)),
        }
    }

    /// [`call`](Self::call), the `ok` value decoded as `T`.
    pub fn call_as<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ClientError> {
        let value = self.call(request)?;
        serde_json::from_value(value).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

#[cfg(test)]
mod tests;

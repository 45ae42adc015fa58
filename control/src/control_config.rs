//! The `[control]` table: chanced's local API, its metrics endpoint, its log level and how long a
//! shutdown may take.
//!
//! ```toml
//! [control]
//! api_socket = "/run/chance/chance.sock"  # chancectl's Unix socket ("" : no API); default
//!                                         # /run/chance/<dpdk.file_prefix>.sock
//! api_group = "chance"                    # group allowed to use the API (socket mode 0660);
//!                                         # absent: root only
//! metrics_address = "127.0.0.1:9610"      # Prometheus /metrics over HTTP ("" : off)
//! log_level = "info"                      # tracing filter: a level or `target=level,...`
//! shutdown_deadline_ms = 5000             # SIGTERM to exit; past it chanced exits 1
//! ```
//!
//! Every key of this table takes effect on reload (SIGHUP): the API socket and the metrics
//! endpoint are rebound, the log filter is swapped, the deadline applies to the next stop.

use crate::config::{ConfigError, Locator};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// The directory of the default API socket (systemd's `RuntimeDirectory=chance`).
pub const RUN_DIR: &str = "/run/chance";
/// The default metrics address: loopback only.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9610";
/// The longest path a Unix socket address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The group allowed to use the API, with where the file names it (the group is looked up when
/// chanced starts, on the host that runs it, so its errors name the key and the line too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiGroup {
    /// The group name.
    pub name: String,
    /// `FILE:LINE:COL: control.api_group`, for errors.
    pub location: String,
}

/// The validated `[control]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// The API's Unix socket; `None` when the API is off.
    pub api_socket: Option<PathBuf>,
    /// The group that may connect (besides root).
    pub api_group: Option<ApiGroup>,
    /// Where `/metrics` is served; `None` when metrics are off. Port 0 picks a free port.
    pub metrics_address: Option<SocketAddr>,
    /// The tracing filter (`RUST_LOG` syntax).
    pub log_level: String,
    /// How long a SIGTERM may take before chanced gives up on the workers and exits 1.
    pub shutdown_deadline: Duration,
}

impl ControlConfig {
    /// The defaults for an EAL file prefix (the API socket is named after it).
    pub fn defaults(file_prefix: &str) -> Self {
        Self {
            api_socket: Some(default_socket(file_prefix)),
            api_group: None,
            metrics_address: DEFAULT_METRICS.parse().ok(),
            log_level: "info".into(),
            shutdown_deadline: Duration::from_millis(5000),
        }
    }
}

/// `/run/chance/<prefix>.sock`: `/run/chance/chance.sock` with the default prefix, and one socket
/// per chanced when several run on a host (each has its own EAL file prefix).
pub fn default_socket(file_prefix: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(format!("{file_prefix}.sock"))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    api_socket: Option<Spanned<String>>,
    api_group: Option<Spanned<String>>,
    metrics_address: Option<Spanned<String>>,
    log_level: Option<Spanned<String>>,
    shutdown_deadline_ms: Option<Spanned<u64>>,
}

pub(crate) fn validate(
    raw: Option<RawControl>,
    file_prefix: &str,
    at: &Locator<'_>,
) -> Result<ControlConfig, ConfigError> {
    let raw = raw.unwrap_or_default();
    let mut control = ControlConfig::defaults(file_prefix);
    if let Some(path) = raw.api_socket {
        let text = path.get_ref().trim();
        control.api_socket = if text.is_empty() {
            None
        } else if !text.starts_with('/') {
            return Err(at.error(
                path.span(),
                Some("control.api_socket".into()),
                format!("`{text}` is not an absolute path"),
            ));
        } else if text.len() > MAX_SOCKET_PATH || text.ends_with('/') {
            return Err(at.error(
                path.span(),
                Some("control.api_socket".into()),
                format!(
                    "`{text}`: a socket path of at most {MAX_SOCKET_PATH} bytes, not a directory"
                ),
            ));
        } else {
            Some(PathBuf::from(text))
        };
    }
    if let Some(group) = raw.api_group {
        let name = group.get_ref().trim();
        let valid = !name.is_empty()
            && name.len() <= 32
            && !name.starts_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.$".contains(c));
        if !valid {
            return Err(at.error(
                group.span(),
                Some("control.api_group".into()),
                format!("`{name}` is not a group name"),
            ));
        }
        let (line, column) = at.position(at.original(group.span()).start);
        control.api_group = Some(ApiGroup {
            name: name.to_owned(),
            location: format!("{}:{line}:{column}: control.api_group", at.origin()),
        });
    }
    if let Some(address) = raw.metrics_address {
        let text = address.get_ref().trim();
        control.metrics_address = if text.is_empty() {
            None
        } else {
            Some(text.parse().map_err(|_| {
                at.error(
                    address.span(),
                    Some("control.metrics_address".into()),
                    format!("`{text}` is not an address and port (127.0.0.1:9610, [::1]:9610; \"\" turns metrics off)"),
                )
            })?)
        };
    }
    if let Some(level) = raw.log_level {
        let text = level.get_ref().trim();
        check_log_filter(text)
            .map_err(|message| at.error(level.span(), Some("control.log_level".into()), message))?;
        control.log_level = text.to_owned();
    }
    if let Some(deadline) = raw.shutdown_deadline_ms {
        let ms = *deadline.get_ref();
        if !(1000..=600_000).contains(&ms) {
            return Err(at.error(
                deadline.span(),
                Some("control.shutdown_deadline_ms".into()),
                format!(
                    "{ms} ms: expected 1000 to 600000 (the workers take up to a main-loop tick, 100 ms, to see the stop, then the ports stop)"
                ),
            ));
        }
        control.shutdown_deadline = Duration::from_millis(ms);
    }
    Ok(control)
}

/// The levels a log filter directive may name.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a log filter: comma-separated directives, each a level or `TARGET=LEVEL` (TARGET may
/// carry tracing's `[span{field}]` selectors). tracing's own parser also takes a bare target
/// (`verbose!!`): that enables only that target and silences everything else, which is never what
/// a typo meant, so it is refused here.
fn check_log_filter(text: &str) -> Result<(), String> {
    const EXPECTED: &str =
        "expected a level (off, error, warn, info, debug, trace) or `target=level`, comma-separated";
    if text.is_empty() {
        return Err(EXPECTED.into());
    }
    for directive in text.split(',').map(str::trim) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level.trim())) {
            return Err(format!("`{directive}` in `{text}`: {EXPECTED}"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(text)
        .map(drop)
        .map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(extra: &str) -> Result<ControlConfig, ConfigError> {
        let text = format!("[encap]\naddresses = [\"192.0.2.10\"]\n{extra}\n");
        crate::config::parse(&text, "t.toml").map(|c| c.control().clone())
    }

    #[test]
    fn defaults_name_the_socket_after_the_file_prefix() {
        let c = parse("").unwrap();
        assert_eq!(
            c.api_socket.as_deref(),
            Some(Path::new("/run/chance/chance.sock"))
        );
        assert_eq!(c.metrics_address, Some("127.0.0.1:9610".parse().unwrap()));
        assert_eq!((c.log_level.as_str(), c.api_group), ("info", None));
        assert_eq!(c.shutdown_deadline, Duration::from_secs(5));
        let c = parse("[dpdk]\nfile_prefix = \"lb2\"\n[ports]\nnic = \"net_null0\"\nkernel = { kind = \"tap\", name = \"c0\" }").unwrap();
        assert_eq!(
            c.api_socket.as_deref(),
            Some(Path::new("/run/chance/lb2.sock"))
        );
    }

    #[test]
    fn every_key_is_read_and_empty_strings_turn_surfaces_off() {
        let c = parse(
            "[control]\napi_socket = \"\"\napi_group = \"chance\"\nmetrics_address = \"\"\nlog_level = \"chance_control=debug,warn\"\nshutdown_deadline_ms = 2500",
        )
        .unwrap();
        assert_eq!((c.api_socket, c.metrics_address), (None, None));
        let group = c.api_group.unwrap();
        assert_eq!(group.name, "chance");
        assert_eq!(group.location, "t.toml:5:13: control.api_group");
        assert_eq!(c.log_level, "chance_control=debug,warn");
        assert_eq!(c.shutdown_deadline, Duration::from_millis(2500));
    }

    #[test]
    fn bad_values_name_their_key_and_line() {
        for (text, key) in [
            ("api_socket = \"chance.sock\"", "control.api_socket"),
            ("api_socket = \"/run/chance/\"", "control.api_socket"),
            ("api_group = \"a b\"", "control.api_group"),
            ("metrics_address = \"localhost\"", "control.metrics_address"),
            ("log_level = \"info,[\"", "control.log_level"),
            ("log_level = \"verbose!!\"", "control.log_level"),
            ("log_level = \"chance_control\"", "control.log_level"),
            (
                "log_level = \"info,chance_control=loud\"",
                "control.log_level",
            ),
            ("log_level = \"info,\"", "control.log_level"),
            ("shutdown_deadline_ms = 10", "control.shutdown_deadline_ms"),
            ("metrics = \"x\"", "control.metrics"),
        ] {
            let e = parse(&format!("[control]\n{text}")).expect_err(text);
            let d = e.diagnostic().expect("diagnostic");
            assert_eq!((d.key.as_deref(), d.line), (Some(key), 4), "{text}: {d}");
        }
    }
}

//! The director's `[healthcheck]` table: which checks run against every backend, how often, and
//! how many results it takes to change a backend's health.
//!
//! ```toml
//! [healthcheck]
//! interval_ms = 2000     # one round of checks per backend every interval, default 2000
//! timeout_ms = 1000      # each check's limit, shorter than the interval, default 1000
//! rise = 2               # consecutive passed rounds that make an unhealthy backend healthy
//! fall = 3               # consecutive failed rounds that make a healthy backend unhealthy
//! hold_down_ms = 10000   # after a transition, the next one waits this long (flap damping; 0: off)
//! gue = true             # the GUE probe through the backend's chanced, default true
//! tcp_port = 80          # a TCP connect check to this port, default none
//! http_port = 8080       # an HTTP GET check to this port (2xx passes), default none
//! http_path = "/healthz" # the GET's path, default "/"
//! ```
//!
//! A round passes when every configured check passes. Without the table no checks run and the
//! backends keep the health the file gives them.

use crate::config::{ConfigError, Locator};
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// The validated `[healthcheck]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckConfig {
    /// Between two rounds for one backend.
    pub interval: Duration,
    /// Each check's limit.
    pub timeout: Duration,
    /// Passed rounds to become healthy.
    pub rise: u32,
    /// Failed rounds to become unhealthy.
    pub fall: u32,
    /// The least time between two transitions of one backend.
    pub hold_down: Duration,
    /// Whether the GUE probe runs.
    pub gue: bool,
    /// The TCP connect check's port.
    pub tcp_port: Option<u16>,
    /// The HTTP check's port and path.
    pub http: Option<HttpCheck>,
}

/// An HTTP GET check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// The backend's port.
    pub port: u16,
    /// The request's path (starts with `/`).
    pub path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthcheck {
    interval_ms: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    rise: Option<Spanned<u32>>,
    fall: Option<Spanned<u32>>,
    hold_down_ms: Option<Spanned<u64>>,
    gue: Option<bool>,
    tcp_port: Option<Spanned<u16>>,
    http_port: Option<Spanned<u16>>,
    http_path: Option<Spanned<String>>,
}

fn ranged<T: Copy + PartialOrd + std::fmt::Display>(
    value: &Option<Spanned<T>>,
    key: &str,
    range: std::ops::RangeInclusive<T>,
    default: T,
    at: &Locator<'_>,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(at.error(
            v.span(),
            Some(format!("healthcheck.{key}")),
            format!(
                "{}: expected {} to {}",
                v.get_ref(),
                range.start(),
                range.end()
            ),
        )),
    }
}

pub(crate) fn validate(
    raw: Spanned<RawHealthcheck>,
    at: &Locator<'_>,
) -> Result<HealthcheckConfig, ConfigError> {
    let table = raw.span();
    let raw = raw.into_inner();
    let interval = ranged(&raw.interval_ms, "interval_ms", 100..=600_000, 2000, at)?;
    let timeout = ranged(&raw.timeout_ms, "timeout_ms", 10..=60_000, 1000, at)?;
    if timeout >= interval {
        let span = raw
            .timeout_ms
            .as_ref()
            .or(raw.interval_ms.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(at.error(
            span,
            Some("healthcheck.timeout_ms".into()),
            format!(
                "{timeout} ms: a check's timeout must be shorter than the interval ({interval} ms)"
            ),
        ));
    }
    let rise = ranged(&raw.rise, "rise", 1..=100, 2, at)?;
    let fall = ranged(&raw.fall, "fall", 1..=100, 3, at)?;
    let hold_down = ranged(&raw.hold_down_ms, "hold_down_ms", 0..=3_600_000, 10_000, at)?;
    let nonzero_port =
        |port: &Option<Spanned<u16>>, key: &str| -> Result<Option<u16>, ConfigError> {
            match port {
                Some(p) if *p.get_ref() == 0 => Err(at.error(
                    p.span(),
                    Some(format!("healthcheck.{key}")),
                    "port 0 is not a valid port (expected 1 to 65535)",
                )),
                p => Ok(p.as_ref().map(|p| *p.get_ref())),
            }
        };
    let tcp_port = nonzero_port(&raw.tcp_port, "tcp_port")?;
    let http_port = nonzero_port(&raw.http_port, "http_port")?;
    let path = match &raw.http_path {
        Some(p) => {
            let text = p.get_ref().trim();
            if !text.starts_with('/') || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(at.error(
                    p.span(),
                    Some("healthcheck.http_path".into()),
                    format!("`{text}` is not a request path (starts with /, no spaces)"),
                ));
            }
            if http_port.is_none() {
                return Err(at.error(
                    p.span(),
                    Some("healthcheck.http_path".into()),
                    "http_path needs http_port",
                ));
            }
            text.to_owned()
        }
        None => "/".to_owned(),
    };
    let gue = raw.gue.unwrap_or(true);
    if !gue && tcp_port.is_none() && http_port.is_none() {
        return Err(at.error(
            table,
            Some("healthcheck".into()),
            "no check configured: enable gue, or give tcp_port or http_port",
        ));
    }
    Ok(HealthcheckConfig {
        interval: Duration::from_millis(interval),
        timeout: Duration::from_millis(timeout),
        rise,
        fall,
        hold_down: Duration::from_millis(hold_down),
        gue,
        tcp_port,
        http: http_port.map(|port| HttpCheck { port, path }),
    })
}

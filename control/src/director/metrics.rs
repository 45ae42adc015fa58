//! chance-director's metrics, served by [`crate::shell::metrics_server`]:
//!
//! - per backend (`backend` label): `chance_director_backend_healthy`,
//!   `chance_director_health_checks_total{result="passed"|"failed"}`,
//!   `chance_director_health_transitions_total{to="healthy"|"unhealthy"}`;
//! - `chance_director_backends{state}`: backends in the file by state;
//! - `chance_director_table_builds_total{result="ok"|"failed"}`;
//! - `chance_director_packets_total{counter}`: the director's packet counters (routed, passed,
//!   dropped by reason) summed over the workers; `chance_dataplane_packets_total{counter}`: the
//!   runtime's path and port counters;
//! - as chanced: `chance_reloads_total{result}`, `chance_config_restart_required`,
//!   `chance_start_time_seconds`, `chance_build_info`.

use super::{api::state_name, lock, Shared};
use crate::shell::metrics_server::{build_info_labels, Families, Labels};
use chance_director::BackendState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Weak;

/// The director's collector (weak: it must not keep the daemon's state alive).
#[derive(Debug)]
pub(crate) struct DirectorCollector(pub Weak<Shared>);

impl Collector for DirectorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        match self.0.upgrade() {
            Some(shared) => families(&shared).encode(&mut encoder),
            None => Ok(()),
        }
    }
}

fn families(shared: &Shared) -> Families {
    let mut out = Families::default();
    let backend = |a: &std::net::Ipv4Addr| vec![("backend", a.to_string())];
    let with = |mut labels: Labels, key: &'static str, value: &str| {
        labels.push((key, value.to_owned()));
        labels
    };
    for (address, h) in shared.health.snapshot() {
        out.push(
            "chance_director_backend_healthy",
            "1 when the backend counts as healthy",
            MetricType::Gauge,
            backend(&address),
            f64::from(u8::from(h.healthy)),
        );
        for (result, value) in [("passed", h.checks_passed), ("failed", h.checks_failed)] {
            out.push(
                "chance_director_health_checks",
                "Health-check rounds, by result",
                MetricType::Counter,
                with(backend(&address), "result", result),
                value as f64,
            );
        }
        for (to, value) in [("healthy", h.went_up), ("unhealthy", h.went_down)] {
            out.push(
                "chance_director_health_transitions",
                "Health transitions, by the state reached",
                MetricType::Counter,
                with(backend(&address), "to", to),
                value as f64,
            );
        }
    }
    for (name, value) in super::api::director_counters(shared) {
        out.push(
            "chance_director_packets",
            "The director's packet counters, summed over the workers",
            MetricType::Counter,
            vec![("counter", name.to_owned())],
            value as f64,
        );
    }
    for (name, value) in super::api::path_counters(shared) {
        out.push(
            "chance_dataplane_packets",
            "The dataplane's path and port counters",
            MetricType::Counter,
            vec![("counter", name)],
            value as f64,
        );
    }
    let loaded = shared.current();
    for state in [
        BackendState::Active,
        BackendState::Filling,
        BackendState::Draining,
        BackendState::Inactive,
    ] {
        let n = loaded.backends.iter().filter(|b| b.state == state).count();
        out.push(
            "chance_director_backends",
            "Backends in the configuration, by state",
            MetricType::Gauge,
            vec![("state", state_name(state).to_owned())],
            n as f64,
        );
    }
    for (result, value) in [
        ("ok", shared.table_builds.load(Ordering::Relaxed)),
        (
            "failed",
            shared.table_build_failures.load(Ordering::Relaxed),
        ),
    ] {
        out.push(
            "chance_director_table_builds",
            "Forwarding-table builds (start, health changes, reloads), by result",
            MetricType::Counter,
            vec![("result", result.to_owned())],
            value as f64,
        );
    }
    for (result, value) in [
        ("ok", shared.reload.reloads.load(Ordering::Relaxed)),
        ("failed", shared.reload.failures.load(Ordering::Relaxed)),
    ] {
        out.push(
            "chance_reloads",
            "Configuration reloads (SIGHUP or API), by result",
            MetricType::Counter,
            vec![("result", result.to_owned())],
            value as f64,
        );
    }
    out.push(
        "chance_config_restart_required",
        "1 when the loaded configuration changes keys that need a restart",
        MetricType::Gauge,
        Vec::new(),
        f64::from(u8::from(!lock(&shared.pending_restart).is_empty())),
    );
    out.push(
        "chance_start_time_seconds",
        "When the daemon started, in seconds since the Unix epoch",
        MetricType::Gauge,
        Vec::new(),
        shared.started_unix,
    );
    out.push(
        "chance_build_info",
        "The daemon's build: version, git revision, DPDK release and linkage",
        MetricType::Gauge,
        build_info_labels(),
        1.0,
    );
    out
}

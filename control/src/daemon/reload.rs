//! Reloading the configuration (SIGHUP, or the API's `reload`): the file is validated first and
//! the running configuration is kept on any error. What can change live is applied:
//!
//! - static flows: those new to the file are added, those gone from it removed (`remove_static`);
//!   flows added through the API are left alone;
//! - `flow_table.egress_learning`: the workers' switch, read once per burst;
//! - `[reconcile]`: the reconciliation thread is restarted with the new interval, grace and
//!   namespaces (its counters go on);
//! - `[control]`: the log filter is swapped, the API socket and the metrics endpoint rebound, the
//!   shutdown deadline and the API request timeout replaced.
//!
//! Keys that need a restart (`[encap]`, `[dpdk]`, `[ports]`, `flow_table.capacity`,
//! `flow_table.syn_lifetime_secs`, `flow_table.huge_pages`) keep their running values; the reload reports them and logs a
//! warning. The fallible steps (opening the new namespaces, binding the new socket and address,
//! inserting the new flows) run before anything is switched, and are undone if a later one fails.

use super::{lock, serve_api, serve_metrics, ReconcileThread, Shared};
use crate::api::ReloadReply;
use crate::config::Config;
use crate::reconcile::Reconciler;
use crate::shell::api_server as api;
use crate::shell::metrics_server::MetricsServer;
use chance_engine::table::Source;
use chance_engine::FlowKey;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a new file changes, compared with the running configuration.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Static flows to add.
    pub add: Vec<FlowKey>,
    /// Static flows to remove.
    pub remove: Vec<FlowKey>,
    /// The new egress-learning switch, when it changes.
    pub egress_learning: Option<bool>,
    /// The reconciliation settings change.
    pub reconcile: bool,
    /// The API socket's path changes.
    pub api_path: bool,
    /// The API socket's group changes (same path).
    pub api_group: bool,
    /// The metrics address changes.
    pub metrics: bool,
    /// The log filter changes.
    pub log_level: bool,
    /// The shutdown deadline changes.
    pub deadline: bool,
    /// The API's request timeout changes (it applies from each connection's next request).
    pub api_timeout: bool,
    /// Keys whose new values wait for a restart.
    pub restart_required: Vec<String>,
}

/// Compares `new` with `current` (live keys) and with `startup` (restart-only keys: what the
/// dataplane actually runs with).
pub(crate) fn plan(startup: &Config, current: &Config, new: &Config) -> Plan {
    let old_flows: HashSet<FlowKey> = current.static_flows().into_iter().collect();
    let new_flows: HashSet<FlowKey> = new.static_flows().into_iter().collect();
    let (old_own, new_own) = (current.ownership(), new.ownership());
    let (old_ctl, new_ctl) = (current.control(), new.control());
    let mut restart = Vec::new();
    let mut differs = |key: &str, changed: bool| {
        if changed {
            restart.push(key.to_owned());
        }
    };
    differs("encap.addresses", startup.addresses() != new.addresses());
    differs("encap.port", startup.port() != new.port());
    differs("encap.mtu", startup.mtu() != new.mtu());
    differs(
        "flow_table.capacity",
        startup.ownership().capacity != new_own.capacity,
    );
    differs(
        "flow_table.syn_lifetime_secs",
        startup.ownership().syn_lifetime != new_own.syn_lifetime,
    );
    differs(
        "flow_table.huge_pages",
        startup.ownership().huge_pages != new_own.huge_pages,
    );
    match (startup.dataplane(), new.dataplane()) {
        (Some(a), Some(b)) => {
            differs("dpdk.lcores", a.lcores != b.lcores);
            differs("dpdk.memory_mb", a.memory_mb != b.memory_mb);
            differs("dpdk.hugepages", a.hugepages != b.hugepages);
            differs("dpdk.file_prefix", a.file_prefix != b.file_prefix);
            differs("dpdk.eal_args", a.eal_args != b.eal_args);
            differs("dpdk.idle", a.idle != b.idle);
            differs("ports.nic", a.nic != b.nic);
            differs("ports.kernel", a.kernel != b.kernel);
            differs("ports.rx_descriptors", a.rx_descriptors != b.rx_descriptors);
            differs("ports.tx_descriptors", a.tx_descriptors != b.tx_descriptors);
            differs("ports.mempool_mbufs", a.mempool_mbufs != b.mempool_mbufs);
            differs("ports.mempool_cache", a.mempool_cache != b.mempool_cache);
            differs("ports.burst", a.burst != b.burst);
        }
        (a, b) => differs("ports", a != b),
    }
    Plan {
        // In file order, so that a full table refuses the same flow every time.
        add: new
            .static_flows()
            .into_iter()
            .filter(|k| !old_flows.contains(k))
            .collect(),
        remove: current
            .static_flows()
            .into_iter()
            .filter(|k| !new_flows.contains(k))
            .collect(),
        egress_learning: (old_own.egress_learning != new_own.egress_learning)
            .then_some(new_own.egress_learning),
        reconcile: old_own.reconcile_interval != new_own.reconcile_interval
            || old_own.grace != new_own.grace
            || old_own.namespaces != new_own.namespaces,
        api_path: old_ctl.api_socket != new_ctl.api_socket,
        api_group: old_ctl.api_group.as_ref().map(|g| &g.name)
            != new_ctl.api_group.as_ref().map(|g| &g.name),
        metrics: old_ctl.metrics_address != new_ctl.metrics_address,
        log_level: old_ctl.log_level != new_ctl.log_level,
        deadline: old_ctl.shutdown_deadline != new_ctl.shutdown_deadline,
        api_timeout: old_ctl.api_request_timeout != new_ctl.api_request_timeout,
        restart_required: restart,
    }
}

/// Reloads the configuration file; `by` names the trigger for the log (SIGHUP, API).
pub(crate) fn reload(shared: &Arc<Shared>, by: &str) -> Result<ReloadReply, String> {
    // systemd hears of reloads once it has heard READY=1 (the dataplane's first tick).
    let ready = shared.snapshot().is_some().then_some(super::READY_STATUS);
    crate::shell::reload::run(&shared.reload, by, ready, "chanced", || {
        apply(shared, &mut lock(&shared.controls))
    })
}

fn apply(shared: &Arc<Shared>, controls: &mut super::Controls) -> Result<ReloadReply, String> {
    let new = crate::load(&shared.config_path).map_err(|e| e.to_string())?;
    if new.dataplane().is_none() {
        return Err(format!(
            "{}: ports: missing table: chanced needs [ports] with `nic` and `kernel`",
            shared.config_path.display()
        ));
    }
    let current = shared.current();
    let plan = plan(&shared.startup, &current, &new);
    let (new_own, new_ctl) = (new.ownership(), new.control());

    // 1. Fallible preparations, nothing switched yet.
    let reconciler = if plan.reconcile && !new_own.reconcile_interval.is_zero() {
        Some(
            Reconciler::open(&new_own.namespaces, new_own.grace)
                .map_err(|e| format!("socket reconciliation: {e}"))?
                .with_stats(Arc::clone(&shared.reconcile_stats)),
        )
    } else {
        None
    };
    let gid = api::resolve_group(new_ctl.api_group.as_ref())?;
    let bound = match (&new_ctl.api_socket, plan.api_path) {
        (Some(path), true) => Some(api::bind(path, gid, "chanced")?),
        _ => None,
    };
    let undo_bound = |bound: Option<api::Bound>| {
        if let Some(b) = bound {
            api::discard(b);
        }
    };
    // 2. New static flows (undone if anything below fails).
    let mut added = Vec::new();
    for key in &plan.add {
        if !shared.table.insert(*key, Source::Static).is_stored() {
            undo_flows(shared, &added);
            undo_bound(bound);
            return Err(format!(
                "flow table: no room for static flow {key:?} (raise flow_table.capacity)"
            ));
        }
        added.push(*key);
    }
    // 3. Metrics: the old listener goes first (the new address may reuse its port). A changed
    //    address that cannot be bound fails the reload (the old one is bound again); retrying an
    //    unchanged address that failed before is only logged.
    let retry_metrics = controls.metrics.is_none() && new_ctl.metrics_address.is_some();
    if plan.metrics || retry_metrics {
        let old_address = controls.metrics.as_ref().map(MetricsServer::address);
        if let Some(old) = controls.metrics.take() {
            old.stop();
        }
        if let Some(address) = new_ctl.metrics_address {
            match serve_metrics(address, shared) {
                Ok(server) => controls.metrics = Some(server),
                Err(e) if plan.metrics => {
                    if let Some(old) = old_address {
                        controls.metrics = serve_metrics(old, shared).ok();
                    }
                    undo_flows(shared, &added);
                    undo_bound(bound);
                    return Err(format!("control.metrics_address: {e}"));
                }
                Err(e) => tracing::error!(error = %e, "metrics: still cannot serve"),
            }
        }
    }

    // 4. The switch: nothing below fails.
    let mut applied = Vec::new();
    for key in &plan.remove {
        shared.table.remove_static(key);
    }
    if !plan.add.is_empty() || !plan.remove.is_empty() {
        applied.push(format!(
            "static flows: {} added, {} removed",
            plan.add.len(),
            plan.remove.len()
        ));
    }
    if let Some(on) = plan.egress_learning {
        shared.egress_learning.store(on, Ordering::Relaxed);
        applied.push(format!("flow_table.egress_learning = {on}"));
    }
    if plan.reconcile {
        if let Some(old) = controls.reconciler.take() {
            old.stop();
        }
        if let Some(r) = reconciler {
            match ReconcileThread::start(r, &shared.table, new_own.reconcile_interval) {
                Ok(thread) => controls.reconciler = Some(thread),
                Err(e) => tracing::error!(error = %e, "cannot restart the reconciliation thread"),
            }
        }
        applied.push(format!(
            "reconcile: interval {} ms, grace {} s, {} namespace(s)",
            new_own.reconcile_interval.as_millis(),
            new_own.grace.as_secs(),
            new_own.namespaces.len()
        ));
    }
    if plan.log_level {
        match shared.log.set(&new_ctl.log_level) {
            Ok(true) => applied.push(format!("control.log_level = {}", new_ctl.log_level)),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "log level not changed"),
        }
    }
    if let Some(bound) = bound {
        if let Some(old) = controls.api.take() {
            old.stop();
        }
        match serve_api(bound, shared) {
            Ok(server) => {
                applied.push(format!("control.api_socket = {}", server.path().display()));
                controls.api = Some(server);
            }
            Err(e) => tracing::error!(error = %e, "cannot serve the new API socket"),
        }
    } else if plan.api_path {
        if let Some(old) = controls.api.take() {
            old.stop();
            applied.push("control.api_socket: API off".into());
        }
    } else if plan.api_group {
        if let Some(server) = &controls.api {
            match api::set_group(server.path(), gid) {
                Ok(()) => applied.push(format!(
                    "control.api_group = {}",
                    new_ctl
                        .api_group
                        .as_ref()
                        .map_or("(root only)", |g| g.name.as_str())
                )),
                Err(e) => tracing::error!(error = %e, "cannot change the API socket's group"),
            }
        }
    }
    if plan.metrics || (retry_metrics && controls.metrics.is_some()) {
        match controls.metrics.as_ref() {
            Some(m) => applied.push(format!("control.metrics_address = {}", m.address())),
            None => applied.push("control.metrics_address: metrics off".into()),
        }
    }
    if plan.deadline {
        applied.push(format!(
            "control.shutdown_deadline_ms = {}",
            new_ctl.shutdown_deadline.as_millis()
        ));
    }
    if plan.api_timeout {
        applied.push(format!(
            "control.api_request_timeout_ms = {}",
            new_ctl.api_request_timeout.as_millis()
        ));
    }
    *lock(&shared.pending_restart) = plan.restart_required.clone();
    *lock(&shared.current) = Arc::new(new);
    Ok(ReloadReply {
        applied,
        restart_required: plan.restart_required,
        ..ReloadReply::default()
    })
}

fn undo_flows(shared: &Shared, added: &[FlowKey]) {
    for key in added {
        shared.table.remove_static(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[encap]
addresses = ["192.0.2.10"]
[[flow]]
proto = "tcp"
local = "192.0.2.10:443"
remote = "198.51.100.7:1"
[[flow]]
proto = "udp"
local = "192.0.2.10:53"
remote = "198.51.100.7:2"
[dpdk]
lcores = [0, 1]
[ports]
nic = "net_null0"
kernel = { kind = "tap", name = "chance0" }
"#;

    fn parse(text: &str) -> Config {
        crate::parse(text, "t.toml").unwrap()
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let c = parse(BASE);
        assert_eq!(plan(&c, &c, &c), Plan::default());
    }

    #[test]
    fn flows_and_live_keys_are_diffed_restart_keys_reported() {
        let old = parse(BASE);
        let new = parse(
            &(BASE
                .replace("198.51.100.7:2", "198.51.100.7:3")
                .replace("lcores = [0, 1]", "lcores = [0, 2]")
                .replace("addresses = [\"192.0.2.10\"]", "addresses = [\"192.0.2.11\"]\nport = 6080")
                + "[flow_table]\negress_learning = false\ncapacity = 2048\n[reconcile]\ninterval_ms = 0\n[control]\nlog_level = \"debug\"\nmetrics_address = \"\"\n"),
        );
        let p = plan(&old, &old, &new);
        assert_eq!(p.add.len(), 1);
        assert_eq!(p.add[0].remote().port(), 3);
        assert_eq!(p.remove.len(), 1);
        assert_eq!(p.remove[0].remote().port(), 2);
        assert_eq!(p.egress_learning, Some(false));
        assert!(p.reconcile && p.log_level && p.metrics);
        assert!(!p.api_path && !p.api_group && !p.deadline);
        assert_eq!(
            p.restart_required,
            [
                "encap.addresses",
                "encap.port",
                "flow_table.capacity",
                "dpdk.lcores"
            ]
        );
        // Restart keys compare with what runs: reverting them clears the list.
        assert!(plan(&old, &new, &old).restart_required.is_empty());
    }
}

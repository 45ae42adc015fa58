//! chanced's answers on the local API (the socket and its connections are
//! [`crate::shell::api_server`]'s). See [`crate::api`] for the protocol.

use super::{lock, reload, Shared};
use crate::api::{
    ConfigReply, EncapSummary, FlowChangeReply, FlowEntry, FlowSpec, FlowsListReply, LookupReply,
    Request,
};
use crate::ownership_config::Namespace;
use crate::shell::api_server::ApiHandler;
use chance_engine::table::{ConcurrentFlowTable, InsertOutcome, Source};
use chance_engine::FlowKey;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// chanced's API: its answers, over the daemon's shared state.
#[derive(Debug)]
pub(crate) struct ChancedApi(pub Arc<Shared>);

fn json<T: serde::Serialize>(value: T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// The longest `flows_list` reply.
const MAX_LIST: usize = 100_000;

impl ApiHandler for ChancedApi {
    fn handle(&self, request: Request) -> Result<Value, String> {
        handle(&self.0, request)
    }

    fn request_timeout(&self) -> std::time::Duration {
        self.0.current().control().api_request_timeout
    }
}

/// Answers one request.
pub(crate) fn handle(shared: &Arc<Shared>, request: Request) -> Result<Value, String> {
    match request {
        Request::Stats => json(shared.stats()),
        Request::FlowsList { source, limit } => json(flows_list(
            &shared.table,
            source.as_deref(),
            limit.unwrap_or(100),
        )?),
        Request::FlowsLookup { flow } => json(flows_lookup(&shared.table, &flow.key()?)),
        Request::FlowsAdd { flow } => json(flows_add(&shared.table, &flow.key()?)?),
        Request::FlowsDel { flow } => json(flows_del(&shared.table, &flow.key()?)?),
        Request::Simulate { frame } => {
            json(crate::simulate::run(&shared.engine, &shared.table, &frame)?)
        }
        Request::Reload => json(reload::reload(shared, "API")?),
        Request::Config => json(config(shared)),
        Request::Capture(capture) => json(super::capture::run(
            &shared.capture,
            &shared.stop,
            &capture,
        )?),
        Request::DirectorBackends | Request::DirectorLookup { .. } => Err(format!(
            "`{}` is chance-director's: this socket is chanced's",
            request.name()
        )),
    }
}

fn source_of(name: &str) -> Result<Source, String> {
    Source::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("source `{name}`: expected syn, egress, socket or static"))
}

fn flows_list(
    table: &ConcurrentFlowTable,
    source: Option<&str>,
    limit: usize,
) -> Result<FlowsListReply, String> {
    let wanted = source.map(source_of).transpose()?;
    let limit = limit.min(MAX_LIST);
    let mut reply = FlowsListReply {
        entries: table.len() as u64,
        matched: 0,
        flows: Vec::with_capacity(limit.min(1024)),
    };
    table.for_each(|e| {
        if wanted.is_some_and(|s| s != e.source) {
            return;
        }
        reply.matched += 1;
        if reply.flows.len() < limit {
            let spec = FlowSpec::of(&e.key);
            reply.flows.push(FlowEntry {
                proto: spec.proto,
                local: spec.local,
                remote: spec.remote,
                source: e.source.name().into(),
                age_secs: e.age.as_secs(),
            });
        }
    });
    Ok(reply)
}

fn flows_lookup(table: &ConcurrentFlowTable, key: &FlowKey) -> LookupReply {
    let entry = table.get(key);
    LookupReply {
        flow: format!("{key:?}"),
        present: entry.is_some(),
        owned: table.lookup(key).is_owned(),
        source: entry.map(|e| e.source.name().to_owned()),
        age_secs: entry.map(|e| e.age.as_secs()),
    }
}

fn flows_add(table: &ConcurrentFlowTable, key: &FlowKey) -> Result<FlowChangeReply, String> {
    let outcome = match table.insert(*key, Source::Static) {
        InsertOutcome::Inserted => "inserted".to_owned(),
        InsertOutcome::Refreshed | InsertOutcome::Present => {
            "refreshed: the entry is now static".into()
        }
        InsertOutcome::Evicted(victim) => format!("inserted (evicted a {} entry)", victim.name()),
        InsertOutcome::Refused => {
            return Err(format!(
                "{key:?}: no room in the flow table (its bucket pair holds only socket and static \
                 entries, or the table is at capacity)"
            ))
        }
    };
    tracing::info!(flow = ?key, outcome, "static flow added through the API");
    Ok(FlowChangeReply {
        flow: format!("{key:?}"),
        outcome,
    })
}

fn flows_del(table: &ConcurrentFlowTable, key: &FlowKey) -> Result<FlowChangeReply, String> {
    if !table.remove_static(key) {
        let why = match table.get(key) {
            Some(e) => format!(
                "its entry is {} (learned entries follow the sockets: reconciliation retires them)",
                e.source.name()
            ),
            None => "the table has no entry for it".into(),
        };
        return Err(format!("{key:?}: not a static flow: {why}"));
    }
    tracing::info!(flow = ?key, "static flow removed through the API");
    Ok(FlowChangeReply {
        flow: format!("{key:?}"),
        outcome: "removed".into(),
    })
}

fn config(shared: &Shared) -> ConfigReply {
    let config = shared.current();
    let startup = &shared.startup;
    let dataplane = startup.dataplane();
    let own = config.ownership();
    let control = config.control();
    let controls = lock(&shared.controls);
    ConfigReply {
        path: shared.config_path.display().to_string(),
        version: super::version(),
        encap: EncapSummary {
            addresses: shared.engine.addresses().map(|a| a.to_string()).collect(),
            port: shared.engine.port,
            mtu: shared.engine.mtu,
        },
        static_flows: config.static_flows().len(),
        eal_args: shared.eal_args.clone(),
        lcores: dataplane.map(|d| d.lcores.clone()).unwrap_or_default(),
        nic: dataplane.map(|d| d.nic.clone()).unwrap_or_default(),
        kernel: dataplane
            .map(|d| d.kernel_name().to_owned())
            .unwrap_or_default(),
        flow_table_capacity: shared.table.capacity(),
        syn_lifetime_secs: shared.table.syn_lifetime().as_secs(),
        egress_learning: shared.egress_learning.load(Ordering::Relaxed),
        reconcile_interval_ms: u64::try_from(own.reconcile_interval.as_millis()).unwrap_or(0),
        reconcile_grace_secs: own.grace.as_secs(),
        reconcile_namespaces: own
            .namespaces
            .iter()
            .map(|n| match n {
                Namespace::Current => "self".to_owned(),
                Namespace::Path(p) => p.display().to_string(),
            })
            .collect(),
        api_socket: controls
            .api
            .as_ref()
            .map(|a| a.path().display().to_string()),
        api_group: control.api_group.as_ref().map(|g| g.name.clone()),
        metrics_address: control.metrics_address.map(|a| a.to_string()),
        metrics_bound: controls.metrics.as_ref().map(|m| m.address().to_string()),
        log_level: shared.log.current(),
        shutdown_deadline_ms: u64::try_from(control.shutdown_deadline.as_millis()).unwrap_or(0),
        api_request_timeout_ms: u64::try_from(control.api_request_timeout.as_millis()).unwrap_or(0),
        pending_restart: lock(&shared.pending_restart).clone(),
        reloads_total: shared.reload.reloads.load(Ordering::Relaxed),
        reload_failures_total: shared.reload.failures.load(Ordering::Relaxed),
        last_reload_error: shared.reload.last_error(),
    }
}

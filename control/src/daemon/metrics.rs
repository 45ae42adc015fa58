//! Prometheus metrics: `GET /metrics` over HTTP (and `/healthz`, see [`super::health`]) (tiny_http, one thread), OpenMetrics text from
//! prometheus-client with a custom collector that reads, at scrape time, the counters the main
//! lcore last published ([`super::Snapshot`]), the flow table's and the reconciliation's
//! counters, and the daemon's own. Nothing here touches what the lcores write.
//!
//! Families (each per-lcore one has an `lcore` label; sum over it for the host):
//!
//! - the engine's 33 counters as cls_redirect names them, split at `_total`:
//!   `accepted_packets_total_syn` is `chance_accepted_packets_total{reason="syn"}`,
//!   `errors_total_malformed_ip` is `chance_errors_total{reason="malformed_ip"}`,
//!   `l3_protocol_packets_total_ipv4` is `chance_l3_protocol_packets_total{protocol="ipv4"}`,
//!   `forwarded_packets_total_gue` is `chance_forwarded_packets_total{encap="gue"}`;
//! - the path counters: `chance_nic_rx_packets_total`, `chance_kernel_tx_packets_total`, ...;
//! - per port (`port="nic"|"kernel"`): `chance_port_{received,transmitted}_{packets,bytes}_total`,
//!   `chance_port_missed_packets_total`, `chance_port_{receive,transmit}_errors_total`,
//!   `chance_port_rx_nombuf_total`;
//! - `chance_flow_table_*` and `chance_reconcile_*`;
//! - `chance_reloads_total{result="ok"|"failed"}`, `chance_egress_learning`,
//!   `chance_config_restart_required`, `chance_start_time_seconds`,
//!   `chance_build_info{version,git_revision,dpdk,dpdk_linkage}`.

use super::{lock, Shared};
use crate::shell::metrics_server::{build_info_labels, Families, Family, Labels};
use chance_engine::Counter;
use chance_runtime::{PathCounter, PortStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Weak;

/// chanced's collector (weak: it must not keep the daemon's state alive through the server).
#[derive(Debug)]
pub(crate) struct ChanceCollector(pub Weak<Shared>);

/// `accepted_packets_total_syn` -> (`chance_accepted_packets`, Some(("reason", "syn"))).
fn engine_family(counter: Counter) -> (String, Option<(&'static str, String)>) {
    let name = counter.name();
    let (base, rest) = name.split_once("_total").unwrap_or((name, ""));
    let label = rest.strip_prefix('_').map(|value| {
        let key = match base {
            "l3_protocol_packets" | "l4_protocol_packets" => "protocol",
            "forwarded_packets" => "encap",
            _ => "reason",
        };
        (key, value.to_owned())
    });
    (format!("chance_{base}"), label)
}

impl Collector for ChanceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(shared) = self.0.upgrade() else {
            return Ok(());
        };
        for family in families(&shared) {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// Every family, in a stable order.
fn families(shared: &Shared) -> Vec<Family> {
    let mut out = Families::default();
    let mut push = |name: &str, help: &str, kind: MetricType, labels: Labels, value: f64| {
        out.push(name, help, kind, labels, value)
    };
    if let Some(snapshot) = shared.snapshot() {
        for (lcore, engine, _) in &snapshot.lcores {
            for (counter, value) in engine.iter() {
                let (name, label) = engine_family(counter);
                let mut labels = vec![("lcore", lcore.to_string())];
                labels.extend(label);
                push(
                    &name,
                    "Engine counter (cls_redirect's name, split at _total)",
                    MetricType::Counter,
                    labels,
                    value as f64,
                );
            }
        }
        for (lcore, _, path) in &snapshot.lcores {
            for (counter, value) in path.iter() {
                let name = counter.name().trim_end_matches("_total");
                push(
                    &format!("chance_{name}"),
                    path_help(counter),
                    MetricType::Counter,
                    vec![("lcore", lcore.to_string())],
                    value as f64,
                );
            }
        }
        for (port, stats) in [("nic", &snapshot.nic), ("kernel", &snapshot.kernel)] {
            for (name, help, value) in port_values(stats) {
                push(
                    name,
                    help,
                    MetricType::Counter,
                    vec![("port", port.to_owned())],
                    value as f64,
                );
            }
        }
    }
    let t = shared.table.stats();
    let none = Labels::new;
    push(
        "chance_flow_table_entries",
        "Entries in the flow table",
        MetricType::Gauge,
        none(),
        t.entries as f64,
    );
    push(
        "chance_flow_table_capacity",
        "The flow table's bound on entries",
        MetricType::Gauge,
        none(),
        t.capacity as f64,
    );
    for (name, help, value) in [
        (
            "chance_flow_table_inserts",
            "New flow-table entries",
            t.inserts,
        ),
        (
            "chance_flow_table_refreshes",
            "Flow-table confirmations that changed an entry",
            t.refreshes,
        ),
        (
            "chance_flow_table_displacements",
            "Entries moved to their other bucket to make room",
            t.displacements,
        ),
        (
            "chance_flow_table_refusals",
            "Inserts refused for lack of room",
            t.refusals,
        ),
        ("chance_flow_table_removals", "Entries removed", t.removals),
        (
            "chance_flow_table_read_retries",
            "Lookups that raced a writer and read again",
            t.read_retries,
        ),
        (
            "chance_flow_table_read_failures",
            "Lookups answered as misses after bounded retries",
            t.read_failures,
        ),
    ] {
        push(name, help, MetricType::Counter, none(), value as f64);
    }
    for (kind, value) in [
        ("syn_expired", t.evicted_syn_expired),
        ("syn", t.evicted_syn),
        ("egress", t.evicted_egress),
    ] {
        push(
            "chance_flow_table_evictions",
            "Entries evicted to make room, by kind",
            MetricType::Counter,
            vec![("kind", kind.to_owned())],
            value as f64,
        );
    }
    let r = &shared.reconcile_stats;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    for (name, help, kind, value) in [
        (
            "chance_reconcile_rounds",
            "Socket reconciliation rounds",
            MetricType::Counter,
            get(&r.rounds),
        ),
        (
            "chance_reconcile_failures",
            "Reconciliation rounds that failed",
            MetricType::Counter,
            get(&r.failures),
        ),
        (
            "chance_reconcile_sockets",
            "Sockets owning flows in the last round",
            MetricType::Gauge,
            get(&r.sockets),
        ),
        (
            "chance_reconcile_last_dump_seconds",
            "Duration of the last round's socket dumps",
            MetricType::Gauge,
            get(&r.last_dump_micros) / 1e6,
        ),
        (
            "chance_reconcile_added",
            "Flows added because a socket owns them",
            MetricType::Counter,
            get(&r.added),
        ),
        (
            "chance_reconcile_confirmed",
            "Flows the socket dumps confirmed",
            MetricType::Counter,
            get(&r.confirmed),
        ),
        (
            "chance_reconcile_retired",
            "Learned flows retired because their socket was gone",
            MetricType::Counter,
            get(&r.retired),
        ),
        (
            "chance_reconcile_refused",
            "Reconciliation adds the full table refused",
            MetricType::Counter,
            get(&r.refused),
        ),
    ] {
        push(name, help, kind, none(), value);
    }
    for (result, value) in [
        ("ok", shared.reload.reloads.load(Ordering::Relaxed)),
        ("failed", shared.reload.failures.load(Ordering::Relaxed)),
    ] {
        push(
            "chance_reloads",
            "Configuration reloads (SIGHUP or API), by result",
            MetricType::Counter,
            vec![("result", result.to_owned())],
            value as f64,
        );
    }
    push(
        "chance_egress_learning",
        "1 when the workers learn flows from the host's egress",
        MetricType::Gauge,
        none(),
        f64::from(u8::from(shared.egress_learning.load(Ordering::Relaxed))),
    );
    push(
        "chance_config_restart_required",
        "1 when the loaded configuration changes keys that need a restart",
        MetricType::Gauge,
        none(),
        f64::from(u8::from(!lock(&shared.pending_restart).is_empty())),
    );
    push(
        "chance_start_time_seconds",
        "When chanced started, in seconds since the Unix epoch",
        MetricType::Gauge,
        none(),
        shared.started_unix,
    );
    push(
        "chance_build_info",
        "chanced's build: version, git revision, DPDK release and linkage",
        MetricType::Gauge,
        build_info_labels(),
        1.0,
    );
    out.0
}

fn path_help(counter: PathCounter) -> &'static str {
    match counter {
        PathCounter::NicRx => "Packets received from the NIC",
        PathCounter::NicTx => "Packets the NIC accepted for transmission",
        PathCounter::NicTxFull => "Packets to the NIC its full TX queue refused (dropped)",
        PathCounter::KernelRx => "Packets received from the kernel (the host's egress)",
        PathCounter::KernelTx => "Packets the kernel port accepted",
        PathCounter::KernelTxFull => "Packets to the kernel its full TX queue refused (dropped)",
        PathCounter::NicRxMultiSegment => "Multi-segment packets from the NIC (dropped)",
        PathCounter::EngineDrops => "Packets the engine dropped",
        PathCounter::RewriteFailed => "Packets whose rewrite could not be applied (dropped)",
        PathCounter::FlowHits => "Flow-table lookups that found an owned flow",
        PathCounter::FlowMisses => "Flow-table lookups that found none",
        PathCounter::Encapsulated => "Frames a frame router encapsulated",
        PathCounter::RouterPasses => "Frames a frame router passed to the kernel",
        PathCounter::RouterDrops => "Frames a frame router dropped",
        PathCounter::EncapFailed => "Frames the mbuf could not encapsulate (dropped)",
    }
}

fn port_values(s: &PortStats) -> [(&'static str, &'static str, u64); 8] {
    [
        (
            "chance_port_received_packets",
            "Packets the port received",
            s.ipackets,
        ),
        (
            "chance_port_transmitted_packets",
            "Packets the port sent",
            s.opackets,
        ),
        (
            "chance_port_received_bytes",
            "Bytes the port received",
            s.ibytes,
        ),
        (
            "chance_port_transmitted_bytes",
            "Bytes the port sent",
            s.obytes,
        ),
        (
            "chance_port_missed_packets",
            "Packets the device dropped for lack of RX descriptors",
            s.imissed,
        ),
        ("chance_port_receive_errors", "Receive errors", s.ierrors),
        ("chance_port_transmit_errors", "Transmit errors", s.oerrors),
        (
            "chance_port_rx_nombuf",
            "RX mbuf allocation failures",
            s.rx_nombuf,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_counters_split_into_families_and_labels() {
        let all: Vec<_> = Counter::ALL.iter().map(|&c| engine_family(c)).collect();
        assert!(all.contains(&("chance_processed_packets".into(), None)));
        assert!(all.contains(&(
            "chance_accepted_packets".into(),
            Some(("reason", "syn".into()))
        )));
        assert!(all.contains(&(
            "chance_l4_protocol_packets".into(),
            Some(("protocol", "tcp".into()))
        )));
        assert!(all.contains(&(
            "chance_forwarded_packets".into(),
            Some(("encap", "gre".into()))
        )));
        assert!(all.contains(&(
            "chance_errors".into(),
            Some(("reason", "malformed_hop_list".into()))
        )));
        // No two counters share a family and a label value.
        let mut seen = std::collections::HashSet::new();
        assert!(all.iter().all(|f| seen.insert(f.clone())));
    }
}

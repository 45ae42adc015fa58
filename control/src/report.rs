//! The dataplane's counters as operators read them: summed over lcores and per lcore, with the
//! ports' own counters; as text (chanced's exit summary, periodic log lines) or JSON.

use crate::reconcile::ReconcileStats;
use chance_engine::table::ConcurrentFlowTable;
use chance_engine::{Counter, Counters};
use chance_runtime::{Live, PathCounter, PathCounters, PortStats, RunReport};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Counter name -> value, non-zero values only (every counter is zero until something happens).
pub type CounterMap = BTreeMap<&'static str, u64>;

/// One lcore's counters.
#[derive(Debug, Clone, Serialize)]
pub struct LcoreReport {
    /// The lcore id (or its index, for live snapshots).
    pub lcore: u32,
    /// Engine counters.
    pub engine: CounterMap,
    /// Path counters.
    pub path: CounterMap,
}

/// A port's counters, as reported.
pub type PortReport = PortStats;

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seconds the workers ran (0 for a live snapshot).
    pub elapsed_secs: f64,
    /// Mbufs still in use after shutdown (0 unless something leaked).
    pub mbufs_in_use: u32,
    /// Engine and path counters summed over the lcores.
    pub total: LcoreReport,
    /// Per-lcore counters.
    pub lcores: Vec<LcoreReport>,
    /// Port counters (`nic`, `kernel`), at shutdown.
    pub ports: BTreeMap<&'static str, PortReport>,
    /// The flow table's and the reconciliation's counters, when chanced has them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub flow_table: CounterMap,
    /// chance-director's own counters (its routing decisions), summed over its workers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub director: CounterMap,
}

fn engine_map(counters: &Counters) -> CounterMap {
    counters
        .nonzero()
        .into_iter()
        .map(|(c, v)| (c.name(), v))
        .collect()
}

fn path_map(counters: &PathCounters) -> CounterMap {
    counters
        .iter()
        .filter(|&(_, v)| v != 0)
        .map(|(c, v)| (c.name(), v))
        .collect()
}

fn lcore_report(lcore: u32, engine: &Counters, path: &PathCounters) -> LcoreReport {
    LcoreReport {
        lcore,
        engine: engine_map(engine),
        path: path_map(path),
    }
}

impl Report {
    fn new(per_lcore: &[(u32, Counters, PathCounters)]) -> Self {
        let mut engine = Counters::new();
        let mut path = PathCounters::default();
        for (_, e, p) in per_lcore {
            engine.add(e);
            path.merge(p);
        }
        Self {
            elapsed_secs: 0.0,
            mbufs_in_use: 0,
            total: lcore_report(u32::MAX, &engine, &path),
            lcores: per_lcore
                .iter()
                .map(|(l, e, p)| lcore_report(*l, e, p))
                .collect(),
            ports: BTreeMap::new(),
            flow_table: BTreeMap::new(),
            director: BTreeMap::new(),
        }
    }

    /// The report of a finished run.
    pub fn from_run(run: &RunReport) -> Self {
        let per_lcore: Vec<_> = run
            .workers
            .iter()
            .map(|w| (w.lcore, w.engine.clone(), w.path.clone()))
            .collect();
        let mut report = Self::new(&per_lcore);
        report.elapsed_secs = run.elapsed.as_secs_f64();
        report.mbufs_in_use = run.mbufs_in_use;
        report.ports.insert("nic", run.nic);
        report.ports.insert("kernel", run.kernel);
        report
    }

    /// A snapshot of the running dataplane (lcores numbered by position).
    pub fn from_live(live: &Live<'_>) -> Self {
        let per_lcore: Vec<_> = (0u32..)
            .zip(live.lcores)
            .map(|(i, stats)| {
                let (engine, path) = stats.snapshot();
                (i, engine, path)
            })
            .collect();
        let mut report = Self::new(&per_lcore);
        report.ports.insert("nic", live.nic);
        report.ports.insert("kernel", live.kernel);
        report
    }

    /// Adds the flow table's counters and, when reconciliation ran, its counters. The table's
    /// hits and misses come from the lcores' path counters.
    pub fn add_table(&mut self, table: &ConcurrentFlowTable, reconcile: Option<&ReconcileStats>) {
        let s = table.stats();
        let m = &mut self.flow_table;
        m.insert("flow_table_entries", s.entries as u64);
        m.insert("flow_table_capacity", s.capacity as u64);
        m.insert("flow_table_inserts_total", s.inserts);
        m.insert("flow_table_refreshes_total", s.refreshes);
        m.insert(
            "flow_table_evictions_syn_expired_total",
            s.evicted_syn_expired,
        );
        m.insert("flow_table_evictions_syn_total", s.evicted_syn);
        m.insert("flow_table_evictions_egress_total", s.evicted_egress);
        m.insert("flow_table_refusals_total", s.refusals);
        m.insert("flow_table_removals_total", s.removals);
        m.insert("flow_table_read_retries_total", s.read_retries);
        for (name, value) in reconcile.map(ReconcileStats::values).into_iter().flatten() {
            m.insert(name, value);
        }
    }

    /// Adds chance-director's counters (every one, zeros included: a decision never taken is
    /// worth seeing in a benchmark's report).
    pub fn add_director(&mut self, counters: impl IntoIterator<Item = (&'static str, u64)>) {
        self.director.extend(counters);
    }

    /// The total of one counter.
    pub fn engine_total(&self, counter: Counter) -> u64 {
        self.total.engine.get(counter.name()).copied().unwrap_or(0)
    }

    /// The total of one path counter.
    pub fn path_total(&self, counter: PathCounter) -> u64 {
        self.total.path.get(counter.name()).copied().unwrap_or(0)
    }

    /// The headline numbers on one line, for periodic logs.
    pub fn one_line(&self) -> String {
        let t = &self.total;
        let get = |m: &CounterMap, k: &str| m.get(k).copied().unwrap_or(0);
        format!(
            "nic rx {} tx {} tx_full {} | kernel rx {} tx {} tx_full {} | processed {} passed {} forwarded {} dropped {} | rx_nombuf {} imissed {}",
            get(&t.path, PathCounter::NicRx.name()),
            get(&t.path, PathCounter::NicTx.name()),
            get(&t.path, PathCounter::NicTxFull.name()),
            get(&t.path, PathCounter::KernelRx.name()),
            get(&t.path, PathCounter::KernelTx.name()),
            get(&t.path, PathCounter::KernelTxFull.name()),
            get(&t.engine, Counter::ProcessedPacketsTotal.name()),
            get(&t.engine, Counter::PassedPacketsTotal.name()),
            get(&t.engine, Counter::ForwardedPacketsTotalGue.name())
                + get(&t.engine, Counter::ForwardedPacketsTotalGre.name()),
            get(&t.path, PathCounter::EngineDrops.name()),
            self.ports.values().map(|p| p.rx_nombuf).sum::<u64>(),
            self.ports.values().map(|p| p.imissed).sum::<u64>(),
        )
    }

    /// The full report as text: totals, then per lcore, then ports.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ran {:.3} s; mbufs in use after shutdown: {}",
            self.elapsed_secs, self.mbufs_in_use
        );
        let mut section = |title: &str, r: &LcoreReport| {
            let _ = writeln!(out, "{title}:");
            for (name, value) in r.engine.iter().chain(r.path.iter()) {
                let _ = writeln!(out, "  {name} {value}");
            }
        };
        section("total", &self.total);
        for l in &self.lcores {
            section(&format!("lcore {}", l.lcore), l);
        }
        if !self.flow_table.is_empty() {
            let _ = writeln!(out, "flow table:");
            for (name, value) in &self.flow_table {
                let _ = writeln!(out, "  {name} {value}");
            }
        }
        for (name, p) in &self.ports {
            let _ = writeln!(
                out,
                "port {name}: ipackets {} opackets {} ibytes {} obytes {} imissed {} ierrors {} oerrors {} rx_nombuf {}",
                p.ipackets, p.opackets, p.ibytes, p.obytes, p.imissed, p.ierrors, p.oerrors, p.rx_nombuf
            );
        }
        out
    }

    /// The full report as pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

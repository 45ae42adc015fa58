//! Socket reconciliation: the control daemon's loop that keeps the flow table true to the kernel's
//! sockets. Each round dumps every configured namespace over sock_diag, adds owned flows the
//! table lacks (after a restart, say), confirms the ones it has, and retires learned entries whose
//! socket has been gone for longer than the grace period, so the table follows connections that
//! close. Static entries are never touched.

use crate::ownership_config::Namespace;
use crate::sockets::{plan, SocketDumper, SocketError};
use chance_engine::table::{ConcurrentFlowTable, Source};
use chance_engine::FlowKey;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What reconciliation has done, read by the control side (reports, metrics).
#[derive(Debug, Default)]
pub struct ReconcileStats {
    /// Completed rounds.
    pub rounds: AtomicU64,
    /// Rounds that failed (a dump error; the table was left as it was).
    pub failures: AtomicU64,
    /// Sockets owning flows in the last round's dumps.
    pub sockets: AtomicU64,
    /// Duration of the last round's dumps, in microseconds.
    pub last_dump_micros: AtomicU64,
    /// Flows added because a socket owns them and the table lacked them.
    pub added: AtomicU64,
    /// Flows the dumps confirmed.
    pub confirmed: AtomicU64,
    /// Learned flows retired because their socket was gone.
    pub retired: AtomicU64,
    /// Adds the full table refused.
    pub refused: AtomicU64,
}

impl ReconcileStats {
    /// (name, value) pairs, for reports.
    pub fn values(&self) -> [(&'static str, u64); 8] {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("reconcile_rounds_total", get(&self.rounds)),
            ("reconcile_failures_total", get(&self.failures)),
            ("reconcile_sockets", get(&self.sockets)),
            ("reconcile_last_dump_micros", get(&self.last_dump_micros)),
            ("reconcile_added_total", get(&self.added)),
            ("reconcile_confirmed_total", get(&self.confirmed)),
            ("reconcile_retired_total", get(&self.retired)),
            ("reconcile_refused_total", get(&self.refused)),
        ]
    }
}

/// The dumpers of every configured namespace, opened up front so a missing namespace stops
/// chanced at start rather than silently later.
#[derive(Debug)]
pub struct Reconciler {
    dumpers: Vec<SocketDumper>,
    grace: Duration,
    keys: Vec<FlowKey>,
    stats: Arc<ReconcileStats>,
}

impl Reconciler {
    /// Opens a sock_diag socket in each namespace.
    pub fn open(namespaces: &[Namespace], grace: Duration) -> Result<Self, SocketError> {
        let dumpers = namespaces
            .iter()
            .map(SocketDumper::open)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            dumpers,
            grace,
            keys: Vec::new(),
            stats: Arc::new(ReconcileStats::default()),
        })
    }

    /// Counts into `stats` instead of fresh counters (a restarted reconciler keeps counting
    /// where the previous one stopped).
    pub fn with_stats(mut self, stats: Arc<ReconcileStats>) -> Self {
        self.stats = stats;
        self
    }

    /// The counters.
    pub fn stats(&self) -> Arc<ReconcileStats> {
        Arc::clone(&self.stats)
    }

    /// One round: dump every namespace, then add, confirm and retire.
    pub fn round(&mut self, table: &ConcurrentFlowTable) -> Result<(), SocketError> {
        let started = Instant::now();
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        let mut batch = Vec::new();
        for dumper in &mut self.dumpers {
            if let Err(e) = dumper.dump_into(&mut batch) {
                self.keys = keys;
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            keys.append(&mut batch);
        }
        let dump_micros = started.elapsed().as_micros();
        let mut entries = Vec::with_capacity(table.len());
        table.for_each(|e| entries.push((e.key, e.source, e.age)));
        let plan = plan(&keys, entries, self.grace);

        let mut refused = 0;
        for &key in plan.add.iter().chain(&plan.confirm) {
            if !table.insert(key, Source::Socket).is_stored() {
                refused += 1;
            }
        }
        // Re-checked at removal: an entry refreshed (by egress learning) since the listing stays.
        let retire: HashSet<FlowKey> = plan.retire.iter().copied().collect();
        let grace = self.grace;
        let retired = table
            .retain(|e| !(retire.contains(&e.key) && e.source != Source::Static && e.age > grace));

        let s = &self.stats;
        s.rounds.fetch_add(1, Ordering::Relaxed);
        s.sockets.store(keys.len() as u64, Ordering::Relaxed);
        s.last_dump_micros.store(
            u64::try_from(dump_micros).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        s.added.fetch_add(plan.add.len() as u64, Ordering::Relaxed);
        s.confirmed
            .fetch_add(plan.confirm.len() as u64, Ordering::Relaxed);
        s.retired.fetch_add(retired as u64, Ordering::Relaxed);
        s.refused.fetch_add(refused, Ordering::Relaxed);
        self.keys = keys;
        Ok(())
    }

    /// Runs a round now and then every `interval` on a thread of its own until `stop`.
    pub fn spawn(
        mut self,
        table: Arc<ConcurrentFlowTable>,
        interval: Duration,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("chance-reconcile".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = self.round(&table) {
                        tracing::warn!(error = %e, "socket reconciliation round failed");
                    }
                    let next = Instant::now() + interval;
                    while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20).min(interval));
                    }
                }
            })
    }
}

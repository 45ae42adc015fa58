//! The director's dataplane: the runtime's frame-router workers ([`chance_runtime::run_router`])
//! over [`chance_director::Director`], reading the forwarding tables the control side builds.
//!
//! The tables reach the workers through one [`ArcSwap`]: the control side's hook stores each new
//! set, and every worker loads it once per RX burst ([`FrameRouter::begin_burst`]) through an
//! [`arc_swap::Cache`], which is a plain pointer compare while the tables do not change. Nothing
//! on the packet path locks, and every frame of a burst sees one table.
//!
//! Each worker's director counters are published into its own slot of [`DataplaneStats`] once
//! per burst and when the worker ends, and summed by the API and the metrics.

use super::table::ForwardingTable;
use arc_swap::{ArcSwap, Cache};
use chance_director::{Counter, Counters, Director, DirectorConfig, HopTable, Plan, RouteTable};
use chance_runtime::FrameAction;
use chance_runtime::FrameRouter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The tables in force, as the workers read them: the built set, and its route tables shared
/// (read by every frame without a call through [`ForwardingTable`]).
#[derive(Debug)]
pub struct Tables {
    routes: Arc<[RouteTable<HopTable>]>,
    /// Kept alive with the route tables it gave.
    _built: Arc<dyn ForwardingTable>,
}

impl Tables {
    /// The workers' view of `built`.
    pub fn new(built: Arc<dyn ForwardingTable>) -> Self {
        Self {
            routes: built.shared_route_tables(),
            _built: built,
        }
    }
}

/// Where the control side puts new tables and the workers find them.
pub type TableSlot = Arc<ArcSwap<Tables>>;

/// One worker's published director counters, in [`Counter::ALL`] order.
#[derive(Debug, Default)]
pub struct WorkerCounters([AtomicU64; Counter::ALL.len()]);

impl WorkerCounters {
    fn publish(&self, counters: &Counters) {
        for (slot, (_, value)) in self.0.iter().zip(counters.iter()) {
            slot.store(value, Ordering::Relaxed);
        }
    }
}

/// Every worker's director counters.
#[derive(Debug, Default)]
pub struct DataplaneStats {
    workers: Mutex<Vec<Arc<WorkerCounters>>>,
}

impl DataplaneStats {
    /// A new worker's slot.
    fn add_worker(&self) -> Arc<WorkerCounters> {
        let slot = Arc::new(WorkerCounters::default());
        self.workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&slot));
        slot
    }

    /// Every counter summed over the workers, in [`Counter::ALL`] order.
    pub fn totals(&self) -> Vec<(Counter, u64)> {
        let workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        Counter::ALL
            .iter()
            .enumerate()
            .map(|(i, &counter)| {
                let sum = workers.iter().map(|w| w.0[i].load(Ordering::Relaxed)).sum();
                (counter, sum)
            })
            .collect()
    }
}

/// One worker's router: its own [`Director`] (counters, header buffer) over the shared tables.
pub struct DirectorRouter {
    director: Director,
    tables: Cache<TableSlot, Arc<Tables>>,
    /// The tables of the current burst.
    current: Arc<Tables>,
    counters: Arc<WorkerCounters>,
}

impl std::fmt::Debug for DirectorRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorRouter")
            .field("director", &self.director)
            .finish_non_exhaustive()
    }
}

impl DirectorRouter {
    /// A worker's router with `config` (its port MAC included) over the tables in `slot`, its
    /// counters published into a new slot of `stats`.
    pub fn new(config: DirectorConfig, slot: &TableSlot, stats: &DataplaneStats) -> Self {
        let mut tables = Cache::new(Arc::clone(slot));
        let current = Arc::clone(tables.load());
        Self {
            director: Director::new(config),
            tables,
            current,
            counters: stats.add_worker(),
        }
    }
}

impl FrameRouter for DirectorRouter {
    fn begin_burst(&mut self) {
        self.current = Arc::clone(self.tables.load());
    }

    /// Reads the burst ahead: its common frames' flows are hashed eight at a time (compiled
    /// for AVX-512 or AVX2 by the runtime when the CPU has it, hence always inlined).
    #[inline(always)]
    fn prepare_burst<'f>(&mut self, frames: impl Iterator<Item = &'f [u8]>) {
        self.director.prepare_burst(frames, &self.current.routes);
    }

    fn end_burst(&mut self) {
        self.counters.publish(self.director.counters());
    }

    fn route(&mut self, frame: &[u8]) -> FrameAction {
        match self.director.plan(frame, &self.current.routes) {
            Plan::Encapsulate {
                strip,
                inner_len,
                header_len,
            } => FrameAction::Encapsulate {
                strip,
                keep: inner_len,
                header_len,
            },
            Plan::Pass => FrameAction::Pass,
            Plan::Drop(_) => FrameAction::Drop,
        }
    }

    #[inline]
    fn write_header(&mut self, header: &mut [u8], payload: &[u8]) {
        // The runtime gives exactly the header length the plan asked for, in front of the IP
        // packet it kept (`payload`): the header is written in place, its UDP checksum summed
        // over that packet.
        let written = self.director.write_planned(header, payload);
        debug_assert!(
            written,
            "the runtime gave the header length the plan asked for"
        );
    }
}

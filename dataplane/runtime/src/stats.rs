//! Per-lcore counters that a control thread reads while the lcores run.
//!
//! Each worker counts in plain integers (its engine's [`Counters`] and its own [`PathCounters`])
//! and publishes them every few bursts, at every idle poll and when it stops, into its own
//! cache-line-aligned [`LcoreStats`] with relaxed atomic stores: no lock and no read-modify-write
//! on the packet path, and a reader sees every value as it was at the end of some burst.

use chance_engine::{Counter, Counters};
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! path_counters {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)+) => {
        /// What happened to packets around the engine, on one lcore.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum PathCounter {
            $($(#[$doc])* $variant,)+
        }

        impl PathCounter {
            /// Every path counter, in index order.
            pub const ALL: &'static [PathCounter] = &[$(PathCounter::$variant,)+];

            /// The counter's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(PathCounter::$variant => $name,)+
                }
            }
        }
    };
}

path_counters! {
    /// Packets received from the NIC.
    NicRx = "nic_rx_packets_total",
    /// Packets the NIC accepted for transmission (forwarded and kernel egress).
    NicTx = "nic_tx_packets_total",
    /// Packets to the NIC that its TX queue refused: freed and counted here.
    NicTxFull = "nic_tx_full_total",
    /// Packets received from the kernel (the host's egress).
    KernelRx = "kernel_rx_packets_total",
    /// Packets the kernel port accepted (accepted and passed).
    KernelTx = "kernel_tx_packets_total",
    /// Packets to the kernel that its TX queue refused: freed and counted here.
    KernelTxFull = "kernel_tx_full_total",
    /// Multi-segment packets from the NIC, which the engine cannot see whole: dropped.
    NicRxMultiSegment = "nic_rx_multi_segment_total",
    /// Packets the engine dropped (the engine's counters say why).
    EngineDrops = "engine_drops_total",
    /// Packets whose rewrite could not be applied to the mbuf (never expected): dropped.
    RewriteFailed = "rewrite_failed_total",
    /// Flow-table lookups that found an owned flow.
    FlowHits = "flow_table_hits_total",
    /// Flow-table lookups that found none.
    FlowMisses = "flow_table_misses_total",
    /// Frames a frame router encapsulated (and queued for the NIC).
    Encapsulated = "encapsulated_packets_total",
    /// Frames a frame router passed to the kernel.
    RouterPasses = "router_passed_packets_total",
    /// Frames a frame router dropped (the router's own counters say why).
    RouterDrops = "router_dropped_packets_total",
    /// Frames a router asked to encapsulate that the mbuf could not take (a strip longer than
    /// the frame, or a header beyond the headroom): dropped.
    EncapFailed = "encap_failed_total",
}

impl PathCounter {
    /// Number of path counters.
    pub const COUNT: usize = PathCounter::ALL.len();
}

/// One worker's path counters, plain integers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathCounters {
    values: [u64; PathCounter::COUNT],
}

impl PathCounters {
    /// Adds `n` to `counter`.
    #[inline]
    pub fn add(&mut self, counter: PathCounter, n: u64) {
        let slot = &mut self.values[counter as usize];
        *slot = slot.wrapping_add(n);
    }

    /// The value of `counter`.
    pub fn get(&self, counter: PathCounter) -> u64 {
        self.values[counter as usize]
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &PathCounters) {
        for (mine, theirs) in self.values.iter_mut().zip(other.values) {
            *mine = mine.wrapping_add(theirs);
        }
    }

    /// (counter, value) pairs in index order.
    pub fn iter(&self) -> impl Iterator<Item = (PathCounter, u64)> + '_ {
        PathCounter::ALL.iter().map(|&c| (c, self.get(c)))
    }
}

/// One lcore's published counters. Aligned to a cache line so lcores never share one.
#[derive(Debug)]
#[repr(align(64))]
pub struct LcoreStats {
    engine: [AtomicU64; Counter::COUNT],
    path: [AtomicU64; PathCounter::COUNT],
}

impl Default for LcoreStats {
    fn default() -> Self {
        Self {
            engine: std::array::from_fn(|_| AtomicU64::new(0)),
            path: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl LcoreStats {
    /// Publishes a worker's counters (called by that worker only, between bursts).
    pub fn publish(&self, engine: &Counters, path: &PathCounters) {
        for ((_, value), slot) in engine.iter().zip(&self.engine) {
            slot.store(value, Ordering::Relaxed);
        }
        for (value, slot) in path.values.iter().zip(&self.path) {
            slot.store(*value, Ordering::Relaxed);
        }
    }

    /// The values as last published (engine counters, path counters).
    pub fn snapshot(&self) -> (Counters, PathCounters) {
        let mut engine = Counters::new();
        for (&counter, slot) in Counter::ALL.iter().zip(&self.engine) {
            engine.set(counter, slot.load(Ordering::Relaxed));
        }
        let mut path = PathCounters::default();
        for (value, slot) in path.values.iter_mut().zip(&self.path) {
            *value = slot.load(Ordering::Relaxed);
        }
        (engine, path)
    }
}

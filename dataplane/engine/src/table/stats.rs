//! The table's counters.
//!
//! Writes (inserts, refreshes, evictions, refusals, removals, displacements) are counted by the
//! writer in shared atomics: they are rare next to lookups (once per flow, or once per second per
//! flow for a confirmation) and the writer already owns a bucket lock's cache line.
//!
//! Lookups count nothing in shared memory: a per-lookup `fetch_add` on a shared line would make
//! every lcore's lookups contend on that line (see BENCHMARKS.md "Flow table"). A caller that
//! wants hits and misses counts them in its own [`LocalCounts`] (or uses a
//! [`CountingView`](super::CountingView)) and adds them to the table's totals now and then with
//! [`ConcurrentFlowTable::flush_counts`](super::ConcurrentFlowTable::flush_counts). The only
//! lookup events counted in shared memory are read retries (a reader raced a writer on one slot)
//! and read failures (it kept racing and gave up): both need a concurrent write, so they cost
//! nothing on the common path.

use super::policy::Victim;
use super::Lookup;
use core::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

/// A value alone on its cache lines (128 bytes: the adjacent-line prefetcher pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Hits and misses counted by one caller (one lcore), without touching shared memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalCounts {
    /// Lookups that found an owning entry.
    pub hits: u64,
    /// Lookups that did not (absent, expired embryonic, or given up after read retries).
    pub misses: u64,
}

impl LocalCounts {
    /// Counts one lookup.
    #[inline]
    pub fn record(&mut self, lookup: Lookup) {
        if lookup.is_owned() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }
}

/// Shared counters (one cache-line group for writers, one for the rare reader events).
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    writes: CachePadded<WriteCounts>,
    reads: CachePadded<ReadCounts>,
}

#[derive(Debug, Default)]
struct WriteCounts {
    inserts: AtomicU64,
    refreshes: AtomicU64,
    evicted_syn_expired: AtomicU64,
    evicted_syn: AtomicU64,
    evicted_egress: AtomicU64,
    displacements: AtomicU64,
    refusals: AtomicU64,
    removals: AtomicU64,
}

#[derive(Debug, Default)]
struct ReadCounts {
    hits: AtomicU64,
    misses: AtomicU64,
    read_retries: AtomicU64,
    read_failures: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl SharedStats {
    pub(crate) fn insert(&self) {
        bump(&self.writes.inserts);
    }
    pub(crate) fn refresh(&self) {
        bump(&self.writes.refreshes);
    }
    pub(crate) fn evict(&self, victim: Victim) {
        bump(match victim {
            Victim::ExpiredSyn => &self.writes.evicted_syn_expired,
            Victim::Syn => &self.writes.evicted_syn,
            Victim::Egress => &self.writes.evicted_egress,
        });
    }
    pub(crate) fn displace(&self) {
        bump(&self.writes.displacements);
    }
    pub(crate) fn refuse(&self) {
        bump(&self.writes.refusals);
    }
    pub(crate) fn remove(&self, n: u64) {
        self.writes.removals.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn read_retry(&self) {
        bump(&self.reads.read_retries);
    }
    pub(crate) fn read_failure(&self) {
        bump(&self.reads.read_failures);
    }
    pub(crate) fn flush(&self, local: &mut LocalCounts) {
        if local.hits != 0 {
            self.reads.hits.fetch_add(local.hits, Ordering::Relaxed);
        }
        if local.misses != 0 {
            self.reads.misses.fetch_add(local.misses, Ordering::Relaxed);
        }
        *local = LocalCounts::default();
    }

    pub(crate) fn snapshot(&self, entries: usize, capacity: usize) -> TableStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (w, r) = (&*self.writes, &*self.reads);
        TableStats {
            entries,
            capacity,
            inserts: get(&w.inserts),
            refreshes: get(&w.refreshes),
            evicted_syn_expired: get(&w.evicted_syn_expired),
            evicted_syn: get(&w.evicted_syn),
            evicted_egress: get(&w.evicted_egress),
            displacements: get(&w.displacements),
            refusals: get(&w.refusals),
            removals: get(&w.removals),
            hits: get(&r.hits),
            misses: get(&r.misses),
            read_retries: get(&r.read_retries),
            read_failures: get(&r.read_failures),
        }
    }
}

/// A snapshot of the table's counters (each counter read once; they are not read atomically
/// together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Entries held now (embryonic ones past their lifetime included until reused or purged).
    pub entries: usize,
    /// The configured bound on `entries`.
    pub capacity: usize,
    /// New entries (into a free slot, or in place of an evicted one; a re-armed expired
    /// embryonic entry counts too).
    pub inserts: u64,
    /// Confirmations that changed an entry (its timestamp moved to a later second, or its
    /// source was upgraded). Confirmations within the same second write nothing and count nothing.
    pub refreshes: u64,
    /// Evictions of embryonic entries past their lifetime (free: they were misses already).
    pub evicted_syn_expired: u64,
    /// Evictions of live embryonic entries.
    pub evicted_syn: u64,
    /// Evictions of egress-learned entries (least recently confirmed of the bucket pair).
    pub evicted_egress: u64,
    /// Entries moved to their other candidate bucket to make room (no entry lost).
    pub displacements: u64,
    /// Inserts refused: the table was at capacity or the key's bucket pair was full, and only
    /// entries that learning may not evict were left to replace.
    pub refusals: u64,
    /// Entries removed (`remove`, `remove_static`, `retain`, `purge_expired`).
    pub removals: u64,
    /// Owning lookups, as flushed by the callers ([`LocalCounts`]).
    pub hits: u64,
    /// Non-owning lookups, as flushed by the callers.
    pub misses: u64,
    /// Lookups that raced a writer on a slot (or a displacement) and read again.
    pub read_retries: u64,
    /// Lookups that kept racing and answered "miss" after the bounded retries.
    pub read_failures: u64,
}

impl TableStats {
    /// All evictions.
    pub fn evictions(&self) -> u64 {
        self.evicted_syn_expired + self.evicted_syn + self.evicted_egress
    }
}

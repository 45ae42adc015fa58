//! The table as the engine sees it ([`FlowTable`]), directly or through a per-lcore
//! [`CountingView`] that counts its own hits and misses.

use super::{ConcurrentFlowTable, LocalCounts, Lookup, Prefetch, RecentFlows, Source};
use crate::flow::{FlowKey, FlowTable, Ipv4FlowKey, Ownership};
use core::cell::Cell;
use core::hash::BuildHasher;

impl<S: BuildHasher> ConcurrentFlowTable<S> {
    /// A per-caller view that counts its lookups' hits and misses without touching shared memory
    /// (for one lcore's engine); flush it with [`CountingView::flush`].
    pub fn counting_view(&self) -> CountingView<'_, S> {
        CountingView {
            table: self,
            counts: Cell::new(LocalCounts::default()),
        }
    }
}

/// The engine's view: owned = [`Lookup::Owned`]; an accepted SYN inserts an embryonic entry.
/// Counts nothing (see [`CountingView`]).
impl<S: BuildHasher> FlowTable for ConcurrentFlowTable<S> {
    #[inline]
    fn owns(&self, key: &FlowKey) -> bool {
        self.lookup(key).is_owned()
    }

    fn owns_many<P: Prefetch>(&self, keys: &[Ipv4FlowKey], out: &mut [bool], prefetch: &P) {
        let out = &mut out[..keys.len()];
        self.lookup_groups(keys, out, prefetch, |answer| answer.is_owned());
    }

    fn removal_epoch(&self) -> Option<u64> {
        Some(self.removals())
    }

    fn ownership_many<P: Prefetch>(
        &self,
        keys: &[Ipv4FlowKey],
        out: &mut [Ownership],
        prefetch: &P,
    ) {
        let out = &mut out[..keys.len()];
        self.lookup_groups(keys, out, prefetch, |answer| match answer {
            answer if answer.is_lasting() => Ownership::OwnedUntilRemoved,
            Lookup::Owned(_) => Ownership::Owned,
            _ => Ownership::NotOwned,
        });
    }

    fn syn_accepted(&self, key: &FlowKey) {
        self.insert_syn(*key);
    }

    fn prefetch_for_insert<P: Prefetch>(&self, key: &Ipv4FlowKey, prefetch: &P) {
        self.place_prefetched(key, prefetch);
    }

    fn egress_seen(&self, key: &FlowKey) {
        self.insert(*key, Source::Egress);
    }

    fn egress_frames<'f, P: Prefetch>(
        &self,
        frames: impl Iterator<Item = &'f [u8]>,
        recent: &mut RecentFlows,
        prefetch: &P,
    ) {
        self.learn_frames(frames, recent, prefetch);
    }
}

/// A [`FlowTable`] over a shared [`ConcurrentFlowTable`] that counts one caller's hits and misses
/// in plain (non-atomic) fields: one per lcore, flushed to the table's totals now and then.
pub struct CountingView<'t, S = foldhash::fast::RandomState> {
    table: &'t ConcurrentFlowTable<S>,
    counts: Cell<LocalCounts>,
}

impl<S> core::fmt::Debug for CountingView<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CountingView")
            .field("counts", &self.counts.get())
            .finish_non_exhaustive()
    }
}

impl<S> CountingView<'_, S> {
    /// This view's counts since the last flush.
    pub fn counts(&self) -> LocalCounts {
        self.counts.get()
    }

    /// Adds this view's counts to the table's totals and zeroes them.
    pub fn flush(&self) {
        let mut counts = self.counts.take();
        self.table.flush_counts(&mut counts);
    }
}

impl<S: BuildHasher> FlowTable for CountingView<'_, S> {
    #[inline]
    fn owns(&self, key: &FlowKey) -> bool {
        let lookup = self.table.lookup(key);
        let mut counts = self.counts.get();
        counts.record(lookup);
        self.counts.set(counts);
        lookup.is_owned()
    }

    fn syn_accepted(&self, key: &FlowKey) {
        self.table.syn_accepted(key);
    }

    fn egress_seen(&self, key: &FlowKey) {
        self.table.egress_seen(key);
    }
}

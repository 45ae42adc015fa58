//! Removals: one key at a time (learned or static), sweeps over the whole table (reconciliation,
//! expired embryonic entries), the removal count that callers key kept answers on, and the
//! lock-free walk over every entry for listings.

use super::bucket::{self, Locked, SLOTS};
use super::policy;
use super::search::READ_ATTEMPTS;
use super::slot::Content;
use super::{ConcurrentFlowTable, Entry, Source};
use crate::flow::FlowKey;
use core::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl<S: BuildHasher> ConcurrentFlowTable<S> {
    /// Counts a removal (after the slot was emptied or overwritten: a caller that reads the new
    /// count also sees the entry gone).
    pub(super) fn removed(&self) {
        self.removals.fetch_add(1, Ordering::Release);
    }

    /// How many entries have left the table (removed, swept, evicted) since it was created. An
    /// answer "owned" obtained after reading this count stays true for an entry that does not
    /// expire ([`Lookup::is_lasting`]) until the count moves: the only way such an entry stops
    /// owning its flow is to leave the table. A caller may keep such answers (a per-lcore cache
    /// in front of the table) as long as it sees the same count.
    ///
    /// [`Lookup::is_lasting`]: super::Lookup::is_lasting
    pub fn removals(&self) -> u64 {
        self.removals.load(Ordering::Acquire)
    }

    /// Removes a learned (non-static) entry; false if there was none. Static entries stay.
    pub fn remove(&self, key: &FlowKey) -> bool {
        self.remove_if(key, |source| source != Source::Static)
    }

    /// Removes a static entry; false if the key has no static entry.
    pub fn remove_static(&self, key: &FlowKey) -> bool {
        self.remove_if(key, |source| source == Source::Static)
    }

    fn remove_if(&self, key: &FlowKey, wanted: impl FnOnce(Source) -> bool) -> bool {
        let place = self.place(key);
        let _locked = Locked::pair(&self.locks, place.b1, place.b2);
        match self.locked_find(&place, key) {
            Some((bucket, index, content)) if wanted(content.source) => {
                self.vacate(bucket, index);
                self.removed();
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.stats.remove(1);
                true
            }
            _ => false,
        }
    }

    /// Visits every learned (non-static) entry and removes those for which `keep` answers false;
    /// returns how many it removed. For the control thread's reconciliation: it locks one bucket
    /// at a time, briefly, and calls `keep` with no lock held. An entry confirmed or upgraded
    /// between the visit and the removal is kept. Entries inserted or moved during the sweep may
    /// be visited twice or not at all (the next sweep sees them).
    pub fn retain(&self, mut keep: impl FnMut(&Entry) -> bool) -> usize {
        let now = self.clock.now();
        self.sweep(|content| {
            if content.source == Source::Static {
                return false;
            }
            let entry = Entry {
                key: content.key,
                source: content.source,
                age: Duration::from_secs(now.saturating_sub(content.confirmed).into()),
            };
            !keep(&entry)
        })
    }

    /// Removes the embryonic entries past their lifetime (they are misses already, and reused
    /// first; this only makes [`len`](Self::len) exact). Returns how many it removed.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        self.sweep(|content| {
            content.source == Source::Syn
                && policy::syn_expired(content.confirmed, now, self.syn_lifetime)
        })
    }

    fn sweep(&self, mut doomed: impl FnMut(&Content) -> bool) -> usize {
        let mut removed = 0;
        for bucket in 0..self.buckets.len() {
            if self.tags[bucket].load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut seen = [None; SLOTS];
            {
                let _locked = Locked::one(&self.locks, bucket);
                let tags = self.tags[bucket].load(Ordering::Relaxed);
                for index in bucket::indices(!bucket::empty(tags) & 0x8080_8080_8080_8080) {
                    seen[index] = self.buckets[bucket].slots[index].locked_content();
                }
            }
            for (index, content) in seen.iter().enumerate() {
                let Some(content) = content else { continue };
                if !doomed(content) {
                    continue;
                }
                let _locked = Locked::one(&self.locks, bucket);
                let slot = &self.buckets[bucket].slots[index];
                if slot.locked_content().as_ref() == Some(content) {
                    self.vacate(bucket, index);
                    self.removed();
                    self.len.fetch_sub(1, Ordering::Relaxed);
                    removed += 1;
                }
            }
        }
        self.stats.remove(removed as u64);
        removed
    }

    /// Calls `f` on every entry (static and expired embryonic ones included), lock-free: for
    /// listings. Entries written during the walk may be seen twice or not at all.
    pub fn for_each(&self, mut f: impl FnMut(&Entry)) {
        for (bucket, tags) in self.buckets.iter().zip(&*self.tags) {
            let tags = tags.load(Ordering::Acquire);
            for index in bucket::indices(!bucket::empty(tags) & 0x8080_8080_8080_8080) {
                let slot = &bucket.slots[index];
                let content = (0..READ_ATTEMPTS).find_map(|_| slot.snapshot().ok());
                let Some(Some(content)) = content else {
                    continue;
                };
                f(&self.entry(content.key, content.source, content.confirmed));
            }
        }
    }
}

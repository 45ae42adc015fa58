//! A per-lcore cache of the flows the table says a local socket owns, in front of the table.
//!
//! A lookup in the shared table reads two tag words and a slot; the slot's cache line is a line
//! of a 57 MiB array (1M entries) and costs 10 % of the packet rate even when only a thousand
//! flows are active (BENCHMARKS.md, "Dataplane throughput"). This cache keeps the last 4096 owned
//! flows an lcore saw in 64 KiB of its own: a hit reads one line that the same lcore read recently.
//! It is the exact-match cache of Open vSwitch's datapath threads, for one bit of answer.
//!
//! Only answers that last are kept: "owned" by an entry that can stop owning its flow only by
//! leaving the table ([`Ownership::OwnedUntilRemoved`]). The table counts every entry that leaves
//! ([`FlowTable::removal_epoch`]); the cache remembers the count its entries were learned under
//! and empties itself when the count has moved, before it answers anything. An answer is never
//! more stale than the table's own answers within one burst. Unowned flows are not kept: learning
//! makes flows owned all the time (every accepted SYN), and those answers must not wait.
//!
//! A cache pays only when it answers a good share of the lookups. With many more active flows
//! than it holds, every lookup pays a probe and every miss a write, for few hits (16384 flows on
//! one lcore: 18 % slower with the cache than without). So the cache watches its hit rate over
//! windows of 256 bursts and steps aside for 16 windows after one in which it answered under a
//! quarter of the lookups, then tries again (the same 16384 flows: 2 % slower than without it).
//!
//! The index is a fixed multiplicative hash of the key, not the table's keyed hash: a sender who
//! aims flows at one set only evicts cache entries, and every flow it evicts is answered by the
//! table as before.

use crate::burst::BURST_MAX;
use crate::flow::{FlowTable, Ipv4FlowKey, Ownership};
use crate::table::Prefetch;

/// Calls (bursts) per window of the hit-rate check.
const WINDOW_CALLS: u32 = 256;
/// Windows the cache stays unused after one in which it answered too few lookups.
const OFF_WINDOWS: u32 = 16;

/// Keys asked of the table at once: a burst.
const BATCH: usize = BURST_MAX;

/// Sets of [`WAYS`] keys; a power of two.
const SETS: usize = 1024;
/// Keys per set: one cache line of 16-byte keys.
const WAYS: usize = 4;
/// A key as its two words; `[0, 0]` is no key (a key's head word carries its family).
type Words = [u64; 2];

/// One set: a cache line of keys.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Set {
    keys: [Words; WAYS],
}

/// The cache's use over the current window of calls.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    calls: u32,
    hits: u64,
    lookups: u64,
    /// Windows left before the cache is used again.
    off: u32,
}

/// The cache. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct FlowCache {
    /// A fixed-size array: `set_of` is below `SETS` by construction, so indexing needs no check.
    sets: Box<[Set; SETS]>,
    /// The table's removal epoch the entries were learned under; `None`: the table keeps no
    /// epoch, and the cache stays empty.
    epoch: Option<u64>,
    /// The way the next insert replaces, in turn.
    next_way: usize,
    /// The current window's use.
    window: Window,
    /// Whether the current batch is answered through the cache ([`begin`](Self::begin)).
    on: bool,
    /// The current batch's keys that the cache did not answer, with the caller's index for each.
    missed: [Ipv4FlowKey; BATCH],
    missed_at: [u8; BATCH],
    misses: usize,
    /// The table's answers for `missed`.
    answers: [Ownership; BATCH],
    owned: [bool; BATCH],
}

impl Default for FlowCache {
    fn default() -> Self {
        Self {
            sets: Box::new([Set::default(); SETS]),
            epoch: None,
            next_way: 0,
            window: Window::default(),
            on: false,
            missed: [Ipv4FlowKey::unspecified(); BATCH],
            missed_at: [0; BATCH],
            misses: 0,
            answers: [Ownership::NotOwned; BATCH],
            owned: [false; BATCH],
        }
    }
}

impl FlowCache {
    /// Makes the cache valid for the table's current `epoch` (read before any answer the caller
    /// is about to take from the table or the cache): empties it if the epoch moved, or if the
    /// table keeps none.
    fn sync(&mut self, epoch: Option<u64>) {
        if epoch != self.epoch {
            if self.epoch.is_some() {
                self.sets.fill(Set::default());
            }
            self.epoch = epoch;
        }
    }

    /// True when the cache may answer (the table keeps an epoch).
    fn is_enabled(&self) -> bool {
        self.epoch.is_some()
    }

    /// True when the cache holds `key`: a local socket owns the flow.
    #[inline]
    pub(crate) fn contains(&self, key: &Ipv4FlowKey) -> bool {
        let words = words(key);
        self.sets[set_of(&words)].keys.contains(&words)
    }

    /// Remembers that `key` is owned until the epoch moves (a caller's
    /// [`Ownership::OwnedUntilRemoved`] answer, taken after the last [`sync`](Self::sync)).
    #[inline]
    fn insert(&mut self, key: &Ipv4FlowKey) {
        if self.epoch.is_none() {
            return;
        }
        let words = words(key);
        let set = &mut self.sets[set_of(&words)];
        if set.keys.contains(&words) {
            return;
        }
        let way = match set.keys.iter().position(|k| *k == [0, 0]) {
            Some(free) => free,
            None => {
                self.next_way = (self.next_way + 1) % WAYS;
                self.next_way
            }
        };
        set.keys[way] = words;
    }

    /// Answers `out[i]` for `keys[i]` (`out` at least as long as `keys`) from the cache, and asks
    /// `table` ([`FlowTable::ownership_many`]) only about the keys it does not hold, keeping the
    /// lasting answers. With a table that keeps no removal epoch, this is `table.owns_many`.
    pub fn owns_many<F: FlowTable, P: Prefetch>(
        &mut self,
        table: &F,
        keys: &[Ipv4FlowKey],
        out: &mut [bool],
        prefetch: &P,
    ) {
        let on = self.begin(table);
        for (keys, out) in keys.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            self.misses = 0;
            for (i, (key, owned)) in keys.iter().zip(out.iter_mut()).enumerate() {
                *owned = on && self.contains(key);
                if !*owned {
                    self.missed(key, i as u8);
                }
            }
            self.resolve(table, keys.len(), prefetch);
            for (at, owned) in self.resolved() {
                if let Some(out) = out.get_mut(usize::from(at)) {
                    *out = owned;
                }
            }
        }
    }

    /// Starts a batch of lookups (a burst's, or a chunk of [`owns_many`](Self::owns_many)'s):
    /// true when the cache answers it ([`contains`](Self::contains)) in front of the table, false
    /// when every key goes to the table ([`missed`](Self::missed)). Reads the table's removal
    /// epoch first, so no answer the batch takes from the cache is older than the epoch.
    #[inline]
    pub(crate) fn begin<F: FlowTable>(&mut self, table: &F) -> bool {
        self.sync(table.removal_epoch());
        self.on = self.is_enabled() && self.in_use();
        self.misses = 0;
        self.on
    }

    /// Notes a key of the batch that the cache did not answer (or every key, when it is not
    /// [`on`](Self::begin)), with the caller's index `at` for it. At most [`BATCH`] per batch;
    /// more are ignored.
    #[inline]
    pub(crate) fn missed(&mut self, key: &Ipv4FlowKey, at: u8) {
        if let (Some(slot), Some(slot_at)) = (
            self.missed.get_mut(self.misses),
            self.missed_at.get_mut(self.misses),
        ) {
            *slot = *key;
            *slot_at = at;
            self.misses += 1;
        }
    }

    /// Asks `table` about the batch's missed keys (`lookups`: all the keys of the batch, the
    /// cache's hits included) and keeps the lasting answers; then [`resolved`](Self::resolved)
    /// has them.
    #[inline]
    pub(crate) fn resolve<F: FlowTable, P: Prefetch>(
        &mut self,
        table: &F,
        lookups: usize,
        prefetch: &P,
    ) {
        let misses = self.misses;
        if misses == 0 {
            self.count(lookups, 0);
            return;
        }
        if !self.on {
            table.owns_many(&self.missed[..misses], &mut self.owned[..misses], prefetch);
            return;
        }
        let (asked, answers) = (&self.missed[..misses], &mut self.answers[..misses]);
        table.ownership_many(asked, answers, prefetch);
        for j in 0..misses {
            let answer = self.answers[j];
            self.owned[j] = answer.is_owned();
            if answer == Ownership::OwnedUntilRemoved {
                let key = self.missed[j];
                self.insert(&key);
            }
        }
        self.count(lookups, misses);
    }

    /// The batch's missed keys' answers: (the caller's index, owned).
    #[inline]
    pub(crate) fn resolved(&self) -> impl Iterator<Item = (u8, bool)> + '_ {
        let n = self.misses;
        self.missed_at[..n]
            .iter()
            .copied()
            .zip(self.owned[..n].iter().copied())
    }

    /// Counts a batch answered through the cache in the current window.
    fn count(&mut self, lookups: usize, misses: usize) {
        if self.on {
            self.window.hits += (lookups - misses) as u64;
            self.window.lookups += lookups as u64;
        }
    }

    /// Whether this call should use the cache, by the last window's hit rate: it pays when it
    /// answers a good share of the lookups (the 1000 flows of the throughput mix: 75 %, all the
    /// owned ones), and costs a probe for every lookup and a write for every miss when the flows
    /// are many more than it holds (16384 flows: 18 % slower with it than without). A window in
    /// which it answered under a quarter of the lookups turns it off for the next
    /// [`OFF_WINDOWS`], after which it gets another window.
    fn in_use(&mut self) -> bool {
        let window = &mut self.window;
        window.calls += 1;
        if window.calls < WINDOW_CALLS {
            return window.off == 0;
        }
        if window.off > 0 {
            window.off -= 1;
        } else if window.hits * 4 < window.lookups {
            window.off = OFF_WINDOWS;
        }
        *window = Window {
            off: window.off,
            ..Window::default()
        };
        window.off == 0
    }
}

#[inline]
fn words(key: &Ipv4FlowKey) -> Words {
    [key.pair_word(), key.head_word()]
}

#[inline]
fn set_of(words: &Words) -> usize {
    let mixed = (words[0] ^ words[1].rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> (64 - SETS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{ExactMatchTable, FlowKey, L4Proto};
    use crate::table::{ConcurrentFlowTable, LoadPrefetch, Source, TableConfig};
    use core::net::Ipv4Addr;
    use std::cell::Cell;
    use std::time::Duration;

    fn key(i: u32) -> Ipv4FlowKey {
        Ipv4FlowKey::new(
            L4Proto::Tcp,
            Ipv4Addr::new(203, 0, 113, 10),
            443,
            Ipv4Addr::from(0xc633_6400 + i),
            1024 + (i % 50_000) as u16,
        )
    }

    /// Answers from a shared table through `cache`, as a burst would.
    fn ask<F: FlowTable>(cache: &mut FlowCache, table: &F, keys: &[Ipv4FlowKey]) -> Vec<bool> {
        let mut out = vec![false; keys.len()];
        cache.owns_many(table, keys, &mut out, &LoadPrefetch);
        out
    }

    /// A table that owns the even keys for good and counts the keys it is asked about (`asked`
    /// through `ownership_many`, `plain` through `owns_many`).
    #[derive(Default)]
    struct Counting {
        epoch: Cell<u64>,
        asked: Cell<usize>,
        plain: Cell<usize>,
    }

    impl FlowTable for Counting {
        fn owns(&self, key: &FlowKey) -> bool {
            key.remote().port().is_multiple_of(2)
        }
        fn owns_many<P: Prefetch>(&self, keys: &[Ipv4FlowKey], out: &mut [bool], _: &P) {
            self.plain.set(self.plain.get() + keys.len());
            for (key, out) in keys.iter().zip(out) {
                *out = self.owns(&key.flow_key());
            }
        }
        fn removal_epoch(&self) -> Option<u64> {
            Some(self.epoch.get())
        }
        fn ownership_many<P: Prefetch>(&self, keys: &[Ipv4FlowKey], out: &mut [Ownership], _: &P) {
            self.asked.set(self.asked.get() + keys.len());
            for (key, out) in keys.iter().zip(out) {
                *out = if self.owns(&key.flow_key()) {
                    Ownership::OwnedUntilRemoved
                } else {
                    Ownership::NotOwned
                };
            }
        }
    }

    #[test]
    fn owned_flows_are_answered_from_the_cache_until_the_epoch_moves() {
        let table = Counting {
            epoch: Cell::new(7),
            ..Counting::default()
        };
        let keys: Vec<_> = (0..100).map(key).collect();
        let want: Vec<bool> = keys.iter().map(|k| table.owns(&k.flow_key())).collect();
        let mut cache = FlowCache::default();
        assert_eq!(ask(&mut cache, &table, &keys), want);
        assert_eq!(table.asked.get(), 100, "all asked the first time");
        assert_eq!(ask(&mut cache, &table, &keys), want);
        assert_eq!(table.asked.get(), 150, "then only the 50 unowned ones");
        table.epoch.set(8);
        assert_eq!(ask(&mut cache, &table, &keys), want);
        assert_eq!(
            table.asked.get(),
            250,
            "a removal anywhere empties the cache"
        );
    }

    #[test]
    fn a_cache_that_answers_too_few_lookups_steps_aside_for_a_while() {
        let table = Counting::default();
        let mut cache = FlowCache::default();
        // Every burst new flows: nothing is ever answered from the cache.
        let mut next = 0;
        let mut burst = |cache: &mut FlowCache| {
            let keys: Vec<_> = (next..next + 32).map(key).collect();
            next += 32;
            assert_eq!(
                ask(cache, &table, &keys),
                keys.iter()
                    .map(|k| table.owns(&k.flow_key()))
                    .collect::<Vec<_>>()
            );
        };
        for _ in 0..WINDOW_CALLS - 1 {
            burst(&mut cache);
        }
        assert_eq!(table.plain.get(), 0, "a whole window through the cache");
        for _ in 0..OFF_WINDOWS * WINDOW_CALLS {
            burst(&mut cache);
        }
        assert_eq!(
            table.plain.get(),
            32 * (OFF_WINDOWS * WINDOW_CALLS) as usize,
            "then {OFF_WINDOWS} windows without it"
        );
        let asked = table.asked.get();
        burst(&mut cache);
        assert_eq!(table.asked.get(), asked + 32, "then another try");
    }

    #[test]
    fn a_cache_that_answers_most_lookups_stays_in_use() {
        let table = Counting::default();
        let mut cache = FlowCache::default();
        let keys: Vec<_> = (0..32).map(key).collect();
        for _ in 0..3 * WINDOW_CALLS {
            ask(&mut cache, &table, &keys);
        }
        assert_eq!(table.plain.get(), 0);
        assert_eq!(
            table.asked.get(),
            32 + 16 * (3 * WINDOW_CALLS as usize - 1),
            "the owned half from the cache after the first burst"
        );
    }

    #[test]
    fn a_removed_or_evicted_flow_is_not_answered_from_the_cache() {
        let table = ConcurrentFlowTable::new(TableConfig::new(4));
        let mut cache = FlowCache::default();
        let (a, b) = (key(1), key(2));
        table.insert(a.flow_key(), Source::Static);
        table.insert(b.flow_key(), Source::Socket);
        assert_eq!(ask(&mut cache, &table, &[a, b]), [true, true]);
        assert!(cache.contains(&a) && cache.contains(&b));
        assert!(table.remove_static(&a.flow_key()));
        assert_eq!(ask(&mut cache, &table, &[a, b]), [false, true]);
        assert!(table.remove(&b.flow_key()));
        assert_eq!(ask(&mut cache, &table, &[a, b]), [false, false]);

        // At capacity an egress entry gives way to a socket's.
        for i in 10..14 {
            table.insert(key(i).flow_key(), Source::Egress);
        }
        let learned: Vec<_> = (10..14).map(key).collect();
        assert_eq!(ask(&mut cache, &table, &learned), [true; 4]);
        assert!(matches!(
            table.insert(key(20).flow_key(), Source::Socket),
            crate::table::InsertOutcome::Evicted(Source::Egress)
        ));
        let answers = ask(&mut cache, &table, &learned);
        assert_eq!(
            answers.iter().filter(|&&owned| owned).count(),
            3,
            "{answers:?}"
        );
    }

    #[test]
    fn embryonic_entries_are_not_kept_since_they_expire() {
        let table = ConcurrentFlowTable::new(TableConfig {
            capacity: 16,
            syn_lifetime: Duration::from_secs(2),
        });
        let mut cache = FlowCache::default();
        let syn = key(3);
        table.insert_syn(syn.flow_key());
        assert_eq!(ask(&mut cache, &table, &[syn]), [true]);
        assert!(!cache.contains(&syn));
        table.tick(table.created() + Duration::from_secs(5));
        assert_eq!(ask(&mut cache, &table, &[syn]), [false], "expired");
    }

    #[test]
    fn a_table_without_an_epoch_is_asked_every_time() {
        let owned = key(4);
        let table: ExactMatchTable = [owned.flow_key()].into_iter().collect();
        let mut cache = FlowCache::default();
        for _ in 0..2 {
            assert_eq!(ask(&mut cache, &table, &[owned, key(5)]), [true, false]);
            assert!(!cache.is_enabled() && !cache.contains(&owned));
        }
    }

    #[test]
    fn a_full_set_replaces_its_entries_and_answers_stay_exact() {
        // More keys than a set holds, all in one set.
        let first = words(&key(0));
        let crowd: Vec<_> = (0..200_000)
            .map(key)
            .filter(|k| set_of(&words(k)) == set_of(&first))
            .take(WAYS * 3)
            .collect();
        assert_eq!(crowd.len(), WAYS * 3);
        let table = ConcurrentFlowTable::new(TableConfig::new(64));
        for k in &crowd {
            table.insert(k.flow_key(), Source::Static);
        }
        let mut cache = FlowCache::default();
        for _ in 0..3 {
            assert_eq!(ask(&mut cache, &table, &crowd), vec![true; crowd.len()]);
            let held = crowd.iter().filter(|k| cache.contains(k)).count();
            assert_eq!(held, WAYS, "a set holds {WAYS} keys");
        }
        // Longer than a batch: answered in batches.
        let many: Vec<_> = (0..100).map(key).collect();
        assert_eq!(ask(&mut cache, &table, &many).len(), 100);
    }
}

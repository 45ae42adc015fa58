//! Batched lookups: a burst looked up stage by stage (hash and prefetch the tag words, read the
//! tags and prefetch the slots, read the slots), so the cache misses of different keys overlap.

use super::bucket;
use super::search::{first_match, Found, Probe};
use super::storage::Place;
use super::{ConcurrentFlowTable, LoadPrefetch, Lookup, Prefetch};
use crate::flow::FlowKey;
use core::hash::BuildHasher;
use std::sync::atomic::Ordering;

/// One group of a batched search after its first two stages ([`ConcurrentFlowTable::stage`]):
/// each key's place, its two tag words and the first slot they point at.
pub(super) struct Staged<const GROUP: usize> {
    places: [Place; GROUP],
    tags: [[u64; 2]; GROUP],
    firsts: [(usize, u64); GROUP],
}

impl<const GROUP: usize> Default for Staged<GROUP> {
    #[inline(always)]
    fn default() -> Self {
        Self {
            places: [Place::default(); GROUP],
            tags: [[0; 2]; GROUP],
            firsts: [(0, 0); GROUP],
        }
    }
}

impl<S: BuildHasher> ConcurrentFlowTable<S> {
    /// Looks up many keys at once: `out[i]` answers `keys[i]` as [`lookup`](Self::lookup) would.
    /// [`lookup_many_with`](Self::lookup_many_with) with plain loads standing in for prefetches.
    ///
    /// # Panics
    /// If `out` is shorter than `keys`.
    pub fn lookup_many(&self, keys: &[FlowKey], out: &mut [Lookup]) {
        self.lookup_many_with(keys, out, &LoadPrefetch);
    }

    /// Looks up many keys at once, `out[i]` answering `keys[i]` as [`lookup`](Self::lookup)
    /// would: the way to look up a burst in a table much larger than the caches. Stage by stage
    /// over groups of 64 keys: hash every key and prefetch its two tag words; read the tags and
    /// prefetch the slot each key's tag points at; then read the slots. So the misses of
    /// different keys are in flight together instead of queueing one behind the other (groups
    /// of 16 keys with loads for prefetches cost twice as much per key at 10M entries).
    ///
    /// # Panics
    /// If `out` is shorter than `keys`.
    pub fn lookup_many_with(&self, keys: &[FlowKey], out: &mut [Lookup], prefetch: &impl Prefetch) {
        assert!(out.len() >= keys.len(), "one answer per key");
        self.lookup_groups::<64, _, _>(keys, out, prefetch, |answer| answer);
    }

    /// [`lookup_many_with`](Self::lookup_many_with) in groups of `GROUP` keys (the stage arrays
    /// are written whole for every group: no larger a group than the batches need; a worker's
    /// flow-cache misses take 16); `out[i]` gets
    /// `each` of the answer for `keys[i]`, for as many keys as `out` holds.
    /// The keys are general or all IPv4 ([`Ipv4FlowKey`]: then no step asks a key's family).
    ///
    /// [`Ipv4FlowKey`]: crate::flow::Ipv4FlowKey
    #[inline]
    pub(super) fn lookup_groups<const GROUP: usize, K: Probe, T>(
        &self,
        keys: &[K],
        out: &mut [T],
        prefetch: &impl Prefetch,
        each: impl Fn(Lookup) -> T,
    ) {
        let now = self.clock.now();
        for (keys, out) in keys.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            let moves = self.moves.load(Ordering::Acquire);
            let mut staged = Staged::<GROUP>::default();
            self.stage(keys.iter(), &mut staged, prefetch);
            for (i, (key, answer)) in keys.iter().zip(out).enumerate() {
                let found = self.find_staged(&staged, i, key, moves);
                *answer = each(self.answer(found, now));
            }
        }
    }

    /// The first two stages of a batch over one group of keys (at most `GROUP`): hash every key
    /// and prefetch its two tag words; then read the tags and prefetch the slot each key's tag
    /// points at. The third stage, [`find_staged`](Self::find_staged), reads that slot.
    #[inline(always)]
    pub(super) fn stage<'k, const GROUP: usize, K: Probe + 'k>(
        &self,
        keys: impl Iterator<Item = &'k K> + Clone,
        staged: &mut Staged<GROUP>,
        prefetch: &impl Prefetch,
    ) {
        for (key, place) in keys.clone().zip(&mut staged.places) {
            *place = self.place(key);
            prefetch.prefetch(&self.tags[place.b1]);
            prefetch.prefetch(&self.tags[place.b2]);
        }
        let Staged {
            places,
            tags,
            firsts,
        } = staged;
        for (((key, place), tags), first) in keys.zip(&*places).zip(tags).zip(firsts) {
            *tags = self.load_tags(place);
            *first = first_match(place, *tags);
            if let Some(index) = bucket::indices(first.1).next() {
                let slot = &self.buckets[first.0].slots[index];
                for word in slot.read_span(key.is_ipv6()) {
                    prefetch.prefetch(word);
                }
            }
        }
    }

    /// The search for the `i`-th key of a [`stage`](Self::stage)d group (`moves`: the move
    /// counter read before the group's tags).
    #[inline(always)]
    pub(super) fn find_staged<const GROUP: usize, K: Probe>(
        &self,
        staged: &Staged<GROUP>,
        i: usize,
        key: &K,
        moves: u64,
    ) -> Found {
        let (place, tags, first) = (&staged.places[i], staged.tags[i], staged.firsts[i]);
        self.find_from(place, key, tags, moves, first)
    }
}

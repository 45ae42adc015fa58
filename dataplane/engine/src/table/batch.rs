//! Batched lookups: a burst looked up stage by stage (hash and prefetch the tag words, read the
//! tags and prefetch the slots, read the slots), so the cache misses of different keys overlap.

use super::search::{Found, Probe};
use super::slot::Slot;
use super::storage::Place;
use super::{ConcurrentFlowTable, LoadPrefetch, Lookup, Prefetch};
use crate::flow::{Family, FlowKey};
use core::hash::BuildHasher;
use std::sync::atomic::Ordering;

/// One group of a batched search after its first two stages: each key's place (stage 1), then
/// the slot its tags pick ([`ConcurrentFlowTable::first_slot`], stage 2), and the move
/// counter read before those tags. Stage 1 of the next group may overwrite the places once
/// stage 2 has read them: stage 3 ([`ConcurrentFlowTable::find_staged`]) reads only `firsts`.
pub(super) struct Staged<'t, const GROUP: usize> {
    places: [Place; GROUP],
    firsts: [Option<&'t Slot>; GROUP],
    moves: u64,
}

impl<const GROUP: usize> Default for Staged<'_, GROUP> {
    #[inline(always)]
    fn default() -> Self {
        Self {
            places: [Place::default(); GROUP],
            firsts: [None; GROUP],
            moves: 0,
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
    /// of 16 keys with loads for prefetches cost twice as much per key at 10M entries). The
    /// groups overlap too: the next group is hashed and its tags prefetched while this group's
    /// slots are on their way.
    ///
    /// # Panics
    /// If `out` is shorter than `keys`.
    pub fn lookup_many_with(&self, keys: &[FlowKey], out: &mut [Lookup], prefetch: &impl Prefetch) {
        assert!(out.len() >= keys.len(), "one answer per key");
        if keys.iter().all(|key| key.family() == Family::V4) {
            // The usual batch: no step need ask a key's family again (a fifth of the work).
            self.search_groups::<64, _, _, _>(keys, FlowKey::ipv4_words, out, prefetch, |a| a);
        } else {
            self.search_groups::<64, _, _, _>(keys, |key| *key, out, prefetch, |a| a);
        }
    }

    /// [`lookup_many_with`](Self::lookup_many_with) in groups of `GROUP` keys, general or all
    /// IPv4 ([`Ipv4FlowKey`]: then no step asks a key's family); `out[i]` gets `each` of the
    /// answer for `keys[i]`, for as many keys as `out` holds.
    ///
    /// [`Ipv4FlowKey`]: crate::flow::Ipv4FlowKey
    #[inline]
    pub(super) fn lookup_groups<const GROUP: usize, K: Probe + Copy, T>(
        &self,
        keys: &[K],
        out: &mut [T],
        prefetch: &impl Prefetch,
        each: impl Fn(Lookup) -> T,
    ) {
        self.search_groups::<GROUP, _, _, _>(keys, |key| *key, out, prefetch, each);
    }

    /// The batched search over `keys` as `probe` presents them, in groups of `GROUP` (no larger
    /// a group than the batches need: the stage arrays are written whole once per call; a
    /// worker's flow-cache misses take 16).
    ///
    /// Software-pipelined: stage 1 of group n + 1 (hashing, prefetching tags) runs between
    /// stages 2 and 3 of group n, so its work overlaps group n's slot misses and its tag misses
    /// overlap group n's slot reads.
    #[inline(always)]
    fn search_groups<const GROUP: usize, K, P: Probe, T>(
        &self,
        keys: &[K],
        probe: impl Fn(&K) -> P + Copy,
        out: &mut [T],
        prefetch: &impl Prefetch,
        each: impl Fn(Lookup) -> T,
    ) {
        let now = self.clock.now();
        let mut groups = keys.chunks(GROUP).zip(out.chunks_mut(GROUP));
        let Some(mut group) = groups.next() else {
            return;
        };
        let mut staged = Staged::<GROUP>::default();
        self.hash_group(group.0.iter().map(probe), &mut staged, prefetch);
        loop {
            self.read_tags(group.0.iter().map(probe), &mut staged, prefetch);
            let next = groups.next();
            if let Some((keys, _)) = &next {
                self.hash_group(keys.iter().map(probe), &mut staged, prefetch);
            }
            let (keys, out) = group;
            for (i, (key, answer)) in keys.iter().zip(out).enumerate() {
                let found = self.find_staged(&staged, i, &probe(key));
                *answer = each(self.answer(found, now));
            }
            match next {
                Some(next) => group = next,
                None => break,
            }
        }
    }

    /// The first two stages of a batch over one group of keys (at most `GROUP`):
    /// [`hash_group`](Self::hash_group), then [`read_tags`](Self::read_tags). The third stage,
    /// [`find_staged`](Self::find_staged), reads the slots.
    #[inline(always)]
    pub(super) fn stage<'t, const GROUP: usize, K: Probe>(
        &'t self,
        keys: impl Iterator<Item = K> + Clone,
        staged: &mut Staged<'t, GROUP>,
        prefetch: &impl Prefetch,
    ) {
        self.hash_group(keys.clone(), staged, prefetch);
        self.read_tags(keys, staged, prefetch);
    }

    /// Stage 1: hash every key of a group and prefetch its two tag words.
    #[inline(always)]
    fn hash_group<const GROUP: usize, K: Probe>(
        &self,
        keys: impl Iterator<Item = K>,
        staged: &mut Staged<'_, GROUP>,
        prefetch: &impl Prefetch,
    ) {
        for (key, place) in keys.zip(&mut staged.places) {
            *place = self.place(&key);
            prefetch.prefetch(&self.tags[place.b1]);
            prefetch.prefetch(&self.tags[place.b2]);
        }
    }

    /// Stage 2: read the move counter, then every key's tags, and prefetch the slot its tags
    /// point at.
    #[inline(always)]
    fn read_tags<'t, const GROUP: usize, K: Probe>(
        &'t self,
        keys: impl Iterator<Item = K>,
        staged: &mut Staged<'t, GROUP>,
        prefetch: &impl Prefetch,
    ) {
        staged.moves = self.moves.load(Ordering::Acquire);
        for ((key, place), first) in keys.zip(&staged.places).zip(&mut staged.firsts) {
            *first = self.first_slot(place, self.load_tags(place));
            if let Some(slot) = first {
                for word in slot.read_span(key.is_ipv6()) {
                    prefetch.prefetch(word);
                }
            }
        }
    }

    /// Stage 3: the search for the `i`-th key of a [`stage`](Self::stage)d group (the full
    /// search starts again from the key).
    #[inline(always)]
    pub(super) fn find_staged<const GROUP: usize, K: Probe>(
        &self,
        staged: &Staged<'_, GROUP>,
        i: usize,
        key: &K,
    ) -> Found {
        self.find_from(key, staged.moves, staged.firsts[i], || {
            self.find_again(&key.key())
        })
    }
}

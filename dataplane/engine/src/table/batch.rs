//! Batched lookups: a burst looked up in three stages (hash and prefetch the tag words, read the
//! tags and prefetch the slots, read the slots), software-pipelined over steps of a few keys, so
//! the cache misses of different keys overlap each other and the work of other keys.

use super::search::{Found, Probe};
use super::slot::Slot;
use super::storage::Place;
use super::{ConcurrentFlowTable, LoadPrefetch, Lookup, Prefetch};
use crate::flow::{Family, FlowKey};
use core::hash::BuildHasher;
use std::sync::atomic::Ordering;

/// Keys per step of [`ConcurrentFlowTable::lookup_many_with`]'s pipeline: a line is named one
/// step (eight keys' work in all three stages) before it is read, which covers a miss to DRAM
/// at 10M entries. Steps of 16 and 32 measured no faster there, whole stages over a 64-key batch
/// slower (BENCHMARKS.md "Flow table").
const STEP: usize = 8;

/// Keys per group of [`ConcurrentFlowTable::lookup_groups`] (a worker's flow-cache misses: half
/// a burst).
const WORKER_GROUP: usize = 16;

/// One step or group of a batched search (at most `GROUP` keys) after its first two stages:
/// each key's place (stage 1), then the slot its tags pick
/// ([`ConcurrentFlowTable::first_slot`], stage 2), and the move counter read before those tags.
/// Stage 3 ([`ConcurrentFlowTable::find_staged`]) reads only the slots and the counter.
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
    /// would: the way to look up a burst in a table much larger than the caches. Three stages a
    /// key: hash it and prefetch its two tag words; read the tags and prefetch the slot they
    /// point at; read the slot. Software-pipelined in steps of eight keys: each step runs stage
    /// 1 of its keys, stage 2 of the step before and stage 3 of the one before that, so the
    /// misses of different keys are in flight together, and while they are, the core works on
    /// other keys (loads for prefetches, or whole stages over the batch, leave one or the other
    /// idle: BENCHMARKS.md "Flow table"). A batch of IPv4 keys only (one check a call) is
    /// searched as [`Ipv4FlowKey`](crate::flow::Ipv4FlowKey)s: no step asks a key's family.
    ///
    /// # Panics
    /// If `out` is shorter than `keys`.
    pub fn lookup_many_with(&self, keys: &[FlowKey], out: &mut [Lookup], prefetch: &impl Prefetch) {
        assert!(out.len() >= keys.len(), "one answer per key");
        // A fold, not `all`: no branch a key (LLVM vectorizes it; `all` cost 10 instructions a
        // key, a third of them a conditional jump).
        if keys
            .iter()
            .fold(true, |all, key| all & (key.family() == Family::V4))
        {
            self.search_steps(keys, FlowKey::ipv4_words, out, prefetch, |a| a);
        } else {
            self.search_steps(keys, |key| *key, out, prefetch, |a| a);
        }
    }

    /// The three stages over a worker's flow-cache misses, keys general or all IPv4
    /// ([`Ipv4FlowKey`]: then no step asks a key's family); `out[i]` gets `each` of the answer
    /// for `keys[i]`, for as many keys as `out` holds. Whole stages over groups of
    /// [`WORKER_GROUP`] keys, not [`lookup_many_with`](Self::lookup_many_with)'s pipeline: a
    /// burst's misses are a few keys, where the pipeline's bookkeeping costs more than it
    /// overlaps (chanced's worker: 7.7 instructions a packet more, 243.9 against 235.3, counted
    /// by `deploy/bench-worker-instructions.sh --loop-only`).
    ///
    /// [`Ipv4FlowKey`]: crate::flow::Ipv4FlowKey
    #[inline]
    pub(super) fn lookup_groups<K: Probe + Copy, T>(
        &self,
        keys: &[K],
        out: &mut [T],
        prefetch: &impl Prefetch,
        each: impl Fn(Lookup) -> T,
    ) {
        let now = self.clock.now();
        for (keys, out) in keys.chunks(WORKER_GROUP).zip(out.chunks_mut(WORKER_GROUP)) {
            let mut staged = Staged::<WORKER_GROUP>::default();
            self.stage(keys.iter().copied(), &mut staged, prefetch);
            for (i, (key, answer)) in keys.iter().zip(out).enumerate() {
                *answer = each(self.answer(self.find_staged(&staged, i, key), now));
            }
        }
    }

    /// The batched search over `keys` as `probe` presents them (see
    /// [`lookup_many_with`](Self::lookup_many_with)), in steps of [`STEP`] keys.
    #[inline(always)]
    fn search_steps<K, P: Probe, T>(
        &self,
        keys: &[K],
        probe: impl Fn(&K) -> P + Copy,
        out: &mut [T],
        prefetch: &impl Prefetch,
        each: impl Fn(Lookup) -> T,
    ) {
        let now = self.clock.now();
        let len = keys.len().min(out.len());
        let keys = &keys[..len];
        // Each stage walks the steps in order, stage 2 one step behind stage 1, stage 3 two.
        let mut hashing = keys.chunks(STEP);
        let mut tagging = keys.chunks(STEP);
        let mut reading = keys.chunks(STEP).zip(out.chunks_mut(STEP));
        // Three steps are in flight at once; a fourth entry keeps the index a mask.
        let mut ring: [Staged<'_, STEP>; 4] = Default::default();
        for step in 0..len.div_ceil(STEP) + 2 {
            if let Some(keys) = hashing.next() {
                self.hash_group(keys.iter().map(probe), &mut ring[step % 4], prefetch);
            }
            if step >= 1 {
                if let Some(keys) = tagging.next() {
                    let staged = &mut ring[(step - 1) % 4];
                    self.read_tags(keys.iter().map(probe), staged, prefetch);
                }
            }
            if step >= 2 {
                if let Some((keys, out)) = reading.next() {
                    let staged = &ring[(step - 2) % 4];
                    for (i, (key, answer)) in keys.iter().zip(out).enumerate() {
                        let found = self.find_staged(staged, i, &probe(key));
                        *answer = each(self.answer(found, now));
                    }
                }
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
            *place = self.place_prefetched(&key, prefetch);
        }
    }

    /// Stage 1 for one key: its place, its two tag words named to `prefetch`. Alone, for a key
    /// whose insert comes later (a SYN's, further on in a burst), so that the insert does not
    /// wait for them.
    #[inline(always)]
    pub(super) fn place_prefetched<K: Probe>(&self, key: &K, prefetch: &impl Prefetch) -> Place {
        let place = self.place(key);
        prefetch.prefetch(&self.tags[place.b1]);
        prefetch.prefetch(&self.tags[place.b2]);
        place
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

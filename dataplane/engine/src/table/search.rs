//! The lock-free search for one key: the tag words, the seqlock read of the slot they point at,
//! the full search retried while it races writers, and the answer it gives.

use super::bucket;
use super::policy;
use super::slot::{Read, Slot};
use super::storage::Place;
use super::{ConcurrentFlowTable, Entry, LocalCounts, Lookup, Source};
use crate::flow::{Family, FlowKey, Ipv4FlowKey};
use core::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A lookup reads at most this many times before it gives up on a slot a writer keeps changing.
pub(super) const READ_ATTEMPTS: u32 = 16;

/// The bucket a lock-free search reads first and its slots whose tag matches (none: mask 0):
/// the first bucket's if any of its tags match, else the second's. Both masks are computed and
/// one is picked, without a branch on the tag words.
#[inline(always)]
fn first_match(place: &Place, tags: [u64; 2]) -> (usize, u64) {
    let first = bucket::matching(tags[0], place.tag);
    let second = bucket::matching(tags[1], place.tag);
    // All ones when the first bucket has a match. Masks, not `if`: LLVM made the `if` a jump,
    // which mispredicts for about half the keys (a hit is in either bucket): the 64-key batch
    // at 1K entries cost 5-10 % more with it (BENCHMARKS.md "Flow table").
    let pick = u64::from(first != 0).wrapping_neg();
    let bucket = place.b2 ^ ((place.b1 ^ place.b2) & pick as usize);
    (bucket, second ^ ((first ^ second) & pick))
}

/// A key a lock-free search looks for: the general key, or an IPv4 key, whose type spares the
/// search every test of its family (a runtime's bursts; 5 % of the fast path's instructions,
/// BENCHMARKS.md "Instructions per packet").
pub(super) trait Probe {
    /// The table's hash of the key (the same for both forms of a key).
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64;
    /// The seqlock read of `slot` for this key.
    fn read(&self, slot: &Slot) -> Read;
    /// True for an IPv6 key (a read spans all six words of a slot).
    fn is_ipv6(&self) -> bool;
    /// The general key (for the full search).
    fn key(&self) -> FlowKey;
}

impl Probe for FlowKey {
    #[inline(always)]
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64 {
        hasher.hash_one(self)
    }
    #[inline(always)]
    fn read(&self, slot: &Slot) -> Read {
        slot.read(self)
    }
    #[inline(always)]
    fn is_ipv6(&self) -> bool {
        self.family() == Family::V6
    }
    #[inline(always)]
    fn key(&self) -> FlowKey {
        *self
    }
}

impl Probe for Ipv4FlowKey {
    #[inline(always)]
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64 {
        hasher.hash_one(self)
    }
    #[inline(always)]
    fn read(&self, slot: &Slot) -> Read {
        slot.read_ipv4(self)
    }
    #[inline(always)]
    fn is_ipv6(&self) -> bool {
        false
    }
    #[inline(always)]
    fn key(&self) -> FlowKey {
        self.flow_key()
    }
}

/// A lock-free search.
pub(super) enum Found {
    Hit { source: Source, confirmed: u32 },
    Absent,
    Contended,
}

impl<S: BuildHasher> ConcurrentFlowTable<S> {
    /// Does a local socket own the flow? Lock-free, allocation-free, counts nothing shared.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Lookup {
        let place = self.place(key);
        let found = self.find(&place, key);
        self.answer(found, self.clock.now())
    }

    /// [`lookup`](Self::lookup), counted in the caller's `counts`; true when owned.
    #[inline]
    pub fn lookup_counted(&self, key: &FlowKey, counts: &mut LocalCounts) -> bool {
        let lookup = self.lookup(key);
        counts.record(lookup);
        lookup.is_owned()
    }

    /// The entry for `key` (expired embryonic entries included), for the control API.
    pub fn get(&self, key: &FlowKey) -> Option<Entry> {
        match self.find(&self.place(key), key) {
            Found::Hit { source, confirmed } => Some(self.entry(*key, source, confirmed)),
            Found::Absent | Found::Contended => None,
        }
    }

    pub(super) fn entry(&self, key: FlowKey, source: Source, confirmed: u32) -> Entry {
        Entry {
            key,
            source,
            age: Duration::from_secs(self.clock.now().saturating_sub(confirmed).into()),
        }
    }

    /// The lock-free search: both tag words first (their loads overlap), then the slots whose tag
    /// matches. A miss is final only if no slot was busy and no entry moved meanwhile.
    ///
    /// The fast path reads one slot, the first whose tag matches (bucket 1's, else bucket 2's,
    /// chosen without a branch): that is the key's slot unless another key of the pair has the
    /// same 8-bit tag. Anything else (no match there, a busy slot, a move) takes the full search.
    #[inline(always)]
    pub(super) fn find(&self, place: &Place, key: &FlowKey) -> Found {
        let moves = self.moves.load(Ordering::Acquire);
        let tags = self.load_tags(place);
        self.find_in(place, key, tags, moves)
    }

    /// [`find`](Self::find) with the tag words (and the move counter before them) already read.
    #[inline(always)]
    fn find_in(&self, place: &Place, key: &FlowKey, tags: [u64; 2], moves: u64) -> Found {
        self.find_from(key, moves, self.first_slot(place, tags), || {
            self.find_all(place, key, tags, moves)
        })
    }

    /// The slot a lock-free search reads first: the first whose tag matches, in the bucket
    /// [`first_match`] picked; `None` when no tag matches.
    #[inline(always)]
    pub(super) fn first_slot(&self, place: &Place, tags: [u64; 2]) -> Option<&Slot> {
        let (bucket, mask) = first_match(place, tags);
        (mask != 0).then(|| &self.buckets[bucket].slots[mask.trailing_zeros() as usize / 8])
    }

    /// The fast path of a search, for either form of key: the answer of the slot
    /// [`first_slot`](Self::first_slot) picked, or a miss when no tag matched and nothing moved
    /// since `moves` was read (before the tags); else `full`, the full search.
    #[inline(always)]
    pub(super) fn find_from<K: Probe>(
        &self,
        key: &K,
        moves: u64,
        first: Option<&Slot>,
        full: impl FnOnce() -> Found,
    ) -> Found {
        match first {
            None if self.moves.load(Ordering::Relaxed) == moves => return Found::Absent,
            None => {}
            Some(slot) => {
                if let Read::Match { source, confirmed } = key.read(slot) {
                    return Found::Hit { source, confirmed };
                }
            }
        }
        full()
    }

    /// The full search from scratch (the move counter, then the tags): for a batch whose fast
    /// path could not answer, which keeps neither the key's place nor its tags.
    #[cold]
    #[inline(never)]
    pub(super) fn find_again(&self, key: &FlowKey) -> Found {
        let place = self.place(key);
        let moves = self.moves.load(Ordering::Acquire);
        self.find_all(&place, key, self.load_tags(&place), moves)
    }

    /// The full search, retried while it races writers.
    #[cold]
    #[inline(never)]
    fn find_all(&self, place: &Place, key: &FlowKey, tags: [u64; 2], moves: u64) -> Found {
        let (mut tags, mut moves) = (tags, moves);
        for _ in 0..READ_ATTEMPTS {
            if let Some(found) = self.probe(place, key, tags, moves) {
                return found;
            }
            self.stats.read_retry();
            core::hint::spin_loop();
            moves = self.moves.load(Ordering::Acquire);
            tags = self.load_tags(place);
        }
        self.stats.read_failure();
        Found::Contended
    }

    /// Both tag words (independent loads: their cache misses overlap).
    #[inline]
    pub(super) fn load_tags(&self, place: &Place) -> [u64; 2] {
        [
            self.tags[place.b1].load(Ordering::Acquire),
            self.tags[place.b2].load(Ordering::Acquire),
        ]
    }

    /// One attempt: the slots whose tag matches. `None` when the attempt raced a writer (a busy
    /// slot, or a move since `moves` was read before the tags) and must be repeated.
    #[inline]
    fn probe(&self, place: &Place, key: &FlowKey, tags: [u64; 2], moves: u64) -> Option<Found> {
        let mut busy = false;
        for (bucket, tags) in [(place.b1, tags[0]), (place.b2, tags[1])] {
            for index in bucket::indices(bucket::matching(tags, place.tag)) {
                match self.buckets[bucket].slots[index].read(key) {
                    Read::Match { source, confirmed } => {
                        return Some(Found::Hit { source, confirmed })
                    }
                    Read::Busy => busy = true,
                    Read::Other => {}
                }
            }
        }
        // Whatever showed this reader an emptied slot or tag was written after the move's
        // counter bump (release/acquire chain), so a miss caused by a move sees the bump.
        (!busy && self.moves.load(Ordering::Relaxed) == moves).then_some(Found::Absent)
    }

    #[inline]
    pub(super) fn answer(&self, found: Found, now: u32) -> Lookup {
        match found {
            Found::Hit {
                source: Source::Syn,
                confirmed,
            } if policy::syn_expired(confirmed, now, self.syn_lifetime) => Lookup::Expired,
            Found::Hit { source, .. } => Lookup::Owned(source),
            Found::Absent => Lookup::Miss,
            Found::Contended => Lookup::Contended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bucket_with_a_matching_tag_is_searched_first() {
        let place = Place {
            b1: 3,
            b2: 9,
            tag: 7,
        };
        let with = |index: usize, tag: u8| bucket::with_tag(0x0505, index, tag);
        // Bytes 0 and 1 hold tag 5 in both words; tag 7 goes to byte `index`.
        assert_eq!(
            first_match(&place, [with(2, 7), with(4, 7)]),
            (3, 0x80 << 16)
        );
        assert_eq!(
            first_match(&place, [with(2, 6), with(4, 7)]),
            (9, 0x80 << 32)
        );
        assert_eq!(first_match(&place, [with(2, 6), with(4, 6)]), (9, 0));
        assert_eq!(first_match(&place, [with(7, 7), 0]), (3, 0x80 << 56));
        let twice = bucket::with_tag(with(1, 7), 6, 7);
        assert_eq!(first_match(&place, [0, twice]), (9, 0x80 << 8 | 0x80 << 48));
    }
}

//! Inserts: confirming an entry already there, storing a new one in the less loaded bucket of
//! its pair, moving an entry to its other bucket to make room, and evicting a victim when the
//! pair is full.

use super::bucket::{self, Locked, SLOTS};
use super::policy::{self, Victim};
use super::search::Found;
use super::slot::Content;
use super::storage::Place;
use super::{ConcurrentFlowTable, InsertOutcome, Source};
use crate::flow::FlowKey;
use core::hash::BuildHasher;
use std::sync::atomic::Ordering;

impl<S: BuildHasher> ConcurrentFlowTable<S> {
    /// Learns or confirms a flow. See [`InsertOutcome`] and [`Source`] for the rules; an
    /// embryonic insert ([`Source::Syn`]) never changes an existing entry (except to re-arm an
    /// expired embryonic one), since anyone on the network can send a SYN.
    pub fn insert(&self, key: FlowKey, source: Source) -> InsertOutcome {
        let place = self.place(&key);
        // The common confirmation (egress traffic of a known flow, within the same second) writes
        // nothing: answered without a lock.
        if let Found::Hit {
            source: existing,
            confirmed,
        } = self.find(&place, &key)
        {
            if let Some(outcome) = self.unchanged(existing, confirmed, source, self.clock.now()) {
                return outcome;
            }
        }
        let _locked = Locked::pair(&self.locks, place.b1, place.b2);
        let now = self.clock.now();
        if let Some((bucket, index, content)) = self.locked_find(&place, &key) {
            return self.confirm(bucket, index, &content, source, now);
        }
        let content = Content {
            key,
            source,
            confirmed: now,
        };
        self.add(&place, &content)
    }

    /// Inserts an embryonic entry unless the key is already there ([`FlowTable::syn_accepted`]).
    ///
    /// [`FlowTable::syn_accepted`]: crate::flow::FlowTable::syn_accepted
    pub fn insert_syn(&self, key: FlowKey) -> InsertOutcome {
        self.insert(key, Source::Syn)
    }

    /// The outcome of an insert that finds `existing` and needs no write, if it needs none.
    pub(super) fn unchanged(
        &self,
        existing: Source,
        confirmed: u32,
        incoming: Source,
        now: u32,
    ) -> Option<InsertOutcome> {
        if incoming == Source::Syn {
            let rearm =
                existing == Source::Syn && policy::syn_expired(confirmed, now, self.syn_lifetime);
            (!rearm).then_some(InsertOutcome::Present)
        } else {
            (existing >= incoming && confirmed >= now).then_some(InsertOutcome::Refreshed)
        }
    }

    /// Lock holder: an insert of a key already in slot (`bucket`, `index`).
    fn confirm(
        &self,
        bucket: usize,
        index: usize,
        content: &Content,
        incoming: Source,
        now: u32,
    ) -> InsertOutcome {
        let slot = &self.buckets[bucket].slots[index];
        if let Some(outcome) = self.unchanged(content.source, content.confirmed, incoming, now) {
            return outcome;
        }
        if incoming == Source::Syn {
            // An expired embryonic entry, re-armed.
            slot.set_confirmed(now);
            self.stats.insert();
            return InsertOutcome::Inserted;
        }
        let source = content.source.upgraded(incoming);
        if source != content.source {
            slot.set_source(source);
        }
        if content.confirmed < now {
            slot.set_confirmed(now);
        }
        self.stats.refresh();
        InsertOutcome::Refreshed
    }

    /// Lock holder of the key's pair: stores a new entry.
    fn add(&self, place: &Place, content: &Content) -> InsertOutcome {
        let reserved = self.reserve();
        if reserved {
            // The less loaded of the two buckets (the first on a tie).
            let loads = [place.b1, place.b2]
                .map(|b| bucket::occupied_count(self.tags[b].load(Ordering::Relaxed)));
            let order = if loads[1] < loads[0] {
                [place.b2, place.b1]
            } else {
                [place.b1, place.b2]
            };
            for bucket in order {
                let tags = self.tags[bucket].load(Ordering::Relaxed);
                if let Some(index) = bucket::indices(bucket::empty(tags)).next() {
                    self.put(bucket, index, place.tag, content);
                    self.stats.insert();
                    return InsertOutcome::Inserted;
                }
            }
        }
        let victim = policy::victim(
            self.occupied(place),
            content.source,
            content.confirmed,
            self.syn_lifetime,
        );
        // Reusing an expired embryonic entry loses nothing; otherwise try to make room first.
        if reserved && !matches!(victim, Some((_, Victim::ExpiredSyn))) {
            if let Some((bucket, index)) = self.displace(place) {
                self.put(bucket, index, place.tag, content);
                self.stats.insert();
                return InsertOutcome::Inserted;
            }
        }
        if reserved {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        match victim {
            Some((id, victim)) => {
                self.put(id / SLOTS, id % SLOTS, place.tag, content);
                self.removed();
                self.stats.evict(victim);
                self.stats.insert();
                InsertOutcome::Evicted(victim.source())
            }
            None => {
                self.stats.refuse();
                InsertOutcome::Refused
            }
        }
    }

    /// Lock holder: the occupied slots of the key's pair as (bucket * 8 + index, source,
    /// confirmed).
    fn occupied(&self, place: &Place) -> impl Iterator<Item = (usize, Source, u32)> + '_ {
        self.pair(place).flat_map(move |bucket| {
            let tags = self.tags[bucket].load(Ordering::Relaxed);
            bucket::indices(!bucket::empty(tags) & 0x8080_8080_8080_8080).filter_map(move |index| {
                let content = self.buckets[bucket].slots[index].locked_content()?;
                Some((bucket * SLOTS + index, content.source, content.confirmed))
            })
        })
    }

    /// Lock holder of the key's (full) pair: moves one of its entries to that entry's other
    /// bucket, if one has room and its lock is free; returns the freed slot.
    fn displace(&self, place: &Place) -> Option<(usize, usize)> {
        for bucket in self.pair(place) {
            let tags = self.tags[bucket].load(Ordering::Relaxed);
            for index in bucket::indices(!bucket::empty(tags) & 0x8080_8080_8080_8080) {
                let slot = &self.buckets[bucket].slots[index];
                let Some(content) = slot.locked_content() else {
                    continue;
                };
                let other = self.place(&content.key);
                let alternative = if other.b1 == bucket {
                    other.b2
                } else {
                    other.b1
                };
                if alternative == place.b1 || alternative == place.b2 {
                    continue;
                }
                let Some(_locked) = Locked::try_one(&self.locks, alternative) else {
                    continue;
                };
                let free = self.tags[alternative].load(Ordering::Relaxed);
                let Some(to) = bucket::indices(bucket::empty(free)).next() else {
                    continue;
                };
                // Copy, announce, then remove: a reader sees the entry in one place or the other,
                // or sees the counter move and reads again.
                self.put(alternative, to, other.tag, &content);
                self.moves.fetch_add(1, Ordering::AcqRel);
                self.vacate(bucket, index);
                self.stats.displace();
                return Some((bucket, index));
            }
        }
        None
    }

    /// Takes one place of the capacity, if any is left.
    fn reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowTable, L4Proto};
    use crate::table::{Lookup, TableConfig};
    use core::net::Ipv4Addr;

    fn key(i: u32) -> FlowKey {
        FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(192, 0, 2, 10),
            443,
            Ipv4Addr::from(0xc612_0000 + i),
            1024,
        )
    }

    #[test]
    fn a_zero_capacity_table_refuses_everything() {
        let table = ConcurrentFlowTable::new(TableConfig::new(0));
        assert_eq!(table.insert(key(1), Source::Static), InsertOutcome::Refused);
        assert!(!table.owns(&key(1)));
        assert_eq!(table.stats().refusals, 1);
    }

    #[test]
    fn moves_keep_entries_findable() {
        // Fill a small table to capacity: displacements happen, and every entry stays reachable.
        // A fixed seed: with a random one, about 1 fill in 200 needs no displacement at all.
        let table = ConcurrentFlowTable::with_hasher(
            TableConfig::new(4096),
            foldhash::fast::FixedState::with_seed(1),
        );
        let mut stored = Vec::new();
        for i in 0..8192 {
            if table.insert(key(i), Source::Socket).is_stored() {
                stored.push(i);
            }
        }
        assert_eq!(table.len(), 4096);
        assert_eq!(stored.len(), 4096);
        for &i in &stored {
            assert_eq!(table.lookup(&key(i)), Lookup::Owned(Source::Socket), "{i}");
        }
        let stats = table.stats();
        assert!(stats.displacements > 0, "{stats:?}");
        assert_eq!(stats.inserts, 4096);
        assert_eq!(stats.refusals, 4096);
    }
}

//! Egress learning a burst at a time.
//!
//! Nearly every frame the host sends belongs to a flow the table holds and has confirmed this
//! second: its insert changes nothing, and the lock-free search answers it with reads only (the
//! timestamp is rewritten, under the pair's locks, once a second at most, so the eviction order
//! by last confirmation is exactly that of one insert per frame). What such a frame costs is the
//! search itself: a hash, two tag words and a slot, cache misses once the table outgrows the
//! caches. [`ConcurrentFlowTable::learn_many_with`] searches a burst's flows in the stages of a
//! batched lookup, so their misses overlap, and takes a lock only for a flow that needs a write.

use super::batch::Staged;
use super::search::Found;
use super::{ConcurrentFlowTable, InsertOutcome, Prefetch, RecentFlows, Source};
use crate::egress::{any_egress_flow, plain_ipv4_flow, plain_ipv4_words, EgressFlow};
use core::hash::BuildHasher;

/// Flows searched together: a burst.
const GROUP: usize = 32;

/// Up to a group of flows waiting for the table, in order. The array is made on the first push:
/// a burst whose flows the record all holds writes nothing here.
#[derive(Default)]
struct Pending {
    flows: Option<[EgressFlow; GROUP]>,
    len: usize,
}

impl Pending {
    /// Adds `flow` (the caller flushes a full group first).
    #[inline]
    fn push(&mut self, flow: EgressFlow) {
        let flows = self.flows.get_or_insert([flow; GROUP]);
        if let Some(slot) = flows.get_mut(self.len) {
            *slot = flow;
            self.len += 1;
        }
    }

    fn is_full(&self) -> bool {
        self.len == GROUP
    }

    /// The flows pushed since the last [`clear`](Self::clear).
    fn flows(&self) -> &[EgressFlow] {
        self.flows.as_ref().map_or(&[], |flows| &flows[..self.len])
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

impl<S: BuildHasher> ConcurrentFlowTable<S> {
    /// Learns the flows of a burst of the host's egress, in order, exactly as one
    /// [`insert`](Self::insert) per flow would (a handshake as [`Source::Syn`], anything else as
    /// [`Source::Egress`]); `each(i, outcome)` is told what the insert of `flows[i]` did. The
    /// searches of a group of flows overlap (their lines named to `prefetch` a stage ahead), and
    /// a flow whose insert would change nothing (held, confirmed this second) takes no lock and
    /// writes nothing.
    pub fn learn_many_with(
        &self,
        flows: &[EgressFlow],
        prefetch: &impl Prefetch,
        mut each: impl FnMut(usize, InsertOutcome),
    ) {
        for (group, flows) in flows.chunks(GROUP).enumerate() {
            let mut staged = Staged::<GROUP>::default();
            self.stage(flows.iter().map(|flow| flow.key), &mut staged, prefetch);
            for (i, flow) in flows.iter().enumerate() {
                let incoming = if flow.handshake {
                    Source::Syn
                } else {
                    Source::Egress
                };
                // Searched now, after the group's earlier writes: a hit is the table's state at
                // this flow's turn, as for a lone insert (stale tags only send it to the full
                // search or to the insert, which searches again under the locks).
                let unchanged = match self.find_staged(&staged, i, &flow.key) {
                    Found::Hit { source, confirmed } => {
                        self.unchanged(source, confirmed, incoming, self.clock.now())
                    }
                    Found::Absent | Found::Contended => None,
                };
                let outcome = unchanged.unwrap_or_else(|| self.insert_cold(flow, incoming));
                each(group * GROUP + i, outcome);
            }
        }
    }

    /// [`learn_many_with`](Self::learn_many_with) for an lcore that keeps a [`RecentFlows`]: the
    /// flows it holds are skipped (their inserts would change nothing), and the flows the table
    /// confirms as established entries are recorded in it.
    pub fn learn_recent(
        &self,
        flows: &[EgressFlow],
        recent: &mut RecentFlows,
        prefetch: &impl Prefetch,
    ) {
        recent.sync(self.clock.now(), self.removals());
        let mut pending = Pending::default();
        for flow in flows {
            if !self.skips(|recent| recent.holds(flow), &mut pending, recent, prefetch) {
                self.wait(*flow, &mut pending, recent, prefetch);
            }
        }
        self.flush(&mut pending, recent, prefetch);
    }

    /// [`learn_recent`](Self::learn_recent) of the flows `frames` prove (see
    /// [`egress_flow`](crate::egress::egress_flow)), in frame order: a worker's burst of the
    /// host's egress. The record is asked before the frame is parsed, with the flow's words as
    /// they lie in the frame's headers: a frame whose flow it holds needs no insert whatever
    /// its flags say, since a frame that proves nothing (a RST, a fragment) inserts nothing.
    pub fn learn_frames<'f>(
        &self,
        frames: impl Iterator<Item = &'f [u8]>,
        recent: &mut RecentFlows,
        prefetch: &impl Prefetch,
    ) {
        recent.sync(self.clock.now(), self.removals());
        let mut pending = Pending::default();
        for frame in frames {
            // The usual frame: the record is asked with the key's words as they lie in the
            // frame, and only a flow it does not hold is parsed.
            let flow = if let Some(words) = plain_ipv4_words(frame) {
                let held = |recent: &RecentFlows| recent.holds_words(&words);
                if self.skips(held, &mut pending, recent, prefetch) {
                    continue;
                }
                match plain_ipv4_flow(frame) {
                    Some(Some(flow)) => EgressFlow::from(flow),
                    Some(None) | None => continue,
                }
            } else {
                match any_egress_flow(frame) {
                    Some(flow) => {
                        let held = |recent: &RecentFlows| recent.holds(&flow);
                        if self.skips(held, &mut pending, recent, prefetch) {
                            continue;
                        }
                        flow
                    }
                    None => continue,
                }
            };
            self.wait(flow, &mut pending, recent, prefetch);
        }
        self.flush(&mut pending, recent, prefetch);
    }

    /// True when a flow's insert may be skipped: the record holds it (`held`), and no flow
    /// waiting before it can have evicted its entry since. With flows waiting, they are learned
    /// first (an insert may evict, which empties the record) and the record asked again: so the
    /// burst leaves the table exactly as one insert per flow, in order, would.
    #[inline]
    fn skips(
        &self,
        held: impl Fn(&RecentFlows) -> bool,
        pending: &mut Pending,
        recent: &mut RecentFlows,
        prefetch: &impl Prefetch,
    ) -> bool {
        if !held(recent) {
            return false;
        }
        if pending.flows().is_empty() {
            return true;
        }
        self.flush(pending, recent, prefetch);
        held(recent)
    }

    /// Queues a flow for the table (a full group is learned first).
    #[inline]
    fn wait(
        &self,
        flow: EgressFlow,
        pending: &mut Pending,
        recent: &mut RecentFlows,
        prefetch: &impl Prefetch,
    ) {
        if pending.is_full() {
            self.flush(pending, recent, prefetch);
        }
        pending.push(flow);
    }

    /// Learns the waiting flows, then brings the record up to the table's second and removal
    /// count (emptying it if those inserts evicted anything).
    fn flush(&self, pending: &mut Pending, recent: &mut RecentFlows, prefetch: &impl Prefetch) {
        if pending.flows().is_empty() {
            return;
        }
        self.learn_pending(pending.flows(), recent, prefetch);
        pending.clear();
        recent.sync(self.clock.now(), self.removals());
    }

    /// Learns flows the record does not hold, and records those the table now holds as
    /// established entries.
    fn learn_pending(
        &self,
        flows: &[EgressFlow],
        recent: &mut RecentFlows,
        prefetch: &impl Prefetch,
    ) {
        if flows.is_empty() {
            return;
        }
        self.learn_many_with(flows, prefetch, |i, outcome| {
            let established = matches!(
                outcome,
                InsertOutcome::Inserted | InsertOutcome::Refreshed | InsertOutcome::Evicted(_)
            );
            if established && !flows[i].handshake {
                recent.record(&flows[i]);
            }
        });
    }

    /// A flow of the burst that needs a write (new, older than this second, or upgraded).
    #[cold]
    #[inline(never)]
    fn insert_cold(&self, flow: &EgressFlow, source: Source) -> InsertOutcome {
        self.insert(flow.key, source)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowKey, FlowTable, L4Proto};
    use crate::table::{Entry, LoadPrefetch, TableConfig};
    use core::cell::RefCell;
    use core::net::{Ipv4Addr, SocketAddr};
    use foldhash::fast::FixedState;
    use std::time::Duration;

    fn flow(i: u32, handshake: bool) -> EgressFlow {
        let client = Ipv4Addr::from(0xc633_6400 + i);
        let key = FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(203, 0, 113, 10),
            443,
            client,
            40000,
        );
        EgressFlow { key, handshake }
    }

    /// A frame the host sends that proves `flow` (an ACK, or a SYN-ACK for a handshake).
    fn frame(flow: &EgressFlow) -> Vec<u8> {
        let (local, remote) = (flow.key.local(), flow.key.remote());
        let (SocketAddr::V4(local), SocketAddr::V4(remote)) = (local, remote) else {
            unreachable!("IPv4 flows only")
        };
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&local.ip().octets());
        f.extend_from_slice(&remote.ip().octets());
        f.extend_from_slice(&local.port().to_be_bytes());
        f.extend_from_slice(&remote.port().to_be_bytes());
        let flags = if flow.handshake { 0x12 } else { 0x10 };
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f
    }

    fn at<S: BuildHasher>(table: &ConcurrentFlowTable<S>, secs: u64) {
        table.tick(table.created() + Duration::from_secs(secs));
    }

    fn contents<S: BuildHasher>(
        table: &ConcurrentFlowTable<S>,
    ) -> Vec<(FlowKey, Source, Duration)> {
        let mut entries = Vec::new();
        table.for_each(|e: &Entry| entries.push((e.key, e.source, e.age)));
        entries.sort_by_key(|(key, ..)| format!("{key:?}"));
        entries
    }

    #[test]
    fn a_burst_learns_exactly_as_one_insert_per_flow_in_order() {
        // A small table under pressure (evictions, displacements, refusals, expiring handshakes),
        // then fewer flows than it holds (stretches without removals), bursts of 1 to 70 flows
        // (more than one group), repeats within a burst, the clock moving and entries removed
        // between bursts: the batch, the batch behind a record of recent flows and one insert
        // per flow agree on every outcome, on the contents and on the counts.
        let config = TableConfig {
            capacity: 200,
            syn_lifetime: Duration::from_secs(2),
        };
        let new = || ConcurrentFlowTable::with_hasher(config.clone(), FixedState::with_seed(7));
        let (batched, behind_record, from_frames, single) = (new(), new(), new(), new());
        let (mut recent, mut recent_of_frames) = (RecentFlows::default(), RecentFlows::default());
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let (mut outcomes, mut skipped) = ([0usize; 5], 0);
        for burst in 0..800 {
            let tables = [&batched, &behind_record, &from_frames, &single];
            if burst % 7 == 0 {
                tables.iter().for_each(|table| at(table, burst / 7));
            }
            if burst % 50 == 49 {
                let gone = flow(random(120) as u32, false).key;
                let removed = tables.map(|table| table.remove(&gone));
                assert_eq!(removed, [removed[0]; 4]);
            }
            let pool = if burst < 300 { 260 } else { 120 };
            let flows: Vec<EgressFlow> = (0..1 + random(70))
                .map(|_| flow(random(pool) as u32, random(4) == 0))
                .collect();
            let mut got = vec![None; flows.len()];
            batched.learn_many_with(&flows, &LoadPrefetch, |i, outcome| {
                assert!(got[i].replace(outcome).is_none(), "flow {i} told twice");
            });
            recent.sync(behind_record.now_secs(), behind_record.removals());
            skipped += flows.iter().filter(|flow| recent.holds(flow)).count();
            behind_record.learn_recent(&flows, &mut recent, &LoadPrefetch);
            let frames: Vec<Vec<u8>> = flows.iter().map(frame).collect();
            let frames = frames.iter().map(Vec::as_slice);
            from_frames.learn_frames(frames, &mut recent_of_frames, &LoadPrefetch);
            for (flow, got) in flows.iter().zip(&got) {
                let source = if flow.handshake {
                    Source::Syn
                } else {
                    Source::Egress
                };
                let want = single.insert(flow.key, source);
                assert_eq!(*got, Some(want), "burst {burst}, {flow:?}");
                outcomes[match want {
                    InsertOutcome::Inserted => 0,
                    InsertOutcome::Refreshed => 1,
                    InsertOutcome::Present => 2,
                    InsertOutcome::Evicted(_) => 3,
                    InsertOutcome::Refused => 4,
                }] += 1;
            }
            let want = contents(&single);
            assert_eq!(contents(&batched), want, "after burst {burst}");
            assert_eq!(contents(&behind_record), want, "after burst {burst}");
            assert_eq!(contents(&from_frames), want, "after burst {burst}");
        }
        assert!(
            outcomes.iter().all(|&n| n > 0),
            "every outcome seen: {outcomes:?}"
        );
        assert!(skipped > 5000, "the record answered {skipped} flows");
        let counts = |t: &ConcurrentFlowTable<_>| {
            let s = t.stats();
            (
                s.inserts,
                s.refreshes,
                s.evicted_egress,
                s.displacements,
                s.refusals,
                s.removals,
            )
        };
        assert_eq!(counts(&batched), counts(&single));
        assert_eq!(counts(&behind_record), counts(&single));
        assert_eq!(counts(&from_frames), counts(&single));
        let stats = single.stats();
        assert!(
            stats.displacements > 0 && stats.evicted_egress > 0,
            "{stats:?}"
        );
    }

    #[test]
    fn a_flow_confirmed_this_second_is_learned_with_reads_only() {
        let table = ConcurrentFlowTable::new(TableConfig::new(1024));
        let flows: Vec<EgressFlow> = (0..40).map(|i| flow(i, false)).collect();
        table.learn_many_with(&flows, &LoadPrefetch, |_, outcome| {
            assert_eq!(outcome, InsertOutcome::Inserted);
        });
        let learned = table.stats();
        // The same second: every flow is held and confirmed, so nothing is written.
        for _ in 0..3 {
            table.learn_many_with(&flows, &LoadPrefetch, |_, outcome| {
                assert_eq!(outcome, InsertOutcome::Refreshed);
            });
        }
        assert_eq!(table.stats(), learned, "no write, no lock, no count");
        // A second later each flow's timestamp is rewritten once, by the first burst only.
        at(&table, 1);
        table.learn_many_with(&flows, &LoadPrefetch, |_, _| {});
        table.learn_many_with(&flows, &LoadPrefetch, |_, _| {});
        assert_eq!(table.stats().refreshes, learned.refreshes + 40);
        assert!(contents(&table).iter().all(|&(.., age)| age.is_zero()));
    }

    /// Every key in the same two buckets: eviction on one pair, deterministically.
    #[derive(Clone, Default)]
    struct OnePair;

    impl BuildHasher for OnePair {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    struct Constant;

    impl core::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            0x0000_0001_ffff_fff0
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn a_recorded_flow_evicted_earlier_in_the_same_burst_is_learned_again() {
        // One pair of buckets (16 slots): 15 static entries and one egress flow X, which the
        // record holds. A burst [NEW, X]: one insert per frame has NEW evict X (the only entry
        // learning may evict), then X evict NEW. The record must not answer for X once NEW
        // was learned before it.
        let table = ConcurrentFlowTable::with_hasher(TableConfig::new(64), OnePair);
        for i in 100..115 {
            assert_eq!(
                table.insert(flow(i, false).key, Source::Static),
                InsertOutcome::Inserted
            );
        }
        let (x, new) = (flow(1, false), flow(2, false));
        let mut recent = RecentFlows::default();
        table.learn_frames(
            [frame(&x)].iter().map(Vec::as_slice),
            &mut recent,
            &LoadPrefetch,
        );
        assert!(recent.holds(&x));
        let burst = [frame(&new), frame(&x)];
        table.learn_frames(burst.iter().map(Vec::as_slice), &mut recent, &LoadPrefetch);
        assert_eq!(table.get(&x.key).map(|e| e.source), Some(Source::Egress));
        assert_eq!(table.get(&new.key), None, "evicted by X's insert");
        assert_eq!(table.stats().evicted_egress, 2);
        let (mut twin, mut recent) = ([x, new, x], RecentFlows::default());
        let twin_table = ConcurrentFlowTable::with_hasher(TableConfig::new(64), OnePair);
        for i in 100..115 {
            twin_table.insert(flow(i, false).key, Source::Static);
        }
        twin_table.learn_recent(&twin[..1], &mut recent, &LoadPrefetch);
        twin.rotate_left(1);
        twin_table.learn_recent(&twin[..2], &mut recent, &LoadPrefetch);
        assert_eq!(
            contents(&twin_table),
            contents(&table),
            "the slice form alike"
        );
    }

    /// Records what the trait's default tells a table.
    #[derive(Default)]
    struct Told(RefCell<Vec<(FlowKey, &'static str)>>);

    impl FlowTable for Told {
        fn owns(&self, _: &FlowKey) -> bool {
            false
        }
        fn syn_accepted(&self, key: &FlowKey) {
            self.0.borrow_mut().push((*key, "syn"));
        }
        fn egress_seen(&self, key: &FlowKey) {
            self.0.borrow_mut().push((*key, "egress"));
        }
    }

    #[test]
    fn the_trait_s_default_tells_each_flow_in_order_and_the_table_learns_the_same() {
        let flows = [flow(1, true), flow(2, false), flow(1, false), flow(3, true)];
        let mut frames: Vec<Vec<u8>> = flows.iter().map(frame).collect();
        let mut rst = frame(&flow(4, false));
        rst[14 + 20 + 13] = 0x14;
        frames.insert(2, rst);
        let told = Told::default();
        told.egress_frames(
            frames.iter().map(Vec::as_slice),
            &mut RecentFlows::default(),
            &LoadPrefetch,
        );
        assert_eq!(
            told.0.into_inner(),
            [
                (flows[0].key, "syn"),
                (flows[1].key, "egress"),
                (flows[2].key, "egress"),
                (flows[3].key, "syn")
            ]
        );
        let table = ConcurrentFlowTable::new(TableConfig::new(64));
        table.egress_frames(
            frames.iter().map(Vec::as_slice),
            &mut RecentFlows::default(),
            &LoadPrefetch,
        );
        assert_eq!(table.len(), 3, "the RST taught nothing");
        let sources: Vec<_> = [1, 2, 3]
            .map(|i| table.get(&flow(i, false).key).map(|e| e.source))
            .into();
        assert_eq!(
            sources,
            [
                Some(Source::Egress),
                Some(Source::Egress),
                Some(Source::Syn)
            ]
        );
    }
}

//! A burst of frames planned together: every frame's fast-path [`Plan`], then the flow-table
//! answers for all their flows in one batch, before the first frame is finished.
//!
//! Looked up one frame at a time, a lookup in a table larger than the caches waits for memory
//! twice (the tag word, then the slot) and nothing else of that frame can proceed meanwhile. In a
//! batch the table prefetches every key's lines stage by stage, so the misses of the whole burst
//! are in flight together; and since a plan carries everything the headers said, no frame is
//! parsed twice (chanced on the throughput mix: 26.9 -> 30.3 Mpps, BENCHMARKS.md).
//!
//! In front of the table sits the owner's [`FlowCache`]: the flows it found owned lately, which
//! it answers from 64 KiB of its own (chanced on the throughput mix: 35.6 -> 38.0 Mpps). The cache
//! is asked as each frame is planned, with the key still in registers, and its answer goes into
//! the plan itself; only the flows it does not hold are kept for the table's batch (a separate
//! pass that gathered every key, probed the cache and walked the answers back to the frames cost
//! 16 instructions per packet more in chanced's worker: 516 against 501, counted by
//! `deploy/bench-worker-instructions.sh`).

use crate::counters::Counter;
use crate::engine::Engine;
use crate::fast::Plan;
use crate::flow::FlowTable;
use crate::flow_cache::FlowCache;
use crate::table::Prefetch;

/// The most frames a burst holds (DPDK's usual RX burst).
pub const BURST_MAX: usize = 32;

/// One burst's plans and the table's answers, and the owner's [`FlowCache`] in front of the
/// table. Kept by its owner (one per lcore) and refilled in place for every burst (it is about
/// 3 KiB, and the cache's 64 KiB on the heap).
#[derive(Debug, Clone)]
pub struct BurstPlan {
    /// [`Plan::none`] for a frame not planned.
    plans: [Plan; BURST_MAX],
    /// Frames in the last fill.
    len: usize,
    /// The last fill's flows, and how many of them are owned.
    flows: usize,
    owned: usize,
    /// The flows this owner found owned lately.
    cache: FlowCache,
}

impl Default for BurstPlan {
    fn default() -> Self {
        Self {
            plans: [Plan::none(); BURST_MAX],
            len: 0,
            flows: 0,
            owned: 0,
            cache: FlowCache::default(),
        }
    }
}

impl BurstPlan {
    /// Plans up to [`BURST_MAX`] frames (an empty one is not planned: a runtime passes that
    /// for a frame it decides in full or not at all) and asks `table` about all their flows at once, naming the lines it will read to
    /// `prefetch`. The frames' plans and answers are then
    /// [`answers`](Self::answers).
    pub fn fill<'a, F, P>(
        &mut self,
        engine: &Engine,
        table: &F,
        frames: impl IntoIterator<Item = &'a [u8]>,
        prefetch: &P,
    ) where
        F: FlowTable,
        P: Prefetch,
    {
        // The flow cache is asked as each frame is planned, its key still in registers; only
        // the flows it does not hold are noted for the table, asked in one batch after.
        let on = self.cache.begin(table);
        let (mut len, mut flows, mut owned) = (0, 0, 0);
        for (slot, frame) in self.plans.iter_mut().zip(frames) {
            let mut plan = engine.plan_in_burst(frame).unwrap_or_else(Plan::none);
            if let Some(key) = plan.flow().copied() {
                if on && self.cache.contains(&key) {
                    plan.set_owned();
                    owned += 1;
                } else {
                    self.cache.missed(&key, len as u8);
                }
                flows += 1;
            } else if let Some(key) = plan.syn_flow() {
                // Its insert, when the frame is finished, would wait for these lines.
                table.prefetch_for_insert(key, prefetch);
            }
            *slot = plan;
            len += 1;
        }
        self.cache.resolve(table, flows, prefetch);
        for (at, answer) in self.cache.resolved() {
            if let (true, Some(plan)) = (answer, self.plans.get_mut(usize::from(at))) {
                plan.set_owned();
                owned += 1;
            }
        }
        self.len = len;
        self.flows = flows;
        self.owned = owned;
    }

    /// Every frame of the last fill in order: its plan and, when the plan has a flow, the
    /// table's answer for it (`false` when it has none); `None` for a frame that was not planned.
    #[inline]
    pub fn answers(&self) -> impl Iterator<Item = Option<(&Plan, bool)>> + '_ {
        self.plans[..self.len]
            .iter()
            .map(|plan| (!plan.is_none()).then_some((plan, plan.owned())))
    }

    /// Counts for the last fill what [`Engine::process_planned`] counts for every planned flow
    /// (the frame processed, its inner IPv4 and TCP), once its planned frames were each finished
    /// with [`Engine::process_planned_in_burst`], which counts the rest.
    pub fn count_finished(&self, engine: &mut Engine) {
        let counters = engine.counters_mut();
        let flows = self.flows as u64;
        counters.bump_by(Counter::ProcessedPacketsTotal, flows);
        counters.bump_by(Counter::L3ProtocolPacketsTotalIpv4, flows);
        counters.bump_by(Counter::L4ProtocolPacketsTotalTcp, flows);
    }

    /// How many flows the last fill asked about, and how many of them are owned: a burst's
    /// lookups and hits, to count once per burst rather than per frame.
    pub fn answer_counts(&self) -> (usize, usize) {
        (self.flows, self.owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::flow::{ExactMatchTable, FlowKey, Ipv4FlowKey, L4Proto};
    use crate::table::LoadPrefetch;
    use chance_testkit::mix;
    use core::cell::RefCell;

    /// The mix's engine, and a table that owns half of the mix's 1000 flows.
    fn mix_engine_and_table() -> (Engine, ExactMatchTable) {
        let mut config = EngineConfig::with_address(mix::ENCAP);
        config.port = mix::GUE_PORT;
        let owned = (0..500)
            .map(|i| {
                let (addr, port) = mix::client(i);
                FlowKey::v4(L4Proto::Tcp, mix::VIP, mix::VIP_PORT, addr, port)
            })
            .collect();
        (Engine::new(config), owned)
    }

    #[test]
    fn a_burst_s_plans_and_answers_are_those_of_each_frame_alone() {
        let (engine, owned) = mix_engine_and_table();
        let (frames, _) = mix::frames(BURST_MAX * 4, 1000, 5);
        let mut burst = BurstPlan::default();
        for chunk in frames.chunks(BURST_MAX - 3) {
            // Every fifth frame is held back from planning, as a runtime holds a multi-segment one.
            let offered =
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, frame)| if i % 5 != 4 { frame.as_slice() } else { &[] });
            burst.fill(&engine, &owned, offered, &LoadPrefetch);
            let answers: Vec<_> = burst
                .answers()
                .map(|a| a.map(|(plan, owned)| (plan.as_planned(), owned)))
                .collect();
            assert_eq!(answers.len(), chunk.len());
            let flow_answers: Vec<bool> = answers
                .iter()
                .flatten()
                .filter(|(plan, _)| plan.flow().is_some())
                .map(|&(_, owned)| owned)
                .collect();
            let hits = flow_answers.iter().filter(|&&owned| owned).count();
            assert_eq!(burst.answer_counts(), (flow_answers.len(), hits));
            for (i, frame) in chunk.iter().enumerate() {
                let want = (i % 5 != 4)
                    .then(|| engine.plan(frame))
                    .flatten()
                    .map(|plan| {
                        let answer = plan.flow().is_some_and(|key| owned.owns(&key.flow_key()));
                        (plan, answer)
                    });
                assert_eq!(answers[i], want, "{i}");
            }
        }
        assert_eq!(BurstPlan::default().answers().count(), 0);
        assert_eq!(BurstPlan::default().answer_counts(), (0, 0));
    }

    /// The mix's table, recording the flows it is asked to warm for an insert and the SYNs
    /// accepted.
    struct Warmed {
        owned: ExactMatchTable,
        warmed: RefCell<Vec<FlowKey>>,
        inserted: RefCell<Vec<FlowKey>>,
    }

    impl FlowTable for Warmed {
        fn owns(&self, key: &FlowKey) -> bool {
            self.owned.owns(key)
        }
        fn prefetch_for_insert<P: Prefetch>(&self, key: &Ipv4FlowKey, _: &P) {
            self.warmed.borrow_mut().push(key.flow_key());
        }
        fn syn_accepted(&self, key: &FlowKey) {
            self.inserted.borrow_mut().push(*key);
        }
    }

    #[test]
    fn a_burst_warms_the_table_for_each_syn_it_will_insert_and_for_nothing_else() {
        let (mut engine, owned) = mix_engine_and_table();
        let table = Warmed {
            owned,
            warmed: RefCell::default(),
            inserted: RefCell::default(),
        };
        let (frames, _) = mix::frames(BURST_MAX * 8, 1000, 5);
        let mut burst = BurstPlan::default();
        for chunk in frames.chunks(BURST_MAX) {
            burst.fill(
                &engine,
                &table,
                chunk.iter().map(Vec::as_slice),
                &LoadPrefetch,
            );
            for (frame, answer) in chunk.iter().zip(burst.answers()) {
                let mut frame = frame.clone();
                match answer {
                    Some((plan, is_owned)) => {
                        engine.process_planned_in_burst(&mut frame, plan, is_owned, &table);
                    }
                    None => {
                        engine.process_in_full(&mut frame, &table);
                    }
                }
            }
        }
        let (warmed, inserted) = (table.warmed.into_inner(), table.inserted.into_inner());
        assert!(inserted.len() >= 8, "the mix has SYNs: {}", inserted.len());
        assert_eq!(warmed, inserted);
    }

    #[test]
    fn a_burst_finished_and_counted_together_counts_as_its_frames_processed_one_by_one() {
        let (mut by_burst, owned) = mix_engine_and_table();
        let mut one_by_one = by_burst.clone();
        let (frames, _) = mix::frames(BURST_MAX * 4, 1000, 5);
        let mut burst = BurstPlan::default();
        for chunk in frames.chunks(BURST_MAX - 5) {
            burst.fill(
                &by_burst,
                &owned,
                chunk.iter().map(Vec::as_slice),
                &LoadPrefetch,
            );
            for (frame, answer) in chunk.iter().zip(burst.answers()) {
                let (mut in_burst, mut alone) = (frame.clone(), frame.clone());
                let (got, want) = match answer {
                    Some((plan, is_owned)) => (
                        by_burst.process_planned_in_burst(&mut in_burst, plan, is_owned, &owned),
                        one_by_one.process_planned(&mut alone, plan, is_owned, &owned),
                    ),
                    None => (
                        by_burst.process_in_full(&mut in_burst, &owned),
                        one_by_one.process_in_full(&mut alone, &owned),
                    ),
                };
                assert_eq!((got, in_burst), (want, alone));
            }
            burst.count_finished(&mut by_burst);
            assert_eq!(by_burst.counters(), one_by_one.counters());
        }
        for counter in [
            Counter::L3ProtocolPacketsTotalIpv4,
            Counter::AcceptedPacketsTotalEstablished,
            Counter::ForwardedPacketsTotalGue,
        ] {
            assert!(by_burst.counters().get(counter) > 0, "{counter}");
        }
    }
}

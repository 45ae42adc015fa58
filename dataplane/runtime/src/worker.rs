//! The lcore loop: NIC RX -> engine -> kernel port or NIC TX; kernel port RX -> NIC TX.
//!
//! Each worker owns one queue pair on each port, its own engine (and so its own counters) and a
//! shared read-only flow table. Per burst (up to [`BURST_SIZE`] frames): receive; plan every
//! packet (`Engine::plan`, the headers read once) and answer all the planned flows at once
//! (`BurstPlan`: the lcore's flow cache first, then the table in one prefetched batch); decide and
//! rewrite every packet in place on the mbuf (adj/trim, no copy), the planned ones from their plan
//! and answer, the rest through the full procedure; transmit in batches, free and count what a
//! full TX queue refused. The counters are published every few bursts and at every idle poll.
//! No lock, no allocation, no syscall on this path.

use crate::capture::{Capture, CapturePort, CaptureSlot, CaptureVerdict};
use crate::dataplane::WorkerSeat;
use crate::egress::EgressLearning;
use crate::idle::Idle;
pub use crate::idle::{IdleExit, IdlePolicy};
use crate::learned::LearnedFlows;
use crate::mbuf::{Mbuf, MbufBurst, BURST_SIZE};
use crate::port::PortQueue;
use crate::prefetch::CachePrefetch;
use crate::stats::{LcoreStats, PathCounter, PathCounters};
use chance_engine::burst::{BurstPlan, BURST_MAX};
use chance_engine::{Counters, Engine, FlowKey, FlowTable, Ipv4FlowKey, Outcome, Plan, Verdict};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

// Every RX burst fits one plan.
const _: () = assert!(BURST_SIZE <= BURST_MAX);

/// What a worker counted, returned when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerReport {
    /// The lcore it ran on.
    pub lcore: u32,
    /// Its engine's counters.
    pub engine: Counters,
    /// Its path counters.
    pub path: PathCounters,
}

/// One worker lcore's state.
#[derive(Debug)]
pub struct Worker<F> {
    engine: Engine,
    flows: Arc<F>,
    nic: PortQueue,
    kernel: PortQueue,
    stats: Arc<LcoreStats>,
    stop: Arc<AtomicBool>,
    idle: Idle,
    /// Read once per burst: the control plane flips it live (SIGHUP reload).
    learn_egress: Arc<AtomicBool>,
    path: PathCounters,
    /// The current RX burst's plans and flow-table answers.
    planned: BurstPlan,
    /// Read once per burst: a live capture the control plane may arm.
    capture: Arc<CaptureSlot>,
    /// The flows of the current kernel-port burst, for egress learning.
    egress: EgressLearning,
}

impl<F: FlowTable> Worker<F> {
    /// A worker over one queue pair of each port.
    pub fn new(
        engine: Engine,
        flows: Arc<F>,
        nic: PortQueue,
        kernel: PortQueue,
        stats: Arc<LcoreStats>,
        stop: Arc<AtomicBool>,
        idle_exit: IdleExit,
    ) -> Self {
        Self {
            engine,
            flows,
            nic,
            kernel,
            stats,
            stop,
            idle: Idle::new(IdlePolicy::Busy, idle_exit),
            learn_egress: Arc::new(AtomicBool::new(false)),
            path: PathCounters::default(),
            planned: BurstPlan::default(),
            capture: Arc::new(CaptureSlot::default()),
            egress: EgressLearning::default(),
        }
    }

    /// A worker in the seat the runtime made for it: its queue pairs, counters, stop flag and
    /// idle behaviour.
    pub fn seated(engine: Engine, flows: Arc<F>, seat: WorkerSeat) -> Self {
        Self::new(
            engine,
            flows,
            seat.nic,
            seat.kernel,
            seat.stats,
            seat.stop,
            seat.idle_exit,
        )
        .idle_policy(seat.idle)
    }

    /// Spends empty polls as `policy` says (the default: [`IdlePolicy::Busy`]).
    pub fn idle_policy(mut self, policy: IdlePolicy) -> Self {
        self.idle.set_policy(policy);
        self
    }

    /// Learns the flows of the host's egress (every TCP or UDP packet the kernel sends through
    /// the kernel port proves a local socket owns its flow) before sending it on.
    pub fn learning_egress(self, on: bool) -> Self {
        self.learning_egress_switch(Arc::new(AtomicBool::new(on)))
    }

    /// [`learning_egress`](Self::learning_egress) behind a switch the control plane may flip
    /// while the worker runs; the worker reads it once per burst (a relaxed load, no lock).
    pub fn learning_egress_switch(mut self, switch: Arc<AtomicBool>) -> Self {
        self.learn_egress = switch;
        self
    }

    /// Copies the frames a capture armed in `slot` asks for (see [`crate::capture`]); the worker
    /// reads the slot's flag once per burst.
    pub fn capturing(mut self, slot: Arc<CaptureSlot>) -> Self {
        self.capture = slot;
        self
    }

    /// Polls until the stop flag is raised (or the ports stay idle, per [`IdleExit`]). Nothing is
    /// left in flight when it returns: every burst is transmitted or freed and counted in place.
    pub fn run(mut self, lcore: u32) -> WorkerReport {
        let mut rx = MbufBurst::new();
        let mut to_nic = MbufBurst::new();
        let mut to_kernel = MbufBurst::new();
        while !self.stop.load(Ordering::Relaxed) {
            let from_nic = self.nic.rx_burst(&mut rx);
            self.path.add(PathCounter::NicRx, from_nic as u64);
            if from_nic > 0 {
                // One counting view per burst: its hits and misses reach the counters once.
                let flows = CountingFlows::new(&*self.flows);
                // A multi-segment frame is dropped before it is decided: nothing (empty) to plan.
                let frames = rx
                    .iter()
                    .map(|m| if m.is_contiguous() { m.data() } else { &[] });
                self.planned
                    .fill(&self.engine, &*self.flows, frames, &CachePrefetch);
                let (asked, owned) = self.planned.answer_counts();
                flows.hits.set(owned as u64);
                flows.misses.set((asked - owned) as u64);
                if let Some(capture) = self.capture.armed() {
                    let outputs = (&mut to_nic, &mut to_kernel);
                    let burst = (&mut rx, &self.planned);
                    captured_burst(
                        &capture,
                        &mut self.engine,
                        &flows,
                        &mut self.path,
                        burst,
                        outputs,
                    );
                } else {
                    for (m, answer) in rx.drain().zip(self.planned.answers()) {
                        let decision = decision(answer, &flows);
                        handle(
                            &mut self.engine,
                            decision,
                            &flows,
                            &mut self.path,
                            m,
                            &mut to_nic,
                            &mut to_kernel,
                        );
                    }
                }
                self.planned.count_finished(&mut self.engine);
                self.path.add(PathCounter::FlowHits, flows.hits.get());
                self.path.add(PathCounter::FlowMisses, flows.misses.get());
            }
            transmit(
                &mut self.kernel,
                &mut to_kernel,
                &mut self.path,
                PathCounter::KernelTx,
                PathCounter::KernelTxFull,
            );
            transmit(
                &mut self.nic,
                &mut to_nic,
                &mut self.path,
                PathCounter::NicTx,
                PathCounter::NicTxFull,
            );

            // The host's own traffic leaves untouched, after it taught the table its flows: the
            // entry is visible to every lcore before the packet is even sent, so before any answer.
            let from_kernel = self.kernel.rx_burst(&mut rx);
            self.path.add(PathCounter::KernelRx, from_kernel as u64);
            if from_kernel > 0 {
                if let Some(capture) = self.capture.armed() {
                    captured_egress(&capture, &rx);
                }
            }
            if from_kernel > 0 && self.learn_egress.load(Ordering::Relaxed) {
                self.egress.learn(&*self.flows, &rx);
            }
            transmit(
                &mut self.nic,
                &mut rx,
                &mut self.path,
                PathCounter::NicTx,
                PathCounter::NicTxFull,
            );

            let (stats, engine, path) = (&self.stats, &self.engine, &self.path);
            if !self.idle.end_poll(from_nic + from_kernel, || {
                stats.publish(engine.counters(), path)
            }) {
                break;
            }
        }
        self.stats.publish(self.engine.counters(), &self.path);
        WorkerReport {
            lcore,
            engine: self.engine.counters().clone(),
            path: self.path,
        }
    }
}

/// The NIC burst's loop while a capture is armed: each frame the capture wants is copied as
/// received, then offered with the verdict the engine gave it. Out of line, so that the unarmed
/// loop's code stays as it was.
#[cold]
#[inline(never)]
fn captured_burst<F: FlowTable + ?Sized>(
    capture: &Capture,
    engine: &mut Engine,
    flows: &CountingFlows<'_, F>,
    path: &mut PathCounters,
    (rx, planned): (&mut MbufBurst, &BurstPlan),
    (to_nic, to_kernel): (&mut MbufBurst, &mut MbufBurst),
) {
    for (m, answer) in rx.drain().zip(planned.answers()) {
        let decision = decision(answer, flows);
        let snapshot = m
            .is_contiguous()
            .then(|| capture.snapshot(CapturePort::Nic, m.data()))
            .flatten();
        let verdict = handle(engine, decision, flows, path, m, to_nic, to_kernel);
        if let Some(snapshot) = snapshot {
            capture.offer(CapturePort::Nic, CaptureVerdict::Engine(verdict), snapshot);
        }
    }
}

/// Copies the kernel port's frames the capture wants (the host's egress, sent on untouched).
#[cold]
#[inline(never)]
fn captured_egress(capture: &Capture, rx: &MbufBurst) {
    for m in rx.iter().filter(|m| m.is_contiguous()) {
        if let Some(snapshot) = capture.snapshot(CapturePort::Kernel, m.data()) {
            capture.offer(CapturePort::Kernel, CaptureVerdict::Egress, snapshot);
        }
    }
}

/// Runs one packet through the engine and queues the result; drops free the mbuf. Returns the
/// verdict (`Drop` for what the engine never saw or could not be rewritten). Always inlined:
/// with the capture's loop calling it too, it would otherwise become a call per packet.
#[inline(always)]
fn handle<F: FlowTable + ?Sized>(
    engine: &mut Engine,
    decision: Decision<'_>,
    flows: &CountingFlows<'_, F>,
    path: &mut PathCounters,
    mut m: Mbuf,
    to_nic: &mut MbufBurst,
    to_kernel: &mut MbufBurst,
) -> Verdict {
    // Each path applies its own outcome: merged into one, the planned path's outcome (known
    // verdicts, in registers) would go through memory and a jump table with the full one's.
    match decision {
        // Planned frames were contiguous when planned.
        Decision::Planned(plan, owned) => {
            // Its length as the engine sees it (the data's; `len` reads one more field).
            let frame = m.data_mut();
            let len = frame.len();
            // What every planned frame counts is counted for the burst (`count_finished`).
            let outcome = engine.process_planned_in_burst(frame, plan, owned, flows);
            apply(outcome, len, path, m, to_nic, to_kernel)
        }
        Decision::InFull => {
            if !m.is_contiguous() {
                path.add(PathCounter::NicRxMultiSegment, 1);
                return Verdict::Drop;
            }
            let len = m.len();
            // Not planned: `plan` already found the frame off the fast path; do not ask it again.
            let outcome = engine.process_in_full(m.data_mut(), flows);
            apply(outcome, len, path, m, to_nic, to_kernel)
        }
    }
}

/// Queues `m` as `outcome` says (`len`: its length before the engine saw it); drops free it.
#[inline(always)]
fn apply(
    outcome: Outcome,
    len: usize,
    path: &mut PathCounters,
    mut m: Mbuf,
    to_nic: &mut MbufBurst,
    to_kernel: &mut MbufBurst,
) -> Verdict {
    let out = match outcome.verdict {
        Verdict::Drop => {
            path.add(PathCounter::EngineDrops, 1);
            return Verdict::Drop;
        }
        Verdict::Forward => to_nic,
        Verdict::Accept | Verdict::Pass => to_kernel,
    };
    // The engine's result lies inside the frame and only shrinks it: this cannot fail. Most
    // passes and forwards keep the whole frame and need no update at all.
    if (outcome.frame.start != 0 || outcome.frame.end != len) && m.shrink_to(outcome.frame).is_err()
    {
        path.add(PathCounter::RewriteFailed, 1);
        return Verdict::Drop;
    }
    // Each output burst receives at most one RX burst, so it has room.
    if out.push(m).is_err() {
        path.add(PathCounter::RewriteFailed, 1);
        return Verdict::Drop;
    }
    outcome.verdict
}

/// How one packet of the burst is decided.
enum Decision<'a> {
    /// The fast path, with the table's answer for its flow.
    Planned(&'a Plan, bool),
    /// The full decision procedure, which asks the table itself.
    InFull,
}

/// A packet's decision, from its plan and answer in the burst. The answers found ahead are
/// counted as the table's, once per burst; a flow found unowned that a packet of this burst has
/// since taught the table (a SYN's embryonic entry) is asked again, so the burst decides as if
/// its packets had been looked up one by one.
#[inline]
fn decision<'a, F: FlowTable + ?Sized>(
    answer: Option<(&'a Plan, bool)>,
    flows: &CountingFlows<'_, F>,
) -> Decision<'a> {
    let Some((plan, owned)) = answer else {
        return Decision::InFull;
    };
    match plan.flow() {
        Some(key) if !owned && flows.learned.may_hold(key) => {
            Decision::Planned(plan, ask_again(key, flows))
        }
        _ => Decision::Planned(plan, owned),
    }
}

/// The table's answer now for a flow the burst found unowned ahead (rare: only after a SYN of
/// the same burst). Counted as a miss with the burst; asked again, it counts as the table now
/// answers.
// Cold and out of line: the lookup's call would otherwise shape the register use of every frame.
#[cold]
#[inline(never)]
fn ask_again<F: FlowTable + ?Sized>(key: &Ipv4FlowKey, flows: &CountingFlows<'_, F>) -> bool {
    flows.misses.set(flows.misses.get() - 1);
    flows.owns(&key.flow_key())
}

/// Counts one burst's flow-table answers in plain cells (the lcore publishes them with its other
/// counters), so lookups stay free of shared writes.
struct CountingFlows<'a, F: ?Sized> {
    table: &'a F,
    hits: Cell<u64>,
    misses: Cell<u64>,
    /// The flows this burst taught the table.
    learned: LearnedFlows,
}

impl<'a, F: FlowTable + ?Sized> CountingFlows<'a, F> {
    fn new(table: &'a F) -> Self {
        Self {
            table,
            hits: Cell::new(0),
            misses: Cell::new(0),
            learned: LearnedFlows::default(),
        }
    }

    /// Counts one answer of the table.
    #[inline]
    fn count(&self, owned: bool) {
        let counter = if owned { &self.hits } else { &self.misses };
        counter.set(counter.get() + 1);
    }
}

impl<F: FlowTable + ?Sized> FlowTable for CountingFlows<'_, F> {
    #[inline]
    fn owns(&self, key: &FlowKey) -> bool {
        let owned = self.table.owns(key);
        self.count(owned);
        owned
    }
    fn is_syncookie(&self, key: &FlowKey, seq: u32, ack: u32) -> bool {
        self.table.is_syncookie(key, seq, ack)
    }
    fn syn_accepted(&self, key: &FlowKey) {
        self.learned.add(key);
        self.table.syn_accepted(key)
    }
    fn egress_seen(&self, key: &FlowKey) {
        self.learned.add(key);
        self.table.egress_seen(key)
    }
}

/// Sends `burst` on `queue`; what the queue refuses is freed and counted as `full`.
#[inline]
pub(crate) fn transmit(
    queue: &mut PortQueue,
    burst: &mut MbufBurst,
    path: &mut PathCounters,
    sent: PathCounter,
    full: PathCounter,
) {
    if burst.is_empty() {
        return;
    }
    let n = queue.tx_burst(burst);
    path.add(sent, n as u64);
    let refused = burst.clear();
    path.add(full, refused as u64);
}

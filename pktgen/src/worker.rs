//! The lcore loop: per iteration, one transmit burst (unless draining) and one receive burst,
//! classified and freed; the counters are published after every iteration that did something.
//!
//! The main lcore steers every worker through the phases warm-up -> measure -> drain -> stop.
//! Each worker notes, at its own transition, the sequence number that opens and closes its
//! measurement window and its counters and TSC at that instant, so the window is exact per
//! worker; packets are counted as received in the window by their stamp (sent in the window,
//! whenever they arrive, drain included).

use crate::rx::{classify, Class};
use crate::stats::{Counters, Histogram, Shared};
use crate::templates::Templates;
use crate::tx::Transmitter;
use chance_runtime::generator::tsc;
use chance_runtime::{MbufBurst, PortQueue};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Sending, not measured yet.
pub const WARMUP: u8 = 0;
/// Sending, measured.
pub const MEASURE: u8 = 1;
/// Not sending; still receiving (what is in flight).
pub const DRAIN: u8 = 2;
/// Leave the loop.
pub const STOP: u8 = 3;

/// Where a worker receives.
#[derive(Debug)]
pub enum RxQueue {
    /// Nowhere (transmit only).
    None,
    /// On the transmit queue's port, same queue id.
    Same,
    /// On another port's queue.
    Other(PortQueue),
}

/// One worker lcore's state.
#[derive(Debug)]
pub struct Worker {
    /// Index among the workers (the top byte of its sequence numbers).
    pub index: u8,
    /// Transmit (and, with [`RxQueue::Same`], receive) queue.
    pub txq: PortQueue,
    /// Receive queue.
    pub rxq: RxQueue,
    /// Transmit state.
    pub tx: Transmitter,
    /// The templates (for classification).
    pub templates: Arc<Templates>,
    /// Every worker's shared block, by index (measurement windows of received stamps).
    pub all: Arc<Vec<Arc<Shared>>>,
    /// The phase, set by the main lcore.
    pub phase: Arc<AtomicU8>,
}

/// A counter snapshot at a phase change.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    /// The counters then.
    pub counters: Counters,
    /// The TSC then.
    pub tsc: u64,
    /// The next sequence number then.
    pub seq: u64,
    /// The worker thread's CPU time then (ns, `/proc/thread-self/schedstat`), when readable.
    pub cpu_ns: Option<u64>,
    /// Wall-clock time then.
    pub wall: std::time::Instant,
}

/// The calling thread's CPU time in nanoseconds (the first field of its schedstat).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What a worker hands back when it stops.
#[derive(Debug, Clone)]
pub struct WorkerResult {
    /// The worker's index.
    pub index: u8,
    /// When the measurement began (None: stopped during warm-up).
    pub measure: Option<Mark>,
    /// When the drain began.
    pub drain: Option<Mark>,
    /// At the end.
    pub end: Mark,
    /// Latency (TSC cycles) of the stamped packets sent in the window.
    pub latency: Histogram,
}

impl Worker {
    /// Runs until the phase is [`STOP`].
    pub fn run(mut self) -> WorkerResult {
        let me = Arc::clone(&self.all[usize::from(self.index)]);
        let mut c = Counters::default();
        let mut seen = WARMUP;
        let mut rx = MbufBurst::new();
        let mut latency = Histogram::default();
        let (mut measure, mut drain) = (None, None);
        // One TSC read per iteration: an iteration's cycles run to the next one's start.
        let mut prev = tsc();
        let mut prev_busy = false;
        loop {
            let phase = self.phase.load(Ordering::Relaxed);
            if phase != seen {
                let mark = |c: &Counters, seq| Mark {
                    counters: *c,
                    tsc: tsc(),
                    seq,
                    cpu_ns: thread_cpu_ns(),
                    wall: std::time::Instant::now(),
                };
                if phase >= MEASURE && seen < MEASURE {
                    me.open_window(self.tx.next_seq());
                    measure = Some(mark(&c, self.tx.next_seq()));
                }
                if phase >= DRAIN && seen < DRAIN {
                    me.close_window(self.tx.next_seq());
                    drain = Some(mark(&c, self.tx.next_seq()));
                }
                seen = phase;
                if phase >= STOP {
                    break;
                }
            }
            let t0 = tsc();
            let spent = t0.wrapping_sub(prev);
            c.loop_cycles += spent;
            if prev_busy {
                c.busy_cycles += spent;
            }
            prev = t0;
            let mut did = 0;
            if seen < DRAIN {
                let txq = &mut self.txq;
                did += self.tx.step(t0, &mut c, |b| txq.tx_burst(b));
            }
            let got = match &mut self.rxq {
                RxQueue::None => 0,
                RxQueue::Same => self.txq.rx_burst(&mut rx),
                RxQueue::Other(q) => q.rx_burst(&mut rx),
            };
            if got > 0 {
                did += got;
                self.receive(&mut rx, &mut c, &mut latency, seen >= MEASURE);
            }
            prev_busy = did > 0;
            if prev_busy {
                me.publish(&c);
            }
        }
        me.publish(&c);
        WorkerResult {
            index: self.index,
            measure,
            drain,
            end: Mark {
                counters: c,
                tsc: tsc(),
                seq: self.tx.next_seq(),
                cpu_ns: thread_cpu_ns(),
                wall: std::time::Instant::now(),
            },
            latency,
        }
    }

    /// Classifies and frees a received burst.
    #[inline]
    fn receive(
        &self,
        rx: &mut MbufBurst,
        c: &mut Counters,
        latency: &mut Histogram,
        measuring: bool,
    ) {
        let now = tsc();
        for m in rx.iter() {
            c.rx_packets += 1;
            c.rx_bytes += m.len() as u64;
            let (class, stamp) = classify(m.data(), &self.templates);
            c.rx_class[class as usize] += 1;
            match stamp {
                Some(s) => {
                    let sender = self.all.get((s.seq >> 56) as usize);
                    if sender.is_some_and(|w| w.in_window(s.seq)) {
                        c.rx_window[class as usize] += 1;
                        if s.tsc != 0 && now >= s.tsc {
                            latency.record(now - s.tsc);
                        }
                    }
                }
                None if measuring => c.rx_window[Class::Other as usize] += 1,
                None => {}
            }
        }
        rx.clear();
    }
}

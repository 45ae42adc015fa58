//! The lcore loop of a stateless frame router: NIC RX -> router -> encapsulated to the NIC, passed
//! to the kernel port, or dropped; kernel port RX -> NIC TX.
//!
//! The router ([`FrameRouter`]) decides each frame on its own bytes and writes the header of
//! each frame it encapsulates; the worker owns the mbufs: it replaces the frame's front (its L2
//! header) with the new header in the mbuf's headroom, never copying the payload, transmits in
//! batches and counts every frame's fate. The router is told where each RX burst begins
//! ([`FrameRouter::begin_burst`]): a table swapped by the control plane is picked up there, so
//! every frame of a burst sees one table and nothing on the packet path locks. Then it is
//! handed the burst's frames ahead of routing them ([`FrameRouter::prepare_burst`], where the
//! director hashes their flows four at a time), from code compiled for AVX2 when the CPU has
//! it.

use crate::dataplane::WorkerSeat;
use crate::idle::{Idle, IdleExit, IdlePolicy};
use crate::mbuf::{Mbuf, MbufBurst};
use crate::port::PortQueue;
use crate::stats::{LcoreStats, PathCounter, PathCounters};
use crate::worker::{transmit, WorkerReport};
use chance_engine::Counters;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What becomes of one frame from the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAction {
    /// Remove the first `strip` bytes, keep `keep` bytes after them (the rest, Ethernet padding,
    /// goes), put `header_len` new bytes in front (filled by [`FrameRouter::write_header`]) and
    /// send the result out of the NIC.
    Encapsulate {
        /// Bytes removed from the front (the received L2 header).
        strip: usize,
        /// Bytes kept after them (at most the rest of the frame).
        keep: usize,
        /// Bytes of the new header.
        header_len: usize,
    },
    /// Hand the frame, unchanged, to the kernel port (ARP, ND, the host's own traffic).
    Pass,
    /// Free the frame (counted as a router drop; the router counts why).
    Drop,
}

/// A stateless per-frame decision, made on a worker lcore.
pub trait FrameRouter {
    /// Called before the first frame of every RX burst: where the router picks up a table the
    /// control plane swapped in, so that every frame of a burst sees the same one.
    fn begin_burst(&mut self) {}

    /// Called after [`begin_burst`](Self::begin_burst) with the frames of the burst that
    /// [`route`](Self::route) is about to be called for, in that order: where a router can read
    /// them all ahead (the director hashes their flows side by side). The default reads
    /// nothing.
    ///
    /// The worker calls it from a function compiled for AVX2 when the CPU has it
    /// ([`EncapWorker`]): an implementation marked `#[inline(always)]`, with all it calls, is
    /// compiled for AVX2 there.
    #[inline(always)]
    fn prepare_burst<'f>(&mut self, frames: impl Iterator<Item = &'f [u8]>) {
        let _ = frames;
    }

    /// Called after the last frame of every RX burst (where a router publishes its counters).
    fn end_burst(&mut self) {}

    /// Decides one frame (the whole received frame, L2 header included).
    fn route(&mut self, frame: &[u8]) -> FrameAction;

    /// Writes the header of the frame the last [`route`](Self::route) call asked to
    /// encapsulate: `header` is the new front of the frame (`header_len` bytes, holding
    /// garbage), `payload` the received frame without its first `strip` bytes.
    fn write_header(&mut self, header: &mut [u8], payload: &[u8]);
}

/// One worker lcore running a [`FrameRouter`].
#[derive(Debug)]
pub struct EncapWorker<R> {
    router: R,
    nic: PortQueue,
    kernel: PortQueue,
    stats: Arc<LcoreStats>,
    stop: Arc<AtomicBool>,
    idle: Idle,
    path: PathCounters,
    /// Whether the CPU has AVX2, detected once: the burst is prepared by code compiled for it.
    avx2: bool,
}

impl<R: FrameRouter> EncapWorker<R> {
    /// A worker over one queue pair of each port, polling without pause when idle (see
    /// [`idle_policy`](Self::idle_policy)).
    pub fn new(
        router: R,
        nic: PortQueue,
        kernel: PortQueue,
        stats: Arc<LcoreStats>,
        stop: Arc<AtomicBool>,
        idle_exit: IdleExit,
    ) -> Self {
        Self {
            router,
            nic,
            kernel,
            stats,
            stop,
            idle: Idle::new(IdlePolicy::Busy, idle_exit),
            path: PathCounters::default(),
            avx2: has_avx2(),
        }
    }

    /// A worker in the seat the runtime made for it: its queue pairs, counters, stop flag and
    /// idle behaviour.
    pub fn seated(router: R, seat: WorkerSeat) -> Self {
        Self::new(
            router,
            seat.nic,
            seat.kernel,
            seat.stats,
            seat.stop,
            seat.idle_exit,
        )
        .idle_policy(seat.idle)
    }

    /// Spends empty polls as `policy` says.
    pub fn idle_policy(mut self, policy: IdlePolicy) -> Self {
        self.idle.set_policy(policy);
        self
    }

    /// Polls until the stop flag is raised (or the ports stay idle, per [`IdleExit`]). Nothing is
    /// left in flight when it returns. The report's engine counters are all zero: a router
    /// counts its own decisions.
    pub fn run(mut self, lcore: u32) -> WorkerReport {
        let no_engine = Counters::new();
        let mut rx = MbufBurst::new();
        let mut to_nic = MbufBurst::new();
        let mut to_kernel = MbufBurst::new();
        while !self.stop.load(Ordering::Relaxed) {
            let from_nic = self.nic.rx_burst(&mut rx);
            self.path.add(PathCounter::NicRx, from_nic as u64);
            if from_nic > 0 {
                self.router.begin_burst();
                prepare(&mut self.router, &rx, self.avx2);
                for m in rx.drain() {
                    dispatch(
                        &mut self.router,
                        &mut self.path,
                        m,
                        &mut to_nic,
                        &mut to_kernel,
                    );
                }
                self.router.end_burst();
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

            // The host's own traffic leaves untouched.
            let from_kernel = self.kernel.rx_burst(&mut rx);
            self.path.add(PathCounter::KernelRx, from_kernel as u64);
            transmit(
                &mut self.nic,
                &mut rx,
                &mut self.path,
                PathCounter::NicTx,
                PathCounter::NicTxFull,
            );

            let (stats, path) = (&self.stats, &self.path);
            if !self
                .idle
                .end_poll(from_nic + from_kernel, || stats.publish(&no_engine, path))
            {
                break;
            }
        }
        self.stats.publish(&no_engine, &self.path);
        WorkerReport {
            lcore,
            engine: no_engine,
            path: self.path,
        }
    }
}

/// Whether the CPU supports AVX2.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Hands the burst's frames (those [`dispatch`] routes: the contiguous ones, in order) to the
/// router ahead of routing them, by code compiled for AVX2 when `avx2` says the CPU has it.
#[inline(always)]
fn prepare<R: FrameRouter>(router: &mut R, rx: &MbufBurst, avx2: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is `has_avx2()`, true only when the CPU supports AVX2, which is all
        // `prepare_avx2` needs.
        return unsafe { prepare_avx2(router, rx) };
    }
    let _ = avx2;
    prepare_frames(router, rx);
}

/// [`prepare_frames`] compiled for AVX2: the router's `prepare_burst`, inlined here, works on
/// 256-bit registers (the director hashes four flows in one).
///
/// # Safety
///
/// The CPU supports AVX2. (An `unsafe fn` rather than a safe `#[target_feature]` one: the
/// workspace's minimum Rust is older than safe target features.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn prepare_avx2<R: FrameRouter>(router: &mut R, rx: &MbufBurst) {
    prepare_frames(router, rx);
}

#[inline(always)]
fn prepare_frames<R: FrameRouter>(router: &mut R, rx: &MbufBurst) {
    router.prepare_burst(rx.iter().filter(|m| m.is_contiguous()).map(Mbuf::data));
}

/// Routes one frame and queues the result; drops free the mbuf.
#[inline]
fn dispatch<R: FrameRouter>(
    router: &mut R,
    path: &mut PathCounters,
    mut m: Mbuf,
    to_nic: &mut MbufBurst,
    to_kernel: &mut MbufBurst,
) {
    if !m.is_contiguous() {
        path.add(PathCounter::NicRxMultiSegment, 1);
        return;
    }
    let (out, counter) = match router.route(m.data()) {
        FrameAction::Drop => {
            path.add(PathCounter::RouterDrops, 1);
            return;
        }
        FrameAction::Pass => (to_kernel, PathCounter::RouterPasses),
        FrameAction::Encapsulate {
            strip,
            keep,
            header_len,
        } => {
            match m.replace_front(strip, keep, header_len) {
                Ok((header, payload)) => router.write_header(header, payload),
                Err(_) => {
                    path.add(PathCounter::EncapFailed, 1);
                    return;
                }
            }
            (to_nic, PathCounter::Encapsulated)
        }
    };
    // Each output burst receives at most one RX burst, so it has room.
    match out.push(m) {
        Ok(()) => path.add(counter, 1),
        Err(_) => path.add(PathCounter::RewriteFailed, 1),
    }
}

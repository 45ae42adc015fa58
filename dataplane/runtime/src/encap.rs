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
//! director hashes their flows eight at a time), from code compiled for AVX-512 or AVX2 when
//! the CPU has it.

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
    /// The worker calls it from a function compiled for AVX-512 or AVX2 when the CPU has them
    /// ([`EncapWorker`]): an implementation marked `#[inline(always)]`, with all it calls, is
    /// compiled for them there.
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
    /// The widest vector instructions the CPU has, detected once: the burst is prepared by code
    /// compiled for them.
    vectors: Vectors,
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
            vectors: Vectors::detect(),
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
        tracing::debug!(lcore, vectors = ?self.vectors, "bursts prepared with these instructions");
        while !self.stop.load(Ordering::Relaxed) {
            let from_nic = self.nic.rx_burst(&mut rx);
            self.path.add(PathCounter::NicRx, from_nic as u64);
            if from_nic > 0 {
                self.router.begin_burst();
                prepare(&mut self.router, &rx, self.vectors);
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

/// The vector instructions a burst's preparation is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vectors {
    /// x86-64's baseline (or another architecture).
    Baseline,
    /// AVX2: 256-bit registers.
    Avx2,
    /// AVX-512 (foundation and vector lengths): 512-bit registers and a one-instruction 64-bit
    /// rotate, which SipHash's rounds are mostly made of.
    Avx512,
}

impl Vectors {
    /// The widest the CPU supports.
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Self::Avx2;
            }
        }
        Self::Baseline
    }
}

/// Hands the burst's frames (those [`dispatch`] routes: the contiguous ones, in order) to the
/// router ahead of routing them, by code compiled for the widest `vectors` the CPU has. (Only
/// this step: routing the frames in a function compiled for AVX-512 left the router's
/// functions out of line, 0.995 of the throughput, BENCHMARKS.md "Director".)
#[inline(always)]
fn prepare<R: FrameRouter>(router: &mut R, rx: &MbufBurst, vectors: Vectors) {
    #[cfg(target_arch = "x86_64")]
    match vectors {
        // SAFETY: `vectors` is `Vectors::detect()`, `Avx512` only when the CPU supports
        // AVX-512F and AVX-512VL, which is all `prepare_avx512` needs.
        Vectors::Avx512 => return unsafe { prepare_avx512(router, rx) },
        // SAFETY: as above, `Avx2` only when the CPU supports AVX2.
        Vectors::Avx2 => return unsafe { prepare_avx2(router, rx) },
        Vectors::Baseline => {}
    }
    let _ = vectors;
    prepare_frames(router, rx);
}

/// [`prepare_frames`] compiled for AVX2: the router's `prepare_burst`, inlined here, works on
/// 256-bit registers (the director hashes its eight flows in two).
///
/// Calling it is `unsafe` unless the CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn prepare_avx2<R: FrameRouter>(router: &mut R, rx: &MbufBurst) {
    prepare_frames(router, rx);
}

/// [`prepare_frames`] compiled for AVX-512: 512-bit registers (the director's eight flows in
/// one), and each 64-bit rotate one instruction (`vprolq`) instead of two shifts and an or.
///
/// Calling it is `unsafe` unless the CPU supports AVX-512F and AVX-512VL. (AVX-512 target
/// features need Rust 1.89, the workspace's minimum.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512vl")]
fn prepare_avx512<R: FrameRouter>(router: &mut R, rx: &MbufBurst) {
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

//! Bringing the dataplane up and down: EAL, mempool, the NIC and kernel ports, one worker per
//! worker lcore, the run loop of the main lcore, and an orderly shutdown that accounts for every
//! mbuf.
//!
//! What each worker does is the caller's choice ([`run_workers`] over any [`LcoreLoop`]):
//! chanced's engine ([`run`]) or a stateless frame router ([`run_router`]); the bring-up, the
//! counters and the shutdown are the same for every kind.

use crate::eal::{Eal, EalError};
use crate::encap::{EncapWorker, FrameRouter};
use crate::lcore::{launch, LcoreError, LcoreHandle};
use crate::mempool::{Mempool, MempoolError, DEFAULT_DATA_ROOM, SOCKET_ID_ANY};
use crate::port::{Port, PortConfig, PortError, PortQueue, PortStats};
use crate::stats::LcoreStats;
use crate::worker::{IdleExit, IdlePolicy, Worker, WorkerReport};
use chance_engine::{Engine, EngineConfig, FlowTable};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything the dataplane needs, already validated by the control plane.
#[derive(Debug, Clone)]
pub struct DataplaneSpec {
    /// EAL arguments, without the program name.
    pub eal_args: Vec<String>,
    /// DPDK name of the NIC (a PCI address or a vdev name).
    pub nic: String,
    /// DPDK name of the kernel exception port.
    pub kernel: String,
    /// Whether the kernel port's interface takes the NIC's MAC address, so that the host's
    /// frames leave with it and the frames chance hands up are addressed to it.
    pub kernel_takes_nic_mac: bool,
    /// RX descriptors per queue.
    pub rx_descriptors: u16,
    /// TX descriptors per queue.
    pub tx_descriptors: u16,
    /// Mbufs in the pool.
    pub mempool_mbufs: u32,
    /// Per-lcore mempool cache.
    pub mempool_cache: u32,
    /// How the workers spend polls that receive nothing.
    pub idle: IdlePolicy,
}

/// chanced's workers: each runs its own engine over the shared flow table.
#[derive(Debug)]
pub struct EngineWorkers<F> {
    /// The engine's configuration (each worker gets its own engine).
    pub engine: EngineConfig,
    /// The flow table every worker reads.
    pub flows: Arc<F>,
    /// Whether the workers teach the flow table the host's egress flows. Each worker reads it
    /// once per burst, so the control plane can flip it while the dataplane runs.
    pub egress_learning: Arc<AtomicBool>,
    /// Where the control plane arms a live capture (each worker reads its flag once per burst).
    pub capture: Arc<crate::capture::CaptureSlot>,
}

/// One worker lcore's loop, as [`run_workers`] launches it.
pub trait LcoreLoop: Send + 'static {
    /// Polls until the worker's stop flag is raised or its [`IdleExit`] is reached, and leaves
    /// nothing in flight.
    fn run(self, lcore: u32) -> WorkerReport;
}

impl<F: FlowTable + Send + Sync + 'static> LcoreLoop for Worker<F> {
    fn run(self, lcore: u32) -> WorkerReport {
        Worker::run(self, lcore)
    }
}

impl<R: FrameRouter + Send + 'static> LcoreLoop for EncapWorker<R> {
    fn run(self, lcore: u32) -> WorkerReport {
        EncapWorker::run(self, lcore)
    }
}

/// What the runtime gives each worker it has made: the lcore, its queue pair on each port, its
/// counters' slot, the stop flag and when and how to idle.
#[derive(Debug)]
pub struct WorkerSeat {
    /// The worker lcore it will run on.
    pub lcore: u32,
    /// Its queue pair on the NIC.
    pub nic: PortQueue,
    /// Its queue pair on the kernel port.
    pub kernel: PortQueue,
    /// Where it publishes its counters (read by [`Live`]).
    pub stats: Arc<LcoreStats>,
    /// Raised when the run ends.
    pub stop: Arc<AtomicBool>,
    /// When it stops by itself.
    pub idle_exit: IdleExit,
    /// How it spends empty polls.
    pub idle: IdlePolicy,
    /// The NIC's MAC address (the source of the frames a router builds).
    pub nic_mac: [u8; 6],
}

/// When the run ends (SIGINT/SIGTERM always end it, through the stop flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunUntil {
    /// The stop flag.
    Stopped,
    /// The stop flag, or this much time.
    Elapsed(Duration),
    /// The stop flag, or every worker idle for this many consecutive polls (pcap input done).
    Idle(u32),
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// One report per worker lcore.
    pub workers: Vec<WorkerReport>,
    /// NIC counters at shutdown.
    pub nic: PortStats,
    /// Kernel port counters at shutdown.
    pub kernel: PortStats,
    /// Mbufs still in use after the ports stopped (0 unless something leaked).
    pub mbufs_in_use: u32,
    /// How long the workers ran.
    pub elapsed: Duration,
}

/// Why the dataplane could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// EAL failed.
    #[error(transparent)]
    Eal(#[from] EalError),
    /// The mempool could not be created.
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A worker could not be launched, or panicked.
    #[error(transparent)]
    Lcore(#[from] LcoreError),
    /// A configured device does not exist.
    #[error("{role} port `{name}` does not exist (EAL probed {available} port(s))")]
    NoSuchDevice {
        /// "nic" or "kernel".
        role: &'static str,
        /// The DPDK name looked up.
        name: String,
        /// How many ports EAL found.
        available: u16,
    },
    /// A port has fewer queues than there are workers.
    #[error("{role} port `{name}` has at most {max} {what}: {workers} worker lcores need one each (run fewer workers)")]
    TooFewQueues {
        /// "nic" or "kernel".
        role: &'static str,
        /// The DPDK name of the port.
        name: String,
        /// "rx_queues" or "tx_queues".
        what: &'static str,
        /// The worker lcores, each asking for a queue.
        workers: u16,
        /// The device's maximum.
        max: u16,
    },
    /// EAL was given no worker lcore.
    #[error("EAL has no worker lcore: give at least two CPUs")]
    NoWorkers,
}

/// What the main lcore sees of the running dataplane, about every 100 ms.
#[derive(Debug)]
pub struct Live<'a> {
    /// Each worker's published counters.
    pub lcores: &'a [Arc<LcoreStats>],
    /// The lcore id of each worker, in the order of `lcores`.
    pub lcore_ids: &'a [u32],
    /// The NIC's counters (rx, tx, drops, rx_nombuf...), read without stopping the workers.
    pub nic: PortStats,
    /// The kernel port's counters.
    pub kernel: PortStats,
}

/// Runs chanced's dataplane (see [`run_workers`]).
pub fn run<F, T>(
    spec: &DataplaneSpec,
    workers: EngineWorkers<F>,
    stop: Arc<AtomicBool>,
    until: RunUntil,
    tick: T,
) -> Result<RunReport, DataplaneError>
where
    F: FlowTable + Send + Sync + 'static,
    T: FnMut(&Live<'_>),
{
    let make = |seat: WorkerSeat| {
        Worker::seated(
            Engine::new(workers.engine.clone()),
            Arc::clone(&workers.flows),
            seat,
        )
        .learning_egress_switch(Arc::clone(&workers.egress_learning))
        .capturing(Arc::clone(&workers.capture))
    };
    run_workers(spec, make, stop, until, tick)
}

/// Runs a frame router on every worker lcore (see [`run_workers`]); `router` makes each worker's
/// own router, given its lcore and the NIC's MAC address.
pub fn run_router<R, M, T>(
    spec: &DataplaneSpec,
    mut router: M,
    stop: Arc<AtomicBool>,
    until: RunUntil,
    tick: T,
) -> Result<RunReport, DataplaneError>
where
    R: FrameRouter + Send + 'static,
    M: FnMut(u32, [u8; 6]) -> R,
    T: FnMut(&Live<'_>),
{
    let make = |seat: WorkerSeat| EncapWorker::seated(router(seat.lcore, seat.nic_mac), seat);
    run_workers(spec, make, stop, until, tick)
}

/// Runs the dataplane until `until` or `stop`, with the worker `make` builds for each worker
/// lcore; `tick` is called on the main lcore about every 100 ms with the live counters (for
/// logs and metrics).
pub fn run_workers<W, M, T>(
    spec: &DataplaneSpec,
    mut make: M,
    stop: Arc<AtomicBool>,
    until: RunUntil,
    mut tick: T,
) -> Result<RunReport, DataplaneError>
where
    W: LcoreLoop,
    M: FnMut(WorkerSeat) -> W,
    T: FnMut(&Live<'_>),
{
    let eal = Eal::init(&spec.eal_args)?;
    let lcores: Vec<u32> = eal.worker_lcores().collect();
    if lcores.is_empty() {
        return Err(DataplaneError::NoWorkers);
    }
    let queues = u16::try_from(lcores.len()).unwrap_or(u16::MAX);
    let pool = Mempool::new(
        "chance_mbufs",
        spec.mempool_mbufs,
        spec.mempool_cache,
        DEFAULT_DATA_ROOM,
        SOCKET_ID_ANY,
    )?;
    let port_config = PortConfig {
        rx_queues: queues,
        tx_queues: queues,
        rx_desc: spec.rx_descriptors,
        tx_desc: spec.tx_descriptors,
        rss: queues > 1,
    };
    let mut nic = configure_port("nic", &spec.nic, port_config, &pool)?;
    let mut kernel = configure_port("kernel", &spec.kernel, port_config, &pool)?;
    nic.start()?;
    kernel.start()?;
    let nic_mac = nic.mac_addr()?;
    if spec.kernel_takes_nic_mac {
        kernel.set_mac_addr(nic_mac)?;
    }

    let idle_exit = match until {
        RunUntil::Idle(polls) => IdleExit::AfterPolls(polls),
        _ => IdleExit::Never,
    };
    let started = Instant::now();
    let mut stats = Vec::with_capacity(lcores.len());
    let mut handles: Vec<LcoreHandle<WorkerReport>> = Vec::with_capacity(lcores.len());
    for (queue, &lcore) in (0u16..).zip(&lcores) {
        let lcore_stats = Arc::new(LcoreStats::default());
        stats.push(Arc::clone(&lcore_stats));
        let worker = make(WorkerSeat {
            lcore,
            nic: nic.queue(queue)?,
            kernel: kernel.queue(queue)?,
            stats: lcore_stats,
            stop: Arc::clone(&stop),
            idle_exit,
            idle: spec.idle,
            nic_mac,
        });
        match launch(lcore, move || worker.run(lcore)) {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                // The launch error is the one to report; join failures are logged by join_all.
                let _ = join_all(handles);
                return Err(e.into());
            }
        }
    }
    tracing::info!(workers = lcores.len(), nic = %spec.nic, kernel = %spec.kernel, "dataplane running");

    // The main lcore sleeps between checks: on a 2-core host its spinning would steal a worker's CPU.
    loop {
        std::thread::sleep(Duration::from_millis(100));
        // A failed read must not leave the workers running: show zeros for that tick instead.
        tick(&Live {
            lcores: &stats,
            lcore_ids: &lcores,
            nic: nic.stats().unwrap_or_default(),
            kernel: kernel.stats().unwrap_or_default(),
        });
        let done = match until {
            RunUntil::Elapsed(limit) => started.elapsed() >= limit,
            RunUntil::Idle(_) => handles.iter().all(LcoreHandle::is_finished),
            RunUntil::Stopped => false,
        };
        if done || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let workers = join_all(handles)?;
    let nic_stats = nic.stats()?;
    let kernel_stats = kernel.stats()?;
    tick(&Live {
        lcores: &stats,
        lcore_ids: &lcores,
        nic: nic_stats,
        kernel: kernel_stats,
    });

    nic.stop()?;
    kernel.stop()?;
    nic.close()?;
    kernel.close()?;
    let mbufs_in_use = pool.in_use_count();
    if mbufs_in_use != 0 {
        tracing::error!(mbufs_in_use, "mbufs still in use after the ports stopped");
    }
    drop(pool);
    // Every DPDK object is gone; a failing cleanup is logged, the counters are still valid.
    if let Err(e) = eal.cleanup() {
        tracing::warn!(error = %e, "EAL cleanup");
    }
    Ok(RunReport {
        workers,
        nic: nic_stats,
        kernel: kernel_stats,
        mbufs_in_use,
        elapsed,
    })
}

fn port_id(role: &'static str, name: &str) -> Result<u16, DataplaneError> {
    Port::by_name(name).ok_or_else(|| DataplaneError::NoSuchDevice {
        role,
        name: name.to_owned(),
        available: Port::count_avail(),
    })
}

/// Configures the `role` port named `name` with a queue pair per worker; a device with fewer
/// queues than workers is [`DataplaneError::TooFewQueues`].
fn configure_port(
    role: &'static str,
    name: &str,
    config: PortConfig,
    pool: &Mempool,
) -> Result<Port, DataplaneError> {
    Port::configure(port_id(role, name)?, config, pool).map_err(|e| match e {
        PortError::BadQueueCount {
            what, asked, max, ..
        } if asked > max => DataplaneError::TooFewQueues {
            role,
            name: name.to_owned(),
            what,
            workers: asked,
            max,
        },
        e => e.into(),
    })
}

/// Joins every worker; the first failure is returned after all have been joined.
fn join_all(handles: Vec<LcoreHandle<WorkerReport>>) -> Result<Vec<WorkerReport>, DataplaneError> {
    let mut reports = Vec::with_capacity(handles.len());
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(report) => reports.push(report),
            Err(e) => {
                tracing::error!(error = %e, "worker failed");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(reports),
    }
}

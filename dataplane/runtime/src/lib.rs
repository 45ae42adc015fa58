//! The DPDK runtime of chance: thin safe wrappers over the system DPDK (`chance-dpdk-sys`).
//!
//! Together with `chance-dpdk-sys`, this is the only crate with `unsafe` code; every other crate
//! (the engine, the control plane, the lcore loops' callers) uses the safe API below.
//!
//! One module per job:
//!
//! | module | wraps |
//! |---|---|
//! | [`eal`] | `rte_eal_init`/`rte_eal_cleanup`, lcore ids, worker lcores, non-EAL thread registration |
//! | [`mempool`] | packet mbuf pools (`rte_pktmbuf_pool_create`) |
//! | [`mbuf`] | an owning [`Mbuf`], and [`MbufBurst`], a fixed array of up to 32 for rx/tx bursts |
//! | [`port`] | ethdev ports: configure (with RSS), start/stop/close, stats, rx/tx bursts |
//! | [`ring`] | `rte_ring`s of mbufs, and ports over them (`rte_eth_from_rings`) for tests |
//! | [`generator`] | for traffic generators: bulk mbuf allocation, the TSC, a port's link state |
//! | [`prefetch`] | the prefetch instruction for the flow table's batched lookups |
//! | [`lcore`] | launching a closure on a worker lcore, with a panic guard, and joining it |
//! | [`capture`] | live capture: what the workers copy while a control thread asks for frames |
//! | [`worker`] | chanced's lcore loop: NIC RX -> engine -> kernel or NIC TX; kernel RX -> NIC TX |
//! | [`encap`] | a frame router's lcore loop: NIC RX -> encapsulate to the NIC, pass or drop |
//! | [`idle`] | what a worker does with empty polls: poll on, sleep with backoff, or stop |
//! | [`stats`] | per-lcore counters published per burst, read by control threads |
//! | [`dataplane`] | start-up, the main lcore's run loop, and shutdown with mbuf accounting |
//!
//! Lifetimes: every DPDK object ([`Mempool`], [`Ring`], [`Port`], a running [`lcore`] task)
//! holds a reference to the EAL, so `rte_eal_cleanup` runs only once the last of them is gone.
//! A mempool dropped while some of its mbufs are still alive is leaked on purpose (with an
//! error log) rather than freed under them; it then keeps the EAL alive too.

pub mod capture;
pub mod dataplane;
pub mod eal;
mod egress;
pub mod encap;
mod errno;
pub mod generator;
pub mod hugemem;
pub mod idle;
pub mod lcore;
mod learned;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod prefetch;
pub mod ring;
pub mod stats;
pub mod worker;

pub use dataplane::{
    run, run_router, run_workers, DataplaneError, DataplaneSpec, EngineWorkers, LcoreLoop, Live,
    RunReport, RunUntil, WorkerSeat,
};
pub use eal::{
    dpdk_version, lcore_id, thread_register, thread_unregister, Eal, EalError, DPDK_STATIC,
};
pub use encap::{EncapWorker, FrameAction, FrameRouter};
pub use errno::Errno;
pub use idle::{AdaptiveIdle, IdleExit, IdlePolicy};
pub use lcore::{launch, LcoreError, LcoreHandle};
pub use mbuf::{Mbuf, MbufBurst, MbufError, BURST_SIZE};
pub use mempool::{Mempool, MempoolError, SOCKET_ID_ANY};
pub use port::{Port, PortConfig, PortError, PortQueue, PortStats};
pub use ring::{ring_port, Ring, RingError};
pub use stats::{LcoreStats, PathCounter, PathCounters};
pub use worker::{Worker, WorkerReport};

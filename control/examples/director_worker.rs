//! The director's worker lcore alone, for the throughput benchmark (`deploy/bench-throughput.sh
//! --director`) and the instruction count (`deploy/bench-worker-instructions.sh --director`):
//! the runtime's frame-router loop ([`chance_runtime::run_router`]) over
//! [`chance_director::Director`], with one bind and a table of `--backends` active backends,
//! on the vdevs given, for `--duration` seconds. No control plane, API or health checks: only
//! the packet path the daemon runs.
//!
//! ```text
//! sudo target/release/examples/director_worker --duration 8 --report-json r.json -- \
//!     -l 0-1 --main-lcore 0 --no-pci --vdev net_pcap0,rx_pcap=clients.pcap,infinite_rx=1 \
//!     --vdev net_null0,no-rx=1
//! ```
//!
//! The first `--vdev` is the NIC, the second the kernel port. Every second it prints
//! `t=UNIX_SECONDS nic rx N` (cumulative, what the harness turns into per-second rates); at the
//! end it writes the path counters and the director's own counters as JSON.

use anyhow::{bail, Context, Result};
use arc_swap::{ArcSwap, Cache};
use chance_director::{
    Backend, BackendState, Bind, Counter, Director, DirectorConfig, HopTable, Prefix, Protocol,
    Route, RouteTable,
};
use chance_runtime::{
    run_router, DataplaneSpec, FrameAction, FrameRouter, IdlePolicy, PathCounter, RunUntil,
};
use clap::Parser;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
struct Args {
    /// Seconds to run.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Active backends in the table (10.1.x.y).
    #[arg(long, default_value_t = 16)]
    backends: u16,
    /// The bind's VIP (TCP and UDP, every port): the address chance-pktgen's client frames go to.
    #[arg(long, default_value = "203.0.113.1")]
    vip: Ipv4Addr,
    /// Mbufs in the pool.
    #[arg(long, default_value_t = 16383)]
    mbufs: u32,
    /// Where to write the report.
    #[arg(long)]
    report_json: Option<std::path::PathBuf>,
    /// EAL arguments (the first two `--vdev` are the NIC and the kernel port).
    #[arg(last = true)]
    eal: Vec<String>,
}

/// The daemon's router (chance-director's `DirectorRouter`, private to the daemon) step for
/// step, without its configuration plumbing: the tables loaded through an [`ArcSwap`] cache at
/// every burst, the director's counters published into atomics after every burst, the header
/// copied from the director into the mbuf.
type Tables = Vec<RouteTable<HopTable>>;

struct Router {
    director: Director,
    cache: Cache<Arc<ArcSwap<Tables>>, Arc<Tables>>,
    current: Arc<Tables>,
    published: Arc<[AtomicU64; Counter::ALL.len()]>,
}

impl FrameRouter for Router {
    fn begin_burst(&mut self) {
        self.current = Arc::clone(self.cache.load());
    }

    fn end_burst(&mut self) {
        for (slot, (_, value)) in self.published.iter().zip(self.director.counters().iter()) {
            slot.store(value, Ordering::Relaxed);
        }
    }

    fn route(&mut self, frame: &[u8]) -> FrameAction {
        match self.director.route(frame, &self.current) {
            Route::Encapsulate(e) => FrameAction::Encapsulate {
                strip: e.strip,
                keep: e.inner_len,
                header_len: e.header.len(),
            },
            Route::Pass => FrameAction::Pass,
            Route::Drop(_) => FrameAction::Drop,
        }
    }

    fn write_header(&mut self, header: &mut [u8], _payload: &[u8]) {
        let built = self.director.header().as_bytes();
        for (to, from) in header.iter_mut().zip(built) {
            *to = *from;
        }
    }
}

fn tables(args: &Args) -> Result<Tables> {
    let backends: Vec<Backend> = (0..args.backends)
        .map(|i| Backend {
            address: Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8),
            state: BackendState::Active,
            healthy: true,
        })
        .collect();
    let rows = HopTable::build(b"chance-director!", &backends).context("table")?;
    let binds = [Protocol::Tcp, Protocol::Udp]
        .map(|protocol| Bind {
            prefix: Prefix::host(IpAddr::V4(args.vip)),
            protocol,
            ports: 0..=u16::MAX,
        })
        .to_vec();
    Ok(vec![RouteTable::new(binds, *b"0123456789abcdef", rows)])
}

fn main() -> Result<()> {
    let args = Args::parse();
    let vdevs: Vec<String> = args
        .eal
        .windows(2)
        .filter(|w| w[0] == "--vdev")
        .map(|w| w[1].split(',').next().unwrap_or_default().to_owned())
        .collect();
    let [nic, kernel, ..] = vdevs.as_slice() else {
        bail!("give two --vdev EAL arguments: the NIC, then the kernel port");
    };
    let spec = DataplaneSpec {
        eal_args: args.eal.clone(),
        nic: nic.clone(),
        kernel: kernel.clone(),
        kernel_takes_nic_mac: false,
        rx_descriptors: 1024,
        tx_descriptors: 1024,
        mempool_mbufs: args.mbufs,
        mempool_cache: 256,
        idle: IdlePolicy::Busy,
    };
    let slot = Arc::new(ArcSwap::from_pointee(tables(&args)?));
    let published = Arc::new(std::array::from_fn(|_| AtomicU64::new(0)));
    let config = DirectorConfig::new(
        Ipv4Addr::new(192, 0, 2, 9),
        [2, 0, 0, 0, 0, 0xfe],
        [2, 0, 0, 0, 0, 1],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut next_print = SystemTime::now();
    let report = run_router(
        &spec,
        |_lcore, _nic_mac| {
            let mut cache = Cache::new(Arc::clone(&slot));
            let current = Arc::clone(cache.load());
            Router {
                director: Director::new(config),
                cache,
                current,
                published: Arc::clone(&published),
            }
        },
        stop,
        RunUntil::Elapsed(Duration::from_secs(args.duration)),
        |live| {
            let now = SystemTime::now();
            if now >= next_print {
                next_print = now + Duration::from_secs(1);
                let rx: u64 = live
                    .lcores
                    .iter()
                    .map(|s| s.snapshot().1.get(PathCounter::NicRx))
                    .sum();
                let t = now.duration_since(UNIX_EPOCH).unwrap_or_default();
                println!("t={:.3} nic rx {rx}", t.as_secs_f64());
            }
        },
    )?;
    let mut path = chance_runtime::PathCounters::default();
    for worker in &report.workers {
        path.merge(&worker.path);
    }
    let counters: serde_json::Map<String, serde_json::Value> = path
        .iter()
        .map(|(c, v)| (c.name().to_owned(), v.into()))
        .collect();
    let json = serde_json::json!({
        "elapsed_secs": report.elapsed.as_secs_f64(),
        "mbufs_in_use": report.mbufs_in_use,
        "nic_ipackets": report.nic.ipackets,
        "total": { "path": counters },
    });
    println!("{json}");
    if let Some(path) = &args.report_json {
        std::fs::write(path, json.to_string()).context("report")?;
    }
    Ok(())
}

//! A DPDK run: the mempools (TX, zeroed once, and RX), the ports, one worker per worker lcore,
//! the main lcore's phases and per-second progress, and an orderly stop that accounts for every
//! mbuf. The EAL is the caller's (`main`, or a test).

use crate::profile::{Profile, FCS_LEN};
use crate::report::{
    totals, ExpectBack, Latency, LcoreSummary, LossSummary, RxSummary, Second, Summary,
    TemplateSummary, TxSummary, WIRE_OVERHEAD,
};
use crate::rx::Class;
use crate::stats::{Counters, Histogram, Shared};
use crate::templates::Templates;
use crate::tx::{zero_pool, TokenBucket, Transmitter};
use crate::worker::{RxQueue, Worker, WorkerResult, DRAIN, MEASURE, STOP, WARMUP};
use chance_runtime::generator::{link, tsc, tsc_hz};
use chance_runtime::mempool::DEFAULT_DATA_ROOM;
use chance_runtime::{
    launch, Eal, LcoreHandle, Mempool, Port, PortConfig, PortStats, SOCKET_ID_ANY,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The headroom DPDK keeps in front of the data (`RTE_PKTMBUF_HEADROOM`).
const HEADROOM: usize = 128;

/// Where to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RxPort {
    /// Transmit only.
    None,
    /// The transmit port.
    Same,
    /// Another port (a name or an id).
    Other(String),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The transmit port: a DPDK port name (`net_memif0`, `0000:3b:00.0`) or id.
    pub tx_port: String,
    /// Where to receive.
    pub rx_port: RxPort,
    /// RX descriptors per queue.
    pub rx_desc: u16,
    /// TX descriptors per queue.
    pub tx_desc: u16,
    /// Mbufs in each of the two pools, TX and RX (0: enough for every descriptor, cache and
    /// burst, at least 8191).
    pub mbufs: u32,
    /// Per-lcore mempool cache.
    pub mbuf_cache: u32,
    /// Total packets per second (0: flat out).
    pub rate_pps: u64,
    /// Sending before the measurement.
    pub warmup: Duration,
    /// The measurement (with `count`: its longest).
    pub duration: Duration,
    /// Send exactly this many packets over all the workers, warm-up included, and end the
    /// measurement when they are sent (or `duration` is over first). What a full queue
    /// refuses is held and sent next, with a rate too ([`Transmitter::with_count`]).
    pub count: Option<u64>,
    /// Receiving after the measurement (what is still in flight).
    pub drain: Duration,
    /// How long to wait for the ports' links (a memif peer) before sending.
    pub link_timeout: Duration,
    /// Which returned packets count for the loss figure.
    pub expect: ExpectBack,
    /// Print the progress line every second (stderr).
    pub progress: bool,
    /// Raised once the workers have stopped, before the ports close.
    pub traffic_done: Option<Arc<AtomicBool>>,
    /// Once the workers have stopped, wait up to this long for the link to go down (the peer
    /// closing first) before closing the ports. For net_memif: DPDK 22.11's memif unmaps the
    /// shared regions when the peer disconnects, under a datapath that may still be polling
    /// them, so the side that still polls must close first.
    pub wait_link_down: Option<Duration>,
}

impl RunSpec {
    /// Defaults for `tx_port`, with the profile's rate and times.
    pub fn new(tx_port: &str, profile: &Profile) -> Self {
        Self {
            tx_port: tx_port.to_owned(),
            rx_port: RxPort::Same,
            rx_desc: 1024,
            tx_desc: 1024,
            mbufs: 0,
            mbuf_cache: 256,
            rate_pps: profile.rate_pps,
            warmup: Duration::from_secs_f64(profile.warmup_secs),
            duration: Duration::from_secs_f64(profile.duration_secs),
            count: None,
            drain: Duration::from_millis(200),
            link_timeout: Duration::from_secs(10),
            expect: ExpectBack::None,
            progress: true,
            traffic_done: None,
            wait_link_down: None,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A port name or id that EAL does not know.
    #[error("no DPDK port `{name}` (EAL has {available}; give the vdev or PCI device in the EAL arguments)")]
    NoSuchPort {
        /// As given.
        name: String,
        /// How many ports EAL probed.
        available: u16,
    },
    /// EAL was started without a worker lcore.
    #[error("EAL has no worker lcore: give it at least two (e.g. -l 0-1 or --lcores=0@0,1@1)")]
    NoWorkers,
    /// More workers than sequence-number spaces.
    #[error("{0} worker lcores: at most 255")]
    TooManyWorkers(usize),
    /// A template does not fit an mbuf.
    #[error("a {len}-byte frame does not fit the mbufs' {room}-byte data room")]
    FrameTooLong {
        /// The frame.
        len: usize,
        /// The room.
        room: usize,
    },
    /// The link stayed down.
    #[error(
        "port {port}: link still down after {secs:.1} s (net_memif: is the server side running?)"
    )]
    LinkDown {
        /// The port.
        port: String,
        /// How long we waited.
        secs: f64,
    },
    /// A DPDK wrapper failed.
    #[error(transparent)]
    Dpdk(#[from] anyhow::Error),
}

fn dpdk<E: std::error::Error + Send + Sync + 'static>(e: E) -> RunError {
    RunError::Dpdk(anyhow::Error::new(e))
}

/// The id of port `name` (a DPDK name, or a number).
fn port_id(name: &str) -> Result<u16, RunError> {
    Port::by_name(name)
        .or_else(|| {
            name.parse::<u16>()
                .ok()
                .filter(|&id| id < Port::count_avail())
        })
        .ok_or_else(|| RunError::NoSuchPort {
            name: name.to_owned(),
            available: Port::count_avail(),
        })
}

fn port_map(s: &PortStats) -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        ("ipackets", s.ipackets),
        ("opackets", s.opackets),
        ("ibytes", s.ibytes),
        ("obytes", s.obytes),
        ("imissed", s.imissed),
        ("ierrors", s.ierrors),
        ("oerrors", s.oerrors),
        ("rx_nombuf", s.rx_nombuf),
    ])
}

fn wait_link(port: &Port, name: &str, timeout: Duration) -> Result<(), RunError> {
    let start = Instant::now();
    loop {
        if link(port).map_err(dpdk)?.up {
            tracing::info!(
                port = name,
                waited_ms = start.elapsed().as_millis() as u64,
                "link up"
            );
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(RunError::LinkDown {
                port: name.to_owned(),
                secs: timeout.as_secs_f64(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sum(shared: &[Arc<Shared>]) -> Counters {
    let mut c = Counters::default();
    for s in shared {
        c.add(&s.read());
    }
    c
}

/// Whether the workers have sent `count` packets (never, without a count).
fn count_sent(count: Option<u64>, shared: &[Arc<Shared>]) -> bool {
    count.is_some_and(|n| sum(shared).tx_packets >= n)
}

/// Sleeps `d` in small steps (less once `until` packets are sent), printing a progress line
/// every second and one for the rest of the phase at its end; false when `stop` was raised.
#[allow(clippy::too_many_arguments)]
fn run_phase(
    d: Duration,
    until: Option<u64>,
    phase: &'static str,
    shared: &[Arc<Shared>],
    stop: &AtomicBool,
    origin: Instant,
    last: &mut (Instant, Counters),
    seconds: &mut Vec<Second>,
    spec: &RunSpec,
) -> bool {
    let end = Instant::now() + d;
    loop {
        let now = Instant::now();
        let over = now >= end || stop.load(Ordering::Relaxed) || count_sent(until, shared);
        if !over {
            std::thread::sleep((end - now).min(Duration::from_millis(10)));
        }
        let now = Instant::now();
        // A line every second, and one for the rest of the phase when it ends.
        let since = now.duration_since(last.0);
        if since >= Duration::from_secs(1) || (over && since >= Duration::from_millis(50)) {
            let c = sum(shared);
            let s = Second::between(
                now.duration_since(origin).as_secs_f64(),
                phase,
                &c,
                &last.1,
                now.duration_since(last.0).as_secs_f64(),
            );
            if spec.progress {
                eprintln!("{}", s.line(spec.expect));
            }
            seconds.push(s);
            *last = (now, c);
        }
        if over {
            return !stop.load(Ordering::Relaxed);
        }
    }
}

/// Sends `templates` as `spec` says on the current EAL's ports, one worker per worker lcore,
/// until the duration is over, `spec.count` packets are sent or `stop` is raised; returns the
/// summary.
///
/// # Errors
///
/// [`RunError`] when a port, the mempool or a worker cannot be set up, or a link stays down.
pub fn run(
    eal: &Eal,
    spec: &RunSpec,
    profile: Option<&Profile>,
    templates: Arc<Templates>,
    stop: Arc<AtomicBool>,
) -> Result<Summary, RunError> {
    let lcores: Vec<u32> = eal.worker_lcores().collect();
    if lcores.is_empty() {
        return Err(RunError::NoWorkers);
    }
    if lcores.len() > 255 {
        return Err(RunError::TooManyWorkers(lcores.len()));
    }
    let room = usize::from(DEFAULT_DATA_ROOM) - HEADROOM;
    if templates.max_len() > room {
        return Err(RunError::FrameTooLong {
            len: templates.max_len(),
            room,
        });
    }
    let hz = tsc_hz();
    let workers = lcores.len() as u16;
    let tx_id = port_id(&spec.tx_port)?;
    let rx_id = match &spec.rx_port {
        RxPort::Other(name) => Some(port_id(name)?).filter(|&id| id != tx_id),
        _ => None,
    };
    let ports = 1 + u32::from(rx_id.is_some());
    // Two pools: the TX pool's buffers are zeroed once and then hold zeros past the
    // templates' prefix for good (what `Transmitter` relies on); received frames, which would
    // write anywhere, come from the RX pool (every port's RX queues).
    let mbufs = |descriptors: u32| {
        if spec.mbufs > 0 {
            spec.mbufs
        } else {
            let need = u32::from(workers) * descriptors
                + (u32::from(workers) + 1) * (spec.mbuf_cache + 4 * 32);
            ((need + 1).next_power_of_two() - 1).max(8191)
        }
    };
    let tx_pool = Mempool::new(
        "pktgen_tx",
        mbufs(u32::from(spec.tx_desc)),
        spec.mbuf_cache,
        DEFAULT_DATA_ROOM,
        SOCKET_ID_ANY,
    )
    .map_err(dpdk)?;
    let zeroed = zero_pool(&tx_pool).map_err(dpdk)?;
    tracing::debug!(
        mbufs = zeroed,
        prefix = templates.prefix,
        "TX pool zeroed: frames are built from their heads"
    );
    let rx_pool = Mempool::new(
        "pktgen_rx",
        mbufs(ports * u32::from(spec.rx_desc)),
        spec.mbuf_cache,
        DEFAULT_DATA_ROOM,
        SOCKET_ID_ANY,
    )
    .map_err(dpdk)?;
    let config = PortConfig {
        rx_queues: workers,
        tx_queues: workers,
        rx_desc: spec.rx_desc,
        tx_desc: spec.tx_desc,
        rss: workers > 1,
    };
    let mut tx_port = Port::configure(tx_id, config, &rx_pool).map_err(dpdk)?;
    let mut rx_port = match rx_id {
        Some(id) => Some(Port::configure(id, config, &rx_pool).map_err(dpdk)?),
        None => None,
    };
    tx_port.start().map_err(dpdk)?;
    if let Some(p) = rx_port.as_mut() {
        p.start().map_err(dpdk)?;
    }
    let rx_name = match &spec.rx_port {
        RxPort::None => None,
        RxPort::Same => Some(spec.tx_port.clone()),
        RxPort::Other(n) => Some(n.clone()),
    };
    wait_link(&tx_port, &spec.tx_port, spec.link_timeout)?;
    if let (Some(p), Some(name)) = (rx_port.as_ref(), rx_name.as_ref()) {
        wait_link(p, name, spec.link_timeout)?;
    }
    tx_port.reset_stats().map_err(dpdk)?;
    if let Some(p) = rx_port.as_ref() {
        p.reset_stats().map_err(dpdk)?;
    }

    let expect_back = Arc::new(spec.expect.per_template(&templates));
    let shared: Arc<Vec<Arc<Shared>>> =
        Arc::new((0..workers).map(|_| Arc::new(Shared::default())).collect());
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let per_worker = spec.rate_pps / u64::from(workers);
    let extra = spec.rate_pps % u64::from(workers);
    // The count's share of worker `i`.
    let count_of =
        |i: usize, n: u64| n / u64::from(workers) + u64::from((i as u64) < n % u64::from(workers));
    let mut handles: Vec<LcoreHandle<WorkerResult>> = Vec::with_capacity(lcores.len());
    let started = Instant::now();
    for (i, &lcore) in lcores.iter().enumerate() {
        let q = i as u16;
        let rate = per_worker + u64::from((i as u64) < extra);
        let rate = if spec.rate_pps > 0 { rate.max(1) } else { 0 };
        let txq = tx_port.queue(q).map_err(dpdk)?;
        let rxq = match (&spec.rx_port, rx_port.as_ref()) {
            (RxPort::None, _) => RxQueue::None,
            (_, Some(p)) => RxQueue::Other(p.queue(q).map_err(dpdk)?),
            (_, None) => RxQueue::Same,
        };
        let tx = Transmitter::new(
            Arc::clone(&templates),
            Arc::clone(&expect_back),
            tx_pool.clone(),
            TokenBucket::new(rate, hz, tsc()),
            i * templates.len() / lcores.len(),
            (i as u64) << 56,
        );
        let worker = Worker {
            index: i as u8,
            txq,
            rxq,
            tx: match spec.count {
                Some(n) => tx.with_count(count_of(i, n)),
                None => tx,
            },
            templates: Arc::clone(&templates),
            all: Arc::clone(&shared),
            phase: Arc::clone(&phase),
        };
        match launch(lcore, move || worker.run()) {
            Ok(h) => handles.push(h),
            Err(e) => {
                phase.store(STOP, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(dpdk(e));
            }
        }
    }
    tracing::info!(workers = lcores.len(), tx = %spec.tx_port, rx = ?rx_name, rate_pps = spec.rate_pps, "sending");

    let mut seconds = Vec::new();
    let mut last = (started, Counters::default());
    let mut go_on = run_phase(
        spec.warmup,
        spec.count,
        "warmup",
        &shared,
        &stop,
        started,
        &mut last,
        &mut seconds,
        spec,
    );
    if go_on {
        phase.store(MEASURE, Ordering::Relaxed);
        go_on = run_phase(
            spec.duration,
            spec.count,
            "measure",
            &shared,
            &stop,
            started,
            &mut last,
            &mut seconds,
            spec,
        );
    }
    phase.store(DRAIN, Ordering::Relaxed);
    if go_on {
        run_phase(
            spec.drain,
            None,
            "drain",
            &shared,
            &stop,
            started,
            &mut last,
            &mut seconds,
            spec,
        );
    }
    phase.store(STOP, Ordering::Relaxed);
    let mut results = Vec::with_capacity(handles.len());
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(r) => results.push(r),
            Err(e) => {
                tracing::error!(error = %e, "worker failed");
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(done) = &spec.traffic_done {
        done.store(true, Ordering::Release);
    }
    if let Some(limit) = spec.wait_link_down {
        tracing::info!(
            limit_secs = limit.as_secs_f64(),
            "traffic done; waiting for the peer to close the link"
        );
        let start = Instant::now();
        while link(&tx_port).map(|l| l.up).unwrap_or(false) && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let tx_stats = tx_port.stats().map_err(dpdk)?;
    let rx_stats = match rx_port.as_ref() {
        Some(p) => Some(p.stats().map_err(dpdk)?),
        None => None,
    };
    tx_port.stop().map_err(dpdk)?;
    tx_port.close().map_err(dpdk)?;
    if let Some(mut p) = rx_port {
        p.stop().map_err(dpdk)?;
        p.close().map_err(dpdk)?;
    }
    let mbufs_in_use = tx_pool.in_use_count() + rx_pool.in_use_count();
    if mbufs_in_use != 0 {
        tracing::error!(
            tx = tx_pool.in_use_count(),
            rx = rx_pool.in_use_count(),
            "mbufs still in use after the ports stopped"
        );
    }
    drop(tx_pool);
    drop(rx_pool);
    if let Some(e) = failure {
        return Err(dpdk(e));
    }

    let mut summary = summarize(spec, profile, &templates, &lcores, &results, hz);
    summary.rx_port = rx_name;
    summary.seconds = seconds;
    summary.mbufs_in_use = mbufs_in_use;
    summary.port_stats.insert("tx", port_map(&tx_stats));
    if let Some(s) = rx_stats {
        summary.port_stats.insert("rx", port_map(&s));
    }
    Ok(summary)
}

/// The summary over the workers' results.
fn summarize(
    spec: &RunSpec,
    profile: Option<&Profile>,
    templates: &Templates,
    lcores: &[u32],
    results: &[WorkerResult],
    hz: u64,
) -> Summary {
    let hzf = hz as f64;
    let mut window = Counters::default();
    let mut whole = Counters::default();
    let mut latency = Histogram::default();
    let mut secs_sum = 0.0;
    let mut lcore_rows = Vec::new();
    for r in results {
        whole.add(&r.end.counters);
        latency.merge(&r.latency);
        let (Some(m), Some(d)) = (r.measure, r.drain) else {
            continue;
        };
        let mut w = d.counters.since(&m.counters);
        // Received: whatever of the window came back, whenever (the end of the drain).
        w.rx_window = r.end.counters.rx_window;
        let secs = d.tsc.saturating_sub(m.tsc) as f64 / hzf;
        secs_sum += secs;
        let packets = if w.tx_packets > 0 {
            w.tx_packets
        } else {
            w.rx_packets
        };
        lcore_rows.push(LcoreSummary {
            index: r.index,
            lcore: lcores[usize::from(r.index)],
            window_secs: secs,
            busy_share: w.busy_cycles as f64 / (w.loop_cycles.max(1)) as f64,
            cpu_share: match (m.cpu_ns, d.cpu_ns) {
                (Some(a), Some(b)) => Some(
                    b.saturating_sub(a) as f64
                        / d.wall.duration_since(m.wall).as_nanos().max(1) as f64,
                ),
                _ => None,
            },
            cycles_per_packet: w.loop_cycles as f64 / packets.max(1) as f64,
            tx_packets: w.tx_packets,
        });
        window.add(&w);
    }
    let n = lcore_rows.len().max(1) as f64;
    let secs = (secs_sum / n).max(1e-9);
    let received_back: u64 = window.rx_window[..3].iter().sum();
    let missing = window.tx_expected_back as i64 - received_back as i64;
    let offered = window.tx_packets + window.tx_refused;
    let lost = window.tx_refused * u64::from(spec.rate_pps > 0) + missing.max(0) as u64;
    let to_ns = |c: u64| c as f64 * 1e9 / hzf;
    Summary {
        program: "chance-pktgen",
        dpdk_static: cfg!(feature = "static"),
        profile: profile.cloned(),
        templates: Some(TemplateSummary::of(templates)),
        tx_port: spec.tx_port.clone(),
        rx_port: None,
        tsc_hz: hz,
        window_secs: secs,
        tx: TxSummary {
            packets: window.tx_packets,
            bytes: window.tx_bytes,
            mpps: window.tx_packets as f64 / secs / 1e6,
            gbps: (window.tx_bytes + FCS_LEN as u64 * window.tx_packets) as f64 * 8.0 / secs / 1e9,
            gbps_wire: (window.tx_bytes + (FCS_LEN as u64 + WIRE_OVERHEAD) * window.tx_packets)
                as f64
                * 8.0
                / secs
                / 1e9,
            refused: window.tx_refused,
            held: window.tx_held,
            alloc_failed: window.tx_alloc_failed,
            late: window.tx_late,
        },
        rx: RxSummary {
            packets: window.rx_window.iter().sum(),
            mpps: window.rx_window.iter().sum::<u64>() as f64 / secs / 1e6,
            classes: Class::ALL
                .iter()
                .map(|&c| (c.name(), window.rx_window[c as usize]))
                .collect(),
        },
        loss: LossSummary {
            expect: (spec.expect != ExpectBack::None).then_some(spec.expect),
            expected_back: window.tx_expected_back,
            received_back,
            missing,
            ratio: if offered > 0 {
                lost as f64 / offered as f64
            } else {
                0.0
            },
        },
        latency_ns: Latency {
            samples: latency.count(),
            min: latency.min().map(to_ns),
            avg: latency.mean().map(|v| v * 1e9 / hzf),
            p50: latency.quantile(0.5).map(to_ns),
            p99: latency.quantile(0.99).map(to_ns),
            p999: latency.quantile(0.999).map(to_ns),
            max: latency.max().map(to_ns),
        },
        lcores: lcore_rows,
        totals: totals(&whole),
        port_stats: BTreeMap::new(),
        mbufs_in_use: 0,
        seconds: Vec::new(),
    }
}

//! chanced, the daemon: validates the configuration, binds its control surfaces, starts EAL, the
//! NIC and kernel ports and one worker per worker lcore, and serves the control side while the
//! workers run: the local API ([`api`]), Prometheus metrics ([`metrics`]), reloads on SIGHUP or
//! from the API ([`reload`]), SIGTERM/SIGINT and systemd notifications ([`signals`]).
//!
//! `chanced --config FILE [--duration SECS | --until-idle] [--stats-interval SECS]
//!          [--report-json FILE] [--replace-eal-args] [-- EAL ARGS]`
//!
//! EAL arguments are derived from the `[dpdk]` and `[ports]` tables, then `[dpdk] eal_args`, then
//! the ones after `--` are appended, in that order ([`DataplaneConfig::effective_eal_args`]). `--replace-eal-args`
//! drops the derived ones and the file's `eal_args` (the port names are still taken from
//! `[ports]`). The effective list is logged at start and shown by `chancectl config show`.
//!
//! Threads: the main lcore runs the runtime's loop, whose tick (every ~100 ms) publishes a
//! [`Snapshot`] of the counters; the control threads read snapshots, never the lcores' memory
//! under a lock. What the lcores read live (the flow table, the egress-learning switch) is
//! lock-free for them.
//!
//! Exit status: 0 after a clean stop, 1 on a runtime failure, a leaked mbuf or a missed shutdown
//! deadline, 2 for an invalid configuration (nothing is started).

mod api;
mod capture;
mod health;
mod host;
pub use host::check_host;
mod metrics;
mod reload;
mod signals;

use crate::api::{CounterSet, StatsReply};
use crate::control_config::ControlConfig;
use crate::reconcile::{ReconcileStats, Reconciler};
use crate::report::Report;
use crate::shell::api_server::{self, ApiServer};
use crate::shell::logging;
use crate::shell::metrics_server::MetricsServer;
use crate::shell::reload::ReloadCounters;
use crate::shell::startup::{bind_api, config_error, exit_status, Failure};
use crate::{load, Config, DataplaneConfig};
use anyhow::Context;
use chance_engine::table::{ConcurrentFlowTable, Source, TableConfig};
use chance_engine::{Counters, EngineConfig};
use chance_runtime::{DataplaneSpec, EngineWorkers, Live, PathCounters, PortStats, RunUntil};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Consecutive empty polls after which `--until-idle` ends a worker (a pcap input is exhausted at
/// the first one; the margin covers a kernel port still settling).
pub(crate) const IDLE_POLLS: u32 = 20_000;

/// chanced's version, with the git revision when the build knew it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision chanced was built from (`unknown` outside a checkout).
pub const GIT_REVISION: &str = env!("CHANCE_GIT_REVISION");

/// chanced's command line.
#[derive(Parser, Debug)]
#[command(name = "chanced", version, about = "chance's dataplane daemon")]
pub struct Args {
    /// The configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Stop after this many seconds.
    #[arg(long, conflicts_with = "until_idle")]
    pub duration: Option<f64>,
    /// Stop when no port has received anything for a while (pcap inputs, tests).
    #[arg(long)]
    pub until_idle: bool,
    /// Log the counters every this many seconds (0: never).
    #[arg(long, default_value_t = 0.0)]
    pub stats_interval: f64,
    /// Also write the final report as JSON to this file.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Use only the EAL arguments after `--`: none derived from [dpdk] and [ports], not [dpdk]
    /// eal_args (the port names still come from [ports]).
    #[arg(long, requires = "eal")]
    pub replace_eal_args: bool,
    /// EAL arguments, appended to the ones derived from the configuration and [dpdk] eal_args (a
    /// repeated single-value option such as --log-level or -m: EAL takes the last; --vdev and -a
    /// add devices); see --replace-eal-args.
    #[arg(last = true, value_name = "EAL ARGS")]
    pub eal: Vec<String>,
}

/// Runs chanced with the process's arguments.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let config = match load(&args.config) {
        Ok(config) => config,
        Err(e) => return config_error(&e.to_string()),
    };
    let Some(dataplane) = config.dataplane().cloned() else {
        return config_error(&format!(
            "{}: ports: missing table: chanced needs [ports] with `nic` and `kernel`",
            args.config.display()
        ));
    };
    let log = logging::LogControl::init(&config.control().log_level);
    exit_status(run(&args, config, &dataplane, log), "chanced")
}

/// The counters as the main lcore last read them.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// CLOCK_MONOTONIC when they were read, in nanoseconds.
    pub monotonic_ns: u64,
    /// (lcore id, engine counters, path counters) per worker.
    pub lcores: Vec<(u32, Counters, PathCounters)>,
    /// The NIC's counters.
    pub nic: PortStats,
    /// The kernel port's counters.
    pub kernel: PortStats,
}

impl Snapshot {
    pub(crate) fn of(live: &Live<'_>) -> Self {
        Self {
            monotonic_ns: monotonic_ns(),
            lcores: live
                .lcore_ids
                .iter()
                .zip(live.lcores)
                .map(|(&id, stats)| {
                    let (engine, path) = stats.snapshot();
                    (id, engine, path)
                })
                .collect(),
            nic: live.nic,
            kernel: live.kernel,
        }
    }

    /// Engine and path counters summed over the lcores.
    pub fn total(&self) -> (Counters, PathCounters) {
        let mut engine = Counters::new();
        let mut path = PathCounters::default();
        for (_, e, p) in &self.lcores {
            engine.add(e);
            path.merge(p);
        }
        (engine, path)
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock systemd's MONOTONIC_USEC uses too).
pub(crate) fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

/// The socket reconciliation thread.
#[derive(Debug)]
pub(crate) struct ReconcileThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl ReconcileThread {
    fn start(
        reconciler: Reconciler,
        table: &Arc<ConcurrentFlowTable>,
        interval: Duration,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = reconciler.spawn(Arc::clone(table), interval, Arc::clone(&stop))?;
        Ok(Self { stop, handle })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// The control surfaces a reload may replace.
#[derive(Debug, Default)]
pub(crate) struct Controls {
    pub api: Option<ApiServer>,
    pub metrics: Option<MetricsServer>,
    pub reconciler: Option<ReconcileThread>,
}

impl Controls {
    fn stop(&mut self) {
        if let Some(r) = self.reconciler.take() {
            r.stop();
        }
        if let Some(m) = self.metrics.take() {
            m.stop();
        }
        if let Some(a) = self.api.take() {
            a.stop();
        }
    }
}

/// What the control threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration file (reloads read it again).
    pub config_path: PathBuf,
    /// The EAL arguments chanced started with ([`DataplaneConfig::effective_eal_args`]).
    pub eal_args: Vec<String>,
    /// The flow table the lcores read.
    pub table: Arc<ConcurrentFlowTable>,
    /// What the lcores' engines run with (`[encap]` changes need a restart).
    pub engine: EngineConfig,
    /// The configuration chanced started with (restart-only keys are compared with it).
    pub startup: Arc<Config>,
    /// The configuration last loaded (at start or by a successful reload).
    pub current: Mutex<Arc<Config>>,
    /// The latest counters.
    pub snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// The workers' live egress-learning switch.
    pub egress_learning: Arc<AtomicBool>,
    /// Where the API arms a live capture for the workers.
    pub capture: Arc<chance_runtime::capture::CaptureSlot>,
    /// The reconciliation's counters, kept across restarts of its thread.
    pub reconcile_stats: Arc<ReconcileStats>,
    /// Reloads: counters and the last failure.
    pub reload: ReloadCounters,
    /// Keys of the loaded file waiting for a restart.
    pub pending_restart: Mutex<Vec<String>>,
    /// When chanced started.
    pub started: Instant,
    /// Seconds since the Unix epoch when chanced started.
    pub started_unix: f64,
    /// Raised to stop the workers.
    pub stop: Arc<AtomicBool>,
    /// Set once the workers are joined and the ports stopped (the shutdown deadline's end).
    pub finished: AtomicBool,
    /// The log filter.
    pub log: logging::LogControl,
    /// The servers and threads a reload may replace; also serialises reloads.
    pub controls: Mutex<Controls>,
}

/// Locks a mutex, ignoring poisoning (a panicked control thread leaves consistent data here).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The configuration last loaded.
    pub fn current(&self) -> Arc<Config> {
        Arc::clone(&lock(&self.current))
    }

    /// The latest counters, if the workers have published any.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        lock(&self.snapshot).clone()
    }

    /// The flow table's counters by name.
    pub fn table_counters(&self) -> BTreeMap<String, u64> {
        let s = self.table.stats();
        [
            ("flow_table_entries", s.entries as u64),
            ("flow_table_capacity", s.capacity as u64),
            ("flow_table_inserts_total", s.inserts),
            ("flow_table_refreshes_total", s.refreshes),
            (
                "flow_table_evictions_syn_expired_total",
                s.evicted_syn_expired,
            ),
            ("flow_table_evictions_syn_total", s.evicted_syn),
            ("flow_table_evictions_egress_total", s.evicted_egress),
            ("flow_table_displacements_total", s.displacements),
            ("flow_table_refusals_total", s.refusals),
            ("flow_table_removals_total", s.removals),
            ("flow_table_read_retries_total", s.read_retries),
            ("flow_table_read_failures_total", s.read_failures),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The reconciliation's counters (empty when it never ran).
    pub fn reconcile_counters(&self) -> BTreeMap<String, u64> {
        let values = self.reconcile_stats.values();
        if self.current().ownership().reconcile_interval.is_zero() && values[0].1 == 0 {
            return BTreeMap::new();
        }
        values.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
    }

    /// The `stats` reply.
    pub fn stats(&self) -> StatsReply {
        let mut reply = StatsReply {
            version: version(),
            monotonic_ns: monotonic_ns(),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            flow_table: self.table_counters(),
            reconcile: self.reconcile_counters(),
            ..StatsReply::default()
        };
        reply.daemon = [
            ("reloads_total", self.reload.reloads.load(Ordering::Relaxed)),
            (
                "reload_failures_total",
                self.reload.failures.load(Ordering::Relaxed),
            ),
            (
                "egress_learning",
                u64::from(self.egress_learning.load(Ordering::Relaxed)),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(snapshot) = self.snapshot() {
            reply.running = true;
            reply.monotonic_ns = snapshot.monotonic_ns;
            let (engine, path) = snapshot.total();
            reply.total = counter_set(None, &engine, &path);
            reply.lcores = snapshot
                .lcores
                .iter()
                .map(|(id, e, p)| counter_set(Some(*id), e, p))
                .collect();
            reply.ports.insert("nic".into(), snapshot.nic);
            reply.ports.insert("kernel".into(), snapshot.kernel);
        }
        reply
    }
}

fn counter_set(lcore: Option<u32>, engine: &Counters, path: &PathCounters) -> CounterSet {
    CounterSet {
        lcore,
        engine: engine
            .iter()
            .map(|(c, v)| (c.name().to_owned(), v))
            .collect(),
        path: path.iter().map(|(c, v)| (c.name().to_owned(), v)).collect(),
    }
}

/// `0.1.0 (git abc1234)`.
pub(crate) fn version() -> String {
    format!("{VERSION} (git {GIT_REVISION})")
}

/// Runs the dataplane and the control side; true when it shut down with every mbuf returned.
fn run(
    args: &Args,
    config: Config,
    dataplane: &DataplaneConfig,
    log: logging::LogControl,
) -> Result<bool, Failure> {
    tracing::info!(version = %version(), dpdk = %chance_runtime::dpdk_version(), config = %args.config.display(), "chanced starting");
    let ownership = config.ownership().clone();
    let table = Arc::new(ConcurrentFlowTable::new(TableConfig {
        capacity: ownership.capacity,
        syn_lifetime: ownership.syn_lifetime,
    }));
    if ownership.huge_pages {
        huge_pages(&table);
    }
    // Validation keeps the static flows within the capacity; a refusal here means both buckets
    // of a flow's pair filled up, which only a larger capacity cures: a configuration error too.
    for (i, key) in config.static_flows().into_iter().enumerate() {
        if !table.insert(key, Source::Static).is_stored() {
            return Err(Failure::Config(format!(
                "{}: flow[{i}]: no room in the flow table for static flow {key:?} (raise flow_table.capacity)",
                args.config.display()
            )));
        }
    }
    let reconcile_stats = Arc::new(ReconcileStats::default());
    // Opened before EAL so that a missing namespace stops chanced before it touches the NIC.
    let reconciler = if ownership.reconcile_interval.is_zero() {
        None
    } else {
        Some(
            Reconciler::open(&ownership.namespaces, ownership.grace)
                .map_err(|e| host::namespace_failure(&args.config, e))?
                .with_stats(Arc::clone(&reconcile_stats)),
        )
    };
    // The API socket too: a second chanced on the same socket stops here.
    let control = config.control().clone();
    let api_listener = bind_api(&control, "chanced")?;

    let eal_args = dataplane.effective_eal_args("chanced", &args.eal, args.replace_eal_args);
    tracing::info!(
        replaced = args.replace_eal_args,
        "EAL arguments: {}",
        eal_args.join(" ")
    );
    let egress_learning = Arc::new(AtomicBool::new(ownership.egress_learning));
    let spec = dataplane.spec(eal_args.clone());
    let config = Arc::new(config);
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        config_path: args.config.clone(),
        eal_args,
        table: Arc::clone(&table),
        engine: config.engine_config(),
        startup: Arc::clone(&config),
        current: Mutex::new(Arc::clone(&config)),
        snapshot: Mutex::new(None),
        egress_learning,
        capture: Arc::default(),
        reconcile_stats: Arc::clone(&reconcile_stats),
        reload: ReloadCounters::default(),
        pending_restart: Mutex::new(Vec::new()),
        started: Instant::now(),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        stop: Arc::clone(&stop),
        finished: AtomicBool::new(false),
        log,
        controls: Mutex::new(Controls::default()),
    });
    let started = start_controls(&shared, &control, api_listener, reconciler, &ownership);
    let signals = match started.and_then(|()| {
        crate::shell::signals::spawn(Arc::new(signals::ChancedSignals(Arc::clone(&shared))))
    }) {
        Ok(signals) => signals,
        Err(e) => {
            lock(&shared.controls).stop();
            return Err(e.into());
        }
    };

    let result = run_dataplane(args, &spec, &shared);
    shared.finished.store(true, Ordering::Release);
    stop.store(true, Ordering::Relaxed);
    signals.stop();
    lock(&shared.controls).stop();
    let run = result?;

    let mut report = Report::from_run(&run);
    let reconciled = !config.ownership().reconcile_interval.is_zero()
        || reconcile_stats.rounds.load(Ordering::Relaxed) != 0;
    report.add_table(&table, reconciled.then_some(&*reconcile_stats));
    eprint!("{}", report.text());
    if let Some(path) = &args.report_json {
        std::fs::write(path, report.json())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.mbufs_in_use == 0)
}

/// Asks the kernel to back the flow table with transparent huge pages (`[flow_table] huge_pages`,
/// BENCHMARKS.md "Flow table"): one log line, a warning when it failed; chanced goes on either way.
fn huge_pages(table: &ConcurrentFlowTable) {
    let report = chance_runtime::hugemem::advise_huge_pages(&table.memory_regions());
    const MIB: usize = 1 << 20;
    let (advised_mib, collapsed_mib) = (report.advised / MIB, report.collapsed / MIB);
    let elapsed_ms = report.elapsed.as_millis();
    match &report.error {
        None => tracing::info!(
            advised_mib,
            collapsed_mib,
            elapsed_ms,
            "flow table: on transparent huge pages ({report})"
        ),
        Some(error) => tracing::warn!(
            advised_mib,
            collapsed_mib,
            elapsed_ms,
            %error,
            "flow table: not (all) on transparent huge pages, lookups in a large table are slower ({report})"
        ),
    }
}

/// systemd's status line while chanced runs.
pub(crate) const READY_STATUS: &str = "dataplane running";

/// Serves chanced's API on `bound`.
pub(crate) fn serve_api(
    bound: api_server::Bound,
    shared: &Arc<Shared>,
) -> std::io::Result<ApiServer> {
    ApiServer::serve(bound, Arc::new(api::ChancedApi(Arc::clone(shared))))
}

/// Serves chanced's metrics at `address`.
pub(crate) fn serve_metrics(
    address: std::net::SocketAddr,
    shared: &Arc<Shared>,
) -> Result<MetricsServer, String> {
    let collector = metrics::ChanceCollector(Arc::downgrade(shared));
    // Weak, as the collector: the server must not keep the daemon's state alive.
    let weak = Arc::downgrade(shared);
    let health = Box::new(move |path: &str| {
        health::answer(path, weak.upgrade().as_deref()).map(|h| (h.status, h.body))
    });
    MetricsServer::serve(address, "chanced", Box::new(collector), health)
}

/// Serves the API and the metrics, starts the reconciliation.
fn start_controls(
    shared: &Arc<Shared>,
    control: &ControlConfig,
    api_listener: Option<api_server::Bound>,
    reconciler: Option<Reconciler>,
    ownership: &crate::ownership_config::OwnershipConfig,
) -> anyhow::Result<()> {
    let mut controls = lock(&shared.controls);
    if let Some(bound) = api_listener {
        controls.api = Some(serve_api(bound, shared).context("starting the API")?);
    }
    if let Some(address) = control.metrics_address {
        // The dataplane matters more than its metrics: a busy port is logged, not fatal (a
        // reload retries).
        match serve_metrics(address, shared) {
            Ok(server) => controls.metrics = Some(server),
            Err(e) => {
                tracing::error!(%address, error = %e, "metrics: cannot serve; metrics are off until a reload binds them")
            }
        }
    }
    if let Some(reconciler) = reconciler {
        controls.reconciler = Some(
            ReconcileThread::start(reconciler, &shared.table, ownership.reconcile_interval)
                .context("starting the reconciliation thread")?,
        );
    }
    Ok(())
}

/// The runtime's loop, with the tick that publishes counters and talks to systemd.
fn run_dataplane(
    args: &Args,
    spec: &DataplaneSpec,
    shared: &Arc<Shared>,
) -> anyhow::Result<chance_runtime::RunReport> {
    let until = match (args.duration, args.until_idle) {
        (Some(secs), _) => {
            RunUntil::Elapsed(Duration::try_from_secs_f64(secs).context("--duration")?)
        }
        (None, true) => RunUntil::Idle(IDLE_POLLS),
        (None, false) => RunUntil::Stopped,
    };
    let interval = Duration::try_from_secs_f64(args.stats_interval).context("--stats-interval")?;
    let mut last_log = Instant::now();
    let watchdog = sd_notify::watchdog_enabled();
    let mut last_ping: Option<Instant> = None;
    let mut ready = false;
    let workers = EngineWorkers {
        engine: shared.engine.clone(),
        flows: Arc::clone(&shared.table),
        egress_learning: Arc::clone(&shared.egress_learning),
        capture: Arc::clone(&shared.capture),
    };
    let result = chance_runtime::run(spec, workers, Arc::clone(&shared.stop), until, |live| {
        shared.table.tick(Instant::now());
        *lock(&shared.snapshot) = Some(Arc::new(Snapshot::of(live)));
        if !ready {
            ready = true;
            crate::shell::signals::notify_ready(READY_STATUS);
        }
        if let Some(period) = watchdog {
            if last_ping.is_none_or(|at| at.elapsed() >= period / 2) {
                last_ping = Some(Instant::now());
                crate::shell::signals::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
        if !interval.is_zero() && last_log.elapsed() >= interval {
            last_log = Instant::now();
            tracing::info!("{}", Report::from_live(live).one_line());
        }
    });
    Ok(result?)
}

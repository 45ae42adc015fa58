//! chance-director, the daemon: validates its configuration (the whole file, before anything is
//! touched), starts the health checks, builds the forwarding table and rebuilds it on every
//! health change and reload, and serves the control side through the shell it shares with
//! chanced ([`crate::shell`]): the local API ([`api`]), Prometheus metrics ([`metrics`]), reloads
//! on SIGHUP or from the API ([`reload`]), SIGTERM/SIGINT and systemd notifications.
//!
//! `chance-director --config FILE [--no-dataplane | --until-idle | --duration SECS]
//! [--stats-interval SECS] [--report-json FILE] [--replace-eal-args] [-- EAL ARGS]`
//!
//! `--no-dataplane` runs the control plane only (health checks, table builds, API, metrics), for
//! testing. Without it the dataplane (EAL, ports, one worker per worker lcore) runs from
//! [`run_dataplane`]; `--duration`, `--stats-interval`, `--report-json` and `--replace-eal-args`
//! mean what they mean for chanced (the throughput benchmark runs the director with them).
//!
//! Exit status: 0 after a clean stop, 1 on a runtime failure or a missed shutdown deadline, 2 for
//! an invalid configuration (nothing is started).

pub mod api;
pub mod ctl;
mod dataplane;
pub mod health;
mod metrics;
mod probe;
mod reload;
pub mod table;

use crate::director_config::{self, DirectorConfig};
use crate::shell::api_server::{self, ApiServer};
use crate::shell::logging::LogControl;
use crate::shell::metrics_server::MetricsServer;
use crate::shell::reload::ReloadCounters;
use crate::shell::signals::{self, Lifecycle};
use crate::shell::startup::{bind_api, config_error, exit_status, Failure};
use chance_director::{Backend, Bind};
use clap::Parser;
use health::{HealthChecker, HealthView};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use table::{ForwardingTable, TableBuilder, TableHook, TableSpec};

/// chance-director's command line.
#[derive(Parser, Debug)]
#[command(name = "chance-director", version, about = "chance's director daemon")]
pub struct Args {
    /// The configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Control plane only (health checks, table builds, API, metrics), for testing: no EAL, no
    /// ports, nothing forwarded.
    #[arg(long)]
    pub no_dataplane: bool,
    /// Stop when no port has received anything for a while (pcap inputs, tests).
    #[arg(long, conflicts_with = "no_dataplane")]
    pub until_idle: bool,
    /// Stop the dataplane after this many seconds.
    #[arg(long, conflicts_with_all = ["no_dataplane", "until_idle"])]
    pub duration: Option<f64>,
    /// Log the dataplane's counters every this many seconds (0: never).
    #[arg(long, default_value_t = 0.0)]
    pub stats_interval: f64,
    /// Write the dataplane's final report (ports, paths, the director's counters) as JSON here.
    #[arg(long, conflicts_with = "no_dataplane")]
    pub report_json: Option<PathBuf>,
    /// Use only the EAL arguments after `--`: none derived from [dpdk] and [ports] (the port
    /// names still come from [ports]).
    #[arg(long, requires = "eal")]
    pub replace_eal_args: bool,
    /// EAL arguments, appended to the ones derived from the configuration (see
    /// --replace-eal-args).
    #[arg(last = true)]
    pub eal: Vec<String>,
}

/// systemd's status line in each mode.
const READY_DATAPLANE: &str = "director running";
const READY_CONTROL_ONLY: &str = "control plane only (--no-dataplane)";

/// The table builder: every health change and reload rebuilds and swaps the tables through it.
pub const TABLE_BUILDER: Option<TableBuilder> = Some(table::build);

/// Runs chance-director with the process's arguments.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let config = match director_config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return config_error(&e.to_string()),
    };
    let tables = match table::source(&config) {
        Ok(tables) => tables,
        Err(e) => return config_error(&format!("{}: {e}", args.config.display())),
    };
    if !args.no_dataplane && config.dataplane.is_none() {
        return config_error(&format!(
            "{}: ports: missing table: chance-director needs [ports] with `nic` and `kernel` \
             (or --no-dataplane for the control plane only)",
            args.config.display()
        ));
    }
    let log = LogControl::init(&config.control.log_level);
    let result = run(&args, config, tables, log, TABLE_BUILDER).map(|()| true);
    exit_status(result, "chance-director")
}

/// The servers and threads a reload may replace.
#[derive(Debug, Default)]
pub(crate) struct Controls {
    pub api: Option<ApiServer>,
    pub metrics: Option<MetricsServer>,
    pub checker: Option<HealthChecker>,
}

impl Controls {
    fn stop(&mut self) {
        if let Some(c) = self.checker.take() {
            c.stop();
        }
        if let Some(m) = self.metrics.take() {
            m.stop();
        }
        if let Some(a) = self.api.take() {
            a.stop();
        }
    }
}

/// The configuration in force, with the tables it describes.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub config: DirectorConfig,
    /// What each table is built from.
    pub tables: Vec<TableSpec>,
    /// Every table's binds.
    pub binds: Vec<Bind>,
    /// Every backend once (health is per address).
    pub backends: Vec<Backend>,
}

impl Loaded {
    pub fn new(config: DirectorConfig, tables: Vec<TableSpec>) -> Self {
        let (binds, backends) = table::flatten(&tables);
        Self {
            config,
            tables,
            binds,
            backends,
        }
    }

    /// How long a backend back from unhealthy is built as filling: one hold-down, and at least
    /// one check interval.
    fn settle(&self) -> Duration {
        self.config
            .healthcheck
            .as_ref()
            .map_or(Duration::ZERO, |h| h.hold_down.max(h.interval))
    }
}

/// What the director's control threads share.
pub(crate) struct Shared {
    pub config_path: PathBuf,
    /// The configuration the director started with (restart-only keys are compared with it).
    pub startup: Arc<Loaded>,
    /// The configuration last loaded.
    pub current: Mutex<Arc<Loaded>>,
    /// Every backend's health.
    pub health: Arc<HealthView>,
    /// Builds tables (`None`: this build has no table).
    pub builder: Option<TableBuilder>,
    /// Where new tables go (the dataplane's swap), once the dataplane has set it.
    pub hook: Mutex<Option<TableHook>>,
    /// The table last built.
    pub table: Mutex<Option<Arc<dyn ForwardingTable>>>,
    pub table_builds: AtomicU64,
    pub table_build_failures: AtomicU64,
    /// When a backend back from unhealthy will have settled (the tables are rebuilt then).
    pub settling_until: Mutex<Option<Instant>>,
    /// The dataplane's director counters, once it runs.
    pub dataplane_stats: Mutex<Option<Arc<dataplane::DataplaneStats>>>,
    /// The runtime's counters (ports, paths) at the last tick.
    pub snapshot: Mutex<Option<Arc<crate::daemon::Snapshot>>>,
    pub reload: ReloadCounters,
    pub pending_restart: Mutex<Vec<String>>,
    pub started: Instant,
    pub started_unix: f64,
    /// Whether a dataplane runs (false with `--no-dataplane`).
    pub dataplane: bool,
    pub stop: AtomicBool,
    pub finished: AtomicBool,
    pub log: LogControl,
    pub controls: Mutex<Controls>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("director::Shared")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The state of a director starting with `loaded`.
    fn new(
        config_path: PathBuf,
        loaded: &Arc<Loaded>,
        builder: Option<TableBuilder>,
        dataplane: bool,
        log: LogControl,
    ) -> Self {
        Self {
            config_path,
            startup: Arc::clone(loaded),
            current: Mutex::new(Arc::clone(loaded)),
            health: Arc::new(HealthView::new(&loaded.backends)),
            builder,
            hook: Mutex::new(None),
            table: Mutex::new(None),
            table_builds: AtomicU64::new(0),
            table_build_failures: AtomicU64::new(0),
            settling_until: Mutex::new(None),
            dataplane_stats: Mutex::new(None),
            snapshot: Mutex::new(None),
            reload: ReloadCounters::default(),
            pending_restart: Mutex::new(Vec::new()),
            started: Instant::now(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            dataplane,
            stop: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            log,
            controls: Mutex::new(Controls::default()),
        }
    }

    pub fn current(&self) -> Arc<Loaded> {
        Arc::clone(&lock(&self.current))
    }

    pub fn table(&self) -> Option<Arc<dyn ForwardingTable>> {
        lock(&self.table).clone()
    }

    /// Sends every table built from now on to `hook` (the dataplane's swap), starting with the
    /// one in force, if any.
    pub fn set_table_hook(&self, hook: TableHook) {
        let mut slot = lock(&self.hook);
        if let Some(table) = self.table() {
            hook(table);
        }
        *slot = Some(hook);
    }

    /// Builds a table from the current configuration and health, and swaps it in; a failed build
    /// keeps the table in force.
    pub fn rebuild(&self, why: &str) -> Result<(), String> {
        let Some(build) = self.builder else {
            return Ok(());
        };
        let loaded = self.current();
        let now = Instant::now();
        let settle = loaded.settle();
        let specs: Vec<TableSpec> = loaded
            .tables
            .iter()
            .map(|t| TableSpec {
                backends: self.health.apply(&t.backends, now, settle),
                ..t.clone()
            })
            .collect();
        *lock(&self.settling_until) = self.health.settling_until(now, settle);
        let started = Instant::now();
        match build(&loaded.config, &specs) {
            Ok(table) => {
                tracing::info!(
                    why,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "forwarding table rebuilt"
                );
                // Under the hook's lock: a table set concurrently with the hook is not lost.
                let hook = lock(&self.hook);
                if let Some(hook) = hook.as_ref() {
                    hook(Arc::clone(&table));
                }
                *lock(&self.table) = Some(table);
                drop(hook);
                self.table_builds.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.table_build_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(why, error = %e, "forwarding table not rebuilt; the one in force stays");
                Err(e)
            }
        }
    }
}

/// Rebuilds the table on health changes (a burst of changes is one rebuild).
fn spawn_rebuilder(shared: &Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    let changes = shared.health.subscribe();
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name("chance-table".into())
        .spawn(move || loop {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            match changes.recv_timeout(Duration::from_millis(100)) {
                Ok(first) => {
                    let mut n = 1;
                    while changes.try_recv().is_ok() {
                        n += 1;
                    }
                    let why = if n == 1 {
                        format!(
                            "backend {} {}",
                            first.address,
                            if first.healthy {
                                "healthy"
                            } else {
                                "unhealthy"
                            }
                        )
                    } else {
                        format!("{n} health changes")
                    };
                    let _ = shared.rebuild(&why);
                }
                Err(RecvTimeoutError::Timeout) => {
                    let settled =
                        lock(&shared.settling_until).is_some_and(|at| Instant::now() >= at);
                    if settled {
                        let _ = shared.rebuild("a backend back from unhealthy has settled");
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        })
}

pub(crate) fn serve_api(
    bound: api_server::Bound,
    shared: &Arc<Shared>,
) -> std::io::Result<ApiServer> {
    ApiServer::serve(bound, Arc::new(api::DirectorApi(Arc::clone(shared))))
}

pub(crate) fn serve_metrics(
    address: std::net::SocketAddr,
    shared: &Arc<Shared>,
) -> Result<MetricsServer, String> {
    let collector = metrics::DirectorCollector(Arc::downgrade(shared));
    // Liveness only, until the director's readiness is wired to its dataplane.
    let health =
        Box::new(|path: &str| (path == "/healthz/live").then(|| (200, "live\n".to_owned())));
    MetricsServer::serve(address, "chance-director", Box::new(collector), health)
}

/// Starts the health checks of `loaded` (none without `[healthcheck]`).
pub(crate) fn start_checker(
    loaded: &Loaded,
    view: &Arc<HealthView>,
) -> Result<Option<HealthChecker>, String> {
    view.track(&loaded.backends);
    let Some(config) = &loaded.config.healthcheck else {
        return Ok(None);
    };
    let d = &loaded.config.director;
    HealthChecker::start(config, &loaded.backends, d.address, d.gue_port, view).map(Some)
}

struct DirectorSignals(Arc<Shared>);

impl Lifecycle for DirectorSignals {
    fn reload(&self, by: &str) {
        let _ = reload::reload(&self.0, by);
    }

    fn stop(&self, by: &str) {
        let deadline = self.0.current().config.control.shutdown_deadline;
        tracing::info!(by, deadline_ms = deadline.as_millis() as u64, "stopping");
        self.0.stop.store(true, Ordering::Relaxed);
        signals::notify_stopping();
        let shared = Arc::clone(&self.0);
        signals::arm_deadline(deadline, "chance-director", move || {
            shared.finished.load(Ordering::Acquire)
        });
    }
}

fn run(
    args: &Args,
    config: DirectorConfig,
    tables: Vec<TableSpec>,
    log: LogControl,
    builder: Option<TableBuilder>,
) -> Result<(), Failure> {
    tracing::info!(version = %crate::daemon::version(), config = %args.config.display(), no_dataplane = args.no_dataplane, "chance-director starting");
    let control = config.control.clone();
    // The API socket first: a second director on the same socket stops here.
    let api_listener = bind_api(&control, "chance-director")?;
    let loaded = Arc::new(Loaded::new(config, tables));
    let shared = Arc::new(Shared::new(
        args.config.clone(),
        &loaded,
        builder,
        !args.no_dataplane,
        log,
    ));
    if let Err(e) = shared.rebuild("start") {
        if let Some(b) = api_listener {
            api_server::discard(b);
        }
        return Err(Failure::Other(anyhow::anyhow!("forwarding table: {e}")));
    }
    let started = start_controls(&shared, api_listener, &loaded);
    let rebuilder = started.and_then(|()| spawn_rebuilder(&shared).map_err(anyhow::Error::from));
    let signal_thread = rebuilder.and_then(|r| {
        signals::spawn(Arc::new(DirectorSignals(Arc::clone(&shared)))).map(|s| (r, s))
    });
    let (rebuilder, signal_thread) = match signal_thread {
        Ok(threads) => threads,
        Err(e) => {
            shared.stop.store(true, Ordering::Relaxed);
            lock(&shared.controls).stop();
            return Err(Failure::Other(e));
        }
    };
    let result = if args.no_dataplane {
        run_control_only(&shared)
    } else {
        run_dataplane(args, &shared)
    };
    shared.finished.store(true, Ordering::Release);
    shared.stop.store(true, Ordering::Relaxed);
    signal_thread.stop();
    lock(&shared.controls).stop();
    let _ = rebuilder.join();
    tracing::info!("chance-director stopped");
    result.map_err(Failure::Other)
}

fn start_controls(
    shared: &Arc<Shared>,
    api_listener: Option<api_server::Bound>,
    loaded: &Loaded,
) -> anyhow::Result<()> {
    let mut controls = lock(&shared.controls);
    if let Some(bound) = api_listener {
        controls.api = Some(serve_api(bound, shared)?);
    }
    if let Some(address) = loaded.config.control.metrics_address {
        match serve_metrics(address, shared) {
            Ok(server) => controls.metrics = Some(server),
            Err(e) => {
                tracing::error!(%address, error = %e, "metrics: cannot serve; metrics are off until a reload binds them")
            }
        }
    }
    controls.checker = start_checker(loaded, &shared.health).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// `--no-dataplane`: READY=1 once the control side serves, then wait for a stop.
fn run_control_only(shared: &Shared) -> anyhow::Result<()> {
    signals::notify_ready(READY_CONTROL_ONLY);
    tracing::warn!(
        "control plane only (--no-dataplane): health checks and API run, nothing is forwarded"
    );
    let watchdog = sd_notify::watchdog_enabled();
    let mut last_ping: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(period) = watchdog {
            if last_ping.is_none_or(|at| at.elapsed() >= period / 2) {
                last_ping = Some(Instant::now());
                signals::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The dataplane: EAL, the NIC and kernel ports, one director worker per worker lcore on the
/// runtime's frame-router worker, each reading the tables handed through
/// [`Shared::set_table_hook`] and swapping at a burst boundary; READY=1 ([`READY_DATAPLANE`])
/// once the ports run, WATCHDOG=1 from the main loop, and back when `shared.stop` is raised. An
/// mbuf not back in the pool after the ports stopped is a failure (exit 1).
fn run_dataplane(args: &Args, shared: &Arc<Shared>) -> anyhow::Result<()> {
    let loaded = shared.current();
    let Some(ports) = &loaded.config.dataplane else {
        anyhow::bail!("ports: chance-director needs [ports] with `nic` and `kernel`");
    };
    // As chanced's: the command line's EAL arguments are appended to the derived ones, or
    // replace them.
    let eal_args = ports.effective_eal_args("chance-director", &args.eal, args.replace_eal_args);
    tracing::info!("EAL arguments: {}", eal_args.join(" "));
    let spec = ports.spec(eal_args);
    let Some(table) = shared.table() else {
        anyhow::bail!("no forwarding table was built");
    };
    let slot: dataplane::TableSlot = Arc::new(arc_swap::ArcSwap::from_pointee(
        dataplane::Tables::new(table),
    ));
    let to_workers = Arc::clone(&slot);
    shared.set_table_hook(Box::new(move |table| {
        to_workers.store(Arc::new(dataplane::Tables::new(table)));
    }));
    let stats = Arc::new(dataplane::DataplaneStats::default());
    *lock(&shared.dataplane_stats) = Some(Arc::clone(&stats));
    let d = &loaded.config.director;
    let director = |port_mac: [u8; 6]| {
        let mut config = chance_director::DirectorConfig::new(d.address, d.gateway_mac, port_mac);
        config.encap.gue_port = d.gue_port;
        config.hash_fields = d.hash_fields;
        config.alt_hash_fields = d.alt_hash_fields;
        config
    };
    let until = match (args.duration, args.until_idle) {
        (Some(secs), _) => chance_runtime::RunUntil::Elapsed(
            Duration::try_from_secs_f64(secs).map_err(|e| anyhow::anyhow!("--duration: {e}"))?,
        ),
        (None, true) => chance_runtime::RunUntil::Idle(crate::daemon::IDLE_POLLS),
        (None, false) => chance_runtime::RunUntil::Stopped,
    };
    let interval = Duration::try_from_secs_f64(args.stats_interval)
        .map_err(|e| anyhow::anyhow!("--stats-interval: {e}"))?;
    let mut last_log = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let watchdog = sd_notify::watchdog_enabled();
    let mut last_ping: Option<Instant> = None;
    let mut ready = false;
    let report = chance_runtime::run_router(
        &spec,
        |_lcore, port_mac| dataplane::DirectorRouter::new(director(port_mac), &slot, &stats),
        Arc::clone(&stop),
        until,
        |live| {
            *lock(&shared.snapshot) = Some(Arc::new(crate::daemon::Snapshot::of(live)));
            if !ready {
                ready = true;
                signals::notify_ready(READY_DATAPLANE);
            }
            if let Some(period) = watchdog {
                if last_ping.is_none_or(|at| at.elapsed() >= period / 2) {
                    last_ping = Some(Instant::now());
                    signals::notify(&[sd_notify::NotifyState::Watchdog]);
                }
            }
            if shared.stop.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
            }
            if !interval.is_zero() && last_log.elapsed() >= interval {
                last_log = Instant::now();
                tracing::info!("{}", crate::report::Report::from_live(live).one_line());
            }
        },
    )?;
    let totals: Vec<String> = stats
        .totals()
        .iter()
        .map(|(counter, value)| format!("{counter}={value}"))
        .collect();
    tracing::info!(
        nic_rx = report.nic.ipackets,
        nic_tx = report.nic.opackets,
        counters = %totals.join(" "),
        "dataplane stopped"
    );
    if let Some(path) = &args.report_json {
        let mut json = crate::report::Report::from_run(&report);
        json.add_director(stats.totals().iter().map(|&(c, v)| (c.name(), v)));
        std::fs::write(path, json.json())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    if report.mbufs_in_use != 0 {
        anyhow::bail!(
            "{} mbufs still in use after the ports stopped (leaked)",
            report.mbufs_in_use
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;

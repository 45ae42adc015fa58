//! chanced: chance's dataplane daemon. Validates the configuration, starts EAL, the NIC and kernel
//! ports and one worker per worker lcore, runs until SIGINT/SIGTERM (or a duration, or the end of
//! a pcap input), then stops cleanly and prints the counters.
//!
//! `chanced --config FILE [--duration SECS | --until-idle] [--stats-interval SECS]
//!          [--report-json FILE] [-- EAL ARGS]`
//!
//! EAL arguments come from the `[dpdk]` and `[ports]` tables, or, when given after `--`, replace
//! them (the port names are still taken from `[ports]`).

use anyhow::Context;
use chance_control::reconcile::Reconciler;
use chance_control::report::Report;
use chance_control::{load, DataplaneConfig, KernelPort};
use chance_engine::table::{ConcurrentFlowTable, Source, TableConfig};
use chance_runtime::{DataplaneSpec, RunUntil};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Consecutive empty polls after which `--until-idle` ends a worker (a pcap input is exhausted at
/// the first one; the margin covers a kernel port still settling).
const IDLE_POLLS: u32 = 20_000;

#[derive(Parser, Debug)]
#[command(version, about = "chance's dataplane daemon")]
struct Args {
    /// The configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Stop after this many seconds.
    #[arg(long, conflicts_with = "until_idle")]
    duration: Option<f64>,
    /// Stop when no port has received anything for a while (pcap inputs, tests).
    #[arg(long)]
    until_idle: bool,
    /// Log the counters every this many seconds (0: never).
    #[arg(long, default_value_t = 0.0)]
    stats_interval: f64,
    /// Also write the final report as JSON to this file.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// EAL arguments, replacing the ones derived from the configuration.
    #[arg(last = true)]
    eal: Vec<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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
    match run(&args, &config, &dataplane) {
        Ok(clean) if clean => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chanced: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_error(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}

/// Runs the dataplane; true when it shut down with every mbuf returned.
fn run(
    args: &Args,
    config: &chance_control::Config,
    dataplane: &DataplaneConfig,
) -> anyhow::Result<bool> {
    let ownership = config.ownership();
    let table = Arc::new(ConcurrentFlowTable::new(TableConfig {
        capacity: ownership.capacity,
        syn_lifetime: ownership.syn_lifetime,
    }));
    for key in config.static_flows() {
        anyhow::ensure!(
            table.insert(key, Source::Static).is_stored(),
            "flow table: no room for static flow {key:?} (raise flow_table.capacity)"
        );
    }
    // Opened before EAL so that a missing namespace stops chanced before it touches the NIC.
    let reconciler = if ownership.reconcile_interval.is_zero() {
        None
    } else {
        Some(
            Reconciler::open(&ownership.namespaces, ownership.grace)
                .context("socket reconciliation")?,
        )
    };
    let eal_args = if args.eal.is_empty() {
        dataplane.eal_args("chanced").split_off(1)
    } else {
        args.eal.clone()
    };
    let spec = DataplaneSpec {
        eal_args,
        nic: dataplane.nic_name().to_owned(),
        kernel: dataplane.kernel_name().to_owned(),
        kernel_takes_nic_mac: !matches!(dataplane.kernel, KernelPort::Vdev { .. }),
        rx_descriptors: dataplane.rx_descriptors,
        tx_descriptors: dataplane.tx_descriptors,
        mempool_mbufs: dataplane.mempool_mbufs,
        mempool_cache: dataplane.mempool_cache,
        engine: config.engine_config(),
        egress_learning: ownership.egress_learning,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reconcile_stats = reconciler.as_ref().map(Reconciler::stats);
    let reconcile_thread = match reconciler {
        Some(r) => Some(
            r.spawn(
                Arc::clone(&table),
                ownership.reconcile_interval,
                Arc::clone(&stop),
            )
            .context("starting the reconciliation thread")?,
        ),
        None => None,
    };
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let until = match (args.duration, args.until_idle) {
        (Some(secs), _) => {
            RunUntil::Elapsed(Duration::try_from_secs_f64(secs).context("--duration")?)
        }
        (None, true) => RunUntil::Idle(IDLE_POLLS),
        (None, false) => RunUntil::Stopped,
    };
    let interval = Duration::try_from_secs_f64(args.stats_interval).context("--stats-interval")?;
    let mut last_log = Instant::now();
    let result = chance_runtime::run(
        &spec,
        Arc::clone(&table),
        Arc::clone(&stop),
        until,
        |live| {
            table.tick(Instant::now());
            if !interval.is_zero() && last_log.elapsed() >= interval {
                last_log = Instant::now();
                tracing::info!("{}", Report::from_live(live).one_line());
            }
        },
    );
    stop.store(true, Ordering::Relaxed);
    if let Some(thread) = reconcile_thread {
        let _ = thread.join();
    }
    let mut report = Report::from_run(&result?);
    report.add_table(&table, reconcile_stats.as_deref());
    eprint!("{}", report.text());
    if let Some(path) = &args.report_json {
        std::fs::write(path, report.json())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.mbufs_in_use == 0)
}

//! chance-pktgen: generates GUE-encapsulated traffic as a director sends it, on a DPDK port or
//! into a pcap, and measures what comes back.
//!
//! ```text
//! chance-pktgen [--profile FILE] [PROFILE FLAGS] [--write-chance-config FILE]
//!               [--pcap FILE --count N]
//!               [--port PORT [--count N] [--rx-port PORT | --no-rx] [--expect none|all|forwarded]
//!                [--json FILE] [-- EAL ARGS]]
//! ```
//!
//! Without `--pcap` or `--port` it only writes the chance config (and prints the templates'
//! summary). Exit status: 0 on success, 1 when the run fails (or leaks an mbuf), 2 for invalid
//! arguments or profile.

use anyhow::Context;
use chance_pktgen::profile::{parse_rate, Mac, Mix, Profile, Sizes};
use chance_pktgen::report::{ExpectBack, TemplateSummary};
use chance_pktgen::run::{run, RunSpec, RxPort};
use chance_runtime::Eal;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "chance-pktgen",
    version,
    about = "GUE traffic generator for chance: sends what a director sends, classifies what comes back",
    after_help = "Profile flags override the profile file's values. EAL arguments after `--` \
                  (default: -l 0-1 --file-prefix chance-pktgen-PID); give the port's vdev there, \
                  e.g. --vdev=net_memif0,role=client,socket=/run/memif.sock."
)]
struct Args {
    /// The traffic profile (TOML; see the documentation of chance_pktgen::profile).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Distinct client flows.
    #[arg(long)]
    flows: Option<u32>,
    /// Share of the flows owned by the host under test (0 to 1).
    #[arg(long)]
    owned_share: Option<f64>,
    /// Share of the flows with an inner IPv6 packet (0 to 1).
    #[arg(long)]
    ipv6_share: Option<f64>,
    /// Hop-list lengths, taken in turn (e.g. 1 or 0,1,1,2).
    #[arg(long, value_delimiter = ',')]
    hops: Option<Vec<u8>>,
    /// Frame sizes incl. FCS: 64, imix (64/570/1518 in 7:4:1) or a list 64,1518.
    #[arg(long)]
    size: Option<Sizes>,
    /// Packet mix weights: syn=5,established=60,unknown=20,udp=10,icmp=5.
    #[arg(long)]
    mix: Option<Mix>,
    /// Packets per second over all lcores (2000000, 500k, 1.5M); 0: flat out.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
    /// Measured seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of traffic before the measurement.
    #[arg(long)]
    warmup: Option<f64>,
    /// Pre-built frames (0: automatic).
    #[arg(long)]
    templates: Option<u32>,
    /// Seed of the frame schedule.
    #[arg(long)]
    seed: Option<u64>,
    /// Ethernet destination of the frames (the host under test's MAC).
    #[arg(long)]
    dst_mac: Option<Mac>,
    /// Ethernet source of the frames.
    #[arg(long)]
    src_mac: Option<Mac>,
    /// Write the owned flows as a chanced config ([encap] + [[flow]]).
    #[arg(long)]
    write_chance_config: Option<PathBuf>,
    /// Write the traffic to this pcap instead of sending it (no EAL).
    #[arg(long, requires = "count", conflicts_with = "port")]
    pcap: Option<PathBuf>,
    /// Frames to write with --pcap. With --port: packets to send in all (warm-up included),
    /// at --rate at most; what a full queue refuses is held and sent next, and the measurement
    /// ends once they are sent, or when --duration is over first (then a time limit).
    #[arg(long)]
    count: Option<u64>,
    /// Send on this DPDK port (a name such as net_memif0 or 0000:3b:00.0, or an id).
    #[arg(long)]
    port: Option<String>,
    /// Receive on this port instead of the sending one.
    #[arg(long, conflicts_with = "no_rx")]
    rx_port: Option<String>,
    /// Do not receive (transmit only).
    #[arg(long)]
    no_rx: bool,
    /// Which packets should come back, for the loss figure.
    #[arg(long, value_enum, default_value_t = ExpectBack::None)]
    expect: ExpectBack,
    /// Write the JSON summary here instead of stdout.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line, no text summary.
    #[arg(long, short)]
    quiet: bool,
    /// RX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    rxd: u16,
    /// TX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    txd: u16,
    /// Mbufs in each of the two pools, TX and RX (0: automatic).
    #[arg(long, default_value_t = 0)]
    mbufs: u32,
    /// Seconds to wait for the link (a memif peer) before sending.
    #[arg(long, default_value_t = 10.0)]
    link_timeout: f64,
    /// Milliseconds of receiving after the measurement, for what is still in flight.
    #[arg(long, default_value_t = 200)]
    drain_ms: u64,
    /// After sending, wait up to this many seconds for the peer to close the link before
    /// closing the port (net_memif: the side still polling must close first; stop the server
    /// when this logs "waiting for the peer to close the link").
    #[arg(long)]
    wait_link_down: Option<f64>,
    /// EAL arguments.
    #[arg(last = true)]
    eal: Vec<String>,
}

fn profile(args: &Args) -> Result<(Profile, String), String> {
    let (mut p, origin) = match &args.profile {
        Some(path) => (
            Profile::load(path).map_err(|e| e.to_string())?,
            path.display().to_string(),
        ),
        None => (Profile::default(), "flags".to_string()),
    };
    macro_rules! set {
        ($field:ident) => {
            if let Some(v) = args.$field.clone() {
                p.$field = v;
            }
        };
    }
    set!(flows);
    set!(owned_share);
    set!(ipv6_share);
    set!(hops);
    set!(size);
    set!(mix);
    set!(seed);
    set!(templates);
    if let Some(v) = args.rate {
        p.rate_pps = v;
    }
    if let Some(v) = args.duration {
        p.duration_secs = v;
    }
    if let Some(v) = args.warmup {
        p.warmup_secs = v;
    }
    if let Some(v) = args.dst_mac {
        p.addresses.eth_dst = v;
    }
    if let Some(v) = args.src_mac {
        p.addresses.eth_src = v;
    }
    let validated_as = if args.profile.is_some() {
        format!("{origin} (with flags)")
    } else {
        origin.clone()
    };
    p.validate(&validated_as).map_err(|e| e.to_string())?;
    Ok((p, origin))
}

fn write_json(path: Option<&PathBuf>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let (profile, origin) = match profile(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("chance-pktgen: {e}");
            return ExitCode::from(2);
        }
    };
    match main_with(&args, &profile, &origin) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chance-pktgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the requested modes; false when the run leaked mbufs.
fn main_with(args: &Args, profile: &Profile, origin: &str) -> anyhow::Result<bool> {
    let built = std::time::Instant::now();
    let (flows, templates) = chance_pktgen::traffic(profile);
    let summary = TemplateSummary::of(&templates);
    tracing::info!(
        templates = summary.count,
        mean_frame_bytes = format_args!("{:.1}", summary.mean_frame_bytes),
        flows = flows.flows.len(),
        owned = flows.owned.len(),
        ms = built.elapsed().as_millis() as u64,
        "templates built"
    );
    if let Some(path) = &args.write_chance_config {
        std::fs::write(path, flows.chance_config(profile, origin))
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(path = %path.display(), flows = flows.owned.len(), "chance config written");
    }
    if let Some(path) = &args.pcap {
        let count = args.count.unwrap_or(0);
        chance_pktgen::pcap::write(path, &templates, count)
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(path = %path.display(), frames = count, "pcap written");
        write_json(
            args.json.as_ref(),
            &serde_json::json!({ "frames": count, "profile": profile, "templates": summary }),
        )?;
        return Ok(true);
    }
    let Some(port) = &args.port else {
        if args.write_chance_config.is_none() {
            eprintln!("chance-pktgen: nothing to do: give --port (send), --pcap (write) or --write-chance-config");
        }
        write_json(
            args.json.as_ref(),
            &serde_json::json!({ "profile": profile, "templates": summary }),
        )?;
        return Ok(args.write_chance_config.is_some());
    };

    let eal_args = if args.eal.is_empty() {
        vec![
            "-l".to_string(),
            "0-1".to_string(),
            "--file-prefix".to_string(),
            format!("chance-pktgen-{}", std::process::id()),
        ]
    } else {
        args.eal.clone()
    };
    let eal = Eal::init(&eal_args).context("EAL")?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("signal handlers")?;
    }
    let mut spec = RunSpec::new(port, profile);
    spec.rx_port = match (&args.rx_port, args.no_rx) {
        (_, true) => RxPort::None,
        (Some(p), _) => RxPort::Other(p.clone()),
        (None, false) => RxPort::Same,
    };
    spec.rx_desc = args.rxd;
    spec.tx_desc = args.txd;
    spec.mbufs = args.mbufs;
    spec.link_timeout = Duration::try_from_secs_f64(args.link_timeout).context("--link-timeout")?;
    spec.count = args.count;
    spec.drain = Duration::from_millis(args.drain_ms);
    spec.expect = args.expect;
    spec.progress = !args.quiet;
    spec.wait_link_down = args
        .wait_link_down
        .map(Duration::try_from_secs_f64)
        .transpose()
        .context("--wait-link-down")?;
    let summary = run(&eal, &spec, Some(profile), Arc::new(templates), stop)?;
    if let Err(e) = eal.cleanup() {
        tracing::warn!(error = %e, "EAL cleanup");
    }
    if !args.quiet {
        eprint!("{}", summary.text());
    }
    write_json(args.json.as_ref(), &summary)?;
    Ok(summary.mbufs_in_use == 0)
}

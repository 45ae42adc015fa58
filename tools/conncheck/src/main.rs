//! chance-conncheck: proves that connections through a load balancer survive what is done to it.
//!
//! `chance-conncheck check --tcp VIP:PORT --udp VIP:PORT` keeps N TCP connections and M connected
//! UDP flows exchanging numbered messages with an echo service and reports, per flow and in total,
//! which broke (reset, wrong byte, timeout), the longest stall, TCP retransmissions and UDP replies
//! lost. `chance-conncheck serve --tcp ADDR:PORT --udp ADDR:PORT` is that echo service, for the
//! backends.

mod check;
mod echo;
mod report;
mod retrans;
mod serve;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "chance-conncheck", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Keep connections and flows echoing through the service; exit 1 if any broke.
    Check(CheckArgs),
    /// The echo service: TCP echo, UDP echo from one connected socket per client flow.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// The TCP echo service (VIP:PORT).
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// The UDP echo service (VIP:PORT).
    #[arg(long)]
    udp: Option<SocketAddr>,
    /// TCP connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Connected UDP flows.
    #[arg(long, default_value_t = 100)]
    udp_flows: usize,
    /// Messages per second per flow.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds a flow may wait for an echo (or a connection) before it counts as broken.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Seconds after which an unanswered UDP datagram counts as lost.
    #[arg(long, default_value_t = 1.0)]
    lost_after: f64,
    /// Client source addresses, used round-robin: a comma-separated list of addresses and
    /// ranges (A.B.C.D-A.B.C.E). Directors that hash the source address only need many.
    #[arg(long, value_delimiter = ',')]
    source_addresses: Vec<String>,
    /// Bind flow i to source port FIRST + i (default: ephemeral ports).
    #[arg(long, value_name = "FIRST")]
    bind_ports: Option<u16>,
    /// Write the summary, with one record per flow, as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Create FILE once every flow is connected (or broken).
    #[arg(long, value_name = "FILE")]
    ready: Option<PathBuf>,
    /// No line per second.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TCP echo on ADDR:PORT (or PORT: every address).
    #[arg(long, value_parser = parse_listen)]
    tcp: Option<SocketAddr>,
    /// UDP echo on ADDR:PORT. The address is required (the service's address, the VIP): each
    /// flow's socket is bound to it and connected to the client.
    #[arg(long)]
    udp: Option<SocketAddr>,
    /// Create FILE (with the pid) once listening.
    #[arg(long, value_name = "FILE")]
    ready: Option<PathBuf>,
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    text.parse()
        .map_err(|e| format!("{text:?}: expected ADDR:PORT or PORT ({e})"))
}

/// Expands `A`, `A-B` (IPv4, inclusive, at most 65536 addresses) into addresses.
fn parse_sources(specs: &[String]) -> anyhow::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for spec in specs.iter().filter(|s| !s.is_empty()) {
        match spec.split_once('-') {
            None => out.push(
                spec.parse()
                    .with_context(|| format!("--source-addresses {spec:?}"))?,
            ),
            Some((first, last)) => {
                let first: Ipv4Addr = first
                    .parse()
                    .with_context(|| format!("--source-addresses {spec:?}"))?;
                let last: Ipv4Addr = last
                    .parse()
                    .with_context(|| format!("--source-addresses {spec:?}"))?;
                let (first, last) = (u32::from(first), u32::from(last));
                if last < first || last - first >= 65536 {
                    bail!(
                        "--source-addresses {spec:?}: a range of 1 to 65536 addresses, low to high"
                    );
                }
                out.extend((first..=last).map(|a| IpAddr::V4(Ipv4Addr::from(a))));
            }
        }
    }
    Ok(out)
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} {value}: a positive number of seconds"))
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if args.connections > 0 && args.tcp.is_none() {
        bail!(
            "--connections {} needs --tcp VIP:PORT (or --connections 0)",
            args.connections
        );
    }
    if args.udp_flows > 0 && args.udp.is_none() {
        bail!(
            "--udp-flows {} needs --udp VIP:PORT (or --udp-flows 0)",
            args.udp_flows
        );
    }
    if !(args.rate > 0.0 && args.rate <= 1000.0) {
        bail!(
            "--rate {}: messages per second per flow, more than 0 and at most 1000",
            args.rate
        );
    }
    let plan = check::Plan {
        tcp: args.tcp,
        udp: args.udp,
        connections: args.connections,
        udp_flows: args.udp_flows,
        rate: args.rate,
        duration: seconds("duration", args.duration)?,
        timeout: seconds("timeout", args.timeout)?,
        lost_after: seconds("lost-after", args.lost_after)?,
        sources: parse_sources(&args.source_addresses)?,
        first_port: args.bind_ports,
        progress: !args.quiet,
        ready: args.ready,
    };
    let summary = check::run(&plan, &stop_flag()?).context("check")?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, text + "\n").with_context(|| format!("--json {}", path.display()))?;
    }
    println!("{}", summary.final_line());
    Ok(if summary.broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.tcp.is_none() && args.udp.is_none() {
        bail!("serve needs --tcp and/or --udp");
    }
    if args.udp.is_some_and(|a| a.ip().is_unspecified()) {
        bail!("--udp needs the service's address (ADDR:PORT): each flow's socket is bound to it and connected to the client");
    }
    let ready = || match &args.ready {
        Some(path) => std::fs::write(path, format!("{}\n", std::process::id())),
        None => Ok(()),
    };
    serve::serve(args.tcp, args.udp, &stop_flag()?, ready).context("serve")?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => run_check(args),
        Command::Serve(args) => run_serve(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chance-conncheck: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ranges_expand_inclusively_and_bad_ones_are_refused() {
        let got = parse_sources(&["10.0.0.1".into(), "10.0.1.254-10.0.2.1".into()]).unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(got[4], "10.0.2.1".parse::<IpAddr>().unwrap());
        assert!(parse_sources(&["10.0.0.5-10.0.0.1".into()]).is_err());
        assert!(parse_sources(&["nonsense".into()]).is_err());
    }

    #[test]
    fn a_bare_port_listens_on_every_address() {
        assert_eq!(parse_listen("7").unwrap(), "0.0.0.0:7".parse().unwrap());
        assert!(parse_listen("x:7").is_err());
    }
}

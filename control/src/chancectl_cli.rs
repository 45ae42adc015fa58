//! chancectl's command line (clap): the one definition chancectl parses and `chance-gen-docs`
//! renders into man pages and shell completions.

use crate::api::FlowSpec;
use crate::frame::Inner;
use clap::{Parser, Subcommand};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The exit statuses, as `--help` prints them.
pub const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  the command failed: a capture that is malformed or truncated, an output that cannot be
     written, frames that are not Ethernet; chanced unreachable or refusing the request
  2  usage or configuration error: bad arguments, a configuration file that is invalid or cannot
     be used on this host, a file named on the command line that cannot be opened, an output
     that cannot be created";

/// chance's command-line tool.
#[derive(Debug, Parser)]
#[command(name = "chancectl", version, after_help = EXIT_STATUS)]
pub struct Cli {
    /// chanced's API socket [default: [control] api_socket of /etc/chance/chance.toml, else
    /// /run/chance/chance.sock].
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// chancectl's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Counter rates: per verdict, per counter, per lcore, per port.
    Stats(StatsArgs),
    /// The flow table.
    #[command(subcommand)]
    Flows(FlowsCommand),
    /// Runs one packet through the engine over the live flow table (which it does not change),
    /// or offline with --config.
    Simulate(SimulateArgs),
    /// Reloads chanced's configuration file (as SIGHUP does) and prints what changed.
    Reload {
        /// Print the reply as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Configuration file commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Capture live frames into a pcapng file (tcpdump and Wireshark read it) without stopping
    /// chanced: per port, per verdict, with a flow filter.
    #[command(after_help = EXIT_STATUS)]
    Capture(CaptureArgs),
    /// Run every frame of a capture through the engine and write the verdicts.
    #[command(after_help = EXIT_STATUS)]
    Replay(ReplayArgs),
    /// The director: offline tools, and a running chance-director (its socket: --socket, else
    /// /etc/chance/director.toml's).
    #[command(subcommand)]
    Director(crate::director::ctl::DirectorCommand),
}

/// `chancectl stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Redraw every interval until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Print JSON: the counters and their rates.
    #[arg(long)]
    pub json: bool,
    /// Seconds between the two samples a rate is computed from.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
}

/// A flow on the command line.
#[derive(Debug, clap::Args)]
pub struct FlowArgs {
    /// tcp or udp.
    pub proto: String,
    /// The host's side, ADDR:PORT ([ADDR]:PORT for IPv6).
    pub local: String,
    /// The remote side.
    pub remote: String,
}

impl FlowArgs {
    /// The flow as the API spells it.
    pub fn spec(&self) -> FlowSpec {
        FlowSpec {
            proto: self.proto.clone(),
            local: self.local.clone(),
            remote: self.remote.clone(),
        }
    }
}

/// `chancectl flows`.
#[derive(Debug, Subcommand)]
pub enum FlowsCommand {
    /// Lists entries.
    List {
        /// Only this source: syn, egress, socket or static.
        #[arg(long)]
        source: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Looks one flow up.
    Lookup {
        /// The flow.
        #[command(flatten)]
        flow: FlowArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Adds a static entry (until chanced restarts; put it in the file to keep it).
    Add(FlowArgs),
    /// Removes a static entry.
    Del(FlowArgs),
}

/// `chancectl simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The inner packet: tcp, udp or icmp.
    #[arg(long, default_value = "tcp")]
    pub inner: Inner,
    /// The client, ADDR:PORT.
    #[arg(long, required_unless_present_any = ["pcap", "hex"])]
    pub src: Option<SocketAddr>,
    /// The service (a VIP on this host), ADDR:PORT.
    #[arg(long, required_unless_present_any = ["pcap", "hex"])]
    pub dst: Option<SocketAddr>,
    /// TCP flags: S, A (or .), F, R, P.
    #[arg(long, default_value = "A")]
    pub flags: String,
    /// The hop list after this host, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub hops: Vec<Ipv4Addr>,
    /// GLB's next_hop index.
    #[arg(long, default_value_t = 0)]
    pub next_hop: u8,
    /// Set GLB's forward_syn flag.
    #[arg(long)]
    pub forward_syn: bool,
    /// The outer source (the director).
    #[arg(long, default_value = "192.0.2.1")]
    pub outer_src: Ipv4Addr,
    /// The outer destination [default: chanced's first encapsulation address].
    #[arg(long)]
    pub outer_dst: Option<Ipv4Addr>,
    /// Take the frame from this capture instead.
    #[arg(long, conflicts_with_all = ["src", "dst", "hex"], requires = "index")]
    pub pcap: Option<PathBuf>,
    /// The frame's index in the capture (0 is the first).
    #[arg(long)]
    pub index: Option<u64>,
    /// Take the frame as hex instead.
    #[arg(long, conflicts_with_all = ["src", "dst"])]
    pub hex: Option<String>,
    /// Simulate offline, without chanced: this file's [encap] and static flows (a flow table
    /// as chanced's right after start-up, before it learns any flow).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the reply as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `chancectl replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Configuration file (its [encap] table and static flows are used).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Input capture, classic pcap or pcapng.
    #[arg(long, value_name = "IN.pcap")]
    pub pcap: PathBuf,
    /// Output JSON Lines file, one verdict per frame ("-" for standard output).
    #[arg(long, value_name = "OUT.jsonl")]
    pub verdicts: PathBuf,
    /// Write the accepted (decapsulated) frames to this pcap.
    #[arg(long, value_name = "A.pcap")]
    pub accepted: Option<PathBuf>,
    /// Write the forwarded (rewritten) frames to this pcap.
    #[arg(long, value_name = "F.pcap")]
    pub forwarded: Option<PathBuf>,
}

/// `chancectl config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and summarise it: the file, and what it names on this host
    /// (the API group, the reconciled namespaces), as chanced's start and a reload do.
    Check {
        /// The configuration file.
        file: PathBuf,
        /// Check the file alone, not what it names on this host (for a file meant for another).
        #[arg(long)]
        file_only: bool,
    },
    /// The running chanced's configuration.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `chancectl capture`.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// The pcapng file to write (one interface per port, each packet's verdict in its comment).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The port the frames are received on: nic, kernel (the host's egress) or any.
    #[arg(long, default_value = "any", value_parser = ["nic", "kernel", "any"])]
    pub port: String,
    /// Only frames given this verdict (kernel-port frames are `egress`).
    #[arg(long, default_value = "any",
          value_parser = ["accept", "forward", "drop", "pass", "egress", "any"])]
    pub verdict: String,
    /// A flow filter on the outer IP header, PROTO[/ADDR[/PORT]] with `*` for any part: PROTO
    /// is tcp, udp, icmp, icmp6, ip or a number; ADDR and PORT match either side
    /// (e.g. tcp/203.0.113.10/443, udp/*/19523).
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<chance_runtime::capture::FlowFilter>,
    /// How many frames to capture.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=crate::api::MAX_CAPTURE_COUNT))]
    pub count: u64,
    /// Bytes kept of each frame.
    #[arg(long, default_value_t = crate::api::DEFAULT_SNAPLEN as u64,
          value_parser = clap::value_parser!(u64).range(1..=crate::api::MAX_SNAPLEN as u64))]
    pub snaplen: u64,
    /// Seconds to wait for the frames; the file then holds those captured so far.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = capture_timeout)]
    pub timeout: std::time::Duration,
}

/// `--timeout`: seconds, more than 0 and at most the API's limit.
fn capture_timeout(text: &str) -> Result<std::time::Duration, String> {
    let most = std::time::Duration::from_millis(crate::api::MAX_CAPTURE_TIMEOUT_MS);
    text.parse::<f64>()
        .ok()
        .and_then(|secs| std::time::Duration::try_from_secs_f64(secs).ok())
        .filter(|t| t.as_millis() >= 1 && *t <= most)
        .ok_or_else(|| format!("expected seconds, 0.001 to {}", most.as_secs()))
}

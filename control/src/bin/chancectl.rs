//! chancectl: chance's command-line tool.
//!
//! Exit status: 0 on success, 2 for a configuration error (or a usage error), 1 for anything else.
#![forbid(unsafe_code)]

use anyhow::bail;
use chance_control::{config, replay, ConfigError, ReplayOutputs};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// chance's command-line tool.
#[derive(Debug, Parser)]
#[command(name = "chancectl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every frame of a capture through the engine and write the verdicts.
    Replay(ReplayArgs),
    /// Configuration file commands.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Configuration file (its [encap] table and static flows are used).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Input capture, classic pcap or pcapng.
    #[arg(long, value_name = "IN.pcap")]
    pcap: PathBuf,
    /// Output JSON Lines file, one verdict per frame ("-" for standard output).
    #[arg(long, value_name = "OUT.jsonl")]
    verdicts: PathBuf,
    /// Write the accepted (decapsulated) frames to this pcap.
    #[arg(long, value_name = "A.pcap")]
    accepted: Option<PathBuf>,
    /// Write the forwarded (rewritten) frames to this pcap.
    #[arg(long, value_name = "F.pcap")]
    forwarded: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and summarise it.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<ConfigError>() {
            Some(config_error) => {
                eprintln!("{config_error}");
                ExitCode::from(2)
            }
            None => {
                eprintln!("chancectl: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => check(file),
        Command::Replay(args) => run_replay(args),
    }
}

fn check(file: PathBuf) -> anyhow::Result<()> {
    let config = config::load(&file)?;
    let addresses: Vec<String> = config.addresses().iter().map(|a| a.to_string()).collect();
    let flows = config.static_flows().len();
    println!(
        "{}: OK: addresses {}, port {}, mtu {}, {flows} static flow{}",
        file.display(),
        addresses.join(" "),
        config.port(),
        config.mtu(),
        if flows == 1 { "" } else { "s" },
    );
    Ok(())
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let outputs = ReplayOutputs {
        verdicts: args.verdicts,
        accepted: args.accepted,
        forwarded: args.forwarded,
    };
    let summary = replay(&config, &args.pcap, &outputs)?;
    eprint!("{summary}");
    if let Some((index, link_type)) = summary.first_non_ethernet {
        bail!(
            "{}: {} frame(s) not replayed: link type is not Ethernet (first: frame {index}, {link_type:?} = {})",
            args.pcap.display(),
            summary.non_ethernet,
            u32::from(link_type),
        );
    }
    Ok(())
}

//! chancectl: chance's command-line tool. Talks to a running chanced over its API socket (stats,
//! flows, simulate, reload, config show) and works offline (config check, replay).
//!
//! Exit status (also in `--help`): see `chancectl_cli::EXIT_STATUS`.
#![forbid(unsafe_code)]

use anyhow::{bail, Context};
use chance_control::api::{
    Client, ClientError, ConfigReply, FlowChangeReply, FlowsListReply, LookupReply, ReloadReply,
    Request, SimulateReply,
};
use chance_control::chancectl_cli::{
    CaptureArgs, Cli, Command, ConfigCommand, FlowsCommand, ReplayArgs, SimulateArgs,
};
use chance_control::control_config::default_socket;
use chance_control::director_cli::DirectorInputError;
use chance_control::frame::PacketSpec;
use chance_control::pcapio::CaptureReader;
use chance_control::{config, replay, simulate, ConfigError, ReplayError, ReplayOutputs};
use clap::Parser;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod stats;
use stats::stats;

/// Where chancectl looks for the daemon's socket when `--socket` is not given.
const DEFAULT_CONFIG: &str = "/etc/chance/chance.toml";

/// A configuration that validates but cannot be used on this host (exit 2, as chanced's).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HostError(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<ConfigError>() {
            Some(config_error) => {
                eprintln!("{config_error}");
                ExitCode::from(2)
            }
            None if e.is::<DirectorInputError>() => {
                eprintln!("chancectl: {e}");
                ExitCode::from(2)
            }
            None if e.is::<chance_control::capture_file::OutputError>() => {
                eprintln!("chancectl: {e}");
                ExitCode::from(2)
            }
            None if e.is::<HostError>() => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
            None if e
                .downcast_ref::<ReplayError>()
                .is_some_and(ReplayError::is_usage) =>
            {
                eprintln!("chancectl: {e:#}");
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
    let socket = cli.socket;
    match cli.command {
        Command::Config(ConfigCommand::Check { file, file_only }) => check(file, file_only),
        Command::Replay(args) => run_replay(args),
        Command::Config(ConfigCommand::Show { json }) => show_config(&connect(socket)?, json),
        Command::Stats(args) => stats(connect(socket)?, &args),
        Command::Flows(command) => flows(connect(socket)?, command),
        Command::Simulate(args) => simulate(socket, args),
        Command::Reload { json } => reload(connect(socket)?, json),
        Command::Capture(args) => capture(socket, &args),
        Command::Director(command) => {
            use chance_control::director::ctl;
            print!("{}", ctl::run(&ctl::socket_path(socket), &command)?);
            Ok(())
        }
    }
}

/// The socket: `--socket`, else the default configuration's, else the default path.
fn socket_path(socket: Option<PathBuf>) -> PathBuf {
    socket.unwrap_or_else(|| match config::load(Path::new(DEFAULT_CONFIG)) {
        Ok(c) => c
            .control()
            .api_socket
            .clone()
            .unwrap_or_else(|| default_socket("chance")),
        Err(_) => default_socket("chance"),
    })
}

/// A connection, and where it goes (for messages).
struct Api {
    client: std::cell::RefCell<Client>,
}

impl Api {
    fn call(&self, request: &Request) -> anyhow::Result<Value> {
        Ok(self.client.borrow_mut().call(request)?)
    }

    fn call_as<T: serde::de::DeserializeOwned>(&self, request: &Request) -> anyhow::Result<T> {
        Ok(self.client.borrow_mut().call_as(request)?)
    }
}

fn connect(socket: Option<PathBuf>) -> anyhow::Result<Api> {
    let path = socket_path(socket);
    match Client::connect(&path) {
        Ok(client) => Ok(Api {
            client: std::cell::RefCell::new(client),
        }),
        Err(ClientError::Io { path, error }) => {
            let hint = match error.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    " (the API socket is mode 0660: run as root or as a member of [control] api_group)"
                }
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    " (is chanced running? --socket names another socket)"
                }
                _ => "",
            };
            bail!("cannot connect to chanced at {path}: {error}{hint}")
        }
        Err(e) => Err(e.into()),
    }
}

fn check(file: PathBuf, file_only: bool) -> anyhow::Result<()> {
    // A file that cannot be read is reported by the loader below (which also refuses what is not
    // a regular file, before anything is read).
    let text = config::read_bytes(&file)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    if config::Daemon::of(&text) == config::Daemon::Director {
        print!("{}", chance_control::director::ctl::check(&file)?);
        return Ok(());
    }
    let config = config::load(&file)?;
    if !file_only {
        chance_control::daemon::check_host(&config, &file).map_err(HostError)?;
    }
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

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

// ---- flows ----

fn flows(api: Api, command: FlowsCommand) -> anyhow::Result<()> {
    match command {
        FlowsCommand::List {
            source,
            limit,
            json,
        } => {
            let reply: FlowsListReply = api.call_as(&Request::FlowsList {
                source,
                limit: Some(limit),
            })?;
            if json {
                return print_json(&reply);
            }
            println!(
                "{:<5} {:<45} {:<45} {:<7} {:>8}",
                "proto", "local", "remote", "source", "age s"
            );
            for f in &reply.flows {
                println!(
                    "{:<5} {:<45} {:<45} {:<7} {:>8}",
                    f.proto, f.local, f.remote, f.source, f.age_secs
                );
            }
            println!(
                "{} shown, {} matched, {} entries in the table",
                reply.flows.len(),
                reply.matched,
                reply.entries
            );
        }
        FlowsCommand::Lookup { flow, json } => {
            let reply: LookupReply = api.call_as(&Request::FlowsLookup { flow: flow.spec() })?;
            if json {
                return print_json(&reply);
            }
            match (&reply.source, reply.age_secs) {
                (Some(source), Some(age)) => println!(
                    "{}: present, source {source}, age {age} s, {}",
                    reply.flow,
                    if reply.owned {
                        "owned"
                    } else {
                        "not owned (expired)"
                    }
                ),
                _ => println!("{}: absent", reply.flow),
            }
        }
        FlowsCommand::Add(flow) => {
            let reply: FlowChangeReply = api.call_as(&Request::FlowsAdd { flow: flow.spec() })?;
            println!("{}: {}", reply.flow, reply.outcome);
        }
        FlowsCommand::Del(flow) => {
            let reply: FlowChangeReply = api.call_as(&Request::FlowsDel { flow: flow.spec() })?;
            println!("{}: {}", reply.flow, reply.outcome);
        }
    }
    Ok(())
}

// ---- simulate ----

fn frame_from_pcap(path: &Path, index: u64) -> anyhow::Result<Vec<u8>> {
    let mut reader = CaptureReader::open(path).with_context(|| format!("{}", path.display()))?;
    let mut buf = Vec::new();
    for i in 0..=index {
        if reader
            .next_frame(&mut buf)
            .with_context(|| format!("{}: frame {i}", path.display()))?
            .is_none()
        {
            bail!("{}: has {i} frame(s), no frame {index}", path.display());
        }
    }
    Ok(buf)
}

/// The frame `args` describe; `encap` gives the destination address and GUE port a built one
/// defaults to (asked only when the frame is built).
fn simulated_frame(
    args: &SimulateArgs,
    encap: impl FnOnce() -> anyhow::Result<(Option<Ipv4Addr>, u16)>,
) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = &args.pcap {
        return frame_from_pcap(path, args.index.unwrap_or(0));
    }
    if let Some(text) = &args.hex {
        return hex::decode(text.trim()).context("--hex");
    }
    let (first_address, port) = encap()?;
    let outer_dst = match args.outer_dst.or(first_address) {
        Some(a) => a,
        None => bail!("no encapsulation address to send to (give --outer-dst)"),
    };
    let (Some(src), Some(dst)) = (args.src, args.dst) else {
        bail!("--src and --dst describe the packet (or give --pcap or --hex)");
    };
    PacketSpec {
        inner: args.inner,
        src,
        dst,
        flags: args.flags.clone(),
        hops: args.hops.clone(),
        next_hop: args.next_hop,
        forward_syn: args.forward_syn,
        outer_src: args.outer_src,
        outer_dst,
        port,
    }
    .build()
    .map_err(anyhow::Error::msg)
}

fn simulate(socket: Option<PathBuf>, args: SimulateArgs) -> anyhow::Result<()> {
    let (frame, reply) = match &args.config {
        Some(path) => {
            let config = config::load(path)?;
            let frame = simulated_frame(&args, || {
                Ok((config.addresses().first().copied(), config.port()))
            })?;
            let table = simulate::static_table(&config).map_err(anyhow::Error::msg)?;
            let reply = simulate::run(&config.engine_config(), &table, &hex::encode(&frame))
                .map_err(anyhow::Error::msg)?;
            (frame, reply)
        }
        None => {
            let api = connect(socket)?;
            let frame = simulated_frame(&args, || {
                let running: ConfigReply = api.call_as(&Request::Config)?;
                let first = match running.encap.addresses.first() {
                    Some(a) => Some(a.parse().context("chanced's encapsulation address")?),
                    None => None,
                };
                Ok((first, running.encap.port))
            })?;
            let reply: SimulateReply = api.call_as(&Request::Simulate {
                frame: hex::encode(&frame),
            })?;
            (frame, reply)
        }
    };
    if args.json {
        return print_json(&reply);
    }
    println!("input ({} bytes):", frame.len());
    for line in &reply.input_headers {
        println!("  {line}");
    }
    if !reply.lookups.is_empty() {
        println!("flow table:");
        for l in &reply.lookups {
            println!("  {}: {}", l.flow, l.answer);
        }
    }
    match &reply.reason {
        Some(reason) => println!("verdict: {} ({reason})", reply.verdict),
        None => println!("verdict: {}", reply.verdict),
    }
    if let Some(output) = &reply.output {
        println!("output ({} bytes):", output.len() / 2);
        for line in &reply.output_headers {
            println!("  {line}");
        }
    }
    Ok(())
}

// ---- reload, config show ----

fn reload(api: Api, json: bool) -> anyhow::Result<()> {
    let reply: ReloadReply = api.call_as(&Request::Reload)?;
    if json {
        return print_json(&reply);
    }
    if reply.applied.is_empty() {
        println!("reloaded: nothing to change");
    } else {
        println!("reloaded:");
        for change in &reply.applied {
            println!("  {change}");
        }
    }
    if !reply.restart_required.is_empty() {
        println!(
            "needs a restart (running values kept): {}",
            reply.restart_required.join(", ")
        );
    }
    println!(
        "reloads: {} ok, {} failed",
        reply.reloads_total, reply.reload_failures_total
    );
    Ok(())
}

fn show_config(api: &Api, json: bool) -> anyhow::Result<()> {
    let value = api.call(&Request::Config)?;
    if json {
        return print_json(&value);
    }
    let c: ConfigReply = serde_json::from_value(value)?;
    let or_off = |v: &Option<String>| v.clone().unwrap_or_else(|| "off".into());
    println!("chanced {} with {}", c.version, c.path);
    println!(
        "encap: addresses {}, port {}, mtu {}",
        c.encap.addresses.join(" "),
        c.encap.port,
        c.encap.mtu
    );
    println!("lcores {:?}, nic {}, kernel {}", c.lcores, c.nic, c.kernel);
    println!("eal: {}", c.eal_args.join(" "));
    println!(
        "flow table: capacity {}, syn lifetime {} s, egress learning {}, {} static flow(s) in the file",
        c.flow_table_capacity,
        c.syn_lifetime_secs,
        if c.egress_learning { "on" } else { "off" },
        c.static_flows
    );
    println!(
        "reconcile: interval {} ms, grace {} s, namespaces {}",
        c.reconcile_interval_ms,
        c.reconcile_grace_secs,
        c.reconcile_namespaces.join(" ")
    );
    println!(
        "api {} (group {}, request timeout {} ms), metrics {} (configured {}), log {}, shutdown deadline {} ms",
        or_off(&c.api_socket),
        c.api_group.clone().unwrap_or_else(|| "root only".into()),
        c.api_request_timeout_ms,
        or_off(&c.metrics_bound),
        or_off(&c.metrics_address),
        c.log_level,
        c.shutdown_deadline_ms
    );
    println!(
        "reloads: {} ok, {} failed{}",
        c.reloads_total,
        c.reload_failures_total,
        c.last_reload_error
            .as_ref()
            .map(|e| format!(" (last: {e})"))
            .unwrap_or_default()
    );
    if !c.pending_restart.is_empty() {
        println!("waiting for a restart: {}", c.pending_restart.join(", "));
    }
    Ok(())
}

/// `chancectl capture`: asks chanced for the frames, writes them as pcapng.
fn capture(socket: Option<PathBuf>, args: &CaptureArgs) -> anyhow::Result<()> {
    use chance_control::api::{CaptureReply, CaptureRequest};
    use chance_control::capture_file::{write_pcapng, OutputError};
    let file = std::fs::File::create(&args.out).map_err(|error| OutputError {
        path: args.out.display().to_string(),
        error,
    })?;
    let api = connect(socket)?;
    // The daemon answers once the capture ends: give it the timeout and some slack.
    api.client
        .borrow_mut()
        .set_reply_timeout(args.timeout + Duration::from_secs(30))?;
    let request = Request::Capture(CaptureRequest {
        port: Some(args.port.clone()),
        verdict: Some(args.verdict.clone()),
        filter: args.filter.map(|f| f.to_string()),
        count: args.count,
        snaplen: Some(usize::try_from(args.snaplen)?),
        timeout_ms: u64::try_from(args.timeout.as_millis())?,
    });
    let reply: CaptureReply = api.call_as(&request)?;
    let out = write_pcapng(std::io::BufWriter::new(file), &reply)
        .with_context(|| format!("writing {}", args.out.display()))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let ended = if reply.timed_out {
        format!(" (timed out after {} s)", args.timeout.as_secs_f64())
    } else {
        String::new()
    };
    println!(
        "captured {} of {} frames into {}{ended}; dropped by capture: {}",
        reply.frames.len(),
        args.count,
        args.out.display(),
        reply.dropped
    );
    Ok(())
}

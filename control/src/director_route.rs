//! `chancectl director route`: every frame of a capture through the director's packet path,
//! offline, one JSON line per frame (verdict, table, row, hops, the encapsulated frame).
//!
//! Two sources of tables and settings:
//! - glb-director's own files: its director configuration (`director.conf`: outbound source
//!   address and gateway MAC, hash fields, ICMP echo forwarding) and its forwarding-table JSON.
//!   Rows are GLB's (primary and secondary), so the output is what a GLB director sends.
//! - chance's director file (`--config`): its `[director]` settings and its one table of binds and
//!   backends, with chance's hop lists over the file's states and `healthy` values.
//!
//! Every input is read, and every frame routed, before anything is written: a bad input leaves
//! an existing output untouched, and the output is replaced atomically.

use crate::director::table::source;
use crate::director_cli::{write_atomically, DirectorInputError};
use crate::director_config;
use crate::pcapio::CaptureReader;
use chance_director::glb_json::{self, GlbConfig};
use chance_director::{
    Director, DirectorConfig, DropReason, HashFields, HopTable, Route, RouteTable,
};
use chance_engine::wire::ethernet::EthernetFrame;
use pcap_file::DataLink;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where the tables and the director's settings come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableFiles {
    /// glb-director's director configuration and forwarding-table JSON.
    Glb {
        /// glb-director's `director.conf` (JSON).
        director_json: PathBuf,
        /// glb-director's forwarding-table JSON.
        tables_json: PathBuf,
    },
    /// chance's director configuration (TOML).
    Chance(PathBuf),
}

/// The Ethernet source of encapsulated frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMac {
    /// This address for every frame (`--port-mac`).
    Fixed([u8; 6]),
    /// The input frame's destination: the port that received a frame sends it back out.
    InputDestination,
}

/// One `route` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest {
    /// The tables and settings.
    pub files: TableFiles,
    /// Route every frame by this table, without matching binds.
    pub table: Option<usize>,
    /// The capture (classic pcap or pcapng, Ethernet frames).
    pub pcap: PathBuf,
    /// The JSON Lines output (replaced atomically).
    pub out: PathBuf,
    /// The outer Ethernet source.
    pub port_mac: PortMac,
}

/// How many frames got each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteSummary {
    /// Encapsulated for a backend.
    pub forward: u64,
    /// Handed to the kernel.
    pub pass: u64,
    /// Dropped.
    pub drop: u64,
}

impl std::fmt::Display for RouteSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "frames {}: forward {}, pass {}, drop {}",
            self.forward + self.pass + self.drop,
            self.forward,
            self.pass,
            self.drop
        )
    }
}

/// One output line.
#[derive(Debug, Serialize)]
struct RouteLine {
    index: u64,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hops: Vec<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
}

impl RouteLine {
    /// The line for frame `index` routed by `route`.
    fn new(index: u64, route: Route<'_>, frame: &[u8], request: &RouteRequest) -> Self {
        let mut line = RouteLine {
            index,
            verdict: "pass",
            reason: None,
            table: None,
            row: None,
            hops: Vec::new(),
            output: None,
        };
        match route {
            Route::Encapsulate(encap) => {
                let mut output = encap.output(frame);
                if request.port_mac == PortMac::InputDestination {
                    // A forwarded frame had a whole Ethernet header, and so has its output.
                    let received_on = EthernetFrame::new_unchecked(frame).dst_addr();
                    EthernetFrame::new_unchecked(&mut output[..]).set_src_addr(received_on);
                }
                line.verdict = "forward";
                // route_by reports its one table as index 0: name it as the user did.
                line.table = Some(request.table.unwrap_or(encap.table));
                line.row = Some(encap.row);
                line.hops = encap.header.hops().collect();
                line.output = Some(hex::encode(output));
            }
            Route::Pass => {}
            Route::Drop(reason) => {
                line.verdict = "drop";
                line.reason = Some(reason_name(reason));
            }
        }
        line
    }
}

impl RouteSummary {
    fn count(&mut self, line: &RouteLine) {
        match line.verdict {
            "forward" => self.forward += 1,
            "drop" => self.drop += 1,
            _ => self.pass += 1,
        }
    }
}

/// glb-director's director configuration: the keys that change a packet's route. The rest of
/// the file (lcores, flow_paths, num_worker_queues, kni_ip, statsd_port, rx_drop_en, ...) is about
/// cores and queues and is ignored.
#[derive(Debug, Deserialize)]
struct GlbDirectorFile {
    outbound_src_ip: String,
    outbound_gateway_mac: String,
    hash_fields: Option<GlbHashFields>,
    alt_hash_fields: Option<GlbHashFields>,
    forward_icmp_ping_responses: Option<bool>,
}

/// GLB's hash fields: an object of booleans, absent ones false.
#[derive(Debug, Deserialize)]
struct GlbHashFields {
    #[serde(default)]
    src_addr: bool,
    #[serde(default)]
    dst_addr: bool,
    #[serde(default)]
    src_port: bool,
    #[serde(default)]
    dst_port: bool,
}

impl GlbHashFields {
    fn fields(&self, key: &str) -> Result<HashFields, String> {
        let fields = HashFields {
            src_addr: self.src_addr,
            dst_addr: self.dst_addr,
            src_port: self.src_port,
            dst_port: self.dst_port,
        };
        // As GLB: a list given must name at least one field.
        if !(fields.src_addr || fields.dst_addr || fields.src_port || fields.dst_port) {
            return Err(format!("{key}: at least one field must be true"));
        }
        Ok(fields)
    }
}

fn input_error(path: &Path, message: impl Into<String>) -> DirectorInputError {
    DirectorInputError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads glb-director's director configuration.
fn glb_director_config(
    path: &Path,
    port_mac: [u8; 6],
) -> Result<DirectorConfig, DirectorInputError> {
    let error = |m: String| input_error(path, m);
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
    let file: GlbDirectorFile = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
    let src_addr: Ipv4Addr = file.outbound_src_ip.trim().parse().map_err(|_| {
        error(format!(
            "outbound_src_ip: `{}` is not an IPv4 address",
            file.outbound_src_ip
        ))
    })?;
    let gateway_mac = director_config::parse_mac(&file.outbound_gateway_mac).ok_or_else(|| {
        error(format!(
            "outbound_gateway_mac: `{}` is not a MAC address",
            file.outbound_gateway_mac
        ))
    })?;
    let mut config = DirectorConfig::new(src_addr, gateway_mac, port_mac);
    if let Some(fields) = &file.hash_fields {
        config.hash_fields = fields.fields("hash_fields").map_err(error)?;
    }
    if let Some(fields) = &file.alt_hash_fields {
        config.alt_hash_fields = Some(fields.fields("alt_hash_fields").map_err(error)?);
    }
    config.forward_icmp_echo = file.forward_icmp_ping_responses.unwrap_or(true);
    Ok(config)
}

/// glb-director's forwarding tables, with GLB's rows.
fn glb_tables(path: &Path) -> Result<Vec<RouteTable<HopTable>>, DirectorInputError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| input_error(path, format!("cannot read: {e}")))?;
    let GlbConfig { tables, .. } =
        glb_json::parse(&text).map_err(|e| input_error(path, e.to_string()))?;
    tables
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            let rows = HopTable::glb(&table.seed, &table.backend_list())
                .map_err(|e| input_error(path, format!("tables[{i}]: {e}")))?;
            Ok(RouteTable::new(table.binds, table.hash_key, rows))
        })
        .collect()
}

/// chance's director file: its settings and its tables, with chance's hop lists.
fn chance_files(
    path: &Path,
    port_mac: [u8; 6],
) -> anyhow::Result<(DirectorConfig, Vec<RouteTable<HopTable>>)> {
    let file = director_config::load(path)?;
    let settings = &file.director;
    let error = |m: String| input_error(path, m);
    let mut config = DirectorConfig::new(settings.address, settings.gateway_mac, port_mac);
    config.encap.gue_port = settings.gue_port;
    config.hash_fields = settings.hash_fields;
    config.alt_hash_fields = settings.alt_hash_fields;
    let tables = source(&file)
        .map_err(error)?
        .into_iter()
        .map(|spec| {
            let rows =
                HopTable::build(&spec.seed, &spec.backends).map_err(|e| error(e.to_string()))?;
            Ok(RouteTable::new(spec.binds, spec.hash_key, rows))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((config, tables))
}

/// The reason's name (its counter's, without the common prefix).
fn reason_name(reason: DropReason) -> &'static str {
    let name = reason.counter().name();
    name.strip_prefix("errors_total_").unwrap_or(name)
}

/// Routes every frame of `request.pcap` and writes the lines to `request.out`.
pub fn route(request: &RouteRequest) -> anyhow::Result<RouteSummary> {
    // Frames get the fixed MAC, or a placeholder that is overwritten per frame.
    let configured_mac = match request.port_mac {
        PortMac::Fixed(mac) => mac,
        PortMac::InputDestination => [0; 6],
    };
    let (config, tables) = match &request.files {
        TableFiles::Glb {
            director_json,
            tables_json,
        } => (
            glb_director_config(director_json, configured_mac)?,
            glb_tables(tables_json)?,
        ),
        TableFiles::Chance(path) => chance_files(path, configured_mac)?,
    };
    let only = match request.table {
        Some(n) => Some(tables.get(n).ok_or_else(|| {
            anyhow::Error::new(DirectorInputError {
                path: "--table".into(),
                message: format!("table {n} does not exist ({} tables)", tables.len()),
            })
        })?),
        None => None,
    };

    let pcap_error = |m: String| input_error(&request.pcap, m);
    let mut reader = CaptureReader::open(&request.pcap).map_err(|e| pcap_error(e.to_string()))?;
    let mut director = Director::new(config);
    let mut summary = RouteSummary::default();
    let mut lines = Vec::new();
    let mut frame = Vec::new();
    for index in 0u64.. {
        let meta = match reader.next_frame(&mut frame) {
            Ok(Some(meta)) => meta,
            Ok(None) => break,
            Err(e) => return Err(pcap_error(format!("frame {index}: {e}")).into()),
        };
        if meta.link_type != DataLink::ETHERNET {
            return Err(pcap_error(format!(
                "frame {index}: link type {:?} is not Ethernet",
                meta.link_type
            ))
            .into());
        }
        let route = match only {
            Some(table) => director.route_by(&frame, table),
            None => director.route(&frame, &tables),
        };
        let line = RouteLine::new(index, route, &frame, request);
        summary.count(&line);
        serde_json::to_writer(&mut lines, &line)?;
        lines.push(b'\n');
    }
    write_atomically(&request.out, &lines)?;
    Ok(summary)
}

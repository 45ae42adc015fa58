//! `chancectl director`: the director's offline tools.
//!
//! `build` turns glb-director's forwarding-table JSON into GLB's binary table (format version
//! 2), byte for byte as `glb-director-cli build-config` does, and replaces the output atomically
//! (a temporary file in the same directory, then a rename), so a director that reloads it never
//! sees half a table.
//!
//! `route` runs a capture through the director's packet path offline ([`crate::director_route`]).

use std::fs;
use std::path::{Path, PathBuf};

use chance_director::glb_binary;
use chance_director::glb_json::{self, GlbConfig};

use crate::director_route::{route, PortMac, RouteRequest, TableFiles};

/// `chancectl director ...`
#[derive(Debug, clap::Subcommand)]
pub enum OfflineCommand {
    /// Build GLB's binary forwarding table from its JSON (as `glb-director-cli build-config`).
    Build {
        /// glb-director's forwarding-table JSON.
        #[arg(long, value_name = "IN.json")]
        glb_json: PathBuf,
        /// The binary table to write (replaced atomically).
        #[arg(long, value_name = "OUT.bin")]
        out: PathBuf,
    },
    /// Route every frame of a capture as a director would: one JSON line per frame.
    #[command(group(clap::ArgGroup::new("tables").required(true).args(["glb_json", "config"])))]
    Route {
        /// glb-director's director configuration (its `director.conf`, JSON).
        #[arg(long, value_name = "DIRECTOR.json", requires = "glb_json")]
        glb_director_json: Option<PathBuf>,
        /// glb-director's forwarding-table JSON (GLB's rows).
        #[arg(long, value_name = "TABLES.json", requires = "glb_director_json")]
        glb_json: Option<PathBuf>,
        /// chance's director configuration instead (chance's hop lists).
        #[arg(long, value_name = "director.toml", conflicts_with_all = ["glb_json", "glb_director_json"])]
        config: Option<PathBuf>,
        /// Route every frame by this table (0-based), without matching binds.
        #[arg(long, value_name = "N")]
        table: Option<usize>,
        /// The outer Ethernet source; default: each input frame's destination.
        #[arg(long, value_name = "MAC")]
        port_mac: Option<String>,
        /// The capture (pcap or pcapng, Ethernet).
        #[arg(long, value_name = "IN.pcap")]
        pcap: PathBuf,
        /// The JSON Lines output (replaced atomically).
        #[arg(long, value_name = "OUT.jsonl")]
        out: PathBuf,
    },
}

/// Input that is not a valid forwarding table (chancectl exits 2 for it).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DirectorInputError {
    /// The input file.
    pub path: String,
    /// What is wrong (with the key, and the position when known).
    pub message: String,
}

/// Runs an offline `chancectl director` command; returns what to print.
pub fn run(command: &OfflineCommand) -> anyhow::Result<String> {
    match command {
        OfflineCommand::Build { glb_json, out } => {
            let config = build(glb_json, out)?;
            let backends: usize = config.tables.iter().map(|t| t.backends.len()).sum();
            Ok(format!(
                "{}: {} table{}, {backends} backends, GLB binary format version {}\n",
                out.display(),
                config.tables.len(),
                if config.tables.len() == 1 { "" } else { "s" },
                glb_binary::VERSION,
            ))
        }
        OfflineCommand::Route {
            glb_director_json,
            glb_json,
            config,
            table,
            port_mac,
            pcap,
            out,
        } => {
            let files = match (glb_director_json, glb_json, config) {
                (Some(director_json), Some(tables_json), None) => TableFiles::Glb {
                    director_json: director_json.clone(),
                    tables_json: tables_json.clone(),
                },
                (None, None, Some(config)) => TableFiles::Chance(config.clone()),
                // clap's argument rules allow nothing else; a usage error all the same.
                _ => {
                    return Err(DirectorInputError {
                        path: "chancectl director route".into(),
                        message: "give --glb-director-json with --glb-json, or --config".into(),
                    }
                    .into())
                }
            };
            let port_mac = match port_mac {
                None => PortMac::InputDestination,
                Some(text) => {
                    PortMac::Fixed(crate::director_config::parse_mac(text).ok_or_else(|| {
                        DirectorInputError {
                            path: "--port-mac".into(),
                            message: format!("`{text}` is not a MAC address"),
                        }
                    })?)
                }
            };
            let summary = route(&RouteRequest {
                files,
                table: *table,
                pcap: pcap.clone(),
                out: out.clone(),
                port_mac,
            })?;
            Ok(format!("{}: {summary}", out.display()))
        }
    }
}

/// Reads `input`, writes GLB's binary table to `output`; returns what was read.
pub fn build(input: &Path, output: &Path) -> anyhow::Result<GlbConfig> {
    let input_error = |message: String| DirectorInputError {
        path: input.display().to_string(),
        message,
    };
    let text = fs::read_to_string(input).map_err(|e| input_error(format!("cannot read: {e}")))?;
    let config = glb_json::parse(&text).map_err(|e| input_error(e.to_string()))?;
    let bytes = glb_binary::encode(&config)
        .map_err(|(table, e)| input_error(format!("tables[{table}]: {e}")))?;
    write_atomically(output, &bytes)?;
    Ok(config)
}

/// Writes `bytes` to a new file beside `path` and renames it over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::staged::write(path, bytes)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))
}

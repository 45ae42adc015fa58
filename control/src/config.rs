//! The TOML configuration file (`chance.toml`): parsing, validation, and errors that name the key
//! and its line.
//!
//! ```toml
//! [encap]
//! addresses = ["192.0.2.10"]   # this host's encapsulation addresses (IPv4), at least one
//! port = 19523                 # GUE destination port, default 19523
//! mtu = 1500                   # egress MTU for the GRE last-hop check, default 1500, >= 68
//!
//! [[flow]]                     # static flow-table entries, zero or more
//! proto = "tcp"                # "tcp" or "udp"
//! local = "192.0.2.10:443"     # the host's side (the packet's destination)
//! remote = "198.51.100.7:51234"
//! ```
//!
//! Every table denies unknown keys. Errors read `FILE:LINE:COL: KEY: MESSAGE`, where KEY is a
//! dotted path such as `encap.port` or `flow[1].local`.

use crate::control_config::{self, ControlConfig, RawControl};
use crate::dataplane_config::{self, DataplaneConfig, RawDpdk, RawPorts};
pub(crate) use crate::locator::{key_path, Locator};
use crate::ownership_config::{self, OwnershipConfig, RawFlows, RawReconcile};
use crate::static_flows::{self, Flows, RawFlow};
use chance_engine::config::{DEFAULT_GUE_PORT, DEFAULT_MTU};
use chance_engine::{EngineConfig, ExactMatchTable, FlowKey};
use core::fmt;
use core::net::{IpAddr, Ipv4Addr};
use core::ops::Range;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The smallest MTU an IPv4 link may have (RFC 791).
pub const MIN_MTU: u16 = 68;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    engine: EngineConfig,
    flows: Vec<FlowKey>,
    dataplane: Option<DataplaneConfig>,
    ownership: OwnershipConfig,
    control: ControlConfig,
}

impl Config {
    /// The engine's view of the `[encap]` table.
    pub fn engine_config(&self) -> EngineConfig {
        self.engine.clone()
    }

    /// The `[[flow]]` entries, in file order.
    pub fn static_flows(&self) -> Vec<FlowKey> {
        self.flows.clone()
    }

    /// An exact-match table holding the static flows.
    pub fn flow_table(&self) -> ExactMatchTable {
        self.flows.iter().copied().collect()
    }

    /// The encapsulation addresses, in file order.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        self.engine.addresses().collect()
    }

    /// The GUE destination port.
    pub fn port(&self) -> u16 {
        self.engine.port
    }

    /// The egress MTU.
    pub fn mtu(&self) -> u16 {
        self.engine.mtu
    }

    /// The `[flow_table]` and `[reconcile]` tables (defaults when absent).
    pub fn ownership(&self) -> &OwnershipConfig {
        &self.ownership
    }

    /// The `[dpdk]` and `[ports]` tables, when the file has them (chanced needs them; replay does not).
    pub fn dataplane(&self) -> Option<&DataplaneConfig> {
        self.dataplane.as_ref()
    }

    /// The `[control]` table (defaults when absent).
    pub fn control(&self) -> &ControlConfig {
        &self.control
    }
}

/// Where a configuration error is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name (or other origin) as given by the caller.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the offending key (`encap.port`, `flow[1].local`), if the error has one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The path names something other than a regular file (a FIFO, a device, a directory).
    #[error("{}: not a regular file ({kind}); a configuration is a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error(
        "{}: {size} bytes is too large for a configuration (the limit is {MAX_FILE_BYTES} bytes, {} MiB)",
        path.display(),
        MAX_FILE_BYTES >> 20
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, or the bytes read before the limit was passed.
        size: u64,
    },
    /// The file was read but is not a valid configuration.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
    /// The file has several errors (in file order), one a line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<Diagnostic>),
}

impl ConfigError {
    /// The diagnostic, for an invalid file (the first one, when there are several).
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        self.diagnostics().first()
    }

    /// Every diagnostic, in file order (none when the file could not be read).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid(d) => core::slice::from_ref(d),
            ConfigError::Several(ds) => ds,
            _ => &[],
        }
    }
}

/// The most errors one check reports (the rest of a file full of bad flows adds nothing).
pub const MAX_REPORTED_ERRORS: usize = 100;

/// The errors found so far: every table is validated even after one fails, so that one check
/// reports every error it can find (a syntax error still stops the parse: nothing after it has
/// a meaning).
#[derive(Default)]
pub(crate) struct Found(Vec<Diagnostic>);

impl Found {
    /// The value, or `None` with its errors kept.
    pub(crate) fn take<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.0.extend(e.diagnostics().iter().cloned());
                None
            }
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.0.len() >= MAX_REPORTED_ERRORS
    }

    /// `Ok` when nothing was found; else the errors in file order.
    fn finish(mut self) -> Result<(), ConfigError> {
        self.0.sort_by_key(|d| (d.line, d.column));
        self.0.truncate(MAX_REPORTED_ERRORS);
        match self.0.len() {
            0 => Ok(()),
            1 => Err(ConfigError::Invalid(Box::new(self.0.remove(0)))),
            _ => Err(ConfigError::Several(self.0)),
        }
    }
}

/// The largest configuration file accepted: 64 MiB, about 800,000 static flows. Reading,
/// parsing and validating a file takes a few times its size in memory; the bound keeps that
/// (and the time a check or a reload takes) modest whatever the path names.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads the configuration file at `path`: a regular file of at most [`MAX_FILE_BYTES`].
///
/// It is opened without blocking (a FIFO would otherwise wait for a writer) and checked before
/// anything is read, and the read itself stops past the bound (a file may grow meanwhile, and
/// files in /proc report a size of 0).
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let unreadable = |error| ConfigError::Read {
        path: path.to_owned(),
        error,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let kind = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(ConfigError::NotAFile {
            path: path.to_owned(),
            kind,
        });
    }
    let too_large = |size| ConfigError::TooLarge {
        path: path.to_owned(),
        size,
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read(path)?;
    parse(&text, &path.display().to_string())
}

/// Reads a configuration file as text, within [`read_bytes`]'s bounds (an invalid UTF-8 file is
/// an error at its first bad byte).
pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = e.utf8_error().valid_up_to();
        // The prefix is valid UTF-8 by definition, so positions within it are well defined.
        let text = String::from_utf8_lossy(&bytes[..valid]);
        let origin = path.display().to_string();
        Locator::new(&text, &origin).error(valid..valid, None, "file is not valid UTF-8")
    })
}

/// Parses and validates configuration `text`; `origin` names it in errors (usually the file name).
///
/// The `[[flow]]` tables are cut out and parsed one at a time (see [`static_flows`]); the rest of
/// the file is parsed as one document.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let at = Locator::new(text, origin);
    let sections = static_flows::split(text);
    let rest_at = at.with_cuts(&sections.cuts);
    refuse_other_daemon(&sections.rest, &rest_at, Daemon::Chanced)?;
    let deserializer = toml::de::Deserializer::parse(&sections.rest)
        .map_err(|e| rest_at.error(e.span().unwrap_or(0..0), None, e.message()))?;
    let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = key_path(e.path());
        let inner = e.into_inner();
        rest_at.error(inner.span().unwrap_or(0..0), key, inner.message())
    })?;
    raw.validate(&rest_at, &sections.flows, &at)
}

/// The daemon a configuration file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// chanced, the backend: the file has `[encap]` and no `[director]`.
    Chanced,
    /// chance-director: the file has a top-level `[director]` table.
    Director,
}

impl Daemon {
    /// The daemon's program name.
    pub fn program(self) -> &'static str {
        match self {
            Daemon::Chanced => "chanced",
            Daemon::Director => "chance-director",
        }
    }

    /// Which daemon `text` is for: a top-level `[director]` table makes it chance-director's.
    /// A file that is not TOML is chanced's (its parser reports the syntax error).
    pub fn of(text: &str) -> Daemon {
        // Without the [[flow]] sections: a file of a million static flows is peeked at in the
        // memory of its other tables.
        match toml::from_str::<Peek>(&static_flows::split(text).rest) {
            Ok(Peek {
                director: Some(_), ..
            }) => Daemon::Director,
            _ => Daemon::Chanced,
        }
    }
}

/// The top-level tables that tell the two daemons' files apart (everything else is ignored).
#[derive(Deserialize)]
struct Peek {
    director: Option<Spanned<toml::Value>>,
    encap: Option<Spanned<toml::Value>>,
}

/// Refuses, at the telling table's line, a file written for the other daemon: `text` is the file
/// (or the file with its `[[flow]]` sections cut out), `at` locates its spans in the file.
pub(crate) fn refuse_other_daemon(
    text: &str,
    at: &Locator<'_>,
    wanted: Daemon,
) -> Result<(), ConfigError> {
    let Ok(peek) = toml::from_str::<Peek>(text) else {
        return Ok(());
    };
    match (wanted, peek.director, peek.encap) {
        (Daemon::Chanced, Some(director), _) => Err(at.error(
            director.span(),
            Some("director".into()),
            "this is a chance-director configuration (it has [director]); chanced reads a \
             backend's file ([encap] and no [director]): run chance-director with it",
        )),
        (Daemon::Director, None, encap) => Err(at.error(
            encap.map_or(0..0, |e| e.span()),
            Some("director".into()),
            "missing table: chance-director needs [director] (a file without it is chanced's)",
        )),
        (Daemon::Director, Some(_), Some(encap)) => Err(at.error(
            encap.span(),
            Some("encap".into()),
            "[encap] is chanced's table: a director's file has [director] and no [encap]",
        )),
        _ => Ok(()),
    }
}

/// Deserializes the whole text into `T`, with serde errors turned into diagnostics.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    at: &Locator<'_>,
) -> Result<T, ConfigError> {
    let deserializer = toml::de::Deserializer::parse(at.text())
        .map_err(|e| at.error(e.span().unwrap_or(0..0), None, e.message()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = key_path(e.path());
        let inner = e.into_inner();
        at.error(inner.span().unwrap_or(0..0), key, inner.message())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    encap: RawEncap,
    #[serde(default)]
    flow: Vec<RawFlow>,
    dpdk: Option<Spanned<RawDpdk>>,
    ports: Option<RawPorts>,
    flow_table: Option<RawFlows>,
    reconcile: Option<RawReconcile>,
    control: Option<RawControl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncap {
    addresses: Spanned<Vec<Spanned<String>>>,
    port: Option<Spanned<u16>>,
    mtu: Option<Spanned<u16>>,
}

impl RawConfig {
    /// Validates the file: `self` is the rest of it (errors through `at`, which maps positions
    /// back to the whole file), `sections` its `[[flow]]` sections in `text` (errors through
    /// `whole`).
    fn validate(
        self,
        at: &Locator<'_>,
        sections: &[Range<usize>],
        whole: &Locator<'_>,
    ) -> Result<Config, ConfigError> {
        let mut found = Found::default();
        let engine = found.take(self.encap.validate(at));
        let dataplane = found.take(dataplane_config::validate_tables(
            self.dpdk, self.ports, "chance", at,
        ));
        let ownership = found.take(ownership_config::validate(
            self.flow_table,
            self.reconcile,
            at,
        ));
        // Without a valid capacity, the flows are checked against none.
        let capacity = ownership.as_ref().map_or(usize::MAX, |o| o.capacity);
        let flows = Flows::validate(self.flow, at, sections, whole, capacity, &mut found);
        let file_prefix = dataplane
            .as_ref()
            .and_then(Option::as_ref)
            .map_or("chance", |d| d.file_prefix.as_str());
        let control = found.take(control_config::validate(self.control, file_prefix, at));
        found.finish()?;
        match (engine, dataplane, ownership, control) {
            (Some(engine), Some(dataplane), Some(ownership), Some(control)) => Ok(Config {
                engine,
                flows,
                dataplane,
                ownership,
                control,
            }),
            // Not reached: a table that failed left its errors, which finish() returned.
            _ => Err(whole.error(0..0, None, "invalid configuration")),
        }
    }
}

impl RawEncap {
    fn validate(&self, at: &Locator<'_>) -> Result<EngineConfig, ConfigError> {
        let mut addresses = Vec::with_capacity(self.addresses.get_ref().len());
        for (i, text) in self.addresses.get_ref().iter().enumerate() {
            let key = || Some(format!("encap.addresses[{i}]"));
            let addr = match text.get_ref().trim().parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => a,
                Ok(IpAddr::V6(_)) => {
                    return Err(at.error(
                        text.span(),
                        key(),
                        format!(
                            "`{}` is IPv6; encapsulation addresses are IPv4",
                            text.get_ref()
                        ),
                    ))
                }
                Err(_) => {
                    return Err(at.error(
                        text.span(),
                        key(),
                        format!("`{}` is not an IPv4 address", text.get_ref()),
                    ))
                }
            };
            if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
                return Err(at.error(
                    text.span(),
                    key(),
                    format!("`{addr}` cannot be a host's encapsulation address"),
                ));
            }
            if addresses.contains(&addr) {
                return Err(at.error(text.span(), key(), format!("`{addr}` is listed twice")));
            }
            addresses.push(addr);
        }
        let port = match &self.port {
            Some(p) if *p.get_ref() == 0 => {
                return Err(at.error(
                    p.span(),
                    Some("encap.port".into()),
                    "port 0 is not a valid GUE port (expected 1 to 65535)",
                ))
            }
            Some(p) => *p.get_ref(),
            None => DEFAULT_GUE_PORT,
        };
        let mtu = match &self.mtu {
            Some(m) if *m.get_ref() < MIN_MTU => {
                return Err(at.error(
                    m.span(),
                    Some("encap.mtu".into()),
                    format!(
                        "MTU {} is too small (expected {MIN_MTU} to 65535)",
                        m.get_ref()
                    ),
                ))
            }
            Some(m) => *m.get_ref(),
            None => DEFAULT_MTU,
        };
        EngineConfig::new(&addresses, port, mtu).map_err(|e| {
            at.error(
                self.addresses.span(),
                Some("encap.addresses".into()),
                e.to_string(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(text: &str) -> Diagnostic {
        match parse(text, "t.toml") {
            Err(ConfigError::Invalid(d)) => *d,
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = parse("[encap]\naddresses = [\"192.0.2.10\"]\n", "t").unwrap();
        assert_eq!(c.addresses(), [Ipv4Addr::new(192, 0, 2, 10)]);
        assert_eq!((c.port(), c.mtu()), (DEFAULT_GUE_PORT, DEFAULT_MTU));
        assert!(c.static_flows().is_empty());
    }

    #[test]
    fn out_of_range_port_names_key_line_and_column() {
        let d = diag("[encap]\naddresses = [\"192.0.2.10\"]\nport = 70000\n");
        assert_eq!(d.key.as_deref(), Some("encap.port"));
        assert_eq!((d.line, d.column), (3, 8));
        assert_eq!(
            d.to_string(),
            "t.toml:3:8: encap.port: invalid value: integer `70000`, expected u16"
        );
    }

    #[test]
    fn unknown_key_path_includes_the_key() {
        let d = diag("[encap]\naddresses = [\"192.0.2.10\"]\nprot = 1\n");
        assert_eq!(d.key.as_deref(), Some("encap.prot"));
        assert_eq!(d.line, 3);
    }

    #[test]
    fn nested_flow_errors_use_index_paths() {
        let d = diag(concat!(
            "[encap]\naddresses = [\"192.0.2.10\"]\n",
            "[[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:1\"\nremote = \"192.0.2.1:2\"\n",
            "[[flow]]\nproto = \"sctp\"\nlocal = \"192.0.2.10:1\"\nremote = \"192.0.2.1:2\"\n",
        ));
        assert_eq!(d.key.as_deref(), Some("flow[1].proto"));
        assert_eq!((d.line, d.column), (8, 9));
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let at = Locator::new("é = 1\nab", "t");
        assert_eq!(at.position(0), (1, 1));
        assert_eq!(at.position(2), (1, 2));
        assert_eq!(at.position(8), (2, 2));
        assert_eq!(at.position(100), (2, 3));
    }
}

//! chance-director's configuration file: the same loader, error style and shared tables as
//! chanced's (`[dpdk]`, `[ports]`, `[control]`), plus the director's own tables. A top-level
//! `[director]` table is what makes a file a director's (see [`crate::config::Daemon`]).
//!
//! ```toml
//! [director]
//! address = "192.0.2.9"              # outer source IPv4 of every encapsulated packet
//! gateway_mac = "02:00:00:00:00:fe"  # Ethernet destination of every encapsulated packet
//! gue_port = 19523                   # GUE destination port, default 19523
//! hash_key = "000102030405060708090a0b0c0d0e0f"  # SipHash key, 32 hex digits
//! seed = "f0e0d0c0b0a090807060504030201000"      # the table's row seed, 32 hex digits
//! hash_fields = ["src_addr"]         # GLB's names: src_addr, dst_addr, src_port, dst_port
//! alt_hash_fields = []               # a hash migration's old fields (their hops are added)
//! # glb_json = "/etc/glb/forwarding_table.json"  # binds and backends from GLB's JSON instead
//!
//! [[bind]]
//! vip = "203.0.113.10"               # an address or a prefix, IPv4 or IPv6
//! protocol = "tcp"                   # tcp or udp
//! port = 443                         # or ports = "8000-8999"
//!
//! [[backend]]
//! address = "192.0.2.21"
//! state = "active"                   # active, filling, draining or inactive
//! healthy = true                     # optional: the state health checks start from
//!
//! [healthcheck]                      # optional, see crate::healthcheck_config
//! ```

use crate::config::{self, ConfigError, Daemon, Locator};
use crate::control_config::{self, ControlConfig, RawControl};
use crate::dataplane_config::{self, DataplaneConfig, RawDpdk, RawPorts};
use crate::healthcheck_config::{self, HealthcheckConfig, RawHealthcheck};
use chance_director::{Backend, BackendState, Bind, HashFields, Prefix, Protocol};
use chance_engine::config::DEFAULT_GUE_PORT;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Where the binds and backends come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableSource {
    /// The `[[bind]]` and `[[backend]]` tables of this file.
    Inline,
    /// glb-director's forwarding-table JSON (`director.glb_json`), read when the table is built.
    GlbJson(PathBuf),
}

/// The validated `[director]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorSettings {
    /// The outer source address.
    pub address: Ipv4Addr,
    /// The gateway's MAC address.
    pub gateway_mac: [u8; 6],
    /// The GUE destination port.
    pub gue_port: u16,
    /// The SipHash key.
    pub hash_key: [u8; 16],
    /// The table's row seed.
    pub seed: [u8; 16],
    /// The fields hashed (GLB hashes them in its fixed order, whatever the file's).
    pub hash_fields: HashFields,
    /// A migration's old fields (`None`: no migration).
    pub alt_hash_fields: Option<HashFields>,
}

/// A validated director configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorConfig {
    /// The `[director]` table.
    pub director: DirectorSettings,
    /// Where binds and backends come from.
    pub source: TableSource,
    /// The `[[bind]]` tables, in file order.
    pub binds: Vec<Bind>,
    /// The `[[backend]]` tables, in file order.
    pub backends: Vec<Backend>,
    /// The `[healthcheck]` table; `None`: no health checks, the file's `healthy` values hold.
    pub healthcheck: Option<HealthcheckConfig>,
    /// The `[dpdk]` and `[ports]` tables, when the file has them.
    pub dataplane: Option<DataplaneConfig>,
    /// The `[control]` table (defaults when absent).
    pub control: ControlConfig,
}

/// A director's EAL file prefix when its file names none, and so its default API socket
/// (`/run/chance/chance-director.sock`): a director and a chanced on one host do not collide.
pub const DEFAULT_FILE_PREFIX: &str = "chance-director";

/// Reads and validates a director's configuration file.
pub fn load(path: &Path) -> Result<DirectorConfig, ConfigError> {
    let text = config::read(path)?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates a director's configuration `text`.
pub fn parse(text: &str, origin: &str) -> Result<DirectorConfig, ConfigError> {
    let at = Locator::new(text, origin);
    config::refuse_other_daemon(&at, Daemon::Director)?;
    let raw: RawDirectorFile = config::deserialize(&at)?;
    raw.validate(&at)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectorFile {
    director: RawDirector,
    #[serde(default)]
    bind: Vec<RawBind>,
    #[serde(default)]
    backend: Vec<RawBackend>,
    healthcheck: Option<Spanned<RawHealthcheck>>,
    dpdk: Option<Spanned<RawDpdk>>,
    ports: Option<RawPorts>,
    control: Option<RawControl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirector {
    address: Spanned<String>,
    gateway_mac: Spanned<String>,
    gue_port: Option<Spanned<u16>>,
    hash_key: Spanned<String>,
    seed: Spanned<String>,
    hash_fields: Option<Spanned<Vec<Spanned<String>>>>,
    alt_hash_fields: Option<Spanned<Vec<Spanned<String>>>>,
    glb_json: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBind {
    vip: Spanned<String>,
    protocol: RawProtocol,
    port: Option<Spanned<u16>>,
    ports: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawProtocol {
    Tcp,
    Udp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    address: Spanned<String>,
    state: RawState,
    healthy: Option<bool>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawState {
    Active,
    Filling,
    Draining,
    Inactive,
}

impl RawDirectorFile {
    fn validate(self, at: &Locator<'_>) -> Result<DirectorConfig, ConfigError> {
        let director = self.director.validate(at)?;
        let source = match &self.director.glb_json {
            None => TableSource::Inline,
            Some(path) => {
                let text = path.get_ref().trim();
                if !text.starts_with('/') {
                    return Err(at.error(
                        path.span(),
                        Some("director.glb_json".into()),
                        format!("`{text}` is not an absolute path"),
                    ));
                }
                if !self.bind.is_empty() || !self.backend.is_empty() {
                    return Err(at.error(
                        path.span(),
                        Some("director.glb_json".into()),
                        "the binds and backends come either from glb_json or from [[bind]] and \
                         [[backend]], not both",
                    ));
                }
                TableSource::GlbJson(PathBuf::from(text))
            }
        };
        let binds = self
            .bind
            .iter()
            .enumerate()
            .map(|(i, b)| b.validate(i, at))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, bind) in binds.iter().enumerate() {
            if let Some(first) = binds[..i].iter().position(|b| b == bind) {
                return Err(at.error(
                    self.bind[i].vip.span(),
                    Some(format!("bind[{i}]")),
                    format!("duplicate of bind[{first}]"),
                ));
            }
        }
        let mut backends: Vec<Backend> = Vec::with_capacity(self.backend.len());
        for (i, raw) in self.backend.iter().enumerate() {
            let backend = raw.validate(i, at)?;
            if let Some(first) = backends.iter().position(|b| b.address == backend.address) {
                return Err(at.error(
                    raw.address.span(),
                    Some(format!("backend[{i}].address")),
                    format!("`{}` is already backend[{first}]", backend.address),
                ));
            }
            backends.push(backend);
        }
        let healthcheck = self
            .healthcheck
            .map(|h| healthcheck_config::validate(h, at))
            .transpose()?;
        let dataplane =
            dataplane_config::validate_tables(self.dpdk, self.ports, DEFAULT_FILE_PREFIX, at)?;
        let file_prefix = dataplane
            .as_ref()
            .map_or(DEFAULT_FILE_PREFIX, |d| d.file_prefix.as_str());
        let control = control_config::validate(self.control, file_prefix, at)?;
        Ok(DirectorConfig {
            director,
            source,
            binds,
            backends,
            healthcheck,
            dataplane,
            control,
        })
    }
}

impl RawDirector {
    fn validate(&self, at: &Locator<'_>) -> Result<DirectorSettings, ConfigError> {
        let address = match self.address.get_ref().trim().parse::<Ipv4Addr>() {
            Ok(a) if !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()) => a,
            _ => {
                return Err(at.error(
                    self.address.span(),
                    Some("director.address".into()),
                    format!(
                        "`{}` is not a unicast IPv4 address (the outer header is IPv4)",
                        self.address.get_ref()
                    ),
                ))
            }
        };
        let gateway_mac = parse_mac(self.gateway_mac.get_ref()).ok_or_else(|| {
            at.error(
                self.gateway_mac.span(),
                Some("director.gateway_mac".into()),
                format!(
                    "`{}` is not a MAC address (expected six hex pairs: 02:00:00:00:00:fe)",
                    self.gateway_mac.get_ref()
                ),
            )
        })?;
        let gue_port = match &self.gue_port {
            Some(p) if *p.get_ref() == 0 => {
                return Err(at.error(
                    p.span(),
                    Some("director.gue_port".into()),
                    "port 0 is not a valid GUE port (expected 1 to 65535)",
                ))
            }
            Some(p) => *p.get_ref(),
            None => DEFAULT_GUE_PORT,
        };
        let hash_key = parse_key(&self.hash_key, "director.hash_key", at)?;
        let seed = parse_key(&self.seed, "director.seed", at)?;
        let hash_fields = match &self.hash_fields {
            Some(list) => parse_fields(list, "director.hash_fields", at)?,
            None => Some(HashFields::default()),
        }
        .ok_or_else(|| {
            at.error(
                self.hash_fields.as_ref().map_or(0..0, Spanned::span),
                Some("director.hash_fields".into()),
                "at least one field is hashed",
            )
        })?;
        let alt_hash_fields = match &self.alt_hash_fields {
            Some(list) => parse_fields(list, "director.alt_hash_fields", at)?,
            None => None,
        };
        Ok(DirectorSettings {
            address,
            gateway_mac,
            gue_port,
            hash_key,
            seed,
            hash_fields,
            alt_hash_fields,
        })
    }
}

/// `02:00:00:00:00:fe` (or with dashes).
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.trim().split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return None;
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

fn parse_key(text: &Spanned<String>, key: &str, at: &Locator<'_>) -> Result<[u8; 16], ConfigError> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(text.get_ref().trim(), &mut out).map_err(|_| {
        at.error(
            text.span(),
            Some(key.into()),
            "expected 32 hex digits (16 bytes)",
        )
    })?;
    Ok(out)
}

/// The fields `list` names (`None` for an empty list); an unknown or repeated name is an error
/// at its line.
fn parse_fields(
    list: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    at: &Locator<'_>,
) -> Result<Option<HashFields>, ConfigError> {
    let mut names: Vec<&str> = Vec::with_capacity(list.get_ref().len());
    for (i, name) in list.get_ref().iter().enumerate() {
        let text = name.get_ref().trim();
        let error = |message: String| at.error(name.span(), Some(format!("{key}[{i}]")), message);
        if HashFields::from_names([text]).is_err() {
            return Err(error(format!(
                "`{}` is not a hash field (expected src_addr, dst_addr, src_port or dst_port)",
                name.get_ref()
            )));
        }
        if names.contains(&text) {
            return Err(error(format!("`{text}` is listed twice")));
        }
        names.push(text);
    }
    Ok(HashFields::from_names(names).ok())
}

impl RawBind {
    fn validate(&self, i: usize, at: &Locator<'_>) -> Result<Bind, ConfigError> {
        let prefix = parse_prefix(&self.vip, &format!("bind[{i}].vip"), at)?;
        let ports = match (&self.port, &self.ports) {
            (Some(port), None) if *port.get_ref() == 0 => {
                return Err(at.error(
                    port.span(),
                    Some(format!("bind[{i}].port")),
                    "port 0 is not a valid port (expected 1 to 65535)",
                ))
            }
            (Some(port), None) => *port.get_ref()..=*port.get_ref(),
            (None, Some(range)) => parse_range(range, &format!("bind[{i}].ports"), at)?,
            (Some(port), Some(_)) => {
                return Err(at.error(
                    port.span(),
                    Some(format!("bind[{i}].port")),
                    "give `port` or `ports`, not both",
                ))
            }
            (None, None) => {
                return Err(at.error(
                    self.vip.span(),
                    Some(format!("bind[{i}].port")),
                    "missing: `port = N` or `ports = \"A-B\"`",
                ))
            }
        };
        Ok(Bind {
            prefix,
            protocol: match self.protocol {
                RawProtocol::Tcp => Protocol::Tcp,
                RawProtocol::Udp => Protocol::Udp,
            },
            ports,
        })
    }
}

fn parse_prefix(
    text: &Spanned<String>,
    key: &str,
    at: &Locator<'_>,
) -> Result<Prefix, ConfigError> {
    let raw = text.get_ref().trim();
    let bad = |message: String| at.error(text.span(), Some(key.to_owned()), message);
    let (addr, len) = match raw.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (raw, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        bad(format!(
            "`{raw}` is not an address or a prefix (ADDR or ADDR/LEN)"
        ))
    })?;
    match len {
        None => Ok(Prefix::host(addr)),
        Some(len) => {
            let len: u8 = len
                .parse()
                .map_err(|_| bad(format!("`{raw}`: the prefix length is not a number")))?;
            Prefix::new(addr, len).map_err(|e| bad(format!("`{raw}`: {e}")))
        }
    }
}

fn parse_range(
    text: &Spanned<String>,
    key: &str,
    at: &Locator<'_>,
) -> Result<std::ops::RangeInclusive<u16>, ConfigError> {
    let raw = text.get_ref().trim();
    let bad = |message: String| at.error(text.span(), Some(key.to_owned()), message);
    let (low, high) = raw
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
        .ok_or_else(|| {
            bad(format!(
                "`{raw}` is not a port range (expected \"A-B\", 1 to 65535)"
            ))
        })?;
    if low == 0 {
        return Err(bad(format!("`{raw}`: port 0 is not a valid port")));
    }
    if low > high {
        return Err(bad(format!(
            "`{raw}`: the range is reversed ({low} > {high})"
        )));
    }
    Ok(low..=high)
}

impl RawBackend {
    fn validate(&self, i: usize, at: &Locator<'_>) -> Result<Backend, ConfigError> {
        let address = match self.address.get_ref().trim().parse::<Ipv4Addr>() {
            Ok(a) if !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()) => a,
            _ => {
                return Err(at.error(
                    self.address.span(),
                    Some(format!("backend[{i}].address")),
                    format!(
                        "`{}` is not a unicast IPv4 address (backends are reached over IPv4 GUE)",
                        self.address.get_ref()
                    ),
                ))
            }
        };
        Ok(Backend {
            address,
            state: match self.state {
                RawState::Active => BackendState::Active,
                RawState::Filling => BackendState::Filling,
                RawState::Draining => BackendState::Draining,
                RawState::Inactive => BackendState::Inactive,
            },
            healthy: self.healthy.unwrap_or(true),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MINIMAL: &str = "[director]\naddress = \"192.0.2.9\"\ngateway_mac = \"02:00:00:00:00:fe\"\nhash_key = \"000102030405060708090a0b0c0d0e0f\"\nseed = \"f0e0d0c0b0a090807060504030201000\"\n";

    #[test]
    fn a_minimal_file_gets_glb_defaults() {
        let c = parse(MINIMAL, "t").unwrap();
        assert_eq!(c.director.gue_port, 19523);
        assert_eq!(c.director.hash_fields, HashFields::SRC_ADDR);
        assert_eq!(c.director.gateway_mac, [2, 0, 0, 0, 0, 0xfe]);
        assert_eq!(c.source, TableSource::Inline);
        assert!(c.healthcheck.is_none() && c.dataplane.is_none());
        assert_eq!(
            c.control.api_socket.as_deref(),
            Some(Path::new("/run/chance/chance-director.sock"))
        );
    }

    #[test]
    fn a_director_with_ports_gets_its_own_file_prefix_and_socket() {
        let text = format!(
            "{MINIMAL}[ports]\nnic = \"net_null0\"\nkernel = {{ kind = \"tap\", name = \"d0\" }}\n"
        );
        let c = parse(&text, "t").unwrap();
        assert_eq!(c.dataplane.unwrap().file_prefix, DEFAULT_FILE_PREFIX);
        assert_eq!(
            c.control.api_socket.as_deref(),
            Some(Path::new("/run/chance/chance-director.sock"))
        );
    }

    #[test]
    fn binds_and_backends_map_to_the_model() {
        let text = format!(
            "{MINIMAL}[[bind]]\nvip = \"2001:db8::/64\"\nprotocol = \"udp\"\nports = \"1000-2000\"\n\
             [[backend]]\naddress = \"192.0.2.21\"\nstate = \"draining\"\nhealthy = false\n"
        );
        let c = parse(&text, "t").unwrap();
        assert_eq!(c.binds[0].prefix.to_string(), "2001:db8::/64");
        assert_eq!(
            (c.binds[0].protocol, c.binds[0].ports.clone()),
            (Protocol::Udp, 1000..=2000)
        );
        assert_eq!(c.backends[0].state, BackendState::Draining);
        assert!(!c.backends[0].healthy);
    }

    #[test]
    fn glb_json_excludes_inline_tables() {
        let text = MINIMAL.replace(
            "[director]\n",
            "[director]\nglb_json = \"/etc/glb/forwarding_table.json\"\n",
        );
        let c = parse(&text, "t").unwrap();
        assert_eq!(
            c.source,
            TableSource::GlbJson("/etc/glb/forwarding_table.json".into())
        );
        let both = format!("{text}[[backend]]\naddress = \"192.0.2.21\"\nstate = \"active\"\n");
        let e = parse(&both, "t").unwrap_err();
        assert_eq!(
            e.diagnostic().unwrap().key.as_deref(),
            Some("director.glb_json")
        );
    }
}

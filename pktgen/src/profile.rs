//! The traffic profile: what to generate, from a TOML file (`--profile`) and/or flags.
//!
//! ```toml
//! flows = 4096            # distinct client flows (TCP/UDP 5-tuples toward the service)
//! owned_share = 0.6       # share of the flows owned by the host under test (its [[flow]] entries)
//! ipv6_share = 0.2        # share of the flows whose inner packet is IPv6
//! hops = [1]              # hop-list lengths (hops left after the host under test); templates
//!                         # take them in turn: repeat a value to weight it, 0 = last hop
//! size = 64               # frame size in bytes incl. the 4-byte FCS: a number, "imix"
//!                         # (64/570/1518 in 7:4:1), or a list taken in turn ([64, 64, 1518])
//! rate_pps = 0            # total packets per second over all lcores; 0 = flat out
//! duration_secs = 10      # measured time
//! warmup_secs = 1         # sent before the measurement starts, not counted
//! templates = 0           # pre-built frames; 0 = max(4096, min(flows, 262144))
//! seed = 1                # the same seed gives the same frames
//! encapsulation = "gue"   # "gue": frames as a director sends them to a backend (chanced);
//!                         # "none": the clients' own frames (Ethernet + IP), as a director
//!                         # receives them, without a stamp (a 64-byte TCP frame has no room)
//! ports_per_client = 50000  # flows per client address (1: every flow its own client)
//!
//! [mix]                   # relative weights of the packet kinds
//! tcp_syn = 5             # SYN of a new connection (a fresh flow each)
//! tcp_established = 60    # ACK of an owned flow
//! tcp_unknown = 20        # ACK of a flow the host does not own (second chance: forwarded)
//! udp = 10                # UDP datagram (any flow; owned ones are accepted)
//! icmp = 5                # ICMP / ICMPv6 echo request
//!
//! [addresses]
//! encap = "192.0.2.10"    # the host under test: outer destination, its [encap] address
//! gue_port = 19523
//! director = "192.0.2.9"  # outer source
//! next_hops = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]  # hop-list entries, in order
//! vip4 = "203.0.113.1"    # the service (inner destination)
//! vip6 = "2001:db8:1::1"
//! service_port = 443
//! clients4 = "198.51.100.0"   # client addresses count up from base + 1
//! clients6 = "2001:db8:2::"
//! eth_dst = "02:00:00:00:00:01"   # the host under test's MAC
//! eth_src = "02:00:00:00:00:fe"   # the router's MAC
//! ```
//!
//! Every table denies unknown keys; errors name the key (`mix.tcp_syn`, `addresses.vip4`) and,
//! for syntax and type errors, the line.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_path_to_error::Segment;
use std::path::Path;

/// Bytes of Ethernet FCS that profile sizes include and mbufs do not.
pub const FCS_LEN: usize = 4;
/// The largest frame (incl. FCS) an mbuf of the default data room holds in one segment.
pub const MAX_FRAME: u16 = 1924;
/// The smallest Ethernet frame.
pub const MIN_FRAME: u16 = 64;
/// The most hops a GUE header can carry (5-bit hlen = 1 + hops).
pub const MAX_HOPS: u8 = 30;
/// Client addresses are numbered in blocks of at most this many ports per address (the
/// default of `ports_per_client`).
pub const PORTS_PER_CLIENT: u32 = 50_000;
/// The most flows a profile may ask for (250 client addresses x 50,000 ports... kept lower).
pub const MAX_FLOWS: u32 = 1 << 22;
/// The most pre-built frames.
pub const MAX_TEMPLATES: u32 = 1 << 22;
/// The simple IMIX: 64, 570 and 1518-byte frames in a 7:4:1 ratio.
pub const IMIX: [(u16, u32); 3] = [(64, 7), (570, 4), (1518, 1)];

/// Frame sizes (bytes, Ethernet FCS included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sizes {
    /// Every frame this size.
    Fixed(u16),
    /// 64, 570 and 1518 bytes in a 7:4:1 ratio ([`IMIX`]).
    Imix,
    /// Each template takes the next size of the list (repeat a size to weight it).
    List(Vec<u16>),
}

impl Sizes {
    /// (size, weight) pairs.
    pub fn weighted(&self) -> Vec<(u16, u32)> {
        match self {
            Sizes::Fixed(s) => vec![(*s, 1)],
            Sizes::Imix => IMIX.to_vec(),
            Sizes::List(l) => l.iter().map(|&s| (s, 1)).collect(),
        }
    }
}

impl fmt::Display for Sizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sizes::Fixed(s) => write!(f, "{s}"),
            Sizes::Imix => f.write_str("imix"),
            Sizes::List(l) => {
                let parts: Vec<String> = l.iter().map(u16::to_string).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl std::str::FromStr for Sizes {
    type Err = String;

    /// `64`, `imix`, or `64,570,1518`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Sizes::Imix);
        }
        let sizes = s
            .split(',')
            .map(|p| p.trim().parse::<u16>())
            .collect::<Result<Vec<u16>, _>>()
            .map_err(|_| {
                format!("`{s}`: expected a frame size, `imix`, or sizes separated by commas")
            })?;
        Ok(match sizes.as_slice() {
            [one] => Sizes::Fixed(*one),
            _ => Sizes::List(sizes),
        })
    }
}

impl Serialize for Sizes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Sizes::Fixed(n) => s.serialize_u16(*n),
            Sizes::Imix => s.serialize_str("imix"),
            Sizes::List(l) => l.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Sizes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sizes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a frame size, \"imix\", or a list of frame sizes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Sizes, E> {
                u16::try_from(v)
                    .map(Sizes::Fixed)
                    .map_err(|_| E::custom(format!("{v} is not a frame size")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Sizes, E> {
                u16::try_from(v)
                    .map(Sizes::Fixed)
                    .map_err(|_| E::custom(format!("{v} is not a frame size")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Sizes, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sizes, A::Error> {
                let mut sizes = Vec::new();
                while let Some(s) = seq.next_element::<u16>()? {
                    sizes.push(s);
                }
                Ok(Sizes::List(sizes))
            }
        }
        d.deserialize_any(V)
    }
}

/// A MAC address, written `02:00:00:00:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad =
            || format!("`{s}` is not a MAC address (expected six hex bytes: 02:00:00:00:00:01)");
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (b, p) in mac.iter_mut().zip(parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(Mac(mac))
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Relative weights of the packet kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    /// TCP SYN of a new connection, each on a fresh flow (accepted locally: cls_redirect's SYN
    /// rule; chanced learns the flow, which no other packet uses).
    pub tcp_syn: u32,
    /// TCP ACK on a flow the host owns (accepted).
    pub tcp_established: u32,
    /// TCP ACK on a flow the host does not own (forwarded to the next hop).
    pub tcp_unknown: u32,
    /// UDP on any flow (owned ones accepted, the others forwarded).
    pub udp: u32,
    /// ICMP / ICMPv6 echo request (accepted).
    pub icmp: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            tcp_syn: 5,
            tcp_established: 60,
            tcp_unknown: 20,
            udp: 10,
            icmp: 5,
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `syn=5,established=60,unknown=20,udp=10,icmp=5`; kinds left out get weight 0.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut mix = Mix {
            tcp_syn: 0,
            tcp_established: 0,
            tcp_unknown: 0,
            udp: 0,
            icmp: 0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected KIND=WEIGHT"))?;
            let v: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the weight is not a number"))?;
            let slot = match k.trim() {
                "syn" | "tcp_syn" => &mut mix.tcp_syn,
                "established" | "tcp_established" => &mut mix.tcp_established,
                "unknown" | "tcp_unknown" => &mut mix.tcp_unknown,
                "udp" => &mut mix.udp,
                "icmp" => &mut mix.icmp,
                other => {
                    return Err(format!(
                        "`{other}`: expected syn, established, unknown, udp or icmp"
                    ))
                }
            };
            *slot = v;
        }
        Ok(mix)
    }
}

/// Addresses and ports of the generated traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Addresses {
    /// The host under test's encapsulation address (outer destination).
    pub encap: Ipv4Addr,
    /// The GUE destination port.
    pub gue_port: u16,
    /// The director (outer source).
    pub director: Ipv4Addr,
    /// Hop-list entries, in order: a template with `n` hops carries the first `n`.
    pub next_hops: Vec<Ipv4Addr>,
    /// The service's IPv4 address (inner destination).
    pub vip4: Ipv4Addr,
    /// The service's IPv6 address.
    pub vip6: Ipv6Addr,
    /// The service port.
    pub service_port: u16,
    /// IPv4 clients are numbered from this base + 1.
    pub clients4: Ipv4Addr,
    /// IPv6 clients are numbered from this base + 1.
    pub clients6: Ipv6Addr,
    /// Ethernet destination (the host under test).
    pub eth_dst: Mac,
    /// Ethernet source (the router).
    pub eth_src: Mac,
}

impl Default for Addresses {
    fn default() -> Self {
        Self {
            encap: Ipv4Addr::new(192, 0, 2, 10),
            gue_port: 19523,
            director: Ipv4Addr::new(192, 0, 2, 9),
            next_hops: vec![
                Ipv4Addr::new(192, 0, 2, 11),
                Ipv4Addr::new(192, 0, 2, 12),
                Ipv4Addr::new(192, 0, 2, 13),
            ],
            vip4: Ipv4Addr::new(203, 0, 113, 1),
            vip6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
            service_port: 443,
            clients4: Ipv4Addr::new(198, 51, 100, 0),
            clients6: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0),
            eth_dst: Mac([0x02, 0, 0, 0, 0, 0x01]),
            eth_src: Mac([0x02, 0, 0, 0, 0, 0xfe]),
        }
    }
}

/// How the generated frames are wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encapsulation {
    /// GUE with a GLB hop list around the client's packet, stamped: what chanced receives.
    Gue,
    /// The client's packet in Ethernet, not stamped: what a director receives.
    None,
}

/// A whole profile. See the module documentation for the file format and the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Distinct client flows.
    pub flows: u32,
    /// Share of the flows the host under test owns.
    pub owned_share: f64,
    /// Share of the flows with an inner IPv6 packet.
    pub ipv6_share: f64,
    /// Hop-list lengths, taken in turn.
    pub hops: Vec<u8>,
    /// Frame sizes (FCS included).
    pub size: Sizes,
    /// Packets per second over all lcores; 0: flat out.
    pub rate_pps: u64,
    /// Measured seconds.
    pub duration_secs: f64,
    /// Seconds of traffic before the measurement.
    pub warmup_secs: f64,
    /// Pre-built frames; 0: automatic.
    pub templates: u32,
    /// Seed of the frame schedule.
    pub seed: u64,
    /// How frames are wrapped.
    pub encapsulation: Encapsulation,
    /// Flows per client address.
    pub ports_per_client: u32,
    /// Packet kinds.
    pub mix: Mix,
    /// Addresses.
    pub addresses: Addresses,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            flows: 4096,
            owned_share: 0.6,
            ipv6_share: 0.2,
            hops: vec![1],
            size: Sizes::Fixed(64),
            rate_pps: 0,
            duration_secs: 10.0,
            warmup_secs: 1.0,
            templates: 0,
            seed: 1,
            encapsulation: Encapsulation::Gue,
            ports_per_client: PORTS_PER_CLIENT,
            mix: Mix::default(),
            addresses: Addresses::default(),
        }
    }
}

/// A profile that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{}{}{message}", .line.map(|l| format!("{l}:")).unwrap_or_default(), .key.as_ref().map(|k| format!(" {k}: ")).unwrap_or_else(|| " ".into()))]
pub struct ProfileError {
    /// The file (or `flags`).
    pub origin: String,
    /// 1-based line, for syntax and type errors.
    pub line: Option<usize>,
    /// Dotted key (`mix.tcp_syn`, `addresses.next_hops[1]`).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Profile {
    /// Reads and validates a profile file.
    ///
    /// # Errors
    ///
    /// [`ProfileError`] naming the file, the key and (for syntax and type errors) the line.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            origin: origin.clone(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let profile = Profile::parse(&text, &origin)?;
        profile.validate(&origin)?;
        Ok(profile)
    }

    /// Parses profile text (without validating it: flags may still change it).
    ///
    /// # Errors
    ///
    /// [`ProfileError`] for a syntax error, an unknown key or a value of the wrong type.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let line_of = |span: Option<core::ops::Range<usize>>| {
            span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        };
        let deserializer = toml::de::Deserializer::parse(text).map_err(|e| ProfileError {
            origin: origin.to_owned(),
            line: line_of(e.span()),
            key: None,
            message: e.message().to_owned(),
        })?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = key_path(e.path());
            let inner = e.into_inner();
            ProfileError {
                origin: origin.to_owned(),
                line: line_of(inner.span()),
                key,
                message: inner.message().to_owned(),
            }
        })
    }

    /// Checks the values (ranges, and that the mix can be drawn from the flows).
    ///
    /// # Errors
    ///
    /// [`ProfileError`] naming the offending key.
    pub fn validate(&self, origin: &str) -> Result<(), ProfileError> {
        let err = |key: &str, message: String| ProfileError {
            origin: origin.to_owned(),
            line: None,
            key: Some(key.to_owned()),
            message,
        };
        if !(1..=MAX_FLOWS).contains(&self.flows) {
            return Err(err(
                "flows",
                format!("{}: expected 1 to {MAX_FLOWS}", self.flows),
            ));
        }
        for (key, v) in [
            ("owned_share", self.owned_share),
            ("ipv6_share", self.ipv6_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(err(key, format!("{v}: expected a share from 0 to 1")));
            }
        }
        if self.hops.is_empty() {
            return Err(err("hops", "needs at least one hop-list length".into()));
        }
        let max_hops = self.addresses.next_hops.len().min(usize::from(MAX_HOPS));
        if let Some(&h) = self.hops.iter().find(|&&h| usize::from(h) > max_hops) {
            return Err(err(
                "hops",
                format!(
                    "{h} hops, but addresses.next_hops lists {} (and GUE carries at most {MAX_HOPS})",
                    self.addresses.next_hops.len()
                ),
            ));
        }
        let sizes = self.size.weighted();
        if sizes.is_empty() {
            return Err(err("size", "needs at least one frame size".into()));
        }
        if let Some((s, _)) = sizes
            .iter()
            .find(|(s, _)| !(MIN_FRAME..=MAX_FRAME).contains(s))
        {
            return Err(err(
                "size",
                format!("{s} bytes: expected {MIN_FRAME} to {MAX_FRAME} (FCS included; one mbuf segment)"),
            ));
        }
        for (key, v) in [
            ("duration_secs", self.duration_secs),
            ("warmup_secs", self.warmup_secs),
        ] {
            if !(0.0..=86_400.0).contains(&v) {
                return Err(err(key, format!("{v}: expected 0 to 86400 seconds")));
            }
        }
        if self.duration_secs <= 0.0 {
            return Err(err("duration_secs", "must be more than 0".into()));
        }
        if self.templates > MAX_TEMPLATES {
            return Err(err(
                "templates",
                format!("{}: at most {MAX_TEMPLATES}", self.templates),
            ));
        }
        let m = &self.mix;
        let total = u64::from(m.tcp_syn)
            + u64::from(m.tcp_established)
            + u64::from(m.tcp_unknown)
            + u64::from(m.udp)
            + u64::from(m.icmp);
        if total == 0 {
            return Err(err("mix", "every weight is 0: nothing to send".into()));
        }
        let (owned, not_owned) = self.owned_counts();
        if m.tcp_established > 0 && owned == 0 {
            return Err(err(
                "mix.tcp_established",
                format!(
                    "needs owned flows, but owned_share {} of {} flows is none",
                    self.owned_share, self.flows
                ),
            ));
        }
        if m.tcp_unknown > 0 && not_owned == 0 {
            return Err(err(
                "mix.tcp_unknown",
                format!(
                    "needs flows the host does not own, but owned_share {} of {} flows is all",
                    self.owned_share, self.flows
                ),
            ));
        }
        let a = &self.addresses;
        if a.gue_port == 0 {
            return Err(err("addresses.gue_port", "port 0 is not a GUE port".into()));
        }
        if a.service_port == 0 {
            return Err(err(
                "addresses.service_port",
                "port 0 is not a service port".into(),
            ));
        }
        if a.encap.is_unspecified() || a.encap.is_multicast() || a.encap.is_broadcast() {
            return Err(err(
                "addresses.encap",
                format!("`{}` cannot be a host's encapsulation address", a.encap),
            ));
        }
        if let Some(i) = a.next_hops.iter().position(|h| *h == a.encap) {
            return Err(err(
                &format!("addresses.next_hops[{i}]"),
                "is the host under test itself (chance would skip it in place)".into(),
            ));
        }
        if !(1..=PORTS_PER_CLIENT).contains(&self.ports_per_client) {
            return Err(err(
                "ports_per_client",
                format!(
                    "{}: expected 1 to {PORTS_PER_CLIENT}",
                    self.ports_per_client
                ),
            ));
        }
        // The profile's flows and one fresh flow per SYN template.
        let blocks = (self.flows + self.template_count()).div_ceil(self.ports_per_client);
        if u32::from(a.clients4).checked_add(blocks).is_none() {
            return Err(err(
                "addresses.clients4",
                format!("{} flows need {blocks} addresses after it", self.flows),
            ));
        }
        Ok(())
    }

    /// (owned, not owned) flow counts.
    pub fn owned_counts(&self) -> (u32, u32) {
        let owned = (f64::from(self.flows) * self.owned_share).round() as u32;
        let owned = owned.min(self.flows);
        (owned, self.flows - owned)
    }

    /// The number of templates: `templates`, or max(4096, min(flows, 262144)).
    pub fn template_count(&self) -> u32 {
        if self.templates > 0 {
            self.templates
        } else {
            self.flows.clamp(4096, 1 << 18)
        }
    }
}

/// The dotted key path of a serde error, without serde_spanned's internal fields.
fn key_path(path: &serde_path_to_error::Path) -> Option<String> {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__serde_spanned_private") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Parses a packet rate: `1000000`, `1.5M`, `500k`, `2.5 Mpps`.
///
/// # Errors
///
/// A message naming the text.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("pps").trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: expected packets per second such as 2000000, 500k or 1.5M"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{s}`: expected a rate of 0 or more"));
    }
    Ok((v * mult).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_text() {
        assert_eq!("imix".parse::<Sizes>().unwrap(), Sizes::Imix);
        assert_eq!("128".parse::<Sizes>().unwrap(), Sizes::Fixed(128));
        assert_eq!(
            "64, 1518".parse::<Sizes>().unwrap(),
            Sizes::List(vec![64, 1518])
        );
        assert!("big".parse::<Sizes>().is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_rate("500k").unwrap(), 500_000);
        assert_eq!(parse_rate("2 Mpps").unwrap(), 2_000_000);
        assert_eq!(parse_rate("0").unwrap(), 0);
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn mix_from_text() {
        let m: Mix = "syn=1,unknown=3".parse().unwrap();
        assert_eq!((m.tcp_syn, m.tcp_unknown, m.tcp_established), (1, 3, 0));
        assert!("tcp=1".parse::<Mix>().is_err());
    }

    #[test]
    fn macs() {
        let m: Mac = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0, 0, 0, 10]);
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert!("02:00:00:00:00".parse::<Mac>().is_err());
    }
}

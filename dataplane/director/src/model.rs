//! The plain data both halves of the director share: binds, backends and the row interface between
//! a forwarding table and the packet path.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

/// Rows in a forwarding table: a flow's row is the low 16 bits of its hash (GLB's table size).
pub const ROWS: usize = 0x1_0000;

/// The hop lists of a forwarding table, one per row: what the packet path reads.
pub trait Rows {
    /// Row `row`'s hop list, first hop first. Never empty for a table that can forward.
    fn hops(&self, row: u16) -> &[Ipv4Addr];
}

/// The transport protocol a bind matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// An address prefix (a VIP or a range of VIPs): IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
    /// `addr` as a left-aligned 128-bit number, and the mask of its first `len` bits: what
    /// every packet's destination is compared with, computed once.
    network: u128,
    mask: u128,
}

/// Why a prefix is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    /// The length is longer than the address (32 for IPv4, 128 for IPv6).
    LengthTooLong { len: u8, max: u8 },
    /// Bits are set past the prefix length (`10.0.0.1/24`): almost always a typo.
    HostBitsSet,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::LengthTooLong { len, max } => {
                write!(
                    f,
                    "prefix length {len} is longer than the address ({max} bits)"
                )
            }
            PrefixError::HostBitsSet => write!(f, "address has bits set past the prefix length"),
        }
    }
}

impl std::error::Error for PrefixError {}

impl Prefix {
    /// A prefix of `len` bits of `addr`; the bits past `len` must be zero.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        let max = Self::max_len(addr);
        if len > max {
            return Err(PrefixError::LengthTooLong { len, max });
        }
        let prefix = Self::masked(addr, len);
        if prefix.network & prefix.mask != prefix.network {
            return Err(PrefixError::HostBitsSet);
        }
        Ok(prefix)
    }

    /// The prefix that holds exactly `addr` (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        Self::masked(addr, Self::max_len(addr))
    }

    /// `addr`/`len` with its network and mask (`len` at most the address's length).
    fn masked(addr: IpAddr, len: u8) -> Self {
        Prefix {
            addr,
            len,
            network: Self::to_bits(addr),
            mask: u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0),
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `addr` is inside the prefix (an address of the other family never is).
    #[inline]
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4() && Self::to_bits(addr) & self.mask == self.network
    }

    /// An IPv4 prefix's network and mask as 32-bit integers (`None` for IPv6): the compare
    /// [`contains`](Self::contains) makes, for a caller holding the destination as an integer.
    pub(crate) fn v4_network_and_mask(&self) -> Option<(u32, u32)> {
        self.addr
            .is_ipv4()
            .then_some(((self.network >> 96) as u32, (self.mask >> 96) as u32))
    }

    fn max_len(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    #[inline]
    fn to_bits(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
            IpAddr::V6(v6) => u128::from(v6),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A bind: the client traffic a table serves (GLB's `binds`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bind {
    /// The VIP or VIP prefix.
    pub prefix: Prefix,
    /// The transport protocol.
    pub protocol: Protocol,
    /// The destination ports, inclusive.
    pub ports: RangeInclusive<u16>,
}

impl Bind {
    /// Whether a packet to `dst`:`port` over `protocol` belongs to this bind.
    pub fn matches(&self, dst: IpAddr, protocol: Protocol, port: u16) -> bool {
        self.protocol == protocol && self.ports.contains(&port) && self.prefix.contains(dst)
    }
}

/// A backend's administrative state (GLB's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendState {
    /// Serving: takes new connections.
    Active,
    /// Newly added: takes new connections while others may still hold its rows' old ones.
    Filling,
    /// Being taken out: takes no new connections, keeps its existing ones.
    Draining,
    /// Out: on no row at all.
    Inactive,
}

/// A backend host as a table sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backend {
    /// Its address (GLB's backends are IPv4: the outer header is IPv4).
    pub address: Ipv4Addr,
    /// Its administrative state.
    pub state: BackendState,
    /// Whether health checks (or the file) say it is up.
    pub healthy: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_contains_only_addresses_of_its_own_family_under_its_mask() {
        let v4 = Prefix::new("10.1.0.0".parse().unwrap(), 16).unwrap();
        assert!(v4.contains("10.1.255.3".parse().unwrap()));
        assert!(!v4.contains("10.2.0.1".parse().unwrap()));
        assert!(!v4.contains("::a01:1".parse().unwrap()));
        let v6 = Prefix::new("2001:db8::".parse().unwrap(), 32).unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::".parse().unwrap()));
        let all = Prefix::new("0.0.0.0".parse().unwrap(), 0).unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn a_prefix_with_host_bits_or_too_long_is_refused() {
        assert_eq!(
            Prefix::new("10.0.0.1".parse().unwrap(), 24),
            Err(PrefixError::HostBitsSet)
        );
        assert_eq!(
            Prefix::new("10.0.0.0".parse().unwrap(), 33),
            Err(PrefixError::LengthTooLong { len: 33, max: 32 })
        );
    }

    #[test]
    fn a_bind_matches_its_protocol_ports_and_prefix_only() {
        let bind = Bind {
            prefix: Prefix::host("192.0.2.10".parse().unwrap()),
            protocol: Protocol::Tcp,
            ports: 80..=443,
        };
        assert!(bind.matches("192.0.2.10".parse().unwrap(), Protocol::Tcp, 443));
        assert!(!bind.matches("192.0.2.10".parse().unwrap(), Protocol::Udp, 443));
        assert!(!bind.matches("192.0.2.10".parse().unwrap(), Protocol::Tcp, 444));
        assert!(!bind.matches("192.0.2.11".parse().unwrap(), Protocol::Tcp, 80));
    }
}

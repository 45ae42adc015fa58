//! What the engine needs to know about the host: its encapsulation addresses, the GUE port and the
//! egress MTU. Parsing it from TOML is the control plane's job; the engine takes the values.

use core::net::Ipv4Addr;

/// GLB's default GUE destination port.
pub const DEFAULT_GUE_PORT: u16 = 19523;
/// Default egress MTU for the GRE last-hop check.
pub const DEFAULT_MTU: u16 = 1500;
/// Ethernet header length, added to the MTU as the kernel's `bpf_check_mtu` does.
pub const L2_HEADER_LEN: usize = 14;

/// The engine's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// This host's encapsulation addresses, kept as big-endian integers for the per-packet compare.
    /// A forwarded packet's new source is the one it was sent to.
    addresses: Vec<u32>,
    /// `addresses[0]`, compared first and without touching the vector: most hosts have one.
    first: u32,
    /// `first` as its four bytes lie in a packet, read as a native-endian word
    /// ([`is_local_wire`](Self::is_local_wire)).
    first_wire: u32,
    /// GUE destination port.
    pub port: u16,
    /// Egress MTU (L3), used by the GRE last-hop check.
    pub mtu: u16,
}

/// A configuration needs at least one encapsulation address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAddresses;

impl core::fmt::Display for NoAddresses {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("at least one encapsulation address is required")
    }
}

impl std::error::Error for NoAddresses {}

impl EngineConfig {
    /// A configuration with the given addresses, port and MTU.
    pub fn new(addresses: &[Ipv4Addr], port: u16, mtu: u16) -> Result<Self, NoAddresses> {
        if addresses.is_empty() {
            return Err(NoAddresses);
        }
        Ok(Self {
            addresses: addresses.iter().map(|a| a.to_bits()).collect(),
            first: addresses[0].to_bits(),
            first_wire: u32::from_ne_bytes(addresses[0].octets()),
            port,
            mtu,
        })
    }

    /// One address, GLB's default port and MTU 1500.
    pub fn with_address(address: Ipv4Addr) -> Self {
        Self {
            addresses: vec![address.to_bits()],
            first: address.to_bits(),
            first_wire: u32::from_ne_bytes(address.octets()),
            port: DEFAULT_GUE_PORT,
            mtu: DEFAULT_MTU,
        }
    }

    /// True when `addr` (big-endian integer) is one of this host's encapsulation addresses.
    #[inline(always)]
    pub fn is_local(&self, addr: u32) -> bool {
        // Called twice per packet. A loop over the vector compiles to a vectorised search with
        // some thirty instructions of set-up; hosts have one address, or a few. The common
        // answers (the first address, or a host with only one) take a compare inline.
        addr == self.first || (self.addresses.len() > 1 && self.is_other_local(addr))
    }

    /// [`is_local`](Self::is_local) for an address given as its four bytes in a packet, read
    /// as a native-endian word: the fast path compares it so, without swapping its bytes.
    #[inline(always)]
    pub fn is_local_wire(&self, wire: u32) -> bool {
        wire == self.first_wire
            || (self.addresses.len() > 1 && self.is_other_local(u32::from_be(wire)))
    }

    #[inline(never)]
    fn is_other_local(&self, addr: u32) -> bool {
        self.addresses[1..].contains(&addr)
    }

    /// The encapsulation addresses.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.addresses.iter().map(|&a| Ipv4Addr::from(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configured_address_is_local_and_no_other() {
        let addresses = [
            Ipv4Addr::new(192, 0, 2, 10),
            Ipv4Addr::new(192, 0, 2, 11),
            Ipv4Addr::new(198, 51, 100, 7),
        ];
        for count in 1..=addresses.len() {
            let config = EngineConfig::new(&addresses[..count], DEFAULT_GUE_PORT, DEFAULT_MTU)
                .expect("addresses given");
            for (i, address) in addresses.iter().enumerate() {
                assert_eq!(
                    config.is_local(address.to_bits()),
                    i < count,
                    "{address}, {count}"
                );
                let wire = u32::from_ne_bytes(address.octets());
                assert_eq!(config.is_local_wire(wire), i < count, "{address}, {count}");
            }
            assert!(!config.is_local(Ipv4Addr::new(192, 0, 2, 12).to_bits()));
            assert!(!config.is_local(0));
            let other = Ipv4Addr::new(192, 0, 2, 12);
            assert!(!config.is_local_wire(u32::from_ne_bytes(other.octets())));
            assert!(!config.is_local_wire(0));
        }
        assert!(EngineConfig::with_address(addresses[1]).is_local(addresses[1].to_bits()));
        assert!(!EngineConfig::with_address(addresses[1]).is_local(addresses[0].to_bits()));
    }
}

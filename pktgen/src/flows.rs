//! The flow set: which client flows exist, which inner family each uses and which the host under
//! test owns; and the chanced configuration (`[encap]` + `[[flow]]`) that makes it own them.
//!
//! Flow `i` is a client `(address, port)` talking to the service `(vip, service_port)`; the
//! profile's `flows` come first, then one fresh flow per SYN template (see [`FlowSet::fresh`]). IPv4
//! clients are `clients4 + 1 + i / 50000`, IPv6 clients `clients6 + 1 + i / 50000`, port
//! `10000 + i % 50000`. Which flows are owned is a seeded shuffle (exactly
//! `round(flows * owned_share)` of them); the IPv6 flows are spread evenly over the owned and
//! the other flows alike, so both groups have the profile's IPv6 share.

use crate::profile::Profile;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::fmt::Write;

/// One client flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The client (the packet's inner source; the flow's remote side for the host).
    pub client: SocketAddr,
    /// The service (inner destination; the flow's local side).
    pub service: SocketAddr,
    /// The host under test owns the flow.
    pub owned: bool,
}

impl Flow {
    /// True for an IPv6 flow.
    pub fn is_ipv6(&self) -> bool {
        self.client.is_ipv6()
    }
}

/// All flows of a profile.
#[derive(Debug, Clone)]
pub struct FlowSet {
    /// Every flow, by index.
    pub flows: Vec<Flow>,
    /// Indexes of the owned flows, in shuffle order.
    pub owned: Vec<u32>,
    /// Indexes of the flows the host does not own, in shuffle order.
    pub not_owned: Vec<u32>,
    /// Indexes of the flows of the SYNs, one per SYN template, after the profile's flows: new
    /// connections, neither owned nor used by any other packet. chance accepts a SYN locally
    /// and learns its flow (SYN learning); on a flow of its own, that learning changes no
    /// other packet's verdict.
    pub fresh: Vec<u32>,
}

/// splitmix64: a fixed, dependency-free pseudo-random sequence.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Marks `share` of `n` positions, spread evenly (position p is marked when the running count
/// `floor((p + 1) * share)` steps up).
fn spread(n: usize, share: f64) -> impl Iterator<Item = bool> {
    let want = (n as f64 * share).round() as usize;
    (0..n).map(move |p| (p + 1) * want / n.max(1) > p * want / n.max(1))
}

impl FlowSet {
    /// The flows of `profile` (validated).
    pub fn new(profile: &Profile) -> FlowSet {
        // Flows 0..flows are the profile's; after them come the fresh flows of the SYNs.
        let m = &profile.mix;
        let syn = crate::templates::apportion(
            &[m.tcp_syn, m.tcp_established, m.tcp_unknown, m.udp, m.icmp],
            profile.template_count() as usize,
        )[0];
        let regular = profile.flows as usize;
        let n = regular + syn;
        let a = &profile.addresses;
        let mut order: Vec<u32> = (0..profile.flows).collect();
        Rng(profile.seed ^ 0x666c_6f77).shuffle(&mut order);
        let (owned_n, _) = profile.owned_counts();
        let (owned, not_owned) = order.split_at(owned_n as usize);
        let fresh: Vec<u32> = (profile.flows..n as u32).collect();
        let mut v6 = vec![false; n];
        for group in [owned, not_owned, &fresh[..]] {
            for (&i, is_v6) in group.iter().zip(spread(group.len(), profile.ipv6_share)) {
                v6[i as usize] = is_v6;
            }
        }
        let mut is_owned = vec![false; n];
        for &i in owned {
            is_owned[i as usize] = true;
        }
        let flows = (0..n)
            .map(|i| {
                let per_client = profile.ports_per_client;
                let block = i as u32 / per_client + 1;
                let port = 10_000 + (i as u32 % per_client) as u16;
                let (client, vip): (IpAddr, IpAddr) = if v6[i] {
                    let c = Ipv6Addr::from(u128::from(a.clients6) + u128::from(block));
                    (c.into(), a.vip6.into())
                } else {
                    let c = Ipv4Addr::from(u32::from(a.clients4).wrapping_add(block));
                    (c.into(), a.vip4.into())
                };
                Flow {
                    client: SocketAddr::new(client, port),
                    service: SocketAddr::new(vip, a.service_port),
                    owned: is_owned[i],
                }
            })
            .collect();
        debug_assert_eq!(regular, owned.len() + not_owned.len());
        FlowSet {
            flows,
            owned: owned.to_vec(),
            not_owned: not_owned.to_vec(),
            fresh,
        }
    }

    /// A chanced configuration: `[encap]` with the profile's encapsulation address and GUE port,
    /// and one `[[flow]]` per owned flow and protocol the mix uses (`tcp` for the TCP kinds,
    /// `udp` for UDP). Append `[dpdk]`/`[ports]` (or use `chancectl replay`) as needed.
    pub fn chance_config(&self, profile: &Profile, origin: &str) -> String {
        let m = &profile.mix;
        let tcp = m.tcp_syn + m.tcp_established + m.tcp_unknown > 0;
        let udp = m.udp > 0;
        let a = &profile.addresses;
        let mut s = String::with_capacity(128 + self.owned.len() * 96);
        let _ = write!(
            s,
            "# Written by chance-pktgen from {origin}: the {} flows of {} that this host owns.\n\
             [encap]\naddresses = [\"{}\"]\nport = {}\n",
            self.owned.len(),
            self.flows.len(),
            a.encap,
            a.gue_port
        );
        let mut owned = self.owned.clone();
        owned.sort_unstable();
        for i in owned {
            let f = &self.flows[i as usize];
            for (on, proto) in [(tcp, "tcp"), (udp, "udp")] {
                if on {
                    let _ = write!(
                        s,
                        "\n[[flow]]\nproto = \"{proto}\"\nlocal = \"{}\"\nremote = \"{}\"\n",
                        f.service, f.client
                    );
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_exact_and_flows_distinct() {
        let p = Profile {
            flows: 1000,
            owned_share: 0.25,
            ipv6_share: 0.4,
            ..Profile::default()
        };
        let set = FlowSet::new(&p);
        assert_eq!(set.owned.len(), 250);
        assert_eq!(set.flows.iter().filter(|f| f.owned).count(), 250);
        let v6 = |it: &[u32]| {
            it.iter()
                .filter(|&&i| set.flows[i as usize].is_ipv6())
                .count()
        };
        assert_eq!(v6(&set.owned), 100);
        assert_eq!(v6(&set.not_owned), 300);
        // 4096 templates, 5 % SYN: 205 fresh flows after the 1000.
        assert_eq!(set.fresh.len(), 205);
        assert_eq!(set.flows.len(), 1205);
        assert!(set
            .fresh
            .iter()
            .all(|&i| i >= 1000 && !set.flows[i as usize].owned));
        let mut clients: Vec<_> = set.flows.iter().map(|f| f.client).collect();
        clients.sort();
        clients.dedup();
        assert_eq!(clients.len(), 1205);
    }

    #[test]
    fn config_lists_owned_flows() {
        let p = Profile {
            flows: 10,
            owned_share: 0.3,
            ipv6_share: 0.0,
            ..Profile::default()
        };
        let set = FlowSet::new(&p);
        let text = set.chance_config(&p, "test");
        assert_eq!(text.matches("[[flow]]").count(), 6); // 3 owned x (tcp, udp)
        assert!(text.contains("addresses = [\"192.0.2.10\"]\nport = 19523"));
    }

    #[test]
    fn spread_is_exact() {
        assert_eq!(spread(10, 0.3).filter(|&b| b).count(), 3);
        assert_eq!(spread(7, 1.0).filter(|&b| b).count(), 7);
        assert_eq!(spread(0, 0.5).count(), 0);
    }
}

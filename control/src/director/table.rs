//! The seam between chance-director's control side and its forwarding table: what the daemon
//! needs from a built table ([`ForwardingTable`]), the function that builds one
//! ([`TableBuilder`]), where a table's binds and backends come from ([`source`]), and the rows'
//! shares per backend ([`shares`]). The table itself (GLB's rendezvous rows, the hop lists) is
//! `chance_director`'s; the daemon rebuilds it on every health change and every reload, and hands
//! each new one to the dataplane's hook.

use crate::director_config::{DirectorConfig, TableSource};
use chance_director::{Backend, Bind, Protocol, Rows, ROWS};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// A flow as `director lookup` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The transport protocol.
    pub protocol: Protocol,
    /// The VIP side (the packet's destination).
    pub vip: SocketAddr,
    /// The client side (the packet's source).
    pub client: SocketAddr,
}

/// A built forwarding table, as the daemon uses it.
pub trait ForwardingTable: Rows + Send + Sync + Debug {
    /// The row `flow` hashes to (over the configured hash fields).
    fn row_of(&self, flow: &Flow) -> u16;
}

/// Builds a table from the configuration and the backends with their current health.
pub type TableBuilder =
    fn(&DirectorConfig, &[Bind], &[Backend]) -> Result<Arc<dyn ForwardingTable>, String>;

/// Where a new table goes (the dataplane's swap at a burst boundary).
pub type TableHook = Box<dyn Fn(Arc<dyn ForwardingTable>) + Send + Sync>;

/// The binds and backends a configuration's table is built from.
pub fn source(config: &DirectorConfig) -> Result<(Vec<Bind>, Vec<Backend>), String> {
    match &config.source {
        TableSource::Inline => Ok((config.binds.clone(), config.backends.clone())),
        // glb-director's JSON is read by chance_director's reader; until it is wired here a
        // file that names one is refused, never run with an empty table.
        TableSource::GlbJson(path) => Err(format!(
            "director.glb_json: {}: reading glb-director's JSON is not in this build; give \
             [[bind]] and [[backend]] tables instead",
            path.display()
        )),
    }
}

/// How many rows each backend holds as primary (first hop) and as secondary (second hop).
pub fn shares(rows: &dyn Rows) -> BTreeMap<Ipv4Addr, (u32, u32)> {
    let mut out: BTreeMap<Ipv4Addr, (u32, u32)> = BTreeMap::new();
    for row in 0..ROWS {
        let hops = rows.hops(row as u16);
        if let Some(first) = hops.first() {
            out.entry(*first).or_default().0 += 1;
        }
        if let Some(second) = hops.get(1) {
            out.entry(*second).or_default().1 += 1;
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A table whose row `r` is `[backends[r % n], backends[(r + 1) % n]]`, and whose flows hash
    /// to their client port: enough to drive the daemon's seams.
    #[derive(Debug)]
    pub(crate) struct RoundRobin(pub Vec<Vec<Ipv4Addr>>);

    impl RoundRobin {
        pub(crate) fn of(backends: &[Backend]) -> Self {
            let up: Vec<Ipv4Addr> = backends
                .iter()
                .filter(|b| b.healthy)
                .map(|b| b.address)
                .collect();
            let n = up.len();
            Self(
                (0..ROWS)
                    .map(|r| {
                        if n == 0 {
                            Vec::new()
                        } else {
                            vec![up[r % n], up[(r + 1) % n]]
                        }
                    })
                    .collect(),
            )
        }
    }

    impl Rows for RoundRobin {
        fn hops(&self, row: u16) -> &[Ipv4Addr] {
            &self.0[usize::from(row)]
        }
    }

    impl ForwardingTable for RoundRobin {
        fn row_of(&self, flow: &Flow) -> u16 {
            flow.client.port()
        }
    }

    #[test]
    fn shares_count_first_hops_as_primary_and_second_as_secondary() {
        let b = |last: u8| Backend {
            address: Ipv4Addr::new(192, 0, 2, last),
            state: chance_director::BackendState::Active,
            healthy: last != 3,
        };
        let table = RoundRobin::of(&[b(1), b(2), b(3)]);
        let s = shares(&table);
        assert_eq!(s[&Ipv4Addr::new(192, 0, 2, 1)], (32768, 32768));
        assert_eq!(s[&Ipv4Addr::new(192, 0, 2, 2)], (32768, 32768));
        assert!(!s.contains_key(&Ipv4Addr::new(192, 0, 2, 3)));
    }
}

//! The seam between chance-director's control side and its forwarding tables: what the daemon
//! needs from a built set of tables ([`ForwardingTable`]), the function that builds one
//! ([`TableBuilder`], chance's own: [`build`]), where the tables' binds, keys and backends come
//! from ([`source`]: the file's `[[bind]]`/`[[backend]]`, or glb-director's JSON), and the rows'
//! shares per backend ([`shares`]). The rows themselves (GLB's rendezvous order, the hop lists)
//! are `chance_director`'s; the daemon rebuilds them on every health change and every reload, and
//! hands each new set to the dataplane's hook.

use crate::director_config::{DirectorConfig, TableSource};
use chance_director::flow_hash::{self, FlowFields};
use chance_director::{
    glb_json, Backend, Bind, FlowHasher, HashFields, HopTable, Protocol, RouteTable, Rows, ROWS,
};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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

/// A built set of forwarding tables, as the daemon uses it. `Rows` are the first table's (the
/// only one of a chance file).
pub trait ForwardingTable: Rows + Send + Sync + Debug {
    /// The row `flow` hashes to (over the configured hash fields).
    fn row_of(&self, flow: &Flow) -> u16;

    /// The hop list of `row` in the table that serves `flow`.
    fn hops_of(&self, _flow: &Flow, row: u16) -> &[Ipv4Addr] {
        self.hops(row)
    }

    /// The tables as the packet path reads them (empty: a table that only the control side
    /// reads, which the dataplane refuses).
    fn route_tables(&self) -> &[RouteTable<HopTable>];

    /// The same tables, shared: what the workers hold for a burst, so that each frame reads
    /// them without a call through this trait. (By default a copy of
    /// [`route_tables`](Self::route_tables).)
    fn shared_route_tables(&self) -> Arc<[RouteTable<HopTable>]> {
        Arc::from(self.route_tables())
    }
}

/// Builds the tables from the configuration and each table's backends with their current health.
pub type TableBuilder =
    fn(&DirectorConfig, &[TableSpec]) -> Result<Arc<dyn ForwardingTable>, String>;

/// Where a new table goes (the dataplane's swap at a burst boundary).
pub type TableHook = Box<dyn Fn(Arc<dyn ForwardingTable>) + Send + Sync>;

/// What one forwarding table is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The traffic it serves.
    pub binds: Vec<Bind>,
    /// The SipHash key flows are hashed with.
    pub hash_key: [u8; 16],
    /// The rendezvous seed its rows are built from.
    pub seed: [u8; 16],
    /// Its backends, in order.
    pub backends: Vec<Backend>,
}

/// The tables a configuration describes: one from the file's `[[bind]]` and `[[backend]]`
/// tables under `[director]`'s key and seed, or every table of `director.glb_json`, each with its
/// own binds, key and seed.
pub fn source(config: &DirectorConfig) -> Result<Vec<TableSpec>, String> {
    match &config.source {
        TableSource::Inline => Ok(vec![TableSpec {
            binds: config.binds.clone(),
            hash_key: config.director.hash_key,
            seed: config.director.seed,
            backends: config.backends.clone(),
        }]),
        TableSource::GlbJson(path) => {
            let shown = path.display();
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("director.glb_json: {shown}: {e}"))?;
            let glb =
                glb_json::parse(&text).map_err(|e| format!("director.glb_json: {shown}: {e}"))?;
            Ok(glb
                .tables
                .iter()
                .map(|t| TableSpec {
                    binds: t.binds.clone(),
                    hash_key: t.hash_key,
                    seed: t.seed,
                    backends: t.backend_list(),
                })
                .collect())
        }
    }
}

/// Every table's binds, in order, and every backend once (first appearance first): what the
/// health checks, the API and the metrics show.
pub fn flatten(tables: &[TableSpec]) -> (Vec<Bind>, Vec<Backend>) {
    let binds = tables
        .iter()
        .flat_map(|t| t.binds.iter().cloned())
        .collect();
    let mut backends: Vec<Backend> = Vec::new();
    for b in tables.iter().flat_map(|t| &t.backends) {
        if !backends.iter().any(|known| known.address == b.address) {
            backends.push(*b);
        }
    }
    (binds, backends)
}

/// chance's tables: one [`HopTable`] per table, hop lists by chance's rule.
#[derive(Debug)]
pub struct DirectorTables {
    tables: Arc<[RouteTable<HopTable>]>,
    hash_fields: HashFields,
}

/// The [`TableBuilder`] of chance-director: a [`HopTable`] per table.
pub fn build(
    config: &DirectorConfig,
    specs: &[TableSpec],
) -> Result<Arc<dyn ForwardingTable>, String> {
    let tables = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let rows = HopTable::build(&spec.seed, &spec.backends)
                .map_err(|e| format!("table {i}: {e}"))?;
            Ok(RouteTable::new(spec.binds.clone(), spec.hash_key, rows))
        })
        .collect::<Result<Arc<[_]>, String>>()?;
    Ok(Arc::new(DirectorTables {
        tables,
        hash_fields: config.director.hash_fields,
    }))
}

impl DirectorTables {
    /// The first table serving `flow`'s VIP, protocol and port (the packet path's choice).
    fn serving(&self, flow: &Flow) -> Option<&RouteTable<HopTable>> {
        self.tables.iter().find(|t| {
            t.binds()
                .iter()
                .any(|b| b.matches(flow.vip.ip(), flow.protocol, flow.vip.port()))
        })
    }
}

impl Rows for DirectorTables {
    fn hops(&self, row: u16) -> &[Ipv4Addr] {
        self.tables.first().map_or(&[], |t| t.rows().hops(row))
    }
}

impl ForwardingTable for DirectorTables {
    fn row_of(&self, flow: &Flow) -> u16 {
        let key = self
            .serving(flow)
            .or(self.tables.first())
            .map_or([0; 16], RouteTable::hash_key);
        let hasher = FlowHasher::new_with_key(&key);
        flow_hash::row(flow_fields(flow).hash(&hasher, self.hash_fields))
    }

    fn hops_of(&self, flow: &Flow, row: u16) -> &[Ipv4Addr] {
        self.serving(flow).map_or(&[], |t| t.rows().hops(row))
    }

    fn route_tables(&self) -> &[RouteTable<HopTable>] {
        &self.tables
    }

    fn shared_route_tables(&self) -> Arc<[RouteTable<HopTable>]> {
        Arc::clone(&self.tables)
    }
}

/// The hash's view of `flow` (the client is the source; an IPv4 address in an IPv6 flow is
/// taken IPv4-mapped).
fn flow_fields(flow: &Flow) -> FlowFields {
    let ipv6 = flow.vip.is_ipv6();
    let bytes = |a: IpAddr| -> [u8; 16] {
        let mut out = [0; 16];
        match (a, ipv6) {
            (IpAddr::V4(v4), false) => out[..4].copy_from_slice(&v4.octets()),
            (IpAddr::V4(v4), true) => out = v4.to_ipv6_mapped().octets(),
            (IpAddr::V6(v6), _) => out = v6.octets(),
        }
        out
    };
    FlowFields {
        ipv6,
        src_addr: bytes(flow.client.ip()),
        dst_addr: bytes(flow.vip.ip()),
        src_port: flow.client.port().to_be_bytes(),
        dst_port: flow.vip.port().to_be_bytes(),
    }
}

/// How many rows each backend holds as primary (first hop) and as secondary (second hop), over
/// every table.
pub fn shares(table: &dyn ForwardingTable) -> BTreeMap<Ipv4Addr, (u32, u32)> {
    let mut out: BTreeMap<Ipv4Addr, (u32, u32)> = BTreeMap::new();
    let mut count = |rows: &dyn Rows| {
        for row in 0..ROWS {
            let hops = rows.hops(row as u16);
            if let Some(first) = hops.first() {
                out.entry(*first).or_default().0 += 1;
            }
            if let Some(second) = hops.get(1) {
                out.entry(*second).or_default().1 += 1;
            }
        }
    };
    match table.route_tables() {
        [] => count(table),
        tables => tables.iter().for_each(|t| count(t.rows())),
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

        fn route_tables(&self) -> &[RouteTable<HopTable>] {
            &[]
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

    /// An Ethernet + IPv4 + TCP frame `client:sport -> vip:dport` (checksums are not read).
    fn tcp_frame(client: [u8; 4], vip: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&client);
        f.extend_from_slice(&vip);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        f
    }

    fn route(
        built: &dyn ForwardingTable,
        fields: HashFields,
        frame: &[u8],
    ) -> Option<(usize, u16, Vec<Ipv4Addr>)> {
        let mut config = chance_director::DirectorConfig::new(
            Ipv4Addr::new(192, 0, 2, 9),
            [2, 0, 0, 0, 0, 0xfe],
            [2, 0, 0, 0, 0, 0x09],
        );
        config.hash_fields = fields;
        let mut director = chance_director::Director::new(config);
        match director.route(frame, built.route_tables()) {
            chance_director::Route::Encapsulate(e) => Some((
                e.table,
                e.row,
                built.route_tables()[e.table].rows().hops(e.row).to_vec(),
            )),
            _ => None,
        }
    }

    #[test]
    fn a_glb_json_file_gives_each_table_its_own_binds_key_and_backends() {
        let dir = std::env::temp_dir().join(format!("chance-glb-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("forwarding_table.json");
        std::fs::write(
            &json,
            r#"{"tables": [
              {"hash_key": "00112233445566778899aabbccddeeff", "seed": "ffeeddccbbaa99887766554433221100",
               "binds": [{"ip": "203.0.113.10", "proto": "tcp", "port": 80}],
               "backends": [{"ip": "192.0.2.21", "state": "active", "healthy": true},
                            {"ip": "192.0.2.22", "state": "active", "healthy": true}]},
              {"hash_key": "0f0e0d0c0b0a09080706050403020100", "seed": "00000000000000000000000000000001",
               "binds": [{"ip": "203.0.113.20", "proto": "tcp", "port": 443}],
               "backends": [{"ip": "192.0.2.22", "state": "active", "healthy": true},
                            {"ip": "192.0.2.31", "state": "active", "healthy": true}]}
            ]}"#,
        )
        .unwrap();
        let text = format!(
            "[director]\naddress = \"192.0.2.9\"\ngateway_mac = \"02:00:00:00:00:fe\"\n\
             hash_key = \"000102030405060708090a0b0c0d0e0f\"\n\
             seed = \"f0e0d0c0b0a090807060504030201000\"\nglb_json = \"{}\"\n",
            json.display()
        );
        let config = crate::director_config::parse(&text, "t").unwrap();
        let specs = source(&config).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[1].hash_key[0], 0x0f);
        let (binds, backends) = flatten(&specs);
        assert_eq!(binds.len(), 2);
        assert_eq!(
            backends.len(),
            3,
            "192.0.2.22 is in both tables, tracked once"
        );

        let built = build(&config, &specs).unwrap();
        let fields = config.director.hash_fields;
        let (table, _, hops) = route(
            &*built,
            fields,
            &tcp_frame([198, 51, 100, 7], [203, 0, 113, 20], 5000, 443),
        )
        .unwrap();
        assert_eq!(table, 1, "the second table serves its own bind");
        assert!(hops.iter().all(|h| [22, 31].contains(&h.octets()[3])));
        let (table, _, hops) = route(
            &*built,
            fields,
            &tcp_frame([198, 51, 100, 7], [203, 0, 113, 10], 5000, 80),
        )
        .unwrap();
        assert_eq!(table, 0);
        assert!(hops.iter().all(|h| [21, 22].contains(&h.octets()[3])));
        let s = shares(&*built);
        let primary: u32 = s.values().map(|share| share.0).sum();
        assert_eq!(primary, 2 * ROWS as u32, "shares count every table's rows");
    }

    #[test]
    fn lookup_names_the_row_and_hops_the_packet_path_routes_the_flow_by() {
        let text = format!(
            "{}hash_fields = [\"src_addr\", \"src_port\"]\n\
             [[bind]]\nvip = \"203.0.113.10\"\nprotocol = \"tcp\"\nport = 443\n\
             [[backend]]\naddress = \"192.0.2.1\"\nstate = \"active\"\n\
             [[backend]]\naddress = \"192.0.2.2\"\nstate = \"draining\"\n\
             [[backend]]\naddress = \"192.0.2.3\"\nstate = \"active\"\n",
            crate::director_config::tests::MINIMAL
        );
        let config = crate::director_config::parse(&text, "t").unwrap();
        let built = build(&config, &source(&config).unwrap()).unwrap();
        for client in 1..=50u8 {
            let flow = Flow {
                protocol: Protocol::Tcp,
                vip: "203.0.113.10:443".parse().unwrap(),
                client: SocketAddr::from(([198, 51, 100, client], 40000 + u16::from(client))),
            };
            let frame = tcp_frame(
                [198, 51, 100, client],
                [203, 0, 113, 10],
                flow.client.port(),
                443,
            );
            let (_, row, hops) = route(&*built, config.director.hash_fields, &frame).unwrap();
            assert_eq!(built.row_of(&flow), row);
            assert_eq!(built.hops_of(&flow, row), hops.as_slice());
        }
    }
}

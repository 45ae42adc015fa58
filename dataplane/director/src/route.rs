//! The director's per-packet decision: classify, find the bind, hash, read the row, build the
//! encapsulation header.
//!
//! [`Director::route`] reads the frame and never writes it: the runtime drops
//! [`Encapsulation::strip`] bytes of Ethernet header, trims the frame to
//! [`Encapsulation::inner_len`] bytes of IP packet (Ethernet padding goes), and prepends
//! [`Encapsulation::header`] into the buffer's headroom. The header is complete, checksums
//! included, so the payload is never copied or read again. The header lives in the director (one
//! buffer per worker, rebuilt for each frame) and the route borrows it: nothing of its up to 170
//! bytes is copied on the way out.

use crate::classify::{self, BindQuery, Classified, Kind, PassReason, Routable};
use crate::counters::{Counter, Counters, DropReason};
use crate::encap::{self, EncapConfig, EncapHeader, FlowRoute};
use crate::flow_hash::{self, HashFields};
use crate::model::{Bind, Rows};
use chance_engine::config::DEFAULT_GUE_PORT;
use chance_engine::wire::ethernet;
use core::net::{IpAddr, Ipv4Addr};
use siphasher::sip::SipHasher24;

/// The director's settings (GLB's director configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectorConfig {
    /// Outer addressing: source address, gateway and port MACs, GUE port.
    pub encap: EncapConfig,
    /// The fields every flow is hashed over.
    pub hash_fields: HashFields,
    /// During a hash migration, the old fields: their row's hops are appended.
    pub alt_hash_fields: Option<HashFields>,
    /// Route ICMP echo requests to a VIP to a backend (GLB's `forward_icmp_ping_responses`);
    /// otherwise they go to the kernel.
    pub forward_icmp_echo: bool,
}

impl DirectorConfig {
    /// GLB's defaults: hash on the client's address, GUE port 19523, echo requests routed.
    pub fn new(src_addr: Ipv4Addr, gateway_mac: [u8; 6], port_mac: [u8; 6]) -> Self {
        Self {
            encap: EncapConfig {
                src_addr,
                gateway_mac,
                port_mac,
                gue_port: DEFAULT_GUE_PORT,
            },
            hash_fields: HashFields::default(),
            alt_hash_fields: None,
            forward_icmp_echo: true,
        }
    }

    /// True when a flow hash needs ports (so a fragment without them cannot be routed).
    fn hashes_ports(&self) -> bool {
        self.hash_fields.uses_ports() || self.alt_hash_fields.is_some_and(HashFields::uses_ports)
    }
}

/// One forwarding table as the packet path reads it: the binds it serves, its hash key and its
/// rows. The daemon builds a new set of tables off the packet path and swaps it in whole.
#[derive(Debug, Clone)]
pub struct RouteTable<R> {
    binds: Vec<Bind>,
    hash_key: [u8; 16],
    hasher: SipHasher24,
    rows: R,
}

impl<R: Rows> RouteTable<R> {
    /// A table serving `binds`, hashing flows with `hash_key` onto `rows`.
    pub fn new(binds: Vec<Bind>, hash_key: [u8; 16], rows: R) -> Self {
        Self {
            binds,
            hash_key,
            hasher: SipHasher24::new_with_key(&hash_key),
            rows,
        }
    }

    /// The binds.
    pub fn binds(&self) -> &[Bind] {
        &self.binds
    }

    /// The 16-byte SipHash key.
    pub fn hash_key(&self) -> [u8; 16] {
        self.hash_key
    }

    /// The rows.
    pub fn rows(&self) -> &R {
        &self.rows
    }

    fn serves(&self, query: &BindQuery) -> bool {
        self.binds.iter().any(|bind| match *query {
            BindQuery::Port {
                vip,
                protocol,
                port,
            } => bind.matches(vip, protocol, port),
            BindQuery::AnyPort { vip, protocol } => {
                bind.protocol == protocol && bind.prefix.contains(vip)
            }
            BindQuery::AnyBind { vip } => bind.prefix.contains(vip),
        })
    }

    fn holds(&self, vip: IpAddr) -> bool {
        self.binds.iter().any(|bind| bind.prefix.contains(vip))
    }
}

/// A frame encapsulated for a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encapsulation<'h> {
    /// Bytes of the original frame's Ethernet header to drop.
    pub strip: usize,
    /// Bytes of IP packet after them to keep (the rest is Ethernet padding).
    pub inner_len: usize,
    /// The header to put in front of the IP packet.
    pub header: &'h EncapHeader,
    /// Index of the table that served the frame.
    pub table: usize,
    /// The flow's row in it (by the primary hash fields).
    pub row: u16,
}

impl Encapsulation<'_> {
    /// The encapsulated frame, built by copying (for tests and offline tools; the runtime
    /// prepends into the buffer instead).
    pub fn output(&self, frame: &[u8]) -> Vec<u8> {
        let inner = &frame[self.strip..self.strip + self.inner_len];
        let mut out = Vec::with_capacity(self.header.len() + inner.len());
        out.extend_from_slice(self.header.as_bytes());
        out.extend_from_slice(inner);
        out
    }
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'h> {
    /// Encapsulate and send back out of the NIC.
    Encapsulate(Encapsulation<'h>),
    /// Not for the director: hand to the kernel untouched.
    Pass,
    /// A broken packet to a VIP, or one that cannot be routed: drop (counted).
    Drop(DropReason),
}

/// The part of a routing decision that is not the header.
#[derive(Debug, Clone, Copy)]
struct Placed {
    inner_len: usize,
    table: usize,
    row: u16,
}

/// A decision before it is counted: `Ok(None)` passes.
type Decision = Result<Option<Placed>, DropReason>;

/// One worker's director: configuration, counters and the header buffer it builds into.
#[derive(Debug, Clone)]
pub struct Director {
    config: DirectorConfig,
    counters: Counters,
    header: EncapHeader,
}

impl Director {
    /// A director with zeroed counters.
    pub fn new(config: DirectorConfig) -> Self {
        Self {
            config,
            counters: Counters::new(),
            header: EncapHeader::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DirectorConfig {
        &self.config
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The header built for the last frame routed to a backend (what its
    /// [`Encapsulation::header`] borrowed): a runtime that decides first and writes the header
    /// later reads it here.
    pub fn header(&self) -> &EncapHeader {
        &self.header
    }

    /// Routes `frame` by the first table (in order) with a bind that takes it.
    pub fn route<R: Rows>(&mut self, frame: &[u8], tables: &[RouteTable<R>]) -> Route<'_> {
        let decision = self.decide(
            frame,
            |query| {
                tables
                    .iter()
                    .position(|table| table.serves(query))
                    .map(|index| (index, &tables[index]))
            },
            |vip| tables.iter().any(|table| table.holds(vip)),
        );
        self.counted(decision)
    }

    /// Routes `frame` by `table` without matching binds (an offline tool's `--table N`): any
    /// routable frame is taken, every malformed one dropped.
    pub fn route_by<R: Rows>(&mut self, frame: &[u8], table: &RouteTable<R>) -> Route<'_> {
        let decision = self.decide(frame, |_| Some((0, table)), |_| true);
        self.counted(decision)
    }

    /// Counts a decision and turns it into a route (borrowing the header just built).
    #[inline]
    fn counted(&mut self, decision: Decision) -> Route<'_> {
        self.counters.bump(Counter::PacketsTotal);
        match decision {
            Ok(Some(placed)) => {
                self.counters.bump(Counter::RoutedPacketsTotal);
                Route::Encapsulate(Encapsulation {
                    strip: ethernet::HEADER_LEN,
                    inner_len: placed.inner_len,
                    header: &self.header,
                    table: placed.table,
                    row: placed.row,
                })
            }
            Ok(None) => {
                self.counters.bump(Counter::PassedPacketsTotal);
                Route::Pass
            }
            Err(reason) => {
                self.counters.bump(reason.counter());
                Route::Drop(reason)
            }
        }
    }

    #[inline]
    fn decide<'t, R: Rows + 't>(
        &mut self,
        frame: &[u8],
        find: impl FnOnce(&BindQuery) -> Option<(usize, &'t RouteTable<R>)>,
        is_vip: impl FnOnce(IpAddr) -> bool,
    ) -> Decision {
        let routable = match classify::classify(frame) {
            Classified::Routable(routable) => routable,
            Classified::Pass(reason) => {
                if reason == PassReason::Vlan {
                    self.counters.bump(Counter::PassedPacketsTotalVlan);
                }
                return Ok(None);
            }
            Classified::Malformed { vip, reason } => {
                return if is_vip(vip) { Err(reason) } else { Ok(None) };
            }
        };
        if routable.kind == Kind::IcmpEcho && !self.config.forward_icmp_echo {
            return Ok(None);
        }
        let Some((index, table)) = find(&routable.query) else {
            return Ok(None);
        };
        if routable.kind == Kind::Fragment && self.config.hashes_ports() {
            return Err(DropReason::FragmentNeedsPorts);
        }
        let placed = self.encapsulate(frame, &routable, table, index)?;
        self.count_kind(routable.kind);
        Ok(Some(placed))
    }

    fn count_kind(&mut self, kind: Kind) {
        let counter = match kind {
            Kind::Transport => return,
            Kind::IcmpError => Counter::RoutedPacketsTotalIcmpError,
            Kind::IcmpEcho => Counter::RoutedPacketsTotalIcmpEcho,
            Kind::Fragment => Counter::RoutedPacketsTotalFragment,
        };
        self.counters.bump(counter);
    }

    /// Hashes the flow, reads its row (and the alternative hash's row) and builds the header.
    #[inline]
    fn encapsulate<R: Rows>(
        &mut self,
        frame: &[u8],
        routable: &Routable,
        table: &RouteTable<R>,
        index: usize,
    ) -> Result<Placed, DropReason> {
        let hash = routable.flow.hash(&table.hasher, self.config.hash_fields);
        let row = flow_hash::row(hash);
        let hops = table.rows.hops(row);
        // As GLB: the old mapping's hops follow, duplicates kept (a host listed twice is asked
        // twice; a header identical to GLB's matters more in a mixed fleet).
        let alt_hops: &[Ipv4Addr] = match self.config.alt_hash_fields {
            Some(alt) => table
                .rows
                .hops(flow_hash::row(routable.flow.hash(&table.hasher, alt))),
            None => &[],
        };
        let start = ethernet::HEADER_LEN;
        let inner = &frame[start..start + routable.inner_len];
        let flow = FlowRoute {
            hash,
            hint: routable.hint,
            gue_proto: routable.gue_proto,
        };
        let all_hops = hops.iter().chain(alt_hops).copied();
        let truncated = encap::build(&mut self.header, &self.config.encap, flow, all_hops, inner)?;
        if truncated {
            self.counters.bump(Counter::HopsTruncatedTotal);
        }
        Ok(Placed {
            inner_len: routable.inner_len,
            table: index,
            row,
        })
    }
}

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

use crate::burst::Burst;
use crate::classify::{self, BindQuery, Classified, Kind, PassReason};
use crate::counters::{Counter, Counters, DropReason};
use crate::encap::{
    self, EncapConfig, EncapHeader, FlowRoute, HeaderTemplate, HopPart, Layout, MAX_ROUTE_HOPS,
};
use crate::fast;
use crate::flow_hash::{self, FlowFields, HashFields};
use crate::hop_headers::HopHeader;
use crate::inner_sum;
use crate::model::Rows;
use crate::route_table::serving_v4;
pub use crate::route_table::RouteTable;
use chance_engine::config::DEFAULT_GUE_PORT;
use chance_engine::wire::{ethernet, ip_proto};
use core::net::{IpAddr, Ipv4Addr};

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

/// What to do with a frame, its header not written yet ([`Director::plan`]): the runtime makes
/// room for `header_len` bytes in front of the frame's IP packet and has
/// [`Director::write_planned`] write them there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Encapsulate and send back out of the NIC.
    Encapsulate {
        /// Bytes of the original frame's Ethernet header to drop.
        strip: usize,
        /// Bytes of IP packet after them to keep (the rest is Ethernet padding).
        inner_len: usize,
        /// Bytes of header to put in front of the IP packet.
        header_len: usize,
    },
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

/// What the header of the frame routed last is made of, kept until it is written.
#[derive(Debug, Clone, Copy)]
struct Pending {
    flow: FlowRoute,
    layout: Layout,
    /// The row's hop list compiled, when the fast path found one; `hops` otherwise.
    compiled: Option<HopHeader>,
    /// The hops, first hop first: `1 + layout.rest` of them count.
    hops: [Ipv4Addr; MAX_ROUTE_HOPS],
    /// The inner packet's share of the UDP checksum, when the fast path derived it from the
    /// header it read (`None`: summed from the packet when the header is written).
    inner_sum: Option<u32>,
}

impl Pending {
    /// The hops the header is written for.
    #[inline]
    fn hop_part(&self) -> HopPart<'_> {
        match &self.compiled {
            Some(header) => HopPart::Compiled(header),
            None => HopPart::Listed(&self.hops),
        }
    }

    /// Writes the header into `out` for `inner` (see [`encap::write`]).
    #[inline(always)]
    fn write(&self, out: &mut [u8], template: &HeaderTemplate, inner: &[u8]) -> bool {
        let hops = self.hop_part();
        encap::write(
            out,
            template,
            &self.layout,
            self.flow,
            hops,
            inner,
            self.inner_sum,
        )
    }
}

/// One worker's director: configuration, counters and the header it builds.
#[derive(Debug, Clone)]
pub struct Director {
    config: DirectorConfig,
    counters: Counters,
    template: HeaderTemplate,
    pending: Pending,
    header: EncapHeader,
    /// The frames read ahead by [`prepare_burst`](Self::prepare_burst).
    burst: Burst,
}

impl Director {
    /// A director with zeroed counters.
    pub fn new(config: DirectorConfig) -> Self {
        Self {
            config,
            counters: Counters::new(),
            template: HeaderTemplate::new(&config.encap),
            pending: Pending {
                flow: FlowRoute::new(0, 0, 0),
                layout: Layout::new(1, 0).unwrap_or_else(|_| unreachable!("one hop, no packet")),
                compiled: None,
                hops: [Ipv4Addr::UNSPECIFIED; MAX_ROUTE_HOPS],
                inner_sum: None,
            },
            header: EncapHeader::new(),
            burst: Burst::new(),
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

    /// The header built for the last frame [`route`](Self::route)d to a backend (what its
    /// [`Encapsulation::header`] borrowed).
    pub fn header(&self) -> &EncapHeader {
        &self.header
    }

    /// Routes `frame` by the first table (in order) with a bind that takes it, the header built
    /// into the director (for tests and offline tools; the runtime [`plan`](Self::plan)s and
    /// writes the header into the frame's buffer instead).
    pub fn route<R: Rows>(&mut self, frame: &[u8], tables: &[RouteTable<R>]) -> Route<'_> {
        let decision = self.decide_by_binds(frame, tables);
        self.counted_route(frame, decision)
    }

    /// Routes `frame` as [`route`](Self::route) does, always by the full procedure (no fast
    /// path): what the fast path must agree with, route, bytes and counters (the tests and the
    /// fuzz target compare them).
    pub fn route_in_full<R: Rows>(&mut self, frame: &[u8], tables: &[RouteTable<R>]) -> Route<'_> {
        let decision = self.decide_in_full(frame, tables);
        self.counted_route(frame, decision)
    }

    /// Routes `frame` by `table` without matching binds (an offline tool's `--table N`): any
    /// routable frame is taken, every malformed one dropped.
    pub fn route_by<R: Rows>(&mut self, frame: &[u8], table: &RouteTable<R>) -> Route<'_> {
        let decision = self.decide(frame, |_| Some((0, table)), |_| true);
        self.counted_route(frame, decision)
    }

    /// Decides `frame` as [`route`](Self::route) does (counted the same), but leaves the header
    /// to [`write_planned`](Self::write_planned): the runtime writes it straight into the
    /// frame's buffer, in front of the IP packet, with no copy.
    #[inline]
    pub fn plan<R: Rows>(&mut self, frame: &[u8], tables: &[RouteTable<R>]) -> Plan {
        let decision = self.decide_by_binds(frame, tables);
        match self.counted(decision) {
            Ok(Some(placed)) => Plan::Encapsulate {
                strip: ethernet::HEADER_LEN,
                inner_len: placed.inner_len,
                header_len: self.pending.layout.len,
            },
            Ok(None) => Plan::Pass,
            Err(reason) => Plan::Drop(reason),
        }
    }

    /// Writes the header of the frame [`plan`](Self::plan)ned last into `header` (exactly the
    /// `header_len` bytes the plan asked for), for `inner`, that frame's IP packet (its
    /// `inner_len` bytes). False, with nothing written, when `header` has another length.
    #[inline]
    pub fn write_planned(&self, header: &mut [u8], inner: &[u8]) -> bool {
        self.pending.write(header, &self.template, inner)
    }

    /// Hashes a burst of frames ahead, before they are routed one by one, in order, by
    /// `tables` ([`route`](Self::route) or [`plan`](Self::plan)): every frame's flow is read
    /// where a common frame has it and hashed with the first table's key, eight at a time (see
    /// `burst` and `flow_lanes`). Each frame is then decided, counted and written exactly as it
    /// would have been alone; the fast path takes the hash computed ahead where it would have
    /// computed the same (the same frame, the same key). A frame other than the one hashed (a
    /// changed order, a frame left out) forgets what is left of the burst. The bytes of a frame must not change between
    /// the two.
    ///
    /// Always inlined, with everything it calls: a caller compiled for AVX-512 or AVX2 (the
    /// runtime's burst preparation) hashes in 512-bit or 256-bit registers.
    #[inline(always)]
    pub fn prepare_burst<'f, R: Rows>(
        &mut self,
        frames: impl IntoIterator<Item = &'f [u8]>,
        tables: &[RouteTable<R>],
    ) {
        self.burst.read(
            frames,
            tables,
            self.config.hash_fields,
            self.config.alt_hash_fields,
        );
    }

    /// Decides `frame` by the fast path when it is a common frame (see [`crate::fast`]), by
    /// the full procedure otherwise.
    #[inline]
    fn decide_by_binds<R: Rows>(&mut self, frame: &[u8], tables: &[RouteTable<R>]) -> Decision {
        let place = self.burst.place_of(frame);
        // The usual frame, checked ahead with its burst: what the fast path below would find.
        // Its own `encapsulate` call (always inlined) rather than one shared with the fast path:
        // merging the two paths' values into one call counted 3 instructions a packet more.
        if let Some((table, ahead)) =
            place.and_then(|place| self.burst.common(place, frame, tables))
        {
            let placed = self.encapsulate::<R, true>(
                ahead.hashes,
                ahead.hint,
                ip_proto::IPIP,
                ahead.inner_len,
                table,
                0,
            )?;
            self.pending.inner_sum = Some(ahead.inner_sum);
            return Ok(Some(placed));
        }
        let Some(common) = fast::read(frame) else {
            return self.decide_in_full(frame, tables);
        };
        let Some((index, table)) = serving_v4(tables, &common) else {
            // What the full procedure answers for a well-formed frame no bind takes.
            return Ok(None);
        };
        let hashed = place.and_then(|place| self.burst.hashes(place, table));
        let hashes = hashed.unwrap_or_else(|| self.flow_hashes(&common.flow(), table));
        // The inner packet's share of the UDP checksum, while its header is in cache and what
        // the fast path checked is known (the packet is cut at its total length, as the header
        // will be written for it).
        let inner = frame.get(ethernet::HEADER_LEN..ethernet::HEADER_LEN + common.inner_len);
        let inner_sum = inner.and_then(inner_sum::derived_common_le);
        let placed = self.encapsulate::<R, true>(
            hashes,
            common.hint,
            ip_proto::IPIP,
            common.inner_len,
            table,
            index,
        )?;
        self.pending.inner_sum = inner_sum;
        Ok(Some(placed))
    }

    /// Decides `frame` by classifying it in full and matching the binds one by one.
    fn decide_in_full<R: Rows>(&mut self, frame: &[u8], tables: &[RouteTable<R>]) -> Decision {
        self.decide(
            frame,
            |query| {
                tables
                    .iter()
                    .enumerate()
                    .find(|(_, table)| table.serves(query))
            },
            |vip| tables.iter().any(|table| table.holds(vip)),
        )
    }

    /// Counts a decision and turns it into a route, the header built into the director.
    fn counted_route(&mut self, frame: &[u8], decision: Decision) -> Route<'_> {
        match self.counted(decision) {
            Ok(Some(placed)) => {
                let start = ethernet::HEADER_LEN;
                let inner = &frame[start..start + placed.inner_len];
                let (p, template) = (&self.pending, &self.template);
                self.header
                    .fill(p.layout.len, |out| p.write(out, template, inner));
                Route::Encapsulate(Encapsulation {
                    strip: start,
                    inner_len: placed.inner_len,
                    header: &self.header,
                    table: placed.table,
                    row: placed.row,
                })
            }
            Ok(None) => Route::Pass,
            Err(reason) => Route::Drop(reason),
        }
    }

    /// Counts a decision.
    #[inline]
    fn counted(&mut self, decision: Decision) -> Decision {
        match decision {
            Ok(Some(_)) => self.counters.bump(Counter::RoutedPacketsTotal),
            Ok(None) => self.counters.bump(Counter::PassedPacketsTotal),
            Err(reason) => self.counters.bump(reason.counter()),
        }
        decision
    }

    #[inline]
    fn decide<'t, R: Rows + 't>(
        &mut self,
        frame: &[u8],
        find: impl FnOnce(&BindQuery) -> Option<(usize, &'t RouteTable<R>)>,
        is_vip: impl FnOnce(IpAddr) -> bool,
    ) -> Decision {
        // Matched by reference: moving the routable frame out of the answer copied it.
        let classified = classify::classify(frame);
        let routable = match &classified {
            Classified::Routable(routable) => routable,
            &Classified::Pass(reason) => {
                if reason == PassReason::Vlan {
                    self.counters.bump(Counter::PassedPacketsTotalVlan);
                }
                return Ok(None);
            }
            &Classified::Malformed { vip, reason } => {
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
        let placed = self.encapsulate::<R, false>(
            self.flow_hashes(&routable.flow, table),
            routable.hint,
            routable.gue_proto,
            routable.inner_len,
            table,
            index,
        )?;
        self.pending.inner_sum = None;
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

    /// The flow's hash over the hash fields, and over the alternative fields (0 when there are
    /// none).
    #[inline(always)]
    fn flow_hashes<R: Rows>(&self, flow: &FlowFields, table: &RouteTable<R>) -> (u64, u64) {
        let hash = flow.hash(&table.hasher, self.config.hash_fields);
        let alt_hash = match self.config.alt_hash_fields {
            Some(alt) => flow.hash(&table.hasher, alt),
            None => 0,
        };
        (hash, alt_hash)
    }

    /// Reads the flow's row (and the alternative hash's row; `hashes` as
    /// [`flow_hashes`](Self::flow_hashes) gives them) and lays out the header, keeping what it
    /// is built from until it is written. With `COMPILED` (the fast path), a row whose hop list
    /// the table compiled takes it, unless a second hash's row is appended; otherwise (and
    /// always for the full procedure) the hops are listed one by one. (Always inlined: as a
    /// call, shared by the fast path and the full procedure, its arguments and prologue cost
    /// more than 20 instructions a frame.)
    #[inline(always)]
    fn encapsulate<R: Rows, const COMPILED: bool>(
        &mut self,
        (hash, alt_hash): (u64, u64),
        hint: u16,
        gue_proto: u8,
        inner_len: usize,
        table: &RouteTable<R>,
        index: usize,
    ) -> Result<Placed, DropReason> {
        let row = flow_hash::row(hash);
        let compiled = if COMPILED && self.config.alt_hash_fields.is_none() {
            table.compiled_row(row)
        } else {
            None
        };
        match compiled {
            Some(header) => {
                self.pending.layout = Layout::compiled(header, inner_len)?;
                self.pending.compiled = Some(*header);
            }
            None => self.list_hops(alt_hash, inner_len, table, row)?,
        }
        self.pending.flow = FlowRoute::new(hash, hint, gue_proto);
        Ok(Placed {
            inner_len,
            table: index,
            row,
        })
    }

    /// Copies row `row`'s hops (and those of `alt_hash`'s row) for the header and lays it out,
    /// counting hops left off.
    #[inline(always)]
    fn list_hops<R: Rows>(
        &mut self,
        alt_hash: u64,
        inner_len: usize,
        table: &RouteTable<R>,
        row: u16,
    ) -> Result<(), DropReason> {
        let hops = table.rows.hops(row);
        let pending = &mut self.pending;
        pending.compiled = None;
        let count = copy_hops(&mut pending.hops, hops);
        // As GLB: the old mapping's hops follow, duplicates kept (a host listed twice is asked
        // twice; a header identical to GLB's matters more in a mixed fleet).
        let mut all = hops.len();
        if self.config.alt_hash_fields.is_some() {
            let alt_hops = table.rows.hops(flow_hash::row(alt_hash));
            if let Some(rest) = pending.hops.get_mut(count..) {
                copy_hops(rest, alt_hops);
            }
            all += alt_hops.len();
        }
        pending.layout = Layout::new(all, inner_len)?;
        if Layout::truncates(all) {
            self.counters.bump(Counter::HopsTruncatedTotal);
        }
        Ok(())
    }
}

/// Copies as many of `from` as fit into `to`; returns how many. The first two (a usual row's
/// whole list) one by one, because LLVM turns a copy loop into a call to memcpy.
#[inline]
fn copy_hops(to: &mut [Ipv4Addr], from: &[Ipv4Addr]) -> usize {
    match (to, from) {
        ([a, b, to_rest @ ..], [x, y, from_rest @ ..]) => {
            *a = *x;
            *b = *y;
            let mut copied = 2;
            for (slot, &hop) in to_rest.iter_mut().zip(from_rest) {
                *slot = hop;
                copied += 1;
            }
            copied
        }
        ([a, ..], [x, ..]) => {
            *a = *x;
            1
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_hops_copies_as_many_as_fit_in_order() {
        let from: Vec<Ipv4Addr> = (1..=5u32).map(Ipv4Addr::from).collect();
        for to_len in 0..=5 {
            for from_len in 0..=5 {
                let mut to = vec![Ipv4Addr::UNSPECIFIED; to_len];
                let copied = copy_hops(&mut to, &from[..from_len]);
                let n = to_len.min(from_len);
                assert_eq!(copied, n, "{from_len} hops into {to_len} slots");
                assert_eq!(&to[..n], &from[..n]);
                assert!(to[n..].iter().all(|hop| hop.is_unspecified()));
            }
        }
    }
}

//! One forwarding table as the packet path reads it, and the fast path's search for the table
//! that serves a common IPv4 frame.

use crate::classify::BindQuery;
use crate::fast::{self, V4Bind};
use crate::flow_hasher::FlowHasher;
use crate::hop_headers::{HopHeader, HopHeaders};
use crate::model::{Bind, Rows};
use core::net::IpAddr;
use core::sync::atomic::{AtomicU64, Ordering};

/// One forwarding table as the packet path reads it: the binds it serves, its hash key and its
/// rows. The daemon builds a new set of tables off the packet path and swaps it in whole.
#[derive(Debug, Clone)]
pub struct RouteTable<R> {
    pub(crate) binds: Vec<Bind>,
    /// The IPv4 binds, compiled for the fast path.
    pub(crate) v4_binds: Box<[V4Bind]>,
    /// This table's number among the tables made in this process (from 1; a clone keeps it, and
    /// with it all it holds): what tells a burst read ahead with this table from one read with
    /// another, in one comparison (see `burst`). Nothing in a table changes once it is made.
    pub(crate) id: u64,
    pub(crate) hash_key: [u8; 16],
    pub(crate) hasher: FlowHasher,
    pub(crate) rows: R,
    /// The rows' distinct hop lists, compiled (none of them when there are too many distinct
    /// lists: kept rather than an `Option`, so that a row's look-up has one test fewer).
    hop_headers: HopHeaders,
}

impl<R: Rows> RouteTable<R> {
    /// A table serving `binds`, hashing flows with `hash_key` onto `rows`. Reads every row
    /// once, to compile the distinct hop lists (see [`crate::hop_headers`]).
    pub fn new(binds: Vec<Bind>, hash_key: [u8; 16], rows: R) -> Self {
        static MADE: AtomicU64 = AtomicU64::new(1);
        Self {
            id: MADE.fetch_add(1, Ordering::Relaxed),
            v4_binds: fast::compile(&binds),
            binds,
            hash_key,
            hasher: FlowHasher::new_with_key(&hash_key),
            hop_headers: HopHeaders::compile(&rows).unwrap_or_else(HopHeaders::none),
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

    /// The keyed SipHash the flows are hashed with.
    pub(crate) fn hasher(&self) -> &FlowHasher {
        &self.hasher
    }

    pub(crate) fn serves(&self, query: &BindQuery) -> bool {
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

    /// Row `row`'s hop list compiled, if it is.
    #[inline]
    pub(crate) fn compiled_row(&self, row: u16) -> Option<&HopHeader> {
        self.hop_headers.get(row)
    }

    pub(crate) fn holds(&self, vip: IpAddr) -> bool {
        self.binds.iter().any(|bind| bind.prefix.contains(vip))
    }
}

/// The first of `tables` (in order) with an IPv4 bind that takes the common frame `common`, and
/// its index.
#[inline(always)]
pub(crate) fn serving_v4<'t, R>(
    tables: &'t [RouteTable<R>],
    common: &fast::Frame<'_>,
) -> Option<(usize, &'t RouteTable<R>)> {
    // The first table on its own: the usual set has one, and a loop's set-up would cost it
    // more than the comparisons.
    let (first, rest) = tables.split_first()?;
    if fast::serves(&first.v4_binds, common) {
        return Some((0, first));
    }
    rest.iter()
        .enumerate()
        .find(|(_, table)| fast::serves(&table.v4_binds, common))
        .map(|(index, table)| (index + 1, table))
}

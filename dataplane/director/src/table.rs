//! chance's forwarding table: 65,536 inline hop lists, what the packet path reads through
//! [`Rows`].

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

use crate::glb_rows::{glb_rows, GlbRow};
use crate::hops::{Classes, HopList, MAX_HOPS};
use crate::model::{Backend, Rows, ROWS};
use crate::rendezvous::{RowScores, Seed};

/// The most backends a table may hold (GLB's binary format has room for this many).
pub const MAX_BACKENDS: usize = 256;

/// Why a table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// More backends than a table holds.
    TooManyBackends {
        /// How many were given.
        count: usize,
    },
    /// The same address twice: its rows would be undefined (equal scores).
    DuplicateBackend {
        /// The address.
        address: Ipv4Addr,
    },
    /// Every backend is inactive (or there are none): no row has a hop.
    NoUsableBackend,
    /// A row would need more hops than [`MAX_HOPS`]: too many backends are draining, filling or
    /// unhealthy ahead of the first active healthy one in that row.
    TooManyHops {
        /// The first such row.
        row: u16,
        /// The hops it would need.
        needed: usize,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::TooManyBackends { count } => {
                write!(f, "{count} backends: a table holds at most {MAX_BACKENDS}")
            }
            TableError::DuplicateBackend { address } => {
                write!(f, "backend {address} is listed twice")
            }
            TableError::NoUsableBackend => {
                write!(
                    f,
                    "no backend that is not inactive: no row would have a hop"
                )
            }
            TableError::TooManyHops { row, needed } => write!(
                f,
                "row {row} would need {needed} hops (at most {MAX_HOPS}): too many backends are \
                 draining, filling or unhealthy at once (with none active and healthy ahead of \
                 them); change fewer at a time"
            ),
        }
    }
}

impl std::error::Error for TableError {}

/// Checks what every table needs of its backend list: at most [`MAX_BACKENDS`], no address twice.
pub(crate) fn check_backends(backends: &[Backend]) -> Result<(), TableError> {
    if backends.len() > MAX_BACKENDS {
        return Err(TableError::TooManyBackends {
            count: backends.len(),
        });
    }
    let mut seen = HashSet::with_capacity(backends.len());
    for backend in backends {
        if !seen.insert(backend.address) {
            return Err(TableError::DuplicateBackend {
                address: backend.address,
            });
        }
    }
    Ok(())
}

/// A forwarding table: one hop list per row.
#[derive(Clone, PartialEq, Eq)]
pub struct HopTable {
    /// Exactly [`ROWS`] rows: a row number (a `u16`) indexes it without a bounds check.
    rows: Box<[HopList; ROWS]>,
}

impl fmt::Debug for HopTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HopTable")
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl HopTable {
    /// chance's table for `backends` under `seed`: hop lists by chance's rule (see
    /// [`crate::hops`]), GLB's rows whenever at most one backend is not active and healthy.
    pub fn build(seed: &Seed, backends: &[Backend]) -> Result<Self, TableError> {
        check_backends(backends)?;
        let classes = Classes::new(backends);
        if classes.addresses().is_empty() {
            return Err(TableError::NoUsableBackend);
        }
        let mut scores = RowScores::new(seed, classes.addresses());
        let mut prefix = Vec::with_capacity(MAX_BACKENDS);
        let mut rows = Vec::with_capacity(ROWS);
        for row in 0..=u16::MAX {
            let list = classes
                .row_hops(scores.row(row), &mut prefix)
                .map_err(|needed| TableError::TooManyHops { row, needed })?;
            rows.push(list);
        }
        let rows = all_rows(rows).unwrap_or_else(|| unreachable!("one row per u16 was pushed"));
        Ok(HopTable { rows })
    }

    /// One row's hop list by chance's rule, without building the table (what `build` puts in
    /// row `row`).
    pub fn row(seed: &Seed, backends: &[Backend], row: u16) -> Result<HopList, TableError> {
        check_backends(backends)?;
        let classes = Classes::new(backends);
        if classes.addresses().is_empty() {
            return Err(TableError::NoUsableBackend);
        }
        let mut scores = RowScores::new(seed, classes.addresses());
        classes
            .row_hops(scores.row(row), &mut Vec::new())
            .map_err(|needed| TableError::TooManyHops { row, needed })
    }

    /// GLB's table for `backends` under `seed`: each row's primary then secondary (one hop when
    /// they are the same backend), as `glb-director-cli` would build it.
    pub fn glb(seed: &Seed, backends: &[Backend]) -> Result<Self, TableError> {
        let rows = glb_rows(seed, backends)?;
        let addresses: Vec<Ipv4Addr> = backends.iter().map(|b| b.address).collect();
        Self::from_glb_rows(&addresses, &rows).ok_or(TableError::NoUsableBackend)
    }

    /// A table from GLB's rows (as read from a binary table) over `addresses` (the table's
    /// backend list); `None` unless there are [`ROWS`] rows and every index names an address.
    pub fn from_glb_rows(addresses: &[Ipv4Addr], rows: &[GlbRow]) -> Option<Self> {
        if rows.len() != ROWS {
            return None;
        }
        let rows = rows
            .iter()
            .map(|row| {
                let primary = *addresses.get(usize::try_from(row.primary).ok()?)?;
                let secondary = *addresses.get(usize::try_from(row.secondary).ok()?)?;
                if primary == secondary {
                    HopList::new(&[primary])
                } else {
                    HopList::new(&[primary, secondary])
                }
            })
            .collect::<Option<Vec<_>>>()?;
        Some(HopTable {
            rows: all_rows(rows)?,
        })
    }
}

/// `rows` as a table's fixed-size array; `None` unless there are exactly [`ROWS`].
fn all_rows(rows: Vec<HopList>) -> Option<Box<[HopList; ROWS]>> {
    rows.into_boxed_slice().try_into().ok()
}

impl Rows for HopTable {
    #[inline]
    fn hops(&self, row: u16) -> &[Ipv4Addr] {
        self.rows[usize::from(row)].as_slice()
    }
}

//! GLB's binary forwarding table, format version 2: what `glb-director-cli build-config` writes
//! and glb-director loads.
//!
//! Every integer is in the writer's byte order; GLB's directors are x86-64, so little-endian (a
//! file whose version reads as 2 only big-endian is refused as such). Structures are packed:
//!
//! | Part | Bytes |
//! |---|---|
//! | magic `GLBD`, then version 2, table count, rows per table (65,536), backend slots (256), bind slots (256), each u32 | 24 |
//! | per table: backend count u32, then 256 backend slots: family u32 (1 IPv4, 2 IPv6), address 16 (IPv4 in the first 4, network order), state u16 (0 filling, 1 active, 2 draining or inactive), health u16 (1 up) | 4 + 256 × 24 |
//! | bind count u32, then 256 bind slots: family u32, address 16, prefix bits u16, first port u16, last port u16, IP protocol u8, reserved u8 | 4 + 256 × 28 |
//! | the flow hash key | 16 |
//! | 65,536 rows: primary index u32, secondary index u32 | 65,536 × 8 |
//!
//! Unused slots are zero.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use crate::glb_json::{GlbConfig, MAX_BINDS};
use crate::glb_rows::{glb_rows, GlbRow};
use crate::model::{BackendState, Bind, Prefix, Protocol, ROWS};
use crate::table::{TableError, MAX_BACKENDS};

/// The file's first four bytes.
pub const MAGIC: &[u8; 4] = b"GLBD";
/// The format version written and read.
pub const VERSION: u32 = 2;

const HEADER_LEN: usize = 4 + 5 * 4;
const FAMILY_IPV4: u32 = 1;
const FAMILY_IPV6: u32 = 2;
const ADDRESS_LEN: usize = 16;
const BACKEND_LEN: usize = 4 + ADDRESS_LEN + 2 + 2;
const BIND_LEN: usize = 4 + ADDRESS_LEN + 2 + 2 + 2 + 1 + 1;
const KEY_LEN: usize = 16;
const ROW_LEN: usize = 8;
/// Bytes per table.
pub const TABLE_LEN: usize =
    4 + MAX_BACKENDS * BACKEND_LEN + 4 + MAX_BINDS * BIND_LEN + KEY_LEN + ROWS * ROW_LEN;

const STATE_FILLING: u16 = 0;
const STATE_ACTIVE: u16 = 1;
const STATE_DRAINING_OR_INACTIVE: u16 = 2;
const HEALTH_UP: u16 = 1;

/// The binary table for `config`, byte for byte as `glb-director-cli build-config` writes it.
/// Fails (naming the table's index) only for a table GLB has no defined rows for.
pub fn encode(config: &GlbConfig) -> Result<Vec<u8>, (usize, TableError)> {
    let mut out = Vec::with_capacity(HEADER_LEN + config.tables.len() * TABLE_LEN);
    out.extend_from_slice(MAGIC);
    for word in [
        VERSION,
        len_u32(config.tables.len()),
        len_u32(ROWS),
        len_u32(MAX_BACKENDS),
        len_u32(MAX_BINDS),
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    for (index, table) in config.tables.iter().enumerate() {
        let backends = table.backend_list();
        let rows = glb_rows(&table.seed, &backends).map_err(|e| (index, e))?;
        out.extend_from_slice(&len_u32(backends.len()).to_le_bytes());
        for slot in 0..MAX_BACKENDS {
            let start = out.len();
            out.resize(start + BACKEND_LEN, 0);
            if let Some(backend) = backends.get(slot) {
                let entry = &mut out[start..];
                entry[..4].copy_from_slice(&FAMILY_IPV4.to_le_bytes());
                entry[4..8].copy_from_slice(&backend.address.octets());
                let state = match backend.state {
                    BackendState::Filling => STATE_FILLING,
                    BackendState::Active => STATE_ACTIVE,
                    BackendState::Draining | BackendState::Inactive => STATE_DRAINING_OR_INACTIVE,
                };
                entry[20..22].copy_from_slice(&state.to_le_bytes());
                entry[22..24].copy_from_slice(&u16::from(backend.healthy).to_le_bytes());
            }
        }
        out.extend_from_slice(&len_u32(table.binds.len()).to_le_bytes());
        for slot in 0..MAX_BINDS {
            let start = out.len();
            out.resize(start + BIND_LEN, 0);
            if let Some(bind) = table.binds.get(slot) {
                write_bind(&mut out[start..], bind);
            }
        }
        out.extend_from_slice(&table.hash_key);
        for row in rows {
            out.extend_from_slice(&row.primary.to_le_bytes());
            out.extend_from_slice(&row.secondary.to_le_bytes());
        }
    }
    Ok(out)
}

/// A count that fits GLB's u32 fields (every count here is at most 65,536 or a table count).
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn write_bind(entry: &mut [u8], bind: &Bind) {
    let (family, address) = family_and_address(bind.prefix.addr());
    entry[..4].copy_from_slice(&family.to_le_bytes());
    entry[4..20].copy_from_slice(&address);
    entry[20..22].copy_from_slice(&u16::from(bind.prefix.prefix_len()).to_le_bytes());
    entry[22..24].copy_from_slice(&bind.ports.start().to_le_bytes());
    entry[24..26].copy_from_slice(&bind.ports.end().to_le_bytes());
    entry[26] = bind.protocol.number();
}

fn family_and_address(address: IpAddr) -> (u32, [u8; ADDRESS_LEN]) {
    let mut bytes = [0u8; ADDRESS_LEN];
    match address {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            (FAMILY_IPV4, bytes)
        }
        IpAddr::V6(v6) => (FAMILY_IPV6, v6.octets()),
    }
}

/// A binary table as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlbBinary {
    /// The tables, in order.
    pub tables: Vec<GlbBinaryTable>,
}

/// One table of a binary file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlbBinaryTable {
    /// The backends (rows name them by index).
    pub backends: Vec<GlbBinaryBackend>,
    /// The binds.
    pub binds: Vec<GlbBinaryBind>,
    /// The flow hash key.
    pub hash_key: [u8; 16],
    /// The 65,536 rows.
    pub rows: Vec<GlbRow>,
}

/// A backend slot. The format does not tell draining from inactive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlbBinaryBackend {
    /// Its address.
    pub address: IpAddr,
    /// Its state code: 0 filling, 1 active, 2 draining or inactive.
    pub state: u16,
    /// Whether it was healthy.
    pub healthy: bool,
}

/// A bind slot, as written (GLB itself does not refuse host bits past the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlbBinaryBind {
    /// The address.
    pub address: IpAddr,
    /// The prefix length.
    pub prefix_len: u16,
    /// The ports, inclusive.
    pub ports: RangeInclusive<u16>,
    /// The IP protocol number.
    pub protocol: u8,
}

impl GlbBinaryBind {
    /// The bind, when it is one chance serves (TCP or UDP, a valid prefix).
    pub fn bind(&self) -> Option<Bind> {
        let protocol = match self.protocol {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            _ => return None,
        };
        let prefix = Prefix::new(self.address, u8::try_from(self.prefix_len).ok()?).ok()?;
        Some(Bind {
            prefix,
            protocol,
            ports: self.ports.clone(),
        })
    }
}

/// Why bytes are not a binary table this reader takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlbBinaryError {
    /// Not `GLBD` at the start.
    BadMagic,
    /// Written on a big-endian host.
    BigEndian,
    /// Another format version.
    UnsupportedVersion(u32),
    /// A header field other than GLB's fixed sizes.
    UnexpectedGeometry {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u32,
    },
    /// The length does not match the header's table count.
    WrongLength {
        /// Bytes expected.
        expected: u64,
        /// Bytes found.
        actual: usize,
    },
    /// Shorter than its own fields.
    Truncated,
    /// A table's count is past its slots.
    CountTooLarge {
        /// The table.
        table: usize,
        /// "backends" or "binds".
        what: &'static str,
        /// The count.
        count: u32,
    },
    /// A slot's address family is neither IPv4 nor IPv6.
    BadFamily {
        /// The table.
        table: usize,
        /// The family value.
        family: u32,
    },
    /// A row names a backend past the table's backend count.
    RowOutOfRange {
        /// The table.
        table: usize,
        /// The row.
        row: usize,
    },
}

impl fmt::Display for GlbBinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlbBinaryError::BadMagic => write!(f, "not a GLB forwarding table (no GLBD magic)"),
            GlbBinaryError::BigEndian => {
                write!(f, "a GLB forwarding table written on a big-endian host")
            }
            GlbBinaryError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "GLB forwarding table version {v} (only {VERSION} is read)"
                )
            }
            GlbBinaryError::UnexpectedGeometry { field, value } => {
                write!(f, "{field} is {value}, not GLB's fixed size")
            }
            GlbBinaryError::WrongLength { expected, actual } => {
                write!(f, "{actual} bytes where the header promises {expected}")
            }
            GlbBinaryError::Truncated => write!(f, "truncated"),
            GlbBinaryError::CountTooLarge { table, what, count } => {
                write!(f, "table {table}: {count} {what}, past its slots")
            }
            GlbBinaryError::BadFamily { table, family } => {
                write!(f, "table {table}: address family {family}")
            }
            GlbBinaryError::RowOutOfRange { table, row } => {
                write!(
                    f,
                    "table {table}: row {row} names a backend that is not there"
                )
            }
        }
    }
}

impl std::error::Error for GlbBinaryError {}

/// Reads a binary table.
pub fn decode(bytes: &[u8]) -> Result<GlbBinary, GlbBinaryError> {
    let mut cursor = Cursor { bytes, at: 0 };
    let truncated = || GlbBinaryError::Truncated;
    if cursor.take(4).ok_or_else(truncated)? != MAGIC {
        return Err(GlbBinaryError::BadMagic);
    }
    let version = cursor.u32().ok_or_else(truncated)?;
    if version == VERSION.swap_bytes() {
        return Err(GlbBinaryError::BigEndian);
    }
    if version != VERSION {
        return Err(GlbBinaryError::UnsupportedVersion(version));
    }
    let tables = cursor.u32().ok_or_else(truncated)?;
    for (field, expected) in [
        ("rows per table", ROWS),
        ("backend slots", MAX_BACKENDS),
        ("bind slots", MAX_BINDS),
    ] {
        let value = cursor.u32().ok_or_else(truncated)?;
        if value as usize != expected {
            return Err(GlbBinaryError::UnexpectedGeometry { field, value });
        }
    }
    let expected = HEADER_LEN as u64 + u64::from(tables) * TABLE_LEN as u64;
    if bytes.len() as u64 != expected {
        return Err(GlbBinaryError::WrongLength {
            expected,
            actual: bytes.len(),
        });
    }
    let tables = (0..tables as usize)
        .map(|table| decode_table(&mut cursor, table))
        .collect::<Result<_, _>>()?;
    Ok(GlbBinary { tables })
}

fn decode_table(cursor: &mut Cursor<'_>, table: usize) -> Result<GlbBinaryTable, GlbBinaryError> {
    // The length was checked against the table count: every read below is in bounds.
    let short = || GlbBinaryError::Truncated;
    let count = |what, count: u32, max: usize| {
        if count as usize > max {
            Err(GlbBinaryError::CountTooLarge { table, what, count })
        } else {
            Ok(count as usize)
        }
    };
    let num_backends = count("backends", cursor.u32().ok_or_else(short)?, MAX_BACKENDS)?;
    let mut backends = Vec::with_capacity(num_backends);
    for slot in 0..MAX_BACKENDS {
        let family = cursor.u32().ok_or_else(short)?;
        let address = cursor.take(ADDRESS_LEN).ok_or_else(short)?;
        let state = cursor.u16().ok_or_else(short)?;
        let health = cursor.u16().ok_or_else(short)?;
        if slot < num_backends {
            backends.push(GlbBinaryBackend {
                address: address_of(family, address)
                    .ok_or(GlbBinaryError::BadFamily { table, family })?,
                state,
                healthy: health == HEALTH_UP,
            });
        }
    }
    let num_binds = count("binds", cursor.u32().ok_or_else(short)?, MAX_BINDS)?;
    let mut binds = Vec::with_capacity(num_binds);
    for slot in 0..MAX_BINDS {
        let family = cursor.u32().ok_or_else(short)?;
        let address = cursor.take(ADDRESS_LEN).ok_or_else(short)?;
        let prefix_len = cursor.u16().ok_or_else(short)?;
        let first = cursor.u16().ok_or_else(short)?;
        let last = cursor.u16().ok_or_else(short)?;
        let protocol = cursor.take(2).ok_or_else(short)?[0];
        if slot < num_binds {
            binds.push(GlbBinaryBind {
                address: address_of(family, address)
                    .ok_or(GlbBinaryError::BadFamily { table, family })?,
                prefix_len,
                ports: first..=last,
                protocol,
            });
        }
    }
    let mut hash_key = [0u8; KEY_LEN];
    hash_key.copy_from_slice(cursor.take(KEY_LEN).ok_or_else(short)?);
    let mut rows = Vec::with_capacity(ROWS);
    for row in 0..ROWS {
        let primary = cursor.u32().ok_or_else(short)?;
        let secondary = cursor.u32().ok_or_else(short)?;
        if primary as usize >= num_backends || secondary as usize >= num_backends {
            return Err(GlbBinaryError::RowOutOfRange { table, row });
        }
        rows.push(GlbRow { primary, secondary });
    }
    Ok(GlbBinaryTable {
        backends,
        binds,
        hash_key,
        rows,
    })
}

fn address_of(family: u32, bytes: &[u8]) -> Option<IpAddr> {
    match family {
        FAMILY_IPV4 => {
            let octets: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        FAMILY_IPV6 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

/// Little-endian reads over a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(slice)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

//! Zero-copy views over the headers chance reads and rewrites, in the smoltcp style.
//!
//! Every header has a `XxxPacket<T: AsRef<[u8]>>` view with `new_unchecked`, `new_checked` and
//! `check_len` (the struct and these come from `header_view!` where the check is a fixed length),
//! field getters, and setters where `T: AsMut<[u8]>`. Field offsets live in a private
//! `mod field` as `Range<usize>` / `usize` constants. Where a header is worth building, a small
//! `XxxRepr` value type has `parse` and `emit`.
//!
//! The contract, as in smoltcp: once `check_len()` has returned `Ok(())` (which `new_checked` does),
//! no getter or setter panics. `new_unchecked` is for buffers the caller has already measured.
//! Errors carry no detail (a unit struct): on the hot path the engine maps them onto a counter.

/// A header view: the struct over its buffer, and the constructors every view shares, for a
/// header whose buffer must hold at least `$min_len` bytes (`$what` says which, in the docs).
macro_rules! header_view {
    ($(#[$doc:meta])* $name:ident, $min_len:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps a buffer without checking its length.
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            #[doc = concat!("Wraps a buffer and checks that it holds ", $what, ".")]
            pub fn new_checked(buffer: T) -> $crate::wire::Result<Self> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                Ok(view)
            }

            #[doc = concat!("Checks that the buffer holds ", $what, ".")]
            pub fn check_len(&self) -> $crate::wire::Result<()> {
                if self.buffer.as_ref().len() < $min_len {
                    Err($crate::wire::Error)
                } else {
                    Ok(())
                }
            }

            /// Returns the underlying buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

pub mod checksum;
pub mod ethernet;
pub mod gre;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

use core::fmt;

/// A field range within a header.
pub(crate) type Field = core::ops::Range<usize>;

/// The buffer is too short for the header (or the header's own length fields say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("truncated or malformed header")
    }
}

impl std::error::Error for Error {}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers chance cares about (IANA "Assigned Internet Protocol Numbers").
pub mod ip_proto {
    /// IPv6 Hop-by-Hop Options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulated in IP (IPIP); also GUE's `proto_ctype` for an inner IPv4 packet.
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP; also GUE's `proto_ctype` for an inner IPv6 packet.
    pub const IPV6: u8 = 41;
    /// IPv6 Routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Generic Routing Encapsulation.
    pub const GRE: u8 = 47;
    /// ESP (treated as an unknown upper-layer protocol, as cls_redirect does).
    pub const ESP: u8 = 50;
    /// AH (likewise).
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// No Next Header.
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 Destination Options.
    pub const DEST_OPTS: u8 = 60;
    /// Mobility header.
    pub const MOBILITY: u8 = 135;
}

/// EtherType values chance cares about.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86DD;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
}

#[inline]
pub(crate) fn read_u16(data: &[u8], at: usize) -> u16 {
    // One bounds check and one load (indexing byte by byte checks and loads each byte).
    let mut bytes = [0; 2];
    bytes.copy_from_slice(&data[at..at + 2]);
    u16::from_be_bytes(bytes)
}

#[inline]
pub(crate) fn write_u16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[inline]
pub(crate) fn read_u32(data: &[u8], at: usize) -> u32 {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(&data[at..at + 4]);
    u32::from_be_bytes(bytes)
}

#[inline]
pub(crate) fn write_u32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

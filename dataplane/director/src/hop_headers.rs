//! A table's distinct hop lists, each compiled once into the part of the encapsulation header it
//! decides, with that part's share of both checksums already summed.
//!
//! A forwarding table has 65,536 rows but only a few hundred distinct hop lists (16 backends
//! give at most a few hundred first/second pairs). At table build, off the packet path, every
//! distinct list of one to [`MAX_HOPS`] hops becomes a [`HopHeader`]: the outer destination, the
//! GUE and GLB chain words with the hops after the first, as they go on the wire, and the sums
//! of those words. The rows then hold a 16-bit index into that set: 128 KiB instead of the
//! 2 MiB of inline hop lists, and a frame's header takes its hop part with one copy instead of
//! a hop-by-hop write and sum (see [`crate::encap::write`]).
//!
//! Rows the set does not cover (an empty row, a list longer than [`MAX_HOPS`]) keep their hop
//! list and the general writer; so does a table with more distinct lists than an index holds.

use crate::encap::{le_sum, le_word_sum, word_sum, HopSums, BASE_LEN, GUE_OFFSET};
use crate::hops::MAX_HOPS;
use crate::model::{Rows, ROWS};
use core::net::Ipv4Addr;
use std::collections::HashMap;

/// Bytes of the GUE header and GLB chain word (the header's bytes from [`GUE_OFFSET`] to
/// [`BASE_LEN`]).
const CHAIN_LEN: usize = BASE_LEN - GUE_OFFSET;
/// Bytes of the most hops after the first a compiled list has.
const HOPS_LEN: usize = 4 * (MAX_HOPS - 1);
/// A row's index when its list is not compiled.
const NOT_COMPILED: u16 = u16::MAX;

/// One hop list's part of the header, as written (see the layout in [`crate::encap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HopHeader {
    /// The header's bytes from [`GUE_OFFSET`] to [`BASE_LEN`]: GUE's hlen, a zero proto (the
    /// frame's), zero flags, the chain word with the hop count.
    chain: [u8; CHAIN_LEN],
    /// The hops after the first, as written after the chain word: the first `4 * rest` bytes
    /// count, the rest are zero.
    hops: [u8; HOPS_LEN],
    /// The outer destination: the first hop.
    first: Ipv4Addr,
    /// The header's length.
    pub len: u8,
    /// Hops after the first.
    pub rest: u8,
    /// The sum of the first hop's two words (the IPv4 checksum's share).
    first_sum: u32,
    /// The sum of every word of `chain`, `hops` and the first hop, read little-endian (the UDP
    /// checksum's share: the pseudo-header's destination, GUE, the chain and the hops).
    udp_sum: u32,
}

impl HopHeader {
    /// The header part for `hops`; `None` when there are none or more than [`MAX_HOPS`].
    fn new(hops: &[Ipv4Addr]) -> Option<Self> {
        let (&first, rest) = hops.split_first()?;
        if hops.len() > MAX_HOPS {
            return None;
        }
        let mut chain = [0; CHAIN_LEN];
        // GUE: version 0, C 0, hlen = 1 + the hops after the first (words of private data).
        chain[0] = 1 + rest.len() as u8;
        // The chain word's last byte: the hop count.
        chain[CHAIN_LEN - 1] = rest.len() as u8;
        let mut hop_bytes = [0; HOPS_LEN];
        for (slot, hop) in hop_bytes.chunks_exact_mut(4).zip(rest) {
            slot.copy_from_slice(&hop.octets());
        }
        let udp_sum = le_word_sum(first) + le_sum(&chain) + le_sum(&hop_bytes);
        Some(Self {
            chain,
            hops: hop_bytes,
            first,
            len: (BASE_LEN + 4 * rest.len()) as u8,
            rest: rest.len() as u8,
            first_sum: word_sum(first),
            udp_sum,
        })
    }

    /// Writes the chain word and the hops after the first into a header of [`Self::len`]
    /// bytes (`base` and `hops`, what follows it); `None`, with nothing written, when `hops`
    /// is not `4 * rest` bytes.
    #[inline(always)]
    pub(crate) fn write(&self, base: &mut [u8; BASE_LEN], hops: &mut [u8]) -> Option<HopSums> {
        copy_hop_bytes(hops, &self.hops)?;
        base[GUE_OFFSET..].copy_from_slice(&self.chain);
        Some(HopSums {
            first: self.first,
            first_sum: self.first_sum,
            udp_sum: self.udp_sum,
        })
    }
}

/// Copies the first `to.len()` bytes of `from` into `to` (4 bytes a hop): one copy of a known
/// size per length, because LLVM turns a copy of any other length into a call to memcpy.
/// `None` for a length no compiled list has.
#[inline(always)]
fn copy_hop_bytes(to: &mut [u8], from: &[u8; HOPS_LEN]) -> Option<()> {
    const _: () = assert!(HOPS_LEN == 24, "one arm a length, up to six hops");
    // The usual row: one hop after the first.
    if let Ok(one) = <&mut [u8; 4]>::try_from(&mut *to) {
        *one = [from[0], from[1], from[2], from[3]];
        return Some(());
    }
    match to.len() {
        0 => {}
        8 => to.copy_from_slice(&from[..8]),
        12 => to.copy_from_slice(&from[..12]),
        16 => to.copy_from_slice(&from[..16]),
        20 => to.copy_from_slice(&from[..20]),
        24 => to.copy_from_slice(from),
        _ => return None,
    }
    Some(())
}

/// A table's rows as indices into its distinct compiled hop lists.
#[derive(Clone)]
pub(crate) struct HopHeaders {
    /// Exactly [`ROWS`] indices: a row number (a `u16`) indexes it without a bounds check.
    index: Box<[u16; ROWS]>,
    headers: Box<[HopHeader]>,
}

impl core::fmt::Debug for HopHeaders {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HopHeaders")
            .field("distinct", &self.headers.len())
            .finish_non_exhaustive()
    }
}

impl HopHeaders {
    /// `rows` compiled; `None` when they hold more distinct lists than an index names.
    pub(crate) fn compile<R: Rows>(rows: &R) -> Option<Self> {
        let mut known: HashMap<&[Ipv4Addr], u16> = HashMap::new();
        let mut headers = Vec::new();
        let mut index = Vec::with_capacity(ROWS);
        for row in 0..=u16::MAX {
            let hops = rows.hops(row);
            let at = match known.get(hops) {
                Some(&at) => at,
                None => {
                    let at = match HopHeader::new(hops) {
                        Some(header) => {
                            let at = u16::try_from(headers.len())
                                .ok()
                                .filter(|&at| at != NOT_COMPILED)?;
                            headers.push(header);
                            at
                        }
                        None => NOT_COMPILED,
                    };
                    known.insert(hops, at);
                    at
                }
            };
            index.push(at);
        }
        Some(Self {
            index: index.into_boxed_slice().try_into().ok()?,
            headers: headers.into_boxed_slice(),
        })
    }

    /// No row compiled (what a table of more distinct lists than an index names keeps).
    pub(crate) fn none() -> Self {
        let index = vec![NOT_COMPILED; ROWS].into_boxed_slice();
        Self {
            index: index
                .try_into()
                .unwrap_or_else(|_| unreachable!("ROWS indices")),
            headers: Box::new([]),
        }
    }

    /// Row `row`'s compiled hop list; `None` when it is not compiled.
    #[inline]
    pub(crate) fn get(&self, row: u16) -> Option<&HopHeader> {
        self.headers.get(usize::from(self.index[usize::from(row)]))
    }

    /// How many distinct lists are compiled.
    #[cfg(test)]
    pub(crate) fn distinct(&self) -> usize {
        self.headers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encap::tests::{any_config, any_flow, any_hops, template};
    use crate::encap::{write, FlowRoute, HeaderTemplate, HopPart, Layout};

    struct Cycling(Vec<Vec<Ipv4Addr>>);

    impl Rows for Cycling {
        fn hops(&self, row: u16) -> &[Ipv4Addr] {
            &self.0[usize::from(row) % self.0.len()]
        }
    }

    fn hops(n: u32) -> Vec<Ipv4Addr> {
        (1..=n).map(|i| Ipv4Addr::from(0x0a00_0000 + i)).collect()
    }

    #[test]
    fn each_distinct_list_is_compiled_once_and_rows_find_their_own() {
        let lists: Vec<Vec<Ipv4Addr>> = (0..=9).map(hops).collect();
        let compiled = HopHeaders::compile(&Cycling(lists.clone())).unwrap();
        assert_eq!(compiled.distinct(), MAX_HOPS, "one to seven hops");
        for row in [0u16, 1, 2, 7, 8, 9, 10, 11, u16::MAX] {
            let list = &lists[usize::from(row) % lists.len()];
            match compiled.get(row) {
                Some(header) => {
                    assert!((1..=MAX_HOPS).contains(&list.len()), "row {row}");
                    assert_eq!(header.first, list[0]);
                    assert_eq!(usize::from(header.rest), list.len() - 1);
                    assert_eq!(usize::from(header.len), BASE_LEN + 4 * (list.len() - 1));
                }
                None => assert!(list.is_empty() || list.len() > MAX_HOPS, "row {row}"),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn a_compiled_list_writes_the_header_the_listed_one_does_byte_for_byte(
            config in any_config(),
            flow in any_flow(),
            hops in any_hops(1, MAX_HOPS),
            inner in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1600),
        ) {
            let template = HeaderTemplate::new(&config);
            let compiled = HopHeader::new(&hops).unwrap();
            let listed_layout = Layout::new(hops.len(), inner.len()).unwrap();
            let compiled_layout = Layout::compiled(&compiled, inner.len()).unwrap();
            proptest::prop_assert_eq!(compiled_layout, listed_layout);
            let mut listed_out = vec![0; listed_layout.len];
            let mut compiled_out = vec![0xa5; listed_layout.len];
            let listed = HopPart::Listed(&hops);
            proptest::prop_assert!(write(&mut listed_out, &template, &listed_layout, flow, listed, &inner, None));
            let part = HopPart::Compiled(&compiled);
            proptest::prop_assert!(write(&mut compiled_out, &template, &compiled_layout, flow, part, &inner, None));
            proptest::prop_assert_eq!(compiled_out, listed_out);
        }
    }

    #[test]
    fn a_compiled_list_of_another_length_than_the_layout_writes_nothing() {
        let template = template();
        let flow = FlowRoute::new(1, 2, 4);
        let two = HopHeader::new(&hops(2)).unwrap();
        let three = Layout::new(3, 20).unwrap();
        let mut out = vec![0; three.len];
        assert!(!write(
            &mut out,
            &template,
            &three,
            flow,
            HopPart::Compiled(&two),
            &[0; 20],
            None
        ));
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_table_of_more_distinct_lists_than_an_index_names_is_not_compiled() {
        struct EveryRowItsOwn(Vec<[Ipv4Addr; 1]>);
        impl Rows for EveryRowItsOwn {
            fn hops(&self, row: u16) -> &[Ipv4Addr] {
                &self.0[usize::from(row)]
            }
        }
        let rows = EveryRowItsOwn((0..ROWS as u32).map(|i| [Ipv4Addr::from(i)]).collect());
        assert!(HopHeaders::compile(&rows).is_none());
        let none = HopHeaders::none();
        assert!([0, 1, u16::MAX].iter().all(|&row| none.get(row).is_none()));
    }
}

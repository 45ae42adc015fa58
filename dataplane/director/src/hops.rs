//! chance's hop-list rule: which backends a row lists, and which of them is tried first.
//!
//! A backend is *stable* when it is active and healthy, *accepting* when it is active or filling
//! and healthy (it takes new connections), and *usable* unless it is inactive. In a row's
//! rendezvous order over the usable backends:
//!
//! 1. the row lists the shortest prefix of the order that ends with a stable backend (the whole
//!    order when no backend is stable), and at least the first two backends;
//! 2. the first hop is the first accepting backend of that prefix (failing that, the first
//!    healthy one; failing that, the first); the others follow in rendezvous order.
//!
//! With at most one backend not stable this is GLB's row exactly (see `docs/director-table.md`);
//! with more, every backend that may still hold the row's connections is listed as long as the
//! operator keeps the contract written there.

use std::net::Ipv4Addr;

use crate::model::{Backend, BackendState};
use crate::rendezvous::sorts_before;

/// The longest hop list a row may need: a row is half a cache line (a length byte and seven
/// addresses), and seven hops carry any six backends changing at once.
pub const MAX_HOPS: usize = 7;

/// One row's hop list, inline: 32 bytes, two rows to a cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, align(32))]
pub struct HopList {
    len: u8,
    hops: [Ipv4Addr; MAX_HOPS],
}

impl Default for HopList {
    fn default() -> Self {
        HopList {
            len: 0,
            hops: [Ipv4Addr::UNSPECIFIED; MAX_HOPS],
        }
    }
}

impl HopList {
    /// A list of `hops`; `None` when there are more than [`MAX_HOPS`].
    pub fn new(hops: &[Ipv4Addr]) -> Option<Self> {
        let mut list = HopList::default();
        list.hops.get_mut(..hops.len())?.copy_from_slice(hops);
        list.len = u8::try_from(hops.len()).ok()?;
        Some(list)
    }

    /// The hops, first hop first.
    #[inline]
    pub fn as_slice(&self) -> &[Ipv4Addr] {
        // `len` is at most MAX_HOPS by construction: the `min` only spares a checked slice.
        &self.hops[..usize::from(self.len).min(MAX_HOPS)]
    }
}

/// What the rule needs to know of each usable backend, by its index among the usable ones.
#[derive(Debug)]
pub(crate) struct Classes {
    addresses: Vec<Ipv4Addr>,
    accepting: Vec<bool>,
    healthy: Vec<bool>,
    stable: Vec<usize>,
    unstable: Vec<usize>,
}

impl Classes {
    /// The usable backends of `backends` (inactive ones left out), in order.
    pub(crate) fn new(backends: &[Backend]) -> Self {
        let usable: Vec<&Backend> = backends
            .iter()
            .filter(|b| b.state != BackendState::Inactive)
            .collect();
        let accepting: Vec<bool> = usable
            .iter()
            .map(|b| b.healthy && matches!(b.state, BackendState::Active | BackendState::Filling))
            .collect();
        let (stable, unstable) = (0..usable.len())
            .partition(|&i| usable[i].healthy && usable[i].state == BackendState::Active);
        Classes {
            addresses: usable.iter().map(|b| b.address).collect(),
            accepting,
            healthy: usable.iter().map(|b| b.healthy).collect(),
            stable,
            unstable,
        }
    }

    /// The usable backends' addresses, by index.
    pub(crate) fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }

    /// The row's hop list given its `scores` (by usable index); `Err(needed)` when it would need
    /// more than [`MAX_HOPS`] hops. `prefix` is scratch space reused between rows.
    pub(crate) fn row_hops(
        &self,
        scores: &[u64],
        prefix: &mut Vec<usize>,
    ) -> Result<HopList, usize> {
        let before = |a: usize, b: usize| sorts_before(scores[a], a, scores[b], b);
        let first_stable =
            self.stable
                .iter()
                .copied()
                .reduce(|best, i| if before(i, best) { i } else { best });
        prefix.clear();
        match first_stable {
            Some(s) => {
                prefix.extend(self.unstable.iter().copied().filter(|&u| before(u, s)));
                prefix.push(s);
            }
            None => prefix.extend(0..scores.len()),
        }
        prefix.sort_unstable_by_key(|&i| (scores[i], i));
        if let (1, Some(s)) = (prefix.len(), first_stable) {
            // The first backend is stable: list the next one too, as GLB's secondary.
            let next = self
                .stable
                .iter()
                .chain(&self.unstable)
                .copied()
                .filter(|&i| i != s)
                .reduce(|best, i| if before(i, best) { i } else { best });
            prefix.extend(next);
        }
        if prefix.len() > MAX_HOPS {
            return Err(prefix.len());
        }
        let first = prefix
            .iter()
            .position(|&i| self.accepting[i])
            .or_else(|| prefix.iter().position(|&i| self.healthy[i]))
            .unwrap_or(0);
        let mut list = HopList::default();
        let ordered = prefix.get(first).into_iter().chain(
            prefix
                .iter()
                .enumerate()
                .filter(|&(at, _)| at != first)
                .map(|(_, i)| i),
        );
        for (slot, &i) in list.hops.iter_mut().zip(ordered) {
            *slot = self.addresses[i];
        }
        list.len = prefix.len() as u8; // at most MAX_HOPS: checked above
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_list_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<HopList>(), 32);
        assert_eq!(std::mem::align_of::<HopList>(), 32);
    }

    #[test]
    fn a_hop_list_holds_up_to_the_bound_and_refuses_more() {
        let hops = [Ipv4Addr::new(10, 0, 0, 1); MAX_HOPS + 1];
        assert_eq!(
            HopList::new(&hops[..MAX_HOPS]).unwrap().as_slice(),
            &hops[..MAX_HOPS]
        );
        assert_eq!(HopList::new(&hops), None);
        assert!(HopList::new(&[]).unwrap().as_slice().is_empty());
    }
}

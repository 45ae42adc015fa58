//! The prefetch instruction for the engine's batched flow-table lookups
//! (`ConcurrentFlowTable::lookup_many_with`): the engine names the lines, this issues them.

use chance_engine::table::Prefetch;
use std::sync::atomic::AtomicU64;

/// `prefetcht0`: brings a line into every cache level; it retires at once, so the misses of a
/// whole group of lookups start together (a load that misses would hold up retirement).
#[derive(Debug, Default, Clone, Copy)]
pub struct CachePrefetch;

impl Prefetch for CachePrefetch {
    #[inline(always)]
    fn prefetch(&self, word: &AtomicU64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint: it reads nothing the program sees, writes nothing and never
        // faults, whatever the address; this one comes from a live reference besides.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                word.as_ptr().cast::<i8>().cast_const(),
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        chance_engine::table::LoadPrefetch.prefetch(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chance_engine::table::{ConcurrentFlowTable, Lookup, Source, TableConfig};
    use chance_engine::{FlowKey, L4Proto};
    use std::net::Ipv4Addr;

    fn key(i: u32) -> FlowKey {
        let client = Ipv4Addr::from(0xc612_0000 + i);
        FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(192, 0, 2, 10),
            443,
            client,
            40000,
        )
    }

    #[test]
    fn prefetched_batches_answer_as_single_lookups() {
        let table = ConcurrentFlowTable::new(TableConfig::new(4096));
        for i in 0..2000 {
            table.insert(key(i), Source::Egress);
        }
        // Hits and misses, across several groups of the batch.
        let keys: Vec<FlowKey> = (1000..3000).map(key).collect();
        let mut out = vec![Lookup::Contended; keys.len()];
        table.lookup_many_with(&keys, &mut out, &CachePrefetch);
        for (key, answer) in keys.iter().zip(&out) {
            assert_eq!(*answer, table.lookup(key));
        }
        assert_eq!(out.iter().filter(|l| l.is_owned()).count(), 1000);
    }
}

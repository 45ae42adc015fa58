//! Egress learning on the kernel port's side of the worker: a burst of the host's frames taught
//! to the table together ([`FlowTable::egress_frames`]). A flow this lcore saw confirmed this
//! second is answered by its own record ([`RecentFlows`]) as soon as its frame is read; the
//! others' searches overlap, and a flow the table holds and confirmed this second costs reads only.

use crate::mbuf::MbufBurst;
use crate::prefetch::CachePrefetch;
use chance_engine::table::RecentFlows;
use chance_engine::FlowTable;

/// The lcore's record of the flows it confirmed this second.
#[derive(Debug, Default)]
pub(crate) struct EgressLearning {
    recent: RecentFlows,
}

impl EgressLearning {
    /// Teaches `table` the flows `burst`'s frames prove, in frame order (a SYN-ACK as an
    /// embryonic entry, so spoofed SYNs' answers evict nothing established).
    #[inline]
    pub(crate) fn learn<F: FlowTable>(&mut self, table: &F, burst: &MbufBurst) {
        let frames = burst.iter().map(|m| m.data());
        table.egress_frames(frames, &mut self.recent, &CachePrefetch);
    }
}

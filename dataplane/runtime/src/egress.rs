//! Egress learning on the kernel port's side of the worker: a burst of the host's frames parsed,
//! then its flows taught to the table together ([`FlowTable::egress_many`]): a flow this lcore
//! saw confirmed this second is answered by its own record ([`RecentFlows`]), and the others'
//! searches overlap, a flow the table holds and confirmed this second costing reads only.

use crate::mbuf::{MbufBurst, BURST_SIZE};
use crate::prefetch::CachePrefetch;
use chance_engine::egress::{egress_flow, EgressFlow};
use chance_engine::flow::L4Proto;
use chance_engine::table::RecentFlows;
use chance_engine::{FlowKey, FlowTable};
use core::net::Ipv4Addr;

/// The flows of one burst of the host's egress (kept between bursts: filled, never cleared),
/// and the lcore's record of the flows it confirmed this second.
pub(crate) struct EgressBurst {
    flows: [EgressFlow; BURST_SIZE],
    recent: RecentFlows,
}

impl Default for EgressBurst {
    fn default() -> Self {
        let unused = EgressFlow {
            key: FlowKey::v4(
                L4Proto::Tcp,
                Ipv4Addr::UNSPECIFIED,
                0,
                Ipv4Addr::UNSPECIFIED,
                0,
            ),
            handshake: false,
        };
        Self {
            flows: [unused; BURST_SIZE],
            recent: RecentFlows::default(),
        }
    }
}

impl core::fmt::Debug for EgressBurst {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EgressBurst").finish_non_exhaustive()
    }
}

impl EgressBurst {
    /// Teaches `table` the flows `burst`'s frames prove (see [`egress_flow`]: a SYN-ACK as an
    /// embryonic entry, so spoofed SYNs' answers evict nothing established), in frame order.
    #[inline]
    pub(crate) fn learn<F: FlowTable>(&mut self, table: &F, burst: &MbufBurst) {
        let mut n = 0;
        // A burst holds at most BURST_SIZE frames, so every flow has a place.
        for flow in burst.iter().filter_map(|m| egress_flow(m.data())) {
            if let Some(slot) = self.flows.get_mut(n) {
                *slot = flow;
                n += 1;
            }
        }
        table.egress_many(&self.flows[..n], &mut self.recent, &CachePrefetch);
    }
}

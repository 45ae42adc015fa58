//! `rte_eth_rx_burst` and `rte_eth_tx_burst` as DPDK's headers define them (static inline over
//! the ports' fast-path table `rte_eth_fp_ops`), written here so that they inline into the
//! caller's loop. bindgen's wrappers of the same functions (`rte_eth_rx_burst`, symbol
//! `rte_eth_rx_burst__extern`) cost a call into C that then calls the PMD: about 35
//! instructions a burst, against about 10 here.
//!
//! Like the C functions, these check nothing about the port or queue (DPDK's
//! `RTE_ETHDEV_DEBUG_RX/TX` checks are off in release builds of DPDK); they call the port's RX or
//! TX callbacks when this DPDK has them (`RTE_ETHDEV_RXTX_CALLBACKS`) and one is registered.
//! DPDK's fast-path trace points (`RTE_ENABLE_TRACE_FP`) are not emitted.

use crate::{
    rte_eth_call_rx_callbacks, rte_eth_call_tx_callbacks, rte_eth_fp_ops, rte_mbuf,
    DPDK_SYS_ETHDEV_RXTX_CALLBACKS,
};
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Port `port_id`'s entry of `rte_eth_fp_ops`.
///
/// # Safety
///
/// `port_id` must be below `RTE_MAX_ETHPORTS` (a valid port id is).
#[inline(always)]
unsafe fn fp_ops(port_id: u16) -> *const rte_eth_fp_ops {
    // SAFETY: `rte_eth_fp_ops` is DPDK's array of RTE_MAX_ETHPORTS entries, and the caller keeps
    // `port_id` inside it; only its address is taken here (no reference to the `static mut`).
    unsafe {
        core::ptr::addr_of!(rte_eth_fp_ops)
            .cast::<rte_eth_fp_ops>()
            .add(usize::from(port_id))
    }
}

/// The callback list head `clbk[queue_id]`, read as DPDK reads it (a relaxed atomic load).
///
/// # Safety
///
/// `clbk` must be the queue callback array of a configured port and `queue_id` one of its queues.
#[inline(always)]
unsafe fn callback(clbk: *mut *mut c_void, queue_id: u16) -> *mut c_void {
    // SAFETY: the caller's contract; DPDK writes these slots atomically (release) while the
    // port runs, so the read is atomic too.
    unsafe { AtomicPtr::from_ptr(clbk.add(usize::from(queue_id))).load(Ordering::Relaxed) }
}

/// DPDK's `rte_eth_rx_burst`: receives up to `nb_pkts` packets from RX queue `queue_id` of
/// `port_id` into `rx_pkts`; returns how many.
///
/// # Safety
///
/// As for the C function: the port is configured and started, the queue exists and only the
/// calling thread polls it, and `rx_pkts` has room for `nb_pkts` pointers.
#[inline(always)]
pub unsafe fn rte_eth_rx_burst_inline(
    port_id: u16,
    queue_id: u16,
    rx_pkts: *mut *mut rte_mbuf,
    nb_pkts: u16,
) -> u16 {
    // SAFETY: the caller's contract makes `port_id` valid and `queue_id` one of its RX queues,
    // whose data and callback slots DPDK filled when the port was configured; the PMD's burst
    // function is set for every configured port.
    unsafe {
        let p = &*fp_ops(port_id);
        let qd = *p.rxq.data.add(usize::from(queue_id));
        let Some(rx) = p.rx_pkt_burst else { return 0 };
        let mut nb_rx = rx(qd, rx_pkts, nb_pkts);
        if DPDK_SYS_ETHDEV_RXTX_CALLBACKS != 0 {
            let cb = callback(p.rxq.clbk, queue_id);
            if !cb.is_null() {
                nb_rx = rte_eth_call_rx_callbacks(port_id, queue_id, rx_pkts, nb_rx, nb_pkts, cb);
            }
        }
        nb_rx
    }
}

/// DPDK's `rte_eth_tx_burst`: offers the `nb_pkts` packets of `tx_pkts` to TX queue `queue_id`
/// of `port_id`; returns how many it took (the first ones; they belong to the PMD now).
///
/// # Safety
///
/// As for the C function: the port is configured and started, the queue exists and only the
/// calling thread uses it, and `tx_pkts` holds `nb_pkts` mbufs the caller owns.
#[inline(always)]
pub unsafe fn rte_eth_tx_burst_inline(
    port_id: u16,
    queue_id: u16,
    tx_pkts: *mut *mut rte_mbuf,
    mut nb_pkts: u16,
) -> u16 {
    // SAFETY: as in `rte_eth_rx_burst_inline`, for a TX queue.
    unsafe {
        let p = &*fp_ops(port_id);
        let qd = *p.txq.data.add(usize::from(queue_id));
        if DPDK_SYS_ETHDEV_RXTX_CALLBACKS != 0 {
            let cb = callback(p.txq.clbk, queue_id);
            if !cb.is_null() {
                nb_pkts = rte_eth_call_tx_callbacks(port_id, queue_id, tx_pkts, nb_pkts, cb);
            }
        }
        let Some(tx) = p.tx_pkt_burst else { return 0 };
        tx(qd, tx_pkts, nb_pkts)
    }
}

//! Raw bindings to the system DPDK (>= 22.11), generated at build time. No logic lives here.
//!
//! * Every function, type and constant of the headers listed in `build.rs` (EAL, lcore, launch,
//!   memory, mempool, mbuf, ring, ethdev, ether, eth_ring), under its C name.
//! * Static inline functions (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, `rte_ring_enqueue_burst`,
//!   `rte_lcore_id`, ...) are real symbols too, through bindgen's `wrap_static_fns`: the Rust name
//!   is the C name, the symbol is `<name>__extern`.
//! * `rte_eth_rx_burst`/`rte_eth_tx_burst` also as Rust ([`rte_eth_rx_burst_inline`],
//!   [`rte_eth_tx_burst_inline`]: DPDK's inline bodies over `rte_eth_fp_ops`), which inline into
//!   the caller's loop where the wrapped symbols cost a call into C per burst.
//! * What is a macro or a thread-local in C: [`rte_errno`] (C shim), [`rte_pktmbuf_mtod`]
//!   (re-implemented here), `RTE_ETH_RSS_{IP,UDP,TCP}` (as `DPDK_SYS_ETH_RSS_*`).
//!   `RTE_LCORE_FOREACH_WORKER` is `rte_get_next_lcore(prev, 1, 0)` in a loop.
//!
//! Safe wrappers live in `chance-runtime`; this crate is only the FFI surface.

/// The generated bindings.
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::*;

mod burst;
pub use burst::{rte_eth_rx_burst_inline, rte_eth_tx_burst_inline};

/// `rte_errno` of the calling thread (a per-lcore `__thread` variable in C, read through the shim).
#[inline]
pub fn rte_errno() -> i32 {
    // SAFETY: the shim only reads the calling thread's thread-local `rte_errno`; no pointer and
    // no precondition is involved.
    unsafe { dpdk_sys_errno() }
}

/// `rte_pktmbuf_mtod(m, T)`: a pointer to the start of the data in the mbuf's first segment
/// (`buf_addr + data_off`).
///
/// # Safety
///
/// `m` must point to a valid, initialised `rte_mbuf`.
#[inline(always)]
pub unsafe fn rte_pktmbuf_mtod<T>(m: *const rte_mbuf) -> *mut T {
    // SAFETY: the caller guarantees `m` is a valid mbuf; `buf_addr + data_off` stays inside the
    // mbuf's data buffer by DPDK's invariant `data_off <= buf_len`.
    unsafe {
        (*m).buf_addr
            .cast::<u8>()
            .add(usize::from((*m).data_off))
            .cast::<T>()
    }
}

/// `rte_pktmbuf_mtod_offset(m, T, off)`.
///
/// # Safety
///
/// `m` must point to a valid, initialised `rte_mbuf` and `off` must stay inside its data buffer.
#[inline(always)]
pub unsafe fn rte_pktmbuf_mtod_offset<T>(m: *const rte_mbuf, off: usize) -> *mut T {
    // SAFETY: forwarded to the caller's contract.
    unsafe { rte_pktmbuf_mtod::<u8>(m).add(off).cast::<T>() }
}

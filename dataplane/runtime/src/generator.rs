//! What a traffic generator needs beyond the forwarding path's wrappers (chance-pktgen): bulk
//! mbuf allocation, the time-stamp counter, and a port's link state.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::mbuf::{MbufBurst, MbufError};
use crate::mempool::Mempool;
use crate::port::{Port, PortError};

/// Appends `n` freshly allocated, empty mbufs to `burst` (`rte_pktmbuf_alloc_bulk`: one call and
/// one mempool dequeue for the whole burst, instead of `n` calls to [`crate::Mbuf::alloc`]).
/// All or nothing: on failure the burst is unchanged.
///
/// # Errors
///
/// [`MbufError::PoolExhausted`] when the pool has fewer than `n` free mbufs;
/// [`MbufError::NoRoom`] when `n` exceeds the burst's free slots.
pub fn alloc_bulk(pool: &Mempool, burst: &mut MbufBurst, n: usize) -> Result<(), MbufError> {
    let free = burst.free_slots();
    if n > free {
        return Err(MbufError::NoRoom {
            op: "alloc_bulk",
            requested: n,
            available: free,
        });
    }
    if n == 0 {
        return Ok(());
    }
    // SAFETY: the pool is valid while borrowed; `spare_ptr` points at `free` >= n writable slots
    // of the burst; n <= BURST_SIZE fits c_uint.
    let rc =
        unsafe { dpdk_sys::rte_pktmbuf_alloc_bulk(pool.as_ptr(), burst.spare_ptr(), n as u32) };
    if rc != 0 {
        return Err(MbufError::PoolExhausted(pool.name().to_string()));
    }
    // SAFETY: on success DPDK wrote n owned, reset mbufs into the spare slots.
    unsafe { burst.filled(n) };
    Ok(())
}

/// Like [`alloc_bulk`], then fills the `i`-th new mbuf from `frame(i) = (bytes, len)`: copies
/// all of `bytes` and sets the data length to `len` (`len <= bytes.len()`), as
/// `rte_pktmbuf_append` + a copy would, without a call into DPDK or libc per packet. `bytes` may
/// run past the frame: whole 64-byte blocks copy fastest (a few vector moves, no `memcpy`
/// call), so templates padded to 64 bytes should pass their padding along. Returns how many
/// mbufs were added: `n`, or fewer if a frame does not fit an mbuf's data room (the mbufs from
/// that one on are freed).
///
/// # Errors
///
/// As [`alloc_bulk`]; on error nothing is added.
pub fn alloc_bulk_copy<'a>(
    pool: &Mempool,
    burst: &mut MbufBurst,
    n: usize,
    mut frame: impl FnMut(usize) -> (&'a [u8], usize),
) -> Result<usize, MbufError> {
    const BLOCK: usize = 64;
    let start = burst.len();
    alloc_bulk(pool, burst, n)?;
    let mbufs = burst.as_mut_ptr();
    for i in 0..n {
        let (bytes, len) = frame(i);
        // SAFETY: slot start + i holds an mbuf the burst owns, fresh from rte_pktmbuf_alloc_bulk
        // (reset: one segment, data_len 0, data_off = headroom), and nobody else references it.
        let m = unsafe { &mut **mbufs.add(start + i) };
        let room = usize::from(m.buf_len) - usize::from(m.data_off);
        if bytes.len() > room || len > bytes.len() || m.nb_segs != 1 || m.data_len != 0 {
            // Free this mbuf and the following ones: `burst` keeps the first start + i.
            let mut tail = MbufBurst::new();
            while burst.len() > start + i {
                if let Some(mb) = burst.pop() {
                    let _ = tail.push(mb);
                }
            }
            tail.clear();
            return Ok(i);
        }
        // SAFETY: `data_off + bytes.len() <= buf_len` (checked above), so every write stays
        // inside the mbuf's own buffer, which does not overlap `bytes` (a Rust slice); the
        // reads stay inside `bytes`.
        unsafe {
            let dst = dpdk_sys::rte_pktmbuf_mtod::<u8>(m);
            let blocks = bytes.len() / BLOCK;
            for b in 0..blocks {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr().add(b * BLOCK),
                    dst.add(b * BLOCK),
                    BLOCK,
                );
            }
            let done = blocks * BLOCK;
            if done < bytes.len() {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr().add(done),
                    dst.add(done),
                    bytes.len() - done,
                );
            }
        }
        m.data_len = len as u16;
        m.pkt_len = len as u32;
    }
    Ok(n)
}

/// The time-stamp counter (`rdtsc`; DPDK's `rte_rdtsc`). Not serialising: good for time stamps
/// and rate limiting, not for timing a handful of instructions. On this project's targets the
/// TSC is invariant (`constant_tsc`, `nonstop_tsc`), so values from different cores compare.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU, reads a counter and has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The time-stamp counter, approximated by the monotonic clock in nanoseconds on targets
/// without RDTSC ([`tsc_hz`] is then 1 GHz).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn tsc() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Ticks of [`tsc`] per second, calibrated once per process against the monotonic clock over
/// 50 ms (DPDK's `rte_get_tsc_hz` does the same when the CPU does not report its frequency);
/// about 0.1 % accurate.
pub fn tsc_hz() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        if cfg!(not(target_arch = "x86_64")) {
            return 1_000_000_000;
        }
        let (t0, c0) = (Instant::now(), tsc());
        std::thread::sleep(Duration::from_millis(50));
        let (c1, t1) = (tsc(), Instant::now());
        let ns = t1.duration_since(t0).as_nanos().max(1);
        (u128::from(c1.wrapping_sub(c0)) * 1_000_000_000 / ns) as u64
    })
}

/// A port's link (`rte_eth_link`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The link is up (for net_memif: the peer is connected).
    pub up: bool,
    /// Speed in Mb/s as the driver reports it (0 or `u32::MAX` when unknown).
    pub speed_mbps: u32,
}

/// The link state of `port`, without waiting (`rte_eth_link_get_nowait`).
///
/// # Errors
///
/// [`PortError::Dpdk`].
pub fn link(port: &Port) -> Result<Link, PortError> {
    let mut link = dpdk_sys::rte_eth_link::default();
    // SAFETY: the port is valid and configured while `port` is borrowed; `link` is writable.
    let rc = unsafe { dpdk_sys::rte_eth_link_get_nowait(port.id(), &mut link) };
    if rc != 0 {
        return Err(PortError::Dpdk {
            port: port.id(),
            call: "rte_eth_link_get_nowait",
            errno: crate::errno::Errno::from_code(rc),
        });
    }
    Ok(Link {
        up: link.link_status() != 0,
        speed_mbps: link.link_speed,
    })
}

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

/// Like [`alloc_bulk`], then fills the `i`-th new mbuf from `frame(i) = (bytes, len, tag)`:
/// copies all of `bytes` to the start of the data, sets the data length to `len`, as
/// `rte_pktmbuf_append(len)` + a copy of `bytes` would, without a call into DPDK or libc per
/// packet, and hands the frame's `len` bytes to `finish(tag, data)` (to write what differs per
/// packet while the mbuf is at hand). `bytes` may run past the frame: whole 64-byte blocks copy
/// fastest (a few vector moves, no `memcpy` call), so templates padded to 64 bytes should pass
/// their padding along. `len` may exceed `bytes.len()`: the data from `bytes.len()` to `len` is
/// then whatever the buffer held, as with [`crate::Mbuf::append`] (a generator whose pool's
/// buffers hold zeros there, and that never writes past its copies, sends zeros). Returns how
/// many mbufs were added: `n`, or fewer if `bytes` or `len` does not fit an mbuf's data room
/// (the mbufs from that one on are freed).
///
/// # Errors
///
/// As [`alloc_bulk`]; on error nothing is added.
pub fn alloc_bulk_copy<'a, T>(
    pool: &Mempool,
    burst: &mut MbufBurst,
    n: usize,
    frame: impl FnMut(usize) -> (&'a [u8], usize, T),
    finish: impl FnMut(T, &mut [u8]),
) -> Result<usize, MbufError> {
    let start = burst.len();
    alloc_bulk(pool, burst, n)?;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (just checked); slots start..start + n of the burst hold the
        // mbufs just allocated, which nothing else references.
        return Ok(unsafe { fill_avx2(burst, start, n, frame, finish) });
    }
    // SAFETY: slots start..start + n of the burst hold the mbufs just allocated, which nothing
    // else references.
    Ok(unsafe { fill(burst, start, n, frame, finish) })
}

/// [`fill`] compiled for AVX2: a 64-byte block is two 32-byte moves instead of the x86_64
/// baseline's four 16-byte ones (chance-pktgen on net_null: 2 to 3 cycles less per packet of
/// 128 to 192 bytes copied, about 8 % more packets per second).
///
/// # Safety
///
/// As [`fill`]; and the CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2<'a, T>(
    burst: &mut MbufBurst,
    start: usize,
    n: usize,
    frame: impl FnMut(usize) -> (&'a [u8], usize, T),
    finish: impl FnMut(T, &mut [u8]),
) -> usize {
    // SAFETY: the caller guarantees what `fill` needs.
    unsafe { fill(burst, start, n, frame, finish) }
}

/// The loop of [`alloc_bulk_copy`] over the `n` mbufs from slot `start` on; returns how many it
/// kept.
///
/// # Safety
///
/// Slots `start..start + n` of `burst` hold mbufs fresh from `rte_pktmbuf_alloc_bulk`, which
/// nothing else references.
#[inline(always)]
unsafe fn fill<'a, T>(
    burst: &mut MbufBurst,
    start: usize,
    n: usize,
    mut frame: impl FnMut(usize) -> (&'a [u8], usize, T),
    mut finish: impl FnMut(T, &mut [u8]),
) -> usize {
    const BLOCK: usize = 64;
    let mbufs = burst.as_mut_ptr();
    for i in 0..n {
        let (bytes, len, tag) = frame(i);
        // SAFETY: slot start + i holds an mbuf the burst owns, fresh from rte_pktmbuf_alloc_bulk
        // (reset: one segment, data_len 0, data_off = headroom), and nobody else references it
        // (the caller's guarantee).
        let m = unsafe { &mut **mbufs.add(start + i) };
        let room = usize::from(m.buf_len) - usize::from(m.data_off);
        if bytes.len() > room || len > room || m.nb_segs != 1 || m.data_len != 0 {
            // Free this mbuf and the following ones: `burst` keeps the first start + i.
            let mut tail = MbufBurst::new();
            while burst.len() > start + i {
                if let Some(mb) = burst.pop() {
                    let _ = tail.push(mb);
                }
            }
            tail.clear();
            return i;
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
        // `len <= room` (checked above): the data stays inside the buffer, as after
        // rte_pktmbuf_append.
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        // SAFETY: the frame's `len <= room` bytes lie inside the mbuf's buffer (initialised
        // memory, as `Mbuf::append` hands out), which the burst owns and nothing else references
        // while `data` lives (until `finish` returns).
        let data =
            unsafe { std::slice::from_raw_parts_mut(dpdk_sys::rte_pktmbuf_mtod::<u8>(m), len) };
        finish(tag, data);
    }
    n
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

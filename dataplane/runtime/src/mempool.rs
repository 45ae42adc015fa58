//! Packet mbuf pools (`rte_pktmbuf_pool_create`).

use std::ffi::CString;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal::{Eal, EalError};
use crate::errno::Errno;

/// Any NUMA socket (`SOCKET_ID_ANY`), for [`Mempool::new`] and [`crate::Ring::new`].
pub const SOCKET_ID_ANY: i32 = dpdk_sys::SOCKET_ID_ANY;

/// The default data room of an mbuf: 2048 bytes of data plus the 128-byte headroom
/// (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// Errors of [`Mempool::new`].
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// No EAL.
    #[error(transparent)]
    Eal(#[from] EalError),
    /// The name contains a NUL byte.
    #[error("mempool name {0:?} contains a NUL byte")]
    BadName(String),
    /// `rte_pktmbuf_pool_create` failed (EEXIST for a duplicate name, ENOMEM, EINVAL for a
    /// cache larger than 512 or than n/1.5, ENAMETOOLONG for a name over 25 bytes, ...).
    #[error("rte_pktmbuf_pool_create({name:?}, n={n}, cache={cache}, data_room={data_room}) failed: {errno}")]
    Create {
        /// The pool's name.
        name: String,
        /// The number of mbufs asked for.
        n: u32,
        /// The per-lcore cache size asked for.
        cache: u32,
        /// The data room asked for.
        data_room: u16,
        /// `rte_errno` and its message.
        errno: Errno,
    },
}

#[derive(Debug)]
struct PoolInner {
    ptr: NonNull<dpdk_sys::rte_mempool>,
    name: String,
    eal: ManuallyDrop<Eal>,
}

// SAFETY: an rte_mempool created with the default (multi-producer/multi-consumer ring) ops can
// be used from any thread; the pointer is only freed in Drop, once.
unsafe impl Send for PoolInner {}
// SAFETY: as above: every operation exposed through `&PoolInner` is thread-safe in DPDK.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is valid until freed below.
        let in_use = unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use != 0 {
            // Freeing the pool would leave these mbufs dangling: leak it, and keep the EAL
            // alive for them (never dropping our handle).
            tracing::error!(
                pool = %self.name,
                in_use,
                "mempool dropped while mbufs from it are still alive: leaking it"
            );
            return;
        }
        // SAFETY: no mbuf of the pool is alive (in_use == 0), and no port uses it (ports hold a
        // `Mempool` clone, so this is the last handle); the pointer is freed exactly once.
        unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
        // SAFETY: `eal` is not used after this point and dropped only here.
        unsafe { ManuallyDrop::drop(&mut self.eal) };
    }
}

/// A pool of packet mbufs. Cheap to clone (clones share the pool); freed with
/// `rte_mempool_free` when the last clone is dropped — unless some of its mbufs are still
/// alive, in which case it is leaked with an error log.
#[derive(Clone, Debug)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

impl Mempool {
    /// Creates a pool of `n_mbufs` mbufs (`rte_pktmbuf_pool_create`). `cache` is the per-lcore
    /// cache size (0 for none, at most 512), `data_room` the buffer size per mbuf *including*
    /// the 128-byte headroom ([`DEFAULT_DATA_ROOM`] is the usual one), `socket` a NUMA socket
    /// or [`SOCKET_ID_ANY`]. Names are global to the process and at most 25 bytes.
    ///
    /// # Errors
    ///
    /// [`MempoolError::Eal`] without an EAL, [`MempoolError::Create`] with `rte_errno` when
    /// DPDK refuses.
    pub fn new(
        name: &str,
        n_mbufs: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, MempoolError> {
        let eal = Eal::current()?;
        let cname = CString::new(name).map_err(|_| MempoolError::BadName(name.to_string()))?;
        // SAFETY: the EAL is initialised (we hold a handle); the name is NUL-terminated and
        // copied by DPDK.
        let ptr = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n_mbufs, cache, 0, data_room, socket)
        };
        let Some(ptr) = NonNull::new(ptr) else {
            return Err(MempoolError::Create {
                name: name.to_string(),
                n: n_mbufs,
                cache,
                data_room,
                errno: Errno::last(),
            });
        };
        tracing::debug!(name, n_mbufs, cache, data_room, socket, "mempool created");
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                ptr,
                name: name.to_string(),
                eal: ManuallyDrop::new(eal),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The number of mbufs in the pool, in use or not.
    pub fn capacity(&self) -> u32 {
        // SAFETY: the pool is valid while we hold it; `size` is immutable after creation.
        unsafe { (*self.inner.ptr.as_ptr()).size }
    }

    /// The number of mbufs allocated and not yet freed (`rte_mempool_in_use_count`).
    /// Mbufs parked in a per-lcore cache count as available.
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: the pool is valid while we hold it; the call only reads counters.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// The number of mbufs available for allocation (`rte_mempool_avail_count`).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is valid while we hold it; the call only reads counters.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// The raw pool, valid while `self` (or a clone) is alive.
    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

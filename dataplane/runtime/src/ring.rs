//! `rte_ring`s of mbufs, and ethdev ports over them (`rte_eth_from_rings`) for in-process tests.

use std::ffi::CString;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};

use crate::eal::{Eal, EalError};
use crate::errno::Errno;
use crate::mbuf::{Mbuf, MbufBurst};

/// Errors of ring operations.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// No EAL.
    #[error(transparent)]
    Eal(#[from] EalError),
    /// The name contains a NUL byte.
    #[error("ring name {0:?} contains a NUL byte")]
    BadName(String),
    /// `rte_ring_create` failed (EEXIST for a duplicate name, EINVAL, ENOMEM, ...).
    #[error("rte_ring_create({name:?}, {count}) failed: {errno}")]
    Create {
        /// The ring's name.
        name: String,
        /// The capacity asked for.
        count: u32,
        /// `rte_errno` and its message.
        errno: Errno,
    },
    /// `rte_eth_from_rings` failed.
    #[error("rte_eth_from_rings({name:?}) failed: {errno}")]
    Port {
        /// The port's name.
        name: String,
        /// `rte_errno` and its message.
        errno: Errno,
    },
}

#[derive(Debug)]
struct RingInner {
    ptr: NonNull<dpdk_sys::rte_ring>,
    name: String,
    eal: ManuallyDrop<Eal>,
}

// SAFETY: the ring is created multi-producer/multi-consumer, so enqueue and dequeue are safe
// from any thread; it is freed once, in Drop.
unsafe impl Send for RingInner {}
// SAFETY: as above.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Free the mbufs still queued, then the ring.
        let mut burst = MbufBurst::new();
        while dequeue_into(self.ptr, &mut burst) > 0 {
            burst.clear();
        }
        // SAFETY: the last handle is gone (no port uses the ring: ring ports keep a handle
        // until they are closed), so nothing else references it; freed once.
        unsafe { dpdk_sys::rte_ring_free(self.ptr.as_ptr()) };
        // SAFETY: dropped once, here, and not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.eal) };
    }
}

/// A multi-producer/multi-consumer ring of mbufs. Cheap to clone (clones share the ring);
/// freed, with the mbufs it still holds, when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Ring {
    inner: Arc<RingInner>,
}

impl Ring {
    /// Creates a ring that holds up to `count` mbufs (`rte_ring_create` with
    /// `RING_F_EXACT_SZ`, so `count` need not be a power of two). Names are global to the
    /// process.
    ///
    /// # Errors
    ///
    /// [`RingError::Eal`] without an EAL, [`RingError::Create`] when DPDK refuses.
    pub fn new(name: &str, count: u32, socket: i32) -> Result<Ring, RingError> {
        let eal = Eal::current()?;
        let cname = CString::new(name).map_err(|_| RingError::BadName(name.to_string()))?;
        // SAFETY: the EAL is initialised; the name is NUL-terminated and copied by DPDK.
        let ptr = unsafe {
            dpdk_sys::rte_ring_create(cname.as_ptr(), count, socket, dpdk_sys::RING_F_EXACT_SZ)
        };
        let Some(ptr) = NonNull::new(ptr) else {
            return Err(RingError::Create {
                name: name.to_string(),
                count,
                errno: Errno::last(),
            });
        };
        Ok(Ring {
            inner: Arc::new(RingInner {
                ptr,
                name: name.to_string(),
                eal: ManuallyDrop::new(eal),
            }),
        })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The number of mbufs queued.
    pub fn count(&self) -> u32 {
        // SAFETY: the ring is valid while we hold it.
        unsafe { dpdk_sys::rte_ring_count(self.inner.ptr.as_ptr()) }
    }

    /// How many mbufs the ring can hold.
    pub fn capacity(&self) -> u32 {
        // SAFETY: the ring is valid while we hold it.
        unsafe { dpdk_sys::rte_ring_get_capacity(self.inner.ptr.as_ptr()) }
    }

    /// Enqueues as many mbufs of `burst` as fit, from the front; returns how many. Those leave
    /// the burst; the others stay in it, in order.
    pub fn enqueue_burst(&self, burst: &mut MbufBurst) -> usize {
        let len = burst.len();
        if len == 0 {
            return 0;
        }
        // SAFETY: valid MP/MC ring; the first `len` pointers of the burst are owned mbufs
        // (len <= 32), of which the ring takes the first n.
        let n = unsafe {
            dpdk_sys::rte_ring_enqueue_burst(
                self.inner.ptr.as_ptr(),
                burst.as_mut_ptr().cast::<*mut std::ffi::c_void>(),
                len as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring owns the first n mbufs now.
        unsafe { burst.taken_front(n) };
        n
    }

    /// Dequeues up to `burst.free_slots()` mbufs into `burst` (appended); returns how many.
    pub fn dequeue_burst(&self, burst: &mut MbufBurst) -> usize {
        dequeue_into(self.inner.ptr, burst)
    }

    /// Enqueues one mbuf; gives it back if the ring is full.
    ///
    /// # Errors
    ///
    /// The mbuf itself, when the ring is full.
    pub fn enqueue(&self, m: Mbuf) -> Result<(), Mbuf> {
        let mut burst = MbufBurst::new();
        burst.push(m).expect("an empty burst has room");
        if self.enqueue_burst(&mut burst) == 1 {
            Ok(())
        } else {
            Err(burst.pop().expect("the mbuf was not enqueued"))
        }
    }

    /// Dequeues one mbuf.
    pub fn dequeue(&self) -> Option<Mbuf> {
        let mut one = [std::ptr::null_mut::<std::ffi::c_void>(); 1];
        // SAFETY: valid MP/MC ring; `one` has room for one pointer.
        let n = unsafe {
            dpdk_sys::rte_ring_dequeue_burst(
                self.inner.ptr.as_ptr(),
                one.as_mut_ptr(),
                1,
                std::ptr::null_mut(),
            )
        };
        if n == 0 {
            return None;
        }
        // SAFETY: only mbufs are ever enqueued (typed API, or the ring PMD's TX); we own it now.
        Some(unsafe { Mbuf::from_raw(one[0].cast()) })
    }

    fn as_ptr(&self) -> *mut dpdk_sys::rte_ring {
        self.inner.ptr.as_ptr()
    }
}

fn dequeue_into(ring: NonNull<dpdk_sys::rte_ring>, burst: &mut MbufBurst) -> usize {
    let free = burst.free_slots();
    if free == 0 {
        return 0;
    }
    // SAFETY: valid MP/MC ring; `spare_ptr` has `free` (<= 32) writable slots.
    let n = unsafe {
        dpdk_sys::rte_ring_dequeue_burst(
            ring.as_ptr(),
            burst.spare_ptr().cast::<*mut std::ffi::c_void>(),
            free as u32,
            std::ptr::null_mut(),
        )
    } as usize;
    // SAFETY: the ring only holds owned mbufs (typed API, or the ring PMD's TX path), n of
    // which were written into the spare slots and are ours now.
    unsafe { burst.filled(n) };
    n
}

/// Rings attached to ring ports, kept alive until the port is closed.
static RING_PORTS: Mutex<Vec<(u16, Ring, Ring)>> = Mutex::new(Vec::new());

/// Called when a port closes: its rings (if it is a ring port) may go.
pub(crate) fn release_ring_port(port: u16) {
    let released: Vec<_> = {
        let mut v = RING_PORTS.lock().unwrap_or_else(PoisonError::into_inner);
        let (gone, kept) = std::mem::take(&mut *v)
            .into_iter()
            .partition(|(p, _, _)| *p == port);
        *v = kept;
        gone
    };
    // Dropped outside the lock (may free rings and mbufs).
    drop(released);
}

/// Creates an ethdev port named `net_ring_<name>` whose single RX queue reads from `rx` and
/// single TX queue writes into `tx` (`rte_eth_from_rings`), and returns its port id, for
/// [`crate::Port::configure`] with one RX and one TX queue. The rings stay alive until the
/// port is closed.
///
/// # Errors
///
/// [`RingError::Eal`], [`RingError::BadName`], [`RingError::Port`].
pub fn ring_port(name: &str, rx: &Ring, tx: &Ring) -> Result<u16, RingError> {
    let _eal = Eal::current()?;
    let cname = CString::new(name).map_err(|_| RingError::BadName(name.to_string()))?;
    let rxs = [rx.as_ptr()];
    let txs = [tx.as_ptr()];
    // Hold the registry lock across creation so a port closing concurrently with the same id
    // cannot release our entry.
    let mut reg = RING_PORTS.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: the EAL is initialised; the name is NUL-terminated; both arrays hold one valid
    // ring, kept alive in RING_PORTS until the port is closed. SOCKET_ID_ANY (as unsigned) is
    // accepted as numa_node.
    let rc = unsafe {
        dpdk_sys::rte_eth_from_rings(cname.as_ptr(), rxs.as_ptr(), 1, txs.as_ptr(), 1, u32::MAX)
    };
    let Ok(port) = u16::try_from(rc) else {
        return Err(RingError::Port {
            name: name.to_string(),
            errno: Errno::last(),
        });
    };
    reg.push((port, rx.clone(), tx.clone()));
    Ok(port)
}

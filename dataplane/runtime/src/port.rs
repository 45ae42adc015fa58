//! Ethernet ports (ethdev): configure, start/stop/close, stats, rx/tx bursts.
//!
//! A [`Port`] owns a configured port. Bursts go through [`Port::rx_burst`]/[`Port::tx_burst`]
//! (one thread, `&mut Port`), or, to poll queues from several lcores, through a [`PortQueue`]
//! per queue ([`Port::queue`]), which is `Send` and owns its queue exclusively.
//! The port is stopped and closed when the `Port` and all its `PortQueue`s are gone, or
//! explicitly with [`Port::close`].

use std::collections::HashSet;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::eal::{Eal, EalError};
use crate::errno::Errno;
use crate::mbuf::MbufBurst;
use crate::mempool::Mempool;

/// The RSS hash functions chance asks for (`RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_TCP`);
/// a port enables the subset its device supports.
pub const RSS_IP_UDP_TCP: u64 =
    dpdk_sys::DPDK_SYS_ETH_RSS_IP | dpdk_sys::DPDK_SYS_ETH_RSS_UDP | dpdk_sys::DPDK_SYS_ETH_RSS_TCP;

/// How to configure a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of RX queues (>= 1).
    pub rx_queues: u16,
    /// Number of TX queues (>= 1).
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Spread received packets over the RX queues by RSS on IP/UDP/TCP, when `rx_queues > 1`
    /// and the device supports it.
    pub rss: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: false,
        }
    }
}

/// Basic port counters (`rte_eth_stats`), as chanced reports them (JSON report, API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the hardware because no RX descriptor was free.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Errors of port operations.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// No EAL.
    #[error(transparent)]
    Eal(#[from] EalError),
    /// No such port.
    #[error("port {0} does not exist")]
    NoSuchPort(u16),
    /// The port is already owned by a `Port` of this process.
    #[error("port {0} is already configured by this process (one Port per port id)")]
    AlreadyConfigured(u16),
    /// A queue count is 0 or above the device's maximum.
    #[error("port {port}: {what} = {asked} is out of range 1..={max}")]
    BadQueueCount {
        /// The port.
        port: u16,
        /// `rx_queues` or `tx_queues`.
        what: &'static str,
        /// The number asked for.
        asked: u16,
        /// The device's maximum.
        max: u16,
    },
    /// A DPDK call failed.
    #[error("port {port}: {call} failed: {errno}")]
    Dpdk {
        /// The port.
        port: u16,
        /// The DPDK function.
        call: &'static str,
        /// The error.
        errno: Errno,
    },
    /// A queue id is out of range, or already owned by a [`PortQueue`].
    #[error("port {port}: queue {queue} {why}")]
    Queue {
        /// The port.
        port: u16,
        /// The queue.
        queue: u16,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `start`/`stop`/`close` while [`PortQueue`]s are alive.
    #[error("port {0}: {1} needs every PortQueue of the port dropped first")]
    QueuesInUse(u16, &'static str),
}

/// Port ids owned by a `Port` of this process.
static CLAIMED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn claim(port: u16) -> bool {
    CLAIMED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashSet::new)
        .insert(port)
}

fn unclaim(port: u16) {
    if let Some(set) = CLAIMED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        set.remove(&port);
    }
}

fn dpdk_err(port: u16, call: &'static str, rc: i32) -> PortError {
    PortError::Dpdk {
        port,
        call,
        errno: Errno::from_code(rc),
    }
}

/// What a `Port` and its `PortQueue`s share; stops and closes the port when the last goes.
#[derive(Debug)]
struct PortShared {
    id: u16,
    rx_queues: u16,
    tx_queues: u16,
    /// Queue `q` is owned by a PortQueue.
    queue_claimed: Box<[AtomicBool]>,
    /// Between start and stop (only changed while no PortQueue exists).
    started: AtomicBool,
    closed: AtomicBool,
    _pool: Mempool,
    _eal: Eal,
}

impl PortShared {
    fn close(&self) -> Result<(), PortError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if self.started.swap(false, Ordering::AcqRel) {
            // SAFETY: the port id is valid and owned by us (claimed); no burst runs on it: the
            // caller holds the only reference (last Arc, or `Port::close` checked it).
            let rc = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
            if rc < 0 {
                let errno = Errno::from_code(rc);
                tracing::warn!(port = self.id, %errno, "rte_eth_dev_stop failed");
            }
        }
        // SAFETY: as above; the port is not used after this.
        let rc = unsafe { dpdk_sys::rte_eth_dev_close(self.id) };
        crate::ring::release_ring_port(self.id);
        unclaim(self.id);
        if rc < 0 {
            return Err(dpdk_err(self.id, "rte_eth_dev_close", rc));
        }
        tracing::debug!(port = self.id, "port closed");
        Ok(())
    }
}

impl Drop for PortShared {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing port on drop");
        }
    }
}

/// A configured ethdev port, owned by this process.
#[derive(Debug)]
pub struct Port {
    shared: Arc<PortShared>,
    rss_hf: u64,
}

impl Port {
    /// Configures port `port_id` with `config`: `rx_queues` RX queues filled from `pool` and
    /// `tx_queues` TX queues; with `config.rss` and more than one RX queue, RSS over
    /// IP/UDP/TCP restricted to what the device supports. The port is not started.
    ///
    /// # Errors
    ///
    /// [`PortError::NoSuchPort`], [`PortError::AlreadyConfigured`] (one `Port` per port id),
    /// [`PortError::BadQueueCount`], or [`PortError::Dpdk`] for a failing DPDK call.
    pub fn configure(port_id: u16, config: PortConfig, pool: &Mempool) -> Result<Port, PortError> {
        let eal = Eal::current()?;
        // SAFETY: any port id may be checked; the EAL is initialised.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(PortError::NoSuchPort(port_id));
        }
        if !claim(port_id) {
            return Err(PortError::AlreadyConfigured(port_id));
        }
        match Self::setup(port_id, config, pool) {
            Ok(rss_hf) => {
                let nq = usize::from(config.rx_queues.max(config.tx_queues));
                Ok(Port {
                    shared: Arc::new(PortShared {
                        id: port_id,
                        rx_queues: config.rx_queues,
                        tx_queues: config.tx_queues,
                        queue_claimed: (0..nq).map(|_| AtomicBool::new(false)).collect(),
                        started: AtomicBool::new(false),
                        closed: AtomicBool::new(false),
                        _pool: pool.clone(),
                        _eal: eal,
                    }),
                    rss_hf,
                })
            }
            Err(e) => {
                unclaim(port_id);
                Err(e)
            }
        }
    }

    /// Configures the device and its queues; returns the RSS hash functions enabled.
    fn setup(port: u16, config: PortConfig, pool: &Mempool) -> Result<u64, PortError> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid port id, `info` is a writable rte_eth_dev_info.
        let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(port, &mut info) };
        if rc != 0 {
            return Err(dpdk_err(port, "rte_eth_dev_info_get", rc));
        }
        for (what, asked, max) in [
            ("rx_queues", config.rx_queues, info.max_rx_queues),
            ("tx_queues", config.tx_queues, info.max_tx_queues),
        ] {
            if asked == 0 || asked > max {
                return Err(PortError::BadQueueCount {
                    port,
                    what,
                    asked,
                    max,
                });
            }
        }

        let mut conf = dpdk_sys::rte_eth_conf::default();
        let mut rss_hf = 0;
        if config.rss && config.rx_queues > 1 {
            rss_hf = RSS_IP_UDP_TCP & info.flow_type_rss_offloads;
            if rss_hf == 0 {
                tracing::warn!(
                    port,
                    rx_queues = config.rx_queues,
                    supported = format_args!("{:#x}", info.flow_type_rss_offloads),
                    "device has no RSS over IP/UDP/TCP: each RX queue gets what the device puts on it (net_pcap: its own capture; memif: what the peer sends on it), not a spread by flow"
                );
            } else {
                conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            }
        }
        // SAFETY: valid, stopped port (we just claimed it); `conf` is a valid rte_eth_conf that
        // DPDK copies.
        let rc = unsafe {
            dpdk_sys::rte_eth_dev_configure(port, config.rx_queues, config.tx_queues, &conf)
        };
        if rc != 0 {
            return Err(dpdk_err(port, "rte_eth_dev_configure", rc));
        }
        let (mut rxd, mut txd) = (config.rx_desc, config.tx_desc);
        // SAFETY: valid port; both pointers are to local u16s.
        let rc = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut rxd, &mut txd) };
        if rc != 0 {
            return Err(dpdk_err(port, "rte_eth_dev_adjust_nb_rx_tx_desc", rc));
        }
        // vdevs have no socket (-1): SOCKET_ID_ANY as unsigned is what *_queue_setup expects.
        // SAFETY: valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port) };
        let socket = u32::try_from(socket).unwrap_or(u32::MAX);
        for q in 0..config.rx_queues {
            // SAFETY: valid configured port, q < nb_rx_queues; a null rx_conf means the
            // device's defaults; the pool outlives the port (PortShared holds a clone).
            let rc = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    port,
                    q,
                    rxd,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(dpdk_err(port, "rte_eth_rx_queue_setup", rc));
            }
        }
        for q in 0..config.tx_queues {
            // SAFETY: valid configured port, q < nb_tx_queues; null tx_conf means defaults.
            let rc =
                unsafe { dpdk_sys::rte_eth_tx_queue_setup(port, q, txd, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(dpdk_err(port, "rte_eth_tx_queue_setup", rc));
            }
        }
        tracing::info!(
            port,
            rx_queues = config.rx_queues,
            tx_queues = config.tx_queues,
            rx_desc = rxd,
            tx_desc = txd,
            rss_hf = format_args!("{rss_hf:#x}"),
            "port configured"
        );
        Ok(rss_hf)
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// The number of RX queues.
    pub fn rx_queues(&self) -> u16 {
        self.shared.rx_queues
    }

    /// The number of TX queues.
    pub fn tx_queues(&self) -> u16 {
        self.shared.tx_queues
    }

    /// The RSS hash functions enabled (`RTE_ETH_RSS_*` bits), 0 without RSS.
    pub fn rss_hf(&self) -> u64 {
        self.rss_hf
    }

    /// True between [`start`](Self::start) and [`stop`](Self::stop).
    pub fn is_started(&self) -> bool {
        self.shared.started.load(Ordering::Acquire)
    }

    fn exclusive(&self, what: &'static str) -> Result<(), PortError> {
        // No PortQueue can be created concurrently: that needs `&self`, and we are called
        // with `&mut self` or `self`.
        if Arc::strong_count(&self.shared) > 1 {
            return Err(PortError::QueuesInUse(self.shared.id, what));
        }
        Ok(())
    }

    /// Starts the port (`rte_eth_dev_start`).
    ///
    /// # Errors
    ///
    /// [`PortError::QueuesInUse`] while [`PortQueue`]s are alive, [`PortError::Dpdk`].
    pub fn start(&mut self) -> Result<(), PortError> {
        self.exclusive("start")?;
        // SAFETY: valid, configured port owned by us; no burst runs concurrently (exclusive).
        let rc = unsafe { dpdk_sys::rte_eth_dev_start(self.id()) };
        if rc != 0 {
            return Err(dpdk_err(self.id(), "rte_eth_dev_start", rc));
        }
        self.shared.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`); a net_pcap port flushes and closes its files.
    ///
    /// # Errors
    ///
    /// [`PortError::QueuesInUse`] while [`PortQueue`]s are alive, [`PortError::Dpdk`].
    pub fn stop(&mut self) -> Result<(), PortError> {
        self.exclusive("stop")?;
        // SAFETY: valid port owned by us; no burst runs concurrently (exclusive).
        let rc = unsafe { dpdk_sys::rte_eth_dev_stop(self.id()) };
        if rc != 0 {
            return Err(dpdk_err(self.id(), "rte_eth_dev_stop", rc));
        }
        self.shared.started.store(false, Ordering::Release);
        Ok(())
    }

    /// Stops and closes the port (`rte_eth_dev_close`, which releases a vdev's port id).
    /// Dropping the `Port` (and its `PortQueue`s) does the same, logging errors.
    ///
    /// # Errors
    ///
    /// [`PortError::QueuesInUse`] while [`PortQueue`]s are alive (the port then closes when
    /// the last of them is dropped), [`PortError::Dpdk`].
    pub fn close(self) -> Result<(), PortError> {
        self.exclusive("close")?;
        self.shared.close()
    }

    /// The port's counters (`rte_eth_stats_get`).
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`].
    pub fn stats(&self) -> Result<PortStats, PortError> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid port; `s` is a writable rte_eth_stats.
        let rc = unsafe { dpdk_sys::rte_eth_stats_get(self.id(), &mut s) };
        if rc != 0 {
            return Err(dpdk_err(self.id(), "rte_eth_stats_get", rc));
        }
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets the port's counters (`rte_eth_stats_reset`).
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`].
    pub fn reset_stats(&self) -> Result<(), PortError> {
        // SAFETY: valid port.
        let rc = unsafe { dpdk_sys::rte_eth_stats_reset(self.id()) };
        if rc != 0 {
            return Err(dpdk_err(self.id(), "rte_eth_stats_reset", rc));
        }
        Ok(())
    }

    /// The port's MAC address.
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`].
    pub fn mac_addr(&self) -> Result<[u8; 6], PortError> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port; `addr` is a writable rte_ether_addr.
        let rc = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id(), &mut addr) };
        if rc != 0 {
            return Err(dpdk_err(self.id(), "rte_eth_macaddr_get", rc));
        }
        Ok(addr.addr_bytes)
    }

    /// Sets the port's MAC address (`rte_eth_dev_default_mac_addr_set`). On a TAP or
    /// virtio-user port this is the MAC of the interface the kernel sees.
    ///
    /// # Errors
    ///
    /// [`PortError::Dpdk`].
    pub fn set_mac_addr(&self, mac: [u8; 6]) -> Result<(), PortError> {
        let mut addr = dpdk_sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: valid port; `addr` is a valid rte_ether_addr that DPDK only reads.
        let rc = unsafe { dpdk_sys::rte_eth_dev_default_mac_addr_set(self.id(), &mut addr) };
        if rc != 0 {
            return Err(dpdk_err(self.id(), "rte_eth_dev_default_mac_addr_set", rc));
        }
        Ok(())
    }

    /// The id of the port named `name` (a vdev's name such as `net_pcap0`, or a PCI address).
    pub fn by_name(name: &str) -> Option<u16> {
        let _eal = Eal::current().ok()?;
        let cname = CString::new(name).ok()?;
        let mut id = 0u16;
        // SAFETY: NUL-terminated name, writable id; the EAL is initialised.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        (rc == 0).then_some(id)
    }

    /// The number of ports available (`rte_eth_dev_count_avail`); 0 without an EAL.
    pub fn count_avail() -> u16 {
        let Ok(_eal) = Eal::current() else { return 0 };
        // SAFETY: the EAL is initialised.
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }

    /// Hands out RX queue `queue` and TX queue `queue` (those that exist) to a [`PortQueue`],
    /// which can be moved to another lcore.
    ///
    /// # Errors
    ///
    /// [`PortError::Queue`] if `queue` is beyond both queue counts or already handed out.
    pub fn queue(&self, queue: u16) -> Result<PortQueue, PortError> {
        let s = &self.shared;
        let Some(flag) = s.queue_claimed.get(usize::from(queue)) else {
            return Err(PortError::Queue {
                port: s.id,
                queue,
                why: "does not exist",
            });
        };
        if flag.swap(true, Ordering::AcqRel) {
            return Err(PortError::Queue {
                port: s.id,
                queue,
                why: "is already owned by a PortQueue",
            });
        }
        Ok(PortQueue {
            shared: Arc::clone(s),
            queue,
        })
    }

    fn check_queue(&self, queue: u16, count: u16, dir: &str) {
        assert!(
            queue < count,
            "port {}: {dir} queue {queue} does not exist ({count} configured)",
            self.id()
        );
        assert!(
            !self.shared.queue_claimed[usize::from(queue)].load(Ordering::Acquire),
            "port {}: queue {queue} is owned by a PortQueue",
            self.id()
        );
    }

    /// Receives up to `burst.free_slots()` packets from RX queue `queue` into `burst`
    /// (appended); returns how many. Returns 0 while the port is not started.
    ///
    /// # Panics
    ///
    /// If the queue does not exist or is owned by a [`PortQueue`].
    pub fn rx_burst(&mut self, queue: u16, burst: &mut MbufBurst) -> usize {
        self.check_queue(queue, self.rx_queues(), "RX");
        rx_burst(&self.shared, queue, burst)
    }

    /// Sends the packets of `burst` on TX queue `queue`; returns how many were accepted. Those
    /// leave the burst (the PMD owns them now); the ones not sent stay in it, in order, for
    /// the caller to retry or free ([`MbufBurst::clear`]) and count. Sends nothing while the
    /// port is not started.
    ///
    /// # Panics
    ///
    /// If the queue does not exist or is owned by a [`PortQueue`].
    pub fn tx_burst(&mut self, queue: u16, burst: &mut MbufBurst) -> usize {
        self.check_queue(queue, self.tx_queues(), "TX");
        tx_burst(&self.shared, queue, burst)
    }
}

/// Exclusive use of one queue pair of a port (RX queue `q` and/or TX queue `q`), for an lcore.
/// The port stays open while any `PortQueue` is alive.
#[derive(Debug)]
pub struct PortQueue {
    shared: Arc<PortShared>,
    queue: u16,
}

impl PortQueue {
    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.shared.id
    }

    /// The queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// True if the port has an RX queue with this id.
    pub fn has_rx(&self) -> bool {
        self.queue < self.shared.rx_queues
    }

    /// True if the port has a TX queue with this id.
    pub fn has_tx(&self) -> bool {
        self.queue < self.shared.tx_queues
    }

    /// As [`Port::rx_burst`]; returns 0 if the port has no RX queue with this id.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        if !self.has_rx() {
            return 0;
        }
        rx_burst(&self.shared, self.queue, burst)
    }

    /// As [`Port::tx_burst`]; sends nothing (returns 0) if the port has no TX queue with this id.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        if !self.has_tx() {
            return 0;
        }
        tx_burst(&self.shared, self.queue, burst)
    }
}

impl Drop for PortQueue {
    fn drop(&mut self) {
        self.shared.queue_claimed[usize::from(self.queue)].store(false, Ordering::Release);
    }
}

/// `rte_eth_rx_burst` into the free slots of `burst`. The caller has checked that the queue
/// exists and is exclusively its own.
#[inline]
fn rx_burst(port: &PortShared, queue: u16, burst: &mut MbufBurst) -> usize {
    let free = burst.free_slots();
    if free == 0 || !port.started.load(Ordering::Relaxed) {
        return 0;
    }
    let port = port.id;
    // SAFETY: the port is configured and open (a Port/PortQueue keeps it so), the queue exists
    // and only this thread polls it (exclusive &mut access); `spare_ptr` has `free` writable
    // slots (free <= 32 fits u16).
    let n =
        unsafe { dpdk_sys::rte_eth_rx_burst_inline(port, queue, burst.spare_ptr(), free as u16) };
    let n = usize::from(n);
    // SAFETY: the PMD wrote n <= free owned mbufs into the spare slots.
    unsafe { burst.filled(n) };
    n
}

/// `rte_eth_tx_burst` of the mbufs of `burst`; the sent ones leave it.
#[inline]
fn tx_burst(port: &PortShared, queue: u16, burst: &mut MbufBurst) -> usize {
    let len = burst.len();
    if len == 0 || !port.started.load(Ordering::Relaxed) {
        return 0;
    }
    let port = port.id;
    // SAFETY: as in rx_burst; the first `len` pointers are owned mbufs, of which the PMD takes
    // ownership of the first n it returns.
    let n =
        unsafe { dpdk_sys::rte_eth_tx_burst_inline(port, queue, burst.as_mut_ptr(), len as u16) };
    let n = usize::from(n).min(len);
    // SAFETY: the first n mbufs now belong to the PMD.
    unsafe { burst.taken_front(n) };
    n
}

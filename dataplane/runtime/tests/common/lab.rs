//! Ports over rings for worker tests: a NIC and a kernel port with one queue pair each, the
//! rings behind them, and the pool, checked empty at the end.

use chance_runtime::mempool::DEFAULT_DATA_ROOM;
use chance_runtime::{
    ring_port, IdleExit, IdlePolicy, LcoreStats, Mbuf, MbufBurst, Mempool, Port, PortConfig, Ring,
    WorkerSeat, SOCKET_ID_ANY,
};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The NIC and kernel ports over rings, each with one queue pair, started.
pub struct Lab {
    pub pool: Mempool,
    pub nic_rx: Ring,
    pub nic_tx: Ring,
    pub kernel_rx: Ring,
    pub kernel_tx: Ring,
    pub nic: Port,
    pub kernel: Port,
}

impl Lab {
    pub fn new(name: &str, tx_ring_size: u32) -> Lab {
        let pool = Mempool::new(
            &format!("{name}_pool"),
            4095,
            32,
            DEFAULT_DATA_ROOM,
            SOCKET_ID_ANY,
        )
        .unwrap();
        let ring = |n: &str, size| Ring::new(&format!("{name}_{n}"), size, SOCKET_ID_ANY).unwrap();
        let (nic_rx, nic_tx) = (ring("nrx", 2048), ring("ntx", tx_ring_size));
        let (kernel_rx, kernel_tx) = (ring("krx", 2048), ring("ktx", 2048));
        let cfg = PortConfig {
            rx_desc: 256,
            tx_desc: 256,
            ..PortConfig::default()
        };
        let mut nic = Port::configure(
            ring_port(&format!("{name}_nic"), &nic_rx, &nic_tx).unwrap(),
            cfg,
            &pool,
        )
        .unwrap();
        let mut kernel = Port::configure(
            ring_port(&format!("{name}_kernel"), &kernel_rx, &kernel_tx).unwrap(),
            cfg,
            &pool,
        )
        .unwrap();
        nic.start().unwrap();
        kernel.start().unwrap();
        Lab {
            pool,
            nic_rx,
            nic_tx,
            kernel_rx,
            kernel_tx,
            nic,
            kernel,
        }
    }

    /// Every frame left on `ring`, as bytes; the mbufs go back to the pool.
    pub fn drain(ring: &Ring) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut burst = MbufBurst::new();
        while ring.dequeue_burst(&mut burst) > 0 {
            out.extend(burst.drain().map(|m| m.data().to_vec()));
        }
        out
    }

    pub fn close(self) {
        let Lab {
            pool,
            nic,
            kernel,
            nic_rx,
            nic_tx,
            kernel_rx,
            kernel_tx,
        } = self;
        for ring in [&nic_rx, &nic_tx, &kernel_rx, &kernel_tx] {
            Lab::drain(ring);
        }
        nic.close().unwrap();
        kernel.close().unwrap();
        assert_eq!(pool.in_use_count(), 0, "every mbuf went back to the pool");
    }
}

impl Lab {
    /// A worker's seat on lcore 1 over queue 0 of both ports, with fresh counters.
    pub fn seat(
        &self,
        stop: &Arc<AtomicBool>,
        idle_exit: IdleExit,
        idle: IdlePolicy,
    ) -> WorkerSeat {
        WorkerSeat {
            lcore: 1,
            nic: self.nic.queue(0).unwrap(),
            kernel: self.kernel.queue(0).unwrap(),
            stats: Arc::new(LcoreStats::default()),
            stop: Arc::clone(stop),
            idle_exit,
            idle,
            nic_mac: [0x02, 0, 0, 0, 0, 0x01],
        }
    }

    /// Queues `frame` on the NIC's RX ring, as if received.
    pub fn receive(&self, frame: &[u8]) {
        self.nic_rx
            .enqueue(Mbuf::from_slice(&self.pool, frame).unwrap())
            .unwrap();
    }
}

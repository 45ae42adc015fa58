//! Where the workers run and which queues they own: `[dpdk] lcores` as EAL's lcore arguments,
//! and the queue counts a vdev string fixes.
//!
//! `lcores = [main, worker, worker, ...]` names CPUs. Each worker polls one RX queue and owns one
//! TX queue on both ports (queue i for the i-th worker). The main lcore mostly sleeps (a tick
//! every 100 ms), so it may share its CPU with one worker: `[0, 0, 1]` runs two workers on a
//! two-CPU host, which EAL expresses as `--lcores 0@0,1@0,2@1`. Two workers on one CPU would
//! halve each other, so that is refused.
//!
//! For the drivers whose queue count is fixed by their arguments (net_pcap, net_af_packet), a
//! configuration asking more workers than its ports have queues is refused when it is checked
//! rather than when EAL starts. The others (net_ring, net_null, net_memif, net_tap,
//! virtio_user, a PCI NIC) take the count chanced configures, up to a device limit the runtime
//! checks at start.

/// True when a worker runs on the main lcore's CPU.
pub(crate) fn main_shares_a_cpu(lcores: &[u32]) -> bool {
    lcores
        .split_first()
        .is_some_and(|(main, workers)| workers.contains(main))
}

/// EAL's lcore arguments for `lcores` (at least two CPUs): `-l` with the CPUs as lcore ids, or,
/// when a worker shares the main lcore's CPU, `--lcores` mapping lcore ids 0, 1, ... to the CPUs.
/// The main lcore is the first either way.
pub(crate) fn lcore_args(lcores: &[u32]) -> [String; 4] {
    if main_shares_a_cpu(lcores) {
        let map: Vec<String> = (0..)
            .zip(lcores)
            .map(|(lcore, cpu)| format!("{lcore}@{cpu}"))
            .collect();
        [
            "--lcores".into(),
            map.join(","),
            "--main-lcore".into(),
            "0".into(),
        ]
    } else {
        let cpus: Vec<String> = lcores.iter().map(u32::to_string).collect();
        let main = cpus.first().cloned().unwrap_or_default();
        ["-l".into(), cpus.join(","), "--main-lcore".into(), main]
    }
}

/// Why `lcores` cannot be EAL's lcores, if it cannot: a CPU runs two workers. (The main lcore's
/// CPU may come back once, as a worker's.)
pub(crate) fn shared_cpu_error(lcores: &[u32]) -> Option<String> {
    let mut workers = lcores.get(1..)?.to_vec();
    workers.sort_unstable();
    let twice = workers.windows(2).find(|w| w[0] == w[1])?;
    Some(format!(
        "CPU {} runs two workers: only the main lcore (the first CPU) may share a worker's CPU",
        twice[0]
    ))
}

/// A port's queue counts as its vdev arguments fix them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FixedQueues {
    /// RX queues.
    pub rx: u16,
    /// TX queues.
    pub tx: u16,
    /// How to get more, for the error message.
    pub hint: &'static str,
}

/// The queue counts `device` (a vdev string) fixes, or `None` when the driver takes what it is
/// configured with.
pub(crate) fn fixed_queues(device: &str) -> Option<FixedQueues> {
    let mut parts = device.split(',');
    let driver = parts.next().unwrap_or_default().trim();
    let args: Vec<(&str, &str)> = parts
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    if args.is_empty() {
        // A bare name ("net_pcap0") names a device whose arguments come from elsewhere (EAL's
        // --vdev, as the benchmarks give them): its queues are known only at start, where the
        // runtime checks them.
        return None;
    }
    let count = |keys: &[&str]| {
        let n = args.iter().filter(|(k, _)| keys.contains(k)).count();
        u16::try_from(n).unwrap_or(u16::MAX)
    };
    if driver.starts_with("net_pcap") || driver.starts_with("eth_pcap") {
        // One RX queue per rx_pcap/rx_iface/rx_iface_in/iface argument and one TX queue per
        // tx_pcap/tx_iface/iface; without any TX argument, one dropping TX queue per RX queue.
        let rx = count(&["rx_pcap", "rx_iface", "rx_iface_in", "iface"]);
        let tx = match count(&["tx_pcap", "tx_iface", "iface"]) {
            0 => rx,
            n => n,
        };
        return Some(FixedQueues {
            rx,
            tx,
            hint: "a net_pcap port has one queue per rx_pcap (and tx_pcap) argument",
        });
    }
    if driver.starts_with("net_af_packet") || driver.starts_with("eth_af_packet") {
        let qpairs = args
            .iter()
            .rev()
            .find(|(k, _)| *k == "qpairs")
            .map_or(Some(1), |(_, v)| v.parse().ok())?;
        return Some(FixedQueues {
            rx: qpairs,
            tx: qpairs,
            hint: "a net_af_packet port has `qpairs` queue pairs (default 1)",
        });
    }
    None
}

/// Why `device` cannot give `workers` workers a queue pair each, if it cannot.
pub(crate) fn too_few_queues(device: &str, workers: usize) -> Option<String> {
    let fixed = fixed_queues(device)?;
    let has = usize::from(fixed.rx.min(fixed.tx));
    (has < workers).then(|| {
        format!(
            "{workers} worker(s) need {workers} RX and TX queues, the port has {} RX and {} TX: \
             {} (or list fewer worker CPUs in dpdk.lcores)",
            fixed.rx, fixed.tx, fixed.hint
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_cpus_keep_the_plain_lcore_list() {
        assert!(!main_shares_a_cpu(&[0, 1, 2]));
        assert_eq!(lcore_args(&[2, 4, 6]), ["-l", "2,4,6", "--main-lcore", "2"]);
    }

    #[test]
    fn a_worker_beside_the_main_lcore_maps_lcore_ids_to_cpus() {
        assert!(main_shares_a_cpu(&[0, 0, 1]));
        assert_eq!(
            lcore_args(&[0, 0, 1]),
            ["--lcores", "0@0,1@0,2@1", "--main-lcore", "0"]
        );
        assert_eq!(
            lcore_args(&[3, 5, 3]),
            ["--lcores", "0@3,1@5,2@3", "--main-lcore", "0"]
        );
    }

    #[test]
    fn two_workers_on_one_cpu_are_refused() {
        assert_eq!(shared_cpu_error(&[0, 0, 1]), None);
        assert_eq!(shared_cpu_error(&[0, 1, 2]), None);
        let message = shared_cpu_error(&[0, 1, 1]).unwrap();
        assert!(message.contains("CPU 1 runs two workers"), "{message}");
        assert!(
            shared_cpu_error(&[0, 0, 0]).is_some(),
            "main plus two workers on CPU 0"
        );
    }

    #[test]
    fn a_bare_device_name_leaves_the_queue_check_to_start() {
        assert_eq!(fixed_queues("net_pcap0"), None);
        assert_eq!(fixed_queues("net_af_packet1"), None);
        assert_eq!(too_few_queues("net_pcap0", 2), None);
    }

    #[test]
    fn net_pcap_has_a_queue_per_capture_argument() {
        let q = fixed_queues("net_pcap0,rx_pcap=a.pcap,rx_pcap=b.pcap,tx_pcap=c.pcap").unwrap();
        assert_eq!((q.rx, q.tx), (2, 1));
        let q = fixed_queues("net_pcap1,rx_pcap=a.pcap,rx_pcap=b.pcap,infinite_rx=1").unwrap();
        assert_eq!(
            (q.rx, q.tx),
            (2, 2),
            "no TX argument: a dropping queue per RX"
        );
        let q = fixed_queues("net_pcap2,iface=eth0").unwrap();
        assert_eq!((q.rx, q.tx), (1, 1));
    }

    #[test]
    fn net_af_packet_has_its_qpairs() {
        assert_eq!(fixed_queues("net_af_packet0,iface=nic0").unwrap().rx, 1);
        assert_eq!(
            fixed_queues("net_af_packet0,iface=nic0,qpairs=4")
                .unwrap()
                .tx,
            4
        );
        assert_eq!(
            fixed_queues("net_af_packet0,qpairs=x"),
            None,
            "left to DPDK"
        );
    }

    #[test]
    fn drivers_that_take_any_count_are_not_checked() {
        for device in [
            "net_ring0",
            "net_null0,no-rx=1",
            "net_memif0,role=server",
            "0000:3b:00.0",
        ] {
            assert_eq!(fixed_queues(device), None, "{device}");
        }
    }

    #[test]
    fn too_few_queues_says_how_many_and_how_to_get_more() {
        assert_eq!(too_few_queues("net_pcap0,rx_pcap=a,rx_pcap=b", 2), None);
        let message = too_few_queues("net_pcap0,rx_pcap=a,tx_pcap=b", 2).unwrap();
        assert!(
            message.contains("2 worker(s)") && message.contains("1 RX and 1 TX"),
            "{message}"
        );
        assert!(message.contains("rx_pcap"), "{message}");
        assert_eq!(too_few_queues("net_ring0", 64), None);
    }
}

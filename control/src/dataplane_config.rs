//! The `[dpdk]` and `[ports]` tables: what chanced needs to start EAL, the ports and the lcores.
//!
//! ```toml
//! [dpdk]
//! lcores = [0, 1]          # CPUs: the first runs the main lcore, each other one a worker;
//!                          # [0, 0, 1]: two workers on two CPUs, the main lcore beside the first
//! memory_mb = 256          # EAL memory (-m)
//! hugepages = false        # false: --no-huge --no-shconf (labs, CI); true: hugepages, --in-memory
//! file_prefix = "chance"   # EAL --file-prefix, distinct per DPDK process on a host
//! eal_args = []            # appended to the derived EAL arguments as they are
//! idle = "busy"            # empty polls: "busy" (poll on, a NIC at line rate) or "adaptive" (sleep)
//!
//! [ports]
//! nic = "0000:01:00.0"     # a PCI address, or a vdev string such as "net_af_packet0,iface=eth1"
//! kernel = { kind = "tap", name = "chance0" }   # or "virtio_user", or { kind = "vdev", device = "..." }
//! rx_descriptors = 1024
//! tx_descriptors = 1024
//! mempool_mbufs = 16383
//! mempool_cache = 256
//! burst = 32
//! ```

use crate::config::{ConfigError, Locator};
use crate::worker_layout;
use chance_runtime::{DataplaneSpec, IdlePolicy};
use serde::Deserialize;
use toml::Spanned;

/// The largest burst the runtime's fixed burst arrays hold.
pub const MAX_BURST: u16 = 32;
/// DPDK's compile-time lcore limit (RTE_MAX_LCORE on Debian's build).
const MAX_LCORE: u32 = 128;

/// How chanced reaches the host's kernel stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelPort {
    /// A TAP interface named `name` (DPDK net_tap).
    Tap {
        /// The interface the kernel sees.
        name: String,
    },
    /// virtio-user backed by vhost-net: an interface the kernel sees, faster than TAP.
    VirtioUser {
        /// The interface the kernel sees.
        name: String,
    },
    /// Any vdev string (tests use net_pcap or net_ring here).
    Vdev {
        /// The vdev string, e.g. `net_pcap1,rx_pcap=empty.pcap,tx_pcap=kernel.pcap`.
        device: String,
    },
}

/// The validated `[dpdk]` and `[ports]` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// CPUs for EAL's lcores; the first is the main lcore.
    pub lcores: Vec<u32>,
    /// EAL memory in MiB.
    pub memory_mb: u32,
    /// Whether EAL uses hugepages.
    pub hugepages: bool,
    /// EAL file prefix.
    pub file_prefix: String,
    /// Extra EAL arguments.
    pub eal_args: Vec<String>,
    /// How the workers spend polls that receive nothing.
    pub idle: IdlePolicy,
    /// The NIC: a PCI address or a vdev string.
    pub nic: String,
    /// The kernel exception port.
    pub kernel: KernelPort,
    /// RX descriptors per queue.
    pub rx_descriptors: u16,
    /// TX descriptors per queue.
    pub tx_descriptors: u16,
    /// Mbufs in the pool.
    pub mempool_mbufs: u32,
    /// Per-lcore mempool cache.
    pub mempool_cache: u32,
    /// Packets per RX burst.
    pub burst: u16,
}

impl DataplaneConfig {
    /// Number of worker lcores (and of RX/TX queues per port).
    pub fn workers(&self) -> usize {
        self.lcores.len() - 1
    }

    /// True when a worker runs on the main lcore's CPU (`lcores = [0, 0, 1]`).
    pub fn main_shares_a_cpu(&self) -> bool {
        worker_layout::main_shares_a_cpu(&self.lcores)
    }

    /// The name DPDK gives the NIC (for `rte_eth_dev_get_port_by_name`).
    pub fn nic_name(&self) -> &str {
        device_name(&self.nic)
    }

    /// The name DPDK gives the kernel port.
    pub fn kernel_name(&self) -> &str {
        kernel_device_name(&self.kernel)
    }

    /// The interface name the kernel sees, when chanced creates one.
    pub fn kernel_interface(&self) -> Option<&str> {
        match &self.kernel {
            KernelPort::Tap { name } | KernelPort::VirtioUser { name } => Some(name),
            KernelPort::Vdev { .. } => None,
        }
    }

    /// The EAL arguments a daemon starts with (without the program name): the ones derived for
    /// `program` (`[dpdk] eal_args` included) and then `extra` (the command line's), or only
    /// `extra` when `replace` (`--replace-eal-args`).
    pub fn effective_eal_args(
        &self,
        program: &str,
        extra: &[String],
        replace: bool,
    ) -> Vec<String> {
        let mut args = if replace {
            Vec::new()
        } else {
            self.eal_args(program).split_off(1)
        };
        args.extend(extra.iter().cloned());
        args
    }

    /// What the runtime needs to run this dataplane with `eal_args` (see
    /// [`Self::effective_eal_args`]).
    pub fn spec(&self, eal_args: Vec<String>) -> DataplaneSpec {
        DataplaneSpec {
            eal_args,
            nic: self.nic_name().to_owned(),
            kernel: self.kernel_name().to_owned(),
            kernel_takes_nic_mac: !matches!(self.kernel, KernelPort::Vdev { .. }),
            rx_descriptors: self.rx_descriptors,
            tx_descriptors: self.tx_descriptors,
            mempool_mbufs: self.mempool_mbufs,
            mempool_cache: self.mempool_cache,
            idle: self.idle,
        }
    }

    /// The EAL argument vector (argv[0] included) derived from the configuration.
    pub fn eal_args(&self, program: &str) -> Vec<String> {
        let mut args = vec![program.to_owned()];
        args.extend(worker_layout::lcore_args(&self.lcores));
        args.extend([
            "--file-prefix".into(),
            self.file_prefix.clone(),
            "-m".into(),
            self.memory_mb.to_string(),
        ]);
        if self.hugepages {
            args.push("--in-memory".into());
        } else {
            args.extend(["--no-huge".into(), "--no-shconf".into()]);
        }
        if is_pci_address(&self.nic) {
            args.extend(["-a".into(), self.nic.clone()]);
        } else {
            args.extend(["--no-pci".into(), "--vdev".into(), self.nic.clone()]);
        }
        let queues = self.workers();
        let kernel = match &self.kernel {
            KernelPort::Tap { name } => format!("{},iface={name}", self.kernel_name()),
            KernelPort::VirtioUser { name } => format!(
                "{},path=/dev/vhost-net,queues={queues},queue_size={},iface={name}",
                self.kernel_name(),
                self.rx_descriptors.max(self.tx_descriptors)
            ),
            KernelPort::Vdev { device } => device.clone(),
        };
        args.extend(["--vdev".into(), kernel]);
        args.extend(self.eal_args.iter().cloned());
        args
    }
}

/// The device name in a vdev string: everything before the first comma.
fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

/// `DDDD:BB:DD.F` or `BB:DD.F`.
fn is_pci_address(text: &str) -> bool {
    let parts: Vec<&str> = text.split([':', '.']).collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    match parts.as_slice() {
        [d, b, s, f] => hex(d, 4) && hex(b, 2) && hex(s, 2) && hex(f, 1),
        [b, s, f] => hex(b, 2) && hex(s, 2) && hex(f, 1),
        _ => false,
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDpdk {
    lcores: Option<Spanned<Vec<u32>>>,
    memory_mb: Option<Spanned<u32>>,
    hugepages: Option<bool>,
    file_prefix: Option<Spanned<String>>,
    #[serde(default)]
    eal_args: Vec<String>,
    idle: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPorts {
    nic: Spanned<String>,
    kernel: Spanned<RawKernel>,
    rx_descriptors: Option<Spanned<u16>>,
    tx_descriptors: Option<Spanned<u16>>,
    mempool_mbufs: Option<Spanned<u32>>,
    mempool_cache: Option<Spanned<u32>>,
    burst: Option<Spanned<u16>>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RawKernel {
    Tap { name: String },
    VirtioUser { name: String },
    Vdev { device: String },
}

/// Linux interface names: 1 to 15 bytes, no '/', no white space, not "." or "..".
fn valid_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Validates `[dpdk]` and `[ports]`, when the file has them (`[dpdk]` without `[ports]` is an
/// error); `default_prefix` is the EAL file prefix when the file gives none (each daemon has its
/// own, so that a director and a chanced on one host do not collide).
pub(crate) fn validate_tables(
    dpdk: Option<Spanned<RawDpdk>>,
    ports: Option<RawPorts>,
    default_prefix: &str,
    at: &Locator<'_>,
) -> Result<Option<DataplaneConfig>, ConfigError> {
    match (dpdk, ports) {
        (dpdk, Some(ports)) => {
            validate(dpdk.map(Spanned::into_inner), ports, default_prefix, at).map(Some)
        }
        (Some(dpdk), None) => Err(at.error(
            dpdk.span(),
            Some("ports".into()),
            "missing table: [dpdk] needs [ports] with the nic and kernel ports",
        )),
        (None, None) => Ok(None),
    }
}

fn validate(
    dpdk: Option<RawDpdk>,
    ports: RawPorts,
    default_prefix: &str,
    at: &Locator<'_>,
) -> Result<DataplaneConfig, ConfigError> {
    let dpdk = dpdk.unwrap_or_default();
    let err = |span: core::ops::Range<usize>, key: &str, msg: String| {
        at.error(span, Some(key.into()), msg)
    };

    let lcores = match dpdk.lcores {
        Some(l) => {
            let list = l.get_ref();
            if list.len() < 2 {
                return Err(err(
                    l.span(),
                    "dpdk.lcores",
                    "needs at least two CPUs: the main lcore and one worker".into(),
                ));
            }
            if let Some(&cpu) = list.iter().find(|&&c| c >= MAX_LCORE) {
                return Err(err(
                    l.span(),
                    "dpdk.lcores",
                    format!("CPU {cpu} is beyond DPDK's limit of {MAX_LCORE} lcores"),
                ));
            }
            if let Some(message) = worker_layout::shared_cpu_error(list) {
                return Err(err(l.span(), "dpdk.lcores", message));
            }
            list.clone()
        }
        None => vec![0, 1],
    };
    let memory_mb = match dpdk.memory_mb {
        Some(m) if *m.get_ref() < 64 => {
            return Err(err(
                m.span(),
                "dpdk.memory_mb",
                format!("{} MiB is too little for EAL (at least 64)", m.get_ref()),
            ))
        }
        Some(m) => *m.get_ref(),
        None => 256,
    };
    let file_prefix = match dpdk.file_prefix {
        Some(p) if p.get_ref().is_empty() || p.get_ref().contains('/') => {
            return Err(err(
                p.span(),
                "dpdk.file_prefix",
                "must be a non-empty name without '/'".into(),
            ))
        }
        Some(p) => p.into_inner(),
        None => default_prefix.into(),
    };

    let idle = match dpdk.idle {
        None => IdlePolicy::Busy,
        Some(i) => match i.get_ref().as_str() {
            "busy" => IdlePolicy::Busy,
            "adaptive" => IdlePolicy::adaptive(),
            other => {
                return Err(err(
                    i.span(),
                    "dpdk.idle",
                    format!("`{other}`: expected \"busy\" or \"adaptive\""),
                ))
            }
        },
    };

    let nic = ports.nic.get_ref().trim().to_owned();
    if nic.is_empty() {
        return Err(err(
            ports.nic.span(),
            "ports.nic",
            "a PCI address or a vdev string is required".into(),
        ));
    }
    let kernel_span = ports.kernel.span();
    let kernel = match ports.kernel.into_inner() {
        RawKernel::Tap { name } | RawKernel::VirtioUser { name } if !valid_ifname(&name) => {
            return Err(err(kernel_span, "ports.kernel.name", format!("`{name}` is not a valid interface name (1-15 characters, no '/', ':' or spaces)")))
        }
        RawKernel::Tap { name } => KernelPort::Tap { name },
        RawKernel::VirtioUser { name } => KernelPort::VirtioUser { name },
        RawKernel::Vdev { device } if device.trim().is_empty() => {
            return Err(err(kernel_span, "ports.kernel.device", "a vdev string is required".into()))
        }
        RawKernel::Vdev { device } => KernelPort::Vdev { device: device.trim().to_owned() },
    };
    let workers_count = lcores.len() - 1;
    if !is_pci_address(&nic) {
        if let Some(message) = worker_layout::too_few_queues(&nic, workers_count) {
            return Err(err(ports.nic.span(), "ports.nic", message));
        }
    }
    if let KernelPort::Vdev { device } = &kernel {
        if let Some(message) = worker_layout::too_few_queues(device, workers_count) {
            return Err(err(kernel_span, "ports.kernel.device", message));
        }
    }
    if device_name(&nic) == kernel_device_name(&kernel) {
        return Err(err(
            ports.nic.span(),
            "ports.nic",
            "the NIC and the kernel port must be different devices".into(),
        ));
    }

    let descriptors = |d: Option<Spanned<u16>>, key: &str| match d {
        Some(d) if !(64..=16384).contains(d.get_ref()) || !d.get_ref().is_power_of_two() => {
            Err(err(
                d.span(),
                key,
                format!(
                    "{} descriptors: expected a power of two from 64 to 16384",
                    d.get_ref()
                ),
            ))
        }
        Some(d) => Ok(*d.get_ref()),
        None => Ok(1024),
    };
    let rx_descriptors = descriptors(ports.rx_descriptors, "ports.rx_descriptors")?;
    let tx_descriptors = descriptors(ports.tx_descriptors, "ports.tx_descriptors")?;
    let burst = match ports.burst {
        Some(b) if !(1..=MAX_BURST).contains(b.get_ref()) => {
            return Err(err(
                b.span(),
                "ports.burst",
                format!("{} packets: expected 1 to {MAX_BURST}", b.get_ref()),
            ))
        }
        Some(b) => *b.get_ref(),
        None => MAX_BURST,
    };
    let mempool_cache = match ports.mempool_cache {
        Some(c) if *c.get_ref() > 512 => {
            return Err(err(
                c.span(),
                "ports.mempool_cache",
                format!("{}: DPDK's limit is 512", c.get_ref()),
            ))
        }
        Some(c) => *c.get_ref(),
        None => 256,
    };
    // Every descriptor of both ports can hold an mbuf, plus each lcore's cache and bursts in flight.
    let workers = (lcores.len() - 1) as u32;
    let needed = workers * 2 * (u32::from(rx_descriptors) + u32::from(tx_descriptors))
        + lcores.len() as u32 * (mempool_cache + 4 * u32::from(burst));
    let mempool_mbufs = match ports.mempool_mbufs {
        Some(m) if *m.get_ref() < needed => {
            return Err(err(m.span(), "ports.mempool_mbufs", format!("{} mbufs cannot fill the rings: at least {needed} are needed for {workers} worker(s) with these descriptor counts", m.get_ref())))
        }
        Some(m) => *m.get_ref(),
        None => needed.max(16383),
    };

    Ok(DataplaneConfig {
        lcores,
        memory_mb,
        hugepages: dpdk.hugepages.unwrap_or(false),
        file_prefix,
        eal_args: dpdk.eal_args,
        idle,
        nic,
        kernel,
        rx_descriptors,
        tx_descriptors,
        mempool_mbufs,
        mempool_cache,
        burst,
    })
}

/// The DPDK device name of a kernel port.
fn kernel_device_name(kernel: &KernelPort) -> &str {
    match kernel {
        KernelPort::Tap { .. } => "net_tap_kernel",
        KernelPort::VirtioUser { .. } => "virtio_user_kernel",
        KernelPort::Vdev { device } => device_name(device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dpdk: &str, ports: &str) -> Result<DataplaneConfig, ConfigError> {
        let text = format!("[encap]\naddresses = [\"192.0.2.10\"]\n{dpdk}\n[ports]\n{ports}\n");
        crate::config::parse(&text, "t.toml").map(|c| c.dataplane().expect("ports table").clone())
    }

    const TAP: &str =
        "nic = \"net_af_packet0,iface=nic0\"\nkernel = { kind = \"tap\", name = \"chance0\" }";

    #[test]
    fn defaults_derive_a_hugepage_free_eal_argv() {
        let c = config("", TAP).unwrap();
        assert_eq!(
            c.eal_args("chanced"),
            [
                "chanced",
                "-l",
                "0,1",
                "--main-lcore",
                "0",
                "--file-prefix",
                "chance",
                "-m",
                "256",
                "--no-huge",
                "--no-shconf",
                "--no-pci",
                "--vdev",
                "net_af_packet0,iface=nic0",
                "--vdev",
                "net_tap_kernel,iface=chance0",
            ]
        );
        assert_eq!(
            (c.nic_name(), c.kernel_name(), c.workers()),
            ("net_af_packet0", "net_tap_kernel", 1)
        );
    }

    #[test]
    fn pci_nic_with_hugepages_and_virtio_user() {
        let c = config(
            "[dpdk]\nlcores = [2, 4, 6]\nhugepages = true\nfile_prefix = \"lb\"\neal_args = [\"--log-level=lib.eal:debug\"]",
            "nic = \"0000:3b:00.0\"\nkernel = { kind = \"virtio_user\", name = \"lb0\" }\nrx_descriptors = 2048",
        )
        .unwrap();
        assert_eq!(
            c.eal_args("chanced"),
            [
                "chanced",
                "-l",
                "2,4,6",
                "--main-lcore",
                "2",
                "--file-prefix",
                "lb",
                "-m",
                "256",
                "--in-memory",
                "-a",
                "0000:3b:00.0",
                "--vdev",
                "virtio_user_kernel,path=/dev/vhost-net,queues=2,queue_size=2048,iface=lb0",
                "--log-level=lib.eal:debug",
            ]
        );
    }

    fn key_and_line(result: Result<DataplaneConfig, ConfigError>) -> (String, usize) {
        let e = result.expect_err("invalid");
        let d = e.diagnostic().expect("diagnostic");
        (d.key.clone().unwrap_or_default(), d.line)
    }

    #[test]
    fn idle_policy_is_busy_unless_adaptive_is_asked_for() {
        assert_eq!(config("", TAP).unwrap().idle, IdlePolicy::Busy);
        assert_eq!(
            config("[dpdk]\nidle = \"busy\"", TAP).unwrap().idle,
            IdlePolicy::Busy
        );
        assert_eq!(
            config("[dpdk]\nidle = \"adaptive\"", TAP).unwrap().idle,
            IdlePolicy::adaptive()
        );
        let err = config("[dpdk]\nidle = \"sleepy\"", TAP).unwrap_err();
        assert!(
            err.to_string().contains("\"busy\" or \"adaptive\""),
            "{err}"
        );
        assert_eq!(key_and_line(Err(err)), ("dpdk.idle".into(), 4));
        assert_eq!(
            key_and_line(config("[dpdk]\nidle = 1", TAP)),
            ("dpdk.idle".into(), 4)
        );
    }

    #[test]
    fn bad_values_name_their_key_and_line() {
        assert_eq!(
            key_and_line(config("[dpdk]\nlcores = [0]", TAP)),
            ("dpdk.lcores".into(), 4)
        );
        assert_eq!(
            key_and_line(config("[dpdk]\nlcores = [0, 1, 1]", TAP)),
            ("dpdk.lcores".into(), 4)
        );
        assert_eq!(
            key_and_line(config("[dpdk]\nlcores = [0, 0, 1]", TAP)),
            ("ports.nic".into(), 6),
            "net_af_packet has one queue pair unless qpairs says more"
        );
        assert_eq!(
            key_and_line(config(
                "[dpdk]\nlcores = [0, 0, 1]",
                "nic = \"net_null0\"\nkernel = { kind = \"vdev\", device = \"net_pcap1,rx_pcap=a\" }"
            )),
            ("ports.kernel.device".into(), 7)
        );
        assert_eq!(
            key_and_line(config("[dpdk]\nlcores = [0, 200]", TAP)),
            ("dpdk.lcores".into(), 4)
        );
        assert_eq!(
            key_and_line(config("[dpdk]\nmemory_mb = 8", TAP)),
            ("dpdk.memory_mb".into(), 4)
        );
        assert_eq!(
            key_and_line(config("[dpdk]\nhuge = true", TAP)),
            ("dpdk.huge".into(), 4)
        );
        assert_eq!(
            key_and_line(config("", &format!("{TAP}\nburst = 64"))),
            ("ports.burst".into(), 7)
        );
        assert_eq!(
            key_and_line(config("", &format!("{TAP}\nrx_descriptors = 1000"))),
            ("ports.rx_descriptors".into(), 7)
        );
        assert_eq!(
            key_and_line(config("", &format!("{TAP}\nmempool_mbufs = 100"))),
            ("ports.mempool_mbufs".into(), 7)
        );
        assert_eq!(
            key_and_line(config(
                "",
                "nic = \"net_null0\"\nkernel = { kind = \"tap\", name = \"a/b\" }"
            )),
            ("ports.kernel.name".into(), 6)
        );
        assert_eq!(
            key_and_line(config(
                "",
                "nic = \"net_null0\"\nkernel = { kind = \"vdev\", device = \"net_null0\" }"
            )),
            ("ports.nic".into(), 5)
        );
        assert_eq!(
            key_and_line(config(
                "",
                "nic = \"net_null0\"\nkernel = { kind = \"bridge\", name = \"x\" }"
            ))
            .0,
            "ports.kernel.kind"
        );
    }

    #[test]
    fn two_workers_beside_the_main_lcore_get_an_lcore_map_and_a_queue_each() {
        let c = config(
            "[dpdk]\nlcores = [0, 0, 1]",
            "nic = \"net_af_packet0,iface=nic0,qpairs=2\"\nkernel = { kind = \"vdev\", device = \"net_null0\" }",
        )
        .unwrap();
        assert_eq!((c.workers(), c.main_shares_a_cpu()), (2, true));
        assert_eq!(
            c.eal_args("chanced")[1..5],
            ["--lcores", "0@0,1@0,2@1", "--main-lcore", "0"]
        );
    }

    #[test]
    fn pci_addresses_are_recognised() {
        assert!(is_pci_address("0000:3b:00.0") && is_pci_address("3b:00.1"));
        assert!(!is_pci_address("net_null0") && !is_pci_address("0000:3b:00"));
    }
}

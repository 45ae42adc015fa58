//! Shared by the integration tests: EAL arguments, one EAL per test binary, lcore registration
//! of libtest's threads, and test frames.
#![allow(dead_code)]

pub mod lab;
pub mod pcap;
pub mod router;

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use chance_runtime::{thread_register, thread_unregister, Eal};

/// The EAL arguments for tests: 2 lcores, no PCI, no hugepages (CI machines reserve none),
/// nothing shared with other processes, a per-process file prefix, quiet logs.
pub fn eal_args(test: &str, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-l",
        "0-1",
        "--no-pci",
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--log-level=lib.eal:warning",
        "--no-telemetry",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--file-prefix={}", file_prefix(test)));
    args.extend(extra.iter().cloned());
    args
}

/// The file prefix of [`eal_args`].
pub fn file_prefix(test: &str) -> String {
    format!("chance{test}{}", std::process::id())
}

/// Removes the (empty) runtime directory DPDK creates for `prefix` even when its init fails,
/// wherever it is (`/var/run/dpdk` for root, `$XDG_RUNTIME_DIR/dpdk` or `/tmp/dpdk` otherwise).
pub fn remove_runtime_dir(prefix: &str) {
    let mut bases = vec![std::path::PathBuf::from("/var/run"), "/tmp".into()];
    bases.extend(std::env::var_os("XDG_RUNTIME_DIR").map(Into::into));
    for b in bases {
        let _ = std::fs::remove_dir(b.join("dpdk").join(prefix));
    }
}

static EAL: OnceLock<Eal> = OnceLock::new();

/// The binary's EAL, initialised by the first test that asks (its thread becomes lcore 0).
pub fn eal(test: &str, extra: &[String]) -> &'static Eal {
    EAL.get_or_init(|| {
        let eal = Eal::init(&eal_args(test, extra)).expect("EAL init");
        // With --no-shconf the per-prefix runtime directory stays empty: don't leave it behind.
        let _ = std::fs::remove_dir(eal.runtime_dir());
        eal
    })
}

/// Registers the calling libtest thread as an lcore for the guard's lifetime (libtest runs
/// each test in its own thread; only the thread that initialised the EAL has an lcore id).
pub struct Lcore(pub u32);

impl Lcore {
    pub fn register() -> Lcore {
        Lcore(thread_register().expect("rte_thread_register"))
    }
}

impl Drop for Lcore {
    fn drop(&mut self) {
        thread_unregister();
    }
}

/// A test frame: Ethernet (dst 02:00:00:00:00:01, src 02:00:00:00:00:02, IPv4 type), then
/// `payload` bytes derived from `seed`.
pub fn frame(seed: u32, payload: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
    f.extend((0..payload).map(|i| (seed as usize * 31 + i * 7) as u8));
    f
}

/// Swaps the destination and source MAC addresses in place.
pub fn mac_swap(f: &mut [u8]) {
    let (dst, rest) = f.split_at_mut(6);
    dst.swap_with_slice(&mut rest[..6]);
}

/// The worker tests run their worker on lcore 1: one at a time.
static WORKER_LCORE: Mutex<()> = Mutex::new(());

/// Holds lcore 1 for one test.
pub fn worker_lcore() -> MutexGuard<'static, ()> {
    WORKER_LCORE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An ARP request (broadcast): every worker kind hands it to the kernel port unchanged.
pub fn arp() -> Vec<u8> {
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xfe, 0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    arp
}

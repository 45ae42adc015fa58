//! EAL set-up shared by the tests that run DPDK (one EAL per test binary): no NIC, no hugepages,
//! no shared config, a file prefix of the test's own, the runtime directory removed at once.

use chance_runtime::Eal;

/// Initialises the EAL on `lcores` (an `-l` list) with `memory_mb` of ordinary memory.
pub fn eal(name: &str, lcores: &str, memory_mb: u32) -> Eal {
    let prefix = format!("pktgen-{name}-{}", std::process::id());
    let memory = memory_mb.to_string();
    let args: Vec<String> = [
        "-l",
        lcores,
        "--no-pci",
        "--no-huge",
        "-m",
        &memory,
        "--no-shconf",
        "--log-level=lib.eal:warning",
        "--no-telemetry",
        "--file-prefix",
        &prefix,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&args).expect("EAL");
    let _ = std::fs::remove_dir(eal.runtime_dir());
    eal
}

/// Runs `spec` with `profile`'s templates to its end (no stop signal); panics when it fails.
#[allow(dead_code)] // not every test binary makes a run
pub fn run_to_end(
    eal: &Eal,
    spec: &chance_pktgen::run::RunSpec,
    profile: &chance_pktgen::profile::Profile,
    templates: chance_pktgen::templates::Templates,
) -> chance_pktgen::report::Summary {
    chance_pktgen::run::run(
        eal,
        spec,
        Some(profile),
        std::sync::Arc::new(templates),
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .expect("run")
}

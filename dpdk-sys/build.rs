//! Generates the DPDK bindings at build time.
//!
//! * `pkg-config libdpdk` (>= 22.11) finds DPDK; its link flags are used as they are for the shared
//!   build (the Debian default). With the `static` feature a curated list of `librte_*.a` is linked
//!   instead (see `STATIC_LIBS`).
//! * The *raw* `pkg-config --cflags libdpdk` output is passed to bindgen and cc: it carries
//!   `-include rte_config.h -march=corei7`, which the `pkg-config` crate drops and without which
//!   `rte_memcpy.h` does not compile.
//! * bindgen's `wrap_static_fns` turns the static inline functions of the headers in
//!   `ALLOWLISTED_HEADERS` into real symbols (`static_fns.c`, compiled with cc); the hand-written
//!   shim (`shim/shim.c`) covers what is a macro or a thread-local (`rte_errno`).
//! * `rte_eth_from_rings` lives in the net_ring PMD, which pkg-config does not list, so
//!   `rte_net_ring` is linked explicitly in both modes.

use std::env;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIN_VERSION: &str = "22.11";

const INSTALL_HINT: &str = "install DPDK's development files: \
     `apt-get install dpdk-dev libdpdk-dev pkg-config clang libclang-dev` (Debian 12 / Ubuntu), \
     or run `deploy/setup.sh`";

/// Headers whose items (functions, variables, types) are allowlisted. Types they need from other
/// headers are pulled in transitively; static inline functions of *these* headers are wrapped.
const ALLOWLISTED_HEADERS: &[&str] = &[
    "rte_eal",
    "rte_errno",
    "rte_lcore",
    "rte_launch",
    "rte_memory",
    "rte_mempool",
    "rte_mbuf",
    "rte_mbuf_core",
    "rte_ring",
    "rte_ring_core",
    "rte_ethdev",
    "rte_ether",
    "rte_eth_ring",
    "rte_build_config",
    "rte_config",
];

/// Static linking (feature `static`): libraries linked with `+whole-archive` (drivers register
/// from constructors that nothing references), in dependency order. PMDs whose archive is absent
/// are skipped with a warning.
const STATIC_PMDS: &[&str] = &[
    "rte_net_null",
    "rte_net_ring",
    "rte_net_pcap",
    "rte_net_af_packet",
    "rte_net_tap",
    "rte_net_memif",
    "rte_net_virtio",
];
const STATIC_LIBS: &[&str] = &[
    "rte_gso",
    "rte_mempool_ring",
    "rte_bus_vdev",
    "rte_bus_pci",
    "rte_hash",
    "rte_rcu",
    "rte_ethdev",
    "rte_meter",
    "rte_net",
    "rte_mbuf",
    "rte_mempool",
    "rte_ring",
    "rte_pci",
    "rte_eal",
    "rte_telemetry",
    "rte_kvargs",
];
/// System libraries the static DPDK archives above need.
const STATIC_SYSTEM_LIBS: &[&str] = &["pcap", "numa", "bsd", "atomic", "m", "dl", "pthread"];

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: chance-dpdk-sys: {msg}\n");
    std::process::exit(1);
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let static_link = env::var_os("CARGO_FEATURE_STATIC").is_some();

    for f in ["wrapper.h", "shim/shim.h", "shim/shim.c", "shim/consts.h"] {
        println!("cargo:rerun-if-changed={}", manifest.join(f).display());
    }
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");

    // 1. Find DPDK. In shared mode the pkg-config crate emits the link flags (rte_* .so + bsd).
    let lib = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(!static_link)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => fail(&format!(
            "DPDK >= {MIN_VERSION} not found through pkg-config (`pkg-config --modversion libdpdk`).\n  \
             To fix it, {INSTALL_HINT}.\n  pkg-config said: {e}"
        )),
    };

    // 2. The raw cflags, in order (keeps `-include rte_config.h -march=corei7`).
    let mut cflags = raw_pkg_config(&["--cflags", "libdpdk"]);
    cflags.push("-DALLOW_EXPERIMENTAL_API".to_string());

    // 3. Bindings.
    let header_re = format!(".*/({})\\.h", ALLOWLISTED_HEADERS.join("|"));
    let static_fns = out.join("static_fns");
    let builder = bindgen::Builder::default()
        .header(manifest.join("wrapper.h").to_string_lossy())
        .header(manifest.join("shim/shim.h").to_string_lossy())
        .header(manifest.join("shim/consts.h").to_string_lossy())
        .clang_args(&cflags)
        .allowlist_file(&header_re)
        .allowlist_file(".*/shim/(shim|consts)\\.h")
        .allowlist_var("SOCKET_ID_ANY|LCORE_ID_ANY|RING_F_.*|RTE_MEMPOOL_F_.*")
        // The ports' fast-path table that `rte_eth_rx_burst`/`tx_burst` read (`src/lib.rs`).
        .allowlist_var("rte_eth_fp_ops")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&static_fns)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    let bindings = match catch_unwind(AssertUnwindSafe(move || builder.generate())) {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => fail(&format!("bindgen failed on the DPDK headers: {e}")),
        Err(_) => fail(&format!(
            "bindgen panicked (see above; usually libclang is missing). To fix it, {INSTALL_HINT}"
        )),
    };
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");

    // 4. The wrapped static inline functions and the shim, compiled with DPDK's own flags.
    let mut cc = cc::Build::new();
    cc.warnings(false)
        .flag_if_supported("-Wno-duplicate-decl-specifier")
        .include(&manifest)
        .include(manifest.join("shim"));
    for f in &cflags {
        cc.flag(f);
    }
    cc.file(static_fns.with_extension("c"))
        .file(manifest.join("shim/shim.c"))
        .compile("chance_dpdk_sys_shim");

    // 5. Link.
    if static_link {
        link_static(&lib);
    } else {
        // rte_eth_from_rings (net_ring PMD) is not in pkg-config's list.
        println!("cargo:rustc-link-lib=dylib=rte_net_ring");
    }
}

fn raw_pkg_config(args: &[&str]) -> Vec<String> {
    let bin = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let output = match Command::new(&bin).args(args).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => fail(&format!(
            "`{bin} {}` failed: {}; {INSTALL_HINT}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => fail(&format!("cannot run `{bin}`: {e}; {INSTALL_HINT}")),
    };
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn link_static(lib: &pkg_config::Library) {
    let libdir = raw_pkg_config(&["--variable=libdir", "libdpdk"])
        .into_iter()
        .next()
        .map(PathBuf::from)
        .or_else(|| lib.link_paths.first().cloned())
        .unwrap_or_else(|| PathBuf::from("/usr/lib/x86_64-linux-gnu"));
    println!("cargo:rustc-link-search=native={}", libdir.display());
    let archive = |name: &str| libdir.join(format!("lib{name}.a"));
    let have = |name: &str| Path::exists(&archive(name));
    for name in STATIC_PMDS {
        if have(name) {
            println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={name}");
        } else {
            println!(
                "cargo:warning=static DPDK: {} not found, {name} is not linked",
                archive(name).display()
            );
        }
    }
    for name in STATIC_LIBS {
        if !have(name) {
            fail(&format!(
                "feature `static`: {} not found; {INSTALL_HINT}",
                archive(name).display()
            ));
        }
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={name}");
    }
    for name in STATIC_SYSTEM_LIBS {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
}

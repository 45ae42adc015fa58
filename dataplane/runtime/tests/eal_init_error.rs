//! A failing `rte_eal_init` reports rte_errno and its message, and the process cannot try again.

mod common;

use chance_runtime::mempool::DEFAULT_DATA_ROOM;
use chance_runtime::{Eal, EalError, Mempool, MempoolError, SOCKET_ID_ANY};

#[test]
fn failed_init_reports_rte_errno_and_is_final() {
    // A device that no bus recognises: refused after argument parsing, with ENODEV.
    let args = common::eal_args("initerr", &["-a".to_string(), "no-such-device".to_string()]);
    let err = Eal::init(&args).unwrap_err();
    match &err {
        EalError::Init { errno, argv } => {
            assert_eq!(errno.code, 19, "ENODEV: {err}");
            assert!(!errno.message.is_empty());
            assert_eq!(argv.last().map(String::as_str), Some("no-such-device"));
        }
        other => panic!("expected EalError::Init, got {other:?}"),
    }
    assert!(err.to_string().contains("rte_eal_init failed"), "{err}");
    assert!(matches!(
        Mempool::new("noeal", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY),
        Err(MempoolError::Eal(EalError::NotInitialized))
    ));
    // DPDK 22.11 cannot retry (it keeps the failed attempt's options): refused up front.
    let again = Eal::init(&common::eal_args("initerr", &[])).unwrap_err();
    assert!(matches!(again, EalError::AlreadyInitialized), "{again:?}");
    common::remove_runtime_dir(&common::file_prefix("initerr"));
}

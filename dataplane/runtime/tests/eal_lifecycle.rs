//! The EAL's whole life in one process: nothing works before init, cleanup waits for the last
//! handle, and nothing (not even a new init) works after cleanup.

mod common;

use chance_runtime::mempool::DEFAULT_DATA_ROOM;
use chance_runtime::{launch, Eal, EalError, LcoreError, Mempool, MempoolError, SOCKET_ID_ANY};

#[test]
fn init_use_cleanup() {
    assert!(matches!(
        Mempool::new("early", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY),
        Err(MempoolError::Eal(EalError::NotInitialized))
    ));

    let eal = Eal::init(&common::eal_args("life", &[])).unwrap();
    let _ = std::fs::remove_dir(eal.runtime_dir());
    assert!(matches!(
        Eal::init(&common::eal_args("life", &[])),
        Err(EalError::AlreadyInitialized)
    ));

    // Objects hold the EAL: cleanup is deferred while they live.
    let pool = Mempool::new("life_pool", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap();
    assert!(matches!(eal.clone().cleanup(), Err(EalError::InUse(2))));
    assert_eq!(launch(1, || 1).unwrap().join().unwrap(), 1);
    drop(pool);
    eal.cleanup().unwrap();

    assert!(matches!(
        Mempool::new("late", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY),
        Err(MempoolError::Eal(EalError::NotInitialized))
    ));
    assert!(matches!(
        launch(1, || ()),
        Err(LcoreError::Eal(EalError::NotInitialized))
    ));
    assert!(matches!(
        Eal::init(&common::eal_args("life", &[])),
        Err(EalError::AlreadyInitialized)
    ));
}

//! The engine and flow table the throughput mix runs against, as chanced runs it
//! (`deploy/bench-throughput.sh`): shared by `benches/mix.rs` and `examples/mix_rounds.rs`.

use chance_engine::table::{ConcurrentFlowTable, Source, TableConfig};
use chance_engine::{Engine, EngineConfig, FlowKey, L4Proto};
use chance_testkit::mix;

/// chanced's default table (1M entries) holding the mix's 1000 owned flows.
pub fn table() -> ConcurrentFlowTable {
    let table = ConcurrentFlowTable::new(TableConfig::default());
    for i in 0..1000 {
        let (addr, port) = mix::client(i);
        let key = FlowKey::v4(L4Proto::Tcp, mix::VIP, mix::VIP_PORT, addr, port);
        table.insert(key, Source::Static);
    }
    table
}

/// An engine on the mix's encapsulation address and GUE port.
pub fn engine() -> Engine {
    let mut config = EngineConfig::with_address(mix::ENCAP);
    config.port = mix::GUE_PORT;
    Engine::new(config)
}

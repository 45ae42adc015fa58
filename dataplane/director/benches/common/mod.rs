//! The backends of GLB's largest table, shared by `benches/table_build.rs` and
//! `examples/table_build_time.rs`: `count` backends, one draining, one filling, one unhealthy.

use chance_director::{Backend, BackendState};
use std::net::Ipv4Addr;

/// `count` backends at 10.1.x.y: the fourth draining, the sixth filling, the eighth unhealthy.
pub fn backends(count: u16) -> Vec<Backend> {
    (0..count)
        .map(|i| Backend {
            address: Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8),
            state: match i {
                3 => BackendState::Draining,
                5 => BackendState::Filling,
                _ => BackendState::Active,
            },
            healthy: i != 7,
        })
        .collect()
}

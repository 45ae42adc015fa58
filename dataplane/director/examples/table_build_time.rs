//! Builds the forwarding table for 256 backends (GLB's limit) `--builds` times in a row on one
//! thread, for a CPU-time figure: run it under `/usr/bin/time` and divide the user time by the
//! builds (criterion's wall-clock figure, `benches/table_build.rs`, also counts the time other
//! processes held the core on a shared machine).
//!
//! ```text
//! cargo build --release -p chance-director --example table_build_time
//! /usr/bin/time -f '%U s user, %S s system, %e s wall' target/release/examples/table_build_time 5
//! ```
//!
//! The backends are those of the criterion bench: 256, one draining, one filling, one unhealthy.
//! Each build is followed by the route table the packet path reads (`RouteTable::new`, which
//! compiles the distinct hop lists), timed on its own.

#[path = "../benches/common/mod.rs"]
mod common;

use chance_director::{HopTable, RouteTable};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let builds: u32 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("the number of builds"))
        .unwrap_or(5);
    let backends = common::backends(256);
    let seed = *b"chance-director!";
    for _ in 0..builds {
        let started = Instant::now();
        let table = HopTable::build(&seed, &backends).expect("256 backends build");
        let built = started.elapsed();
        let route_table = RouteTable::new(Vec::new(), seed, black_box(table));
        black_box(&route_table);
        println!(
            "build: {:.3} s wall, route table (hop lists compiled): {:.3} s wall",
            built.as_secs_f64(),
            (started.elapsed() - built).as_secs_f64()
        );
    }
}

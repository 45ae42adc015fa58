//! chance's director: the half of the load balancer in front of the backends, as pure functions.
//!
//! A director matches each client frame to a bind (VIP prefix, protocol, ports), hashes its flow,
//! reads one row of a 65,536-row rendezvous table and encapsulates the frame in GUE with the row's
//! hop list. Everything here is safe Rust over bytes and plain data, without DPDK: the same code
//! runs in tests, in the fuzzer, in `chancectl director` and on mbuf data in the runtime.
#![forbid(unsafe_code)]

pub mod glb_binary;
pub mod glb_json;
pub mod glb_rows;
pub mod hops;
pub mod model;
pub mod rendezvous;
pub mod table;

pub use glb_rows::{glb_rows, GlbRow};
pub use hops::{HopList, MAX_HOPS};
pub use model::{Backend, BackendState, Bind, Prefix, PrefixError, Protocol, Rows, ROWS};
pub use table::{HopTable, TableError, MAX_BACKENDS};

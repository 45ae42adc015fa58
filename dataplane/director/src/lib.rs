//! chance's director: the half of the load balancer in front of the backends, as pure functions.
//!
//! A director matches each client frame to a bind (VIP prefix, protocol, ports), hashes its flow,
//! reads one row of a 65,536-row rendezvous table and encapsulates the frame in GUE with the row's
//! hop list. Everything here is safe Rust over bytes and plain data, without DPDK: the same code
//! runs in tests, in the fuzzer, in `chancectl director` and on mbuf data in the runtime.
//!
//! The packet path: [`route::Director::route`] (classification in `classify`, ICMP in `icmp`,
//! the flow hash in [`flow_hash`], the header in [`encap`]); see docs/director-packet-path.md.
#![forbid(unsafe_code)]

mod burst;
mod classify;
pub mod counters;
pub mod encap;
mod fast;
pub mod flow_hash;
pub mod flow_hasher;
mod flow_lanes;
pub mod glb_binary;
pub mod glb_json;
pub mod glb_rows;
mod hop_headers;
pub mod hops;
mod icmp;
mod inner_sum;
pub mod model;
pub mod rendezvous;
pub mod route;
mod route_table;
pub mod table;

pub use counters::{Counter, Counters, DropReason};
pub use encap::{EncapConfig, EncapHeader};
pub use flow_hash::{FlowFields, HashFields, HashFieldsError};
pub use flow_hasher::FlowHasher;
pub use glb_rows::{glb_rows, GlbRow};
pub use hops::{HopList, MAX_HOPS};
pub use model::{Backend, BackendState, Bind, Prefix, PrefixError, Protocol, Rows, ROWS};
pub use route::{Director, DirectorConfig, Encapsulation, Plan, Route, RouteTable};
pub use table::{HopTable, TableError, MAX_BACKENDS};

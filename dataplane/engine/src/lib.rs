//! chance's second-chance engine: cls_redirect's decisions as a pure function over Ethernet frames.
//!
//! Given one frame, [`Engine::process`] decides accept / forward / pass / drop exactly as the
//! kernel program cls_redirect does (docs/decision-procedure.md), with the deliberate deviations
//! listed in docs/compatibility.md, and performs the rewrite in place. There is no DPDK here and no
//! `unsafe`: the same code runs on test vectors, in the fuzzer, in `chancectl replay` and on mbuf
//! data in the runtime.
#![forbid(unsafe_code)]

pub mod burst;
mod classify;
pub mod config;
pub mod counters;
pub mod egress;
mod engine;
mod fast;
mod fixed_fields;
pub mod flow;
pub mod flow_cache;
pub mod outcome;
mod rewrite;
pub mod table;
pub mod wire;

pub use config::EngineConfig;
pub use counters::{Counter, Counters};
pub use engine::Engine;
pub use fast::Plan;
pub use flow::{ExactMatchTable, FlowKey, FlowTable, Ipv4FlowKey, L4Proto, Ownership};
pub use outcome::{Outcome, Verdict};

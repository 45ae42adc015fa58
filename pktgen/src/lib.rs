//! chance-pktgen: a DPDK traffic generator that sends what a GUE director sends (GLB's "chained
//! routing" hop lists over GUE) and classifies what comes back, for chance's throughput
//! benchmarks and labs.
//!
//! One module per job:
//!
//! | module | job |
//! |---|---|
//! | [`profile`] | the traffic profile (TOML and flags), validated with errors naming the key |
//! | [`flows`] | the client flows, which the host owns, and the chanced config that says so |
//! | [`templates`] | every frame, built once before sending; kinds, sizes and hops in exact shares |
//! | [`stamp`] | the sequence number and TSC in each inner payload (checksums stay valid) |
//! | [`tx`] | the token bucket, the zeroed TX pool, the transmit burst (bulk alloc, copy of the head, stamp) |
//! | [`rx`] | classifying what comes back: decapsulated, forwarded, looped, other |
//! | [`stats`] | per-worker counters published to the main lcore; the latency histogram |
//! | [`worker`] | the lcore loop and its phases (warm-up, measure, drain) |
//! | [`run`] | mempools, ports, workers, the per-second progress, an orderly stop |
//! | [`report`] | the progress line and the JSON summary |
//! | [`pcap`] | pcap mode: the traffic to a file, no EAL |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod flows;
pub mod pcap;
pub mod profile;
pub mod report;
pub mod run;
pub mod rx;
pub mod stamp;
pub mod stats;
pub mod templates;
pub mod tx;
pub mod worker;

pub use flows::FlowSet;
pub use profile::{Profile, ProfileError, Sizes};
pub use templates::Templates;

/// The flows and templates of a validated profile.
pub fn traffic(profile: &Profile) -> (FlowSet, Templates) {
    let flows = FlowSet::new(profile);
    let templates = Templates::build(profile, &flows);
    (flows, templates)
}

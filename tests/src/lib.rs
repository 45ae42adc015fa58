//! Frame builders and fixtures shared by chance's tests.
//!
//! This crate does not depend on the engine: it writes frames from the specification
//! (docs/wire-format.md, docs/decision-procedure.md) so the engine's tests check the engine against
//! an independent reading of the wire formats.
//!
//! - [`gue`]: the outer GUE frame ([`gue::GueFrame`]) and plain IP-in-IP frames;
//! - [`inner`]: inner IPv4/IPv6 packets with TCP, UDP, ICMP, options, extension headers, fragments;
//! - [`expect`]: expected output frames (decap, GUE forward, GRE) computed from the input;
//! - [`mix`]: the throughput benchmark's traffic mix;
//! - [`selftest`]: cls_redirect's kernel selftest packets, flows and config;
//! - [`checksum`]: from-scratch Internet checksums;
//! - [`proptest_cases`]: the property tests' case count, which the environment may set.

pub mod checksum;
pub mod expect;
pub mod gue;
pub mod inner;
pub mod mix;
pub mod selftest;

pub use etherparse;

/// The number of cases a property test runs: `PROPTEST_CASES` when it is set (as proptest's own
/// default configuration does; a soak raises it), else `default`. Use it as
/// `ProptestConfig::with_cases(proptest_cases(2000))`: `with_cases` alone ignores the environment.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

//! chance-director: chance's director daemon. Validates the configuration, runs the health checks,
//! builds the forwarding table and rebuilds it on health changes and reloads, serves the local API
//! and the metrics, reloads on SIGHUP, and runs until SIGINT/SIGTERM. See
//! `chance_control::director`.
//!
//! `chance-director --config FILE [--no-dataplane] [-- EAL ARGS]`

use std::process::ExitCode;

fn main() -> ExitCode {
    chance_control::director::main()
}

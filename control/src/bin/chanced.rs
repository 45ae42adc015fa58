//! chanced: chance's dataplane daemon. Validates the configuration, starts EAL, the NIC and kernel
//! ports and one worker per worker lcore, serves the local API and the metrics, reloads on SIGHUP,
//! and runs until SIGINT/SIGTERM (or a duration, or the end of a pcap input), then stops cleanly
//! and prints the counters. See `chance_control::daemon`.
//!
//! `chanced --config FILE [--duration SECS | --until-idle] [--stats-interval SECS]
//!          [--report-json FILE] [--replace-eal-args] [-- EAL ARGS]`

use std::process::ExitCode;

fn main() -> ExitCode {
    chance_control::daemon::main()
}

//! `/healthz` on the metrics server: liveness and readiness for load balancers, orchestrators and
//! probes, answered from what the control side already holds (no lcore is asked).
//!
//! - `/healthz/live`: 200 while chanced's process serves HTTP at all.
//! - `/healthz/ready` (and `/healthz`): 200 when the dataplane runs: the ports are started, the
//!   workers run and the main lcore published counters within [`STALE_AFTER`]; 503 before that,
//!   while stopping, or when the main lcore's loop stalls. The body is one short line saying why.

use super::{monotonic_ns, Shared};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Counters older than this mean the main lcore's loop stopped publishing (it ticks every
/// ~100 ms).
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(2);

/// What a probe is told: the HTTP status and a one-line body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    pub status: u16,
    pub body: String,
}

impl Health {
    fn ok(body: &str) -> Self {
        Self {
            status: 200,
            body: format!("{body}\n"),
        }
    }

    fn unavailable(body: &str) -> Self {
        Self {
            status: 503,
            body: format!("{body}\n"),
        }
    }
}

/// The answer for `path`, or None when it is not a health endpoint.
pub(crate) fn answer(path: &str, shared: Option<&Shared>) -> Option<Health> {
    match path {
        "/healthz/live" => Some(Health::ok("live")),
        "/healthz" | "/healthz/ready" => Some(match shared {
            None => Health::unavailable("not ready: shutting down"),
            Some(shared) => readiness(
                shared.snapshot().map(|s| s.monotonic_ns),
                monotonic_ns(),
                shared.stop.load(Ordering::Relaxed),
            ),
        }),
        _ => None,
    }
}

/// Ready when counters were published (at `published_ns`, CLOCK_MONOTONIC) within
/// [`STALE_AFTER`] of `now_ns` and no stop was asked for.
fn readiness(published_ns: Option<u64>, now_ns: u64, stopping: bool) -> Health {
    if stopping {
        return Health::unavailable("not ready: stopping");
    }
    let Some(published_ns) = published_ns else {
        return Health::unavailable("not ready: the dataplane is starting");
    };
    let age = Duration::from_nanos(now_ns.saturating_sub(published_ns));
    if age > STALE_AFTER {
        return Health::unavailable(&format!(
            "not ready: the dataplane published no counters for {:.1} s",
            age.as_secs_f64()
        ));
    }
    Health::ok("ready: dataplane running")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn fresh_counters_are_ready() {
        assert_eq!(
            readiness(Some(10 * SECOND), 10 * SECOND + SECOND / 10, false).status,
            200
        );
    }

    #[test]
    fn no_counters_yet_is_not_ready() {
        let h = readiness(None, SECOND, false);
        assert_eq!(h.status, 503);
        assert!(h.body.contains("starting"), "{}", h.body);
    }

    #[test]
    fn stale_counters_are_not_ready() {
        let h = readiness(Some(SECOND), 4 * SECOND, false);
        assert_eq!(h.status, 503);
        assert!(h.body.contains("3.0 s"), "{}", h.body);
    }

    #[test]
    fn stopping_is_not_ready_even_with_fresh_counters() {
        assert_eq!(readiness(Some(SECOND), SECOND, true).status, 503);
    }

    #[test]
    fn live_answers_without_the_daemon_state() {
        assert_eq!(answer("/healthz/live", None).map(|h| h.status), Some(200));
        assert_eq!(answer("/healthz", None).map(|h| h.status), Some(503));
        assert_eq!(answer("/metrics", None), None);
    }
}

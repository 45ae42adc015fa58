//! The frame of a reload, shared by chanced and chance-director: systemd hears RELOADING=1 then
//! READY=1 around it (once the daemon has said READY=1), reloads run one at a time, each is
//! counted and logged, and a failed one leaves the running configuration as it was (the daemon's
//! `apply` validates and prepares everything before it switches anything).

use super::signals::{notify_ready, notify_reloading};
use crate::api::ReloadReply;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A daemon's reload counters and its last failure.
#[derive(Debug, Default)]
pub(crate) struct ReloadCounters {
    /// Successful reloads.
    pub reloads: AtomicU64,
    /// Failed reloads.
    pub failures: AtomicU64,
    /// Why the last reload failed (cleared by a successful one).
    pub last_error: Mutex<Option<String>>,
    /// Held for the length of a reload: reloads run one at a time.
    serial: Mutex<()>,
}

impl ReloadCounters {
    /// The last failure, if the last reload failed.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Runs `apply` as a reload triggered `by` (SIGHUP, API); `ready` says whether systemd has heard
/// READY=1 (and so must hear of the reload), `status` is the READY status line to restore.
pub(crate) fn run(
    counters: &ReloadCounters,
    by: &str,
    ready: Option<&str>,
    program: &str,
    apply: impl FnOnce() -> Result<ReloadReply, String>,
) -> Result<ReloadReply, String> {
    if ready.is_some() {
        notify_reloading();
    }
    let serial = counters
        .serial
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let result = apply();
    drop(serial);
    if let Some(status) = ready {
        notify_ready(status);
    }
    let mut last_error = counters
        .last_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(mut reply) => {
            reply.reloads_total = counters.reloads.fetch_add(1, Ordering::Relaxed) + 1;
            reply.reload_failures_total = counters.failures.load(Ordering::Relaxed);
            *last_error = None;
            if reply.applied.is_empty() {
                tracing::info!(by, "configuration reloaded: nothing to change");
            } else {
                tracing::info!(by, changes = %reply.applied.join("; "), "configuration reloaded");
            }
            if !reply.restart_required.is_empty() {
                tracing::warn!(
                    keys = %reply.restart_required.join(", "),
                    "configuration reloaded, but these keys keep their running values until {program} restarts"
                );
            }
            Ok(reply)
        }
        Err(e) => {
            let failures = counters.failures.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(by, error = %e, failures, "configuration reload failed; the running configuration is kept");
            *last_error = Some(e.clone());
            Err(format!("reload failed, running configuration kept: {e}"))
        }
    }
}

//! chanced's signals (the handling thread and systemd's notifications are
//! [`crate::shell::signals`]'): SIGHUP reloads; SIGTERM and SIGINT stop the workers (they transmit
//! or count what they hold, the ports stop, every mbuf goes back) within
//! `control.shutdown_deadline_ms`, past which chanced logs and exits 1.

use super::{reload, Shared};
use crate::shell::signals::{arm_deadline, notify_stopping, Lifecycle};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// chanced's reactions to its signals.
#[derive(Debug)]
pub(crate) struct ChancedSignals(pub Arc<Shared>);

impl Lifecycle for ChancedSignals {
    fn reload(&self, by: &str) {
        let _ = reload::reload(&self.0, by);
    }

    /// Raises the stop flag and arms the shutdown deadline.
    fn stop(&self, by: &str) {
        let deadline = self.0.current().control().shutdown_deadline;
        tracing::info!(
            by,
            deadline_ms = deadline.as_millis() as u64,
            "stopping: draining the workers"
        );
        self.0.stop.store(true, Ordering::Relaxed);
        notify_stopping();
        let shared = Arc::clone(&self.0);
        arm_deadline(deadline, "the workers", move || {
            shared.finished.load(Ordering::Acquire)
        });
    }
}

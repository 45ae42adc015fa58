//! Signals and systemd: SIGHUP reloads; SIGTERM and SIGINT stop the workers (they transmit or
//! count what they hold, the ports stop, every mbuf goes back) within
//! `control.shutdown_deadline_ms`, past which chanced logs and exits 1. systemd hears READY=1 once
//! the ports run, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a reload, STOPPING=1 on a
//! stop, and WATCHDOG=1 from the main lcore's loop when `WATCHDOG_USEC` is set.

use super::{reload, Shared};
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tells systemd (a no-op without `NOTIFY_SOCKET`); failures are only logged.
pub(crate) fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify");
    }
}

/// READY=1 with a status line.
pub(crate) fn notify_ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("dataplane running")]);
}

/// RELOADING=1 with the monotonic time systemd's `Type=notify-reload` expects.
pub(crate) fn notify_reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
}

/// The signal-handling thread.
#[derive(Debug)]
pub(crate) struct SignalThread {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalThread {
    /// Stops handling signals (the handlers stay installed: a late SIGTERM is ignored, not fatal).
    pub(crate) fn stop(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// Installs the handlers and starts the thread that acts on them.
pub(crate) fn spawn(shared: &Arc<Shared>) -> anyhow::Result<SignalThread> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let handle = signals.handle();
    let shared = Arc::clone(shared);
    let thread = std::thread::Builder::new()
        .name("chance-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for signal in signals.forever() {
                match signal {
                    SIGHUP => {
                        let _ = reload::reload(&shared, "SIGHUP");
                    }
                    _ if stopping => tracing::warn!(signal, "already stopping"),
                    _ => {
                        stopping = true;
                        stop(
                            &shared,
                            if signal == SIGINT {
                                "SIGINT"
                            } else {
                                "SIGTERM"
                            },
                        );
                    }
                }
            }
        })?;
    Ok(SignalThread { handle, thread })
}

/// Raises the stop flag and arms the shutdown deadline.
fn stop(shared: &Arc<Shared>, by: &str) {
    let deadline = shared.current().control().shutdown_deadline;
    tracing::info!(
        by,
        deadline_ms = deadline.as_millis() as u64,
        "stopping: draining the workers"
    );
    shared.stop.store(true, Ordering::Relaxed);
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    let shared = Arc::clone(shared);
    let armed = std::thread::Builder::new()
        .name("chance-deadline".into())
        .spawn(move || {
            let until = Instant::now() + deadline;
            while Instant::now() < until {
                if shared.finished.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if !shared.finished.load(Ordering::Acquire) {
                tracing::error!(
                    deadline_ms = deadline.as_millis() as u64,
                    "the workers did not stop within control.shutdown_deadline_ms: exiting 1"
                );
                std::process::exit(1);
            }
        });
    if let Err(e) = armed {
        tracing::warn!(error = %e, "cannot arm the shutdown deadline");
    }
}

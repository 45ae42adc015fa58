//! Signals and systemd, shared by chanced and chance-director: SIGHUP reloads; SIGTERM and SIGINT
//! stop the daemon, which must finish within its shutdown deadline or exit 1. systemd hears READY=1
//! once the daemon serves, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a reload,
//! STOPPING=1 on a stop, and WATCHDOG=1 from the daemon's main loop when `WATCHDOG_USEC` is set.

use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
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
pub(crate) fn notify_ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// RELOADING=1 with the monotonic time systemd's `Type=notify-reload` expects.
pub(crate) fn notify_reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
}

/// STOPPING=1.
pub(crate) fn notify_stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// What a daemon does on its signals.
pub(crate) trait Lifecycle: Send + Sync + 'static {
    /// SIGHUP: reload the configuration (keeping the running one on any error).
    fn reload(&self, by: &str);
    /// SIGTERM or SIGINT: begin stopping (called once).
    fn stop(&self, by: &str);
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
pub(crate) fn spawn(daemon: Arc<dyn Lifecycle>) -> anyhow::Result<SignalThread> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new()
        .name("chance-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for signal in signals.forever() {
                match signal {
                    SIGHUP => daemon.reload("SIGHUP"),
                    _ if stopping => tracing::warn!(signal, "already stopping"),
                    _ => {
                        stopping = true;
                        daemon.stop(if signal == SIGINT {
                            "SIGINT"
                        } else {
                            "SIGTERM"
                        });
                    }
                }
            }
        })?;
    Ok(SignalThread { handle, thread })
}

/// Exits 1 unless `finished` says the stop completed within `deadline`; `what` names what failed
/// to stop, for the log.
pub(crate) fn arm_deadline(
    deadline: Duration,
    what: &'static str,
    finished: impl Fn() -> bool + Send + 'static,
) {
    let armed = std::thread::Builder::new()
        .name("chance-deadline".into())
        .spawn(move || {
            let until = Instant::now() + deadline;
            while Instant::now() < until {
                if finished() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if !finished() {
                tracing::error!(
                    deadline_ms = deadline.as_millis() as u64,
                    "{what} did not stop within control.shutdown_deadline_ms: exiting 1"
                );
                std::process::exit(1);
            }
        });
    if let Err(e) = armed {
        tracing::warn!(error = %e, "cannot arm the shutdown deadline");
    }
}

//! The daemons' logs (chanced's and chance-director's): `tracing` to standard error, with a filter that a reload can swap.
//!
//! Under systemd (`JOURNAL_STREAM` set: standard error goes to the journal) lines carry no
//! timestamp and no colour, and start with the `<N>` priority prefix of sd-daemon(3), so
//! `journalctl -p warning` sees chanced's warnings and errors as such.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Mutex;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// The log filter in force, and the means to change it.
pub(crate) struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    /// `RUST_LOG` was set when chanced started: it wins over the configuration.
    from_env: bool,
    current: Mutex<String>,
}

impl fmt::Debug for LogControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogControl")
            .field("from_env", &self.from_env)
            .field("current", &self.current())
            .finish()
    }
}

impl LogControl {
    /// Installs the global subscriber with `level` (or `RUST_LOG`, when set).
    pub(crate) fn init(level: &str) -> Self {
        let env = std::env::var("RUST_LOG")
            .ok()
            .filter(|v| !v.trim().is_empty());
        let (filter, current) = match env.as_deref().map(EnvFilter::try_new) {
            Some(Ok(filter)) => (filter, env.clone().unwrap_or_default()),
            _ => (
                EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")),
                level.to_owned(),
            ),
        };
        let from_env = env.is_some() && current != level;
        let (filter, handle) = reload::Layer::new(filter);
        let journal = std::env::var_os("JOURNAL_STREAM").is_some();
        let output: Box<dyn Layer<_> + Send + Sync> = if journal {
            Box::new(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false)
                    .event_format(Journald(tracing_subscriber::fmt::format().without_time())),
            )
        } else {
            Box::new(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
        };
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(output)
            .try_init()
            .is_ok();
        Self {
            handle: installed.then_some(handle),
            from_env,
            current: Mutex::new(current),
        }
    }

    /// The filter in force.
    pub(crate) fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Swaps the filter for `level`; `Ok(false)` when nothing changed (same filter, or `RUST_LOG`
    /// rules).
    pub(crate) fn set(&self, level: &str) -> Result<bool, String> {
        if self.from_env {
            tracing::info!(
                "RUST_LOG is set: control.log_level `{level}` is not applied (RUST_LOG wins)"
            );
            return Ok(false);
        }
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current == level {
            return Ok(false);
        }
        let filter = EnvFilter::try_new(level).map_err(|e| format!("log level `{level}`: {e}"))?;
        if let Some(handle) = &self.handle {
            handle
                .reload(filter)
                .map_err(|e| format!("log level `{level}`: {e}"))?;
        }
        *current = level.to_owned();
        Ok(true)
    }
}

/// Prefixes each line with its syslog priority, as journald reads it (sd-daemon(3)).
struct Journald<F>(F);

impl<S, N, F> FormatEvent<S, N> for Journald<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

//! The start and the exit status of both daemons: 0 after a clean stop, 1 on a runtime failure,
//! 2 for a configuration that cannot be used (nothing is started); and the API socket, bound
//! before anything else is started so that a second daemon on the same socket stops there.

use super::api_server::{self, Bound};
use crate::control_config::ControlConfig;
use std::process::ExitCode;

/// Why a daemon could not run.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The configuration cannot be used on this host (exit 2, nothing started).
    Config(String),
    /// Anything else (exit 1).
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// Prints `message` and returns exit status 2.
pub(crate) fn config_error(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}

/// The exit status of a run: `Ok(true)` a clean stop, `Ok(false)` a stop that lost something.
pub(crate) fn exit_status(result: Result<bool, Failure>, program: &str) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Failure::Config(message)) => config_error(&message),
        Err(Failure::Other(e)) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `program`'s API socket as `[control]` says (`None`: the API is off).
pub(crate) fn bind_api(control: &ControlConfig, program: &str) -> Result<Option<Bound>, Failure> {
    let Some(path) = &control.api_socket else {
        return Ok(None);
    };
    let gid = api_server::resolve_group(control.api_group.as_ref()).map_err(Failure::Config)?;
    api_server::bind(path, gid, program)
        .map(Some)
        .map_err(|e| Failure::Other(anyhow::anyhow!(e)))
}

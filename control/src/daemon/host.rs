//! What a configuration names on this host (the API group, the reconciled namespaces): checked
//! by `chancectl config check` as chanced's start and a reload check it, and a start that fails on
//! them is the configuration's fault (exit 2).

use super::Failure;
use crate::shell::api_server::resolve_group;
use crate::sockets::SocketError;
use crate::Config;
use std::path::Path;

/// What `config check` verifies on this host beyond the file itself, as chanced's start and a
/// reload do: the API group exists and every reconciled namespace can be opened.
pub fn check_host(config: &Config, path: &Path) -> Result<(), String> {
    resolve_group(config.control().api_group.as_ref())?;
    if !config.ownership().reconcile_interval.is_zero() {
        for ns in &config.ownership().namespaces {
            if let crate::ownership_config::Namespace::Path(ns) = ns {
                std::fs::File::open(ns).map_err(|e| {
                    format!(
                        "{}: reconcile.namespaces: {}: cannot open: {e}",
                        path.display(),
                        ns.display()
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// A namespace the file names that cannot be opened is the configuration's fault (exit 2, so that
/// systemd does not restart into the same failure); any other socket failure is not.
pub(super) fn namespace_failure(config: &Path, e: SocketError) -> Failure {
    match e {
        SocketError::OpenNamespace { .. } | SocketError::EnterNamespace { .. } => {
            Failure::Config(format!("{}: reconcile.namespaces: {e}", config.display()))
        }
        e => Failure::Other(anyhow::Error::new(e).context("socket reconciliation")),
    }
}

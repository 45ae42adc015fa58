//! Reloading chance-director's configuration (SIGHUP, or the API's `reload`), in the shell's frame
//! ([`crate::shell::reload`]): the file is validated first and the running configuration kept on
//! any error. Live: the binds, backends and their states, the hash key, seed and fields (a table
//! rebuild), `[healthcheck]` (the checks restart; each backend keeps its health and counters),
//! `control.log_level` and `control.metrics_address`. Restart-only: `director.address`,
//! `director.gateway_mac`, `director.gue_port`, `director.hash_fields`,
//! `director.alt_hash_fields`, `control.api_socket`, `control.api_group`,
//! `control.shutdown_deadline_ms` takes effect at the next stop, `[dpdk]` and `[ports]`.

use super::{lock, serve_metrics, start_checker, table, Loaded, Shared};
use crate::api::ReloadReply;
use crate::director_config::{self, DirectorConfig};
use std::sync::Arc;

/// Keys whose new value waits for a restart.
fn restart_required(startup: &DirectorConfig, new: &DirectorConfig) -> Vec<String> {
    let (a, b) = (&startup.director, &new.director);
    [
        ("director.address", a.address != b.address),
        ("director.gateway_mac", a.gateway_mac != b.gateway_mac),
        ("director.gue_port", a.gue_port != b.gue_port),
        ("director.hash_fields", a.hash_fields != b.hash_fields),
        (
            "director.alt_hash_fields",
            a.alt_hash_fields != b.alt_hash_fields,
        ),
        (
            "control.api_socket",
            startup.control.api_socket != new.control.api_socket,
        ),
        (
            "control.api_group",
            startup.control.api_group.as_ref().map(|g| &g.name)
                != new.control.api_group.as_ref().map(|g| &g.name),
        ),
        ("dpdk/ports", startup.dataplane != new.dataplane),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(key, _)| key.to_owned())
    .collect()
}

/// Reloads the configuration file; `by` names the trigger for the log.
pub(crate) fn reload(shared: &Arc<Shared>, by: &str) -> Result<ReloadReply, String> {
    let ready = Some(if shared.dataplane {
        super::READY_DATAPLANE
    } else {
        super::READY_CONTROL_ONLY
    });
    crate::shell::reload::run(&shared.reload, by, ready, "chance-director", || {
        apply(shared)
    })
}

fn apply(shared: &Arc<Shared>) -> Result<ReloadReply, String> {
    let config = director_config::load(&shared.config_path).map_err(|e| e.to_string())?;
    let tables = table::source(&config)?;
    let new = Arc::new(Loaded::new(config, tables));
    let old = shared.current();
    let mut controls = lock(&shared.controls);
    let mut applied = Vec::new();
    // 1. Fallible preparations: the metrics address, if it changes, is bound before the switch.
    let (old_ctl, new_ctl) = (&old.config.control, &new.config.control);
    let metrics = if old_ctl.metrics_address != new_ctl.metrics_address {
        if let Some(m) = controls.metrics.take() {
            m.stop();
        }
        match new_ctl
            .metrics_address
            .map(|a| serve_metrics(a, shared))
            .transpose()
        {
            Ok(server) => Some(server),
            Err(e) => {
                controls.metrics = old_ctl
                    .metrics_address
                    .and_then(|a| serve_metrics(a, shared).ok());
                return Err(format!("control.metrics_address: {e}"));
            }
        }
    } else {
        None
    };
    // 2. The switch.
    if let Some(server) = metrics {
        applied.push(match &server {
            Some(m) => format!("control.metrics_address = {}", m.address()),
            None => "control.metrics_address: metrics off".into(),
        });
        controls.metrics = server;
    }
    if old_ctl.log_level != new_ctl.log_level {
        match shared.log.set(&new_ctl.log_level) {
            Ok(true) => applied.push(format!("control.log_level = {}", new_ctl.log_level)),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "log level not changed"),
        }
    }
    *lock(&shared.current) = Arc::clone(&new);
    if old.config.healthcheck != new.config.healthcheck || old.backends != new.backends {
        if let Some(c) = controls.checker.take() {
            c.stop();
        }
        match start_checker(&new, &shared.health) {
            Ok(checker) => controls.checker = checker,
            Err(e) => tracing::error!(error = %e, "health checks not restarted"),
        }
        applied.push(format!(
            "backends: {}; health checks {}",
            new.backends.len(),
            if new.config.healthcheck.is_some() {
                "on"
            } else {
                "off"
            }
        ));
    }
    drop(controls);
    if old.tables != new.tables || old.config.director != new.config.director {
        match shared.rebuild("reload") {
            Ok(()) => applied.push("forwarding table rebuilt".into()),
            Err(e) => {
                tracing::error!(error = %e, "the reloaded configuration's table could not be built")
            }
        }
    }
    let restart = restart_required(&shared.startup.config, &new.config);
    *lock(&shared.pending_restart) = restart.clone();
    Ok(ReloadReply {
        applied,
        restart_required: restart,
        ..ReloadReply::default()
    })
}

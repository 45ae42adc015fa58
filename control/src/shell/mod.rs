//! The daemon shell that chanced ([`crate::daemon`]) and chance-director ([`crate::director`])
//! share: the local API's server, the metrics endpoint, the frame of a reload, signals and
//! systemd notifications, and the logs. Each daemon brings its own answers, collector, reload
//! plan and stop.

pub(crate) mod api_limits;
pub(crate) mod api_server;
pub(crate) mod logging;
pub(crate) mod metrics_server;
pub(crate) mod reload;
pub(crate) mod signals;
pub(crate) mod startup;

//! chance's control plane: the configuration file, chanced's control side ([`daemon`]: the local
//! API, metrics, reloads, signals), the API's protocol and client ([`api`]) behind `chancectl`,
//! socket reconciliation, and the offline `replay`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod capture_file;
pub mod chancectl_cli;
pub mod config;
pub mod control_config;
pub mod daemon;
pub mod dataplane_config;
pub mod decode;
pub mod director;
pub mod director_cli;
pub mod director_config;
pub mod director_route;
pub mod frame;
pub mod healthcheck_config;
mod locator;
pub mod ownership_config;
pub mod pcapio;
pub mod reconcile;
pub mod replay;
pub mod report;
pub(crate) mod shell;
pub mod simulate;
pub mod sockets;
pub mod staged;
mod static_flows;
mod worker_layout;

pub use config::{load, parse, Config, ConfigError};
pub use control_config::ControlConfig;
pub use dataplane_config::{DataplaneConfig, KernelPort};
pub use replay::{replay, ReplayError, ReplayOutputs, ReplaySummary};

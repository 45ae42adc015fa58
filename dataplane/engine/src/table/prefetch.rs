//! Prefetching for batched lookups, behind a trait because the engine has no `unsafe`.
//!
//! [`ConcurrentFlowTable::lookup_many_with`](super::ConcurrentFlowTable::lookup_many_with) names
//! every cache line a burst of lookups will read a step of its pipeline (eight keys) ahead of
//! reading it, so that the misses of different keys are in flight together. A plain load can stand in for a prefetch
//! ([`LoadPrefetch`]), but a load that misses holds up retirement: after a few keys the core's
//! reorder buffer is full and no further miss starts. A prefetch instruction retires at once; the
//! runtime supplies one (`chance_runtime::prefetch::CachePrefetch`), which is what makes a batch of
//! 10M-entry lookups cost a fraction of single ones (BENCHMARKS.md "Flow table").

use std::sync::atomic::{AtomicU64, Ordering};

/// Starts bringing cache lines toward this core, ahead of their use.
pub trait Prefetch {
    /// The line holding `word`; returns at once, changes nothing observable.
    fn prefetch(&self, word: &AtomicU64);
}

/// Prefetch by loading the word (relaxed, value discarded): all safe code can do.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadPrefetch;

impl Prefetch for LoadPrefetch {
    #[inline(always)]
    fn prefetch(&self, word: &AtomicU64) {
        core::hint::black_box(word.load(Ordering::Relaxed));
    }
}

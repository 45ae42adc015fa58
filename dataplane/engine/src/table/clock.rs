//! The table's coarse clock: whole seconds since the table was created, in one atomic word.
//!
//! Lookups and inserts read it with one relaxed load and never call the system clock; whoever
//! drives the table (the dataplane's main loop, once per burst or every 100 ms) advances it with
//! [`Clock::tick`]. It only moves forward, so concurrent ticks from several threads are harmless.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Seconds since `epoch`, advanced by [`Clock::tick`].
#[derive(Debug)]
pub(crate) struct Clock {
    epoch: Instant,
    secs: AtomicU32,
}

impl Clock {
    /// A clock reading 0 at `epoch`.
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            secs: AtomicU32::new(0),
        }
    }

    /// The instant the clock reads 0.
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Advances the clock to `now` (never backwards; an instant before the epoch reads 0).
    /// Returns the clock's reading after the tick.
    pub(crate) fn tick(&self, now: Instant) -> u32 {
        let secs = secs_since(self.epoch, now);
        let previous = self.secs.fetch_max(secs, Ordering::Relaxed);
        previous.max(secs)
    }

    /// The current reading, in whole seconds since the epoch.
    #[inline]
    pub(crate) fn now(&self) -> u32 {
        self.secs.load(Ordering::Relaxed)
    }
}

/// Whole seconds from `epoch` to `now`, saturating at both ends of `u32` (136 years).
fn secs_since(epoch: Instant, now: Instant) -> u32 {
    u32::try_from(now.saturating_duration_since(epoch).as_secs()).unwrap_or(u32::MAX)
}

/// A lifetime in the clock's unit, rounded up to whole seconds (so an entry lives at least as long
/// as configured, and at most one second more, the clock's resolution).
pub(crate) fn lifetime_secs(lifetime: Duration) -> u32 {
    let secs = lifetime
        .as_secs()
        .saturating_add(u64::from(lifetime.subsec_nanos() > 0));
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_advance_in_whole_seconds_and_never_go_back() {
        let epoch = Instant::now();
        let clock = Clock::new(epoch);
        assert_eq!(clock.now(), 0);
        assert_eq!(clock.tick(epoch + Duration::from_millis(999)), 0);
        assert_eq!(clock.tick(epoch + Duration::from_millis(2500)), 2);
        assert_eq!(clock.now(), 2);
        // A late tick from another thread does not move it back.
        assert_eq!(clock.tick(epoch + Duration::from_secs(1)), 2);
        assert_eq!(clock.now(), 2);
        // Before the epoch reads as the epoch.
        assert_eq!(secs_since(epoch + Duration::from_secs(5), epoch), 0);
    }

    #[test]
    fn lifetimes_round_up() {
        assert_eq!(lifetime_secs(Duration::ZERO), 0);
        assert_eq!(lifetime_secs(Duration::from_secs(10)), 10);
        assert_eq!(lifetime_secs(Duration::from_millis(10_001)), 11);
        assert_eq!(lifetime_secs(Duration::from_millis(1)), 1);
        assert_eq!(lifetime_secs(Duration::MAX), u32::MAX);
    }
}

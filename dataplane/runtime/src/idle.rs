//! What a worker does when a poll of its ports brings nothing: keep polling, sleep, or stop;
//! and when it publishes its counters.
//!
//! The decision runs only on empty polls, so a loaded worker never pays for it: a poll that
//! received something only resets the count of consecutive empty polls.

use std::time::Duration;

/// When a worker stops, besides the shared stop flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleExit {
    /// Never: run until the stop flag is raised.
    Never,
    /// After this many consecutive polls that received nothing on either port (the input of a
    /// pcap vdev is exhausted at its first empty poll).
    AfterPolls(u32),
}

/// How a worker with nothing to receive spends its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdlePolicy {
    /// Poll without pause: the lowest latency and no RX ring overflow after a quiet spell, for a
    /// NIC at line rate on a core of its own. An idle worker uses its whole core.
    #[default]
    Busy,
    /// Poll while traffic flows; after a run of empty polls, sleep between polls with a growing
    /// pause up to a cap, and poll without pause again from the first packet. For labs and
    /// lightly loaded hosts where DPDK processes share cores.
    Adaptive(AdaptiveIdle),
}

impl IdlePolicy {
    /// The adaptive policy with its default timings.
    pub const fn adaptive() -> IdlePolicy {
        IdlePolicy::Adaptive(AdaptiveIdle::DEFAULT)
    }
}

/// The timings of [`IdlePolicy::Adaptive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveIdle {
    /// Consecutive empty polls spent polling before the first sleep (a short gap between two
    /// bursts of traffic costs no sleep).
    pub spin_polls: u32,
    /// The first sleep; each further empty poll doubles it.
    pub first_sleep: Duration,
    /// The longest sleep: it bounds the delay of the first packet after an idle period, and
    /// sets the idle cost (one poll of each port per sleep).
    pub max_sleep: Duration,
}

impl AdaptiveIdle {
    /// About 100 µs of polling, then 10 µs doubling up to 750 µs. The kernel's timer slack
    /// (50 µs for a normal thread) comes on top of each sleep: the longest pause, about 800 µs,
    /// keeps the first packet after an idle period under 1 ms late, and its 1,250 wake-ups a
    /// second (each polls both ports) keep an idle worker under 2 % of a core even where a
    /// wake-up costs 10 µs or more (a VM's timer exits).
    pub const DEFAULT: AdaptiveIdle = AdaptiveIdle {
        spin_polls: 1024,
        first_sleep: Duration::from_micros(10),
        max_sleep: Duration::from_micros(750),
    };

    /// The pause after `empty_polls` consecutive empty polls (zero while still spinning).
    pub fn pause(&self, empty_polls: u32) -> Duration {
        let Some(sleeps) = empty_polls.checked_sub(self.spin_polls) else {
            return Duration::ZERO;
        };
        if sleeps == 0 {
            return Duration::ZERO;
        }
        // Doubling from the first sleep; 2^20 times any sane first sleep is beyond every cap.
        let doubled = self.first_sleep.saturating_mul(1 << (sleeps - 1).min(20));
        doubled.min(self.max_sleep)
    }
}

impl Default for AdaptiveIdle {
    fn default() -> Self {
        AdaptiveIdle::DEFAULT
    }
}

/// Busy polls between two publications of a worker's counters.
const PUBLISH_EVERY_POLLS: u32 = 8;

/// One worker's bookkeeping between polls: when to publish its counters, its count of
/// consecutive empty polls, and what it does about them.
#[derive(Debug, Clone)]
pub(crate) struct Idle {
    policy: IdlePolicy,
    exit: IdleExit,
    empty_polls: u32,
    unpublished: u32,
}

impl Idle {
    pub(crate) fn new(policy: IdlePolicy, exit: IdleExit) -> Self {
        Self {
            policy,
            exit,
            empty_polls: 0,
            unpublished: 0,
        }
    }

    pub(crate) fn set_policy(&mut self, policy: IdlePolicy) {
        self.policy = policy;
    }

    /// Ends a poll that received `received` packets: publishes the counters (`publish`) every
    /// few polls and at every empty one, and says whether the worker goes on (false: its
    /// [`IdleExit`] is reached); an empty poll sleeps as the policy says.
    #[inline(always)]
    pub(crate) fn end_poll(&mut self, received: usize, publish: impl FnOnce()) -> bool {
        // Publishing stores every counter; once per few polls is fresh enough (microseconds)
        // and saves 3 % of the packet rate. An empty poll publishes at once, so a reader never
        // waits on a quiet worker's numbers.
        self.unpublished += 1;
        if self.unpublished >= PUBLISH_EVERY_POLLS || received == 0 {
            publish();
            self.unpublished = 0;
        }
        if received > 0 {
            self.empty_polls = 0;
            true
        } else {
            self.empty_poll()
        }
    }

    /// A poll received nothing: sleeps as the policy says, and says whether the worker goes
    /// on (false: [`IdleExit`] reached).
    #[inline]
    fn empty_poll(&mut self) -> bool {
        self.empty_polls = self.empty_polls.saturating_add(1);
        if let IdleExit::AfterPolls(limit) = self.exit {
            if self.empty_polls >= limit {
                return false;
            }
        }
        if let IdlePolicy::Adaptive(timings) = self.policy {
            pause(&timings, self.empty_polls);
        }
        true
    }
}

/// Sleeps as long as `timings` say for `empty_polls` (out of line: the loop stays small).
#[inline(never)]
fn pause(timings: &AdaptiveIdle, empty_polls: u32) {
    let pause = timings.pause(empty_polls);
    if !pause.is_zero() {
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_spins_first_then_doubles_its_sleep_up_to_the_cap() {
        let t = AdaptiveIdle {
            spin_polls: 3,
            first_sleep: Duration::from_micros(10),
            max_sleep: Duration::from_micros(50),
        };
        let pauses: Vec<u64> = (0..=8).map(|n| t.pause(n).as_micros() as u64).collect();
        assert_eq!(pauses, [0, 0, 0, 0, 10, 20, 40, 50, 50]);
        assert_eq!(t.pause(u32::MAX), Duration::from_micros(50));
    }

    #[test]
    fn idle_exit_counts_consecutive_empty_polls_only() {
        let mut idle = Idle::new(IdlePolicy::Busy, IdleExit::AfterPolls(3));
        let mut published = 0;
        assert!(idle.end_poll(0, || published += 1));
        assert!(idle.end_poll(0, || published += 1));
        assert!(idle.end_poll(5, || published += 1));
        assert!(idle.end_poll(0, || published += 1));
        assert!(idle.end_poll(0, || published += 1));
        assert!(
            !idle.end_poll(0, || published += 1),
            "the third empty poll in a row ends it"
        );
        assert_eq!(published, 5, "every empty poll publishes");
        let mut never = Idle::new(IdlePolicy::Busy, IdleExit::Never);
        assert!((0..10_000).all(|_| never.end_poll(0, || {})));
    }

    #[test]
    fn a_busy_worker_publishes_every_few_polls() {
        let mut idle = Idle::new(IdlePolicy::Busy, IdleExit::Never);
        let mut published = 0;
        for _ in 0..8 * PUBLISH_EVERY_POLLS {
            assert!(idle.end_poll(32, || published += 1));
        }
        assert_eq!(published, 8);
    }
}

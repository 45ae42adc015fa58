//! What the engine decided for one frame.

use crate::counters::Counter;
use core::ops::Range;

/// The four things that can happen to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Decapsulated: hand the inner packet (with the original Ethernet header) to the host.
    Accept,
    /// Rewritten for the next hop: send back out of the NIC.
    Forward,
    /// Not ours: hand to the host unchanged.
    Pass,
    /// Dropped; the reason names the counter that was bumped.
    Drop,
}

impl Verdict {
    /// "accept", "forward", "pass" or "drop".
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Forward => "forward",
            Verdict::Pass => "pass",
            Verdict::Drop => "drop",
        }
    }
}

/// The engine's answer for one frame.
///
/// Rewrites happen in place and only ever shrink the frame, so the result is a sub-range of the
/// input buffer: the runtime maps `frame.start` onto `rte_pktmbuf_adj` and the bytes cut from the
/// end onto `rte_pktmbuf_trim`. For a drop the range is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What to do with the frame.
    pub verdict: Verdict,
    /// The counter that decided it; `None` for a pass.
    pub reason: Option<Counter>,
    /// Where the resulting frame lies in the buffer.
    pub frame: Range<usize>,
}

impl Outcome {
    pub(crate) fn pass(len: usize) -> Self {
        Self {
            verdict: Verdict::Pass,
            reason: None,
            frame: 0..len,
        }
    }

    pub(crate) fn drop(reason: Counter) -> Self {
        Self {
            verdict: Verdict::Drop,
            reason: Some(reason),
            frame: 0..0,
        }
    }

    /// The resulting frame's bytes (empty for a drop).
    pub fn output<'a>(&self, buffer: &'a [u8]) -> &'a [u8] {
        &buffer[self.frame.clone()]
    }
}

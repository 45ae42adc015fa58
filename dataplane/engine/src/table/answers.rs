//! The table's answers: what an insert did ([`InsertOutcome`]), whether a flow is owned
//! ([`Lookup`]), and an entry as the control API lists it ([`Entry`]).

use super::Source;
use crate::flow::FlowKey;
use std::time::Duration;

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A new entry (in a free slot; or an embryonic entry re-armed after it had expired).
    Inserted,
    /// The key was there: its timestamp is now the current second and its source the higher of
    /// the old and the new.
    Refreshed,
    /// An embryonic insert found the key already there and left the entry as it was.
    Present,
    /// A new entry, in place of an entry of this source (see [`Source`] for the order).
    Evicted(Source),
    /// No room: the table is at capacity or the key's two buckets are full, and only entries that
    /// learning may not evict (or, for an embryonic insert, only established ones) were left.
    Refused,
}

impl InsertOutcome {
    /// True when the table now holds the key.
    pub fn is_stored(self) -> bool {
        !matches!(self, InsertOutcome::Refused)
    }
}

/// The answer to "does a local socket own this flow?", with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Owned, by an entry of this source.
    Owned(Source),
    /// An embryonic entry past its lifetime: not owned.
    Expired,
    /// No entry.
    Miss,
    /// Writers kept changing the slots this lookup read; answered as a miss (and counted in
    /// [`TableStats::read_failures`]).
    ///
    /// [`TableStats::read_failures`]: super::TableStats::read_failures
    Contended,
}

impl Lookup {
    /// True for [`Lookup::Owned`].
    #[inline]
    pub fn is_owned(self) -> bool {
        matches!(self, Lookup::Owned(_))
    }

    /// True for an owned answer that only a removal can end: any source but [`Source::Syn`],
    /// whose entries expire with time (see [`ConcurrentFlowTable::removals`]).
    ///
    /// [`ConcurrentFlowTable::removals`]: super::ConcurrentFlowTable::removals
    #[inline]
    pub fn is_lasting(self) -> bool {
        matches!(self, Lookup::Owned(source) if source != Source::Syn)
    }
}

/// An entry as listed by [`ConcurrentFlowTable::for_each`] and [`ConcurrentFlowTable::retain`].
///
/// [`ConcurrentFlowTable::for_each`]: super::ConcurrentFlowTable::for_each
/// [`ConcurrentFlowTable::retain`]: super::ConcurrentFlowTable::retain
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The flow.
    pub key: FlowKey,
    /// Why the table holds it.
    pub source: Source,
    /// Time since it was inserted or last confirmed, in the clock's whole seconds.
    pub age: Duration,
}

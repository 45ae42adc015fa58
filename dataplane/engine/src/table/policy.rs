//! Where an entry comes from, which source wins when two meet, and which entry makes room.
//!
//! Sources rank Static > Socket > Egress > Syn. A confirmation of an existing entry upgrades its
//! source and never downgrades it. When both candidate buckets of a new flow are full, the victim
//! is, in order: an expired embryonic (Syn) entry, then a live embryonic entry, then (only for a
//! flow proved by the host itself, i.e. not for another embryonic entry) the least recently
//! confirmed Egress entry; oldest first within each class. Socket and Static entries are never
//! evicted by learning: they leave only through `remove`/`retain` (Socket) or `remove_static`.

/// Why the table holds a flow. The order is the priority order (a higher source wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Source {
    /// Embryonic: a SYN this host accepted; owns its flow for `syn_lifetime` only.
    Syn = 1,
    /// Learned from a packet the host sent (proves a local socket owns the flow).
    Egress = 2,
    /// Found in the kernel's socket table by the control daemon's reconciliation.
    Socket = 3,
    /// Configured by the operator (config file or control API); removed only by `remove_static`.
    Static = 4,
}

impl Source {
    /// Every source, lowest priority first.
    pub const ALL: [Source; 4] = [Source::Syn, Source::Egress, Source::Socket, Source::Static];

    /// "syn", "egress", "socket" or "static".
    pub const fn name(self) -> &'static str {
        match self {
            Source::Syn => "syn",
            Source::Egress => "egress",
            Source::Socket => "socket",
            Source::Static => "static",
        }
    }

    /// The source stored in a slot (0 is an empty slot).
    #[inline]
    pub(crate) const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            1 => Some(Source::Syn),
            2 => Some(Source::Egress),
            3 => Some(Source::Socket),
            4 => Some(Source::Static),
            _ => None,
        }
    }

    /// The source after a confirmation by `by`: the higher of the two.
    #[inline]
    pub(crate) fn upgraded(self, by: Source) -> Source {
        self.max(by)
    }

    /// True for entries that learning may evict (Syn, Egress).
    pub const fn is_evictable(self) -> bool {
        matches!(self, Source::Syn | Source::Egress)
    }
}

/// What an eviction replaced (for the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Victim {
    /// An embryonic entry past its lifetime (already a miss): reusing it loses nothing.
    ExpiredSyn,
    /// A live embryonic entry.
    Syn,
    /// The least recently confirmed egress-learned entry.
    Egress,
}

impl Victim {
    /// The evicted entry's source.
    pub(crate) fn source(self) -> Source {
        match self {
            Victim::ExpiredSyn | Victim::Syn => Source::Syn,
            Victim::Egress => Source::Egress,
        }
    }
}

/// True when an embryonic entry confirmed at `confirmed` no longer owns its flow at `now`.
/// Both are whole seconds truncated from finer times, so the entry may have been confirmed up to a
/// second later than `confirmed` says: it expires only once `now - confirmed` exceeds the
/// lifetime, so it lives at least the lifetime and at most one second more.
#[inline]
pub(crate) fn syn_expired(confirmed: u32, now: u32, syn_lifetime: u32) -> bool {
    now.saturating_sub(confirmed) > syn_lifetime
}

/// Picks the entry that a new entry from `incoming` replaces among `occupied` slots
/// (`(slot id, source, last confirmed)`), or `None` when only protected entries remain.
pub(crate) fn victim(
    occupied: impl IntoIterator<Item = (usize, Source, u32)>,
    incoming: Source,
    now: u32,
    syn_lifetime: u32,
) -> Option<(usize, Victim)> {
    let mut best: Option<((u8, u32), usize, Victim)> = None;
    for (id, source, confirmed) in occupied {
        let class = match source {
            Source::Syn if syn_expired(confirmed, now, syn_lifetime) => Victim::ExpiredSyn,
            Source::Syn => Victim::Syn,
            // An embryonic entry (anyone on the network can cause one) never pushes out a flow
            // the host itself proved.
            Source::Egress if incoming != Source::Syn => Victim::Egress,
            _ => continue,
        };
        let rank = (class as u8, confirmed);
        if best.is_none_or(|(best_rank, ..)| rank < best_rank) {
            best = Some((rank, id, class));
        }
    }
    best.map(|(_, id, class)| (id, class))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Source::*;

    #[test]
    fn sources_rank_static_socket_egress_syn_and_never_downgrade() {
        assert!(Static > Socket && Socket > Egress && Egress > Syn);
        assert_eq!(Syn.upgraded(Egress), Egress);
        assert_eq!(Egress.upgraded(Syn), Egress);
        assert_eq!(Socket.upgraded(Egress), Socket);
        assert_eq!(Egress.upgraded(Static), Static);
        assert_eq!(Static.upgraded(Socket), Static);
        for s in Source::ALL {
            assert_eq!(Source::from_bits(s as u8), Some(s));
        }
        assert_eq!(Source::from_bits(0), None);
    }

    #[test]
    fn expired_syn_then_live_syn_then_oldest_egress() {
        let now = 100;
        let life = 10;
        let slots = [
            (0, Static, 1),
            (1, Egress, 50),
            (2, Syn, 95),
            (3, Socket, 2),
            (4, Egress, 40),
            (5, Syn, 80), // expired
            (6, Syn, 92),
        ];
        assert_eq!(
            victim(slots, Egress, now, life),
            Some((5, Victim::ExpiredSyn))
        );
        let no_expired = slots.iter().copied().filter(|s| s.0 != 5);
        assert_eq!(
            victim(no_expired.clone(), Egress, now, life),
            Some((6, Victim::Syn))
        );
        let no_syn = no_expired.filter(|s| s.1 != Syn);
        assert_eq!(
            victim(no_syn.clone(), Socket, now, life),
            Some((4, Victim::Egress))
        );
        // An embryonic entry does not push out an egress-learned one.
        assert_eq!(victim(no_syn.clone(), Syn, now, life), None);
        let protected = no_syn.filter(|s| s.1 != Egress);
        assert_eq!(victim(protected, Static, now, life), None);
    }

    #[test]
    fn embryonic_entries_make_room_for_each_other() {
        let slots = [(0, Socket, 0), (1, Syn, 7), (2, Syn, 3)];
        assert_eq!(victim(slots, Syn, 8, 10), Some((2, Victim::Syn)));
        assert_eq!(victim(slots, Syn, 14, 10), Some((2, Victim::ExpiredSyn)));
    }

    #[test]
    fn syn_lifetime_is_at_least_the_configured_one() {
        // Confirmed in second 5 (any time within it), lifetime 10: owned through second 15.
        assert!(!syn_expired(5, 14, 10));
        assert!(!syn_expired(5, 15, 10));
        assert!(syn_expired(5, 16, 10));
        assert!(syn_expired(5, 6, 0));
        // A tick racing ahead of an entry's own timestamp does not underflow.
        assert!(!syn_expired(7, 5, 10));
    }
}

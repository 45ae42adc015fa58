//! Buckets of eight slots, their tag words and their writer locks.
//!
//! Each bucket has one `AtomicU64` of tags (byte `i` is slot `i`'s tag: 0 = empty, else eight bits
//! of the key's hash forced non-zero), kept apart from the slots so one load tells a reader which
//! slots may hold its key (1 in 255 false positives per occupied slot), and one `AtomicU8` lock
//! that only writers take. Tags and slots are written by the lock holder only: slot first, then
//! the tag (release), so a reader that sees a tag (acquire) sees the slot it announces.

use super::slot::Slot;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Slots per bucket.
pub(crate) const SLOTS: usize = 8;

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;
const SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Eight slots, 384 bytes: six cache lines, starting on a line.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct Bucket {
    pub(crate) slots: [Slot; SLOTS],
}

/// The high bit of every zero byte of `word`, exactly (no borrow between bytes).
#[inline]
fn zero_bytes(word: u64) -> u64 {
    !(((word & SEVEN).wrapping_add(SEVEN)) | word | SEVEN)
}

/// The high bit of every byte of `tags` equal to `tag`.
#[inline]
pub(crate) fn matching(tags: u64, tag: u8) -> u64 {
    zero_bytes(tags ^ (LOW * u64::from(tag)))
}

/// The high bit of every empty slot's byte.
#[inline]
pub(crate) fn empty(tags: u64) -> u64 {
    zero_bytes(tags)
}

/// Occupied slots.
#[inline]
pub(crate) fn occupied_count(tags: u64) -> u32 {
    SLOTS as u32 - empty(tags).count_ones()
}

/// The slot indices flagged in `mask` (a result of [`matching`] or [`empty`]), lowest first.
#[inline]
pub(crate) fn indices(mut mask: u64) -> impl Iterator<Item = usize> {
    debug_assert_eq!(mask & !HIGH, 0);
    core::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let index = mask.trailing_zeros() as usize / 8;
        mask &= mask - 1;
        Some(index)
    })
}

/// `tags` with slot `index`'s tag replaced by `tag`.
#[inline]
pub(crate) fn with_tag(tags: u64, index: usize, tag: u8) -> u64 {
    let shift = index * 8;
    tags & !(0xff << shift) | u64::from(tag) << shift
}

/// Lock holder: sets slot `index`'s tag (release, after the slot was written).
pub(crate) fn set_tag(tags: &AtomicU64, index: usize, tag: u8) {
    let word = tags.load(Ordering::Relaxed);
    tags.store(with_tag(word, index, tag), Ordering::Release);
}

/// Spins until the bucket's lock is taken. Writers hold it for a few dozen nanoseconds; after a
/// while the spinner yields, in case the holder was preempted (tests run more threads than cores;
/// pinned lcores do not).
pub(crate) fn lock(lock: &AtomicU8) {
    let mut spins = 0u32;
    loop {
        if try_lock(lock) {
            return;
        }
        while lock.load(Ordering::Relaxed) != 0 {
            spins += 1;
            if spins < 128 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Takes the bucket's lock if it is free.
#[inline]
pub(crate) fn try_lock(lock: &AtomicU8) -> bool {
    lock.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Releases a lock taken with [`lock`] or [`try_lock`].
#[inline]
pub(crate) fn unlock(lock: &AtomicU8) {
    lock.store(0, Ordering::Release);
}

/// Holds one or two bucket locks (taken in index order, so two writers cannot deadlock) and
/// releases them when dropped.
#[derive(Debug)]
pub(crate) struct Locked<'a> {
    locks: &'a [AtomicU8],
    first: usize,
    second: Option<usize>,
}

impl<'a> Locked<'a> {
    /// Locks buckets `a` and `b` (once if they are the same).
    pub(crate) fn pair(locks: &'a [AtomicU8], a: usize, b: usize) -> Self {
        let (first, second) = (a.min(b), a.max(b));
        lock(&locks[first]);
        let second = (second != first).then(|| {
            lock(&locks[second]);
            second
        });
        Self {
            locks,
            first,
            second,
        }
    }

    /// Locks bucket `a` only.
    pub(crate) fn one(locks: &'a [AtomicU8], a: usize) -> Self {
        lock(&locks[a]);
        Self {
            locks,
            first: a,
            second: None,
        }
    }

    /// Takes bucket `a`'s lock only if it is free (for a third bucket while holding a pair: no
    /// waiting, hence no lock-order cycle).
    pub(crate) fn try_one(locks: &'a [AtomicU8], a: usize) -> Option<Self> {
        try_lock(&locks[a]).then_some(Self {
            locks,
            first: a,
            second: None,
        })
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(second) = self.second {
            unlock(&self.locks[second]);
        }
        unlock(&self.locks[self.first]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_words_match_exact_bytes() {
        let tags = u64::from_le_bytes([0, 7, 0x80, 7, 1, 0xff, 0, 0x87]);
        assert_eq!(indices(matching(tags, 7)).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(indices(matching(tags, 0x80)).collect::<Vec<_>>(), [2]);
        assert_eq!(indices(matching(tags, 0xff)).collect::<Vec<_>>(), [5]);
        assert_eq!(indices(matching(tags, 1)).collect::<Vec<_>>(), [4]);
        assert_eq!(indices(empty(tags)).collect::<Vec<_>>(), [0, 6]);
        assert_eq!(occupied_count(tags), 6);
        assert_eq!(occupied_count(0), 0);
        assert_eq!(occupied_count(u64::MAX), 8);
        // Every byte value against every position, including the borrow cases of the naive trick.
        for tag in 1..=255u8 {
            for index in 0..SLOTS {
                let word = with_tag(LOW, index, tag);
                let hits: Vec<_> = indices(matching(word, tag)).collect();
                if tag == 1 {
                    assert_eq!(hits, (0..SLOTS).collect::<Vec<_>>());
                } else {
                    assert_eq!(hits, [index]);
                }
            }
        }
    }

    #[test]
    fn a_bucket_is_six_cache_lines() {
        assert_eq!(size_of::<Slot>(), 48);
        assert_eq!(size_of::<Bucket>(), 384);
        assert_eq!(align_of::<Bucket>(), 64);
    }

    #[test]
    fn locks_exclude_and_release() {
        let locks: Vec<AtomicU8> = (0..3).map(|_| AtomicU8::new(0)).collect();
        {
            let _pair = Locked::pair(&locks, 2, 0);
            assert!(Locked::try_one(&locks, 0).is_none());
            assert!(Locked::try_one(&locks, 2).is_none());
            assert!(Locked::try_one(&locks, 1).is_some());
        }
        let _same = Locked::pair(&locks, 1, 1);
        assert!(Locked::try_one(&locks, 0).is_some());
        assert!(Locked::try_one(&locks, 1).is_none());
    }
}

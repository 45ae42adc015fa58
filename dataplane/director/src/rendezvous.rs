//! GLB's rendezvous hashing: the per-row order of backends that both GLB's two-hop rows and
//! chance's longer hop lists are cut from.
//!
//! For row `i` of a table with a 16-byte `seed`:
//! - the row seed is SipHash-2-4 keyed by `seed` over `i` as four big-endian bytes; its eight
//!   output bytes are the hash in little-endian order (as the SipHash reference writes them);
//! - a backend's score is SipHash-2-4 keyed by `seed` over the row seed's eight bytes followed by
//!   the backend's four address bytes (network order); the score compares as the eight output
//!   bytes read big-endian (GLB byte-swaps the hash before it sorts);
//! - the row's order is the backends by ascending score.
//!
//! Any two backends keep their relative order in a row whatever else is in the set, which is what
//! keeps a change of one backend from moving rows between the others.

use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::Ipv4Addr;

/// A table's rendezvous seed (GLB's `seed`).
pub type Seed = [u8; 16];

/// The row seed: SipHash-2-4 of the row's index as four big-endian bytes, as its output bytes.
pub fn row_seed(seed: &Seed, row: u16) -> [u8; 8] {
    let mut hasher = SipHasher24::new_with_key(seed);
    hasher.write(&u32::from(row).to_be_bytes());
    hasher.finish().to_le_bytes()
}

/// A backend's score in a row: lower sorts first.
pub fn score(seed: &Seed, row: u16, address: Ipv4Addr) -> u64 {
    RowScorer::new(seed, row).score(address)
}

/// Scores the backends of one row: the row seed's block is hashed once and the state copied per
/// backend, so a score costs one SipHash block and the finalisation.
#[derive(Debug, Clone)]
pub struct RowScorer {
    after_row_seed: SipHasher24,
}

impl RowScorer {
    /// The scorer for `row` of a table seeded with `seed`.
    pub fn new(seed: &Seed, row: u16) -> Self {
        let mut after_row_seed = SipHasher24::new_with_key(seed);
        after_row_seed.write(&row_seed(seed, row));
        RowScorer { after_row_seed }
    }

    /// `address`'s score in this row.
    pub fn score(&self, address: Ipv4Addr) -> u64 {
        let mut hasher = self.after_row_seed;
        hasher.write(&address.octets());
        // GLB stores the output little-endian and byte-swaps it before comparing: the score is
        // the output bytes read big-endian.
        hasher.finish().swap_bytes()
    }
}

/// The indices of `addresses` in `row`'s rendezvous order (ties, which need a 64-bit collision
/// between distinct addresses, keep the lower index first).
pub fn order(seed: &Seed, row: u16, addresses: &[Ipv4Addr]) -> Vec<usize> {
    let scorer = RowScorer::new(seed, row);
    let mut scored: Vec<(u64, usize)> = addresses
        .iter()
        .enumerate()
        .map(|(index, &address)| (scorer.score(address), index))
        .collect();
    scored.sort_unstable();
    scored.into_iter().map(|(_, index)| index).collect()
}

/// The scores of every row, computed once per table build and reused for each row: `scores[i]`
/// is `addresses[i]`'s score in the current row.
#[derive(Debug)]
pub struct RowScores<'a> {
    seed: Seed,
    addresses: &'a [Ipv4Addr],
    scores: Vec<u64>,
}

impl<'a> RowScores<'a> {
    /// Scores for `addresses` under `seed`.
    pub fn new(seed: &Seed, addresses: &'a [Ipv4Addr]) -> Self {
        RowScores {
            seed: *seed,
            addresses,
            scores: vec![0; addresses.len()],
        }
    }

    /// Scores `row` and returns every address's score, by index.
    pub fn row(&mut self, row: u16) -> &[u64] {
        let scorer = RowScorer::new(&self.seed, row);
        for (score, &address) in self.scores.iter_mut().zip(self.addresses) {
            *score = scorer.score(address);
        }
        &self.scores
    }
}

/// Whether `(score_a, a)` sorts before `(score_b, b)`: by score, then by index.
pub(crate) fn sorts_before(score_a: u64, a: usize, score_b: u64, b: usize) -> bool {
    (score_a, a) < (score_b, b)
}

/// The first two indices in rendezvous order (the second is `None` for a single score).
pub(crate) fn first_two(scores: &[u64]) -> Option<(usize, Option<usize>)> {
    let mut first: Option<usize> = None;
    let mut second: Option<usize> = None;
    for (index, &score) in scores.iter().enumerate() {
        match first {
            None => first = Some(index),
            Some(f) if sorts_before(score, index, scores[f], f) => {
                second = first;
                first = Some(index);
            }
            Some(_) => match second {
                Some(s) if !sorts_before(score, index, scores[s], s) => {}
                _ => second = Some(index),
            },
        }
    }
    first.map(|f| (f, second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_the_row_seed_then_the_address_equals_hashing_them_in_one_piece() {
        let seed = *b"0123456789abcdef";
        let address = Ipv4Addr::new(10, 1, 2, 3);
        let mut one_piece = row_seed(&seed, 77).to_vec();
        one_piece.extend_from_slice(&address.octets());
        let whole = SipHasher24::new_with_key(&seed).hash(&one_piece);
        assert_eq!(score(&seed, 77, address), whole.swap_bytes());
    }

    #[test]
    fn first_two_finds_the_two_lowest_scores_in_order() {
        assert_eq!(first_two(&[]), None);
        assert_eq!(first_two(&[5]), Some((0, None)));
        assert_eq!(first_two(&[5, 3, 9, 4]), Some((1, Some(3))));
        assert_eq!(first_two(&[1, 2, 3]), Some((0, Some(1))));
        assert_eq!(first_two(&[3, 2, 1]), Some((2, Some(1))));
        assert_eq!(first_two(&[7, 7, 7]), Some((0, Some(1))));
    }
}

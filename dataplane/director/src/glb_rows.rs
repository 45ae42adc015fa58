//! GLB's rows: a primary and a secondary per row, chosen as `glb-director-cli build-config`
//! chooses them (its code, where it and GLB's prose differ).
//!
//! - Inactive backends take no part; every other backend is scored (see [`crate::rendezvous`]).
//! - The row's two lowest scores are the candidates, first then second.
//! - The first is "bad" when it is draining or unhealthy. A bad first is swapped behind the second
//!   only when the second's state is *active*: the second's health is not looked at, and a
//!   filling second does not take the swap (GLB compares the state field with the value its
//!   health constant happens to share with `active`).
//!
//! Where GLB's code is undefined chance gives a defined answer:
//! - one usable backend: GLB reads a second candidate it never wrote; here the row is that
//!   backend as both primary and secondary (a hop list of one);
//! - no usable backend: GLB writes rows from memory it never wrote; here it is an error;
//! - equal scores (only possible for a 64-bit collision: duplicate addresses are refused): GLB's
//!   `qsort` leaves the order unspecified; here the lower index sorts first.

use crate::model::{Backend, BackendState, ROWS};
use crate::rendezvous::{first_two, RowScores, Seed};
use crate::table::{check_backends, TableError};
use std::net::Ipv4Addr;

/// One GLB row: indices into the table's backend list (inactive backends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GlbRow {
    /// The backend that gets the packet first.
    pub primary: u32,
    /// The backend it is handed to when the primary does not know the flow.
    pub secondary: u32,
}

/// GLB's 65,536 rows for `backends` (in the file's order) under `seed`.
pub fn glb_rows(seed: &Seed, backends: &[Backend]) -> Result<Vec<GlbRow>, TableError> {
    check_backends(backends)?;
    let usable: Vec<u32> = (0..backends.len())
        .filter(|&i| backends[i].state != BackendState::Inactive)
        .filter_map(|i| u32::try_from(i).ok())
        .collect();
    let addresses: Vec<Ipv4Addr> = usable
        .iter()
        .map(|&i| backends[i as usize].address)
        .collect();
    let mut scores = RowScores::new(seed, &addresses);
    let mut rows = Vec::with_capacity(ROWS);
    for row in 0..=u16::MAX {
        let (first, second) = first_two(scores.row(row)).ok_or(TableError::NoUsableBackend)?;
        let first = usable[first];
        let Some(second) = second.map(|s| usable[s]) else {
            rows.push(GlbRow {
                primary: first,
                secondary: first,
            });
            continue;
        };
        rows.push(choose(backends, first, second));
    }
    Ok(rows)
}

/// GLB's swap: a bad first candidate goes behind an active second.
fn choose(backends: &[Backend], first: u32, second: u32) -> GlbRow {
    let primary = &backends[first as usize];
    let primary_bad = primary.state == BackendState::Draining || !primary.healthy;
    if primary_bad && backends[second as usize].state == BackendState::Active {
        GlbRow {
            primary: second,
            secondary: first,
        }
    } else {
        GlbRow {
            primary: first,
            secondary: second,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(last: u8, state: BackendState, healthy: bool) -> Backend {
        Backend {
            address: Ipv4Addr::new(10, 0, 0, last),
            state,
            healthy,
        }
    }

    #[test]
    fn a_bad_primary_is_swapped_only_behind_an_active_secondary_whatever_its_health() {
        use BackendState::*;
        let cases = [
            // (first, second, swapped)
            ((Draining, true), (Active, true), true),
            ((Active, false), (Active, true), true),
            ((Active, false), (Active, false), true),
            ((Draining, true), (Filling, true), false),
            ((Filling, false), (Filling, true), false),
            ((Filling, true), (Active, true), false),
            ((Active, true), (Draining, true), false),
        ];
        for ((fs, fh), (ss, sh), swapped) in cases {
            let backends = [backend(1, fs, fh), backend(2, ss, sh)];
            let row = choose(&backends, 0, 1);
            let expected = if swapped { (1, 0) } else { (0, 1) };
            assert_eq!(
                (row.primary, row.secondary),
                expected,
                "{fs:?}/{fh} then {ss:?}/{sh}"
            );
        }
    }

    #[test]
    fn a_single_usable_backend_is_both_primary_and_secondary() {
        let backends = [
            backend(1, BackendState::Inactive, true),
            backend(2, BackendState::Draining, false),
        ];
        let rows = glb_rows(&[7; 16], &backends).unwrap();
        assert!(rows.iter().all(|r| r.primary == 1 && r.secondary == 1));
    }

    #[test]
    fn a_table_without_a_usable_backend_is_refused() {
        let backends = [backend(1, BackendState::Inactive, true)];
        assert_eq!(
            glb_rows(&[7; 16], &backends),
            Err(TableError::NoUsableBackend)
        );
        assert_eq!(glb_rows(&[7; 16], &[]), Err(TableError::NoUsableBackend));
    }
}

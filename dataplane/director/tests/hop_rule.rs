//! chance's hop-list rule over random histories of state changes that keep the operator's
//! contract (docs/director-table.md): every backend that may still hold a row's connections is on
//! the row's hop list, and the first hop takes new connections whenever any backend does.
//! Also rendezvous' minimal disruption, for chance's rule and GLB's.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use chance_director::{glb_rows, Backend, BackendState, HopTable, Rows, TableError, MAX_HOPS};
use proptest::prelude::*;

const SEED: [u8; 16] = *b"hop-rule-seed-01";

/// Rows the histories follow (spread over the table).
fn sampled_rows() -> impl Iterator<Item = u16> {
    (0..48u32).map(|i| (i * 1361 % 65536) as u16)
}

fn accepting(b: &Backend) -> bool {
    b.healthy && matches!(b.state, BackendState::Active | BackendState::Filling)
}

#[derive(Debug, Clone, Copy)]
enum Change {
    /// The operator waits for the longest connection: every connection made before ends.
    Wait,
    /// inactive -> filling
    Add,
    /// filling -> active, only after a wait it spent filling and healthy throughout
    Activate,
    /// active or filling -> draining
    Drain,
    /// draining -> inactive, only after a wait in which it took no new connection
    Remove,
    /// draining -> filling
    Undrain,
    /// healthy -> unhealthy, at any time
    Fail,
    /// unhealthy -> healthy; an active backend comes back as filling
    Recover,
}

fn change() -> impl Strategy<Value = (Change, usize)> {
    let kind = prop_oneof![
        Just(Change::Wait),
        Just(Change::Add),
        Just(Change::Activate),
        Just(Change::Drain),
        Just(Change::Remove),
        Just(Change::Undrain),
        Just(Change::Fail),
        Just(Change::Recover),
    ];
    (kind, 0..16usize)
}

/// A fleet under the contract, and the backends that may hold each sampled row's connections.
struct History {
    backends: Vec<Backend>,
    /// Accepting without a break since before the last wait (may become active).
    filled: Vec<bool>,
    /// Draining, and no new connection, since before the last wait (may become inactive).
    drained: Vec<bool>,
    /// Per sampled row: every backend that was its first hop since the last wait.
    holders: Vec<HashSet<Ipv4Addr>>,
    rows: Vec<Vec<Ipv4Addr>>,
}

impl History {
    fn new(count: usize) -> Self {
        let backends: Vec<Backend> = (0..count)
            .map(|i| Backend {
                address: Ipv4Addr::new(10, 9, 0, i as u8 + 1),
                state: BackendState::Active,
                healthy: true,
            })
            .collect();
        let mut history = History {
            filled: vec![true; count],
            drained: vec![false; count],
            holders: vec![HashSet::new(); sampled_rows().count()],
            rows: Vec::new(),
            backends,
        };
        history.rows = history.build().unwrap();
        history.note_first_hops();
        history
    }

    fn build(&self) -> Result<Vec<Vec<Ipv4Addr>>, TableError> {
        sampled_rows()
            .map(|row| HopTable::row(&SEED, &self.backends, row).map(|h| h.as_slice().to_vec()))
            .collect()
    }

    fn note_first_hops(&mut self) {
        for (holders, hops) in self.holders.iter_mut().zip(&self.rows) {
            holders.insert(hops[0]);
            if let Some(b) = self.backends.iter().position(|b| b.address == hops[0]) {
                if !accepting(&self.backends[b]) {
                    // It took new connections: its drain starts over.
                    self.drained[b] = false;
                }
            }
        }
    }

    /// Applies `change` to backend `index` if the contract allows it now; a change whose table
    /// cannot be built is not applied (the directors keep the old table).
    fn apply(&mut self, change: Change, index: usize) {
        use BackendState::*;
        if let Change::Wait = change {
            for (holders, hops) in self.holders.iter_mut().zip(&self.rows) {
                *holders = HashSet::from([hops[0]]);
            }
            let first_hops: HashSet<Ipv4Addr> = self.rows.iter().map(|hops| hops[0]).collect();
            for (b, backend) in self.backends.iter().enumerate() {
                self.filled[b] = accepting(backend);
                // A first hop keeps taking new connections through the wait.
                self.drained[b] =
                    backend.state == Draining && !first_hops.contains(&backend.address);
            }
            return;
        }
        let index = index % self.backends.len();
        let before = self.backends[index];
        let mut after = before;
        match (change, before.state, before.healthy) {
            (Change::Add, Inactive, _) => after.state = Filling,
            (Change::Activate, Filling, true) if self.filled[index] => after.state = Active,
            (Change::Drain, Active | Filling, _) => after.state = Draining,
            (Change::Remove, Draining, _) if self.drained[index] => after.state = Inactive,
            (Change::Undrain, Draining, _) => after.state = Filling,
            (Change::Fail, _, true) => after.healthy = false,
            (Change::Recover, state, false) => {
                after.healthy = true;
                if state == Active {
                    after.state = Filling;
                }
            }
            _ => return,
        }
        self.backends[index] = after;
        match self.build() {
            Ok(rows) => self.rows = rows,
            Err(TableError::TooManyHops { .. } | TableError::NoUsableBackend) => {
                self.backends[index] = before;
                return;
            }
            Err(e) => panic!("{e}"),
        }
        if accepting(&after) != accepting(&before) {
            self.filled[index] = false;
        }
        if after.state != Draining {
            self.drained[index] = false;
        }
        self.note_first_hops();
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let any_accepting = self.backends.iter().any(accepting);
        for (row, (hops, holders)) in sampled_rows().zip(self.rows.iter().zip(&self.holders)) {
            prop_assert!(hops.len() <= MAX_HOPS);
            for holder in holders {
                prop_assert!(
                    hops.contains(holder),
                    "row {}: {} may hold connections but the hops are {:?} ({:?})",
                    row,
                    holder,
                    hops,
                    self.backends
                );
            }
            if any_accepting {
                let first = self.backends.iter().find(|b| b.address == hops[0]).unwrap();
                prop_assert!(
                    accepting(first),
                    "row {row}: first hop {first:?} takes no new connections"
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_backend_that_may_hold_a_rows_connections_is_on_its_hop_list(
        count in 2..10usize,
        changes in prop::collection::vec(change(), 1..40),
    ) {
        let mut history = History::new(count);
        history.check()?;
        for (change, index) in changes {
            history.apply(change, index);
            history.check()?;
        }
    }
}

fn fleet(count: u8) -> Vec<Backend> {
    (1..=count)
        .map(|i| Backend {
            address: Ipv4Addr::new(10, 8, 0, i),
            state: BackendState::Active,
            healthy: true,
        })
        .collect()
}

#[test]
fn removing_one_of_n_backends_changes_only_the_rows_it_was_on() {
    let all = fleet(10);
    let removed = all[4].address;
    let rest: Vec<Backend> = all
        .iter()
        .copied()
        .filter(|b| b.address != removed)
        .collect();
    let before = HopTable::build(&SEED, &all).unwrap();
    let after = HopTable::build(&SEED, &rest).unwrap();
    let glb_before = HopTable::glb(&SEED, &all).unwrap();
    let glb_after = HopTable::glb(&SEED, &rest).unwrap();
    let mut changed = 0;
    for row in 0..=u16::MAX {
        if before.hops(row).contains(&removed) {
            changed += 1;
        } else {
            assert_eq!(before.hops(row), after.hops(row), "row {row}");
        }
        if !glb_before.hops(row).contains(&removed) {
            assert_eq!(glb_before.hops(row), glb_after.hops(row), "GLB row {row}");
        }
    }
    // It was on about 2/10 of the rows (primary or secondary).
    assert!((12_000..14_300).contains(&changed), "{changed}");
}

#[test]
fn adding_one_backend_takes_about_one_in_n_plus_one_rows_as_primary() {
    let mut all = fleet(11);
    let added = all[10].address;
    let before = HopTable::build(&SEED, &all[..10]).unwrap();
    for state in [BackendState::Active, BackendState::Filling] {
        all[10].state = state;
        let after = HopTable::build(&SEED, &all).unwrap();
        let mut primary = 0;
        for row in 0..=u16::MAX {
            if after.hops(row)[0] == added {
                primary += 1;
                // The row's old first hop is still listed, so its connections are found.
                assert!(after.hops(row).contains(&before.hops(row)[0]), "row {row}");
            } else if !after.hops(row).contains(&added) {
                assert_eq!(before.hops(row), after.hops(row), "row {row}");
            }
        }
        let share = f64::from(primary) / 65536.0;
        assert!(
            (share - 1.0 / 11.0).abs() < 0.005,
            "{state:?}: primary in {primary} rows ({share})"
        );
    }
    let glb_rows = glb_rows(&SEED, &all).unwrap();
    let glb_primary = glb_rows.iter().filter(|r| r.primary == 10).count();
    assert!((f64::from(glb_primary as u32) / 65536.0 - 1.0 / 11.0).abs() < 0.005);
}

#[test]
fn a_table_that_would_need_more_than_the_hop_bound_is_refused() {
    let mut backends = fleet(9);
    for backend in &mut backends[..MAX_HOPS] {
        backend.state = BackendState::Draining;
    }
    // Two backends stay active: some row orders all seven draining ones ahead of both.
    match HopTable::build(&SEED, &backends) {
        Err(TableError::TooManyHops { needed, .. }) => assert_eq!(needed, MAX_HOPS + 1),
        other => panic!("expected TooManyHops, got {other:?}"),
    }
    backends[0].state = BackendState::Active;
    let table = HopTable::build(&SEED, &backends).unwrap();
    let longest = (0..=u16::MAX).map(|r| table.hops(r).len()).max().unwrap();
    assert_eq!(longest, MAX_HOPS);
}

#[test]
fn every_row_of_the_table_is_the_single_row_answer() {
    let mut backends = fleet(6);
    backends[1].state = BackendState::Draining;
    backends[2].healthy = false;
    backends[3].state = BackendState::Filling;
    let table = HopTable::build(&SEED, &backends).unwrap();
    for row in (0..=u16::MAX).step_by(97) {
        let single = HopTable::row(&SEED, &backends, row).unwrap();
        assert_eq!(table.hops(row), single.as_slice(), "row {row}");
    }
}

#[test]
fn the_worked_example_in_the_docs_gives_the_hop_lists_it_shows() {
    use BackendState::*;
    let seed = *b"worked-example-1";
    let states = [
        (Active, true),   // 10.0.0.1
        (Inactive, true), // 10.0.0.2
        (Filling, true),  // 10.0.0.3
        (Active, false),  // 10.0.0.4
        (Active, true),   // 10.0.0.5
        (Draining, true), // 10.0.0.6
    ];
    let mut backends: Vec<Backend> = states
        .iter()
        .zip(1..)
        .map(|(&(state, healthy), i)| Backend {
            address: Ipv4Addr::new(10, 0, 0, i),
            state,
            healthy,
        })
        .collect();
    let hosts = |last: &[u8]| -> Vec<Ipv4Addr> {
        last.iter().map(|&i| Ipv4Addr::new(10, 0, 0, i)).collect()
    };
    let all: Vec<Ipv4Addr> = backends.iter().map(|b| b.address).collect();
    let order: Vec<Ipv4Addr> = chance_director::rendezvous::order(&seed, 0, &all)
        .into_iter()
        .map(|i| all[i])
        .collect();
    assert_eq!(order, hosts(&[6, 4, 3, 5, 1, 2]));
    let row = HopTable::row(&seed, &backends, 0).unwrap();
    assert_eq!(row.as_slice(), hosts(&[3, 6, 4, 5]));
    let glb = glb_rows(&seed, &backends).unwrap()[0];
    assert_eq!((glb.primary, glb.secondary), (3, 5)); // 10.0.0.4, then 10.0.0.6
                                                      // With only 10.0.0.6 changed (draining), chance's row is GLB's.
    for (backend, &(state, _)) in backends.iter_mut().zip(&states) {
        backend.healthy = true;
        backend.state = if state == Draining { Draining } else { Active };
    }
    assert_eq!(
        HopTable::row(&seed, &backends, 0).unwrap().as_slice(),
        hosts(&[4, 6])
    );
    let glb = glb_rows(&seed, &backends).unwrap()[0];
    assert_eq!((glb.primary, glb.secondary), (3, 5));
}

//! GLB compatibility, pinned by fixtures: GLB's published rendezvous vectors, and the binary
//! tables `glb-director-cli build-config` wrote for the inputs in `fixtures/glb_cli/`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use chance_director::glb_binary::{decode, encode, GlbBinaryError};
use chance_director::glb_json::parse;
use chance_director::rendezvous::{order, row_seed, score};
use chance_director::{glb_rows, HopTable, Rows};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn key(hex_text: &str) -> [u8; 16] {
    let mut key = [0u8; 16];
    hex::decode_to_slice(hex_text, &mut key).unwrap();
    key
}

fn expected_outputs() -> Value {
    serde_json::from_str(&fixture("glb_cli/expected.json")).unwrap()
}

const CLI_INPUTS: [&str; 4] = [
    "two_tables.json",
    "one_change.json",
    "many_changes.json",
    "large.json",
];

#[test]
fn row_seeds_scores_and_orders_match_glbs_published_vectors() {
    let vectors: Value = serde_json::from_str(&fixture("glb_rendezvous_vectors.json")).unwrap();
    let seed = key(vectors["seed"].as_str().unwrap());
    let backends: Vec<Ipv4Addr> = vectors["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().parse().unwrap())
        .collect();
    let rows = vectors["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for case in rows {
        let row = case["row"].as_u64().unwrap() as u16;
        assert_eq!(
            hex::encode(row_seed(&seed, row)),
            case["row_seed"].as_str().unwrap(),
            "row seed of row {row}"
        );
        for (backend, expected) in backends.iter().zip(case["scores"].as_array().unwrap()) {
            // GLB prints a score as its output bytes: compared, they read big-endian.
            let expected = u64::from_str_radix(expected.as_str().unwrap(), 16).unwrap();
            assert_eq!(
                score(&seed, row, *backend),
                expected,
                "{backend} in row {row}"
            );
        }
        let expected_order: Vec<Ipv4Addr> = case["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap().parse().unwrap())
            .collect();
        let got: Vec<Ipv4Addr> = order(&seed, row, &backends)
            .into_iter()
            .map(|i| backends[i])
            .collect();
        assert_eq!(got, expected_order, "order of row {row}");
    }
}

#[test]
fn the_binary_table_is_byte_for_byte_what_glb_director_cli_writes_row_for_row() {
    let expected = expected_outputs();
    for input in CLI_INPUTS {
        let config = parse(&fixture(&format!("glb_cli/{input}"))).unwrap();
        let bytes = encode(&config).unwrap();
        let want = &expected["outputs"][input];
        assert_eq!(bytes.len() as u64, want["len"].as_u64().unwrap(), "{input}");
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            want["sha256"].as_str().unwrap(),
            "{input}: SHA-256 of the binary table"
        );
        let read = decode(&bytes).unwrap();
        for (t, table) in config.tables.iter().enumerate() {
            let backends = table.backend_list();
            let rows = &read.tables[t].rows;
            let addresses: Vec<Ipv4Addr> = backends.iter().map(|b| b.address).collect();
            let hop_table = HopTable::from_glb_rows(&addresses, rows).unwrap();
            for (row, per_table) in want["rows"].as_object().unwrap() {
                let row: u16 = row.parse().unwrap();
                let pair = &per_table[t];
                let (primary, secondary) = (
                    pair[0].as_u64().unwrap() as u32,
                    pair[1].as_u64().unwrap() as u32,
                );
                let got = rows[usize::from(row)];
                assert_eq!(
                    (got.primary, got.secondary),
                    (primary, secondary),
                    "{input} table {t} row {row}"
                );
                let hops = [
                    backends[primary as usize].address,
                    backends[secondary as usize].address,
                ];
                assert_eq!(hop_table.hops(row), hops, "{input} table {t} row {row}");
            }
        }
    }
}

#[test]
fn glbs_rows_and_the_glb_table_agree_with_the_binary() {
    let config = parse(&fixture("glb_cli/one_change.json")).unwrap();
    let read = decode(&encode(&config).unwrap()).unwrap();
    for (t, table) in config.tables.iter().enumerate() {
        let backends = table.backend_list();
        let rows = glb_rows(&table.seed, &backends).unwrap();
        assert_eq!(read.tables[t].rows, rows, "table {t}");
        let addresses: Vec<Ipv4Addr> = backends.iter().map(|b| b.address).collect();
        assert!(
            HopTable::glb(&table.seed, &backends).unwrap()
                == HopTable::from_glb_rows(&addresses, &rows).unwrap()
        );
    }
}

#[test]
fn reading_a_binary_table_gives_back_its_backends_binds_and_key() {
    let config = parse(&fixture("glb_cli/many_changes.json")).unwrap();
    let read = decode(&encode(&config).unwrap()).unwrap();
    let (table, written) = (&read.tables[0], &config.tables[0]);
    assert_eq!(table.hash_key, written.hash_key);
    let states: Vec<(u16, bool)> = table
        .backends
        .iter()
        .map(|b| (b.state, b.healthy))
        .collect();
    // filling 0, active 1, draining and inactive both 2; a backend without `healthy` is down.
    assert_eq!(
        states,
        [
            (1, true),
            (2, true),
            (0, true),
            (1, false),
            (2, false),
            (0, false),
            (2, true),
            (1, false),
            (1, true)
        ]
    );
    for (slot, backend) in table.backends.iter().zip(&written.backends) {
        assert_eq!(slot.address, std::net::IpAddr::V4(backend.address));
    }
    let binds: Vec<_> = table.binds.iter().map(|b| b.bind().unwrap()).collect();
    assert_eq!(binds, written.binds);
}

#[test]
fn a_binary_table_is_refused_when_damaged() {
    let config = parse(&fixture("glb_cli/two_tables.json")).unwrap();
    let bytes = encode(&config).unwrap();
    assert_eq!(
        decode(&bytes[..100]),
        Err(GlbBinaryError::WrongLength {
            expected: bytes.len() as u64,
            actual: 100
        })
    );
    assert_eq!(decode(&bytes[..10]), Err(GlbBinaryError::Truncated));
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(decode(&bad), Err(GlbBinaryError::BadMagic));
    let mut bad = bytes.clone();
    bad[4..8].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(decode(&bad), Err(GlbBinaryError::BigEndian));
    let mut bad = bytes.clone();
    bad[4..8].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(decode(&bad), Err(GlbBinaryError::UnsupportedVersion(3)));
    // Row 0 of table 0 names backend 7 of 3.
    let mut bad = bytes;
    let row0 = 24 + 4 + 256 * 24 + 4 + 256 * 28 + 16;
    bad[row0..row0 + 4].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(
        decode(&bad),
        Err(GlbBinaryError::RowOutOfRange { table: 0, row: 0 })
    );
}

#[test]
fn with_at_most_one_backend_changed_chances_hop_lists_are_glbs_rows() {
    for input in ["two_tables.json", "one_change.json"] {
        let config = parse(&fixture(&format!("glb_cli/{input}"))).unwrap();
        for (t, table) in config.tables.iter().enumerate() {
            let backends = table.backend_list();
            let chance = HopTable::build(&table.seed, &backends).unwrap();
            let glb = HopTable::glb(&table.seed, &backends).unwrap();
            assert!(chance == glb, "{input} table {t}");
        }
    }
}

//! The `chance-fixtures` binary writes the selftest pcap and config into the given directory.

use std::process::Command;

use chance_testkit::selftest::{config_toml, MATRIX};

#[test]
fn writes_selftest_pcap_and_toml() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chance-fixtures-bin");
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_chance-fixtures"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let pcap = std::fs::read(dir.join("selftest.pcap")).unwrap();
    assert_eq!(
        &pcap[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "classic pcap, little-endian, µs"
    );
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut at = 24;
    for case in MATRIX {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(pcap[at + 12..at + 16].try_into().unwrap()) as usize;
        assert_eq!((incl, orig), (case.input_len(), case.input_len()));
        assert_eq!(
            &pcap[at + 16..at + 16 + incl],
            &case.input()[..],
            "{}",
            case.name()
        );
        at += 16 + incl;
    }
    assert_eq!(at, pcap.len());

    let toml = std::fs::read_to_string(dir.join("selftest.toml")).unwrap();
    assert_eq!(toml, config_toml());
}

#[test]
fn refuses_missing_directory_argument() {
    let out = Command::new(env!("CARGO_BIN_EXE_chance-fixtures"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

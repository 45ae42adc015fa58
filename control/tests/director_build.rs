//! `chancectl director build`: GLB's binary forwarding table from its JSON, byte for byte as
//! glb-director-cli writes it, replaced atomically; bad input exits 2 and leaves the old table.

mod common;

use common::{chancectl, scratch, stderr, stdout};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn glb_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dataplane/director/tests/fixtures/glb_cli")
        .join(name)
}

/// The SHA-256 glb-director-cli's output for fixture `name` has.
fn glb_digest(name: &str) -> String {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(glb_fixture("expected.json")).unwrap())
            .unwrap();
    expected["outputs"][name]["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn build(input: &Path, output: &Path) -> std::process::Output {
    chancectl([
        "director".as_ref(),
        "build".as_ref(),
        "--glb-json".as_ref(),
        input.as_os_str(),
        "--out".as_ref(),
        output.as_os_str(),
    ])
}

/// Files in `dir` other than `keep`.
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !keep.contains(&name.as_str()))
        .collect()
}

#[test]
fn build_writes_what_glb_director_cli_writes() {
    let dir = scratch("director_build_glb_bytes");
    for name in ["two_tables.json", "many_changes.json"] {
        let output = dir.join("table.bin");
        let out = build(&glb_fixture(name), &output);
        assert!(out.status.success(), "{}", stderr(&out));
        let bytes = std::fs::read(&output).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            glb_digest(name),
            "{name}"
        );
        assert!(
            stdout(&out).contains("GLB binary format version 2"),
            "{}",
            stdout(&out)
        );
        assert_eq!(others(&dir, &["table.bin"]), Vec::<String>::new());
    }
}

#[test]
fn bad_input_exits_2_naming_the_key_and_keeps_the_old_table() {
    let dir = scratch("director_build_bad_input");
    let output = dir.join("table.bin");
    std::fs::write(&output, b"the old table").unwrap();
    let input = dir.join("bad.json");
    let text = std::fs::read_to_string(glb_fixture("two_tables.json"))
        .unwrap()
        .replacen("\"state\": \"active\"", "\"state\": \"actve\"", 1);
    std::fs::write(&input, text).unwrap();
    let out = build(&input, &output);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains(&format!("{}: ", input.display()))
            && message.contains("tables[0].backends[0].state: unknown variant `actve`"),
        "{message}"
    );
    assert_eq!(std::fs::read(&output).unwrap(), b"the old table");
    assert_eq!(
        others(&dir, &["table.bin", "bad.json"]),
        Vec::<String>::new()
    );

    let out = build(&dir.join("missing.json"), &output);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("missing.json: cannot read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unwritable_output_is_an_error_but_not_bad_input() {
    let dir = scratch("director_build_unwritable");
    let out = build(
        &glb_fixture("two_tables.json"),
        &dir.join("no/such/dir/table.bin"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot write"), "{}", stderr(&out));
}

//! The checks the fuzzer runs on every input, shared with the property tests: the sources live
//! beside them, in `dataplane/engine/tests/contract/mod.rs` and
//! `dataplane/director/tests/contract/mod.rs`.
#![forbid(unsafe_code)]

#[path = "../../dataplane/engine/tests/contract/mod.rs"]
mod contract;

#[path = "../../dataplane/director/tests/contract/mod.rs"]
mod director_contract;

pub use contract::check_frame;

/// The director's checks on one frame.
pub fn check_director_frame(data: &[u8]) {
    let _ = director_contract::check_frame(data);
}

#[cfg(test)]
mod tests {
    #[test]
    fn seed_corpus_passes_the_fuzz_checks() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/engine");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("seed corpus directory") {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            super::check_frame(&data);
            seen += 1;
        }
        assert!(
            seen >= 100,
            "the seed corpus holds the fixtures' frames, found {seen}"
        );
    }

    #[test]
    fn director_seed_corpus_passes_the_fuzz_checks() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/director");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("director seed corpus directory") {
            let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
            super::check_director_frame(&data);
            seen += 1;
        }
        assert!(seen >= 10, "the director's seed corpus holds its fixtures, found {seen}");
    }
}

//! The checks the fuzzer runs on every input, shared with the engine's property tests: the
//! source lives beside them, in `dataplane/engine/tests/contract/mod.rs`.
#![forbid(unsafe_code)]

#[path = "../../dataplane/engine/tests/contract/mod.rs"]
mod contract;

pub use contract::check_frame;

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
}

//! The checks the fuzzer runs on every input. `check_frame` and `check_director_frame` are shared
//! with the property tests (their sources live beside them, in
//! `dataplane/engine/tests/contract/mod.rs` and `dataplane/director/tests/contract/mod.rs`);
//! `check_capture` runs chancectl's capture reader and header decoder (control/src/pcapio.rs and
//! control/src/decode.rs, compiled here from their files, without the rest of the control crate
//! and its DPDK dependencies) over an untrusted file.
#![forbid(unsafe_code)]

#[path = "../../dataplane/engine/tests/contract/mod.rs"]
mod contract;
#[allow(dead_code)]
#[path = "../../control/src/decode.rs"]
mod decode;
#[allow(dead_code)]
#[path = "../../control/src/pcapio.rs"]
mod pcapio;

#[path = "../../dataplane/director/tests/contract/mod.rs"]
mod director_contract;

pub use contract::check_frame;

/// The director's checks on one frame.
pub fn check_director_frame(data: &[u8]) {
    let _ = director_contract::check_frame(data);
}

/// Frames read from one input at most (a reader that stops advancing would show as a timeout).
const MAX_FRAMES: usize = 100_000;

/// Reads `data` as a capture file: every frame it yields is decoded, and nothing may panic; a bad
/// file or record is an error the reader returns.
pub fn check_capture(data: &[u8]) {
    let Ok(mut reader) = pcapio::CaptureReader::new(std::io::Cursor::new(data)) else {
        return;
    };
    let mut frame = Vec::new();
    for _ in 0..MAX_FRAMES {
        match reader.next_frame(&mut frame) {
            Ok(Some(_)) => {
                // chanced's default GUE port, and the file's own choice elsewhere.
                let _ = decode::headers(&frame, 19523);
                let _ = decode::headers(&frame, 6080);
            }
            Ok(None) | Err(_) => return,
        }
    }
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

    #[test]
    fn capture_seed_corpus_passes_the_fuzz_checks() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/capture");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("seed corpus directory") {
            let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
            super::check_capture(&data);
            // Every prefix too: a file cut anywhere is an error, never a panic.
            for cut in (0..data.len()).step_by(7) {
                super::check_capture(&data[..cut]);
            }
            seen += 1;
        }
        assert!(seen >= 8, "the capture seed corpus has {seen} files");
    }

    #[test]
    fn the_capture_seeds_are_read_as_captures() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/capture");
        let path = std::path::Path::new(dir).join("pcapng_ethernet_frames.pcapng");
        let mut reader = super::pcapio::CaptureReader::open(&path).expect("a pcapng file");
        let mut frame = Vec::new();
        let mut frames = 0;
        while reader.next_frame(&mut frame).expect("a good record").is_some() {
            assert!(!super::decode::headers(&frame, 19523).is_empty());
            frames += 1;
        }
        assert_eq!(frames, 41, "40 enhanced packets and one simple packet");
    }
}

//! `chancectl replay`'s outputs and limits: a failed run changes no output file, records up to
//! `pcapio::MAX_RECORD_BYTES` are replayed and written (the output snaplen covers them), longer
//! ones are refused naming the limit, and the exit status says whose fault a failure is (1: the
//! run or the capture, 2: the command line).

mod common;

use chance_control::pcapio::{CaptureReader, MAX_RECORD_BYTES};
use common::*;
use pcap_file::DataLink;
use std::path::{Path, PathBuf};
use std::process::Output;

/// `chancectl replay` with the common config, verdicts to `dir/out.jsonl` and accepted frames to
/// `dir/a.pcap`.
fn replay_into(dir: &Path, input: &Path) -> Output {
    replay_with(dir, input, "--accepted")
}

/// The same, frames of `which` (`--accepted`, `--forwarded`) to `dir/a.pcap`.
fn replay_with(dir: &Path, input: &Path, which: &str) -> Output {
    let config = dir.join("chance.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let pcap = dir.join("a.pcap");
    chancectl_replay(
        &config,
        input,
        &dir.join("out.jsonl"),
        &[which.as_ref(), pcap.as_os_str()],
    )
}

/// A classic pcap written by hand (pcap-file's writer refuses frames over its snaplen):
/// microsecond timestamps, Ethernet, snaplen 65535 whatever the frames' lengths.
fn write_raw_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut bytes = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    for word in [0u32, 0, 65_535, 1] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    for (i, frame) in frames.iter().enumerate() {
        let len = u32::try_from(frame.len()).unwrap();
        for word in [1_700_000_000 + i as u32, 0, len, len] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(frame);
    }
    std::fs::write(path, bytes).unwrap();
}

/// A GUE frame padded with zeros to `len` bytes: of a static flow of CONFIG (accepted), or of
/// another flow with one more hop (forwarded, padding and all).
fn long_frame(len: usize, owned: bool) -> Vec<u8> {
    let mut frame = if owned {
        gue_frame(0, &[])
    } else {
        gue_frame_with(0, &[[192, 0, 2, 20]], &unowned_inner_packet())
    };
    frame.resize(len, 0);
    frame
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

#[test]
fn a_failed_replay_leaves_every_output_as_it_was() {
    let dir = scratch("replay_failed_outputs");
    std::fs::write(dir.join("out.jsonl"), "an earlier run's verdicts\n").unwrap();
    std::fs::write(dir.join("a.pcap"), "an earlier run's pcap").unwrap();
    let input = dir.join("cut.pcap");
    write_pcap(
        &input,
        &[gue_frame(0, &[]), arp_frame()],
        DataLink::ETHERNET,
    );
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&input, &bytes[..bytes.len() - 5]).unwrap();

    let out = replay_into(&dir, &input);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("frame 1") && err.contains("truncated"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out.jsonl")).unwrap(),
        "an earlier run's verdicts\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("a.pcap")).unwrap(),
        "an earlier run's pcap"
    );
    assert_eq!(leftovers(&dir), Vec::<PathBuf>::new(), "temporary files");

    // The whole capture: both outputs replaced.
    std::fs::write(&input, &bytes).unwrap();
    let out = replay_into(&dir, &input);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read_verdicts(&dir.join("out.jsonl")).len(), 2);
    assert_eq!(read_pcap(&dir.join("a.pcap")).len(), 1);
    assert_eq!(leftovers(&dir), Vec::<PathBuf>::new(), "temporary files");
}

#[test]
fn records_of_several_mib_are_replayed_and_the_output_snaplen_covers_them() {
    let dir = scratch("replay_long_records");
    let input = dir.join("long.pcap");
    // 1 MB was refused by the output pcap's snaplen, 9 MiB by the reader's 8 MB buffer.
    let lengths = [1_000_000, 9 << 20];
    let frames: Vec<_> = lengths.iter().map(|&l| long_frame(l, false)).collect();
    write_raw_pcap(&input, &frames);
    let out = replay_with(&dir, &input, "--forwarded");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = read_verdicts(&dir.join("out.jsonl"));
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.verdict == "forward"), "{lines:?}");

    let accepted = std::fs::read(dir.join("a.pcap")).unwrap();
    let snaplen = u32::from_ne_bytes(accepted[16..20].try_into().unwrap());
    let mut reader = CaptureReader::new(&accepted[..]).unwrap();
    let mut buf = Vec::new();
    let mut longest = 0;
    for line in &lines {
        reader.next_frame(&mut buf).unwrap().expect("a frame");
        assert_eq!(hex::encode(&buf), *line.output.as_ref().unwrap());
        longest = longest.max(buf.len());
    }
    assert!(reader.next_frame(&mut buf).unwrap().is_none());
    assert_eq!(
        snaplen as usize, longest,
        "the snaplen is the longest frame"
    );
}

#[test]
fn a_record_over_the_limit_is_refused_naming_the_limit() {
    let dir = scratch("replay_record_limit");
    let input = dir.join("huge.pcap");
    // The limit counts the record's 16-byte header: this frame is just too long, one shorter
    // is not (replayed here first).
    write_raw_pcap(&input, &[long_frame(MAX_RECORD_BYTES - 16, true)]);
    let out = replay_into(&dir, &input);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    write_raw_pcap(&input, &[long_frame(MAX_RECORD_BYTES - 15, true)]);
    let out = replay_into(&dir, &input);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "frame 0: a record is longer than the limit of {MAX_RECORD_BYTES} bytes (16 MiB)"
        )),
        "{err}"
    );
    assert_eq!(
        read_verdicts(&dir.join("out.jsonl")).len(),
        1,
        "the earlier run's"
    );
}

#[test]
fn paths_that_cannot_be_opened_are_usage_errors_and_bad_captures_run_failures() {
    let dir = scratch("replay_exit_status");
    let missing = dir.join("missing.pcap");
    let out = replay_into(&dir, &missing);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&missing.display().to_string()),
        "{}",
        stderr(&out)
    );

    let input = dir.join("in.pcap");
    write_pcap(&input, &[arp_frame()], DataLink::ETHERNET);
    let out = chancectl_replay(
        &dir.join("chance.toml"),
        &input,
        &dir.join("no-such-directory/out.jsonl"),
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    std::fs::write(&input, b"not a capture").unwrap();
    let out = replay_into(&dir, &input);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let help = chancectl(["replay", "--help"]);
    assert!(stdout(&help).contains("Exit status:"), "{}", stdout(&help));
}

//! `chancectl replay` and the library's `replay`: one verdict line per frame, classic and pcapng
//! input, output pcaps, and clean errors on bad captures.

mod common;

use chance_control::pcapio::{CaptureError, CaptureReader, EthernetPcapWriter, Format};
use chance_control::{config, replay, ReplayError, ReplayOutputs};
use common::*;
use pcap_file::{DataLink, TsResolution};
use std::path::{Path, PathBuf};
use std::process::Output;

struct Run {
    dir: PathBuf,
    out: Output,
}

impl Run {
    fn verdicts(&self) -> Vec<Line> {
        read_verdicts(&self.dir.join("out.jsonl"))
    }
}

/// Runs `chancectl replay` on `input` with the common config, verdicts to `dir/out.jsonl`, and
/// with `pcaps` = (accepted, forwarded) file names in `dir`.
fn run_replay(dir: &Path, input: &Path, pcaps: Option<(&str, &str)>) -> Run {
    let config = dir.join("chance.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut args = vec![
        "replay".into(),
        "--config".into(),
        config.into_os_string(),
        "--pcap".into(),
        input.as_os_str().to_owned(),
        "--verdicts".into(),
        dir.join("out.jsonl").into_os_string(),
    ];
    if let Some((accepted, forwarded)) = pcaps {
        args.push("--accepted".into());
        args.push(dir.join(accepted).into_os_string());
        args.push("--forwarded".into());
        args.push(dir.join(forwarded).into_os_string());
    }
    Run {
        dir: dir.to_owned(),
        out: chancectl(args),
    }
}

fn three_frames() -> Vec<Vec<u8>> {
    vec![arp_frame(), non_local_frame(), truncated_frame()]
}

/// Properties every verdict line has, whatever the engine decides.
fn assert_consistent(line: &Line, input: &[u8]) {
    match line.verdict.as_str() {
        "drop" => {
            assert!(line.output.is_none(), "{line:?}");
            assert!(line.reason.is_some(), "a drop names its counter: {line:?}");
        }
        "pass" => assert_eq!(line.output.as_deref(), Some(hex::encode(input).as_str())),
        "accept" | "forward" => assert!(line.output.is_some(), "{line:?}"),
        other => panic!("unknown verdict {other}"),
    }
    if let Some(reason) = &line.reason {
        assert!(
            chance_engine::Counter::from_name(reason).is_some(),
            "{reason}"
        );
    }
}

#[test]
fn replay_writes_one_verdict_line_per_frame_in_input_order() {
    let dir = scratch("replay_three_frames");
    let frames = three_frames();
    let input = dir.join("in.pcap");
    write_pcap(&input, &frames, DataLink::ETHERNET);
    let run = run_replay(&dir, &input, None);
    assert_eq!(run.out.status.code(), Some(0), "{}", stderr(&run.out));

    let lines = run.verdicts();
    assert_eq!(lines.len(), 3);
    for (i, (line, frame)) in lines.iter().zip(&frames).enumerate() {
        assert_eq!(line.index, i as u64);
        assert_consistent(line, frame);
    }
    // Not for chance (ARP, another address, shorter than the outer headers): handed on
    // unchanged, no counter.
    for line in &lines {
        assert_eq!(line.verdict, "pass");
        assert_eq!(line.reason, None);
        assert_eq!(
            line.output.as_deref(),
            Some(hex::encode(&frames[line.index as usize]).as_str())
        );
    }
}

#[test]
fn verdict_lines_are_compact_json_with_null_reason_for_a_pass() {
    let dir = scratch("replay_line_format");
    let frame = arp_frame();
    let input = dir.join("in.pcap");
    write_pcap(&input, std::slice::from_ref(&frame), DataLink::ETHERNET);
    let run = run_replay(&dir, &input, None);
    assert_eq!(run.out.status.code(), Some(0), "{}", stderr(&run.out));
    let text = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
    assert_eq!(
        text,
        format!(
            "{{\"index\":0,\"verdict\":\"pass\",\"reason\":null,\"output\":\"{}\"}}\n",
            hex::encode(&frame)
        )
    );
}

#[test]
fn counter_summary_and_verdict_tally_go_to_stderr() {
    let dir = scratch("replay_summary");
    let input = dir.join("in.pcap");
    write_pcap(&input, &three_frames(), DataLink::ETHERNET);
    let run = run_replay(&dir, &input, None);
    assert_eq!(run.out.status.code(), Some(0));
    let err = stderr(&run.out);
    let lines = run.verdicts();
    let tally = |v: &str| lines.iter().filter(|l| l.verdict == v).count();
    assert!(
        err.starts_with(&format!(
            "frames 3: accept {}, forward {}, pass {}, drop {}\n",
            tally("accept"),
            tally("forward"),
            tally("pass"),
            tally("drop")
        )),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l == "processed_packets_total 3"),
        "{err}"
    );
    // Every other line is a non-zero counter: "name value".
    for line in err.lines().skip(1) {
        let (name, value) = line.split_once(' ').unwrap();
        assert!(chance_engine::Counter::from_name(name).is_some(), "{line}");
        assert_ne!(value.parse::<u64>().unwrap(), 0, "{line}");
    }
    assert!(stdout(&run.out).is_empty());
}

#[test]
fn pcapng_input_gives_the_same_verdicts_as_classic() {
    let dir = scratch("replay_pcapng");
    let frames = vec![
        arp_frame(),
        non_local_frame(),
        gue_frame(0, &[]),
        gue_frame(0, &[[192, 0, 2, 20]]),
        truncated_frame(),
    ];
    let classic = dir.join("in.pcap");
    let pcapng = dir.join("in.pcapng");
    write_pcap(&classic, &frames, DataLink::ETHERNET);
    write_pcapng(&pcapng, &frames);

    let a = run_replay(&dir, &classic, Some(("a-classic.pcap", "f-classic.pcap")));
    assert_eq!(a.out.status.code(), Some(0), "{}", stderr(&a.out));
    let from_classic = std::fs::read(dir.join("out.jsonl")).unwrap();
    let b = run_replay(&dir, &pcapng, Some(("a-ng.pcap", "f-ng.pcap")));
    assert_eq!(b.out.status.code(), Some(0), "{}", stderr(&b.out));
    let from_pcapng = std::fs::read(dir.join("out.jsonl")).unwrap();

    assert_eq!(
        from_classic.split(|&b| b == b'\n').count(),
        frames.len() + 1
    );
    assert_eq!(
        String::from_utf8(from_classic).unwrap(),
        String::from_utf8(from_pcapng).unwrap()
    );
    assert_eq!(stderr(&a.out), stderr(&b.out));
    // Same output frames with the same timestamps (the pcapng has nanosecond resolution).
    for (x, y) in [
        ("a-classic.pcap", "a-ng.pcap"),
        ("f-classic.pcap", "f-ng.pcap"),
    ] {
        assert_eq!(read_pcap(&dir.join(x)), read_pcap(&dir.join(y)));
    }
}

#[test]
fn accepted_and_forwarded_pcaps_hold_those_frames_with_input_timestamps() {
    let dir = scratch("replay_output_pcaps");
    let frames = vec![
        gue_frame(0, &[]),
        arp_frame(),
        gue_frame_with(0, &[[192, 0, 2, 20]], &unowned_inner_packet()),
        gue_frame(1, &[[192, 0, 2, 20]]),
        non_local_frame(),
        gue_frame_with(0, &[[192, 0, 2, 21]], &unowned_inner_packet()),
    ];
    let input = dir.join("in.pcap");
    write_pcap(&input, &frames, DataLink::ETHERNET);
    let run = run_replay(&dir, &input, Some(("a.pcap", "f.pcap")));
    assert_eq!(run.out.status.code(), Some(0), "{}", stderr(&run.out));
    let lines = run.verdicts();
    assert_eq!(lines.len(), frames.len());
    for (line, frame) in lines.iter().zip(&frames) {
        assert_consistent(line, frame);
    }
    for (verdict, file) in [("accept", "a.pcap"), ("forward", "f.pcap")] {
        let written = read_pcap(&dir.join(file));
        let expected: Vec<_> = lines
            .iter()
            .filter(|l| l.verdict == verdict)
            .map(|l| {
                (
                    timestamp(l.index as usize),
                    hex::decode(l.output.as_ref().unwrap()).unwrap(),
                )
            })
            .collect();
        assert!(!written.is_empty(), "{file}");
        assert_eq!(written, expected, "{file}");
    }
}

#[test]
fn static_flows_from_the_config_are_owned_by_the_engine() {
    let dir = scratch("replay_static_flows");
    let hop = [192, 0, 2, 20];
    let frames = vec![
        gue_frame(0, &[hop]),
        gue_frame_with(0, &[hop], &unowned_inner_packet()),
    ];
    let input = dir.join("in.pcap");
    write_pcap(&input, &frames, DataLink::ETHERNET);
    let run = run_replay(&dir, &input, None);
    assert_eq!(run.out.status.code(), Some(0), "{}", stderr(&run.out));
    let lines = run.verdicts();
    let decided: Vec<_> = lines
        .iter()
        .map(|l| (l.verdict.as_str(), l.reason.as_deref()))
        .collect();
    assert_eq!(
        decided,
        [
            ("accept", Some("accepted_packets_total_established")),
            ("forward", Some("forwarded_packets_total_gue")),
        ]
    );
    // Accepted: the original Ethernet header and the inner packet.
    let mut decapsulated = frames[0][..14].to_vec();
    decapsulated.extend_from_slice(&inner_packet());
    assert_eq!(lines[0].output, Some(hex::encode(decapsulated)));
    // Forwarded: from this host to the hop, with next_hop advanced.
    let forwarded = hex::decode(lines[1].output.as_ref().unwrap()).unwrap();
    assert_eq!(forwarded[26..30], [192, 0, 2, 10]);
    assert_eq!(forwarded[30..34], hop);
    assert_eq!(forwarded[48], 1);
}

#[test]
fn verdicts_dash_writes_to_stdout() {
    let dir = scratch("replay_stdout");
    let input = dir.join("in.pcap");
    write_pcap(&input, &three_frames(), DataLink::ETHERNET);
    let config = dir.join("chance.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = chancectl_replay(&config, &input, Path::new("-"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 3);
}

/// Asserts exit status 1 and an error that starts by naming `input`; returns stderr.
fn assert_capture_error(run: &Run, input: &Path) -> String {
    let err = stderr(&run.out);
    assert_eq!(run.out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!("chancectl: {}: ", input.display())),
        "{err}"
    );
    err
}

#[test]
fn empty_pcap_exits_1_naming_the_file() {
    let dir = scratch("replay_empty");
    let input = dir.join("empty.pcap");
    std::fs::write(&input, b"").unwrap();
    let err = assert_capture_error(&run_replay(&dir, &input, None), &input);
    assert!(err.contains("empty file"), "{err}");
}

#[test]
fn garbage_pcap_exits_1_naming_the_file() {
    let dir = scratch("replay_garbage");
    let input = dir.join("garbage.pcap");
    std::fs::write(&input, b"this is not a capture file at all\n").unwrap();
    let err = assert_capture_error(&run_replay(&dir, &input, None), &input);
    assert!(err.contains("not a pcap or pcapng capture"), "{err}");
}

#[test]
fn truncated_pcap_exits_1_and_writes_no_verdicts() {
    let dir = scratch("replay_truncated");
    let input = dir.join("cut.pcap");
    write_pcap(&input, &three_frames(), DataLink::ETHERNET);
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&input, &bytes[..bytes.len() - 5]).unwrap();
    let run = run_replay(&dir, &input, None);
    let err = assert_capture_error(&run, &input);
    assert!(
        err.contains("frame 2") && err.contains("truncated"),
        "{err}"
    );
    assert!(
        !run.dir.join("out.jsonl").exists(),
        "a failed run writes no verdicts"
    );
}

#[test]
fn header_only_pcap_replays_zero_frames() {
    let dir = scratch("replay_header_only");
    let input = dir.join("none.pcap");
    write_pcap(&input, &[], DataLink::ETHERNET);
    let run = run_replay(&dir, &input, None);
    assert_eq!(run.out.status.code(), Some(0), "{}", stderr(&run.out));
    assert!(run.verdicts().is_empty());
}

#[test]
fn non_ethernet_frames_are_counted_and_reported() {
    let dir = scratch("replay_non_ethernet");
    let input = dir.join("raw.pcap");
    // LINKTYPE_RAW: bare IPv4 packets.
    write_pcap(&input, &[inner_packet(), inner_packet()], DataLink::RAW);
    let run = run_replay(&dir, &input, None);
    let err = stderr(&run.out);
    assert_eq!(run.out.status.code(), Some(1), "{err}");
    assert!(err.contains("not replayed (not Ethernet) 2"), "{err}");
    assert!(
        err.contains(&format!(
            "chancectl: {}: 2 frame(s) not replayed: link type is not Ethernet (first: frame 0",
            input.display()
        )),
        "{err}"
    );
    assert!(run.verdicts().is_empty());
}

fn lib_outputs(dir: &Path) -> ReplayOutputs {
    ReplayOutputs {
        verdicts: dir.join("out.jsonl"),
        accepted: Some(dir.join("a.pcap")),
        forwarded: Some(dir.join("f.pcap")),
    }
}

#[test]
fn library_replay_reports_the_tally_and_counters() {
    let dir = scratch("replay_lib");
    let input = dir.join("in.pcap");
    write_pcap(&input, &three_frames(), DataLink::ETHERNET);
    let config = config::parse(CONFIG, "inline").unwrap();
    let summary = replay(&config, &input, &lib_outputs(&dir)).unwrap();
    assert_eq!(summary.frames, 3);
    let v = summary.verdicts;
    assert_eq!(v.accept + v.forward + v.pass + v.drop, 3);
    assert!(v.pass >= 2);
    assert_eq!(
        summary
            .counters
            .get(chance_engine::Counter::ProcessedPacketsTotal),
        3
    );
    assert_eq!(summary.non_ethernet, 0);
    assert!(read_pcap(&dir.join("a.pcap")).len() as u64 == v.accept);
    assert!(read_pcap(&dir.join("f.pcap")).len() as u64 == v.forward);
}

/// A small LCG so the corruption test is deterministic without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn truncated_or_corrupted_captures_never_panic() {
    let dir = scratch("replay_corrupt");
    let config = config::parse(CONFIG, "inline").unwrap();
    let frames = vec![gue_frame(0, &[[192, 0, 2, 20]]), arp_frame()];
    let mut originals = Vec::new();
    for (name, ng) in [("c.pcap", false), ("c.pcapng", true)] {
        let path = dir.join(name);
        if ng {
            write_pcapng(&path, &frames);
        } else {
            write_pcap(&path, &frames, DataLink::ETHERNET);
        }
        originals.push(std::fs::read(&path).unwrap());
    }
    let input = dir.join("input");
    let outputs = lib_outputs(&dir);
    let mut rng = Lcg(7);
    for original in &originals {
        let mut cases: Vec<Vec<u8>> = (0..original.len())
            .map(|n| original[..n].to_vec())
            .collect();
        for _ in 0..300 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % bytes.len();
                bytes[at] = rng.next() as u8;
            }
            cases.push(bytes);
        }
        for bytes in cases {
            std::fs::write(&input, &bytes).unwrap();
            match replay(&config, &input, &outputs) {
                Ok(_) | Err(ReplayError::Input { .. } | ReplayError::InputFrame { .. }) => {}
                // A corrupted timestamp may not fit the classic output pcap.
                Err(ReplayError::OutputFrame {
                    error: CaptureError::TimestampOutOfRange(_),
                    ..
                }) => {}
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
    }
}

#[test]
fn output_pcaps_round_trip_nanosecond_timestamps() {
    let mut bytes = std::io::Cursor::new(Vec::new());
    let mut writer = EthernetPcapWriter::new(&mut bytes, TsResolution::NanoSecond).unwrap();
    writer.write(timestamp(0), 100, &arp_frame()).unwrap();
    writer.finish().unwrap();
    let bytes = bytes.into_inner();
    assert_eq!(bytes[16..20], 262_144u32.to_ne_bytes(), "snaplen");
    let mut reader = CaptureReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.format(), Format::Pcap);
    let mut buf = Vec::new();
    let meta = reader.next_frame(&mut buf).unwrap().unwrap();
    assert_eq!(meta.timestamp, timestamp(0));
    assert_eq!(meta.orig_len, 100);
    assert_eq!(meta.link_type, DataLink::ETHERNET);
    assert_eq!(buf, arp_frame());
    assert!(reader.next_frame(&mut buf).unwrap().is_none());
}

#[test]
fn pcapng_reader_applies_the_interface_resolution() {
    let dir = scratch("pcapng_resolution");
    let path = dir.join("in.pcapng");
    write_pcapng(&path, &[arp_frame()]);
    let mut reader = CaptureReader::open(&path).unwrap();
    assert_eq!(reader.format(), Format::PcapNg);
    let mut buf = Vec::new();
    let meta = reader.next_frame(&mut buf).unwrap().unwrap();
    assert_eq!(meta.timestamp, timestamp(0));
    assert_eq!(buf, arp_frame());
}

#[test]
fn configured_addresses_and_port_reach_the_engine() {
    let dir = scratch("replay_encap_settings");
    let config = config::parse(
        "[encap]\naddresses = [\"192.0.2.10\", \"192.0.2.11\"]\nport = 6080\n",
        "inline",
    )
    .unwrap();
    let inner = inner_packet();
    let frames = vec![
        gue_frame_to([192, 0, 2, 11], 6080, 0, &[], &inner),
        gue_frame_to([192, 0, 2, 10], 6080, 0, &[], &inner),
        gue_frame_to([192, 0, 2, 10], 19523, 0, &[], &inner),
    ];
    let input = dir.join("in.pcap");
    write_pcap(&input, &frames, DataLink::ETHERNET);
    let outputs = lib_outputs(&dir);
    let summary = replay(&config, &input, &outputs).unwrap();
    let verdicts: Vec<_> = read_verdicts(&outputs.verdicts)
        .into_iter()
        .map(|l| l.verdict)
        .collect();
    assert_eq!(verdicts, ["accept", "accept", "pass"]);
    assert_eq!(summary.verdicts.accept, 2);
}

#[test]
fn last_hop_gue_frame_is_accepted_and_decapsulated() {
    let dir = scratch("replay_last_hop");
    let input = dir.join("in.pcap");
    let frame = gue_frame(0, &[]);
    write_pcap(&input, std::slice::from_ref(&frame), DataLink::ETHERNET);
    let run = run_replay(&dir, &input, Some(("a.pcap", "f.pcap")));
    assert_eq!(run.out.status.code(), Some(0), "{}", stderr(&run.out));
    let lines = run.verdicts();
    assert_eq!(lines[0].verdict, "accept");
    assert_eq!(
        lines[0].reason.as_deref(),
        Some("accepted_packets_total_last_hop")
    );
    let mut expected = frame[..14].to_vec();
    expected.extend_from_slice(&inner_packet());
    assert_eq!(
        lines[0].output.as_deref(),
        Some(hex::encode(&expected).as_str())
    );
    assert_eq!(read_pcap(&dir.join("a.pcap")), [(timestamp(0), expected)]);
}

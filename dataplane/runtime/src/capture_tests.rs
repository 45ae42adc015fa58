use super::*;

/// An Ethernet + IPv4 + L4 frame: `proto`, 198.51.100.7:sport -> 203.0.113.10:dport.
fn ipv4_frame(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&[198, 51, 100, 7, 203, 0, 113, 10]);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0; 4]);
    f
}

fn filter(text: &str) -> FlowFilter {
    text.parse().unwrap()
}

fn spec(count: u64, verdict: Option<CaptureVerdict>) -> CaptureSpec {
    CaptureSpec {
        port: Some(CapturePort::Nic),
        verdict,
        filter: filter("udp/*/6080"),
        snaplen: 16,
        count,
    }
}

#[test]
fn filters_match_protocol_either_address_and_either_port() {
    let udp = ipv4_frame(17, 40000, 6080);
    assert!(filter("udp").matches(&udp));
    assert!(filter("udp/203.0.113.10").matches(&udp));
    assert!(filter("udp/198.51.100.7/6080").matches(&udp));
    assert!(filter("*/*/40000").matches(&udp));
    assert!(filter("17").matches(&udp));
    assert!(!filter("tcp").matches(&udp));
    assert!(!filter("udp/192.0.2.1").matches(&udp));
    assert!(!filter("udp/*/53").matches(&udp));
    assert!(!filter("ip/2001:db8::1").matches(&udp));
}

#[test]
fn non_ip_and_truncated_frames_match_only_the_empty_filter() {
    let arp = [0u8; 14];
    assert!(FlowFilter::default().matches(&arp));
    assert!(!filter("tcp").matches(&arp));
    assert!(!filter("ip/192.0.2.1").matches(&arp[..10]));
    assert!(!filter("udp/*/6080").matches(&ipv4_frame(17, 1, 6080)[..36]));
}

#[test]
fn bad_filters_are_refused_with_the_syntax() {
    for bad in [
        "",
        "tcp/",
        "smtp",
        "tcp/1.2.3/80",
        "tcp/*/http",
        "icmp/*/80",
        "a/b/c/d",
    ] {
        let err = bad.parse::<FlowFilter>().unwrap_err();
        assert!(err.contains("filter"), "{bad}: {err}");
    }
}

#[test]
fn filters_print_as_they_parse() {
    assert_eq!(filter("udp/*/6080").to_string(), "17/*/6080");
    assert_eq!(filter(&filter("tcp/::1").to_string()), filter("tcp/::1"));
}

#[test]
fn a_capture_queues_its_count_of_wanted_frames_cut_to_the_snap_length() {
    let (capture, frames) = Capture::new(spec(2, None), 8);
    let frame = ipv4_frame(17, 40000, 6080);
    assert!(capture.snapshot(CapturePort::Kernel, &frame).is_none());
    assert!(capture
        .snapshot(CapturePort::Nic, &ipv4_frame(6, 1, 6080))
        .is_none());
    for _ in 0..3 {
        let snapshot = capture.snapshot(CapturePort::Nic, &frame);
        if let Some(s) = snapshot {
            capture.offer(
                CapturePort::Nic,
                CaptureVerdict::Engine(Verdict::Forward),
                s,
            );
        }
    }
    let got: Vec<_> = frames.try_iter().collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].data, frame[..16]);
    assert_eq!(got[0].len, frame.len());
    assert_eq!(got[0].verdict.name(), "forward");
    assert_eq!(capture.dropped(), 0);
}

#[test]
fn frames_of_other_verdicts_are_not_counted() {
    let (capture, frames) = Capture::new(spec(1, CaptureVerdict::from_name("drop")), 8);
    let frame = ipv4_frame(17, 40000, 6080);
    let s = capture.snapshot(CapturePort::Nic, &frame).unwrap();
    capture.offer(CapturePort::Nic, CaptureVerdict::Engine(Verdict::Pass), s);
    let s = capture.snapshot(CapturePort::Nic, &frame).unwrap();
    capture.offer(CapturePort::Nic, CaptureVerdict::Engine(Verdict::Drop), s);
    assert_eq!(frames.try_iter().count(), 1);
}

#[test]
fn a_full_queue_counts_drops_and_keeps_the_frames_wanted() {
    let (capture, frames) = Capture::new(spec(3, None), 1);
    let frame = ipv4_frame(17, 40000, 6080);
    for _ in 0..3 {
        let s = capture.snapshot(CapturePort::Nic, &frame).unwrap();
        capture.offer(CapturePort::Nic, CaptureVerdict::Engine(Verdict::Accept), s);
    }
    assert_eq!(capture.dropped(), 2);
    assert_eq!(frames.try_iter().count(), 1);
    assert!(capture.snapshot(CapturePort::Nic, &frame).is_some());
}

#[test]
fn a_slot_holds_one_capture_at_a_time_and_reads_nothing_when_disarmed() {
    let slot = CaptureSlot::default();
    assert!(slot.armed().is_none());
    let (first, _a) = Capture::new(spec(1, None), 1);
    let (second, _b) = Capture::new(spec(1, None), 1);
    slot.arm(first).unwrap();
    assert!(slot.arm(second).is_err());
    assert!(slot.armed().is_some());
    slot.disarm();
    assert!(slot.armed().is_none());
}

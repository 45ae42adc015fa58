use super::*;

#[test]
fn requests_round_trip_through_their_lines() {
    let flow = FlowSpec {
        proto: "tcp".into(),
        local: "203.0.113.10:443".into(),
        remote: "198.51.100.7:51234".into(),
    };
    for request in [
        Request::Stats,
        Request::FlowsList {
            source: Some("static".into()),
            limit: Some(5),
        },
        Request::FlowsList {
            source: None,
            limit: None,
        },
        Request::FlowsLookup { flow: flow.clone() },
        Request::FlowsAdd { flow: flow.clone() },
        Request::FlowsDel { flow },
        Request::Simulate {
            frame: "00ff".into(),
        },
        Request::Reload,
        Request::Config,
        Request::Capture(CaptureRequest {
            port: Some("nic".into()),
            verdict: None,
            filter: Some("udp/*/19523".into()),
            count: 5,
            snaplen: None,
            timeout_ms: 1000,
        }),
        Request::DirectorBackends,
        Request::DirectorLookup {
            proto: "tcp".into(),
            vip: "203.0.113.10:443".into(),
            client: "198.51.100.7:51234".into(),
        },
    ] {
        let line = request.to_line();
        assert!(line.ends_with('\n') && line.contains("\"version\":1"));
        assert_eq!(
            parse_request(line.trim_end().as_bytes()),
            Ok(request.clone()),
            "{line}"
        );
        assert!(line.contains(&format!("\"request\":\"{}\"", request.name())));
    }
    assert_eq!(
        parse_request(br#"{"version":1,"request":"stats"}"#),
        Ok(Request::Stats)
    );
}

#[test]
fn bad_requests_are_errors_not_panics() {
    for (line, wanted) in [
        (&b"not json"[..], "malformed request"),
        (b"[1,2]", "expected a JSON object"),
        (br#"{"request":"stats"}"#, "missing `version`"),
        (
            br#"{"version":2,"request":"stats"}"#,
            "unsupported version 2",
        ),
        (
            br#"{"version":"1","request":"stats"}"#,
            "unsupported version",
        ),
        (br#"{"version":1}"#, "missing `request`"),
        (
            br#"{"version":1,"request":"format_disk"}"#,
            "unknown variant",
        ),
        (br#"{"version":1,"request":"stats","x":1}"#, "unknown field"),
        (
            br#"{"version":1,"request":"flows_add"}"#,
            "missing field `flow`",
        ),
        (
            br#"{"version":1,"request":"capture","count":1,"timeout_ms":1,"snap":9}"#,
            "unknown field",
        ),
        (
            br#"{"version":1,"request":"capture","count":1}"#,
            "missing field `timeout_ms`",
        ),
        (b"\xff\xfe", "malformed request"),
    ] {
        let error = parse_request(line).expect_err(&String::from_utf8_lossy(line));
        assert!(error.contains(wanted), "{error}");
    }
}

#[test]
fn flow_specs_parse_and_refuse_mixed_families() {
    let spec = |proto: &str, local: &str, remote: &str| FlowSpec {
        proto: proto.into(),
        local: local.into(),
        remote: remote.into(),
    };
    let key = spec("TCP", "203.0.113.10:443", "198.51.100.7:51234")
        .key()
        .unwrap();
    assert_eq!(FlowSpec::of(&key).proto, "tcp");
    assert!(spec("udp", "[2001:db8::1]:53", "[2001:db8::2]:5300")
        .key()
        .is_ok());
    assert!(spec("sctp", "1.2.3.4:1", "1.2.3.5:2").key().is_err());
    assert!(spec("tcp", "1.2.3.4:1", "[::1]:2").key().is_err());
    assert!(spec("tcp", "1.2.3.4", "1.2.3.5:2").key().is_err());
    assert!(spec("tcp", "1.2.3.4:0", "1.2.3.5:2").key().is_err());
}

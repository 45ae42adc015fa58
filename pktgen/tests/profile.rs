//! Profiles: the shipped ones parse, every key of `full.toml` is the default, and bad files and
//! flags are refused with the key (and for syntax and type errors the line) named.

use chance_pktgen::flows::FlowSet;
use chance_pktgen::profile::{Mix, Profile, Sizes};
use chance_pktgen::templates::Templates;
use std::path::PathBuf;
use std::process::Command;

fn shipped(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("profiles")
        .join(name)
}

/// Parses and validates `text`; the error as a string.
fn check(text: &str) -> Result<Profile, String> {
    let p = Profile::parse(text, "t.toml").map_err(|e| e.to_string())?;
    p.validate("t.toml").map_err(|e| e.to_string())?;
    Ok(p)
}

#[test]
fn full_profile_is_the_default() {
    assert_eq!(
        Profile::load(&shipped("full.toml")).unwrap(),
        Profile::default()
    );
}

#[test]
fn fixed_profile_sends_one_frame_length_as_testpmd_txonly_does() {
    let profile = Profile::load(&shipped("fixed-122.toml")).unwrap();
    let templates = Templates::build(&profile, &FlowSet::new(&profile));
    assert!(!templates.is_empty());
    // 122 bytes on the wire with the FCS: deploy/bench.sh gives testpmd --txpkts=118.
    for i in 0..templates.len() {
        assert_eq!(templates.frame(i).len(), 118, "template {i}");
    }
    assert_eq!(templates.mean_len(), 118.0);
}

#[test]
fn benchmark_profiles_parse() {
    let small = Profile::load(&shipped("mixed-64.toml")).unwrap();
    assert_eq!(small.size, Sizes::Fixed(64));
    assert_eq!(small.mix, Mix::default());
    let imix = Profile::load(&shipped("mixed-imix.toml")).unwrap();
    assert_eq!(imix.size, Sizes::Imix);
    assert_eq!(
        Profile {
            size: Sizes::Imix,
            ..small
        },
        imix
    );
}

#[test]
fn values_of_every_shape() {
    let p = check(
        "flows = 10\nsize = [64, 1518]\nhops = [0, 2]\nrate_pps = 500\n\
         [mix]\nudp = 1\ntcp_syn = 0\ntcp_established = 0\ntcp_unknown = 0\nicmp = 0\n\
         [addresses]\nnext_hops = [\"10.0.0.1\", \"10.0.0.2\"]\neth_dst = \"0a:0b:0c:0d:0e:0f\"\n",
    )
    .unwrap();
    assert_eq!(p.size, Sizes::List(vec![64, 1518]));
    assert_eq!(p.mix.udp, 1);
    assert_eq!(p.addresses.eth_dst.0, [10, 11, 12, 13, 14, 15]);
    assert_eq!(check("size = \"IMIX\"").unwrap().size, Sizes::Imix);
}

#[test]
fn syntax_and_type_errors_name_key_and_line() {
    assert_eq!(
        check("flows = 10\n[mix]\ntcp_sny = 3\n").unwrap_err(),
        "t.toml:3: mix.tcp_sny: unknown field `tcp_sny`, expected one of `tcp_syn`, \
         `tcp_established`, `tcp_unknown`, `udp`, `icmp`"
    );
    let e = check("flows = \"many\"\n").unwrap_err();
    assert!(e.starts_with("t.toml:1: flows: "), "{e}");
    let e = check("\n[addresses]\nvip4 = \"203.0.113\"\n").unwrap_err();
    assert!(e.starts_with("t.toml:3: addresses.vip4: "), "{e}");
    let e = check("size = \"huge\"\n").unwrap_err();
    assert!(e.starts_with("t.toml:1: size: "), "{e}");
    let e = check("\n\nspeed = 3\n").unwrap_err();
    assert!(e.starts_with("t.toml:3: speed: unknown field"), "{e}");
    let e = check("flows = = 3\n").unwrap_err();
    assert!(e.starts_with("t.toml:1: "), "{e}");
}

#[test]
fn bad_values_name_their_key() {
    let key = |text: &str| {
        let e = check(text).unwrap_err();
        e.split(": ").nth(1).unwrap_or_default().to_string()
    };
    assert_eq!(key("flows = 0"), "flows");
    assert_eq!(key("owned_share = 1.5"), "owned_share");
    assert_eq!(key("ipv6_share = -0.1"), "ipv6_share");
    assert_eq!(key("hops = []"), "hops");
    assert_eq!(key("hops = [4]"), "hops"); // three next hops by default
    assert_eq!(key("size = 20"), "size");
    assert_eq!(key("size = [64, 4000]"), "size");
    assert_eq!(key("duration_secs = 0"), "duration_secs");
    assert_eq!(key("warmup_secs = -1"), "warmup_secs");
    assert_eq!(
        key("[mix]\ntcp_syn = 0\ntcp_established = 0\ntcp_unknown = 0\nudp = 0\nicmp = 0"),
        "mix"
    );
    assert_eq!(key("owned_share = 0"), "mix.tcp_established");
    assert_eq!(key("owned_share = 1"), "mix.tcp_unknown");
    assert_eq!(key("[addresses]\ngue_port = 0"), "addresses.gue_port");
    assert_eq!(
        key("[addresses]\nnext_hops = [\"192.0.2.11\", \"192.0.2.10\"]"),
        "addresses.next_hops[1]"
    );
    // Shares that round to no flow at all count as none.
    assert_eq!(key("flows = 3\nowned_share = 0.1"), "mix.tcp_established");
}

#[test]
fn the_binary_refuses_bad_profiles_and_flags_with_status_2() {
    let dir = std::env::temp_dir().join(format!("pktgen-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "flows = 10\n[mix]\nicmp = \"lots\"\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chance-pktgen"))
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--profile", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:3: mix.icmp: "), "{err}");
    // A flag that breaks a valid profile is named by its key.
    let good = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles/mixed-64.toml");
    let (code, err) = run(&["--profile", good.to_str().unwrap(), "--owned-share", "2"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("owned_share: 2: expected a share from 0 to 1"),
        "{err}"
    );
    let (code, err) = run(&["--size", "jumbo"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--size"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn tcp4(local_port: u16, remote_port: u16) -> FlowKey {
    FlowKey::v4(
        L4Proto::Tcp,
        Ipv4Addr::new(10, 0, 0, 1),
        local_port,
        Ipv4Addr::new(192, 0, 2, 7),
        remote_port,
    )
}

const GRACE: Duration = Duration::from_secs(30);

#[test]
fn plan_adds_confirms_and_retires() {
    let a = tcp4(80, 1000); // dumped, not in table -> add
    let b = tcp4(80, 1001); // dumped, Egress -> confirm
    let c = tcp4(80, 1002); // dumped, Syn -> confirm
    let d = tcp4(80, 1003); // dumped, Socket -> confirm
    let e = tcp4(80, 1004); // not dumped, Egress, old -> retire
    let f = tcp4(80, 1005); // not dumped, Syn, old -> retire
    let g = tcp4(80, 1006); // not dumped, Socket, old -> retire
    let h = tcp4(80, 1007); // not dumped, Egress, young -> kept
    let i = tcp4(80, 1008); // not dumped, Static, old -> kept
    let j = tcp4(80, 1009); // dumped, Static -> neither added nor confirmed
    let old = Duration::from_secs(31);
    let young = Duration::from_secs(1);
    let entries = [
        (b, Source::Egress, old),
        (c, Source::Syn, young),
        (d, Source::Socket, old),
        (e, Source::Egress, old),
        (f, Source::Syn, old),
        (g, Source::Socket, old),
        (h, Source::Egress, young),
        (i, Source::Static, Duration::from_secs(86_400)),
        (j, Source::Static, old),
    ];
    let p = plan(&[a, b, c, d, j], entries, GRACE);
    assert_eq!(p.add, vec![a]);
    assert_eq!(p.confirm, vec![b, c, d]);
    assert_eq!(p.retire, vec![e, f, g]);
}

#[test]
fn plan_grace_is_exclusive() {
    let k = tcp4(80, 1);
    let p = plan(&[], [(k, Source::Socket, GRACE)], GRACE);
    assert!(p.retire.is_empty());
    let p = plan(
        &[],
        [(k, Source::Socket, GRACE + Duration::from_nanos(1))],
        GRACE,
    );
    assert_eq!(p.retire, vec![k]);
    let p = plan(&[], [(k, Source::Egress, Duration::ZERO)], Duration::ZERO);
    assert!(p.retire.is_empty(), "age 0 never exceeds a zero grace");
}

#[test]
fn plan_dedups_adds_and_keeps_dump_order() {
    let (a, b, c) = (tcp4(1, 1), tcp4(2, 2), tcp4(3, 3));
    let p = plan(&[c, a, c, b, a], std::iter::empty(), GRACE);
    assert_eq!(p.add, vec![c, a, b]);
    assert!(p.confirm.is_empty() && p.retire.is_empty());
}

#[test]
fn plan_empty_dump_retires_only_old_learned_entries() {
    let entries: Vec<_> = (0..100u16)
        .map(|n| {
            let source =
                [Source::Egress, Source::Syn, Source::Socket, Source::Static][usize::from(n % 4)];
            (tcp4(n, n), source, Duration::from_secs(u64::from(n)))
        })
        .collect();
    let p = plan(&[], entries.iter().copied(), GRACE);
    let expect: Vec<_> = entries
        .iter()
        .filter(|(_, s, age)| *s != Source::Static && *age > GRACE)
        .map(|(k, ..)| *k)
        .collect();
    assert_eq!(p.retire, expect);
    assert!(p.add.is_empty() && p.confirm.is_empty());
}

#[test]
fn plan_families_and_protocols_are_distinct() {
    let t = tcp4(80, 1000);
    let u = FlowKey::v4(
        L4Proto::Udp,
        Ipv4Addr::new(10, 0, 0, 1),
        80,
        Ipv4Addr::new(192, 0, 2, 7),
        1000,
    );
    let p = plan(&[u], [(t, Source::Egress, Duration::from_secs(60))], GRACE);
    assert_eq!(p.add, vec![u]);
    assert_eq!(p.retire, vec![t]);
}

fn id(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> SocketId {
    let mut id = SocketId::new_v6();
    id.source_address = src;
    id.source_port = sport;
    id.destination_address = dst;
    id.destination_port = dport;
    id
}

fn flow_key(proto: L4Proto, id: &SocketId) -> Option<FlowKey> {
    flow_keys(proto, id)[0]
}

#[test]
fn a_dual_stack_udp_socket_also_owns_its_mapped_flow_and_tcp_does_not() {
    let l4 = Ipv4Addr::new(198, 51, 100, 1);
    let r4 = Ipv4Addr::new(203, 0, 113, 9);
    let (l6, r6) = (l4.to_ipv6_mapped(), r4.to_ipv6_mapped());
    let mapped = id(l6.into(), 53, r6.into(), 5000);
    assert_eq!(
        flow_keys(L4Proto::Udp, &mapped),
        [
            Some(FlowKey::v4(L4Proto::Udp, l4, 53, r4, 5000)),
            Some(FlowKey::v6(L4Proto::Udp, l6, 53, r6, 5000)),
        ]
    );
    assert_eq!(
        flow_keys(L4Proto::Tcp, &mapped),
        [Some(FlowKey::v4(L4Proto::Tcp, l4, 53, r4, 5000)), None]
    );
    let plain = id(IpAddr::V4(l4), 53, IpAddr::V4(r4), 5000);
    assert_eq!(flow_keys(L4Proto::Udp, &plain)[1], None);
}

#[test]
fn flow_key_local_is_source_and_v4_mapped_becomes_v4() {
    let l4 = Ipv4Addr::new(198, 51, 100, 1);
    let r4 = Ipv4Addr::new(203, 0, 113, 9);
    let k = flow_key(L4Proto::Tcp, &id(l4.into(), 443, r4.into(), 5000)).unwrap();
    assert_eq!(k, FlowKey::v4(L4Proto::Tcp, l4, 443, r4, 5000));

    let mapped = id(
        l4.to_ipv6_mapped().into(),
        443,
        r4.to_ipv6_mapped().into(),
        5000,
    );
    assert_eq!(flow_key(L4Proto::Tcp, &mapped), Some(k));

    let l6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let r6: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let k6 = flow_key(L4Proto::Udp, &id(l6.into(), 53, r6.into(), 4000)).unwrap();
    assert_eq!(k6, FlowKey::v6(L4Proto::Udp, l6, 53, r6, 4000));
}

#[test]
fn flow_key_rejects_unconnected_and_mixed() {
    let l4 = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    assert_eq!(
        flow_key(L4Proto::Udp, &id(l4, 53, Ipv4Addr::UNSPECIFIED.into(), 0)),
        None
    );
    assert_eq!(
        flow_key(L4Proto::Udp, &id(l4, 53, Ipv6Addr::UNSPECIFIED.into(), 7)),
        None
    );
    assert_eq!(
        flow_key(L4Proto::Udp, &id(l4, 53, Ipv4Addr::LOCALHOST.into(), 0)),
        None
    );
    let mixed = id(l4, 53, "2001:db8::2".parse::<Ipv6Addr>().unwrap().into(), 9);
    assert_eq!(flow_key(L4Proto::Udp, &mixed), None);
}

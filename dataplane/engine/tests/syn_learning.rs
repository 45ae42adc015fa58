//! SYN learning through the engine: a SYN accepted locally leaves an embryonic entry in a learning
//! table, so the handshake's ACK is accepted; forward_syn SYNs, forged non-SYN packets and
//! last-hop SYNs create nothing.

use chance_engine::table::{ConcurrentFlowTable, Lookup, Source, TableConfig};
use chance_engine::{Counter, Engine, EngineConfig, FlowKey, L4Proto, Verdict};
use chance_testkit::gue::{GueFrame, ENCAP_ADDR, ENCAP_PORT};
use chance_testkit::inner::{Ipv4Packet, ACK, FIN, L4, PSH, RST, SYN};
use std::net::Ipv4Addr;
use std::time::Duration;

const HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn segment(sport: u16, flags: u8) -> Vec<u8> {
    GueFrame::ipv4(Ipv4Packet::new(CLIENT, VIP, L4::tcp(sport, 443, flags)).build())
        .hops(&[HOP])
        .build()
}

fn setup() -> (Engine, ConcurrentFlowTable) {
    let engine = Engine::new(EngineConfig::new(&[ENCAP_ADDR], ENCAP_PORT, 1500).unwrap());
    let table = ConcurrentFlowTable::new(TableConfig {
        capacity: 1024,
        syn_lifetime: Duration::from_secs(2),
    });
    (engine, table)
}

fn verdict(engine: &mut Engine, table: &ConcurrentFlowTable, frame: &[u8]) -> Verdict {
    engine.process(&mut frame.to_vec(), table).verdict
}

#[test]
fn a_locally_accepted_syn_lets_the_handshake_ack_in_until_its_lifetime_ends() {
    let (mut engine, table) = setup();
    let key = FlowKey::v4(L4Proto::Tcp, VIP, 443, CLIENT, 40000);
    assert_eq!(
        verdict(&mut engine, &table, &segment(40000, ACK)),
        Verdict::Forward,
        "unknown before the SYN"
    );
    assert_eq!(
        verdict(&mut engine, &table, &segment(40000, SYN)),
        Verdict::Accept
    );
    assert_eq!(table.lookup(&key), Lookup::Owned(Source::Syn));
    assert_eq!(
        verdict(&mut engine, &table, &segment(40000, ACK)),
        Verdict::Accept
    );
    assert_eq!(
        engine
            .counters()
            .get(Counter::AcceptedPacketsTotalEstablished),
        1
    );

    table.tick(table.created() + Duration::from_secs(3));
    assert_eq!(table.lookup(&key), Lookup::Expired);
    assert_eq!(
        verdict(&mut engine, &table, &segment(40000, ACK)),
        Verdict::Forward,
        "embryonic entries expire"
    );
}

#[test]
fn forward_syn_and_forged_non_syn_packets_teach_the_table_nothing() {
    let (mut engine, table) = setup();
    let mut forwarded_syn =
        GueFrame::ipv4(Ipv4Packet::new(CLIENT, VIP, L4::tcp(40001, 443, SYN)).build())
            .hops(&[HOP])
            .forward_syn();
    forwarded_syn.ip_id = 7;
    assert_eq!(
        verdict(&mut engine, &table, &forwarded_syn.build()),
        Verdict::Forward
    );
    for (i, flags) in [ACK, ACK | PSH, FIN | ACK, RST, 0].into_iter().enumerate() {
        assert_eq!(
            verdict(&mut engine, &table, &segment(41000 + i as u16, flags)),
            Verdict::Forward
        );
    }
    let udp =
        GueFrame::ipv4(Ipv4Packet::new(CLIENT, VIP, L4::udp(42000, 53, b"x")).build()).hops(&[HOP]);
    assert_eq!(verdict(&mut engine, &table, &udp.build()), Verdict::Forward);
    // A SYN on the last hop is accepted without parsing the inner packet: nothing to learn from.
    let last_hop =
        GueFrame::ipv4(Ipv4Packet::new(CLIENT, VIP, L4::tcp(43000, 443, SYN)).build()).build();
    assert_eq!(verdict(&mut engine, &table, &last_hop), Verdict::Accept);
    assert_eq!((table.len(), table.stats().inserts), (0, 0));
}

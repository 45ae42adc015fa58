//! The director's output fed to chanced's engine: the backend that owns the flow accepts it, one
//! that does not forwards it to the next hop, and the last hop takes it. This pins that the two
//! halves speak the same GUE.

mod common;

use chance_director::{Director, Route, RouteTable};
use chance_engine::wire::ethernet;
use chance_engine::{Engine, EngineConfig, ExactMatchTable, FlowKey, L4Proto, Verdict};
use chance_testkit::inner::{Ipv4Packet, Ipv6Packet, ACK, L4, SYN};
use common::*;
use core::net::Ipv4Addr;

/// Routes `frame` through the director and returns the encapsulated frame.
fn direct(table: &RouteTable<FakeRows>, frame: &[u8]) -> Vec<u8> {
    let mut director = Director::new(config());
    match director.route(frame, core::slice::from_ref(table)) {
        Route::Encapsulate(encap) => encap.output(frame),
        other => panic!("expected an encapsulation, got {other:?}"),
    }
}

/// The engine of backend `address`, owning `flows`.
fn backend(address: Ipv4Addr) -> Engine {
    Engine::new(EngineConfig::with_address(address))
}

fn owning(key: FlowKey) -> ExactMatchTable {
    let mut flows = ExactMatchTable::new();
    flows.insert(key);
    flows
}

fn v4_key() -> FlowKey {
    FlowKey::v4(L4Proto::Tcp, VIP4, 80, CLIENT4, CLIENT_PORT)
}

#[test]
fn the_backend_that_owns_the_flow_accepts_the_directors_packet() {
    let table = table(FakeRows::uniform(&[HOP_A, HOP_B]));
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::tcp(CLIENT_PORT, 80, ACK)).build();
    let mut out = direct(&table, &eth4(&inner));
    let outcome = backend(HOP_A).process(&mut out, &owning(v4_key()));
    assert_eq!(outcome.verdict, Verdict::Accept, "{outcome:?}");
    assert_eq!(&outcome.output(&out)[ethernet::HEADER_LEN..], &inner[..]);
}

#[test]
fn a_backend_without_the_flow_forwards_to_the_second_hop_which_accepts() {
    let table = table(FakeRows::uniform(&[HOP_A, HOP_B]));
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::tcp(CLIENT_PORT, 80, ACK)).build();
    let mut out = direct(&table, &eth4(&inner));
    let outcome = backend(HOP_A).process(&mut out, &ExactMatchTable::new());
    assert_eq!(outcome.verdict, Verdict::Forward, "{outcome:?}");
    let mut forwarded = outcome.output(&out).to_vec();
    let outer = chance_engine::wire::ipv4::Ipv4Packet::new_checked(&forwarded[14..]).unwrap();
    assert_eq!(outer.dst_addr(), HOP_B);
    let outcome = backend(HOP_B).process(&mut forwarded, &owning(v4_key()));
    assert_eq!(outcome.verdict, Verdict::Accept, "{outcome:?}");
    assert_eq!(
        &outcome.output(&forwarded)[ethernet::HEADER_LEN..],
        &inner[..]
    );
}

#[test]
fn the_first_hop_accepts_a_syn() {
    let table = table(FakeRows::uniform(&[HOP_A, HOP_B]));
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::tcp(CLIENT_PORT, 80, SYN)).build();
    let mut out = direct(&table, &eth4(&inner));
    let outcome = backend(HOP_A).process(&mut out, &ExactMatchTable::new());
    assert_eq!(outcome.verdict, Verdict::Accept, "{outcome:?}");
}

#[test]
fn fragmentation_needed_reaches_the_backend_that_holds_the_connection() {
    let table = table(FakeRows::uniform(&[HOP_A, HOP_B]));
    let error = frag_needed_for_the_client();
    let mut out = direct(&table, &eth4(&error));
    // Not on the first hop: forwarded; on the second, which owns the flow: accepted.
    let outcome = backend(HOP_A).process(&mut out, &ExactMatchTable::new());
    assert_eq!(outcome.verdict, Verdict::Forward, "{outcome:?}");
    let mut forwarded = outcome.output(&out).to_vec();
    let outcome = backend(HOP_B).process(&mut forwarded, &owning(v4_key()));
    assert_eq!(outcome.verdict, Verdict::Accept, "{outcome:?}");
}

#[test]
fn an_ipv6_flow_is_accepted_by_its_owner() {
    let table = table(FakeRows::uniform(&[HOP_A, HOP_B]));
    let inner = Ipv6Packet::new(CLIENT6, VIP6, L4::tcp(CLIENT_PORT, 80, ACK)).build();
    let mut out = direct(&table, &eth6(&inner));
    let key = FlowKey::v6(L4Proto::Tcp, VIP6, 80, CLIENT6, CLIENT_PORT);
    let outcome = backend(HOP_A).process(&mut out, &owning(key));
    assert_eq!(outcome.verdict, Verdict::Accept, "{outcome:?}");
    assert_eq!(&outcome.output(&out)[ethernet::HEADER_LEN..], &inner[..]);
}

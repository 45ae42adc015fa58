//! The production flow table (`chance_engine::table`): exact match, sources, expiry, eviction,
//! the SYN-flood property, sweeps, the capacity bound, concurrency, a model check and the
//! learning latency.

use chance_engine::table::{
    ConcurrentFlowTable, Entry, InsertOutcome, LoadPrefetch, LocalCounts, Lookup, Prefetch, Source,
    TableConfig,
};
use chance_engine::{
    Engine, EngineConfig, ExactMatchTable, FlowKey, FlowTable, Ipv4FlowKey, L4Proto, Verdict,
};
use chance_testkit::gue::{GueFrame, ENCAP_ADDR, ENCAP_PORT};
use chance_testkit::inner::{Ipv4Packet, ACK, L4};
use core::hash::{BuildHasher, Hasher};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const HOST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10);

/// The i-th IPv4 client flow to the host's port 443.
fn v4(i: u32) -> FlowKey {
    FlowKey::v4(
        L4Proto::Tcp,
        HOST,
        443,
        Ipv4Addr::from(0xc612_0000 + (i >> 14)),
        1024 + (i & 0x3fff) as u16,
    )
}

/// The i-th IPv6 client flow to the host's port 443.
fn v6(i: u32) -> FlowKey {
    let client = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, (i >> 16) as u16, i as u16);
    FlowKey::v6(L4Proto::Udp, HOST6, 443, client, 5353)
}

/// Flow `i` of a population that mixes both families.
fn mixed(i: u32) -> FlowKey {
    if i.is_multiple_of(2) {
        v4(i / 2)
    } else {
        v6(i / 2)
    }
}

/// A hasher that sends every key to the same two buckets with the same tag: the worst case for
/// the key comparison, and a way to test eviction order on one bucket pair deterministically.
#[derive(Clone, Default)]
struct OnePair;

impl BuildHasher for OnePair {
    type Hasher = Constant;
    fn build_hasher(&self) -> Constant {
        Constant
    }
}

struct Constant;

impl Hasher for Constant {
    fn finish(&self) -> u64 {
        // High half -> bucket 1 near the start, low half -> bucket 2 near the end.
        0x0000_0001_ffff_fff0
    }
    fn write(&mut self, _: &[u8]) {}
}

fn table(capacity: usize) -> ConcurrentFlowTable {
    ConcurrentFlowTable::new(TableConfig::new(capacity))
}

/// Advances `table`'s clock to `secs` after its creation.
fn at<S: BuildHasher>(table: &ConcurrentFlowTable<S>, secs: u64) {
    table.tick(table.created() + Duration::from_secs(secs));
}

fn variants(base: FlowKey) -> Vec<FlowKey> {
    let (l, r) = (base.local(), base.remote());
    let other_proto = match base.proto() {
        L4Proto::Tcp => L4Proto::Udp,
        L4Proto::Udp => L4Proto::Tcp,
    };
    let bump = |addr: std::net::SocketAddr| match addr {
        std::net::SocketAddr::V4(a) => {
            std::net::SocketAddr::new(Ipv4Addr::from(a.ip().to_bits() ^ 1).into(), a.port())
        }
        std::net::SocketAddr::V6(a) => std::net::SocketAddr::new(
            Ipv6Addr::from(a.ip().to_bits() ^ (1 << 100)).into(),
            a.port(),
        ),
    };
    let port = |mut addr: std::net::SocketAddr| {
        addr.set_port(addr.port() ^ 0x8000);
        addr
    };
    let other_family = |addr: std::net::SocketAddr| match addr {
        std::net::SocketAddr::V4(a) => {
            std::net::SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port())
        }
        std::net::SocketAddr::V6(a) => {
            std::net::SocketAddr::new(Ipv4Addr::from(a.ip().to_bits() as u32).into(), a.port())
        }
    };
    vec![
        FlowKey::new(base.proto(), other_family(l), other_family(r)).unwrap(),
        FlowKey::new(other_proto, l, r).unwrap(),
        FlowKey::new(base.proto(), bump(l), r).unwrap(),
        FlowKey::new(base.proto(), port(l), r).unwrap(),
        FlowKey::new(base.proto(), l, bump(r)).unwrap(),
        FlowKey::new(base.proto(), l, port(r)).unwrap(),
        // The two sides swapped.
        FlowKey::new(base.proto(), r, l).unwrap(),
    ]
}

fn exact_match_with<S: BuildHasher>(table: ConcurrentFlowTable<S>) {
    for base in [v4(7), v6(7)] {
        let others = variants(base);
        assert_eq!(table.insert(base, Source::Socket), InsertOutcome::Inserted);
        assert_eq!(table.lookup(&base), Lookup::Owned(Source::Socket));
        for other in &others {
            assert_ne!(*other, base);
            assert_eq!(table.lookup(other), Lookup::Miss, "{other:?} vs {base:?}");
        }
        // Each variant is a key of its own.
        for other in &others {
            assert_eq!(
                table.insert(*other, Source::Egress),
                InsertOutcome::Inserted
            );
        }
        assert_eq!(table.lookup(&base), Lookup::Owned(Source::Socket));
        for other in &others {
            assert_eq!(table.lookup(other), Lookup::Owned(Source::Egress));
            assert!(table.remove(other));
        }
        assert_eq!(table.lookup(&base), Lookup::Owned(Source::Socket));
        assert!(table.remove(&base));
        assert_eq!(table.lookup(&base), Lookup::Miss);
    }
    assert!(table.is_empty());
}

#[test]
fn exact_match_on_all_six_fields_v4_and_v6() {
    exact_match_with(table(1024));
    // Every key in the same two buckets with the same tag: only the full comparison separates them.
    exact_match_with(ConcurrentFlowTable::with_hasher(
        TableConfig::new(64),
        OnePair,
    ));
}

#[test]
fn sources_upgrade_by_priority_and_never_downgrade() {
    let table = table(64);
    let key = v4(1);
    assert_eq!(table.insert(key, Source::Syn), InsertOutcome::Inserted);
    assert_eq!(table.lookup(&key), Lookup::Owned(Source::Syn));
    assert_eq!(table.insert(key, Source::Egress), InsertOutcome::Refreshed);
    assert_eq!(table.lookup(&key), Lookup::Owned(Source::Egress));
    // An embryonic insert never touches an existing entry.
    assert_eq!(table.insert(key, Source::Syn), InsertOutcome::Present);
    assert_eq!(table.lookup(&key), Lookup::Owned(Source::Egress));
    assert_eq!(table.insert(key, Source::Socket), InsertOutcome::Refreshed);
    assert_eq!(table.insert(key, Source::Egress), InsertOutcome::Refreshed);
    assert_eq!(table.lookup(&key), Lookup::Owned(Source::Socket));
    assert_eq!(table.insert(key, Source::Static), InsertOutcome::Refreshed);
    for source in [Source::Socket, Source::Egress, Source::Syn] {
        table.insert(key, source);
        assert_eq!(table.lookup(&key), Lookup::Owned(Source::Static));
    }
    assert_eq!(table.len(), 1);

    // A confirmation moves the timestamp; an embryonic insert does not.
    let other = v6(1);
    table.insert(other, Source::Egress);
    at(&table, 5);
    assert_eq!(table.get(&other).unwrap().age, Duration::from_secs(5));
    table.insert(other, Source::Syn);
    assert_eq!(table.get(&other).unwrap().age, Duration::from_secs(5));
    table.insert(other, Source::Egress);
    assert_eq!(
        table.get(&other),
        Some(Entry {
            key: other,
            source: Source::Egress,
            age: Duration::ZERO
        })
    );
    // Confirmations within the same second write (and count) nothing.
    let refreshes = table.stats().refreshes;
    for _ in 0..10 {
        assert_eq!(
            table.insert(other, Source::Egress),
            InsertOutcome::Refreshed
        );
    }
    assert_eq!(table.stats().refreshes, refreshes);
}

#[test]
fn embryonic_entries_expire_with_the_clock() {
    let table = ConcurrentFlowTable::new(TableConfig {
        capacity: 64,
        syn_lifetime: Duration::from_secs(10),
    });
    let key = v4(2);
    // Through the engine's hook.
    FlowTable::syn_accepted(&table, &key);
    assert!(table.owns(&key));
    assert_eq!(table.lookup(&key), Lookup::Owned(Source::Syn));
    // Real time does not matter; the clock does.
    std::thread::sleep(Duration::from_millis(20));
    assert!(table.owns(&key));
    at(&table, 9);
    assert!(table.owns(&key));
    // A retransmitted SYN does not extend the lifetime.
    assert_eq!(table.insert_syn(key), InsertOutcome::Present);
    // Whole seconds: an entry of second 0 owns its flow through second 10 (at least 10 s).
    at(&table, 10);
    assert!(table.owns(&key));
    at(&table, 11);
    assert!(!table.owns(&key));
    assert_eq!(table.lookup(&key), Lookup::Expired);
    // Still held (and listed) until reused or purged.
    assert_eq!(table.len(), 1);
    assert_eq!(table.get(&key).unwrap().age, Duration::from_secs(11));
    // A new SYN re-arms it.
    assert_eq!(table.insert_syn(key), InsertOutcome::Inserted);
    assert!(table.owns(&key));
    at(&table, 25);
    assert_eq!(table.lookup(&key), Lookup::Expired);
    // Egress proves the flow: the entry becomes established and no longer expires.
    assert_eq!(table.insert(key, Source::Egress), InsertOutcome::Refreshed);
    at(&table, 1000);
    assert_eq!(table.lookup(&key), Lookup::Owned(Source::Egress));

    // purge_expired removes expired embryonic entries only.
    let young = v4(3);
    let old = v6(3);
    table.insert_syn(old);
    at(&table, 1005);
    table.insert_syn(young);
    at(&table, 1011);
    assert_eq!(table.lookup(&old), Lookup::Expired);
    assert_eq!(table.purge_expired(), 1);
    assert_eq!(table.lookup(&old), Lookup::Miss);
    assert_eq!(table.lookup(&young), Lookup::Owned(Source::Syn));
    assert_eq!(table.len(), 2);

    // Sub-second lifetimes round up to the clock's resolution.
    let short = ConcurrentFlowTable::new(TableConfig {
        capacity: 8,
        syn_lifetime: Duration::from_millis(1500),
    });
    assert_eq!(short.syn_lifetime(), Duration::from_secs(2));
}

#[test]
fn eviction_takes_embryonic_then_least_recently_confirmed_egress_never_socket_or_static() {
    // All keys share one bucket pair (16 slots); the capacity is not the limit here.
    let table = ConcurrentFlowTable::with_hasher(TableConfig::new(1000), OnePair);
    let key = |i: u32| v4(i);
    let (statics, sockets, egress, syn_old, syn_new) = (0..4, 4..8, 8..12, 12..14, 14..16);
    for i in statics.clone() {
        assert_eq!(
            table.insert(key(i), Source::Static),
            InsertOutcome::Inserted
        );
    }
    for i in sockets.clone() {
        assert_eq!(
            table.insert(key(i), Source::Socket),
            InsertOutcome::Inserted
        );
    }
    for i in egress.clone() {
        at(&table, u64::from(i)); // e8 at 8 s, ..., e11 at 11 s
        assert_eq!(
            table.insert(key(i), Source::Egress),
            InsertOutcome::Inserted
        );
    }
    at(&table, 12);
    for i in syn_old.clone() {
        assert_eq!(table.insert_syn(key(i)), InsertOutcome::Inserted);
    }
    at(&table, 25); // the first two embryonic entries expire at 22 s
    for i in syn_new.clone() {
        assert_eq!(table.insert_syn(key(i)), InsertOutcome::Inserted);
    }
    assert_eq!(table.len(), 16);
    let present = |i: u32| table.get(&key(i)).is_some();

    // 1. Expired embryonic entries go first.
    assert_eq!(
        table.insert(key(100), Source::Egress),
        InsertOutcome::Evicted(Source::Syn)
    );
    assert_eq!(
        table.insert(key(101), Source::Egress),
        InsertOutcome::Evicted(Source::Syn)
    );
    assert!(syn_old.clone().all(|i| !present(i)));
    assert!(syn_new.clone().all(present));
    // An embryonic insert may push out a live embryonic entry only.
    assert_eq!(
        table.insert_syn(key(102)),
        InsertOutcome::Evicted(Source::Syn)
    );
    assert_eq!(syn_new.clone().filter(|&i| present(i)).count(), 1);
    // 2. Then live embryonic entries.
    assert_eq!(
        table.insert(key(103), Source::Socket),
        InsertOutcome::Evicted(Source::Syn)
    );
    assert_eq!(
        table.insert(key(104), Source::Egress),
        InsertOutcome::Evicted(Source::Syn)
    );
    assert!(syn_new.clone().all(|i| !present(i)) && !present(102));
    // No embryonic entry left: an embryonic insert is refused (egress entries are protected
    // from it).
    assert_eq!(table.insert_syn(key(105)), InsertOutcome::Refused);
    // 3. Then the least recently confirmed egress entry: e8, then e9; e10 is confirmed again, so
    // e11 goes before it.
    at(&table, 30);
    assert_eq!(
        table.insert(key(106), Source::Egress),
        InsertOutcome::Evicted(Source::Egress)
    );
    assert!(!present(8) && present(9));
    assert_eq!(
        table.insert(key(10), Source::Egress),
        InsertOutcome::Refreshed
    );
    assert_eq!(
        table.insert(key(107), Source::Static),
        InsertOutcome::Evicted(Source::Egress)
    );
    assert!(!present(9));
    assert_eq!(
        table.insert(key(108), Source::Socket),
        InsertOutcome::Evicted(Source::Egress)
    );
    assert!(!present(11) && present(10));
    // Static and Socket entries were never touched.
    assert!(statics.clone().chain(sockets.clone()).all(present));
    // Replace the remaining egress entries (e10 and four new ones) by sockets; then only Static
    // and Socket entries are left.
    for i in 300.. {
        match table.insert(key(i), Source::Socket) {
            InsertOutcome::Evicted(Source::Egress) => assert!(i < 305),
            InsertOutcome::Refused => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(!present(10));
    for source in [Source::Syn, Source::Egress, Source::Socket, Source::Static] {
        assert_eq!(
            table.insert(key(999), source),
            InsertOutcome::Refused,
            "{source:?}"
        );
    }
    assert!(statics.clone().chain(sockets.clone()).all(present));
    let stats = table.stats();
    assert_eq!(stats.evicted_syn_expired, 2);
    assert_eq!(stats.evicted_syn, 3);
    assert_eq!(stats.evicted_egress, 8);
    assert_eq!(stats.entries, 16);
    assert_eq!(stats.refusals, 6, "{stats:?}");
}

#[test]
fn a_syn_flood_of_spoofed_tuples_evicts_no_established_or_static_flow() {
    const CAPACITY: u32 = 8192;
    let table = table(CAPACITY as usize);
    // Three quarters of the table: static, socket and egress-learned flows.
    let established: Vec<(FlowKey, Source)> = (0..CAPACITY / 4 * 3)
        .map(|i| {
            let source = [Source::Static, Source::Socket, Source::Egress][i as usize % 3];
            (mixed(i), source)
        })
        .collect();
    for &(key, source) in &established {
        assert_eq!(table.insert(key, source), InsertOutcome::Inserted);
    }
    // Ten times the capacity of spoofed SYNs (other clients, both families), while time passes.
    let mut stored = 0;
    for i in 0..CAPACITY * 10 {
        if i % 4096 == 0 {
            at(&table, u64::from(i / 4096));
        }
        let spoofed = mixed(1_000_000 + i);
        if table.insert_syn(spoofed).is_stored() {
            stored += 1;
        }
        assert!(table.len() <= CAPACITY as usize);
    }
    for &(key, source) in &established {
        assert_eq!(table.lookup(&key), Lookup::Owned(source), "{key:?}");
    }
    let stats = table.stats();
    assert_eq!(stats.evicted_egress, 0, "{stats:?}");
    assert!(
        stats.evicted_syn + stats.evicted_syn_expired > 0,
        "{stats:?}"
    );
    assert!(
        stored > CAPACITY * 9,
        "the flood churns the embryonic part: {stats:?}"
    );
    eprintln!("after the flood: {stats:?}");

    // The embryonic part is still there to make room for newly proved flows. (A pair left with
    // no embryonic entry gives up its least recently confirmed egress flow instead: that is the
    // eviction order, and static and socket flows are still never touched.)
    let mut evicted_syn = 0;
    let mut evicted_egress = 0;
    for i in 0..500 {
        match table.insert(mixed(2_000_000 + i), Source::Egress) {
            InsertOutcome::Evicted(Source::Syn) => evicted_syn += 1,
            InsertOutcome::Evicted(Source::Egress) => evicted_egress += 1,
            InsertOutcome::Refused => {}
            other => panic!("{other:?} at capacity"),
        }
    }
    assert!(evicted_syn >= 450, "{evicted_syn}: {:?}", table.stats());
    let mut egress_lost = 0;
    for &(key, source) in &established {
        match table.lookup(&key) {
            Lookup::Owned(owner) => assert_eq!(owner, source),
            _ if source == Source::Egress => egress_lost += 1,
            other => panic!("{key:?} {source:?}: {other:?}"),
        }
    }
    assert!(egress_lost <= evicted_egress);
}

/// A table with 1000 entries of every source at second 11 (so the 250 embryonic ones among them
/// have expired) plus one live embryonic entry, and keys for all of those and 100 absent ones:
/// hits, misses, live and expired embryonic entries, both families.
fn batch_fixture() -> (ConcurrentFlowTable, Vec<FlowKey>) {
    let table = table(4096);
    for i in 0..1000 {
        table.insert(mixed(i), Source::ALL[i as usize % 4]);
    }
    at(&table, 11);
    table.insert_syn(mixed(5000));
    let keys = (0..1000)
        .chain(4000..4100)
        .chain([5000])
        .map(mixed)
        .collect();
    (table, keys)
}

#[test]
fn lookup_many_answers_as_lookup_does() {
    // In groups of any length.
    let (table, keys) = batch_fixture();
    for len in [0, 1, 15, 16, 17, 63, 64, 65, 100, 129, keys.len()] {
        let mut out = vec![Lookup::Contended; len + 3];
        table.lookup_many(&keys[..len], &mut out);
        for (key, answer) in keys[..len].iter().zip(&out) {
            assert_eq!(*answer, table.lookup(key), "{key:?}");
        }
        assert!(out[len..].iter().all(|l| *l == Lookup::Contended));
    }
    let mut out = vec![Lookup::Miss; keys.len()];
    table.lookup_many(&keys, &mut out);
    assert!(out.contains(&Lookup::Expired));
    assert!(out.contains(&Lookup::Owned(Source::Syn)));
    assert!(out.contains(&Lookup::Miss));
}

/// A prefetch that records the address of every word it is given.
#[derive(Default)]
struct Named(std::cell::RefCell<Vec<usize>>);

impl Prefetch for Named {
    fn prefetch(&self, word: &AtomicU64) {
        self.0.borrow_mut().push(word as *const AtomicU64 as usize);
    }
}

#[test]
fn prefetch_for_insert_names_the_tag_words_a_search_of_the_key_reads_first() {
    // A SYN's insert starts with the search a lookup makes: the two tag words its batch
    // prefetches first. Present keys and absent ones alike; the table is left unchanged.
    let (table, keys) = batch_fixture();
    for key in keys.iter().filter_map(FlowKey::ipv4) {
        let (warmed, searched) = (Named::default(), Named::default());
        table.prefetch_for_insert(&key, &warmed);
        table.lookup_many_with(&[key.into()], &mut [Lookup::Contended], &searched);
        let warmed = warmed.0.into_inner();
        assert_eq!(warmed.len(), 2, "{key:?}");
        assert_eq!(warmed[..], searched.0.into_inner()[..2], "{key:?}");
    }
    let (fresh, keys) = batch_fixture();
    for (key, answer) in keys.iter().map(|key| (key, fresh.lookup(key))) {
        assert_eq!(table.lookup(key), answer, "{key:?}");
    }
}

fn is_v4(key: &FlowKey) -> bool {
    key.ipv4().is_some()
}

#[test]
fn lookup_many_of_ipv4_keys_only_answers_as_lookup_does() {
    // The batch that asks no key its family, in groups of any length.
    let (table, keys) = batch_fixture();
    let keys: Vec<FlowKey> = keys.into_iter().filter(is_v4).collect();
    for len in [1, 63, 64, 65, 129, keys.len()] {
        let mut out = vec![Lookup::Contended; len];
        table.lookup_many(&keys[..len], &mut out);
        for (key, answer) in keys[..len].iter().zip(&out) {
            assert_eq!(*answer, table.lookup(key), "{key:?}");
        }
    }
    let mut out = vec![Lookup::Contended; keys.len()];
    table.lookup_many(&keys, &mut out);
    assert!(out.contains(&Lookup::Expired));
    assert!(out.contains(&Lookup::Miss));
    assert!(out.iter().any(|answer| answer.is_owned()));
}

#[test]
fn lookup_many_answers_as_lookup_does_when_every_tag_collides() {
    // Every key has the same two buckets and tag: the slot the tags pick first holds another
    // key for all but one key, so the batch's full search answers nearly all of them.
    let table = ConcurrentFlowTable::with_hasher(TableConfig::new(64), OnePair);
    for i in 0..16 {
        assert_eq!(
            table.insert(mixed(i), Source::ALL[i as usize % 4]),
            InsertOutcome::Inserted
        );
    }
    for keys in [
        (0..40).map(mixed).collect::<Vec<_>>(),
        (0..80).map(v4).collect(),
    ] {
        // Present and absent keys, over two groups and a part.
        let keys: Vec<FlowKey> = keys.iter().cycle().take(150).copied().collect();
        let mut out = vec![Lookup::Contended; keys.len()];
        table.lookup_many(&keys, &mut out);
        for (key, answer) in keys.iter().zip(&out) {
            assert_eq!(*answer, table.lookup(key), "{key:?}");
        }
        assert!(out.iter().any(|answer| answer.is_owned()));
        assert!(out.contains(&Lookup::Miss));
    }
}

#[test]
fn owns_many_answers_as_owns_does_for_the_table_and_the_trait_s_default() {
    // A burst's keys are IPv4 (the fast path plans nothing else): the fixture's IPv4 keys.
    let (table, keys) = batch_fixture();
    let keys: Vec<Ipv4FlowKey> = keys.iter().filter_map(FlowKey::ipv4).collect();
    let exact: ExactMatchTable = (0..1000).map(mixed).collect();
    for len in [0, 1, 31, 32, 33, 63, 64, 65, 200, keys.len()] {
        let mut out = vec![true; len + 2];
        table.owns_many(&keys[..len], &mut out, &LoadPrefetch);
        let mut out_exact = vec![true; len + 2];
        exact.owns_many(&keys[..len], &mut out_exact, &LoadPrefetch);
        for (i, key) in keys[..len].iter().enumerate() {
            assert_eq!(out[i], table.owns(&key.flow_key()), "{key:?}");
            assert_eq!(out_exact[i], exact.owns(&key.flow_key()), "{key:?}");
        }
        assert_eq!(&out[len..], &[true, true], "nothing written past the keys");
    }
    // Owned: of the even (IPv4) entries, sources 0 and 2 of four alternate and one is the
    // expired embryonic, so 250; plus the live embryonic key 5000. Not the absent keys.
    let mut out = vec![false; keys.len()];
    table.owns_many(&keys, &mut out, &LoadPrefetch);
    assert_eq!(out.iter().filter(|&&owned| owned).count(), 251);
}

#[test]
fn an_ipv4_key_is_the_general_key_in_two_words() {
    for i in 0..1000 {
        let key = v4(i);
        let ipv4 = key.ipv4().expect("an IPv4 key");
        assert_eq!(ipv4.flow_key(), key);
        assert_eq!(FlowKey::from(ipv4), key);
        let hasher = foldhash::fast::FixedState::with_seed(u64::from(i));
        assert_eq!(
            hasher.hash_one(ipv4),
            hasher.hash_one(key),
            "same hash, same place"
        );
        assert_eq!(format!("{ipv4:?}"), format!("{key:?}"));
    }
    assert_eq!(v6(1).ipv4(), None);
}

/// Records what it is asked to prefetch.
#[derive(Default)]
struct Recorder(std::cell::RefCell<Vec<usize>>);

impl Prefetch for Recorder {
    fn prefetch(&self, word: &AtomicU64) {
        self.0.borrow_mut().push(word.as_ptr() as usize);
    }
}

#[test]
fn lookup_many_prefetches_tags_and_slots_inside_the_table() {
    let table = table(4096);
    for i in 0..1000 {
        table.insert(mixed(i), Source::Egress);
    }
    let keys: Vec<FlowKey> = (0..1000).chain(4000..4100).map(mixed).collect();
    let recorder = Recorder::default();
    let mut out = vec![Lookup::Miss; keys.len()];
    table.lookup_many_with(&keys, &mut out, &recorder);
    for (key, answer) in keys.iter().zip(&out) {
        assert_eq!(*answer, table.lookup(key), "{key:?}");
    }
    let addresses = recorder.0.into_inner();
    // Two tag words per key, and the first and last word of the slot read for every hit.
    assert!(
        addresses.len() >= 2 * keys.len() + 2 * 1000,
        "{}",
        addresses.len()
    );
    let regions = table.memory_regions();
    for address in addresses {
        assert!(
            regions
                .iter()
                .any(|&(start, len)| (start as usize..start as usize + len).contains(&address)),
            "prefetch of {address:#x} outside the table"
        );
    }
}

#[test]
fn remove_retain_and_static_entries() {
    let table = table(1024);
    let (learned, socket, statik, syn) = (v4(1), v6(1), v4(2), v6(2));
    table.insert(learned, Source::Egress);
    table.insert(socket, Source::Socket);
    table.insert(statik, Source::Static);
    table.insert_syn(syn);
    assert_eq!(table.len(), 4);

    // remove() is for learned entries; static ones need remove_static().
    assert!(!table.remove(&statik));
    assert!(table.owns(&statik));
    assert!(!table.remove_static(&socket));
    assert!(table.owns(&socket));

    // retain() never offers static entries, and sees ages and sources.
    at(&table, 40);
    table.insert(socket, Source::Socket);
    let mut offered = Vec::new();
    let removed = table.retain(|entry| {
        offered.push((entry.key, entry.source, entry.age));
        entry.age < Duration::from_secs(30)
    });
    offered.sort_by_key(|o| o.1);
    assert_eq!(
        offered,
        [
            (syn, Source::Syn, Duration::from_secs(40)),
            (learned, Source::Egress, Duration::from_secs(40)),
            (socket, Source::Socket, Duration::ZERO),
        ]
    );
    assert_eq!(removed, 2);
    assert_eq!(table.lookup(&learned), Lookup::Miss);
    assert_eq!(table.lookup(&syn), Lookup::Miss);
    assert!(table.owns(&socket) && table.owns(&statik));
    assert_eq!(table.retain(|_| false), 1);
    assert!(table.owns(&statik));
    assert!(!table.remove(&socket));
    assert!(table.remove_static(&statik));
    assert!(!table.remove_static(&statik));
    assert!(table.is_empty());
    let stats = table.stats();
    assert_eq!(stats.removals, 4);
    assert_eq!(stats.inserts, 4);

    // for_each lists everything, static entries included.
    for i in 0..100 {
        table.insert(mixed(i), Source::ALL[i as usize % 4]);
    }
    let mut listed = HashMap::new();
    table.for_each(|entry| {
        assert!(listed.insert(entry.key, entry.source).is_none());
    });
    assert_eq!(listed.len(), 100);
    for i in 0..100 {
        assert_eq!(listed[&mixed(i)], Source::ALL[i as usize % 4]);
    }
}

#[test]
fn the_capacity_bounds_the_entries_and_the_memory() {
    let table = table(1000);
    let memory = table.memory_bytes();
    assert!(table.bytes_per_entry() < 64.0);
    let mut stored = 0;
    for i in 0..5000 {
        if table.insert(mixed(i), Source::Socket).is_stored() {
            stored += 1;
        }
        assert!(table.len() <= 1000);
    }
    assert_eq!(stored, 1000);
    assert_eq!(table.len(), 1000);
    let stats = table.stats();
    assert_eq!((stats.inserts, stats.refusals), (1000, 4000));
    // Sockets are never evicted by learning: a new egress flow is refused at capacity.
    assert_eq!(
        table.insert(mixed(9999), Source::Egress),
        InsertOutcome::Refused
    );

    // Egress-learned flows replace each other (least recently confirmed first) at capacity.
    let table = table_with_capacity_egress(1000, 5000);
    assert_eq!(table.len(), 1000);
    assert_eq!(table.memory_bytes(), memory);
    let stats = table.stats();
    assert!(stats.evicted_egress >= 3900, "{stats:?}");
    assert_eq!(stats.evicted_egress + stats.refusals, 4000, "{stats:?}");
}

fn table_with_capacity_egress(capacity: usize, flows: u32) -> ConcurrentFlowTable {
    let table = table(capacity);
    for i in 0..flows {
        at(&table, u64::from(i / 100));
        table.insert(mixed(i), Source::Egress);
        assert!(table.len() <= capacity);
    }
    table
}

/// Writers insert and remove their own flows; a refresher confirms the stable flows while the
/// clock moves; readers check continuously that every stable flow is owned, no never-inserted
/// flow ever is, and churned flows are either absent or carry the source they were written with.
fn concurrent_run(capacity: usize, stable: u32, churn_per_writer: u32, rounds: u32) {
    const WRITERS: u32 = 2;
    const READERS: usize = 2;
    let table = table(capacity);
    let stable: Vec<FlowKey> = (0..stable).map(mixed).collect();
    for key in &stable {
        assert_eq!(table.insert(*key, Source::Socket), InsertOutcome::Inserted);
    }
    let never: Vec<FlowKey> = (0..1000).map(|i| mixed(10_000_000 + i)).collect();
    let churn: Vec<Vec<FlowKey>> = (0..WRITERS)
        .map(|w| {
            (0..churn_per_writer)
                .map(|i| mixed(1_000_000 * (w + 1) + i))
                .collect()
        })
        .collect();
    let writers_left = AtomicUsize::new(WRITERS as usize);
    let inserted = AtomicU64::new(0);
    let removed = AtomicU64::new(0);
    let reader_passes = AtomicU64::new(0);
    let stop_refresher = AtomicBool::new(false);
    std::thread::scope(|s| {
        for keys in &churn {
            let (table, writers_left, inserted, removed) =
                (&table, &writers_left, &inserted, &removed);
            s.spawn(move || {
                for _ in 0..rounds {
                    for key in keys {
                        if matches!(
                            table.insert(*key, Source::Egress),
                            InsertOutcome::Inserted | InsertOutcome::Evicted(_)
                        ) {
                            inserted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    for key in keys {
                        if table.remove(key) {
                            removed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                writers_left.fetch_sub(1, Ordering::Release);
            });
        }
        {
            let (table, stable, stop) = (&table, &stable, &stop_refresher);
            s.spawn(move || {
                let mut secs = 0;
                while !stop.load(Ordering::Acquire) {
                    secs += 1;
                    at(table, secs);
                    for key in stable.iter().step_by(7) {
                        assert_eq!(table.insert(*key, Source::Egress), InsertOutcome::Refreshed);
                    }
                }
            });
        }
        for reader in 0..READERS {
            let (table, stable, never, churn, writers_left, passes) = (
                &table,
                &stable,
                &never,
                &churn,
                &writers_left,
                &reader_passes,
            );
            s.spawn(move || {
                let mut counts = LocalCounts::default();
                // Two groups of a batch (64 + 36 keys), both families or IPv4 only.
                let mut burst = [Lookup::Miss; 100];
                let stable_v4: Vec<FlowKey> = stable.iter().copied().filter(is_v4).collect();
                while writers_left.load(Ordering::Acquire) > 0 {
                    // One reader looks the stable flows up one by one, the other in bursts.
                    if reader == 0 {
                        for key in stable {
                            let lookup = table.lookup(key);
                            assert_eq!(lookup, Lookup::Owned(Source::Socket), "{key:?}");
                            counts.record(lookup);
                        }
                    } else {
                        for keys in stable.chunks(100) {
                            table.lookup_many(keys, &mut burst);
                            for (key, lookup) in keys.iter().zip(burst) {
                                assert_eq!(lookup, Lookup::Owned(Source::Socket), "{key:?}");
                                counts.record(lookup);
                            }
                        }
                        // Uncounted (the pass counts each stable flow once).
                        for keys in stable_v4.chunks(100) {
                            table.lookup_many(keys, &mut burst);
                            for (key, lookup) in keys.iter().zip(burst) {
                                assert_eq!(lookup, Lookup::Owned(Source::Socket), "{key:?}");
                            }
                        }
                    }
                    for key in never {
                        assert!(!table.lookup_counted(key, &mut counts), "{key:?}");
                    }
                    for key in churn.iter().flatten() {
                        let lookup = table.lookup(key);
                        assert!(
                            matches!(
                                lookup,
                                Lookup::Owned(Source::Egress) | Lookup::Miss | Lookup::Contended
                            ),
                            "{key:?}: {lookup:?}"
                        );
                    }
                    passes.fetch_add(1, Ordering::Relaxed);
                }
                table.flush_counts(&mut counts);
            });
        }
        // The scope joins the writers and readers; then the refresher may stop.
        s.spawn(|| {
            while writers_left.load(Ordering::Acquire) > 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            stop_refresher.store(true, Ordering::Release);
        });
    });
    let passes = reader_passes.load(Ordering::Relaxed);
    assert!(passes > 0);
    for key in &stable {
        assert_eq!(table.lookup(key), Lookup::Owned(Source::Socket));
    }
    let stats = table.stats();
    let (inserted, removed) = (
        inserted.load(Ordering::Relaxed),
        removed.load(Ordering::Relaxed),
    );
    // Every churned flow was removed (or evicted) in the end.
    assert_eq!(table.len(), stable.len(), "{stats:?}");
    assert_eq!(stats.inserts, stable.len() as u64 + inserted, "{stats:?}");
    assert_eq!(stats.removals, removed, "{stats:?}");
    assert_eq!(inserted, removed + stats.evicted_egress, "{stats:?}");
    let lookups_per_pass = (stable.len() + never.len()) as u64;
    assert_eq!(stats.hits + stats.misses, passes * lookups_per_pass);
    assert_eq!(stats.hits, passes * stable.len() as u64);
    eprintln!("{passes} reader passes; {stats:?}");
}

#[test]
fn concurrent_writers_never_hide_stable_flows_or_invent_others() {
    // Plenty of room: no eviction, no displacement.
    concurrent_run(1 << 16, 2000, 1000, 100);
}

#[test]
fn concurrent_churn_at_capacity_moves_and_evicts_without_losing_stable_flows() {
    // The churn overflows the table: egress flows evict each other and entries get displaced
    // (copied to their other bucket) under the readers' feet.
    concurrent_run(2048, 1700, 600, 100);
}

/// One step of the model check.
#[derive(Debug, Clone)]
enum Op {
    Insert(u32, Source),
    Remove(u32),
    RemoveStatic(u32),
    Lookup(u32),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let source = prop::sample::select(Source::ALL.to_vec());
    let key = 0u32..24;
    prop_oneof![
        4 => (key.clone(), source).prop_map(|(k, s)| Op::Insert(k, s)),
        1 => key.clone().prop_map(Op::Remove),
        1 => key.clone().prop_map(Op::RemoveStatic),
        3 => key.prop_map(Op::Lookup),
        1 => (0u64..8).prop_map(Op::Tick),
    ]
}

proptest! {
    /// A single thread's operations agree with a HashMap model (the capacity is never reached).
    #[test]
    fn the_table_agrees_with_a_hashmap_model(ops in prop::collection::vec(op(), 1..200)) {
        const LIFE: u32 = 5;
        let table = ConcurrentFlowTable::new(TableConfig {
            capacity: 256,
            syn_lifetime: Duration::from_secs(LIFE.into()),
        });
        let mut model: HashMap<FlowKey, (Source, u32)> = HashMap::new();
        let mut now = 0u32;
        let expired = |(source, confirmed): (Source, u32), now: u32| {
            source == Source::Syn && now - confirmed > LIFE
        };
        for op in ops {
            match op {
                Op::Insert(k, source) => {
                    let key = mixed(k);
                    let expect = match model.get(&key).copied() {
                        None => {
                            model.insert(key, (source, now));
                            InsertOutcome::Inserted
                        }
                        Some(entry) if source == Source::Syn => {
                            if expired(entry, now) {
                                model.insert(key, (Source::Syn, now));
                                InsertOutcome::Inserted
                            } else {
                                InsertOutcome::Present
                            }
                        }
                        Some((old, _)) => {
                            model.insert(key, (old.max(source), now));
                            InsertOutcome::Refreshed
                        }
                    };
                    prop_assert_eq!(table.insert(key, source), expect);
                }
                Op::Remove(k) => {
                    let key = mixed(k);
                    let expect = model.get(&key).is_some_and(|e| e.0 != Source::Static);
                    if expect {
                        model.remove(&key);
                    }
                    prop_assert_eq!(table.remove(&key), expect);
                }
                Op::RemoveStatic(k) => {
                    let key = mixed(k);
                    let expect = model.get(&key).is_some_and(|e| e.0 == Source::Static);
                    if expect {
                        model.remove(&key);
                    }
                    prop_assert_eq!(table.remove_static(&key), expect);
                }
                Op::Lookup(k) => {
                    let key = mixed(k);
                    let expect = match model.get(&key).copied() {
                        None => Lookup::Miss,
                        Some(entry) if expired(entry, now) => Lookup::Expired,
                        Some((source, _)) => Lookup::Owned(source),
                    };
                    prop_assert_eq!(table.lookup(&key), expect);
                    prop_assert_eq!(table.owns(&key), expect.is_owned());
                }
                Op::Tick(secs) => {
                    now += secs as u32;
                    at(&table, now.into());
                }
            }
            prop_assert_eq!(table.len(), model.len());
        }
        let mut listed = HashMap::new();
        table.for_each(|e| {
            listed.insert(e.key, (e.source, now - e.age.as_secs() as u32));
        });
        prop_assert_eq!(listed, model);
    }
}

#[test]
fn a_learned_flow_is_seen_by_another_thread_within_microseconds() {
    const TRIALS: usize = 1000;
    let table = table(1 << 16);
    let epoch = Instant::now();
    let ready = AtomicUsize::new(usize::MAX);
    let (inserted_at, seen_at) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut times = Vec::with_capacity(TRIALS);
            for i in 0..TRIALS {
                let mut spins = 0u32;
                while ready.load(Ordering::Acquire) != i {
                    spins += 1;
                    if spins > 1000 {
                        std::thread::yield_now();
                    }
                }
                times.push(epoch.elapsed());
                table.insert(mixed(i as u32), Source::Egress);
            }
            times
        });
        let reader = s.spawn(|| {
            let mut times = Vec::with_capacity(TRIALS);
            for i in 0..TRIALS {
                let key = mixed(i as u32);
                ready.store(i, Ordering::Release);
                let deadline = Instant::now() + Duration::from_secs(5);
                while !table.owns(&key) {
                    assert!(Instant::now() < deadline, "flow {i} never seen");
                }
                times.push(epoch.elapsed());
            }
            times
        });
        (writer.join().unwrap(), reader.join().unwrap())
    });
    let mut latency: Vec<Duration> = inserted_at
        .iter()
        .zip(&seen_at)
        .map(|(a, b)| b.saturating_sub(*a))
        .collect();
    latency.sort();
    let pct = |p: usize| latency[(latency.len() - 1) * p / 100];
    eprintln!(
        "learning latency over {TRIALS} trials: min {:?} p50 {:?} p90 {:?} p99 {:?} max {:?}",
        latency[0],
        pct(50),
        pct(90),
        pct(99),
        latency[TRIALS - 1]
    );
    assert!(pct(50) < Duration::from_micros(100), "median {:?}", pct(50));
}

#[test]
fn the_engine_runs_on_the_concurrent_table_and_a_counting_view_counts_its_lookups() {
    let table = table(1024);
    let config = EngineConfig::new(&[ENCAP_ADDR], ENCAP_PORT, 1500).unwrap();
    let mut engine = Engine::new(config);
    let client = Ipv4Addr::new(198, 51, 100, 7);
    let frame = |sport| {
        let inner = Ipv4Packet::new(client, ENCAP_ADDR, L4::tcp(sport, 443, ACK)).build();
        GueFrame::ipv4(inner)
            .hops(&[Ipv4Addr::new(192, 0, 2, 20)])
            .build()
    };
    let owned = FlowKey::v4(L4Proto::Tcp, ENCAP_ADDR, 443, client, 5000);
    table.insert(owned, Source::Egress);
    let view = table.counting_view();
    assert_eq!(
        engine.process(&mut frame(5000), &view).verdict,
        Verdict::Accept
    );
    assert_eq!(
        engine.process(&mut frame(5001), &view).verdict,
        Verdict::Forward
    );
    assert_eq!(
        engine.process(&mut frame(5000), &table).verdict,
        Verdict::Accept
    );
    assert_eq!(view.counts(), LocalCounts { hits: 1, misses: 1 });
    assert_eq!((table.stats().hits, table.stats().misses), (0, 0));
    view.flush();
    assert_eq!(view.counts(), LocalCounts::default());
    assert_eq!((table.stats().hits, table.stats().misses), (1, 1));
}

#[test]
fn keys_of_one_table_hash_differently_in_another() {
    // Two tables have different seeds: the same keys land in different buckets, so a sender who
    // learns one table's collisions cannot reuse them against another process.
    let (a, b) = (table(1024), table(1024));
    let keys: HashSet<FlowKey> = (0..100).map(mixed).collect();
    for key in &keys {
        a.insert(*key, Source::Egress);
        b.insert(*key, Source::Egress);
    }
    let mut order_a = Vec::new();
    let mut order_b = Vec::new();
    a.for_each(|e| order_a.push(e.key));
    b.for_each(|e| order_b.push(e.key));
    assert_eq!(order_a.iter().copied().collect::<HashSet<_>>(), keys);
    assert_ne!(order_a, order_b);
}

/// The removal count moves for every entry that leaves the table, and for nothing else: a cache
/// of "owned" answers relies on it (`chance_engine::flow_cache`).
#[test]
fn the_removal_count_moves_whenever_an_entry_leaves() {
    let table = ConcurrentFlowTable::new(TableConfig {
        capacity: 8,
        syn_lifetime: Duration::from_secs(1),
    });
    let count = || table.removals();
    assert_eq!(count(), 0);
    table.insert(v4(1), Source::Static);
    table.insert(v4(2), Source::Socket);
    table.insert(v4(3), Source::Egress);
    table.insert(v4(2), Source::Static); // an upgrade
    table.insert_syn(v4(4));
    assert_eq!(table.lookup(&v4(1)), Lookup::Owned(Source::Static));
    assert_eq!(count(), 0, "inserts, upgrades and lookups remove nothing");

    assert!(table.remove_static(&v4(1)));
    assert_eq!(count(), 1);
    assert!(!table.remove(&v4(1)), "gone already");
    assert_eq!(count(), 1);
    assert_eq!(table.retain(|entry| entry.key != v4(3)), 1);
    assert_eq!(count(), 2);
    at(&table, 5);
    assert_eq!(table.purge_expired(), 1);
    assert_eq!(count(), 3);

    // At capacity, an insert evicts an egress entry.
    for i in 10..17 {
        table.insert(v4(i), Source::Egress);
    }
    assert_eq!(table.len(), 8);
    let before = count();
    assert!(matches!(
        table.insert(v4(30), Source::Socket),
        InsertOutcome::Evicted(Source::Egress)
    ));
    assert_eq!(count(), before + 1);
}

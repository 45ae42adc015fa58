//! The TX pool's invariant through a real port (net_ring, no NIC or hugepages): the transmit
//! loop copies only each template's head (at most the prefix, 192 bytes here) into buffers that
//! `tx::zero_pool` zeroed, and every frame still comes out byte for byte its template, with
//! valid inner checksums, whatever frame the buffer carried before (IMIX sizes, 0 to 2 hops,
//! IPv4 and IPv6: longer headers and longer frames before shorter ones and the reverse). Over a
//! pool left dirty instead, the same loop sends frames that differ from their templates: the
//! zeroing is what makes head-only copies right. One EAL per test binary, so one test.

mod common;

use chance_pktgen::profile::{Profile, Sizes};
use chance_pktgen::rx::{classify, Class};
use chance_pktgen::stamp::STAMP_LEN;
use chance_pktgen::stats::Counters;
use chance_pktgen::templates::{outer_len, Templates};
use chance_pktgen::tx::{zero_pool, TokenBucket, Transmitter};
use chance_runtime::mempool::DEFAULT_DATA_ROOM;
use chance_runtime::{
    ring_port, Mbuf, MbufBurst, Mempool, Port, PortConfig, PortQueue, Ring, SOCKET_ID_ANY,
};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::collections::HashMap;
use std::sync::Arc;

/// A one's-complement sum (`chance_testkit::checksum::sum`) that verifies.
fn folds_to_ffff(s: u32) -> bool {
    chance_testkit::checksum::finish(s) == 0
}

/// The inner TCP/UDP/ICMP checksum of a GUE frame verifies.
fn inner_checksum_ok(frame: &[u8]) -> bool {
    let inner = &frame[outer_len(frame[49])..];
    let Ok(ip) = SlicedPacket::from_ip(inner) else {
        return false;
    };
    let (pseudo, l4_len) = match &ip.net {
        Some(NetSlice::Ipv4(v4)) => (
            chance_testkit::checksum::sum(0, &inner[12..20]),
            v4.payload().payload.len(),
        ),
        Some(NetSlice::Ipv6(v6)) => (
            chance_testkit::checksum::sum(0, &inner[8..40]),
            v6.payload().payload.len(),
        ),
        _ => return false,
    };
    let proto = match ip.transport {
        Some(TransportSlice::Tcp(_)) => 6,
        Some(TransportSlice::Udp(_)) => 17,
        Some(TransportSlice::Icmpv4(_)) => 1,
        Some(TransportSlice::Icmpv6(_)) => 58,
        _ => return false,
    };
    // ICMPv4 has no pseudo-header.
    let pseudo = if proto == 1 {
        0
    } else {
        pseudo + proto + l4_len as u32
    };
    folds_to_ffff(chance_testkit::checksum::sum(
        pseudo,
        &inner[inner.len() - l4_len..],
    ))
}

/// Takes every mbuf of `pool` and fills its whole data room with non-zero bytes (a pattern, not
/// one value: runs of one repeated word can sum to zero and keep a checksum valid).
fn dirty(pool: &Mempool) {
    let mut all = Vec::new();
    while let Ok(mut m) = Mbuf::alloc(pool) {
        let room = m.tailroom();
        for (k, b) in m.append(room).unwrap().iter_mut().enumerate() {
            *b = 0x80 | (k % 0x7f) as u8;
        }
        all.push(m);
    }
    assert_eq!(all.len() as u32, pool.capacity());
}

#[derive(Default, Debug)]
struct Seen {
    frames: usize,
    /// Frames that differ from their template.
    differ: usize,
    /// Frames whose inner checksum fails.
    bad_checksum: usize,
    /// A buffer carried a frame shorter / longer than the one before it in that buffer.
    after_longer_frame: usize,
    after_shorter_frame: usize,
    /// ... a frame whose headers and stamp end before those of the frame before it.
    after_longer_header: usize,
}

/// Sends `rounds` bursts of `t` built from `pool` through the loop port and checks every frame
/// that comes back.
fn send_and_check(
    t: &Arc<Templates>,
    pool: &Mempool,
    q: &mut PortQueue,
    rounds: u64,
    seen: &mut Seen,
) {
    let mut tx = Transmitter::new(
        Arc::clone(t),
        Arc::new(vec![0; t.len()]),
        pool.clone(),
        TokenBucket::new(0, 1_000_000_000, 0), // flat out: full bursts
        0,
        0,
    );
    let mut c = Counters::default();
    let mut rx = MbufBurst::new();
    // What each buffer (by its data's address) carried last: frame length and stamp end.
    let mut last: HashMap<usize, (usize, usize)> = HashMap::new();
    for round in 1..=rounds {
        let now = 1000 * round;
        tx.step(now, &mut c, |b| q.tx_burst(b));
        while q.rx_burst(&mut rx) > 0 {
            for m in rx.iter() {
                let f = m.data();
                let (class, st) = classify(f, t);
                assert_eq!(class, Class::Looped);
                let i = st.expect("a stamp");
                let want = t.stamped(i.template as usize, i.seq, i.tsc);
                assert_eq!(i.tsc, now);
                seen.frames += 1;
                seen.differ += usize::from(f != &want[..]);
                seen.bad_checksum += usize::from(!inner_checksum_ok(f));
                let at = t.slots[i.template as usize]
                    .stamp
                    .expect("GUE templates are stamped");
                let tail = usize::from(at) + STAMP_LEN;
                if let Some((len, prev_tail)) = last.insert(f.as_ptr() as usize, (f.len(), tail)) {
                    seen.after_longer_frame += usize::from(len > f.len());
                    seen.after_shorter_frame += usize::from(len < f.len());
                    seen.after_longer_header += usize::from(prev_tail > tail);
                }
            }
            rx.clear();
        }
    }
    assert_eq!(c.tx_packets, 32 * rounds);
    assert_eq!(c.tx_alloc_failed, 0);
    assert_eq!(pool.in_use_count(), 0);
}

#[test]
fn head_copies_over_a_zeroed_pool_send_the_templates_exactly() {
    let eal = common::eal("txpool", "0", 128);

    let profile = Profile {
        flows: 64,
        templates: 120,
        size: Sizes::Imix,
        hops: vec![0, 1, 2],
        ipv6_share: 0.3,
        ..Profile::default()
    };
    let (_, templates) = chance_pktgen::traffic(&profile);
    let t = Arc::new(templates);
    assert_eq!(t.prefix, 192);
    // Frames longer than the prefix exist, and get only the prefix copied.
    assert!(t.slots.iter().any(|s| s.len == 1514 && s.copy == 192));

    let ring = Ring::new("txpool_loop", 1024, SOCKET_ID_ANY).unwrap();
    let id = ring_port("txpool", &ring, &ring).unwrap();
    let rx_pool = Mempool::new("txpool_rx", 255, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap();
    let config = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 128,
        tx_desc: 128,
        rss: false,
    };
    let mut port = Port::configure(id, config, &rx_pool).unwrap();
    port.start().unwrap();
    let mut q = port.queue(0).unwrap();

    // A small pool without cache: its 95 buffers carry the 120 templates in turn, each one a
    // different template (size, hops, family) every round.
    let pool = Mempool::new("txpool_tx", 95, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap();

    // Dirty buffers and head-only copies: frames longer than their head carry the dirt, and
    // their inner checksums fail.
    dirty(&pool);
    let mut seen = Seen::default();
    send_and_check(&t, &pool, &mut q, 20, &mut seen);
    assert!(
        seen.differ > 0 && seen.bad_checksum == seen.differ,
        "{seen:?}"
    );

    // Dirty, then zeroed as `run` does: every frame is its template.
    dirty(&pool);
    assert_eq!(zero_pool(&pool).unwrap(), 95);
    let mut seen = Seen::default();
    send_and_check(&t, &pool, &mut q, 300, &mut seen);
    assert_eq!(seen.frames, 32 * 300);
    assert_eq!((seen.differ, seen.bad_checksum), (0, 0), "{seen:?}");
    // The sequences that could leak a stale header or payload did happen, many times.
    assert!(seen.after_longer_frame > 500, "{seen:?}");
    assert!(seen.after_shorter_frame > 500, "{seen:?}");
    assert!(seen.after_longer_header > 500, "{seen:?}");

    // zero_pool needs every mbuf: one held elsewhere is an error, not a silent dirty buffer.
    let held = Mbuf::alloc(&pool).unwrap();
    let err = zero_pool(&pool).unwrap_err();
    assert_eq!((err.zeroed, err.capacity), (94, 95));
    drop(held);

    drop(q);
    port.stop().unwrap();
    port.close().unwrap();
    drop((pool, rx_pool, ring));
    eal.cleanup().expect("cleanup");
}

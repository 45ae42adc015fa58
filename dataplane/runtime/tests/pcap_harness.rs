//! net_pcap as a harness: a pcap in, every frame received until the first empty burst, sent
//! unchanged to a `tx_pcap`, and the output compared byte for byte (timestamps ignored: the PMD
//! writes wall-clock ones).

mod common;

use std::path::PathBuf;

use chance_runtime::mempool::DEFAULT_DATA_ROOM;
use chance_runtime::{MbufBurst, Mempool, Port, PortConfig, SOCKET_ID_ANY};
use common::pcap::{read_pcap, write_pcap};

const FRAMES: u32 = 200;

#[test]
fn pcap_in_pcap_out_is_byte_identical() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let pid = std::process::id();
    let input = dir.join(format!("chance-runtime-in-{pid}.pcap"));
    let output = dir.join(format!("chance-runtime-out-{pid}.pcap"));
    let frames: Vec<Vec<u8>> = (0..FRAMES)
        .map(|i| common::frame(i, 46 + (i as usize * 37) % 1450))
        .collect();
    write_pcap(&input, &frames);

    let vdev = format!(
        "--vdev=net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        output.display()
    );
    let _eal = common::eal("pcap", &[vdev]);
    let port_id = Port::by_name("net_pcap0").expect("the net_pcap0 vdev was probed");
    let pool = Mempool::new("pcap_pool", 1023, 32, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap();
    let mut port = Port::configure(port_id, PortConfig::default(), &pool).unwrap();
    port.start().unwrap();

    // A pcap file has no end-of-input event: a short burst, then 0 forever. Stop on the first 0.
    let mut burst = MbufBurst::new();
    let (mut received, mut sent) = (0, 0);
    while port.rx_burst(0, &mut burst) > 0 {
        received += burst.len();
        sent += port.tx_burst(0, &mut burst);
        assert!(burst.is_empty(), "net_pcap TX writes every frame");
    }
    let stats = port.stats().unwrap();
    assert_eq!(received, FRAMES as usize);
    assert_eq!(sent, FRAMES as usize);
    assert_eq!(
        (stats.ipackets, stats.opackets),
        (u64::from(FRAMES), u64::from(FRAMES))
    );
    assert_eq!(stats.rx_nombuf + stats.ierrors + stats.oerrors, 0);
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    assert_eq!((stats.ibytes, stats.obytes), (bytes, bytes));

    port.stop().unwrap(); // flushes and closes the tx_pcap
    port.close().unwrap();
    assert_eq!(pool.in_use_count(), 0);

    let out = read_pcap(&output);
    assert_eq!(out.len(), frames.len());
    for (i, (got, want)) in out.iter().zip(&frames).enumerate() {
        assert_eq!(got, want, "frame {i}");
    }
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
}

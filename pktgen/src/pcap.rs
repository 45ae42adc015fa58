//! Pcap mode: the traffic written to a capture instead of sent (fixtures, replays, Wireshark).
//! No EAL. Frame `i` is template `i % templates` stamped with sequence number `i` and TSC 0,
//! time-stamped `i` microseconds after 2020-09-13.

use crate::templates::Templates;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

/// Writes `count` frames of `templates` to `path` (classic pcap, Ethernet, microseconds).
///
/// # Errors
///
/// The file cannot be created or written.
pub fn write(path: &Path, templates: &Templates, count: u64) -> io::Result<()> {
    let file = io::BufWriter::new(std::fs::File::create(path)?);
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(file, header).map_err(io::Error::other)?;
    let n = templates.len() as u64;
    for i in 0..count {
        let frame = templates.stamped((i % n) as usize, i, 0);
        let packet = PcapPacket::new(
            Duration::from_secs(1_600_000_000) + Duration::from_micros(i),
            frame.len() as u32,
            &frame,
        );
        writer.write_packet(&packet).map_err(io::Error::other)?;
    }
    writer.into_writer().flush()
}

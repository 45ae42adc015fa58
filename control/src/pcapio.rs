//! Capture files: reading classic pcap or pcapng (told apart by the magic number) frame by frame,
//! and writing classic Ethernet pcaps.

use core::time::Duration;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use std::fs::File;
use std::io::{self, BufWriter, Cursor, Read, Write};
use std::path::Path;

/// Largest frame length written to output pcaps (libpcap's `MAXIMUM_SNAPLEN`).
pub const OUTPUT_SNAPLEN: u32 = 262_144;

/// What went wrong with a capture file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file has no bytes at all.
    #[error("empty file, not a pcap or pcapng capture")]
    Empty,
    /// The file starts with an unknown magic number.
    #[error("not a pcap or pcapng capture (starts with {})", hex::encode(.0))]
    UnknownFormat([u8; 4]),
    /// The file ends in the middle of a header or record.
    #[error("truncated: the file ends inside {0} (or a length field is corrupt)")]
    Truncated(&'static str),
    /// A header or record has an invalid field.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A pcapng packet names an interface that has no description block.
    #[error("malformed: packet on interface {0}, which has no interface description block")]
    UnknownInterface(u32),
    /// A frame cannot be written to a classic pcap.
    #[error("cannot write frame: {0}")]
    Unwritable(&'static str),
    /// A timestamp is past what a classic pcap can hold (32-bit seconds, early 2106).
    #[error("cannot write frame: timestamp {0} s is past what a classic pcap can hold")]
    TimestampOutOfRange(u64),
    /// The operating system failed a read or write.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl CaptureError {
    fn from_read(e: PcapError, inside: &'static str) -> Self {
        match e {
            PcapError::IncompleteBuffer => CaptureError::Truncated(inside),
            PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                CaptureError::Truncated(inside)
            }
            PcapError::IoError(e) => CaptureError::Io(e),
            PcapError::InvalidField(what) => CaptureError::Malformed(what.to_owned()),
            PcapError::Utf8Error(_) | PcapError::FromUtf8Error(_) => {
                CaptureError::Malformed(format!("invalid UTF-8 in {inside}"))
            }
            PcapError::InvalidInterfaceId(id) => CaptureError::UnknownInterface(id),
        }
    }

    fn from_write(e: PcapError) -> Self {
        match e {
            PcapError::IoError(e) => CaptureError::Io(e),
            PcapError::InvalidField(what) => CaptureError::Unwritable(what),
            other => CaptureError::Malformed(other.to_string()),
        }
    }
}

/// The two capture formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap format, either byte order, micro- or nanosecond timestamps.
    Pcap,
    /// pcapng.
    PcapNg,
}

/// One frame's metadata; its bytes go into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Capture time since the Unix epoch.
    pub timestamp: Duration,
    /// Length on the wire (at least the captured length).
    pub orig_len: u32,
    /// The link type of the interface it was captured on.
    pub link_type: DataLink,
}

/// What a pcapng interface description tells about its packets.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: DataLink,
    snaplen: u32,
    tsresol: u8,
    tsoffset: u64,
}

impl From<&InterfaceDescriptionBlock<'_>> for Interface {
    fn from(idb: &InterfaceDescriptionBlock<'_>) -> Self {
        let mut interface = Interface {
            link_type: idb.linktype,
            snaplen: idb.snaplen,
            tsresol: 6,
            tsoffset: 0,
        };
        for option in &idb.options {
            match option {
                InterfaceDescriptionOption::IfTsResol(r) => interface.tsresol = *r,
                InterfaceDescriptionOption::IfTsOffset(o) => interface.tsoffset = *o,
                _ => {}
            }
        }
        interface
    }
}

impl Interface {
    /// Converts a timestamp in this interface's units (`if_tsresol`, `if_tsoffset`).
    fn timestamp(&self, units: u64) -> Duration {
        let exp = u32::from(self.tsresol & 0x7f);
        let base = if self.tsresol & 0x80 == 0 {
            match 10u64.checked_pow(exp) {
                Some(per_sec) => {
                    let frac = u128::from(units % per_sec) * 1_000_000_000 / u128::from(per_sec);
                    // frac < 10^9 by construction.
                    Duration::new(units / per_sec, frac as u32)
                }
                None => Duration::from_nanos(10u64.checked_pow(exp - 9).map_or(0, |d| units / d)),
            }
        } else {
            let secs = if exp >= 64 { 0 } else { units >> exp };
            let frac = u128::from(units) & ((1u128 << exp) - 1);
            Duration::new(secs, ((frac * 1_000_000_000) >> exp) as u32)
        };
        base.checked_add(Duration::from_secs(self.tsoffset))
            .unwrap_or(base)
    }
}

type Source<R> = io::Chain<Cursor<[u8; 4]>, R>;

enum Inner<R: Read> {
    Pcap {
        reader: PcapReader<Source<R>>,
        header: PcapHeader,
    },
    PcapNg {
        reader: PcapNgReader<Source<R>>,
        interfaces: Vec<Interface>,
    },
}

/// Reads the frames of a classic pcap or pcapng capture, in file order.
pub struct CaptureReader<R: Read> {
    inner: Inner<R>,
}

impl<R: Read> core::fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format())
            .finish_non_exhaustive()
    }
}

impl CaptureReader<File> {
    /// Opens the capture at `path`.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Self::new(File::open(path)?)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header from `reader` and picks the format from its magic number.
    pub fn new(mut reader: R) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < magic.len() {
            match reader.read(&mut magic[got..]) {
                Ok(0) if got == 0 => return Err(CaptureError::Empty),
                Ok(0) => return Err(CaptureError::Truncated("the file header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let source = Cursor::new(magic).chain(reader);
        let header_error = |e| CaptureError::from_read(e, "the file header");
        let inner = match u32::from_be_bytes(magic) {
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                let reader = PcapReader::new(source).map_err(header_error)?;
                let header = reader.header();
                Inner::Pcap { reader, header }
            }
            0x0a0d_0d0a => Inner::PcapNg {
                reader: PcapNgReader::new(source).map_err(header_error)?,
                interfaces: Vec::new(),
            },
            _ => return Err(CaptureError::UnknownFormat(magic)),
        };
        Ok(Self { inner })
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        match self.inner {
            Inner::Pcap { .. } => Format::Pcap,
            Inner::PcapNg { .. } => Format::PcapNg,
        }
    }

    /// The timestamp resolution that loses nothing when frames are written to a classic pcap.
    pub fn resolution(&self) -> TsResolution {
        match &self.inner {
            Inner::Pcap { header, .. } => header.ts_resolution,
            Inner::PcapNg { .. } => TsResolution::NanoSecond,
        }
    }

    /// Reads the next frame into `buf` (replacing its contents); `None` at the end of the file.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Result<Option<FrameMeta>, CaptureError> {
        match &mut self.inner {
            Inner::Pcap { reader, header } => next_pcap(reader, header, buf),
            Inner::PcapNg { reader, interfaces } => next_pcapng(reader, interfaces, buf),
        }
    }
}

fn next_pcap<R: Read>(
    reader: &mut PcapReader<R>,
    header: &PcapHeader,
    buf: &mut Vec<u8>,
) -> Result<Option<FrameMeta>, CaptureError> {
    // Raw records: pcap-file's checked form refuses orig_len > snaplen, which any capture taken
    // with a short snaplen has.
    let Some(record) = reader.next_raw_packet() else {
        return Ok(None);
    };
    let record = record.map_err(|e| CaptureError::from_read(e, "a packet record"))?;
    let frac_nanos = match header.ts_resolution {
        TsResolution::MicroSecond => u64::from(record.ts_frac) * 1000,
        TsResolution::NanoSecond => u64::from(record.ts_frac),
    };
    buf.clear();
    buf.extend_from_slice(&record.data);
    Ok(Some(FrameMeta {
        timestamp: Duration::from_secs(u64::from(record.ts_sec)) + Duration::from_nanos(frac_nanos),
        orig_len: record.orig_len.max(record.incl_len),
        link_type: header.datalink,
    }))
}

fn next_pcapng<R: Read>(
    reader: &mut PcapNgReader<R>,
    interfaces: &mut Vec<Interface>,
    buf: &mut Vec<u8>,
) -> Result<Option<FrameMeta>, CaptureError> {
    loop {
        let Some(block) = reader.next_block() else {
            return Ok(None);
        };
        let block = block.map_err(|e| CaptureError::from_read(e, "a block"))?;
        let interface = |id: u32| {
            interfaces
                .get(id as usize)
                .copied()
                .ok_or(CaptureError::UnknownInterface(id))
        };
        let (interface, data, orig_len, timestamp) = match &block {
            Block::SectionHeader(_) => {
                interfaces.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                interfaces.push(Interface::from(idb));
                continue;
            }
            Block::EnhancedPacket(epb) => {
                let interface = interface(epb.interface_id)?;
                // pcap-file stores the raw timestamp units as nanoseconds, whatever if_tsresol says.
                let units = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                let ts = interface.timestamp(units);
                (interface, &epb.data[..], epb.original_len, ts)
            }
            Block::Packet(pb) => {
                let interface = interface(u32::from(pb.interface_id))?;
                let ts = interface.timestamp(pb.timestamp);
                (interface, &pb.data[..], pb.original_len, ts)
            }
            Block::SimplePacket(spb) => {
                let interface = interface(0)?;
                // The block's data includes its padding: the captured length is the original
                // length, cut to the interface's snaplen.
                let mut len = spb.data.len().min(spb.original_len as usize);
                if interface.snaplen != 0 {
                    len = len.min(interface.snaplen as usize);
                }
                (
                    interface,
                    &spb.data[..len],
                    spb.original_len,
                    Duration::ZERO,
                )
            }
            _ => continue,
        };
        buf.clear();
        buf.extend_from_slice(data);
        let captured = u32::try_from(data.len()).unwrap_or(u32::MAX);
        return Ok(Some(FrameMeta {
            timestamp,
            orig_len: orig_len.max(captured),
            link_type: interface.link_type,
        }));
    }
}

/// Writes frames to a classic pcap with the Ethernet link type.
pub struct EthernetPcapWriter<W: Write> {
    inner: PcapWriter<W>,
}

impl<W: Write> core::fmt::Debug for EthernetPcapWriter<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EthernetPcapWriter")
            .field("ts_resolution", &self.inner.ts_resolution())
            .finish_non_exhaustive()
    }
}

impl EthernetPcapWriter<BufWriter<File>> {
    /// Creates (or truncates) the file at `path` and writes the pcap header.
    pub fn create(path: &Path, resolution: TsResolution) -> Result<Self, CaptureError> {
        Self::new(BufWriter::new(File::create(path)?), resolution)
    }
}

impl<W: Write> EthernetPcapWriter<W> {
    /// Writes the pcap header to `writer`.
    pub fn new(writer: W, resolution: TsResolution) -> Result<Self, CaptureError> {
        let header = PcapHeader {
            snaplen: OUTPUT_SNAPLEN,
            datalink: DataLink::ETHERNET,
            ts_resolution: resolution,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let inner = PcapWriter::with_header(writer, header).map_err(CaptureError::from_write)?;
        Ok(Self { inner })
    }

    /// Appends one frame; `orig_len` below `data.len()` is raised to it.
    pub fn write(
        &mut self,
        timestamp: Duration,
        orig_len: u32,
        data: &[u8],
    ) -> Result<(), CaptureError> {
        let captured =
            u32::try_from(data.len()).map_err(|_| CaptureError::Unwritable("frame too long"))?;
        if u32::try_from(timestamp.as_secs()).is_err() {
            return Err(CaptureError::TimestampOutOfRange(timestamp.as_secs()));
        }
        let packet = PcapPacket::new(timestamp, orig_len.max(captured), data);
        self.inner
            .write_packet(&packet)
            .map(drop)
            .map_err(CaptureError::from_write)
    }

    /// Flushes the writer and returns it.
    pub fn finish(self) -> Result<W, CaptureError> {
        let mut writer = self.inner.into_writer();
        writer.flush()?;
        Ok(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(tsresol: u8, tsoffset: u64) -> Interface {
        Interface {
            link_type: DataLink::ETHERNET,
            snaplen: 0,
            tsresol,
            tsoffset,
        }
    }

    #[test]
    fn pcapng_timestamps_follow_if_tsresol() {
        assert_eq!(
            iface(6, 0).timestamp(1_500_000),
            Duration::from_millis(1500)
        );
        assert_eq!(
            iface(9, 0).timestamp(1_500_000_000),
            Duration::from_millis(1500)
        );
        assert_eq!(
            iface(0x80 | 10, 0).timestamp(1536),
            Duration::from_millis(1500)
        );
        assert_eq!(iface(6, 10).timestamp(1_000_000), Duration::from_secs(11));
    }

    #[test]
    fn extreme_resolutions_do_not_overflow() {
        for tsresol in [0u8, 19, 20, 30, 127, 0x80, 0x80 | 63, 0x80 | 64, 0xff] {
            let _ = iface(tsresol, u64::MAX).timestamp(u64::MAX);
        }
    }

    #[test]
    fn magic_numbers_pick_the_format() {
        assert!(matches!(
            CaptureReader::new(&[][..]),
            Err(CaptureError::Empty)
        ));
        assert!(matches!(
            CaptureReader::new(&[0xd4, 0xc3][..]),
            Err(CaptureError::Truncated(_))
        ));
        assert!(matches!(
            CaptureReader::new(&b"GIF89a"[..]),
            Err(CaptureError::UnknownFormat(_))
        ));
    }
}

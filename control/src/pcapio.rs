//! Capture files: reading classic pcap or pcapng (told apart by the magic number) frame by frame,
//! and writing classic Ethernet pcaps.

use core::time::Duration;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapParser, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The snaplen of output pcaps, unless a longer frame is written (libpcap's `MAXIMUM_SNAPLEN`).
pub const OUTPUT_SNAPLEN: u32 = 262_144;
/// The longest record (a pcap packet record or a pcapng block, its header included) read, and
/// the longest frame written:
/// 16 MiB, far beyond any link's frames (libpcap itself reads at most 256 KiB a frame), yet a
/// bound on the memory a corrupt length field can make a reader take.
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// How much is read from the file at a time.
const READ_CHUNK: usize = 1 << 20;

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
    /// A record is longer than [`MAX_RECORD_BYTES`] (or its length field is corrupt).
    #[error("a record is longer than the limit of {MAX_RECORD_BYTES} bytes (16 MiB), or its length field is corrupt")]
    RecordTooLong,
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

/// A reader's bytes, buffered so that one whole record is in memory when it is parsed; the
/// buffer grows to hold a long record, up to [`MAX_RECORD_BYTES`].
struct Records<R: Read> {
    reader: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already parsed.
    pos: usize,
    eof: bool,
}

impl<R: Read> Records<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            pos: 0,
            eof: false,
        }
    }

    /// True when every byte has been parsed.
    fn at_end(&mut self) -> Result<bool, CaptureError> {
        if self.pos == self.buf.len() && !self.eof {
            self.fill()?;
        }
        Ok(self.pos == self.buf.len())
    }

    /// Runs `parse` over the unparsed bytes, reading more while it needs more; `parse` answers
    /// the bytes it used and its result. At the end of the file a record still incomplete is
    /// truncated (`inside` names it).
    fn parse<O>(
        &mut self,
        inside: &'static str,
        mut parse: impl FnMut(&[u8]) -> Result<(usize, O), PcapError>,
    ) -> Result<O, CaptureError> {
        loop {
            match parse(&self.buf[self.pos..]) {
                Ok((used, out)) => {
                    self.pos += used;
                    return Ok(out);
                }
                Err(PcapError::IncompleteBuffer) if self.eof => {
                    return Err(CaptureError::Truncated(inside))
                }
                Err(PcapError::IncompleteBuffer) => {
                    if self.buf.len() - self.pos >= MAX_RECORD_BYTES {
                        return Err(CaptureError::RecordTooLong);
                    }
                    self.fill()?;
                }
                Err(e) => return Err(CaptureError::from_read(e, inside)),
            }
        }
    }

    /// Drops the parsed bytes and reads up to [`READ_CHUNK`] more, never holding more than
    /// [`MAX_RECORD_BYTES`] (none read: end of file).
    fn fill(&mut self) -> Result<(), CaptureError> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        let old = self.buf.len();
        self.buf
            .resize(MAX_RECORD_BYTES.min(old + READ_CHUNK).max(old + 1), 0);
        let read = loop {
            match self.reader.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        self.buf.truncate(old + *read.as_ref().unwrap_or(&0));
        self.eof = read? == 0;
        Ok(())
    }
}

/// Bytes used by a parser that returned `rest` of `input`.
fn used(input: &[u8], rest: &[u8]) -> usize {
    input.len() - rest.len()
}

enum Inner<R: Read> {
    Pcap {
        records: Records<R>,
        parser: PcapParser,
        header: PcapHeader,
    },
    PcapNg {
        records: Records<R>,
        parser: PcapNgParser,
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
    pub fn new(reader: R) -> Result<Self, CaptureError> {
        let mut records = Records::new(reader);
        if records.at_end()? {
            return Err(CaptureError::Empty);
        }
        let magic = records.parse("the file header", |b| match b.get(..4) {
            Some(m) => Ok((0, [m[0], m[1], m[2], m[3]])),
            None => Err(PcapError::IncompleteBuffer),
        })?;
        let inner = match u32::from_be_bytes(magic) {
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                let parser = records.parse("the file header", |b| {
                    PcapParser::new(b).map(|(rest, p)| (used(b, rest), p))
                })?;
                let header = parser.header();
                Inner::Pcap {
                    records,
                    parser,
                    header,
                }
            }
            0x0a0d_0d0a => {
                let parser = records.parse("the file header", |b| {
                    PcapNgParser::new(b).map(|(rest, p)| (used(b, rest), p))
                })?;
                Inner::PcapNg {
                    records,
                    parser,
                    interfaces: Vec::new(),
                }
            }
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
            Inner::Pcap {
                records,
                parser,
                header,
            } => next_pcap(records, parser, header, buf),
            Inner::PcapNg {
                records,
                parser,
                interfaces,
            } => next_pcapng(records, parser, interfaces, buf),
        }
    }
}

fn next_pcap<R: Read>(
    records: &mut Records<R>,
    parser: &PcapParser,
    header: &PcapHeader,
    buf: &mut Vec<u8>,
) -> Result<Option<FrameMeta>, CaptureError> {
    if records.at_end()? {
        return Ok(None);
    }
    // Raw records: pcap-file's checked form refuses orig_len > snaplen, which any capture taken
    // with a short snaplen has.
    let (ts_sec, ts_frac, orig_len) = records.parse("a packet record", |b| {
        let (rest, record) = parser.next_raw_packet(b)?;
        buf.clear();
        buf.extend_from_slice(&record.data);
        Ok((
            used(b, rest),
            (record.ts_sec, record.ts_frac, record.orig_len),
        ))
    })?;
    let incl_len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    let frac_nanos = match header.ts_resolution {
        TsResolution::MicroSecond => u64::from(ts_frac) * 1000,
        TsResolution::NanoSecond => u64::from(ts_frac),
    };
    Ok(Some(FrameMeta {
        timestamp: Duration::from_secs(u64::from(ts_sec)) + Duration::from_nanos(frac_nanos),
        orig_len: orig_len.max(incl_len),
        link_type: header.datalink,
    }))
}

fn next_pcapng<R: Read>(
    records: &mut Records<R>,
    parser: &mut PcapNgParser,
    interfaces: &mut Vec<Interface>,
    buf: &mut Vec<u8>,
) -> Result<Option<FrameMeta>, CaptureError> {
    loop {
        if records.at_end()? {
            return Ok(None);
        }
        let frame = records.parse("a block", |b| {
            let (rest, block) = parser.next_block(b)?;
            Ok((used(b, rest), pcapng_frame(&block, interfaces, buf)))
        })?;
        if let Some(frame) = frame.transpose() {
            return frame.map(Some);
        }
    }
}

/// What one pcapng block means: a frame (its bytes put in `buf`), or `Ok(None)` for a block
/// that is not one (an interface description is recorded).
fn pcapng_frame(
    block: &Block<'_>,
    interfaces: &mut Vec<Interface>,
    buf: &mut Vec<u8>,
) -> Result<Option<FrameMeta>, CaptureError> {
    let interface = |id: u32| {
        interfaces
            .get(id as usize)
            .copied()
            .ok_or(CaptureError::UnknownInterface(id))
    };
    let (interface, data, orig_len, timestamp) = match block {
        Block::SectionHeader(_) => {
            interfaces.clear();
            return Ok(None);
        }
        Block::InterfaceDescription(idb) => {
            interfaces.push(Interface::from(idb));
            return Ok(None);
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
        _ => return Ok(None),
    };
    buf.clear();
    buf.extend_from_slice(data);
    let captured = u32::try_from(data.len()).unwrap_or(u32::MAX);
    Ok(Some(FrameMeta {
        timestamp,
        orig_len: orig_len.max(captured),
        link_type: interface.link_type,
    }))
}

/// Writes frames to a classic pcap with the Ethernet link type.
///
/// The header's snaplen is [`OUTPUT_SNAPLEN`], or the longest frame written when that is longer
/// (up to [`MAX_RECORD_BYTES`]): it is written as the limit and set to its final value by
/// [`EthernetPcapWriter::finish`], which is why the writer must be seekable.
pub struct EthernetPcapWriter<W: Write> {
    inner: PcapWriter<W>,
    /// The longest frame written.
    longest: u32,
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
            snaplen: MAX_RECORD_BYTES as u32,
            datalink: DataLink::ETHERNET,
            ts_resolution: resolution,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let inner = PcapWriter::with_header(writer, header).map_err(CaptureError::from_write)?;
        Ok(Self { inner, longest: 0 })
    }

    /// Appends one frame; `orig_len` below `data.len()` is raised to it.
    pub fn write(
        &mut self,
        timestamp: Duration,
        orig_len: u32,
        data: &[u8],
    ) -> Result<(), CaptureError> {
        let captured = u32::try_from(data.len())
            .ok()
            .filter(|&len| len as usize <= MAX_RECORD_BYTES)
            .ok_or(CaptureError::Unwritable("frame longer than 16 MiB"))?;
        if u32::try_from(timestamp.as_secs()).is_err() {
            return Err(CaptureError::TimestampOutOfRange(timestamp.as_secs()));
        }
        let packet = PcapPacket::new(timestamp, orig_len.max(captured), data);
        self.inner
            .write_packet(&packet)
            .map_err(CaptureError::from_write)?;
        self.longest = self.longest.max(captured);
        Ok(())
    }
}

impl<W: Write + Seek> EthernetPcapWriter<W> {
    /// Sets the header's snaplen to cover the frames written, flushes the writer and returns it.
    pub fn finish(self) -> Result<W, CaptureError> {
        /// Where the snaplen field is in a classic pcap header.
        const SNAPLEN_OFFSET: u64 = 16;
        let snaplen = self.longest.max(OUTPUT_SNAPLEN);
        let mut writer = self.inner.into_writer();
        writer.seek(SeekFrom::Start(SNAPLEN_OFFSET))?;
        // The header is in the native byte order (see `new`).
        writer.write_all(&snaplen.to_ne_bytes())?;
        writer.seek(SeekFrom::End(0))?;
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

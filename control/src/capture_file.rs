//! `chancectl capture`'s output: a pcapng file of a capture's frames. One interface per port
//! (0: nic, 1: kernel), nanosecond timestamps, each packet's verdict in its comment
//! (`verdict=forward`), which `tcpdump -r` and Wireshark read.

use crate::api::CaptureReply;
use anyhow::Context;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

/// The output file cannot be created (a usage error: exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("cannot create {path}: {error}")]
pub struct OutputError {
    /// The file.
    pub path: String,
    /// Why.
    pub error: std::io::Error,
}

/// The interfaces, in the order of their ids.
pub const INTERFACES: [&str; 2] = ["nic", "kernel"];
/// Nanosecond timestamps (the option's value: 10^-9).
const NANOSECONDS: u8 = 9;

/// Writes `reply`'s frames as pcapng to `out`.
pub fn write_pcapng<W: Write>(out: W, reply: &CaptureReply) -> anyhow::Result<W> {
    let mut writer = PcapNgWriter::new(out).context("writing the section header")?;
    for name in INTERFACES {
        writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: u32::try_from(reply.snaplen).unwrap_or(0),
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                    InterfaceDescriptionOption::IfTsResol(NANOSECONDS),
                ],
            })
            .context("writing an interface description")?;
    }
    for (i, frame) in reply.frames.iter().enumerate() {
        let interface_id = INTERFACES
            .iter()
            .position(|p| *p == frame.port)
            .with_context(|| format!("frame {i}: unknown port `{}`", frame.port))?;
        let data = hex::decode(&frame.data).with_context(|| format!("frame {i}: bad hex"))?;
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: interface_id as u32,
                timestamp: Duration::from_nanos(frame.timestamp_ns),
                original_len: u32::try_from(frame.len).unwrap_or(u32::MAX),
                data: Cow::Owned(data),
                options: vec![EnhancedPacketOption::Comment(Cow::Owned(format!(
                    "verdict={}",
                    frame.verdict
                )))],
            })
            .with_context(|| format!("writing frame {i}"))?;
    }
    Ok(writer.into_inner())
}

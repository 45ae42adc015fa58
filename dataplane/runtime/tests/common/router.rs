//! A frame router for tests: frames to 10.1.0.0/16 are encapsulated with the table's header,
//! frames to 10.9.0.0/16 dropped, every other frame passed; its table is swapped at a burst
//! boundary, as a director's is. It checks that the worker hands it each burst ahead
//! (`prepare_burst`) with exactly the frames it then routes, in order.

use arc_swap::ArcSwap;
use chance_runtime::{FrameAction, FrameRouter};
use std::collections::VecDeque;
use std::sync::Arc;

/// The received frames' Ethernet header, which encapsulation strips.
pub const ETHERNET: usize = 14;
/// Where the test frames carry their IPv4 destination address.
pub const DST: core::ops::Range<usize> = ETHERNET + 16..ETHERNET + 20;
/// The mbufs' headroom (`RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: usize = 128;

/// The test router's table: frames to 10.1.x.x get `header` (its last two bytes: the payload's
/// length), frames to 10.9.x.x are dropped, every other frame is passed.
#[derive(Debug)]
pub struct Table {
    pub header: Vec<u8>,
}

#[derive(Debug)]
pub struct TestRouter {
    table: Arc<ArcSwap<Table>>,
    /// The table of the current burst.
    current: Arc<Table>,
    /// The frames of the current burst handed ahead and not routed yet.
    prepared: VecDeque<Vec<u8>>,
}

impl TestRouter {
    pub fn new(table: &Arc<ArcSwap<Table>>) -> Self {
        Self {
            table: Arc::clone(table),
            current: table.load_full(),
            prepared: VecDeque::new(),
        }
    }
}

impl FrameRouter for TestRouter {
    fn begin_burst(&mut self) {
        self.current = self.table.load_full();
    }

    fn prepare_burst<'f>(&mut self, frames: impl Iterator<Item = &'f [u8]>) {
        assert!(
            self.prepared.is_empty(),
            "the last burst was routed in full"
        );
        self.prepared.extend(frames.map(<[u8]>::to_vec));
        assert!(!self.prepared.is_empty(), "a burst has frames");
    }

    fn end_burst(&mut self) {
        assert!(
            self.prepared.is_empty(),
            "every frame handed ahead was routed"
        );
    }

    fn route(&mut self, frame: &[u8]) -> FrameAction {
        assert_eq!(
            self.prepared.pop_front().as_deref(),
            Some(frame),
            "frames are routed as they were handed ahead"
        );
        match frame.get(DST) {
            Some([10, 1, _, _]) => FrameAction::Encapsulate {
                strip: ETHERNET,
                keep: usize::MAX,
                header_len: self.current.header.len(),
            },
            Some([10, 9, _, _]) => FrameAction::Drop,
            _ => FrameAction::Pass,
        }
    }

    fn write_header(&mut self, header: &mut [u8], payload: &[u8]) {
        header.copy_from_slice(&self.current.header);
        let len = header.len();
        header[len - 2..].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    }
}

/// What the test router makes of a frame to 10.1.x.x with `header`.
pub fn encapsulated(header: &[u8], frame: &[u8]) -> Vec<u8> {
    let payload = &frame[ETHERNET..];
    let mut out = header.to_vec();
    let len = out.len();
    out[len - 2..].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An Ethernet frame with a 20-byte IPv4-like header to `dst` and `payload` bytes behind it.
pub fn frame_to(dst: [u8; 4], payload: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00];
    f.extend_from_slice(&[0x45; 16]);
    f.extend_from_slice(&dst);
    f.extend((0..payload).map(|i| seed.wrapping_add(i as u8)));
    f
}

pub fn header(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|i| fill ^ i as u8).collect()
}

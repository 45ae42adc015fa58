//! The 24-byte stamp at the start of every inner payload (right after the inner TCP, UDP or ICMP
//! header): which template the frame came from, a per-packet sequence number and the TSC at
//! transmission, for classification and latency.
//!
//! | bytes | field |
//! |---|---|
//! | 0..2 | magic `0xC6 0x47` |
//! | 2..4 | checksum compensation (big-endian) |
//! | 4..8 | template index (little-endian u32) |
//! | 8..16 | sequence number (little-endian u64; the top byte is the sending lcore's index) |
//! | 16..24 | TSC when the burst was built (little-endian u64; 0 in pcap mode) |
//!
//! The compensation word makes the one's-complement sum of bytes 2..24 zero, so the inner
//! TCP/UDP/ICMP checksum computed when the template was built stays valid for every stamp:
//! decapsulated packets reach a real kernel intact.

/// Stamp length.
pub const STAMP_LEN: usize = 24;
/// The magic bytes.
pub const MAGIC: [u8; 2] = [0xc6, 0x47];

/// A decoded stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Template index.
    pub template: u32,
    /// Sequence number (top byte: the sending lcore's index).
    pub seq: u64,
    /// TSC at transmission (0: none).
    pub tsc: u64,
}

/// The stamp written into templates: magic, and zeros (whose sum is zero already).
pub const PLACEHOLDER: [u8; STAMP_LEN] = {
    let mut p = [0u8; STAMP_LEN];
    p[0] = MAGIC[0];
    p[1] = MAGIC[1];
    p
};

/// A value congruent to `v` mod 0xffff (its one's-complement sum as big-endian 16-bit words,
/// since 2^16 = 1 mod 0xffff), below 2^33: the two 32-bit halves added.
#[inline(always)]
fn fold32(v: u64) -> u64 {
    (v & 0xffff_ffff) + (v >> 32)
}

/// Writes the stamp's variable fields into `buf[..STAMP_LEN]`, which holds a [`PLACEHOLDER`]
/// (the magic is left as it is).
///
/// # Panics
///
/// If `buf` is shorter than [`STAMP_LEN`].
#[inline(always)]
pub fn write(buf: &mut [u8], template: u32, seq: u64, tsc: u64) {
    let buf = &mut buf[..STAMP_LEN];
    let t = template.to_le_bytes();
    let s = seq.to_le_bytes();
    let c = tsc.to_le_bytes();
    buf[4..8].copy_from_slice(&t);
    buf[8..16].copy_from_slice(&s);
    buf[16..24].copy_from_slice(&c);
    // The bytes as big-endian words, summed mod 0xffff; the compensation is its complement.
    let sum = u64::from(u32::from_be_bytes(t))
        + fold32(u64::from_be_bytes(s))
        + fold32(u64::from_be_bytes(c));
    let fix = 0xffff - (sum % 0xffff) as u16;
    buf[2..4].copy_from_slice(&fix.to_be_bytes());
}

/// Reads a stamp from the start of `buf`, if it has one (length and magic).
#[inline]
pub fn read(buf: &[u8]) -> Option<Stamp> {
    let b: &[u8; STAMP_LEN] = buf.get(..STAMP_LEN)?.try_into().ok()?;
    if b[..2] != MAGIC {
        return None;
    }
    Some(Stamp {
        template: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        seq: u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        tsc: u64::from_le_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One's-complement sum of big-endian 16-bit words, folded.
    fn sum16(bytes: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for w in bytes.chunks(2) {
            s += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn round_trip_and_zero_sum() {
        for (t, s, c) in [
            (0, 0, 0),
            (7, 1, 2),
            (u32::MAX, u64::MAX, u64::MAX),
            (123_456, 0x0100_0000_0000_0042, 0x0000_1234_5678_9abc),
        ] {
            let mut b = PLACEHOLDER;
            write(&mut b, t, s, c);
            assert_eq!(
                read(&b),
                Some(Stamp {
                    template: t,
                    seq: s,
                    tsc: c
                })
            );
            // Bytes 2..24 sum to zero (0 or 0xffff), as the placeholder's do.
            let sum = sum16(&b[2..]);
            assert!(sum == 0 || sum == 0xffff, "{sum:#x} for {t} {s} {c}");
        }
        assert_eq!(read(&[0u8; 24]), None);
        assert_eq!(read(&PLACEHOLDER[..10]), None);
    }
}

//! Counters: each worker counts in plain integers and publishes them into its [`Shared`] block
//! (relaxed atomic stores, once per loop iteration that did something) for the main lcore's
//! per-second progress line; the latency histogram stays with the worker until it is joined.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a worker counts. All values are totals since the worker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets the TX queue accepted.
    pub tx_packets: u64,
    /// Their bytes (no FCS).
    pub tx_bytes: u64,
    /// Packets built but refused by a full TX queue (freed).
    pub tx_refused: u64,
    /// Packets a full TX queue sent back to be retried (flat out), summed over the attempts.
    pub tx_held: u64,
    /// Packets the rate limit would have sent but the loop came back too late for (it was
    /// descheduled, or cannot keep the rate); not sent, not counted as loss.
    pub tx_late: u64,
    /// Bursts not built because the mempool was empty.
    pub tx_alloc_failed: u64,
    /// Of the packets sent, those expected back (`--expect`).
    pub tx_expected_back: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Received, by class (the index of [`crate::rx::Class`]).
    pub rx_class: [u64; 4],
    /// Received during the measurement, by class: stamped packets sent in the measurement
    /// window (whenever they arrive), and unstamped ones (`Other`) that arrived after it began.
    pub rx_window: [u64; 4],
    /// TSC cycles spent in loop iterations that sent or received something.
    pub busy_cycles: u64,
    /// TSC cycles in the loop.
    pub loop_cycles: u64,
}

impl Counters {
    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let sub4 = |a: [u64; 4], b: [u64; 4]| -> [u64; 4] {
            std::array::from_fn(|i| a[i].wrapping_sub(b[i]))
        };
        Counters {
            tx_packets: self.tx_packets.wrapping_sub(earlier.tx_packets),
            tx_bytes: self.tx_bytes.wrapping_sub(earlier.tx_bytes),
            tx_refused: self.tx_refused.wrapping_sub(earlier.tx_refused),
            tx_late: self.tx_late.wrapping_sub(earlier.tx_late),
            tx_held: self.tx_held.wrapping_sub(earlier.tx_held),
            tx_alloc_failed: self.tx_alloc_failed.wrapping_sub(earlier.tx_alloc_failed),
            tx_expected_back: self.tx_expected_back.wrapping_sub(earlier.tx_expected_back),
            rx_packets: self.rx_packets.wrapping_sub(earlier.rx_packets),
            rx_bytes: self.rx_bytes.wrapping_sub(earlier.rx_bytes),
            rx_class: sub4(self.rx_class, earlier.rx_class),
            rx_window: sub4(self.rx_window, earlier.rx_window),
            busy_cycles: self.busy_cycles.wrapping_sub(earlier.busy_cycles),
            loop_cycles: self.loop_cycles.wrapping_sub(earlier.loop_cycles),
        }
    }

    /// Adds `other` field by field.
    pub fn add(&mut self, other: &Counters) {
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.tx_refused += other.tx_refused;
        self.tx_late += other.tx_late;
        self.tx_held += other.tx_held;
        self.tx_alloc_failed += other.tx_alloc_failed;
        self.tx_expected_back += other.tx_expected_back;
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        for (a, b) in self.rx_class.iter_mut().zip(other.rx_class) {
            *a += b;
        }
        for (a, b) in self.rx_window.iter_mut().zip(other.rx_window) {
            *a += b;
        }
        self.busy_cycles += other.busy_cycles;
        self.loop_cycles += other.loop_cycles;
    }
}

const FIELDS: usize = 19;

/// A worker's published counters and its measurement window, shared with the main lcore and
/// the other workers.
#[derive(Debug)]
pub struct Shared {
    values: [AtomicU64; FIELDS],
    /// First sequence number sent in the measurement window (`u64::MAX` until it starts).
    window_first: AtomicU64,
    /// First sequence number after the window (`u64::MAX` until it ends).
    window_end: AtomicU64,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            values: std::array::from_fn(|_| AtomicU64::new(0)),
            window_first: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
        }
    }
}

impl Shared {
    /// Publishes `c` (relaxed stores: each value is exact, the set is not a snapshot).
    #[inline]
    pub fn publish(&self, c: &Counters) {
        let v = [
            c.tx_packets,
            c.tx_bytes,
            c.tx_refused,
            c.tx_alloc_failed,
            c.tx_expected_back,
            c.rx_packets,
            c.rx_bytes,
            c.rx_class[0],
            c.rx_class[1],
            c.rx_class[2],
            c.rx_class[3],
            c.rx_window[0],
            c.rx_window[1],
            c.rx_window[2],
            c.rx_window[3],
            c.busy_cycles,
            c.loop_cycles,
            c.tx_late,
            c.tx_held,
        ];
        for (a, v) in self.values.iter().zip(v) {
            a.store(v, Ordering::Relaxed);
        }
    }

    /// The last published counters.
    pub fn read(&self) -> Counters {
        let v: [u64; FIELDS] = std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed));
        Counters {
            tx_packets: v[0],
            tx_bytes: v[1],
            tx_refused: v[2],
            tx_alloc_failed: v[3],
            tx_expected_back: v[4],
            rx_packets: v[5],
            rx_bytes: v[6],
            rx_class: [v[7], v[8], v[9], v[10]],
            rx_window: [v[11], v[12], v[13], v[14]],
            busy_cycles: v[15],
            loop_cycles: v[16],
            tx_late: v[17],
            tx_held: v[18],
        }
    }

    /// Opens the measurement window at sequence number `seq`.
    pub fn open_window(&self, seq: u64) {
        self.window_first.store(seq, Ordering::Release);
    }

    /// Closes the measurement window before sequence number `seq`.
    pub fn close_window(&self, seq: u64) {
        self.window_end.store(seq, Ordering::Release);
    }

    /// True when `seq` was sent in the measurement window.
    #[inline]
    pub fn in_window(&self, seq: u64) -> bool {
        seq >= self.window_first.load(Ordering::Relaxed)
            && seq < self.window_end.load(Ordering::Relaxed)
    }
}

/// Sub-buckets per power of two: values are kept to within 1/16 (6.25 %).
const SUB: u32 = 16;
const SUB_BITS: u32 = 4;
const BUCKETS: usize = ((64 - SUB_BITS + 1) * SUB) as usize;

/// A log-linear histogram of TSC cycle counts: exact below 16, then 16 buckets per power of
/// two (each value is reported as its bucket's midpoint, within 3.2 %); min, max and mean exact.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Box<[u64; BUCKETS]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: Box::new([0; BUCKETS]),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < u64::from(SUB) {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS
    let m = (v >> (e - SUB_BITS)) & u64::from(SUB - 1);
    ((e - SUB_BITS + 1) * SUB) as usize + m as usize
}

/// The smallest value of bucket `b` and its width.
fn bucket_range(b: usize) -> (u64, u64) {
    let b = b as u64;
    if b < u64::from(SUB) {
        return (b, 1);
    }
    let e = b / u64::from(SUB) - 1 + u64::from(SUB_BITS);
    let m = b % u64::from(SUB);
    let width = 1u64 << (e - u64::from(SUB_BITS));
    (((u64::from(SUB)) + m) * width, width)
}

impl Histogram {
    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.buckets[bucket(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds another histogram.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest value (None when empty).
    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    /// The largest value.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// The mean.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The value below which `q` (0..=1) of the values lie: the midpoint of its bucket,
    /// clamped to [min, max].
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (lo, w) = bucket_range(b);
                return Some((lo + w / 2).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values() {
        for v in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            33,
            1000,
            123_456,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let (lo, w) = bucket_range(bucket(v));
            assert!(lo <= v && v - lo < w, "{v}: {lo}+{w}");
        }
        assert!(bucket(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_within_a_bucket() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        assert_eq!((h.min(), h.max()), (Some(1), Some(10_000)));
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 5000.0 - 1.0).abs() < 0.04, "{p50}");
        assert!((p99 / 9900.0 - 1.0).abs() < 0.04, "{p99}");
        assert!((h.mean().unwrap() - 5000.5).abs() < 1e-6);
        let mut g = Histogram::default();
        g.record(20_000);
        h.merge(&g);
        assert_eq!(h.max(), Some(20_000));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}

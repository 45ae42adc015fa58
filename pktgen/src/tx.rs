//! The transmit side of a worker: a token bucket on the TSC, and bursts built from the templates
//! (one bulk allocation, then per packet one copy of the template's head and the stamp's 22
//! bytes).
//!
//! The TX pool is the transmitters' alone (received frames go to a pool of their own) and its
//! buffers are zero past the templates' prefix: [`zero_pool`] zeroes every data room once
//! before sending, and nothing writes past the prefix after that. A frame is its head followed
//! by zeros ([`crate::templates`]), so copying the head (the frame padded to 64 bytes, or the
//! first [`Templates::prefix`] bytes of a longer one: 192 for the benchmark profiles) and
//! setting the length builds the whole frame, whatever its size, much as testpmd's txonly
//! writes its 42 header bytes only.

use crate::stamp;
use crate::stats::Counters;
use crate::templates::Templates;
use chance_runtime::generator::{alloc_bulk_copy, tsc};
use chance_runtime::{Mbuf, MbufBurst, Mempool, BURST_SIZE};
use std::sync::Arc;

/// [`zero_pool`] could not take every mbuf of the pool (some are in use): the ones it did not
/// zero may hold anything.
#[derive(Debug, thiserror::Error)]
#[error("mempool {pool}: zeroed {zeroed} of its {capacity} mbufs (the rest are in use)")]
pub struct ZeroPoolError {
    /// The pool's name.
    pub pool: String,
    /// Mbufs zeroed.
    pub zeroed: u32,
    /// Mbufs in the pool.
    pub capacity: u32,
}

/// Writes zeros over the whole data room (from the data's start, after the headroom, to the
/// end of the buffer) of every mbuf of `pool`: takes them all, zeroes them and frees them.
/// Call it on a new TX pool, before anything else uses it. Returns how many were zeroed (the
/// pool's capacity).
///
/// # Errors
///
/// [`ZeroPoolError`] when some mbufs could not be taken (allocated elsewhere, or held in
/// another lcore's cache).
pub fn zero_pool(pool: &Mempool) -> Result<u32, ZeroPoolError> {
    let capacity = pool.capacity();
    let mut all = Vec::with_capacity(capacity as usize);
    while let Ok(mut m) = Mbuf::alloc(pool) {
        let room = m.tailroom();
        if let Ok(data) = m.append(room) {
            data.fill(0);
            all.push(m);
        } else {
            break;
        }
    }
    let zeroed = all.len() as u32;
    drop(all);
    if zeroed == capacity {
        Ok(zeroed)
    } else {
        Err(ZeroPoolError {
            pool: pool.name().to_owned(),
            zeroed,
            capacity,
        })
    }
}

/// TSC cycles to wait after a full TX queue accepted nothing (about 0.8 µs at 2.6 GHz).
const BACKOFF_CYCLES: u64 = 2000;

/// Rate limiting on the TSC: `rate` packets per second, bursts of at most [`BURST_SIZE`].
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Packets per second (0: unlimited).
    rate: u64,
    hz: u64,
    /// Credit in packet * Hz units (one packet = `hz`).
    credit: u64,
    /// Most credit kept: two bursts or 200 µs of traffic, whichever is more. A loop that comes
    /// back later than that (descheduled) sends up to this much at once and drops the rest of
    /// its credit (counted as late).
    cap: u64,
    last: u64,
    /// Credit dropped at the cap, in packet * Hz units: time the loop did not get.
    late: u64,
}

impl TokenBucket {
    /// A bucket for `rate` packets per second on a clock of `hz` ticks per second.
    pub fn new(rate: u64, hz: u64, now: u64) -> Self {
        Self {
            rate,
            hz,
            credit: 0,
            cap: (2 * BURST_SIZE as u64).max(rate / 5000) * hz,
            last: now,
            late: 0,
        }
    }

    /// Keeps up to 100 ms of credit instead of 200 µs: a loop descheduled for up to that long
    /// makes the time up afterwards, sending as fast as the queue takes them until it is back
    /// on schedule, so the mean rate holds on a busy machine (at the cost of bursts).
    pub fn keeping_up(mut self) -> Self {
        self.cap = self.cap.max(self.rate / 10 * self.hz);
        self
    }

    /// Packets the bucket would have sent but dropped because the loop came back too late
    /// (descheduled, or slower than the rate).
    pub fn late(&self) -> u64 {
        self.late / self.hz.max(1)
    }

    /// How many packets may go now, at most `max` (the credit is taken).
    #[inline]
    pub fn take(&mut self, now: u64, max: usize) -> usize {
        if self.rate == 0 {
            return max;
        }
        // At most one second of elapsed time per refill keeps the product in range.
        let elapsed = now.saturating_sub(self.last).min(self.hz);
        self.last = now;
        let credit = self.credit + elapsed.saturating_mul(self.rate);
        if credit > self.cap {
            self.late += credit - self.cap;
        }
        self.credit = credit.min(self.cap);
        let n = ((self.credit / self.hz) as usize).min(max);
        self.credit -= n as u64 * self.hz;
        n
    }

    /// Gives back `n` packets' credit (a burst that could not be built).
    #[inline]
    pub fn refund(&mut self, n: usize) {
        if self.rate != 0 {
            self.credit = (self.credit + n as u64 * self.hz).min(self.cap);
        }
    }
}

/// One worker's transmit state.
#[derive(Debug)]
pub struct Transmitter {
    templates: Arc<Templates>,
    /// 1 when the template's packets are expected back, per template.
    expect_back: Arc<Vec<u8>>,
    pool: Mempool,
    bucket: TokenBucket,
    /// Built and not sent yet (flat out: what a full queue refused, sent first next time).
    burst: MbufBurst,
    /// The template of each mbuf in `burst`.
    held: [u32; BURST_SIZE],
    /// Keep what the queue refuses for the next burst (flat out, or with a count) instead of
    /// dropping it.
    retry: bool,
    /// Packets still to build ([`Transmitter::with_count`]; `u64::MAX`: no end).
    left: u64,
    next: usize,
    seq: u64,
}

impl Transmitter {
    /// Starts at template `first`, sequence numbers from `seq_base`. Flat out (a bucket without
    /// a rate) what the queue refuses is sent first next time (backpressure, as a NIC applies
    /// it); with a rate it is dropped and counted as refused (loss: the rate was not kept).
    ///
    /// `pool` must be a TX pool prepared by [`zero_pool`] and used only by transmitters of
    /// these templates (or of templates with the same or a longer prefix): the frames are
    /// built from their heads over buffers assumed to be zero past the prefix.
    pub fn new(
        templates: Arc<Templates>,
        expect_back: Arc<Vec<u8>>,
        pool: Mempool,
        bucket: TokenBucket,
        first: usize,
        seq_base: u64,
    ) -> Self {
        let next = first % templates.len().max(1);
        let retry = bucket.rate == 0;
        Self {
            templates,
            expect_back,
            pool,
            bucket,
            burst: MbufBurst::new(),
            held: [0; BURST_SIZE],
            retry,
            left: u64::MAX,
            next,
            seq: seq_base,
        }
    }

    /// Builds `count` packets in all and then no more; what the queue refuses is held and sent
    /// first next time (backpressure), with a rate too, and the bucket keeps up
    /// ([`TokenBucket::keeping_up`]). A count is a number of packets handed to the queue at a
    /// mean rate: time the loop could not use (descheduled, the queue full) is made up
    /// afterwards or makes the run longer, and never costs packets, so a paced run on a busy
    /// machine still sends them all.
    pub fn with_count(mut self, count: u64) -> Self {
        self.left = count;
        self.retry = true;
        self.bucket = self.bucket.keeping_up();
        self
    }

    /// The sequence number of the next packet.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// Tops the burst up with as many new packets as the bucket allows, stamped with `now`,
    /// and hands it to `send`, which returns how many the queue accepted. Returns the number
    /// of packets built plus the number accepted: 0 when the step did nothing (the counters
    /// need publishing otherwise, even when only held packets went out).
    #[inline]
    pub fn step(
        &mut self,
        now: u64,
        c: &mut Counters,
        send: impl FnOnce(&mut MbufBurst) -> usize,
    ) -> usize {
        let start = self.burst.len();
        let room = (self.burst.free_slots() as u64).min(self.left) as usize;
        // Done with the count: no credit taken, none counted late.
        let want = if room > 0 {
            self.bucket.take(now, room)
        } else {
            0
        };
        let t: &Templates = &self.templates;
        let mut built = 0;
        if want > 0 {
            let n_templates = t.len();
            let next = &mut self.next;
            let held = &mut self.held;
            // The frame is the template's head, then zeros to its length. Only the head is
            // copied: the TX pool's buffers are zero past the templates' prefix (`zero_pool`,
            // before sending), and stay so because nothing writes there: these copies and the
            // stamps end within the prefix, received frames use another pool, and TX PMDs do
            // not write into the data of what they send (no offload flags are set; at most
            // they write into the headroom, as virtio's net header). A frame no longer than the
            // prefix is copied whole (its head is the frame, padded with zeros to 64 bytes); a
            // longer one has the whole prefix rewritten. So bytes of an earlier frame in the
            // same buffer (a longer header, a longer frame) can only remain past the end of a
            // short frame, never inside one. The stamp is written while the mbuf is at hand.
            let seq = &mut self.seq;
            let copied = alloc_bulk_copy(
                &self.pool,
                &mut self.burst,
                want,
                |k| {
                    let i = *next;
                    *next = if i + 1 == n_templates { 0 } else { i + 1 };
                    held[start + k] = i as u32;
                    let s = t.slots[i];
                    (t.head(i), usize::from(s.len), (i as u32, s.stamp))
                },
                |(i, at), data| {
                    // A client's frame has no stamp (`encapsulation = "none"`).
                    if let Some(at) = at {
                        stamp::write(&mut data[usize::from(at)..], i, *seq, now);
                    }
                    *seq += 1;
                },
            );
            match copied {
                Ok(n) => {
                    built = n;
                    self.left -= n as u64;
                }
                Err(_) => {
                    self.bucket.refund(want);
                    c.tx_alloc_failed += 1;
                }
            }
            if built < want && copied.is_ok() {
                // Cannot happen (templates fit an mbuf, checked at start).
                c.tx_alloc_failed += 1;
            }
        }
        let len = self.burst.len();
        if len == 0 {
            return 0;
        }
        let sent = send(&mut self.burst);
        if sent == 0 && self.retry {
            // The queue is full: give its consumer a moment instead of polling the ring's
            // shared indexes at once (over net_memif that steals the cache line from the
            // peer and slows it down: 12.0 -> 13.6 Mpps into testpmd rxonly, measured).
            let until = now + BACKOFF_CYCLES;
            while tsc() < until {
                std::hint::spin_loop();
            }
        }
        let (mut bytes, mut back) = (0u64, 0u64);
        for &i in &self.held[..sent] {
            bytes += u64::from(t.slots[i as usize].len);
            back += u64::from(self.expect_back[i as usize]);
        }
        self.held.copy_within(sent..len, 0);
        c.tx_packets += sent as u64;
        c.tx_bytes += bytes;
        c.tx_expected_back += back;
        if self.retry {
            c.tx_held += (len - sent) as u64;
        } else {
            c.tx_refused += self.burst.clear() as u64;
        }
        if self.bucket.rate != 0 {
            // A division: not for every burst of a generator flat out, where it stays 0.
            c.tx_late = self.bucket.late();
        }
        built + sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_paces_packets() {
        let hz = 1_000_000;
        let mut b = TokenBucket::new(1000, hz, 0); // 1 packet per 1000 ticks
        assert_eq!(b.take(0, 32), 0);
        assert_eq!(b.take(999, 32), 0);
        assert_eq!(b.take(1000, 32), 1);
        assert_eq!(b.take(11_000, 32), 10);
        // Idle for a long time: capped at two bursts.
        assert_eq!(b.take(10_000_000, 100), 64);
        assert_eq!(b.late(), 1000 - 64); // one second of credit (the most counted), minus the cap
        b.refund(5);
        assert_eq!(b.take(10_000_000, 100), 5);
        let mut total = 0;
        for t in 1..=1000u64 {
            total += b.take(10_000_000 + t * 100, 32);
        }
        assert_eq!(total, 100);
        let mut open = TokenBucket::new(0, hz, 0);
        assert_eq!(open.take(0, 32), 32);
    }

    /// Takes every packet `b` allows at `now`, 32 at a time.
    fn drain(b: &mut TokenBucket, now: u64) -> u64 {
        let mut sent = 0;
        loop {
            let n = b.take(now, 32) as u64;
            if n == 0 {
                return sent;
            }
            sent += n;
        }
    }

    #[test]
    fn a_bucket_keeping_up_makes_up_for_a_descheduled_loop() {
        let hz = 1_000_000_000;
        let rate = 1_000_000; // one packet a microsecond
        let mut plain = TokenBucket::new(rate, hz, 0);
        let mut keeping = TokenBucket::new(rate, hz, 0).keeping_up();
        // The loop comes back 10 ms late: 10,000 packets are due.
        let (sent, kept) = (
            drain(&mut plain, 10_000_000),
            drain(&mut keeping, 10_000_000),
        );
        assert_eq!(plain.late(), 10_000 - 200, "200 µs of credit kept");
        assert_eq!(sent, 200);
        assert_eq!(keeping.late(), 0);
        assert_eq!(kept, 10_000, "all that was due");
        // More than 100 ms late: the rest is dropped, and counted.
        let mut keeping = TokenBucket::new(rate, hz, 0).keeping_up();
        assert_eq!(drain(&mut keeping, 300_000_000), 100_000);
        assert_eq!(keeping.late(), 200_000);
    }
}

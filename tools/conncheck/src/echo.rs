//! What one flow expects back: the bytes (TCP) or datagrams (UDP) it sent and has not yet seen
//! echoed, and how long it has waited. Pure bookkeeping over time stamps the caller passes in, so
//! the verdicts (wrong byte, timeout, stall, lost reply) are tested without sockets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes in one message: flow id (u32), sequence number (u64), a check word (u32), all big-endian.
pub const MESSAGE_LEN: usize = 16;

/// Message `seq` of flow `id`. The check word makes a message from another flow or a shifted
/// stream differ in more than the counters.
pub fn message(id: u32, seq: u64) -> [u8; MESSAGE_LEN] {
    let mut out = [0; MESSAGE_LEN];
    out[..4].copy_from_slice(&id.to_be_bytes());
    out[4..12].copy_from_slice(&seq.to_be_bytes());
    let check = (seq as u32) ^ id.rotate_left(16) ^ 0xC4A7_CE00;
    out[12..].copy_from_slice(&check.to_be_bytes());
    out
}

/// Why a flow counts as broken. Once broken, a flow stays broken and is no longer driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Broken {
    /// The connection never completed (refused, unreachable, or no answer within the timeout).
    ConnectFailed,
    /// The peer reset the connection (or an ICMP error refused a UDP datagram).
    Reset,
    /// The peer closed the connection while echoes were owed.
    Closed,
    /// An echoed byte or datagram differs from what was sent.
    WrongByte,
    /// Nothing came back for longer than the timeout.
    Timeout,
    /// Another socket error.
    Error,
}

/// A TCP stream's outstanding bytes and how long it has waited for them.
#[derive(Debug)]
pub struct StreamEcho {
    /// Sent and not yet echoed, in order.
    expected: VecDeque<u8>,
    /// Bytes echoed correctly so far.
    echoed: u64,
    stall: Stall,
}

impl Default for StreamEcho {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamEcho {
    /// Nothing sent yet.
    pub fn new() -> Self {
        Self {
            expected: VecDeque::new(),
            echoed: 0,
            stall: Stall::default(),
        }
    }

    /// `bytes` (one whole message) were handed to the socket at `now`.
    pub fn sent(&mut self, bytes: &[u8], now: Instant) {
        self.expected.extend(bytes);
        self.stall.sending(now);
    }

    /// `bytes` arrived at `now`: each must be the next byte owed.
    pub fn received(&mut self, bytes: &[u8], now: Instant) -> Result<(), Broken> {
        for &byte in bytes {
            if self.expected.pop_front() != Some(byte) {
                return Err(Broken::WrongByte);
            }
        }
        self.echoed += bytes.len() as u64;
        if !bytes.is_empty() {
            self.stall.answered(now, self.expected.is_empty());
        }
        Ok(())
    }

    /// Whole messages echoed so far.
    pub fn messages_echoed(&self) -> u64 {
        self.echoed / MESSAGE_LEN as u64
    }

    /// The longest wait so far, counting a wait still going on at `now`.
    pub fn longest_stall(&self, now: Instant) -> Duration {
        self.stall.longest(now)
    }

    /// [`Broken::Timeout`] once the current wait passes `timeout`.
    pub fn check_timeout(&self, now: Instant, timeout: Duration) -> Result<(), Broken> {
        self.stall.check(now, timeout)
    }
}

/// A connected UDP flow's datagrams in flight: each reply must equal a datagram sent and not yet
/// answered; one not answered within `lost_after` is lost.
#[derive(Debug, Default)]
pub struct DatagramEcho {
    /// (sequence number, message, sent at), oldest first.
    in_flight: VecDeque<(u64, [u8; MESSAGE_LEN], Instant)>,
    /// Replies that matched.
    pub replies: u64,
    /// Datagrams whose reply did not come within `lost_after`.
    pub lost: u64,
    /// Datagrams sent.
    pub sent: u64,
    stall: Stall,
}

impl DatagramEcho {
    /// Datagram `seq` (`bytes`) was sent at `now`.
    pub fn sent(&mut self, seq: u64, bytes: [u8; MESSAGE_LEN], now: Instant) {
        self.in_flight.push_back((seq, bytes, now));
        self.sent += 1;
        self.stall.sending(now);
    }

    /// A reply arrived at `now`: it must be one of the datagrams in flight, byte for byte.
    /// A reply to a datagram already counted lost is late, not wrong: it is ignored.
    pub fn received(
        &mut self,
        reply: &[u8],
        now: Instant,
        lost_seq_floor: u64,
    ) -> Result<(), Broken> {
        let Some(at) = self
            .in_flight
            .iter()
            .position(|(_, bytes, _)| bytes[..] == *reply)
        else {
            return match seq_of(reply) {
                Some(seq) if reply.len() == MESSAGE_LEN && seq < lost_seq_floor => Ok(()),
                _ => Err(Broken::WrongByte),
            };
        };
        self.in_flight.remove(at);
        self.replies += 1;
        self.stall.answered(now, self.in_flight.is_empty());
        Ok(())
    }

    /// Counts as lost every datagram in flight longer than `lost_after`; returns the highest
    /// sequence number counted lost plus one (0 when none ever was).
    pub fn expire(&mut self, now: Instant, lost_after: Duration) -> Option<u64> {
        let mut floor = None;
        while let Some(&(seq, _, at)) = self.in_flight.front() {
            if now.saturating_duration_since(at) < lost_after {
                break;
            }
            self.in_flight.pop_front();
            self.lost += 1;
            floor = Some(seq + 1);
        }
        floor
    }

    /// The longest time without a reply while replies were owed, up to `now`.
    pub fn longest_stall(&self, now: Instant) -> Duration {
        self.stall.longest(now)
    }

    /// [`Broken::Timeout`] once the flow has waited longer than `timeout` for any reply.
    pub fn check_timeout(&self, now: Instant, timeout: Duration) -> Result<(), Broken> {
        self.stall.check(now, timeout)
    }
}

fn seq_of(message: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(message.get(4..12)?.try_into().ok()?))
}

/// The time spent waiting: from the first message owed (or the last answer while more are owed)
/// to the next answer. A lost UDP reply does not end a wait; only an answer does.
#[derive(Debug, Default)]
struct Stall {
    waiting_since: Option<Instant>,
    longest: Duration,
}

impl Stall {
    fn sending(&mut self, now: Instant) {
        self.waiting_since.get_or_insert(now);
    }

    fn answered(&mut self, now: Instant, nothing_owed: bool) {
        if let Some(since) = self.waiting_since {
            self.longest = self.longest.max(now.saturating_duration_since(since));
        }
        self.waiting_since = if nothing_owed { None } else { Some(now) };
    }

    fn longest(&self, now: Instant) -> Duration {
        let current = self
            .waiting_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        self.longest.max(current)
    }

    fn check(&self, now: Instant, timeout: Duration) -> Result<(), Broken> {
        match self.waiting_since {
            Some(since) if now.saturating_duration_since(since) > timeout => Err(Broken::Timeout),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn messages_of_different_flows_or_numbers_differ() {
        assert_ne!(message(1, 7), message(2, 7));
        assert_ne!(message(1, 7), message(1, 8));
        assert_eq!(seq_of(&message(3, 99)), Some(99));
    }

    #[test]
    fn stream_accepts_its_echo_in_pieces_and_measures_the_wait() {
        let t0 = Instant::now();
        let mut echo = StreamEcho::new();
        echo.sent(&message(1, 0), t0);
        echo.sent(&message(1, 1), t0 + 10 * MS);
        let both = [message(1, 0), message(1, 1)].concat();
        echo.received(&both[..5], t0 + 30 * MS).unwrap();
        echo.received(&both[5..], t0 + 50 * MS).unwrap();
        // Nothing owed: no wait goes on, however long it has been.
        assert_eq!(echo.check_timeout(t0 + 10_000 * MS, 100 * MS), Ok(()));
        assert_eq!(echo.messages_echoed(), 2);
        assert_eq!(echo.longest_stall(t0 + 60 * MS), 30 * MS);
    }

    #[test]
    fn stream_rejects_a_wrong_byte() {
        let t0 = Instant::now();
        let mut echo = StreamEcho::new();
        echo.sent(&message(1, 0), t0);
        let mut bad = message(1, 0);
        bad[9] ^= 1;
        assert_eq!(echo.received(&bad, t0), Err(Broken::WrongByte));
    }

    #[test]
    fn stream_rejects_bytes_nobody_sent() {
        let mut echo = StreamEcho::new();
        assert_eq!(echo.received(b"x", Instant::now()), Err(Broken::WrongByte));
    }

    #[test]
    fn stream_times_out_only_while_an_echo_is_owed() {
        let t0 = Instant::now();
        let mut echo = StreamEcho::new();
        assert_eq!(echo.check_timeout(t0 + 10_000 * MS, 100 * MS), Ok(()));
        echo.sent(&message(1, 0), t0);
        assert_eq!(echo.check_timeout(t0 + 100 * MS, 100 * MS), Ok(()));
        assert_eq!(
            echo.check_timeout(t0 + 101 * MS, 100 * MS),
            Err(Broken::Timeout)
        );
        assert_eq!(echo.longest_stall(t0 + 101 * MS), 101 * MS);
    }

    #[test]
    fn datagrams_match_out_of_order_and_lost_ones_are_counted() {
        let t0 = Instant::now();
        let mut echo = DatagramEcho::default();
        for seq in 0..3 {
            echo.sent(seq, message(5, seq), t0 + seq as u32 * 10 * MS);
        }
        echo.received(&message(5, 2), t0 + 25 * MS, 0).unwrap();
        let floor = echo.expire(t0 + 1015 * MS, 1000 * MS);
        assert_eq!(floor, Some(2));
        assert_eq!((echo.sent, echo.replies, echo.lost), (3, 1, 2));
        // A late reply to a datagram already counted lost is not a wrong byte.
        assert_eq!(echo.received(&message(5, 0), t0 + 1100 * MS, 2), Ok(()));
        assert_eq!(
            echo.received(&message(6, 9), t0 + 1100 * MS, 2),
            Err(Broken::WrongByte)
        );
    }

    #[test]
    fn a_lost_reply_keeps_the_stall_going_until_an_answer() {
        let t0 = Instant::now();
        let mut echo = DatagramEcho::default();
        echo.sent(0, message(1, 0), t0);
        echo.expire(t0 + 500 * MS, 200 * MS);
        echo.sent(1, message(1, 1), t0 + 600 * MS);
        echo.received(&message(1, 1), t0 + 700 * MS, 1).unwrap();
        assert_eq!(echo.longest_stall(t0 + 800 * MS), 700 * MS);
    }
}

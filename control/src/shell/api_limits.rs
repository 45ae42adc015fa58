//! What one API client may hold: a connection slot and a bounded time per request.
//!
//! - Slots: [`SHARED_SLOTS`] connections at once for everyone, and [`ROOT_SLOTS`] more that only
//!   root (by the peer's `SO_PEERCRED`) may take once the shared ones are gone, so that root's
//!   chancectl is answered whatever other clients hold.
//! - Time: a request must arrive whole (its newline) within the request timeout of the
//!   connection's accept or of the previous reply, and the reply must be taken by the client
//!   within the same time. The deadline is absolute: a client sending a byte now and then does not
//!   push it back, so a silent or dripping connection gives its slot up after one timeout.

use crate::api::MAX_REQUEST_BYTES;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections any allowed user may hold at once.
pub(crate) const SHARED_SLOTS: usize = 16;
/// Connections on top of [`SHARED_SLOTS`] that only root may hold.
pub(crate) const ROOT_SLOTS: usize = 4;

/// The connection counts of both pools.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    shared: AtomicUsize,
    root: AtomicUsize,
}

/// A taken slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    root_pool: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let pool = if self.root_pool {
            &self.slots.root
        } else {
            &self.slots.shared
        };
        pool.fetch_sub(1, Ordering::AcqRel);
    }
}

fn take(pool: &AtomicUsize, limit: usize) -> bool {
    pool.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
        (n < limit).then_some(n + 1)
    })
    .is_ok()
}

impl Slots {
    /// A slot for a peer (root: `is_root`), or `None` when its pools are full.
    pub(crate) fn take(self: &Arc<Self>, is_root: bool) -> Option<Slot> {
        let root_pool = if take(&self.shared, SHARED_SLOTS) {
            false
        } else if is_root && take(&self.root, ROOT_SLOTS) {
            true
        } else {
            return None;
        };
        Some(Slot {
            slots: Arc::clone(self),
            root_pool,
        })
    }
}

/// Why no request line came.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The client closed (or broke) the connection.
    Closed,
    /// The deadline passed before the newline; `partial` when some of the request had come.
    TimedOut { partial: bool },
    /// More than [`MAX_REQUEST_BYTES`] without a newline.
    TooLarge,
}

/// Reads one request line (newline included) into `line`, complete by `deadline`.
pub(crate) fn read_request(
    reader: &mut BufReader<UnixStream>,
    line: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), ReadEnd> {
    line.clear();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadEnd::TimedOut {
                partial: !line.is_empty(),
            });
        }
        // A zero timeout would mean "block forever": `left` is at least a nanosecond here.
        if reader.get_ref().set_read_timeout(Some(left)).is_err() {
            return Err(ReadEnd::Closed);
        }
        let buf = match reader.fill_buf() {
            Ok([]) => return Err(ReadEnd::Closed),
            Ok(buf) => buf,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(ReadEnd::Closed),
        };
        let room = MAX_REQUEST_BYTES - line.len();
        let (taken, complete) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) if i < room => (i + 1, true),
            _ => (buf.len().min(room), false),
        };
        line.extend_from_slice(&buf[..taken]);
        reader.consume(taken);
        if complete {
            return Ok(());
        }
        if line.len() >= MAX_REQUEST_BYTES {
            return Err(ReadEnd::TooLarge);
        }
    }
}

/// Writes `bytes` whole by `deadline`; false if the client did not take them in time.
pub(crate) fn write_reply(stream: &mut UnixStream, bytes: &[u8], deadline: Instant) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_write_timeout(Some(left)).is_err() {
            return false;
        }
        match stream.write(rest) {
            Ok(0) => return false,
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
    true
}

/// The deadline of a request expected from now.
pub(crate) fn deadline_from_now(timeout: Duration) -> Instant {
    Instant::now() + timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_takes_its_reserved_slots_once_the_shared_ones_are_gone() {
        let slots = Arc::new(Slots::default());
        let held: Vec<Slot> = (0..SHARED_SLOTS)
            .map(|_| slots.take(false).expect("a shared slot"))
            .collect();
        assert!(slots.take(false).is_none(), "another user is refused");
        let root: Vec<Slot> = (0..ROOT_SLOTS)
            .map(|_| slots.take(true).expect("a root slot"))
            .collect();
        assert!(slots.take(true).is_none(), "root's pool is bounded too");
        drop(root);
        assert!(slots.take(false).is_none(), "root's slots stay root's");
        drop(held);
        assert!(slots.take(false).is_some(), "given back on drop");
    }

    #[test]
    fn a_request_dripped_byte_by_byte_times_out_at_its_deadline() {
        let (server, mut client) = UnixStream::pair().unwrap();
        let mut reader = BufReader::new(server);
        let drip = std::thread::spawn(move || {
            for _ in 0..20 {
                if client.write_all(b"{").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let start = Instant::now();
        let mut line = Vec::new();
        let end = read_request(
            &mut reader,
            &mut line,
            deadline_from_now(Duration::from_millis(300)),
        );
        assert_eq!(end, Err(ReadEnd::TimedOut { partial: true }));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(900),
            "{took:?}"
        );
        drop(reader);
        drip.join().unwrap();
    }

    #[test]
    fn a_whole_request_is_read_and_an_oversized_one_refused() {
        let (server, mut client) = UnixStream::pair().unwrap();
        let mut reader = BufReader::new(server);
        let deadline = deadline_from_now(Duration::from_secs(5));
        client.write_all(b"{\"a\":1}\n{\"b\"").unwrap();
        let mut line = Vec::new();
        assert_eq!(read_request(&mut reader, &mut line, deadline), Ok(()));
        assert_eq!(line, b"{\"a\":1}\n");
        let big = vec![b'x'; MAX_REQUEST_BYTES + 10];
        let writer = std::thread::spawn(move || {
            let _ = client.write_all(&big);
            client
        });
        assert_eq!(
            read_request(&mut reader, &mut line, deadline),
            Err(ReadEnd::TooLarge)
        );
        drop(reader);
        drop(writer.join().unwrap());
    }
}

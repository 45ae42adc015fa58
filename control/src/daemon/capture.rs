//! `capture`: arms a live capture on chanced's workers, waits for its frames, disarms it.
//!
//! The workers copy each wanted frame into a bounded queue without ever blocking (see
//! [`chance_runtime::capture`]); this control thread drains the queue until the count is reached,
//! the timeout passes or chanced stops, and answers the frames in one reply. One capture runs at
//! a time; the capture is disarmed however the wait ends.

use crate::api::{
    CaptureReply, CaptureRequest, CapturedFrameReply, DEFAULT_SNAPLEN, MAX_CAPTURE_COUNT,
    MAX_CAPTURE_TIMEOUT_MS, MAX_SNAPLEN,
};
use chance_runtime::capture::{
    Capture, CapturePort, CaptureSlot, CaptureSpec, CaptureVerdict, FlowFilter,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// The capture queue's length: frames the workers may queue ahead of this thread.
const QUEUE: u64 = 1024;
/// How often the wait looks at chanced's stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// The capture `request` asks for, or why it is refused.
pub(crate) fn spec(request: &CaptureRequest) -> Result<(CaptureSpec, Duration), String> {
    let any = |v: &Option<String>| v.as_deref().is_none_or(|v| v == "any");
    let port = match &request.port {
        p if any(p) => None,
        Some(p) => Some(
            CapturePort::from_name(p)
                .ok_or_else(|| format!("port `{p}`: expected nic, kernel or any"))?,
        ),
        None => None,
    };
    let verdict = match &request.verdict {
        v if any(v) => None,
        Some(v) => Some(CaptureVerdict::from_name(v).ok_or_else(|| {
            format!("verdict `{v}`: expected accept, forward, drop, pass, egress or any")
        })?),
        None => None,
    };
    let filter: FlowFilter = match &request.filter {
        Some(f) => f.parse()?,
        None => FlowFilter::default(),
    };
    if !(1..=MAX_CAPTURE_COUNT).contains(&request.count) {
        return Err(format!(
            "count {}: expected 1 to {MAX_CAPTURE_COUNT}",
            request.count
        ));
    }
    let snaplen = request.snaplen.unwrap_or(DEFAULT_SNAPLEN);
    if !(1..=MAX_SNAPLEN).contains(&snaplen) {
        return Err(format!("snaplen {snaplen}: expected 1 to {MAX_SNAPLEN}"));
    }
    if !(1..=MAX_CAPTURE_TIMEOUT_MS).contains(&request.timeout_ms) {
        return Err(format!(
            "timeout_ms {}: expected 1 to {MAX_CAPTURE_TIMEOUT_MS}",
            request.timeout_ms
        ));
    }
    let spec = CaptureSpec {
        port,
        verdict,
        filter,
        snaplen,
        count: request.count,
    };
    Ok((spec, Duration::from_millis(request.timeout_ms)))
}

/// Disarms the slot however the wait ends.
struct Armed<'a>(&'a CaptureSlot);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

/// Runs one capture on the workers behind `slot`.
pub(crate) fn run(
    slot: &CaptureSlot,
    stop: &AtomicBool,
    request: &CaptureRequest,
) -> Result<CaptureReply, String> {
    let (spec, timeout) = spec(request)?;
    let (count, snaplen, filter) = (spec.count, spec.snaplen, spec.filter);
    let queue = usize::try_from(count.min(QUEUE)).unwrap_or(1);
    let (capture, frames) = Capture::new(spec, queue);
    slot.arm(std::sync::Arc::clone(&capture))
        .map_err(|_| "a capture is already running: one at a time".to_owned())?;
    let armed = Armed(slot);
    tracing::info!(count, %filter, "capture armed");
    let deadline = Instant::now() + timeout;
    let mut reply = CaptureReply {
        filter: filter.to_string(),
        snaplen,
        frames: Vec::new(),
        dropped: 0,
        timed_out: false,
    };
    while (reply.frames.len() as u64) < count && !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            reply.timed_out = true;
            break;
        }
        match frames.recv_timeout(left.min(STOP_POLL)) {
            Ok(frame) => reply.frames.push(CapturedFrameReply {
                port: frame.port.name().into(),
                verdict: frame.verdict.name().into(),
                timestamp_ns: frame.timestamp_ns,
                len: frame.len,
                data: hex::encode(&frame.data),
            }),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(armed);
    reply.dropped = capture.dropped();
    tracing::info!(
        frames = reply.frames.len(),
        dropped = reply.dropped,
        timed_out = reply.timed_out,
        "capture done"
    );
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(filter: &str) -> CaptureRequest {
        CaptureRequest {
            port: Some("nic".into()),
            verdict: Some("any".into()),
            filter: Some(filter.into()),
            count: 5,
            snaplen: None,
            timeout_ms: 50,
        }
    }

    #[test]
    fn requests_out_of_bounds_are_refused() {
        assert!(spec(&request("tcp/*/443")).is_ok());
        assert!(spec(&request("tcp/*/http")).unwrap_err().contains("filter"));
        let mut r = request("tcp");
        r.count = 0;
        assert!(spec(&r).unwrap_err().contains("count"));
        let mut r = request("tcp");
        r.snaplen = Some(MAX_SNAPLEN + 1);
        assert!(spec(&r).unwrap_err().contains("snaplen"));
        let mut r = request("tcp");
        r.verdict = Some("maybe".into());
        assert!(spec(&r).unwrap_err().contains("verdict"));
    }

    #[test]
    fn a_capture_without_traffic_times_out_disarmed() {
        let slot = CaptureSlot::default();
        let reply = run(&slot, &AtomicBool::new(false), &request("udp")).unwrap();
        assert!(reply.timed_out);
        assert!(reply.frames.is_empty());
        let (again, _frames) = Capture::new(spec(&request("udp")).unwrap().0, 1);
        assert!(slot.arm(again).is_ok(), "the slot was left armed");
    }
}

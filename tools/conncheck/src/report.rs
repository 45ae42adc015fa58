//! The checker's results: one record per flow and the totals (the `--json` file), and the human
//! line printed every second.

use crate::echo::Broken;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The flow's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Tcp,
    Udp,
}

/// One flow's result.
#[derive(Clone, Debug, Serialize)]
pub struct FlowReport {
    pub id: u32,
    pub kind: Kind,
    /// The client side (source address and port).
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    /// Connected (TCP) or answered at least once (UDP).
    pub up: bool,
    pub broken: Option<Broken>,
    /// Seconds from the start to the breakage.
    pub broken_after_s: Option<f64>,
    /// Messages echoed back correctly (TCP) or replies matched (UDP).
    pub messages: u64,
    pub longest_stall_ms: f64,
    /// TCP_INFO's total retransmissions (TCP only).
    pub retransmissions: u32,
    /// UDP replies that never came (UDP only).
    pub lost: u64,
}

/// Totals over the flows of one protocol.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub flows: usize,
    pub up: usize,
    pub broken: usize,
    /// Broken flows by reason.
    pub broken_by_reason: BTreeMap<String, usize>,
    pub longest_stall_ms: f64,
    pub messages_echoed: u64,
    pub retransmissions: u64,
    pub replies: u64,
    pub lost: u64,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub duration_s: f64,
    /// Broken flows, TCP and UDP.
    pub broken: usize,
    /// The longest stall of any flow.
    pub longest_stall_ms: f64,
    pub tcp: Totals,
    pub udp: Totals,
    pub flows: Vec<FlowReport>,
}

impl Summary {
    /// Totals of `flows` after `elapsed`.
    pub fn new(elapsed: Duration, flows: Vec<FlowReport>) -> Self {
        let mut tcp = Totals::default();
        let mut udp = Totals::default();
        for flow in &flows {
            let totals = match flow.kind {
                Kind::Tcp => &mut tcp,
                Kind::Udp => &mut udp,
            };
            totals.flows += 1;
            totals.up += usize::from(flow.up);
            if let Some(why) = flow.broken {
                totals.broken += 1;
                let name = serde_json::to_value(why)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                *totals.broken_by_reason.entry(name).or_default() += 1;
            }
            totals.longest_stall_ms = totals.longest_stall_ms.max(flow.longest_stall_ms);
            match flow.kind {
                Kind::Tcp => totals.messages_echoed += flow.messages,
                Kind::Udp => totals.replies += flow.messages,
            }
            totals.retransmissions += u64::from(flow.retransmissions);
            totals.lost += flow.lost;
        }
        Self {
            duration_s: elapsed.as_secs_f64(),
            broken: tcp.broken + udp.broken,
            longest_stall_ms: tcp.longest_stall_ms.max(udp.longest_stall_ms),
            tcp,
            udp,
            flows,
        }
    }

    /// The per-second line: `echoes` is the number of echoes in the last second.
    pub fn progress_line(&self, echoes: u64) -> String {
        format!(
            "t={:>4.0}s tcp {}/{} up, {} broken, {} retrans | udp {}/{} up, {} broken, {} lost | {} echoes/s | longest stall {:.0} ms",
            self.duration_s,
            self.tcp.up,
            self.tcp.flows,
            self.tcp.broken,
            self.tcp.retransmissions,
            self.udp.up,
            self.udp.flows,
            self.udp.broken,
            self.udp.lost,
            echoes,
            self.longest_stall_ms,
        )
    }

    /// The closing line.
    pub fn final_line(&self) -> String {
        let reasons = |t: &Totals| {
            if t.broken_by_reason.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = t
                    .broken_by_reason
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                format!(" ({})", list.join(", "))
            }
        };
        format!(
            "connections {} (tcp {}, udp {}), broken {} (tcp {}{}, udp {}{}), longest stall {:.0} ms, tcp retransmissions {}, udp replies lost {}, in {:.1} s",
            self.tcp.flows + self.udp.flows,
            self.tcp.flows,
            self.udp.flows,
            self.broken,
            self.tcp.broken,
            reasons(&self.tcp),
            self.udp.broken,
            reasons(&self.udp),
            self.longest_stall_ms,
            self.tcp.retransmissions,
            self.udp.lost,
            self.duration_s,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(kind: Kind, broken: Option<Broken>, stall: f64) -> FlowReport {
        FlowReport {
            id: 0,
            kind,
            local: None,
            remote: None,
            up: true,
            broken,
            broken_after_s: None,
            messages: 3,
            longest_stall_ms: stall,
            retransmissions: 1,
            lost: if kind == Kind::Udp { 2 } else { 0 },
        }
    }

    #[test]
    fn totals_count_broken_flows_by_reason_and_keep_the_longest_stall() {
        let summary = Summary::new(
            Duration::from_secs(2),
            vec![
                flow(Kind::Tcp, None, 10.0),
                flow(Kind::Tcp, Some(Broken::Reset), 50.0),
                flow(Kind::Udp, Some(Broken::Timeout), 20.0),
            ],
        );
        assert_eq!(summary.broken, 2);
        assert_eq!(summary.tcp.broken_by_reason.get("reset"), Some(&1));
        assert_eq!(summary.udp.broken_by_reason.get("timeout"), Some(&1));
        assert_eq!(summary.longest_stall_ms, 50.0);
        assert_eq!(
            (
                summary.tcp.messages_echoed,
                summary.udp.replies,
                summary.udp.lost
            ),
            (6, 3, 2)
        );
        assert!(summary
            .final_line()
            .contains("broken 2 (tcp 1 (reset 1), udp 1 (timeout 1))"));
    }
}

//! What a run reports: the one-line progress every second, and the summary (JSON) at the end.
//!
//! Rates: `mpps` counts packets; `gbps` counts Ethernet frames with their 4-byte FCS (the
//! profile's sizes), `gbps_wire` adds the 20 bytes of preamble and inter-frame gap each frame
//! takes on the wire (compare it with the link speed).

use crate::profile::{Profile, FCS_LEN};
use crate::rx::Class;
use crate::stats::Counters;
use crate::templates::{Expect, Kind, Templates};
use serde::Serialize;
use std::collections::BTreeMap;

/// Preamble, start-of-frame delimiter and inter-frame gap.
pub const WIRE_OVERHEAD: u64 = 20;

/// Which returned packets count as expected back (for the loss figure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ExpectBack {
    /// Nothing comes back: loss is the TX queue's refusals only.
    None,
    /// Every packet comes back (a loopback, or a reflector such as testpmd io/macswap).
    All,
    /// The packets chance forwards come back (a chanced whose NIC is the port: forwarded
    /// packets leave by the NIC, accepted ones go to its kernel port).
    Forwarded,
}

impl ExpectBack {
    /// Per template: 1 when its packets are expected back.
    pub fn per_template(self, t: &Templates) -> Vec<u8> {
        t.meta
            .iter()
            .map(|m| match self {
                ExpectBack::None => 0,
                ExpectBack::All => 1,
                ExpectBack::Forwarded => u8::from(m.expect == Expect::Forward),
            })
            .collect()
    }
}

/// What the templates hold.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateSummary {
    /// Templates.
    pub count: usize,
    /// Mean frame size in bytes, FCS included.
    pub mean_frame_bytes: f64,
    /// Templates per kind.
    pub kinds: BTreeMap<&'static str, usize>,
    /// Templates with an inner IPv6 packet.
    pub ipv6: usize,
    /// Templates per hop count.
    pub hops: BTreeMap<u8, usize>,
    /// Templates per frame size (FCS included).
    pub sizes: BTreeMap<usize, usize>,
    /// Templates chance should accept / forward.
    pub expect: BTreeMap<&'static str, usize>,
}

impl TemplateSummary {
    /// Counts over `t`.
    pub fn of(t: &Templates) -> Self {
        let mut kinds = BTreeMap::new();
        for k in Kind::ALL {
            kinds.insert(k.name(), 0);
        }
        let mut hops = BTreeMap::new();
        let mut sizes = BTreeMap::new();
        let mut expect = BTreeMap::from([("accept", 0), ("forward", 0)]);
        for (m, s) in t.meta.iter().zip(&t.slots) {
            *kinds.entry(m.kind.name()).or_default() += 1;
            *hops.entry(m.hops).or_default() += 1;
            *sizes.entry(usize::from(s.len) + FCS_LEN).or_default() += 1;
            *expect
                .entry(match m.expect {
                    Expect::Accept => "accept",
                    Expect::Forward => "forward",
                })
                .or_default() += 1;
        }
        Self {
            count: t.len(),
            mean_frame_bytes: t.mean_len() + FCS_LEN as f64,
            kinds,
            ipv6: t.meta.iter().filter(|m| m.ipv6).count(),
            hops,
            sizes,
            expect,
        }
    }
}

/// Latency in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Latency {
    /// Packets measured.
    pub samples: u64,
    /// Smallest.
    pub min: Option<f64>,
    /// Mean.
    pub avg: Option<f64>,
    /// Median (within 3.2 %).
    pub p50: Option<f64>,
    /// 99th percentile (within 3.2 %).
    pub p99: Option<f64>,
    /// 99.9th percentile (within 3.2 %).
    pub p999: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

/// The transmit side over the measurement window.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TxSummary {
    /// Packets the queues accepted.
    pub packets: u64,
    /// Their bytes (no FCS).
    pub bytes: u64,
    /// Million packets per second.
    pub mpps: f64,
    /// Gbit/s of frames with FCS.
    pub gbps: f64,
    /// Gbit/s on the wire (plus preamble and inter-frame gap).
    pub gbps_wire: f64,
    /// With a rate: packets refused by a full TX queue (built, then freed: loss).
    pub refused: u64,
    /// Flat out: packets a full TX queue handed back, to go first in the next burst, summed over
    /// the attempts (the port, or the peer behind it, is the bottleneck when this is large).
    pub held: u64,
    /// Bursts skipped because the mempool was empty.
    pub alloc_failed: u64,
    /// Packets the rate limit could not send on time (the lcore was descheduled or is too
    /// slow for the rate): not sent, so not loss, but the rate fell short by that much.
    pub late: u64,
}

/// The receive side: packets sent in the window that came back (whenever), plus unrecognised
/// packets received after the window opened.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RxSummary {
    /// All of them.
    pub packets: u64,
    /// Million packets per second (over the window).
    pub mpps: f64,
    /// By class.
    pub classes: BTreeMap<&'static str, u64>,
}

/// Loss over the measurement window.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LossSummary {
    /// Which packets were expected back.
    pub expect: Option<ExpectBack>,
    /// Packets sent that were expected back.
    pub expected_back: u64,
    /// Stamped packets of the window that came back.
    pub received_back: u64,
    /// expected_back - received_back (negative: more came back than expected).
    pub missing: i64,
    /// (refused + max(missing, 0)) / (sent + refused).
    pub ratio: f64,
}

/// One worker lcore.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LcoreSummary {
    /// Worker index.
    pub index: u8,
    /// EAL lcore id.
    pub lcore: u32,
    /// Seconds measured.
    pub window_secs: f64,
    /// Share of the loop's cycles in iterations that sent or received.
    pub busy_share: f64,
    /// Share of the window the worker thread was on its CPU (schedstat; below about 0.97 the
    /// machine took the CPU from it and the rates are low).
    pub cpu_share: Option<f64>,
    /// Loop cycles per packet sent (or received, when it sends nothing).
    pub cycles_per_packet: f64,
    /// Packets sent in the window.
    pub tx_packets: u64,
}

/// One second of the run, as printed on the progress line.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Second {
    /// Seconds since sending started.
    pub t: f64,
    /// `warmup`, `measure` or `drain`.
    pub phase: &'static str,
    /// Sent.
    pub tx_mpps: f64,
    /// Sent, Gbit/s with FCS.
    pub tx_gbps: f64,
    /// Received.
    pub rx_mpps: f64,
    /// Refused by the TX queue (dropped, with a rate).
    pub refused: u64,
    /// Handed back by a full TX queue (flat out).
    pub held: u64,
    /// Stamped packets expected back minus received, this second (in flight included).
    pub missing: i64,
    /// Received, by class.
    pub rx: [u64; 4],
}

impl Second {
    /// From the summed counters at the end of the second and one second earlier.
    pub fn between(
        t: f64,
        phase: &'static str,
        now: &Counters,
        before: &Counters,
        secs: f64,
    ) -> Self {
        let d = now.since(before);
        let secs = secs.max(1e-9);
        let stamped = d.rx_class[0] + d.rx_class[1] + d.rx_class[2];
        Second {
            t,
            phase,
            tx_mpps: d.tx_packets as f64 / secs / 1e6,
            tx_gbps: (d.tx_bytes + FCS_LEN as u64 * d.tx_packets) as f64 * 8.0 / secs / 1e9,
            rx_mpps: d.rx_packets as f64 / secs / 1e6,
            refused: d.tx_refused,
            held: d.tx_held,
            missing: d.tx_expected_back as i64 - stamped as i64,
            rx: d.rx_class,
        }
    }

    /// The progress line.
    pub fn line(&self, expect: ExpectBack) -> String {
        let mut s = format!(
            "{:6.1}s {:7} tx {:7.3} Mpps {:7.3} Gbps | rx {:7.3} Mpps (dec {} fwd {} loop {} other {}) | refused {} held {}",
            self.t,
            self.phase,
            self.tx_mpps,
            self.tx_gbps,
            self.rx_mpps,
            self.rx[0],
            self.rx[1],
            self.rx[2],
            self.rx[3],
            self.refused,
            self.held
        );
        if expect != ExpectBack::None {
            let sent = self.tx_mpps * 1e6;
            let loss = if sent > 0.0 {
                self.missing.max(0) as f64 / sent * 100.0
            } else {
                0.0
            };
            s.push_str(&format!(" | loss {loss:.2}%"));
        }
        s
    }
}

/// The JSON summary of a DPDK run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// `chance-pktgen`.
    pub program: &'static str,
    /// DPDK linked statically (the `static` feature) or shared.
    pub dpdk_static: bool,
    /// The profile used.
    pub profile: Option<Profile>,
    /// The templates.
    pub templates: Option<TemplateSummary>,
    /// TX port name.
    pub tx_port: String,
    /// RX port name (None: transmit only).
    pub rx_port: Option<String>,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// The measured window (mean over the workers).
    pub window_secs: f64,
    /// Transmit side.
    pub tx: TxSummary,
    /// Receive side.
    pub rx: RxSummary,
    /// Loss.
    pub loss: LossSummary,
    /// Latency of the packets that came back.
    pub latency_ns: Latency,
    /// Per worker.
    pub lcores: Vec<LcoreSummary>,
    /// Counters over the whole run (warm-up and drain included).
    pub totals: BTreeMap<&'static str, u64>,
    /// The ports' own counters at the end (tx, rx).
    pub port_stats: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Mbufs still in use after the ports stopped (0 unless something leaked).
    pub mbufs_in_use: u32,
    /// Every second of the run.
    pub seconds: Vec<Second>,
}

/// Whole-run counters by name.
pub fn totals(c: &Counters) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::from([
        ("tx_packets", c.tx_packets),
        ("tx_bytes", c.tx_bytes),
        ("tx_refused", c.tx_refused),
        ("tx_late", c.tx_late),
        ("tx_held", c.tx_held),
        ("tx_alloc_failed", c.tx_alloc_failed),
        ("tx_expected_back", c.tx_expected_back),
        ("rx_packets", c.rx_packets),
        ("rx_bytes", c.rx_bytes),
        ("busy_cycles", c.busy_cycles),
        ("loop_cycles", c.loop_cycles),
    ]);
    for class in Class::ALL {
        m.insert(
            match class {
                Class::Decapsulated => "rx_decapsulated",
                Class::Forwarded => "rx_forwarded",
                Class::Looped => "rx_looped",
                Class::Other => "rx_other",
            },
            c.rx_class[class as usize],
        );
    }
    m
}

impl Summary {
    /// A few human-readable lines.
    pub fn text(&self) -> String {
        let l = &self.latency_ns;
        let ns = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}", v));
        let mut s = format!(
            "chance-pktgen: {:.2} s measured on {} lcore(s), {} templates of {:.1} bytes (mean, FCS included)\n\
             tx  {:.3} Mpps  {:.3} Gbps ({:.3} on the wire)  refused {}  held {}  late {}  alloc failures {}\n\
             rx  {:.3} Mpps  ",
            self.window_secs,
            self.lcores.len(),
            self.templates.as_ref().map_or(0, |t| t.count),
            self.templates.as_ref().map_or(0.0, |t| t.mean_frame_bytes),
            self.tx.mpps,
            self.tx.gbps,
            self.tx.gbps_wire,
            self.tx.refused,
            self.tx.held,
            self.tx.late,
            self.tx.alloc_failed,
            self.rx.mpps,
        );
        let classes: Vec<String> = self
            .rx
            .classes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        s.push_str(&classes.join("  "));
        s.push('\n');
        if let Some(expect) = self.loss.expect {
            s.push_str(&format!(
                "loss ({}): expected back {}  received {}  missing {}  refused {}  ratio {:.4}%\n",
                serde_json::to_value(expect)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                self.loss.expected_back,
                self.loss.received_back,
                self.loss.missing,
                self.tx.refused,
                self.loss.ratio * 100.0
            ));
        }
        s.push_str(&format!(
            "latency ns: samples {}  min {}  avg {}  p50 {}  p99 {}  p99.9 {}  max {}\n",
            l.samples,
            ns(l.min),
            ns(l.avg),
            ns(l.p50),
            ns(l.p99),
            ns(l.p999),
            ns(l.max)
        ));
        for c in &self.lcores {
            s.push_str(&format!(
                "lcore {}: busy {:.1}%  {:.1} cycles per packet  on its CPU {}\n",
                c.lcore,
                c.busy_share * 100.0,
                c.cycles_per_packet,
                c.cpu_share
                    .map_or("?".to_string(), |v| format!("{:.1}%", v * 100.0))
            ));
        }
        s
    }
}

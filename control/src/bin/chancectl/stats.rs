//! `chancectl stats`: two samples of the daemon's counters, their per-second rates, and the
//! table (or JSON) printed from them.

use super::Api;
use anyhow::Context;
use chance_control::api::{CounterSet, Request, StatsReply};
use chance_control::chancectl_cli::StatsArgs;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

/// Per-second rates between two samples.
#[derive(Debug, Default, serde::Serialize)]
struct Rates {
    seconds: f64,
    verdicts: BTreeMap<String, f64>,
    engine: BTreeMap<String, f64>,
    path: BTreeMap<String, f64>,
    lcores: BTreeMap<String, BTreeMap<String, f64>>,
    ports: BTreeMap<String, BTreeMap<String, f64>>,
    flow_table: BTreeMap<String, f64>,
}

/// accept, forward, pass, drop: totals from the counters.
fn verdicts(set: &CounterSet) -> BTreeMap<String, u64> {
    let sum = |prefix: &str| -> u64 {
        set.engine
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    [
        ("accept", sum("accepted_packets_total")),
        ("forward", sum("forwarded_packets_total")),
        ("pass", sum("passed_packets_total")),
        (
            "drop",
            set.path.get("engine_drops_total").copied().unwrap_or(0),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn map_rates(
    a: &BTreeMap<String, u64>,
    b: &BTreeMap<String, u64>,
    secs: f64,
) -> BTreeMap<String, f64> {
    b.iter()
        .map(|(k, &v)| {
            let before = a.get(k).copied().unwrap_or(0);
            (k.clone(), v.saturating_sub(before) as f64 / secs)
        })
        .collect()
}

fn port_map(p: &chance_control::report::PortReport) -> BTreeMap<String, u64> {
    [
        ("rx_packets", p.ipackets),
        ("tx_packets", p.opackets),
        ("rx_bytes", p.ibytes),
        ("tx_bytes", p.obytes),
        ("missed", p.imissed),
        ("rx_errors", p.ierrors),
        ("tx_errors", p.oerrors),
        ("rx_nombuf", p.rx_nombuf),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn rates(a: &StatsReply, b: &StatsReply, fallback: f64) -> Rates {
    let secs = match b.monotonic_ns.saturating_sub(a.monotonic_ns) {
        0 => fallback,
        ns => ns as f64 / 1e9,
    };
    let mut r = Rates {
        seconds: secs,
        verdicts: map_rates(&verdicts(&a.total), &verdicts(&b.total), secs),
        engine: map_rates(&a.total.engine, &b.total.engine, secs),
        path: map_rates(&a.total.path, &b.total.path, secs),
        flow_table: map_rates(&a.flow_table, &b.flow_table, secs),
        ..Rates::default()
    };
    for lb in &b.lcores {
        let la = a.lcores.iter().find(|l| l.lcore == lb.lcore);
        let empty = BTreeMap::new();
        r.lcores.insert(
            lb.lcore.map_or_else(String::new, |l| l.to_string()),
            map_rates(la.map_or(&empty, |l| &l.path), &lb.path, secs),
        );
    }
    for (name, pb) in &b.ports {
        let pa = a.ports.get(name).map(port_map).unwrap_or_default();
        r.ports
            .insert(name.clone(), map_rates(&pa, &port_map(pb), secs));
    }
    r
}

fn sample(api: &Api) -> anyhow::Result<StatsReply> {
    let stats: StatsReply = api.call_as(&Request::Stats)?;
    Ok(stats)
}

pub(super) fn stats(api: Api, args: &StatsArgs) -> anyhow::Result<()> {
    let interval = Duration::try_from_secs_f64(args.interval)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--interval: expected a positive number of seconds")?;
    let mut before = sample(&api)?;
    loop {
        std::thread::sleep(interval);
        let after = sample(&api)?;
        let r = rates(&before, &after, interval.as_secs_f64());
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&json!({ "stats": &after, "rates": &r }))?
            );
        } else {
            let text = render_stats(&after, &r);
            let mut out = std::io::stdout().lock();
            if args.watch {
                // Home and clear: redraw in place.
                write!(out, "\x1b[H\x1b[2J")?;
            }
            write!(out, "{text}")?;
            out.flush()?;
        }
        if !args.watch {
            return Ok(());
        }
        before = after;
    }
}

fn render_stats(s: &StatsReply, r: &Rates) -> String {
    let mut out = String::new();
    let rate = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let _ = writeln!(
        out,
        "chanced {} up {:.0} s{}; rates over {:.2} s",
        s.version,
        s.uptime_secs,
        if s.running {
            ""
        } else {
            " (dataplane starting)"
        },
        r.seconds
    );
    let _ = writeln!(out, "\n{:<44} {:>16} {:>14}", "verdict", "total", "per s");
    let totals = verdicts(&s.total);
    for name in ["accept", "forward", "pass", "drop"] {
        let total = totals.get(name).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "  {name:<42} {total:>16} {:>14.1}",
            rate(&r.verdicts, name)
        );
    }
    for (title, counters, rates) in [
        ("engine counter", &s.total.engine, &r.engine),
        ("path counter", &s.total.path, &r.path),
    ] {
        let _ = writeln!(out, "\n{title:<44} {:>16} {:>14}", "total", "per s");
        for (name, total) in counters.iter().filter(|(_, v)| **v != 0) {
            let _ = writeln!(out, "  {name:<42} {total:>16} {:>14.1}", rate(rates, name));
        }
    }
    let _ = writeln!(
        out,
        "\n{:<10} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "lcore", "nic rx/s", "nic tx/s", "kernel rx/s", "kernel tx/s", "drops/s", "tx full/s"
    );
    for (lcore, m) in &r.lcores {
        let _ = writeln!(
            out,
            "  {lcore:<8} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
            rate(m, "nic_rx_packets_total"),
            rate(m, "nic_tx_packets_total"),
            rate(m, "kernel_rx_packets_total"),
            rate(m, "kernel_tx_packets_total"),
            rate(m, "engine_drops_total"),
            rate(m, "nic_tx_full_total") + rate(m, "kernel_tx_full_total"),
        );
    }
    let _ = writeln!(
        out,
        "\n{:<10} {:>12} {:>12} {:>14} {:>14} {:>10} {:>10} {:>10}",
        "port", "rx pkt/s", "tx pkt/s", "rx bytes/s", "tx bytes/s", "missed", "errors", "nombuf"
    );
    for (name, p) in &s.ports {
        let m = r.ports.get(name).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "  {name:<8} {:>12.1} {:>12.1} {:>14.1} {:>14.1} {:>10} {:>10} {:>10}",
            rate(&m, "rx_packets"),
            rate(&m, "tx_packets"),
            rate(&m, "rx_bytes"),
            rate(&m, "tx_bytes"),
            p.imissed,
            p.ierrors + p.oerrors,
            p.rx_nombuf
        );
    }
    let ft = |k: &str| s.flow_table.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "\nflow table: {} / {} entries; inserts {:.1}/s, refreshes {:.1}/s, evictions {}, refusals {}, removals {}",
        ft("flow_table_entries"),
        ft("flow_table_capacity"),
        rate(&r.flow_table, "flow_table_inserts_total"),
        rate(&r.flow_table, "flow_table_refreshes_total"),
        ft("flow_table_evictions_syn_expired_total")
            + ft("flow_table_evictions_syn_total")
            + ft("flow_table_evictions_egress_total"),
        ft("flow_table_refusals_total"),
        ft("flow_table_removals_total"),
    );
    let _ = writeln!(
        out,
        "lookups: {:.1} hits/s, {:.1} misses/s",
        rate(&r.path, "flow_table_hits_total"),
        rate(&r.path, "flow_table_misses_total")
    );
    if s.reconcile.is_empty() {
        let _ = writeln!(out, "reconcile: off");
    } else {
        let rc = |k: &str| s.reconcile.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "reconcile: {} rounds ({} failed), {} sockets, last dump {} us; added {}, retired {}, refused {}",
            rc("reconcile_rounds_total"),
            rc("reconcile_failures_total"),
            rc("reconcile_sockets"),
            rc("reconcile_last_dump_micros"),
            rc("reconcile_added_total"),
            rc("reconcile_retired_total"),
            rc("reconcile_refused_total"),
        );
    }
    let d = |k: &str| s.daemon.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "reloads: {} ok, {} failed; egress learning {}",
        d("reloads_total"),
        d("reload_failures_total"),
        if d("egress_learning") != 0 {
            "on"
        } else {
            "off"
        }
    );
    out
}

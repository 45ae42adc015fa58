//! The `[flow_table]` and `[reconcile]` tables: the flow table's size and the sources that feed it.
//!
//! ```toml
//! [flow_table]
//! capacity = 1048576       # entries; memory is allocated once, at start
//! syn_lifetime_secs = 10   # how long a locally accepted SYN's embryonic entry owns its flow
//! egress_learning = true   # learn flows from the host's egress; off where egress bypasses chance
//! huge_pages = true        # back the table with 2 MiB transparent huge pages (fewer TLB misses)
//!
//! [reconcile]
//! interval_ms = 1000       # how often the kernel's sockets are dumped (0: never)
//! grace_secs = 30          # a learned flow whose socket is gone this long is retired
//! namespaces = ["self"]    # network namespaces whose sockets count: "self", a name made by
//!                          # `ip netns add`, or a path such as /proc/PID/ns/net
//! ```

use crate::config::{ConfigError, Locator};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// Where to dump sockets from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// chanced's own network namespace.
    Current,
    /// A namespace file (`/var/run/netns/NAME`, `/proc/PID/ns/net`).
    Path(PathBuf),
}

/// The validated `[flow_table]` and `[reconcile]` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipConfig {
    /// Flow-table entries.
    pub capacity: usize,
    /// Lifetime of embryonic (SYN-learned) entries.
    pub syn_lifetime: Duration,
    /// Whether the lcores learn flows from the host's egress.
    pub egress_learning: bool,
    /// Whether chanced asks the kernel to back the table with transparent huge pages
    /// (`chance_runtime::hugemem`); a failure is logged, not fatal.
    pub huge_pages: bool,
    /// Socket dump interval; zero disables reconciliation.
    pub reconcile_interval: Duration,
    /// How long a learned flow may miss from the dumps before it is retired.
    pub grace: Duration,
    /// Namespaces whose sockets own flows.
    pub namespaces: Vec<Namespace>,
}

impl Default for OwnershipConfig {
    fn default() -> Self {
        Self {
            capacity: 1 << 20,
            syn_lifetime: Duration::from_secs(10),
            egress_learning: true,
            huge_pages: true,
            reconcile_interval: Duration::from_secs(1),
            grace: Duration::from_secs(30),
            namespaces: vec![Namespace::Current],
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlows {
    capacity: Option<Spanned<u64>>,
    syn_lifetime_secs: Option<Spanned<u64>>,
    egress_learning: Option<bool>,
    huge_pages: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReconcile {
    interval_ms: Option<u64>,
    grace_secs: Option<Spanned<u64>>,
    namespaces: Option<Vec<Spanned<String>>>,
}

/// The largest table chanced allocates (about 1 GiB at 56 bytes an entry).
const MAX_CAPACITY: u64 = 1 << 24;

pub(crate) fn validate(
    flows: Option<RawFlows>,
    reconcile: Option<RawReconcile>,
    at: &Locator<'_>,
) -> Result<OwnershipConfig, ConfigError> {
    let defaults = OwnershipConfig::default();
    let flows = flows.unwrap_or_default();
    let reconcile = reconcile.unwrap_or_default();
    let capacity = match flows.capacity {
        Some(c) if !(1024..=MAX_CAPACITY).contains(c.get_ref()) => {
            return Err(at.error(
                c.span(),
                Some("flow_table.capacity".into()),
                format!("{} entries: expected 1024 to {MAX_CAPACITY}", c.get_ref()),
            ))
        }
        Some(c) => *c.get_ref() as usize,
        None => defaults.capacity,
    };
    let syn_lifetime = match flows.syn_lifetime_secs {
        Some(s) if !(1..=300).contains(s.get_ref()) => {
            return Err(at.error(
                s.span(),
                Some("flow_table.syn_lifetime_secs".into()),
                format!(
                    "{} s: expected 1 to 300 (a handshake's lifetime)",
                    s.get_ref()
                ),
            ))
        }
        Some(s) => Duration::from_secs(*s.get_ref()),
        None => defaults.syn_lifetime,
    };
    let grace = match reconcile.grace_secs {
        Some(g) if *g.get_ref() > 86_400 => {
            return Err(at.error(
                g.span(),
                Some("reconcile.grace_secs".into()),
                format!("{} s: at most a day", g.get_ref()),
            ))
        }
        Some(g) => Duration::from_secs(*g.get_ref()),
        None => defaults.grace,
    };
    let mut namespaces = Vec::new();
    for (i, ns) in reconcile.namespaces.into_iter().flatten().enumerate() {
        let text = ns.get_ref().trim();
        let parsed = match text {
            "self" => Namespace::Current,
            t if t.starts_with('/') => Namespace::Path(PathBuf::from(t)),
            t if !t.is_empty() && !t.contains('/') && t != "." && t != ".." => {
                Namespace::Path(PathBuf::from("/var/run/netns").join(t))
            }
            _ => {
                return Err(at.error(
                    ns.span(),
                    Some(format!("reconcile.namespaces[{i}]")),
                    format!("`{text}`: expected \"self\", a namespace name, or an absolute path"),
                ))
            }
        };
        namespaces.push(parsed);
    }
    if namespaces.is_empty() {
        namespaces = defaults.namespaces;
    }
    Ok(OwnershipConfig {
        capacity,
        syn_lifetime,
        egress_learning: flows.egress_learning.unwrap_or(defaults.egress_learning),
        huge_pages: flows.huge_pages.unwrap_or(defaults.huge_pages),
        reconcile_interval: reconcile
            .interval_ms
            .map_or(defaults.reconcile_interval, Duration::from_millis),
        grace,
        namespaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<OwnershipConfig, ConfigError> {
        let text = format!("[encap]\naddresses = [\"192.0.2.10\"]\n{extra}\n");
        crate::config::parse(&text, "t.toml").map(|c| c.ownership().clone())
    }

    #[test]
    fn defaults_learn_from_egress_and_reconcile_the_own_namespace() {
        assert_eq!(parse("").unwrap(), OwnershipConfig::default());
    }

    #[test]
    fn huge_pages_are_on_unless_turned_off() {
        assert!(parse("").unwrap().huge_pages);
        assert!(
            !parse("[flow_table]\nhuge_pages = false")
                .unwrap()
                .huge_pages
        );
    }

    #[test]
    fn namespaces_are_self_names_or_paths() {
        let c = parse(
            "[reconcile]\nnamespaces = [\"self\", \"app\", \"/proc/1/ns/net\"]\ninterval_ms = 0",
        )
        .unwrap();
        assert_eq!(
            c.namespaces,
            [
                Namespace::Current,
                Namespace::Path("/var/run/netns/app".into()),
                Namespace::Path("/proc/1/ns/net".into())
            ]
        );
        assert!(c.reconcile_interval.is_zero());
    }

    #[test]
    fn bad_values_name_their_key_and_line() {
        for (text, key, line) in [
            ("[flow_table]\ncapacity = 10", "flow_table.capacity", 4),
            (
                "[flow_table]\nsyn_lifetime_secs = 0",
                "flow_table.syn_lifetime_secs",
                4,
            ),
            ("[flow_table]\negress = false", "flow_table.egress", 4),
            ("[flow_table]\nhuge_pages = 1", "flow_table.huge_pages", 4),
            (
                "[reconcile]\nnamespaces = [\"a/b\"]",
                "reconcile.namespaces[0]",
                4,
            ),
            (
                "[reconcile]\ngrace_secs = 100000",
                "reconcile.grace_secs",
                4,
            ),
        ] {
            let e = parse(text).expect_err(text);
            let d = e.diagnostic().expect("diagnostic");
            assert_eq!((d.key.as_deref(), d.line), (Some(key), line), "{text}");
        }
    }
}

//! One frame through the engine over a flow table it only reads: chanced's `simulate` API call runs
//! it over the live table, `chancectl simulate --config FILE` offline over a table of the file's
//! static flows ([`static_table`]). Either way the table learns nothing from the frame.

use crate::api::{SimulateReply, SimulatedLookup, MAX_SIMULATED_FRAME};
use crate::Config;
use chance_engine::table::{ConcurrentFlowTable, Lookup, Source, TableConfig};
use chance_engine::{Engine, EngineConfig, FlowKey, FlowTable, Verdict};
use std::cell::RefCell;

/// The smallest table [`static_table`] makes (a file with few flows still gets real buckets).
const MIN_OFFLINE_CAPACITY: usize = 1024;

/// A table seen by a simulation: lookups answer from it and are recorded; nothing is ever
/// written to it (an accepted SYN or an egress frame teaches it nothing).
struct ReadOnly<'a> {
    table: &'a ConcurrentFlowTable,
    lookups: RefCell<Vec<(FlowKey, Lookup)>>,
}

impl FlowTable for ReadOnly<'_> {
    fn owns(&self, key: &FlowKey) -> bool {
        let lookup = self.table.lookup(key);
        self.lookups.borrow_mut().push((*key, lookup));
        lookup.is_owned()
    }
    fn syn_accepted(&self, _key: &FlowKey) {}
    fn egress_seen(&self, _key: &FlowKey) {}
}

/// Runs the frame (hex) through an engine with `engine`'s configuration over `table`.
pub fn run(
    engine: &EngineConfig,
    table: &ConcurrentFlowTable,
    frame_hex: &str,
) -> Result<SimulateReply, String> {
    let mut frame = hex::decode(frame_hex.trim()).map_err(|e| format!("frame: not hex: {e}"))?;
    if frame.len() > MAX_SIMULATED_FRAME {
        return Err(format!(
            "frame: {} bytes, more than {MAX_SIMULATED_FRAME}",
            frame.len()
        ));
    }
    let port = engine.port;
    let input_headers = crate::decode::headers(&frame, port);
    let flows = ReadOnly {
        table,
        lookups: RefCell::new(Vec::new()),
    };
    let outcome = Engine::new(engine.clone()).process(&mut frame, &flows);
    let output = (outcome.verdict != Verdict::Drop).then(|| outcome.output(&frame));
    Ok(SimulateReply {
        verdict: outcome.verdict.name().into(),
        reason: outcome.reason.map(|c| c.name().to_owned()),
        input_headers,
        lookups: flows
            .lookups
            .into_inner()
            .into_iter()
            .map(|(key, lookup)| SimulatedLookup {
                flow: format!("{key:?}"),
                answer: match lookup {
                    Lookup::Owned(source) => format!("owned ({})", source.name()),
                    Lookup::Expired => "expired (embryonic entry past its lifetime)".into(),
                    Lookup::Miss => "miss".into(),
                    Lookup::Contended => "contended (answered as a miss)".into(),
                },
            })
            .collect(),
        output: output.map(hex::encode),
        output_headers: output.map_or_else(Vec::new, |o| crate::decode::headers(o, port)),
    })
}

/// A flow table holding `config`'s static flows and nothing else: what chanced's table holds
/// right after it starts, before it learns any flow.
pub fn static_table(config: &Config) -> Result<ConcurrentFlowTable, String> {
    let flows = config.static_flows();
    let table = ConcurrentFlowTable::new(TableConfig {
        capacity: (flows.len() * 2).max(MIN_OFFLINE_CAPACITY),
        syn_lifetime: config.ownership().syn_lifetime,
    });
    for key in flows {
        if !table.insert(key, Source::Static).is_stored() {
            return Err(format!("flow table: no room for static flow {key:?}"));
        }
    }
    Ok(table)
}

//! The local API's server: a Unix socket, mode 0660, owned by root and the configured group, so
//! that nobody else can connect; one thread per connection, each reading newline-delimited
//! requests, within the slots and deadlines of [`super::api_limits`]. See [`crate::api`] for the
//! protocol.

use super::api_limits::{self, ReadEnd, Slots, ROOT_SLOTS, SHARED_SLOTS};
use super::{lock, reload, Shared};
use crate::api::{
    parse_request, ConfigReply, EncapSummary, FlowChangeReply, FlowEntry, FlowSpec, FlowsListReply,
    LookupReply, Request, Response, SimulateReply, SimulatedLookup, MAX_REQUEST_BYTES,
    MAX_SIMULATED_FRAME,
};
use crate::control_config::ApiGroup;
use crate::ownership_config::Namespace;
use chance_engine::table::{ConcurrentFlowTable, InsertOutcome, Lookup, Source};
use chance_engine::{Engine, FlowKey, FlowTable};
use nix::unistd::{Gid, Group};
use serde_json::Value;
use std::cell::RefCell;
use std::fs::{self, Permissions};
use std::io::{BufReader, ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest `flows_list` reply.
const MAX_LIST: usize = 100_000;

/// The group id of `group`, looked up on this host.
pub(crate) fn resolve_group(group: Option<&ApiGroup>) -> Result<Option<Gid>, String> {
    let Some(group) = group else { return Ok(None) };
    match Group::from_name(&group.name) {
        Ok(Some(g)) => Ok(Some(g.gid)),
        Ok(None) => Err(format!(
            "{}: no group named `{}` on this host (create it: groupadd --system {})",
            group.location, group.name, group.name
        )),
        Err(e) => Err(format!(
            "{}: looking up group `{}`: {e}",
            group.location, group.name
        )),
    }
}

/// A bound, not yet served, API socket.
#[derive(Debug)]
pub(crate) struct Bound {
    listener: UnixListener,
    path: PathBuf,
}

/// Binds the API socket at `path`: mode 0660, group `gid` (root's when `None`). A stale socket
/// file is replaced; a socket another process still serves is an error, and so is any other
/// kind of file. The socket is made under a temporary name and renamed into place with its
/// final mode and owner, so it is never reachable with looser permissions.
pub(crate) fn bind(path: &Path, gid: Option<Gid>) -> Result<Bound, String> {
    let shown = path.display();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "{shown}: another process (another chanced?) is serving this socket; \
                     give each chanced its own control.api_socket"
                ));
            }
            fs::remove_file(path).map_err(|e| format!("{shown}: removing a stale socket: {e}"))?;
        }
        Ok(_) => return Err(format!("{shown}: exists and is not a socket")),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    // sun_path holds 107 bytes: a long path is bound in place (a socket starts without write
    // permission for others under any usual umask, and its mode is set right after).
    let staging = if tmp.as_os_str().len() <= 107 {
        tmp.as_path()
    } else {
        path
    };
    let _ = fs::remove_file(staging);
    let listener = UnixListener::bind(staging).map_err(|e| format!("{shown}: bind: {e}"))?;
    let finish = || -> std::io::Result<()> {
        fs::set_permissions(staging, Permissions::from_mode(0o660))?;
        if let Some(gid) = gid {
            nix::unistd::chown(staging, None, Some(gid))?;
        }
        if staging != path {
            fs::rename(staging, path)?;
        }
        Ok(())
    };
    if let Err(e) = finish() {
        let _ = fs::remove_file(staging);
        return Err(format!("{shown}: setting mode 0660 and group: {e}"));
    }
    Ok(Bound {
        listener,
        path: path.to_owned(),
    })
}

/// Changes the group of a served socket in place.
pub(crate) fn set_group(path: &Path, gid: Option<Gid>) -> Result<(), String> {
    nix::unistd::chown(path, None, Some(gid.unwrap_or(Gid::from_raw(0))))
        .map_err(|e| format!("{}: chown: {e}", path.display()))
}

/// A served API socket: its accept thread.
#[derive(Debug)]
pub(crate) struct ApiServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl ApiServer {
    /// Serves `bound` on a thread of its own.
    pub(crate) fn serve(bound: Bound, shared: &Arc<Shared>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let path = bound.path.clone();
        let thread = {
            let stop = Arc::clone(&stop);
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name("chance-api".into())
                .spawn(move || accept_loop(bound, &shared, &stop))?
        };
        tracing::info!(socket = %path.display(), "API listening");
        Ok(Self { path, stop, thread })
    }

    /// The socket's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting and removes the socket file (connections being served finish their
    /// current request).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let _ = fs::remove_file(&self.path);
    }
}

/// Unbinds a bound socket that will not be served.
pub(crate) fn discard(bound: Bound) {
    let _ = fs::remove_file(&bound.path);
}

fn accept_loop(bound: Bound, shared: &Arc<Shared>, stop: &AtomicBool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let slots = Arc::new(Slots::default());
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(bound.listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "API: poll failed; the API is off");
                return;
            }
        }
        let stream = match bound.listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "API: accept");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let credentials = peer(&stream);
        let is_root = credentials.as_ref().is_ok_and(|(uid, _)| *uid == 0);
        let Some(slot) = slots.take(is_root) else {
            refuse_busy(stream, is_root);
            continue;
        };
        let shared = Arc::clone(shared);
        let who = match credentials {
            Ok((uid, pid)) => format!("uid {uid} pid {pid}"),
            Err(()) => "unknown peer".into(),
        };
        let spawned = std::thread::Builder::new()
            .name("chance-api-conn".into())
            .spawn(move || {
                serve_connection(stream, &shared, &who);
                drop(slot);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "API: cannot start a connection thread");
        }
    }
}

/// Tells a client that no slot is free, without waiting on it.
fn refuse_busy(mut stream: UnixStream, is_root: bool) {
    let held = if is_root {
        SHARED_SLOTS + ROOT_SLOTS
    } else {
        SHARED_SLOTS
    };
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(
        Response::line(Err(format!(
            "busy: all {held} connections open to this user are taken; each is closed once its \
             request is not complete within control.api_request_timeout_ms"
        )))
        .as_bytes(),
    );
}

/// The peer's uid and pid (`SO_PEERCRED`).
fn peer(stream: &UnixStream) -> Result<(u32, i32), ()> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials)
        .map(|c| (c.uid(), c.pid()))
        .map_err(|_| ())
}

fn serve_connection(stream: UnixStream, shared: &Arc<Shared>, who: &str) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    // The first request is due a timeout after the accept, each next one a timeout after the
    // previous reply (the configured value is read again, so a reload applies to the next one).
    let timeout = || shared.current().control().api_request_timeout;
    let mut deadline = api_limits::deadline_from_now(timeout());
    loop {
        let error = match api_limits::read_request(&mut reader, &mut line, deadline) {
            Ok(()) => None,
            Err(ReadEnd::Closed) => return,
            Err(ReadEnd::TimedOut { partial }) => {
                tracing::debug!(peer = %who, partial, "API: request timed out; connection closed");
                Some(format!(
                    "request timed out: not complete within control.api_request_timeout_ms ({} ms)",
                    timeout().as_millis()
                ))
            }
            Err(ReadEnd::TooLarge) => Some(format!(
                "request too large: more than {MAX_REQUEST_BYTES} bytes without a newline"
            )),
        };
        if let Some(error) = error {
            let reply = Response::line(Err(error));
            let _ =
                api_limits::write_reply(&mut writer, reply.as_bytes(), deadline_or_soon(deadline));
            return;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let result = parse_request(text).and_then(|request| {
            match &request {
                Request::Stats | Request::Config | Request::FlowsList { .. } => {
                    tracing::debug!(peer = %who, request = request.name(), "API request")
                }
                _ => tracing::info!(peer = %who, request = request.name(), "API request"),
            }
            handle(shared, request)
        });
        let reply = Response::line(result);
        let due = api_limits::deadline_from_now(timeout());
        if !api_limits::write_reply(&mut writer, reply.as_bytes(), due) {
            return;
        }
        deadline = api_limits::deadline_from_now(timeout());
    }
}

/// A last error reply gets a second at most, even past the request's deadline.
fn deadline_or_soon(deadline: Instant) -> Instant {
    deadline.max(Instant::now()) + Duration::from_secs(1)
}

fn json<T: serde::Serialize>(value: T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// Answers one request.
pub(crate) fn handle(shared: &Arc<Shared>, request: Request) -> Result<Value, String> {
    match request {
        Request::Stats => json(shared.stats()),
        Request::FlowsList { source, limit } => json(flows_list(
            &shared.table,
            source.as_deref(),
            limit.unwrap_or(100),
        )?),
        Request::FlowsLookup { flow } => json(flows_lookup(&shared.table, &flow.key()?)),
        Request::FlowsAdd { flow } => json(flows_add(&shared.table, &flow.key()?)?),
        Request::FlowsDel { flow } => json(flows_del(&shared.table, &flow.key()?)?),
        Request::Simulate { frame } => json(simulate(shared, &frame)?),
        Request::Reload => json(reload::reload(shared, "API")?),
        Request::Config => json(config(shared)),
    }
}

fn source_of(name: &str) -> Result<Source, String> {
    Source::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("source `{name}`: expected syn, egress, socket or static"))
}

fn flows_list(
    table: &ConcurrentFlowTable,
    source: Option<&str>,
    limit: usize,
) -> Result<FlowsListReply, String> {
    let wanted = source.map(source_of).transpose()?;
    let limit = limit.min(MAX_LIST);
    let mut reply = FlowsListReply {
        entries: table.len() as u64,
        matched: 0,
        flows: Vec::with_capacity(limit.min(1024)),
    };
    table.for_each(|e| {
        if wanted.is_some_and(|s| s != e.source) {
            return;
        }
        reply.matched += 1;
        if reply.flows.len() < limit {
            let spec = FlowSpec::of(&e.key);
            reply.flows.push(FlowEntry {
                proto: spec.proto,
                local: spec.local,
                remote: spec.remote,
                source: e.source.name().into(),
                age_secs: e.age.as_secs(),
            });
        }
    });
    Ok(reply)
}

fn flows_lookup(table: &ConcurrentFlowTable, key: &FlowKey) -> LookupReply {
    let entry = table.get(key);
    LookupReply {
        flow: format!("{key:?}"),
        present: entry.is_some(),
        owned: table.lookup(key).is_owned(),
        source: entry.map(|e| e.source.name().to_owned()),
        age_secs: entry.map(|e| e.age.as_secs()),
    }
}

fn flows_add(table: &ConcurrentFlowTable, key: &FlowKey) -> Result<FlowChangeReply, String> {
    let outcome = match table.insert(*key, Source::Static) {
        InsertOutcome::Inserted => "inserted".to_owned(),
        InsertOutcome::Refreshed | InsertOutcome::Present => {
            "refreshed: the entry is now static".into()
        }
        InsertOutcome::Evicted(victim) => format!("inserted (evicted a {} entry)", victim.name()),
        InsertOutcome::Refused => {
            return Err(format!(
                "{key:?}: no room in the flow table (its bucket pair holds only socket and static \
                 entries, or the table is at capacity)"
            ))
        }
    };
    tracing::info!(flow = ?key, outcome, "static flow added through the API");
    Ok(FlowChangeReply {
        flow: format!("{key:?}"),
        outcome,
    })
}

fn flows_del(table: &ConcurrentFlowTable, key: &FlowKey) -> Result<FlowChangeReply, String> {
    if !table.remove_static(key) {
        let why = match table.get(key) {
            Some(e) => format!(
                "its entry is {} (learned entries follow the sockets: reconciliation retires them)",
                e.source.name()
            ),
            None => "the table has no entry for it".into(),
        };
        return Err(format!("{key:?}: not a static flow: {why}"));
    }
    tracing::info!(flow = ?key, "static flow removed through the API");
    Ok(FlowChangeReply {
        flow: format!("{key:?}"),
        outcome: "removed".into(),
    })
}

/// The live table seen by a simulation: lookups answer from it and are recorded; nothing is
/// ever written to it (an accepted SYN or an egress frame teaches it nothing).
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

fn simulate(shared: &Shared, frame_hex: &str) -> Result<SimulateReply, String> {
    let mut frame = hex::decode(frame_hex.trim()).map_err(|e| format!("frame: not hex: {e}"))?;
    if frame.len() > MAX_SIMULATED_FRAME {
        return Err(format!(
            "frame: {} bytes, more than {MAX_SIMULATED_FRAME}",
            frame.len()
        ));
    }
    let port = shared.engine.port;
    let input_headers = crate::decode::headers(&frame, port);
    let flows = ReadOnly {
        table: &shared.table,
        lookups: RefCell::new(Vec::new()),
    };
    let mut engine = Engine::new(shared.engine.clone());
    let outcome = engine.process(&mut frame, &flows);
    let output = (outcome.verdict != chance_engine::Verdict::Drop).then(|| outcome.output(&frame));
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

fn config(shared: &Shared) -> ConfigReply {
    let config = shared.current();
    let startup = &shared.startup;
    let dataplane = startup.dataplane();
    let own = config.ownership();
    let control = config.control();
    let controls = lock(&shared.controls);
    ConfigReply {
        path: shared.config_path.display().to_string(),
        version: super::version(),
        encap: EncapSummary {
            addresses: shared.engine.addresses().map(|a| a.to_string()).collect(),
            port: shared.engine.port,
            mtu: shared.engine.mtu,
        },
        static_flows: config.static_flows().len(),
        lcores: dataplane.map(|d| d.lcores.clone()).unwrap_or_default(),
        nic: dataplane.map(|d| d.nic.clone()).unwrap_or_default(),
        kernel: dataplane
            .map(|d| d.kernel_name().to_owned())
            .unwrap_or_default(),
        flow_table_capacity: shared.table.capacity(),
        syn_lifetime_secs: shared.table.syn_lifetime().as_secs(),
        egress_learning: shared.egress_learning.load(Ordering::Relaxed),
        reconcile_interval_ms: u64::try_from(own.reconcile_interval.as_millis()).unwrap_or(0),
        reconcile_grace_secs: own.grace.as_secs(),
        reconcile_namespaces: own
            .namespaces
            .iter()
            .map(|n| match n {
                Namespace::Current => "self".to_owned(),
                Namespace::Path(p) => p.display().to_string(),
            })
            .collect(),
        api_socket: controls
            .api
            .as_ref()
            .map(|a| a.path().display().to_string()),
        api_group: control.api_group.as_ref().map(|g| g.name.clone()),
        metrics_address: control.metrics_address.map(|a| a.to_string()),
        metrics_bound: controls.metrics.as_ref().map(|m| m.address().to_string()),
        log_level: shared.log.current(),
        shutdown_deadline_ms: u64::try_from(control.shutdown_deadline.as_millis()).unwrap_or(0),
        api_request_timeout_ms: u64::try_from(control.api_request_timeout.as_millis()).unwrap_or(0),
        pending_restart: lock(&shared.pending_restart).clone(),
        reloads_total: shared.reloads.load(Ordering::Relaxed),
        reload_failures_total: shared.reload_failures.load(Ordering::Relaxed),
        last_reload_error: lock(&shared.last_reload_error).clone(),
    }
}

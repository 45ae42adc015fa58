//! The local API's server: a Unix socket, mode 0660, owned by root and the configured group, so
//! that nobody else can connect; one thread per connection (at most [`MAX_CONNECTIONS`]), each
//! reading newline-delimited requests with a timeout. See [`crate::api`] for the protocol.

use super::{lock, reload, Shared};
use crate::api::{
    parse_request, ConfigReply, EncapSummary, FlowChangeReply, FlowEntry, FlowSpec, FlowsListReply,
    LookupReply, Request, Response, MAX_REQUEST_BYTES,
};
use crate::control_config::ApiGroup;
use crate::ownership_config::Namespace;
use chance_engine::table::{ConcurrentFlowTable, InsertOutcome, Source};
use chance_engine::FlowKey;
use nix::unistd::{Gid, Group};
use serde_json::Value;
use std::fs::{self, Permissions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once; more get an error reply and are closed.
pub(crate) const MAX_CONNECTIONS: usize = 16;
/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
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
    let active = Arc::new(AtomicUsize::new(0));
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
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = stream.write_all(
                Response::line(Err(format!(
                    "busy: {MAX_CONNECTIONS} connections are being served"
                )))
                .as_bytes(),
            );
            continue;
        }
        let shared = Arc::clone(shared);
        let guard = Arc::clone(&active);
        let spawned = std::thread::Builder::new()
            .name("chance-api-conn".into())
            .spawn(move || {
                serve_connection(stream, &shared);
                guard.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(error = %e, "API: cannot start a connection thread");
        }
    }
}

/// Who is on the other end, for the log.
fn peer(stream: &UnixStream) -> String {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(c) => format!("uid {} pid {}", c.uid(), c.pid()),
        Err(_) => "unknown peer".into(),
    }
}

fn serve_connection(stream: UnixStream, shared: &Arc<Shared>) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let who = peer(&stream);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = MAX_REQUEST_BYTES as u64 + 1;
        match (&mut reader).take(limit).read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            // A timeout or a broken connection: nothing to answer.
            Err(_) => return,
        }
        if line.len() > MAX_REQUEST_BYTES && line.last() != Some(&b'\n') {
            let _ = writer.write_all(
                Response::line(Err(format!(
                    "request too large: more than {MAX_REQUEST_BYTES} bytes without a newline"
                )))
                .as_bytes(),
            );
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
        if writer
            .write_all(Response::line(result).as_bytes())
            .and_then(|()| writer.flush())
            .is_err()
        {
            return;
        }
    }
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
        Request::Simulate { frame } => {
            json(crate::simulate::run(&shared.engine, &shared.table, &frame)?)
        }
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
        eal_args: shared.eal_args.clone(),
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
        pending_restart: lock(&shared.pending_restart).clone(),
        reloads_total: shared.reloads.load(Ordering::Relaxed),
        reload_failures_total: shared.reload_failures.load(Ordering::Relaxed),
        last_reload_error: lock(&shared.last_reload_error).clone(),
    }
}

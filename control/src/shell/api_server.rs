//! The local API's server, shared by chanced and chance-director: a Unix socket, mode 0660, owned
//! by root and the configured group, so that nobody else can connect; one thread per connection,
//! each reading newline-delimited requests within the slots and deadlines of [`super::api_limits`]
//! and answering each through the daemon's [`ApiHandler`]. See [`crate::api`] for the protocol.

use super::api_limits::{self, ReadEnd, Slots, ROOT_SLOTS, SHARED_SLOTS};
use crate::api::{parse_request, Request, Response, MAX_REQUEST_BYTES};
use crate::control_config::ApiGroup;
use nix::unistd::{Gid, Group};
use serde_json::Value;
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

/// What a daemon answers on its API.
pub(crate) trait ApiHandler: Send + Sync + 'static {
    /// Answers one parsed request (the error is the reply's message).
    fn handle(&self, request: Request) -> Result<Value, String>;

    /// How long a request may take to arrive whole (`control.api_request_timeout_ms`, read at
    /// each request so that a reload applies to the next one).
    fn request_timeout(&self) -> Duration;
}

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

/// Binds `program`'s API socket at `path`: mode 0660, group `gid` (root's when `None`). A stale socket
/// file is replaced; a socket another process still serves is an error, and so is any other
/// kind of file. The socket is made under a temporary name and renamed into place with its
/// final mode and owner, so it is never reachable with looser permissions.
pub(crate) fn bind(path: &Path, gid: Option<Gid>, program: &str) -> Result<Bound, String> {
    let shown = path.display();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "{shown}: another process (another {program}?) is serving this socket; \
                     give each {program} its own control.api_socket"
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
    pub(crate) fn serve(bound: Bound, handler: Arc<dyn ApiHandler>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let path = bound.path.clone();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("chance-api".into())
                .spawn(move || accept_loop(bound, &handler, &stop))?
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

fn accept_loop(bound: Bound, handler: &Arc<dyn ApiHandler>, stop: &AtomicBool) {
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
        let handler = Arc::clone(handler);
        let who = match credentials {
            Ok((uid, pid)) => format!("uid {uid} pid {pid}"),
            Err(()) => "unknown peer".into(),
        };
        let spawned = std::thread::Builder::new()
            .name("chance-api-conn".into())
            .spawn(move || {
                serve_connection(stream, &*handler, &who);
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

fn serve_connection(stream: UnixStream, handler: &dyn ApiHandler, who: &str) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    // The first request is due a timeout after the accept, each next one a timeout after the
    // previous reply.
    let mut deadline = api_limits::deadline_from_now(handler.request_timeout());
    loop {
        let error = match api_limits::read_request(&mut reader, &mut line, deadline) {
            Ok(()) => None,
            Err(ReadEnd::Closed) => return,
            Err(ReadEnd::TimedOut { partial }) => {
                tracing::debug!(peer = %who, partial, "API: request timed out; connection closed");
                Some(format!(
                    "request timed out: not complete within control.api_request_timeout_ms ({} ms)",
                    handler.request_timeout().as_millis()
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
                Request::Stats
                | Request::Config
                | Request::FlowsList { .. }
                | Request::DirectorBackends
                | Request::DirectorLookup { .. } => {
                    tracing::debug!(peer = %who, request = request.name(), "API request")
                }
                _ => tracing::info!(peer = %who, request = request.name(), "API request"),
            }
            handler.handle(request)
        });
        let reply = Response::line(result);
        let due = api_limits::deadline_from_now(handler.request_timeout());
        if !api_limits::write_reply(&mut writer, reply.as_bytes(), due) {
            return;
        }
        deadline = api_limits::deadline_from_now(handler.request_timeout());
    }
}

/// A last error reply gets a second at most, even past the request's deadline.
fn deadline_or_soon(deadline: Instant) -> Instant {
    deadline.max(Instant::now()) + Duration::from_secs(1)
}

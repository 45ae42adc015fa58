//! The local API's server, shared by chanced and chance-director: a Unix socket, mode 0660, owned
//! by root and the configured group, so that nobody else can connect; one thread per connection
//! (at most [`MAX_CONNECTIONS`]), each reading newline-delimited requests with a timeout and
//! answering each through the daemon's [`ApiHandler`]. See [`crate::api`] for the protocol.

use crate::api::{parse_request, Request, Response, MAX_REQUEST_BYTES};
use crate::control_config::ApiGroup;
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

/// What a daemon answers on its API.
pub(crate) trait ApiHandler: Send + Sync + 'static {
    /// Answers one parsed request (the error is the reply's message).
    fn handle(&self, request: Request) -> Result<Value, String>;
}

/// Connections served at once; more get an error reply and are closed.
pub(crate) const MAX_CONNECTIONS: usize = 16;
/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

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
        let handler = Arc::clone(handler);
        let guard = Arc::clone(&active);
        let spawned = std::thread::Builder::new()
            .name("chance-api-conn".into())
            .spawn(move || {
                serve_connection(stream, &*handler);
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

fn serve_connection(stream: UnixStream, handler: &dyn ApiHandler) {
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
        if writer
            .write_all(Response::line(result).as_bytes())
            .and_then(|()| writer.flush())
            .is_err()
        {
            return;
        }
    }
}

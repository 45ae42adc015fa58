//! Output files replaced whole: written under a temporary name in the target's own directory and
//! renamed over it only when complete, so a reader (or the next run) never sees half a file, and
//! a failed run leaves the old file as it was.

use std::io::{self, Write};
use std::path::Path;
use tempfile::NamedTempFile;

/// A temporary file beside `path`, to be persisted over it (removed if dropped before).
pub fn create(path: &Path) -> io::Result<NamedTempFile> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    tempfile::Builder::new()
        .prefix(".chance-")
        // As a file created the usual way would be (the umask applies).
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
}

/// Replaces `path` with `bytes` (synced before the rename).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = create(path)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map(drop).map_err(|e| e.error)
}

//! A configuration path must name a regular file of at most `config::MAX_FILE_BYTES`: a FIFO,
//! /dev/zero or an oversized file is refused promptly, with exit status 2, by `chancectl config
//! check` and by chanced; a large valid file is checked in memory a small multiple of its size.

mod common;

use chance_control::config::MAX_FILE_BYTES;
use common::{scratch, stderr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `program ARGS` and waits at most 20 s for it (then kills it and fails).
fn run_bounded(program: &str, args: &[&std::ffi::OsStr]) -> Output {
    let child = Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let start = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output().expect("waits"));
    while !waiter.is_finished() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waiter.join();
            panic!("{program} {args:?} did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

/// `chancectl config check PATH` and `chanced --config PATH` both exit 2 saying `needle`.
fn assert_refused(path: &Path, needle: &str) {
    for (program, args) in [
        (
            env!("CARGO_BIN_EXE_chancectl"),
            ["config".as_ref(), "check".as_ref(), path.as_os_str()],
        ),
        (
            env!("CARGO_BIN_EXE_chanced"),
            ["--config".as_ref(), path.as_os_str(), "--duration=1".as_ref()],
        ),
    ] {
        let out = run_bounded(program, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{program}: {err}");
        assert!(
            err.contains(needle) && err.contains(&path.display().to_string()),
            "{program}: expected {needle:?} and the path in {err:?}"
        );
    }
}

#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let path = scratch("fifo").join("chance.toml");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_refused(&path, "not a regular file (a FIFO)");
}

#[test]
fn dev_zero_is_refused_without_reading_it() {
    assert_refused(
        Path::new("/dev/zero"),
        "not a regular file (a character device)",
    );
}

#[test]
fn a_directory_is_refused() {
    assert_refused(&scratch("directory"), "not a regular file (a directory)");
}

#[test]
fn a_file_over_the_bound_is_refused_naming_the_bound() {
    let path = scratch("oversized").join("chance.toml");
    let file = std::fs::File::create(&path).unwrap();
    // Sparse: the size is what counts, nothing is written.
    file.set_len(MAX_FILE_BYTES + 1).unwrap();
    assert_refused(
        &path,
        &format!(
            "{} bytes is too large for a configuration (the limit is {MAX_FILE_BYTES} bytes, 64 MiB)",
            MAX_FILE_BYTES + 1
        ),
    );
}

//! A configuration path must name a regular file of at most `config::MAX_FILE_BYTES`: a FIFO,
//! /dev/zero or an oversized file is refused promptly, with exit status 2, by `chancectl config
//! check` and by chanced; a large valid file is checked in memory a small multiple of its size.
//!
//! The memory test reads the children's peak RSS (getrusage RUSAGE_CHILDREN), a maximum over
//! every child this test binary waited for: the other tests' children run on tiny files.

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
            [
                "--config".as_ref(),
                path.as_os_str(),
                "--duration=1".as_ref(),
            ],
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

#[test]
fn checking_many_static_flows_takes_memory_a_small_multiple_of_the_file() {
    use std::fmt::Write;
    let path = scratch("many_flows").join("chance.toml");
    let flows = 100_000u32;
    let mut text =
        format!("[encap]\naddresses = [\"192.0.2.10\"]\n[flow_table]\ncapacity = {flows}\n");
    for i in 0..flows {
        let _ = write!(
            text,
            "[[flow]]\nproto = \"tcp\"\nlocal = \"192.0.2.10:{}\"\nremote = \"198.51.{}.{}:{}\"\n",
            1 + i % 60_000,
            (i >> 16) & 255,
            (i >> 8) & 255,
            1 + (i & 255)
        );
    }
    std::fs::write(&path, &text).unwrap();
    let out = run_bounded(
        env!("CARGO_BIN_EXE_chancectl"),
        &["config".as_ref(), "check".as_ref(), path.as_os_str()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(common::stdout(&out).contains(&format!("{flows} static flows")));
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let peak = usage.max_rss() as u64 * 1024; // kilobytes on Linux
    let size = text.len() as u64;
    // Parsed as one document this file took 30 times its size (about 240 MB); cut into
    // sections, about 3 times. The allowance covers the program itself.
    assert!(
        peak < 4 * size + (24 << 20),
        "peak RSS {peak} bytes for a {size}-byte file"
    );
}

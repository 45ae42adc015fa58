//! Writes cls_redirect's selftest as chance fixtures: `selftest.pcap` (the 14 input frames in the
//! selftest's matrix order, classic pcap, Ethernet) and `selftest.toml` (encapsulation address
//! 127.0.0.1, port 1234, and the owned flows) into the directory given on the command line.
//!
//! Usage: `chance-fixtures DIR`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: chance-fixtures DIR");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    match chance_testkit::selftest::write_fixtures(&dir) {
        Ok((pcap, toml)) => {
            println!("{}", pcap.display());
            println!("{}", toml.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("chance-fixtures: {}: {err}", dir.display());
            ExitCode::FAILURE
        }
    }
}

#!/usr/bin/env bash
# The project's test command (docs/testing.md): lints, the workspace's tests, and a build of the fuzz
# target. Warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace
# The fuzz target is its own workspace (cargo-fuzz convention); it must keep compiling.
cargo test -q --manifest-path fuzz/Cargo.toml

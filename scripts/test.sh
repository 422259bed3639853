#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need and the
# machine lacks, then checks formatting and lints, and runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

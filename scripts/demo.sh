#!/usr/bin/env bash
# The main job on a built-in example: generates a home-like tree, syncs it with azsync and with
# rsync to local destinations (first sync with a cp -a baseline, no-op, --checksum no-op, 1%
# changed, one big file edited, 1% deleted with --delete), checks every replica, and prints a
# report of times, ratios and peak memory. Extra arguments go to the harness (--help; --ssh and
# --wan go over a loopback sshd).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --locked -p sync-cli -p azsync-benches
exec target/release/e2e --quick --azsync target/release/azsync "$@"

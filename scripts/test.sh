#!/usr/bin/env bash
# README command 2: every test, unit and end-to-end (real KDC, slapd, broker, kinit).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The end-to-end tests run the project's binaries (and load pam_ktbroker.so) as real processes: build them first.
cargo build --workspace
cargo test --workspace "$@"

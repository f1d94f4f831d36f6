#!/usr/bin/env bash
# README command 1: a self-contained sandbox (MIT KDC + kadmind, slapd, ktbrokerd on 127.0.0.1),
# logs demo user alice in through ktbroker-kinit and shows klist, then stays up until Ctrl-C.
#   --once   tear down after the login; exit 0 only if alice got her TGT.
#   --hdfs   also start a secure HDFS and show a netdisk session as alice.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --quiet --workspace --bins
exec target/debug/ktbroker-sandbox "$@"

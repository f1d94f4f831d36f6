#!/usr/bin/env bash
# Builds ktbroker-kinit as the package ships it and prints its path: profile release-client (fat
# LTO, one codegen unit, opt-level "s"; see Cargo.toml) and packed relative relocations (DT_RELR,
# glibc >= 2.36). A login is a short process whose peak memory is mostly the pages of code it
# touches, so a smaller binary is a smaller login: bench/memory compares it with the plain release
# build in the same run. Its own target directory in the cache (like build-debs.sh's), because
# RUSTFLAGS differ: a cold build takes about 4 minutes on 2 cores, a warm one a link.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${KTBROKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktbroker}"
export CARGO_TARGET_DIR="$cache/target-client"
export RUSTFLAGS="-C link-arg=-Wl,-z,pack-relative-relocs"
cargo build --quiet --locked --profile release-client -p ktbroker-kinit --bin ktbroker-kinit
echo "$CARGO_TARGET_DIR/release-client/ktbroker-kinit"

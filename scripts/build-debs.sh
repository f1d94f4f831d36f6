#!/usr/bin/env bash
# Builds the two Debian packages into target/debian/:
#   ktbroker-broker  ktbrokerd, its unit and sysusers file, /etc/ktbroker/broker.toml, man page
#   ktbroker-client  ktbroker-kinit, netdisk, pam_ktbroker.so, the pam-auth-update profile,
#                    /etc/ktbroker/client.toml, the renewal user unit, man pages, completions
# from a release build (ktbroker-kinit: the smaller build of scripts/build-client.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo-deb (MIT, the maintained Cargo-to-.deb tool; ~3 min to build once, then cached in
# ~/.cargo/bin). Pinned so the packages do not change with a new release of the tool.
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    cargo install cargo-deb --version "$cargo_deb_version" --locked --quiet
fi
# The release build lives in a cache outside the repository (like Hadoop's jars): a cold release
# build of the whole dependency tree takes about 15 minutes on 2 cores, a warm one seconds. Cargo
# rebuilds whatever changed; set CARGO_TARGET_DIR to build elsewhere.
cache="${KTBROKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktbroker}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target-release}"
cargo build --release --locked -p ktbroker-broker -p ktbroker-kinit -p ktbroker-netdisk \
    -p ktbroker-pam -p ktbroker-packaging
rm -rf packaging/generated
"$CARGO_TARGET_DIR/release/ktbroker-gen-assets" packaging/generated >/dev/null
# The client the package ships is built small (scripts/build-client.sh).
mkdir -p packaging/generated/bin
cp "$(scripts/build-client.sh)" packaging/generated/bin/ktbroker-kinit
rm -f "$CARGO_TARGET_DIR"/debian/ktbroker-*.deb target/debian/ktbroker-*.deb
cargo deb --no-build -p ktbroker-broker
# The client variant is the Debian architecture: it names the multiarch PAM directory.
cargo deb --no-build -p ktbroker-kinit --variant "$(dpkg --print-architecture)"
mkdir -p target/debian
cp "$CARGO_TARGET_DIR"/debian/ktbroker-*.deb target/debian/
ls target/debian/ktbroker-*.deb

#!/usr/bin/env bash
# Builds the two Debian packages into target/debian/:
#   ktbroker-broker  ktbrokerd, its unit and sysusers file, /etc/ktbroker/broker.toml, man page
#   ktbroker-client  ktbroker-kinit, netdisk, pam_ktbroker.so, the pam-auth-update profile,
#                    /etc/ktbroker/client.toml, the renewal user unit, man pages, completions
# from a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo-deb (MIT, the maintained Cargo-to-.deb tool; ~3 min to build once, then cached in
# ~/.cargo/bin). Pinned so the packages do not change with a new release of the tool.
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    cargo install cargo-deb --version "$cargo_deb_version" --locked --quiet
fi
cargo build --release --locked -p ktbroker-broker -p ktbroker-kinit -p ktbroker-netdisk \
    -p ktbroker-pam -p ktbroker-packaging
rm -rf packaging/generated
target/release/ktbroker-gen-assets packaging/generated >/dev/null
rm -f target/debian/ktbroker-*.deb
cargo deb --no-build -p ktbroker-broker
# The client variant is the Debian architecture: it names the multiarch PAM directory.
cargo deb --no-build -p ktbroker-kinit --variant "$(dpkg --print-architecture)"
ls target/debian/ktbroker-*.deb

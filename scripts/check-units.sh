#!/usr/bin/env bash
# CI: the systemd units are valid (systemd-analyze verify prints nothing) and ktbrokerd.service's
# sandboxing scores an exposure of at most 1.2 (systemd-analyze security --threshold=12).
# The units name /usr/sbin and /usr/bin binaries; here they point at this build's, which must exist.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bins -p ktbroker-broker -p ktbroker-kinit
bin="$PWD/target/debug"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in systemd/*.service; do
    sed -e "s#/usr/sbin/ktbrokerd#$bin/ktbrokerd#g" -e "s#/usr/bin/ktbroker-kinit#$bin/ktbroker-kinit#g" \
        "$unit" > "$work/$(basename "$unit")"
done
# The man pages the units name come with the packages: scripts/test-packages.sh verifies the
# installed units with them; here, from the source tree, --man=no.
errors=$(systemd-analyze verify --man=no "$work"/*.service 2>&1 >/dev/null || true)
if [ -n "$errors" ]; then
    echo "systemd-analyze verify:" >&2
    echo "$errors" >&2
    exit 1
fi
systemd-analyze security --offline=true --threshold=12 "$work/ktbrokerd.service" | tail -n 1
echo "check-units: ok"

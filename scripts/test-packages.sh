#!/usr/bin/env bash
# CI: the Debian packages build, install, work and go away cleanly on this machine.
#  1. scripts/build-debs.sh builds ktbroker-broker and ktbroker-client (release).
#  2. dpkg -i both: every file is where Debian expects it, _ktbroker exists, the installed unit
#     passes `systemd-analyze verify` (man pages included) and `security` (exposure <= 1.2),
#     man finds the pages, and /etc/pam.d is unchanged (the PAM profile is off by default).
#  3. The installed binaries against the harness: the sandbox login and netdisk session with
#     ktbrokerd from /usr/sbin and ktbroker-kinit, netdisk from /usr/bin; a PAM login through
#     the installed profile's lines, with libpam finding pam_ktbroker.so in its own directory.
#  4. dpkg -r: nothing of theirs is left but the conffiles; dpkg --purge removes those and
#     /etc/ktbroker; neither warns.
#  5. docs/admin-guide.md's runbook, literally, on a fresh install (scripts/test-admin-guide.sh).
#  lintian passes both at error and warning level.
# Needs root (dpkg). Leaves the machine as it found it, also when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
packages=(ktbroker-client ktbroker-broker)
conffiles=(/etc/ktbroker/broker.toml /etc/ktbroker/client.toml /etc/ktbroker/netdisk.toml)
work=$(mktemp -d)
cleanup() {
    for guide in "$work"/guide-*; do  # the admin guide's runbook ran: what it made goes too
        [ -f "$guide/env" ] || continue
        GUIDE_ENV_DIR="$guide" scripts/guide/systemctl stop ktbrokerd || true
        scripts/test-admin-guide.sh stop "$guide" || true
        rm -f /etc/ktbroker/{tls.key,tls.pem,ldap-password,admin.keytab,ldap-ca.pem,ca.pem}
        rm -rf /var/log/ktbroker /root/ktbroker-audit-*.tar.gz
    done
    dpkg --purge "${packages[@]}" >/dev/null 2>&1 || true
    rmdir /etc/ktbroker 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cleanup
mkdir -p "$work"

fail() { echo "test-packages: $*" >&2; exit 1; }

scripts/build-debs.sh
cargo build --quiet --bins -p ktbroker-tests
for deb in target/debian/ktbroker-*.deb; do
    echo "== $deb"; dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
done
# Debian's own checks, at error and warning level (informational tags are listed, not fatal).
lintian_out=$(lintian --fail-on error,warning --display-level '>=info' target/debian/ktbroker-*.deb 2>&1) \
    || fail "lintian: $lintian_out"
grep -v '^running with root privileges' <<<"$lintian_out" || true

pam_before=$(cd /etc/pam.d && sha256sum ./*)
dpkg -i target/debian/ktbroker-broker_*.deb target/debian/ktbroker-client_*.deb
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" | grep -qx "install ok installed" || fail "$p is not installed"
    dpkg -L "$p" > "$work/$p.files"
done

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
expected=(
    /usr/sbin/ktbrokerd /usr/bin/ktbroker-kinit /usr/bin/netdisk
    "/lib/$multiarch/security/pam_ktbroker.so" /usr/share/pam-configs/ktbroker
    /usr/lib/systemd/system/ktbrokerd.service /usr/lib/sysusers.d/ktbroker-broker.conf
    /usr/lib/systemd/user/ktbroker-renew.service
    /usr/share/man/man8/ktbrokerd.8.gz /usr/share/man/man1/ktbroker-kinit.1.gz /usr/share/man/man1/netdisk.1.gz
    /usr/share/man/man8/pam_ktbroker.8.gz /usr/share/man/man8/ktbrokerd-check-config.8.gz /usr/share/man/man1/ktbroker-kinit-run.1.gz
    /usr/share/bash-completion/completions/ktbroker-kinit /usr/share/bash-completion/completions/netdisk
    /usr/share/zsh/vendor-completions/_netdisk /usr/share/fish/vendor_completions.d/netdisk.fish
    "${conffiles[@]}"
)
for f in "${expected[@]}"; do
    # usrmerge: a package may ship /lib/... for /usr/lib/...; what counts is the file on disk.
    [ -f "$f" ] || fail "missing after install: $f"
done
[ "$(stat -c '%U:%G %a' /etc/ktbroker/broker.toml)" = "root:_ktbroker 640" ] \
    || fail "broker.toml is $(stat -c '%U:%G %a' /etc/ktbroker/broker.toml), not root:_ktbroker 640"
getent passwd _ktbroker | grep -q ':/usr/sbin/nologin$' || fail "no _ktbroker system user"
man -w ktbrokerd ktbroker-kinit netdisk pam_ktbroker >/dev/null || fail "man does not find the pages"
[ "$(cd /etc/pam.d && sha256sum ./*)" = "$pam_before" ] || fail "installing changed /etc/pam.d"

# check-config outside the unit reads the installed unit's LoadCredential= sources (not made yet
# here), as the example broker.toml's check-then-reload line needs.
check=$(/usr/sbin/ktbrokerd --config /etc/ktbroker/broker.toml check-config 2>&1 >/dev/null) \
    && fail "check-config passed the unconfigured example"
grep -q '/etc/ktbroker/tls.key' <<<"$check" || fail "check-config did not use the unit's credentials: $check"

# The installed units, now with their man pages present (check-units.sh checks the sources).
# (--user needs a running user manager, which CI lacks: the user unit is verified as a plain unit.)
errors=$(systemd-analyze verify /usr/lib/systemd/system/ktbrokerd.service \
    /usr/lib/systemd/user/ktbroker-renew.service 2>&1 >/dev/null || true)
[ -z "$errors" ] || fail "systemd-analyze verify: $errors"
systemd-analyze security --offline=true --threshold=12 /usr/lib/systemd/system/ktbrokerd.service | tail -n 1

# The installed files at work. A product missing under KTBROKER_BIN_PATH fails; nothing falls
# back to the build tree.
export KTBROKER_BIN_PATH=/usr/sbin:/usr/bin
target/debug/ktbroker-sandbox --once --hdfs 2>&1 | tee "$work/sandbox.out"
for program in /usr/sbin/ktbrokerd /usr/bin/ktbroker-kinit /usr/bin/netdisk; do
    grep -qx "using $program" "$work/sandbox.out" || fail "the sandbox did not use $program"
done
target/debug/ktbroker-pam-profile-check

dpkg -r "${packages[@]}" 2>&1 | tee "$work/remove.out"
! grep -i 'warning' "$work/remove.out" || fail "dpkg -r warned"
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" | grep -qx "deinstall ok config-files" \
        || fail "$p: $(dpkg-query -W -f='${Status}' "$p") after dpkg -r"
done
left=$(cat "$work"/*.files | sort -u | while read -r f; do
    [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"; done || true)
[ "$left" = "$(printf '%s\n' "${conffiles[@]}" | sort)" ] || fail "left after dpkg -r: $left"
[ "$(cd /etc/pam.d && sha256sum ./*)" = "$pam_before" ] || fail "removing changed /etc/pam.d"
echo "after dpkg -r, left: $(echo "$left" | tr '\n' ' ')"

dpkg --purge "${packages[@]}" 2>&1 | tee "$work/purge.out"
! grep -i 'warning' "$work/purge.out" || fail "dpkg --purge warned"
for f in "${conffiles[@]}"; do [ ! -e "$f" ] || fail "$f survived purge"; done
[ ! -e /etc/ktbroker ] || fail "/etc/ktbroker survived purge: $(ls -A /etc/ktbroker)"
# 5. The admin guide's runbook on a fresh install: from an empty host to a first login; then a
#    purge, which leaves what the admin made, and the guide's removal block, which removes it.
#    Once with OpenLDAP, once with Active Directory (Samba's AD DC).
for directory in openldap ad; do
    dpkg -i target/debian/ktbroker-broker_*.deb target/debian/ktbroker-client_*.deb > /dev/null
    scripts/test-admin-guide.sh run "$work/guide-$directory" "$directory"
    dpkg --purge "${packages[@]}" > /dev/null 2>&1
    scripts/test-admin-guide.sh removal "$work/guide-$directory" "$directory"
    scripts/test-admin-guide.sh stop "$work/guide-$directory"
done
echo "test-packages: ok"

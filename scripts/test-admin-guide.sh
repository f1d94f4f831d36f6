#!/usr/bin/env bash
# CI: docs/admin-guide.md as a runbook. Runs its `sh runbook` blocks ("From an empty host to a first
# login") literally, in order, against a throwaway MIT realm and OpenLDAP directory
# (ktbroker-guide-env: no ktbroker principal, ACL line or service account yet) with the installed
# packages, and checks that they end in a login; later its `sh runbook-removal` block ("Removal").
# The only stand-ins: the site's values (the runbook's first block keeps what is set here) and
# systemctl (scripts/guide/systemctl; CI has no systemd).
#   scripts/test-admin-guide.sh run DIR [openldap|ad]   set up, run the runbook, check the login,
#                                                       stop the broker
#   scripts/test-admin-guide.sh removal DIR [openldap|ad]   after dpkg --purge: the removal blocks
#   scripts/test-admin-guide.sh stop DIR                stop the throwaway realm and directory
# The blocks for the other directory are left out (```sh runbook ad vs ```sh runbook openldap).
# Called by scripts/test-packages.sh (root, packages installed).
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: test-admin-guide.sh run|removal|stop DIR [openldap|ad]"
action=${1:?$usage}
dir=${2:?$usage}
directory=${3:-openldap}
case "$directory" in openldap | ad) ;; *) echo "$usage" >&2; exit 2 ;; esac
fail() { echo "test-admin-guide: $*" >&2; exit 1; }

# The blocks whose fence says ```sh TAG or ```sh TAG DIRECTORY, in order, as one script.
blocks() {
    awk -v tag="$1" -v kind="$directory" '
        $1 == "```sh" && $2 == tag && (NF == 2 || (NF == 3 && $3 == kind)) { inside = 1; next }
        inside && $0 == "```" { inside = 0; print ""; next }
        inside { print }
    ' docs/admin-guide.md
}

# Runs the blocks tagged $1 with the throwaway site's values, the stand-in systemctl first on PATH.
run_blocks() {
    blocks "$1" > "$dir/$1.sh"
    [ -s "$dir/$1.sh" ] || fail "no \`\`\`sh $1 block in docs/admin-guide.md"
    grep -q . "$dir/$1.sh" || fail "the $1 blocks are empty"
    (
        # shellcheck disable=SC1091
        . "$dir/env"
        export GUIDE_ENV_DIR="$dir" KRB5CCNAME="FILE:$dir/first-login.ccache"
        export PATH="$PWD/scripts/guide:/usr/sbin:/usr/bin:/sbin:/bin"
        cd "$dir"
        # -v echoes each line as written (-x would print the expanded secrets)
        bash -euo pipefail -v "$dir/$1.sh" < "$FIRST_USER_PASSWORD_FILE"
    ) > "$dir/$1.out" 2>&1 || { cat "$dir/$1.out" >&2; fail "the guide's $1 blocks failed"; }
}

case "$action" in
run)
    cargo build --quiet --bin ktbroker-guide-env -p ktbroker-tests
    # The service user reads the krb5 profile the runbook writes here.
    install -d -m 0755 "$dir"
    flags=(); [ "$directory" = ad ] && flags=(--ad)
    target/debug/ktbroker-guide-env "$dir" "${flags[@]}" > "$dir/guide-env.log" 2>&1 &
    for _ in $(seq 900); do [ -f "$dir/ready" ] && break; sleep 0.1; done
    [ -f "$dir/ready" ] || fail "the throwaway realm and directory did not start: $(cat "$dir/guide-env.log")"
    run_blocks runbook
    if ! grep -q "Default principal: alice@GUIDE.TEST" "$dir/runbook.out" \
        || ! grep -q "krbtgt/GUIDE.TEST@GUIDE.TEST" "$dir/runbook.out"; then
        fail "the runbook ended without alice's TGT: $(cat "$dir/runbook.out")"
    fi
    grep -q '"outcome":"granted"' /var/log/ktbroker/audit.jsonl \
        || fail "no successful login in the audit log: $(cat /var/log/ktbroker/audit.jsonl)"
    echo "test-admin-guide: the runbook ($directory, $(grep -c '^[^ ]' "$dir/runbook.sh") lines) ends in alice's login"
    GUIDE_ENV_DIR="$dir" scripts/guide/systemctl stop ktbrokerd
    ! pgrep -u _ktbroker >/dev/null || fail "ktbrokerd still runs after systemctl stop"
    ;;
removal)
    run_blocks runbook-removal
    for left in /etc/ktbroker /var/log/ktbroker; do [ ! -e "$left" ] || fail "$left is left: $(ls -A "$left")"; done
    ! getent passwd _ktbroker >/dev/null || fail "_ktbroker is left"
    # shellcheck disable=SC1091
    ( . "$dir/env"; ! kadmin.local -q "getprinc ktbroker/admin@$REALM" 2>&1 | grep -q '^Principal:' ) \
        || fail "the admin principal is left"
    rm -f /root/ktbroker-audit-*.tar.gz
    echo "test-admin-guide: the removal blocks ($directory) leave nothing"
    ;;
stop)
    if [ -f "$dir/env" ]; then
        # shellcheck disable=SC1091,SC2153 # set by the env file
        pid=$(. "$dir/env"; echo "$GUIDE_ENV_PID")
        kill -TERM "$pid" 2>/dev/null || true
    fi
    ;;
*) fail "unknown action $action" ;;
esac

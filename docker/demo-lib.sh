# Sourced by the compose demo's setup.sh, kdc.sh and ldap.sh: what they agree on. The demo people
# are the sandbox's (tests/src/sandbox.rs, DEMO_USERS): alice and bob may log in ({SSHA} and
# {ARGON2} passwords), carol is not in hadoop-users, dave has no Kerberos principal.
# shellcheck shell=sh disable=SC2034  # the variables are for the scripts that source this file
REALM=${REALM:-DEMO.TEST}
BROKER_ADMIN="ktbroker/admin@$REALM"
# The broker image's uid: its credentials must be owner-only and its own.
BROKER_UID=10001
# The HDFS image's uid, which reads the HDFS service keytab.
HDFS_UID=10002
# name:directory password:hash scheme:in hadoop-users:in hadoop-posix
DEMO_PEOPLE="alice:alicepw:SSHA:yes:no bob:bobpw:ARGON2:yes:yes carol:carolpw:SSHA:no:no dave:davepw:SSHA:yes:no"
DEMO_PRINCIPALS="alice bob carol"
PPOLICY_MAX_FAILURES=6

log() { echo "ktbroker-demo[$(basename "$0")]: $*" >&2; }

# render TEMPLATE NAME=VALUE ...: templates/TEMPLATE rendered (docker/render.sh).
render() {
    template=$1
    shift
    /usr/share/ktbroker/render.sh "/usr/share/ktbroker/templates/$template" "$@"
}

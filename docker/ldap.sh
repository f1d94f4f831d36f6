#!/bin/sh
# The compose demo's OpenLDAP: slapd.conf and the directory's contents rendered from the
# sandbox's templates (the same access rules, people, groups and password policy), loaded once,
# then slapd on LDAPS as the openldap user.
set -eu
# shellcheck source=demo-lib.sh
. /usr/share/ktbroker/demo-lib.sh
data=/var/lib/ktbroker-ldap
mkdir -p "$data/db"
# slapd may read its certificate and key again after dropping to the openldap user.
install -m 0644 -o openldap -g openldap /ldap-init/ldap.pem "$data/ldap.pem"
install -m 0600 -o openldap -g openldap /ldap-init/ldap.key "$data/ldap.key"
render slapd.conf.in DATA_DIR="$data" CA=/config/ca.pem CERT="$data/ldap.pem" KEY="$data/ldap.key" \
    > "$data/slapd.conf"
if [ ! -e "$data/db/data.mdb" ]; then
    log "loading the demo directory"
    umask 077
    work=$(mktemp -d)
    hash() { # SCHEME PASSWORD_FILE
        if [ "$1" = ARGON2 ]; then
            slappasswd -o module-path=/usr/lib/ldap -o module-load=argon2 -h '{ARGON2}' -T "$2"
        else
            slappasswd -T "$2"
        fi
    }
    render directory.ldif.in PPOLICY_MAX_FAILURES="$PPOLICY_MAX_FAILURES" \
        SERVICE_PASSWORD_HASH="$(hash SSHA /ldap-init/service-password)" > "$work/data.ldif"
    number=10001
    members=""
    member_uids=""
    nl='
'
    for person in $DEMO_PEOPLE; do
        IFS=: read -r name password scheme in_group in_posix_group <<PERSON
$person
PERSON
        printf '%s' "$password" > "$work/password"
        render person.ldif.in UID="$name" UID_NUMBER="$number" \
            PASSWORD_HASH="$(hash "$scheme" "$work/password")" >> "$work/data.ldif"
        if [ "$in_group" = yes ]; then
            members="$members${members:+$nl}member: uid=$name,ou=people,dc=example,dc=com"
        fi
        if [ "$in_posix_group" = yes ]; then
            member_uids="$member_uids${member_uids:+$nl}memberUid: $name"
        fi
        number=$((number + 1))
    done
    render groups.ldif.in MEMBER_LINES="$members" MEMBER_UID_LINES="$member_uids" >> "$work/data.ldif"
    slapadd -f "$data/slapd.conf" -b dc=example,dc=com -q -l "$work/data.ldif"
    rm -rf "$work"
fi
chown -R openldap:openldap "$data"
exec slapd -d stats -h "ldaps:/// ldap:///" -f "$data/slapd.conf" -u openldap -g openldap

#!/bin/sh
# The compose demo's one-shot setup: a CA and certificates for the broker and the directory, the
# LDAP service account's password, and the configurations everyone reads from /config, rendered
# from the sandbox's templates. Does nothing once it has run (the volumes keep its work).
set -eu
# shellcheck source=demo-lib.sh
. /usr/share/ktbroker/demo-lib.sh
if [ -e /config/.complete ]; then
    log "already set up"
    exit 0
fi
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A CA that lives only as long as this script (its key is never stored), and two servers.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout "$work/ca.key" -out /config/ca.pem -subj "/CN=ktbroker demo CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
server_cert() { # NAME CERT_OUT KEY_OUT
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$3" -out "$work/$1.csr"
    printf 'subjectAltName=DNS:%s,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$1" \
        > "$work/$1.ext"
    openssl x509 -req -in "$work/$1.csr" -CA /config/ca.pem -CAkey "$work/ca.key" -CAcreateserial \
        -days 30 -extfile "$work/$1.ext" -out "$2"
}
server_cert broker /config/broker.pem /secrets/broker/tls-key
server_cert ldap /ldap-init/ldap.pem /ldap-init/ldap.key
# The broker's directory service account: a random password, as a credential for the broker and
# as a file slappasswd -T hashes (no newline: -T hashes every byte).
printf '%s' "$(openssl rand -hex 24)" > /secrets/broker/ldap-password
cp /secrets/broker/ldap-password /ldap-init/service-password
chown "$BROKER_UID:$BROKER_UID" /secrets/broker/tls-key /secrets/broker/ldap-password

render krb5.conf.in REALM="$REALM" KDC=kdc:88 KADMIN=kdc:749 HOST=hdfs > /config/krb5.conf
tenant=$(render tenant.toml.in TENANT=demo REALM="$REALM" LDAP_URL=ldaps://ldap:636/ \
    LDAP_CA=/config/ca.pem BROKER_ADMIN="$BROKER_ADMIN" ADMIN_KEYTAB=credential:admin-keytab)
render broker.toml.in LISTEN=0.0.0.0:8443 TLS_CERT=/config/broker.pem TLS_KEY=credential:tls-key \
    AUDIT_FILE=/var/log/ktbroker/audit.jsonl KRB5_CONFIG=/config/krb5.conf TENANTS="$tenant" \
    > /config/broker.toml
render client.toml.in BROKER_URL=https://broker:8443 CA_FILE=/config/ca.pem > /config/client.toml
render netdisk.toml.in HOST=hdfs RPC_PORT=8020 HTTP_PORT=50070 > /config/netdisk.toml
chmod 0644 /config/ca.pem /config/broker.pem /config/krb5.conf /config/broker.toml /config/client.toml \
    /config/netdisk.toml
touch /config/.complete
log "CA, certificates and configurations written"

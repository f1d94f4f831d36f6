#!/bin/sh
# The compose demo's MIT KDC and kadmind. On first start: the realm's database, the broker's admin
# principal with exactly the kadm5.acl grant docs/admin-guide.md documents (rendered from the
# sandbox's template), its keytab handed to the broker as a credential, and the demo people's
# principals with random keys (they only ever log in through the broker), and the demo HDFS's
# service keytab. Then both daemons.
set -eu
# shellcheck source=demo-lib.sh
. /usr/share/ktbroker/demo-lib.sh
db=/var/lib/krb5kdc
export KRB5_CONFIG=/config/krb5.conf KRB5_KDC_PROFILE="$db/kdc.conf"
render kdc.conf.in KDC_LISTEN=88 REALM="$REALM" DB_DIR="$db" KADMIN_LISTEN=749 KPASSWD_LISTEN=464 \
    > "$KRB5_KDC_PROFILE"
render kadm5.acl.in BROKER_ADMIN="$BROKER_ADMIN" REALM="$REALM" > "$db/kadm5.acl"
if [ ! -e "$db/principal" ]; then
    log "creating realm $REALM"
    umask 077
    # A random master key, stashed (-s): nobody types it in a demo. It is on kdb5_util's command
    # line for an instant, inside this container only.
    kdb5_util create -s -r "$REALM" -P "$(tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 32)"
    kadmin.local -q "addprinc -randkey $BROKER_ADMIN"
    kadmin.local -q "ktadd -k /secrets/broker/admin-keytab $BROKER_ADMIN"
    chown "$BROKER_UID:$BROKER_UID" /secrets/broker/admin-keytab
    for name in $DEMO_PRINCIPALS; do
        kadmin.local -q "addprinc -randkey $name"
    done
    # The demo HDFS's service principals, in one keytab for its NameNode, DataNode and SPNEGO.
    for service in nn/hdfs dn/hdfs HTTP/hdfs; do
        kadmin.local -q "addprinc -randkey $service@$REALM"
        kadmin.local -q "ktadd -k /secrets/hdfs/hdfs.keytab $service@$REALM"
    done
    chown "$HDFS_UID:$HDFS_UID" /secrets/hdfs/hdfs.keytab
fi
krb5kdc -n &
exec kadmind -nofork

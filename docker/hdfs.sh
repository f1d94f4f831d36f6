#!/bin/sh
# The compose demo's secure HDFS (Hadoop 2.7.3 NameNode and DataNode on Java 17, Kerberos RPC,
# block tokens, WebHDFS with SPNEGO), configured from the templates the sandbox's HDFS uses
# (tests/src/hdfs.rs): the same site files and JVM options, with host "hdfs" and the usual ports.
# On first start it formats the NameNode and makes home directories for alice and bob.
set -eu
# shellcheck source=demo-lib.sh
. /usr/share/ktbroker/demo-lib.sh
data=/var/lib/ktbroker-hdfs
conf="$data/conf"
keytab=/secrets/hdfs/hdfs.keytab
export KRB5_CONFIG=/config/krb5.conf
for app in hdfs datanode secondary; do
    mkdir -p "$conf/webapps/$app/WEB-INF"
    printf '%s' '<web-app xmlns="http://java.sun.com/xml/ns/javaee" version="2.5"></web-app>' \
        > "$conf/webapps/$app/WEB-INF/web.xml"
done
render hadoop-log4j.properties.in > "$conf/log4j.properties"
render core-site.xml.in HOST=hdfs RPC_PORT=8020 \
    REALM_REGEX="$(printf '%s' "$REALM" | sed 's/\./\\./g')" > "$conf/core-site.xml"
render hdfs-site.xml.in DATA_DIR="$data" BLOCK_SIZE=134217728 HOST=hdfs RPC_PORT=8020 HTTP_PORT=50070 \
    SECONDARY_PORT=50090 DATANODE_BIND=0.0.0.0 DATA_PORT=50010 DATA_HTTP_PORT=50075 DATA_IPC_PORT=50020 \
    REALM="$REALM" KEYTAB="$keytab" > "$conf/hdfs-site.xml"
render hadoop-jvm.args.in KRB5_CONF="$KRB5_CONFIG" LOG_DIR="$data" CONF_DIR="$conf" \
    JARS=/opt/ktbroker/hadoop-2.7.3/jars > "$conf/jvm.args"

if [ ! -d "$data/name/current" ]; then
    log "formatting the NameNode"
    java @"$conf/jvm.args" org.apache.hadoop.hdfs.server.namenode.NameNode -format -force -nonInteractive
fi
java -Dhadoop.root.logger=INFO,console @"$conf/jvm.args" org.apache.hadoop.hdfs.server.namenode.NameNode &
java -Dhadoop.root.logger=INFO,console @"$conf/jvm.args" org.apache.hadoop.hdfs.server.datanode.DataNode &

if [ ! -e "$data/.homes" ]; then
    # As the superuser (nn/hdfs maps to hdfs), once the NameNode answers.
    export KRB5CCNAME="FILE:$data/superuser.ccache"
    kinit -k -t "$keytab" "nn/hdfs@$REALM"
    until java @"$conf/jvm.args" org.apache.hadoop.fs.FsShell -mkdir -p /user/alice /user/bob; do
        sleep 2
    done
    java @"$conf/jvm.args" org.apache.hadoop.fs.FsShell -chown alice /user/alice
    java @"$conf/jvm.args" org.apache.hadoop.fs.FsShell -chown bob /user/bob
    kdestroy
    touch "$data/.homes"
    log "HDFS up; homes /user/alice and /user/bob made"
fi
wait

#!/usr/bin/env bash
# Fetches Hadoop 2.7.3's jars (NameNode, DataNode, client) for the secure-HDFS tests into a cache
# outside the repository, once: the pyspark 2.4.8 source distribution on PyPI ships them.
# Prints the jar directory. Idempotent; about 230 MB, about 10 s on a good link.
set -euo pipefail

cache="${KTBROKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktbroker}"
jars="$cache/hadoop-2.7.3/jars"
if [ -f "$jars/.complete" ]; then
  echo "$jars"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetch-hadoop: downloading pyspark 2.4.8 (Hadoop 2.7.3 jars) into $jars" >&2
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q wheel setuptools >&2
# Metadata generation of this old sdist fails in an isolated build; only the archive is needed.
"$work/venv/bin/pip" download -q --no-deps --no-build-isolation pyspark==2.4.8 -d "$work/dl" >&2
rm -rf "$jars"
mkdir -p "$jars"
tar xzf "$work/dl/pyspark-2.4.8.tar.gz" -C "$jars" --strip-components=3 --wildcards 'pyspark-2.4.8/deps/jars/*'
ls "$jars"/hadoop-hdfs-2.7.3.jar >/dev/null
touch "$jars/.complete"
echo "$jars"

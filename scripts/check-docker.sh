#!/usr/bin/env bash
# CI: the compose demo is consistent, checked without a Docker engine (these machines have none):
# the compose file validates (docker-compose config), every build target it names exists in the
# Dockerfile, every file the Dockerfile copies exists, the entrypoints pass shellcheck, and every
# template they render exists. That the templates render the same as in the sandbox is a harness
# test (tests/src/templates.rs), so the end-to-end tests cover the configurations the containers run.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "check-docker: $*" >&2; exit 1; }

docker-compose -f docker/compose.yaml config -q
for target in $(grep -Eo 'target: [a-z-]+' docker/compose.yaml | awk '{print $2}' | sort -u); do
    grep -Eq "^FROM .* AS $target\$" docker/Dockerfile || fail "compose.yaml builds target $target, which docker/Dockerfile lacks"
done
for source in $(awk '/^COPY / && !/--from=/ { for (i = 2; i < NF; i++) print $i }' docker/Dockerfile); do
    [ -e "$source" ] || fail "docker/Dockerfile copies $source, which does not exist"
done
shellcheck -x -P SCRIPTDIR docker/*.sh
for template in $(grep -Eho 'render [a-z0-9.-]+\.in' docker/*.sh | awk '{print $2}' | sort -u); do
    [ -f "templates/$template" ] || fail "docker/ renders templates/$template, which does not exist"
done
echo "check-docker: ok ($(grep -c '^FROM' docker/Dockerfile) stages, $(grep -Ec '^  [a-z]+:$' docker/compose.yaml) services)"

#!/usr/bin/env bash
# Makes the Python venv for the tests' OpenID Connect provider (django-oauth-toolkit) and its
# browser driver (Selenium), from tests/idp/requirements.txt, in a cache outside the repository.
# Prints the venv's python. Idempotent: rebuilt only when the requirements change. About 60 MB.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KTBROKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktbroker}"
requirements="$root/tests/idp/requirements.txt"
stamp="$(sha256sum "$requirements" | cut -c1-16)"
venv="$cache/idp-venv-$stamp"
if [ -f "$venv/.complete" ]; then
  echo "$venv/bin/python"
  exit 0
fi

echo "fetch-idp: installing the test identity provider's packages into $venv" >&2
rm -rf "$venv"
mkdir -p "$cache"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --no-deps -r "$requirements" >&2
"$venv/bin/python" -c "import django, oauth2_provider, selenium" >&2
touch "$venv/.complete"
echo "$venv/bin/python"

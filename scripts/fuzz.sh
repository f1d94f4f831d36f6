#!/usr/bin/env bash
# Fuzzes what parses untrusted input, with cargo-fuzz (libFuzzer, nightly toolchain): the keytab
# codec, the broker's request validation, its configuration parser, the PAM argument parser and
# the directory's answers to binds.
# Each target runs SECONDS (default 60); a summary prints each one's executions. A crash stops the
# run (exit 1) with its input in fuzz/artifacts/TARGET/. The corpora grow in the cache, outside
# the repository; fuzz/seeds/ holds the hand-made starting inputs. With --smoke (CI) each target
# starts from the seeds alone in a throwaway corpus: loading a grown corpus of tens of thousands of
# files can take longer than the run itself.
#   scripts/fuzz.sh [--smoke] [SECONDS] [TARGET...]
# Sanitizer none: the fuzzed code is safe Rust (the keytab crate forbids unsafe), so ASan would
# only slow it; coverage instrumentation stays on.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=false
if [ "${1:-}" = --smoke ]; then
    smoke=true
    shift
fi
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(keytab_codec request_validation config_parser pam_args ldap_bind_answer id_token)
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
# cargo-fuzz (MIT/Apache-2.0, the rust-fuzz project's runner): built once, then on PATH.
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz@0.13.2
fi
cache="${KTBROKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ktbroker}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target-fuzz}"
cd fuzz
cargo +nightly fuzz build -s none -O
summary=()
smoke_root=$(mktemp -d)
trap 'rm -rf "$smoke_root"' EXIT
for target in "${targets[@]}"; do
    corpus="$cache/fuzz-corpus/$target"
    if $smoke; then
        corpus="$smoke_root/$target"
    fi
    log="$cache/fuzz-$target.log"
    mkdir -p "$corpus"
    echo "fuzz: $target for ${seconds}s"
    if ! cargo +nightly fuzz run -s none -O "$target" "$corpus" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/ (log $log)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    summary+=("$(printf '%-20s %14s executions in %ss' "$target" "${runs:-?}" "$seconds")")
done
printf 'fuzz: %s\n' "${summary[@]}"

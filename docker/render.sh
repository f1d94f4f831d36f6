#!/bin/sh
# render.sh TEMPLATE NAME=VALUE ... : prints TEMPLATE with every {{NAME}} replaced by VALUE, the
# names in the order given, each everywhere; fails if a {{NAME}} is left. The compose demo's
# containers render templates/ with it; the sandbox renders the same files in Rust
# (tests/src/templates.rs), and a harness test checks both give the same bytes.
# Values are literal (no escapes, no regex); they may span lines. POSIX sh and awk only.
set -eu
[ $# -ge 1 ] || { echo "usage: render.sh TEMPLATE NAME=VALUE ..." >&2; exit 2; }
template=$1
shift
out=$(awk '
BEGIN {
    n = 0
    # The NAME=VALUE operands are read here and blanked, so awk never takes them as files or
    # as its own variable assignments (which would process backslash escapes).
    for (i = 2; i < ARGC; i++) {
        eq = index(ARGV[i], "=")
        if (eq < 2) { print "render.sh: not NAME=VALUE: " ARGV[i] > "/dev/stderr"; bad = 1; exit 2 }
        key[n] = "{{" substr(ARGV[i], 1, eq - 1) "}}"
        value[n] = substr(ARGV[i], eq + 1)
        n++
        ARGV[i] = ""
    }
}
{ text = text $0 "\n" }
END {
    # (exit in BEGIN still runs END: leave at once, printing nothing.)
    if (bad) exit 2
    for (k = 0; k < n; k++) {
        if (index(text, key[k]) == 0) { print "render.sh: the template has no " key[k] > "/dev/stderr"; exit 2 }
        done = ""
        while ((p = index(text, key[k])) > 0) {
            done = done substr(text, 1, p - 1) value[k]
            text = substr(text, p + length(key[k]))
        }
        text = done text
    }
    printf "%s", text
}' "$template" "$@"; echo x)
out=${out%x}
if printf '%s' "$out" | grep -Eq '\{\{[A-Z0-9_]+\}\}'; then
    echo "render.sh: $template: $(printf '%s' "$out" | grep -Eo '\{\{[A-Z0-9_]+\}\}' | head -n 1) was given no value" >&2
    exit 2
fi
printf '%s' "$out"

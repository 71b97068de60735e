#!/bin/sh
# Runs the unit test binaries two at a time (the machine's two cores),
# each under a wrapper if one is given (valgrind, say): test_master and
# test_store, the longest by far, go first, one on each core, and the
# others fill in as they end. A binary's output is shown whole when it
# ends, never interleaved with another's: all of it with -v, else only
# when it fails.
#
#   HG_UNITS="objs/tests/test_a objs/tests/test_b" \
#       sh tests/unit/run.sh [-v] [WRAPPER...]
#
# HG_UNITS defaults to every objs/tests/test_*. Ends with a line
# "unit: N passed, N failed" and exits 1 when one failed.
set -u
verbose=0
if [ "${1:-}" = "-v" ]; then
    verbose=1
    shift
fi
units=${HG_UNITS:-$(ls objs/tests/test_*)}
logs=$(mktemp -d) || exit 1
trap 'rm -rf "$logs"' EXIT
# The longest first, so that the short ones fill in beside them.
for t in $units; do
    case $t in */test_master|*/test_store) echo "$t" ;; esac
done >"$logs/order"
for t in $units; do
    case $t in */test_master|*/test_store) ;; *) echo "$t" ;; esac
done >>"$logs/order"
# A failing binary does not stop the others; flock keeps two reports
# from mixing.
xargs -P2 -I{} sh -c 't=$1; v=$2; shift 2; log="$0/${t##*/}.log"
    if "$@" "$t" >"$log" 2>&1; then r=ok; else r=FAIL; fi
    echo "${t##*/}" >>"$0/$r"
    flock "$0/order" sh -c "if [ $r = FAIL ] || [ $v = 1 ]; then
            echo \"== $t\"; cat \"$log\"; fi; printf \"%-4s %s\\n\" $r ${t##*/}"' \
    "$logs" {} "$verbose" "$@" <"$logs/order"
passed=$(cat "$logs/ok" 2>/dev/null | wc -l)
failed=$(cat "$logs/FAIL" 2>/dev/null | wc -l)
echo "unit: $passed passed, $failed failed$(
    [ "$failed" -eq 0 ] || printf ': %s' "$(tr '\n' ' ' <"$logs/FAIL")")"
[ "$failed" -eq 0 ]

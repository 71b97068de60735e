#!/bin/sh
# tests/t/run.sh: the end-to-end tests (make e2e), in two phases.
#
# First the tests marked `serial`, one at a time and alone: they change
# what every test shares (the system clock, the cgroup tree that each
# master cleans of its dead predecessors' groups, objs/hourglass rebuilt
# with another prefix). Then the rest, E2E_JOBS at a time (default 3)
# with pytest-xdist when it is installed, else one at a time: they spend
# most of their time waiting for the daemons they drive (a whole serial
# run leaves the CPUs idle 88% of the time), each in its own temporary
# directory, on its own ports and its own servers.
#
# Ends with one line for the whole run: "e2e: N passed, N failed,
# N skipped". Usage: run.sh [PYTEST_ARGS...] (given to both phases).

PYTHON=${PYTHON:-python3}
JOBS=${E2E_JOBS:-3}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# NAME PYTEST_ARGS...: runs pytest, its output shown and kept in
# $tmp/NAME.out, its status in $tmp/NAME.rc.
phase() {
    name=$1
    shift
    { "$PYTHON" -m pytest "$@"; echo $? > "$tmp/$name.rc"; } 2>&1 \
        | tee "$tmp/$name.out"
}

# N of WHAT ("passed", "failed", ...) on phase NAME's summary line (the
# last that ends "in N.NNs", with or without -q's equal signs).
count() {
    grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected).* in [0-9.]+s' \
        "$tmp/$1.out" | tail -n 1 \
        | grep -oE '[0-9]+ '"$2"'([^a-z]|$)' | grep -oE '^[0-9]+' || echo 0
}

parallel=""
if [ "$JOBS" -gt 1 ] && "$PYTHON" -c 'import xdist' 2>/dev/null; then
    parallel="-n $JOBS"
fi

echo "e2e: the serial tests, one at a time"
phase serial -q -m serial "$@" tests/t
echo "e2e: the others${parallel:+, $JOBS at a time}"
# shellcheck disable=SC2086
phase rest -q $parallel -m "not serial" --durations=15 "$@" tests/t

status=0
passed=0
failed=0
skipped=0
for name in serial rest; do
    rc=$(cat "$tmp/$name.rc" 2>/dev/null || echo 1)
    # 5: every test of the phase deselected (none is marked, say)
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
        status=1
    fi
    passed=$((passed + $(count "$name" passed)))
    failed=$((failed + $(count "$name" failed) + $(count "$name" error) \
              + $(count "$name" errors)))
    skipped=$((skipped + $(count "$name" skipped)))
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1                            # pytest failed before any test
fi
echo "e2e: $passed passed, $failed failed, $skipped skipped"
exit "$status"

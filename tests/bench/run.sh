#!/bin/sh
# make bench: runs every benchmark and prints its figures. Benchmarks never
# fail on timing; they print what they measured, with the machine.
#
# The cluster's benchmarks need PostgreSQL: unless HG_BENCH_PG_URL names a
# database, a server of their own is started for the run (tests/t/pg.py,
# Debian's postgresql package), and each benchmark gets a new database.
set -e
echo "== hourglass benchmarks"
echo "machine: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"

pgdir=
if [ -z "${HG_BENCH_PG_URL:-}" ]; then
    if started=$(python3 tests/t/pg.py start 2>/dev/null); then
        pgdir=${started#* }
        trap 'python3 tests/t/pg.py stop "$pgdir"' EXIT
        echo "postgres: a server of the run's own in $pgdir"
    else
        echo "postgres: not installed; the cluster's figures are skipped"
    fi
fi

# A new database for the next benchmark, when the run has its own server.
new_database() {
    if [ -n "$pgdir" ]; then
        HG_BENCH_PG_URL=$(python3 tests/t/pg.py createdb "$pgdir")
        export HG_BENCH_PG_URL
    fi
}

for b in objs/bench/bench_*; do
    [ -x "$b" ] || continue
    echo
    echo "== $b"
    new_database
    "$b"
done
if [ -n "${HG_BENCH_PG_URL:-}" ]; then
    # the schedule lag a cluster instance adds (issue 13): one instance of
    # a cluster on PostgreSQL beside the master without a store
    echo
    echo "== objs/bench/bench_master -s b -j 1000 -d 5 -S none,postgres"
    new_database
    objs/bench/bench_master -s b -j 1000 -d 5 -S none,postgres
fi
for s in tests/bench/bench_*.sh tests/bench/bench_*.py; do
    [ -f "$s" ] || continue
    case $s in *.py) run=python3 ;; *) run=sh ;; esac
    echo
    echo "== $run $s"
    new_database
    $run "$s"
done

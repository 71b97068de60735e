#!/bin/sh
# make bench: runs every benchmark and prints its figures. Benchmarks never
# fail on timing; they print what they measured, with the machine.
set -e
echo "== hourglass benchmarks"
echo "machine: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
for b in objs/bench/bench_*; do
    [ -x "$b" ] || continue
    echo
    echo "== $b"
    "$b"
done
for s in tests/bench/bench_*.sh; do
    [ -f "$s" ] || continue
    echo
    echo "== sh $s"
    sh "$s"
done

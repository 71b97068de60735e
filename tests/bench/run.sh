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
for s in tests/bench/bench_*.sh tests/bench/bench_*.py; do
    [ -f "$s" ] || continue
    case $s in *.py) run=python3 ;; *) run=sh ;; esac
    echo
    echo "== $run $s"
    $run "$s"
done

#!/bin/sh
# The same next-fire benchmark as bench_cron.c, run on croner (npm), the
# most complete JavaScript cron library, for scale: prints its figures and
# the ratio croner/hourglass per line. croner is installed once into
# objs/bench/croner; without node, npm or the registry this says so and
# exits 0 (a benchmark never fails the build).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 0
dir=objs/bench/croner

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "croner: node or npm is not installed (apt-get install nodejs npm); skipped"
    exit 0
fi
if [ ! -f "$dir/node_modules/croner/package.json" ]; then
    mkdir -p "$dir"
    if ! npm install --prefix "$dir" --no-audit --no-fund --silent croner@11 \
        >"$dir/npm.log" 2>&1
    then
        echo "croner: npm install failed (is the registry reachable? see $dir/npm.log); skipped"
        exit 0
    fi
fi

if ! node tests/bench/croner/bench.js "$dir" >"$dir/out.txt" 2>&1; then
    echo "croner: the benchmark failed:"
    cat "$dir/out.txt"
    exit 0
fi
grep -v '^tsv	' "$dir/out.txt"

ours=objs/bench/bench_cron.tsv
if [ ! -f "$ours" ] && [ -x objs/bench/bench_cron ]; then
    objs/bench/bench_cron >/dev/null
fi
if [ ! -f "$ours" ]; then
    echo "(no hourglass figures: build objs/bench/bench_cron for the ratio)"
    exit 0
fi
echo "croner time / hourglass time:"
grep '^tsv	' "$dir/out.txt" | cut -f2- | awk -F '\t' '
    NR == FNR { ours[$1 "\t" $2] = $3; next }
    ($1 "\t" $2) in ours && ours[$1 "\t" $2] > 0 {
        printf "  %-18s %-14s %8.0fx  (%.0f ns vs %.1f ns)\n", $1, $2,
               $3 / ours[$1 "\t" $2], $3, ours[$1 "\t" $2]
    }' "$ours" -

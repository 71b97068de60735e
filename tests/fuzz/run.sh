#!/bin/sh
# make fuzz: builds every tests/fuzz/fuzz_*.c as a libFuzzer target with
# clang (-fsanitize=fuzzer,address,undefined) and runs each for
# ${FUZZ_SECONDS:-20} seconds on its corpus under objs/fuzz/corpus/NAME.
#
# A fuzz file names what it links and how it starts, in comment lines:
#   // fuzz-sources: core/hg_cron.c core/hg_tz.c
#   // fuzz-max-len: 160
#   // fuzz-seed: 0 0 L * *                 (one seed input per line)
#   // fuzz-seed-file: /usr/share/zoneinfo/Europe/Berlin
#   // fuzz-libs: -lcurl                   (beyond the core's own libraries)
# Exits non-zero when a target does not build or finds a crash (the input
# is left in objs/fuzz/NAME-crash-*). FUZZ_ONLY=NAME runs one target;
# FUZZ_JOBS=N runs N targets at a time.
set -u

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_CC=${FUZZ_CC:-clang}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
out=objs/fuzz

if ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
    echo "fuzz: $FUZZ_CC not found (apt-get install clang)" >&2
    exit 1
fi
if [ ! -f objs/hg_auto_config.h ]; then
    echo "fuzz: objs/hg_auto_config.h is missing: run ./configure first" >&2
    exit 1
fi
mkdir -p "$out/corpus"
# FUZZ_JOBS=N: N targets at a time, each run by a copy of this script
# (a target is one process: two cores fuzz two targets).
if [ "${FUZZ_JOBS:-1}" -gt 1 ] && [ -z "${FUZZ_ONLY:-}" ]; then
    for src in tests/fuzz/fuzz_*.c; do basename "$src" .c; done |
        xargs -P "$FUZZ_JOBS" -I{} env FUZZ_JOBS=1 FUZZ_ONLY={} \
            sh "$root/tests/fuzz/run.sh"
    exit $?
fi
# every target may use what the core links: libconfig, jansson, libdl, libm
core_flags=$(pkg-config --cflags --libs libconfig jansson 2>/dev/null)

status=0
for src in tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] || continue
    name=$(basename "$src" .c)
    if [ -n "${FUZZ_ONLY:-}" ] && [ "$FUZZ_ONLY" != "$name" ]; then
        continue
    fi
    sources=$(sed -n 's|^// fuzz-sources:||p' "$src")
    libs=$(sed -n 's|^// fuzz-libs:||p' "$src")
    max_len=$(sed -n 's|^// fuzz-max-len: *||p' "$src")
    echo "== $name ($FUZZ_SECONDS s)"
    # shellcheck disable=SC2086 # lists of files and flags
    if ! "$FUZZ_CC" -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -Iinclude -Icore -Iobjs "$src" $sources $libs $core_flags \
        -ldl -lm -lpthread -o "$out/$name"
    then
        echo "fuzz: $name does not build" >&2
        status=1
        continue
    fi

    corpus=$out/corpus/$name
    mkdir -p "$corpus"
    sed -n 's|^// fuzz-seed: ||p' "$src" | while IFS= read -r seed; do
        sum=$(printf '%s' "$seed" | cksum | cut -d' ' -f1)
        printf '%s' "$seed" > "$corpus/seed-$sum"
    done
    sed -n 's|^// fuzz-seed-file: ||p' "$src" | while IFS= read -r file; do
        [ -f "$file" ] && cp "$file" "$corpus/seed-$(echo "$file" | tr / _)"
    done

    "$out/$name" -max_total_time="$FUZZ_SECONDS" ${max_len:+-max_len=$max_len} \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/$name-" "$corpus" > "$out/$name.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log")
    cov=$(grep -o 'cov: [0-9]*' "$out/$name.log" | tail -n 1)
    echo "$name: ${execs:-?} executions in $FUZZ_SECONDS s, $cov, corpus $(ls "$corpus" | wc -l) inputs"
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $name failed (exit $rc); the end of $out/$name.log:" >&2
        tail -n 40 "$out/$name.log" >&2
        status=1
    fi
done
exit $status

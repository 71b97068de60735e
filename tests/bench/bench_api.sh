#!/bin/sh
# bench_api.sh: what serving the admin API costs the schedule (issue 12,
# "under load"). A daemon runs 1,000 jobs due every second (BENCH_API_JOBS)
# with the api section on and a token; the schedule lag is measured for
# BENCH_API_SECONDS (default 30) without API traffic, then for as long
# with wrk on 64 connections alternating GET /api/v1/jobs?page_size=50 and
# GET /metrics (BENCH_API_PATHS, BENCH_API_CONNECTIONS). Printed: wrk's requests/s, latency, non-2xx answers and
# socket errors, and the lag (p50, p99, max) both ways with their ratio.
#
# The jobs are `system` noop jobs: the cheapest job that is still a whole
# execution (fired, recorded, handed to a worker over its pipe, run by a
# module, its result recorded), so the figure is the master's and the
# store's work and not the fork and exec of a shell job, which 2 cores
# could not do 1,000 times a second beside wrk anyway. They are `every =
# "1s"` jobs defined together, so they fall due in the same few
# milliseconds of each second: a burst of 1,000 each second, as cron jobs
# at :00 are.
#
# The lag is read from the store's executions (started_at - scheduled_for,
# in ms, every execution due inside a phase, less its first and last
# second), not from the lag histogram: its buckets are too coarse (1 ms,
# then 5 ms) to compare p99s within 1.2x. The store is SQLite, the
# daemon's default. Executions that did not start (skipped, missed) are
# counted apart. wrk runs one thread so that it leaves the daemon a core.
# Prints; never fails on a figure.
set -e
HG=${HG:-objs/hourglass}
SECS=${BENCH_API_SECONDS:-30}
NJOBS=${BENCH_API_JOBS:-1000}
CONNS=${BENCH_API_CONNECTIONS:-64}
PATHS=${BENCH_API_PATHS:-/api/v1/jobs?page_size=50 /metrics}
[ -x "$HG" ] || { echo "bench_api: build $HG first"; exit 1; }
command -v python3 >/dev/null || { echo "bench_api: needs python3"; exit 0; }
for tool in wrk curl; do
    command -v $tool >/dev/null || {
        echo "bench_api: needs $tool (apt-get install $tool): not measured"
        exit 0; }
done
. "$(dirname "$0")/lib.sh"
bench_tmpdir api

port=$(python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
{
    bench_conf_head warn system "{ driver = \"sqlite\"; path = \"$dir/hg.db\"; }"
    cat <<EOF
api = { listen = "127.0.0.1:$port";
        tokens = ( { name = "bench"; token = "$token"; role = "read"; } ); };
jobs = (
EOF
    awk -v n="$NJOBS" 'BEGIN { for (i = 0; i < n; i++)
        printf "{ id = \"j%04d\"; type = \"system\"; task = \"noop\"; every = \"1s\"; }%s\n",
               i, i < n - 1 ? "," : "" }'
    echo ");"
} > "$dir/scheduler.conf"

cat > "$dir/paths.lua" <<'EOF'
-- Takes the paths (HG_BENCH_PATHS, space-separated) in turn, with the
-- token from the environment.
local paths = {}
for p in string.gmatch(os.getenv("HG_BENCH_PATHS"), "%S+") do
    paths[#paths + 1] = p
end
local n = 0
wrk.headers["Authorization"] = "Bearer " .. os.getenv("HG_BENCH_TOKEN")
request = function()
    n = n + 1
    return wrk.format("GET", paths[n % #paths + 1])
end
EOF

"$HG" -p "$dir" -c "$dir/scheduler.conf" >"$dir/out" 2>&1 &
pid=$!
i=0
until curl -fs -o /dev/null -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$port/healthz" 2>/dev/null || [ $i -ge 100 ]; do
    sleep 0.1; i=$((i + 1))
done
sleep 3                         # past the first fires
now() { date +%s.%N; }
echo "$NJOBS system noop jobs every 1s, 2 workers, SQLite store;" \
     "phases of $SECS s; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
q0=$(now); sleep "$SECS"; q1=$(now)
size=$(curl -fs -H "Authorization: Bearer $token" \
       "http://127.0.0.1:$port/metrics" | wc -c)
echo "GET /metrics is $size bytes"
w0=$(now)
HG_BENCH_TOKEN=$token HG_BENCH_PATHS=$PATHS wrk -t1 -c"$CONNS" \
    -d"${SECS}s" --latency -s "$dir/paths.lua" "http://127.0.0.1:$port" \
    > "$dir/wrk.out" 2>&1 || true
w1=$(now)
sleep 2                         # the last executions' records
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo "wrk -t1 -c$CONNS -d${SECS}s on $PATHS in turn:"
sed -n '/Latency \|requests in\|Requests\/sec\|Non-2xx\|Socket errors\|Transfer\| 50% \| 99% /p' \
    "$dir/wrk.out" | sed 's/^ */    /'
# wrk names them only when there are some.
grep -q "Non-2xx" "$dir/wrk.out" || echo "    Non-2xx or 3xx responses: 0"
grep -q "Socket errors" "$dir/wrk.out" || echo "    Socket errors: none"
python3 - "$dir/hg.db" "$q0" "$q1" "$w0" "$w1" <<'EOF'
import sqlite3, sys
db, q0, q1, w0, w1 = sys.argv[1], *map(float, sys.argv[2:])
con = sqlite3.connect(db)

def phase(a, b):
    # Inside the phase only: its first and last second are left out.
    lo, hi = int((a + 1) * 1000), int((b - 1) * 1000)
    lags = sorted(r[0] for r in con.execute(
        "SELECT started_at - scheduled_for FROM executions WHERE "
        "scheduled_for >= ? AND scheduled_for < ? AND started_at > 0 "
        "AND triggered_by = 'schedule'", (lo, hi)))
    other = con.execute(
        "SELECT status, count(*) FROM executions WHERE scheduled_for >= ? "
        "AND scheduled_for < ? AND started_at = 0 GROUP BY status",
        (lo, hi)).fetchall()
    return lags, other

def pct(v, p):
    return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")

res = {}
for name, a, b in (("without API traffic", q0, q1),
                   ("with wrk", w0, w1)):
    lags, other = phase(a, b)
    res[name] = lags
    print("lag %-20s %6d executions: p50 %4s ms, p99 %4s ms, max %4s ms%s"
          % (name + ":", len(lags), pct(lags, .5), pct(lags, .99),
             lags[-1] if lags else "-",
             "; not started: " + ", ".join("%s %d" % o for o in other)
             if other else ""))
a, b = res["without API traffic"], res["with wrk"]
if a and b:
    print("lag p99 with wrk / without: %.2fx (the issue asks at most 1.2x);"
          " p50 %.2fx" % (pct(b, .99) / max(pct(a, .99), 1),
                          pct(b, .5) / max(pct(a, .5), 1)))
EOF
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/bin/sh
# bench_reload.sh: what a reload of a big configuration costs the master's
# loop. A daemon runs one job every 100ms; its file is replaced by one with
# 100,000 more jobs (then by one with a 3 MB comment) and reloaded. The
# file is read and validated by the cycle reader and built in a thread,
# then applied by the loop a slice at a time: printed are the reload's
# duration, the apply's time in the loop and its longest slice (apply_ms
# and hold_ms of the reload event), the 100ms job's fires during the
# reload and its worst start lag around it. Prints; never fails on a
# figure.
set -e
HG=${HG:-objs/hourglass}
[ -x "$HG" ] || { echo "bench_reload: build $HG first"; exit 1; }
command -v python3 >/dev/null || { echo "bench_reload: needs python3"; exit 0; }
. "$(dirname "$0")/lib.sh"
bench_tmpdir reload

head() {
    bench_conf_head info shell '{ driver = "memory"; }'
}
tick='{ id = "tick"; type = "shell"; every = "100ms"; command = "true"; }'

{ head; echo "jobs = ( $tick );"; } > "$dir/small.conf"
{ head; echo "jobs = ( $tick,"
  awk 'BEGIN { for (i = 0; i < 100000; i++)
      printf "{ id = \"j%d\"; type = \"shell\"; schedule = \"0 0 1 1 *\"; command = \"true\"; }%s\n", i, i < 99999 ? "," : "" }'
  echo ");"; } > "$dir/big.conf"
{ head; echo "jobs = ( $tick );"; printf '# '
  awk 'BEGIN { s = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
      for (i = 0; i < 49152; i++) printf "%s", s; print "" }'; } > "$dir/comment.conf"

reloads() { grep -c '"event":"reload"' "$dir/hg.log" 2>/dev/null || true; }

# reload_to FILE LABEL: replace the configuration, SIGHUP, wait, report.
reload_to() {
    before=$(reloads)
    cp "$dir/$1" "$dir/cur.conf"
    kill -HUP "$pid"
    i=0
    while [ "$(reloads)" = "$before" ] && [ $i -lt 1200 ]; do
        sleep 0.1; i=$((i + 1))
    done
    sleep 1                     # the fires right after it
    python3 - "$dir/hg.log" "$before" "$2" <<'EOF'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n, label = int(sys.argv[2]), sys.argv[3]
rel = [k for k, e in enumerate(evs) if e.get("event") == "reload"]
if len(rel) <= n:
    print("%s: no reload event" % label); sys.exit(0)
j = rel[n]
i = max(k for k, e in enumerate(evs[:j]) if e.get("message", "")
        .startswith("reloading "))
ticks = [e for e in evs[i:] if e.get("event") == "start"
         and e.get("job") == "tick"]
during = [e for e in evs[i:j] if e.get("event") == "start"
          and e.get("job") == "tick"]
r = evs[j]
print("%-22s %s in %s ms; applied in %s ms of slices, the longest "
      "holding the loop %s ms; the 100ms job fired %d times during the "
      "reload, worst start lag %d ms"
      % (label + ":", r.get("result"), r.get("duration_ms", "?"),
         r.get("apply_ms", "?"), r.get("hold_ms", "?"), len(during),
         max([e.get("lag_ms", 0) for e in ticks] or [0])))
EOF
}

cp "$dir/small.conf" "$dir/cur.conf"
"$HG" -p "$dir" -c "$dir/cur.conf" >"$dir/out" 2>&1 &
pid=$!
i=0
until grep -q start_master "$dir/hg.log" 2>/dev/null || [ $i -ge 100 ]; do
    sleep 0.1; i=$((i + 1))
done
sleep 1
reload_to big.conf "100,000 jobs added"
reload_to small.conf "100,000 jobs removed"
reload_to comment.conf "3 MB comment"

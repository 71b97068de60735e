# Sourced by the benchmark scripts that start the daemon: bench_tmpdir NAME
# makes $dir, and whatever way the script ends, the daemon whose pid is in
# $pid is stopped and $dir removed.
bench_cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}

bench_tmpdir() {
    dir=$(mktemp -d "/tmp/hg_bench_$1.XXXXXX")
    pid=
    trap bench_cleanup EXIT INT TERM
}

# The settings every benchmark's scheduler.conf starts with: 2 workers, a
# JSON log at LEVEL in $dir, the bundled MODULE, and STORE (a store group).
bench_conf_head() {
    cat <<EOF
pid = "$dir/hg.pid";
workers = 2;
timezone = "UTC";
log = { file = "$dir/hg.log"; format = "json"; level = "$1"; };
modules = { path = "$PWD/modules"; load = [ "$2" ]; };
store = $3;
EOF
}

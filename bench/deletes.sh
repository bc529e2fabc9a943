#!/usr/bin/env bash
# Deletes beside uploads, through both protocols, for one or more builds of
# `cairn` in turn: for each binary a fresh tracker and group of two storage
# nodes (each with its FastDFS listener), then `cairn bench` at 8 clients,
# 4 KiB and 1 MiB, native and `--fastdfs`. The binaries alternate within
# each run, so the machine's swings fall on all of them. Each figure is the
# median of RUNS runs (min–max). Prints Markdown on stdout.
#
#   bench/deletes.sh                                  # the current build
#   BINS="before=/tmp/cairn-before after=target/release/cairn" bench/deletes.sh
#   PROFILE=1 bench/deletes.sh    # perf of the 4 KiB delete phase instead
#
# PROFILE=1: uploads FILES (default 60000) files of SIZE (default 4K) at
# 8 clients (PROTOCOL=native or fastdfs), and once the storage nodes'
# binlogs show deletes, `perf record -a -g` watches the machine for 4 s:
# CPU share per process and the hottest symbols, as bench/profile.sh
# prints them; then, for 3 s each, the fdatasync/fsync/unlink calls of
# each storage node (`perf stat` on syscall tracepoints) beside the
# deletes its binlog gained meanwhile.
#
# Env: BINS, CAIRN_BIN, BENCH_DIR (default /var/tmp), RUNS (default 3).
set -euo pipefail
NAME=deletes
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
BINS=${BINS:-current=$BIN}

# start_group BIN DIR: a tracker and a group of two on loopback; sets
# TRACKER and FDFS_TRACKER.
start_group() {
    local bin=$1 dir=$2 i
    mkdir -p "$dir"
    TRACKER="127.0.0.1:$(port)"
    FDFS_TRACKER="127.0.0.1:$(port)"
    "$bin" tracker --listen "$TRACKER" --data "$dir/t" --fastdfs-listen "$FDFS_TRACKER" >"$dir/t.log" 2>&1 & PIDS+=($!)
    GROUP_PIDS=($!)
    for i in 1 2; do
        "$bin" storage --tracker "$TRACKER" --group g1 --listen "127.0.0.1:$(port)" --data "$dir/s$i" \
            --fastdfs-listen "127.0.0.1:$(port)" --heartbeat-ms 500 >"$dir/s$i.log" 2>&1 & PIDS+=($!)
        GROUP_PIDS+=($!)
    done
    BIN=$bin wait_active 2
    # The tracker learns the nodes' FastDFS addresses from their heartbeats.
    sleep 1
}
stop_group() {
    local p
    for p in "${GROUP_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

if [ -n "${PROFILE:-}" ]; then
    command -v perf >/dev/null || { echo "bench/deletes.sh needs perf (apt-get install linux-perf)" >&2; exit 1; }
    FILES=${FILES:-60000}
    flags=()
    start_group "$BIN" "$WORK/p"
    [ "${PROTOCOL:-native}" = fastdfs ] && flags=(--fastdfs "$FDFS_TRACKER")
    "$BIN" bench --tracker "$TRACKER" "${flags[@]}" --size "${SIZE:-4K}" --count "$FILES" --concurrency 8 --json >"$WORK/bench.json" &
    bench=$!
    PIDS+=("$bench")
    until grep -aq ' D ' "$WORK/p/s1/binlog/binlog.log" "$WORK/p/s2/binlog/binlog.log" 2>/dev/null; do sleep 0.1; done
    # First 3 s of syscall counts and CPU time (tracepoints and task-clock:
    # cheap), beside the deletes each node's binlog gained meanwhile; CPU
    # time per delete stands up to a shared machine better than a rate.
    echo "## ${SIZE:-4K} deletes, 8 clients, ${PROTOCOL:-native} protocol"
    echo
    echo "3 s of the delete phase: deletes logged, and the syncs, unlinks and CPU time (task-clock) that paid for them"
    echo
    echo '```'
    declare -A before after
    for i in 1 2; do before[$i]=$(grep -ac ' [Dd] ' "$WORK/p/s$i/binlog/binlog.log" || true); done
    names=(tracker s1 s2 bench)
    all=("${GROUP_PIDS[@]}" "$bench")
    for k in 0 1 2 3; do
        perf stat -x, -e 'task-clock,syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_unlink,syscalls:sys_enter_unlinkat,syscalls:sys_enter_rename' \
            -p "${all[$k]}" -- sleep 3 2>"$WORK/stat$k" &
    done
    sleep 3.3
    for i in 1 2; do after[$i]=$(grep -ac ' [Dd] ' "$WORK/p/s$i/binlog/binlog.log" || true); done
    for k in 0 1 2 3; do
        n=0
        [ "$k" = 1 ] || [ "$k" = 2 ] && n=$((after[$k] - before[$k]))
        echo "${names[$k]}: $([ "$n" != 0 ] && echo "$n deletes; ")$(awk -F, '{ sub("syscalls:sys_enter_", "", $3); if ($3 == "task-clock") printf "CPU %.0f ms; ", $1; else printf "%s %s; ", $3, $1 }' "$WORK/stat$k")"
    done
    echo '```'
    echo
    [ -n "${RECORD:-1}" ] && [ "${RECORD:-1}" != 0 ] && profiled "Then CPU samples by process, and the hottest symbols (self time), for 3 s" sleep 3
    wait "$bench"
    python3 -c 'import json,sys; j=json.load(sys.stdin); d=j["delete"]; print("delete phase: %.0f/s, p50 %.2f ms, p99 %.2f ms; upload phase: %.0f/s" % (d["ops_per_s"], d["p50_ms"], d["p99_ms"], j["upload"]["ops_per_s"]))' <"$WORK/bench.json"
    exit 0
fi

declare -A SERIES
add() { SERIES[$1]="${SERIES[$1]:-} $2"; }
CASES=("4K 8000 8" "1M 800 8")
for run in $(seq 1 "$RUNS"); do
    for pair in $BINS; do
        label=${pair%%=*}
        bin=${pair#*=}
        echo "run $run of $RUNS: $label" >&2
        start_group "$bin" "$WORK/$label-$run"
        for c in "${CASES[@]}"; do
            read -r size count conc <<<"$c"
            for proto in native fastdfs; do
                flags=()
                [ "$proto" = fastdfs ] && flags=(--fastdfs "$FDFS_TRACKER")
                j=$("$bin" bench --tracker "$TRACKER" "${flags[@]}" --size "$size" --count "$count" --concurrency "$conc" --json)
                for phase in upload delete; do
                    add "$label,$proto,$size,$phase" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]]["ops_per_s"])' "$phase" <<<"$j")"
                done
            done
        done
        stop_group
        rm -rf "${WORK:?}/$label-$run"
    done
done

med() {
    python3 -c '
import statistics, sys
v = sorted(float(x) for x in sys.argv[1].split())
print(f"{statistics.median(v):,.0f} ({v[0]:,.0f}–{v[-1]:,.0f})" if v else "–")' "${SERIES[$1]:-}"
}
echo "## bench/deletes.sh, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); tracker and a group of two storage nodes on loopback; 8 clients. Medians of $RUNS runs (min–max), the builds alternating."
echo
echo "| build | protocol | size | upload/s | delete/s | delete / upload |"
echo "|---|---|---|---|---|---|"
for pair in $BINS; do
    label=${pair%%=*}
    for c in "${CASES[@]}"; do
        read -r size _ _ <<<"$c"
        for proto in native fastdfs; do
            k="$label,$proto,$size"
            ratio=$(python3 -c '
import statistics, sys
u, d = (statistics.median(float(x) for x in s.split()) for s in sys.argv[1:3])
print(f"{d / u:.1f}×")' "${SERIES[$k,upload]}" "${SERIES[$k,delete]}")
            echo "| $label | $proto | $size | $(med "$k,upload") | $(med "$k,delete") | $ratio |"
        done
    done
done

#!/usr/bin/env bash
# Catch-up benchmark: a group of two on loopback; one member is stopped
# (SIGKILL), files are uploaded while it is away, it is restarted, and the
# time until every tracker counts it active again is measured (it has
# copied everything it missed by then). Also: the same with a heal rate
# limit, to show the limit holding. Prints Markdown on stdout.
#
#   cargo build --release && bench/catchup.sh > /tmp/catchup.md
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp), SMALL (default 10000 files of
#      4 KiB), BIG (default 32 files of 64 MiB = 2 GiB), LIMIT_MIB (default 50).
set -euo pipefail
NAME=catchup
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SMALL=${SMALL:-10000}
BIG=${BIG:-32}
LIMIT_MIB=${LIMIT_MIB:-50}
# run NAME COUNT SIZE [HEAL_RATE]: prints one table row.
run() {
    local name=$1 count=$2 size=$3 rate=${4:-0} dir="$WORK/$1"
    for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
    PIDS=(); mkdir -p "$dir"
    TRACKER="127.0.0.1:$(port)"
    local s2="127.0.0.1:$(port)"
    "$BIN" tracker --listen "$TRACKER" --data "$dir/t" >"$dir/t.log" 2>&1 & PIDS+=($!)
    "$BIN" storage --tracker "$TRACKER" --group g1 --listen "127.0.0.1:$(port)" --data "$dir/s1" --fastdfs-listen none \
        --heartbeat-ms 500 >"$dir/s1.log" 2>&1 & PIDS+=($!)
    "$BIN" storage --tracker "$TRACKER" --group g1 --listen "$s2" --data "$dir/s2" --fastdfs-listen none \
        --heartbeat-ms 500 --heal-rate-mib "$rate" >"$dir/s2.log" 2>&1 & local p2=$!; PIDS+=($p2)
    wait_active 2
    "$BIN" bench --tracker "$TRACKER" --size 4096 --count 20 >/dev/null   # a first catch-up point
    kill -9 "$p2"; sleep 4
    "$BIN" bench --tracker "$TRACKER" --size "$size" --count "$count" --concurrency 8 --keep >/dev/null
    local t0; t0=$(date +%s.%N)
    "$BIN" storage --tracker "$TRACKER" --group g1 --listen "$s2" --data "$dir/s2" --fastdfs-listen none \
        --heartbeat-ms 500 --heal-rate-mib "$rate" >>"$dir/s2.log" 2>&1 & PIDS+=($!)
    wait_active 2 300
    local t1; t1=$(date +%s.%N)
    local secs; secs=$(python3 -c "print(f'{$t1-$t0:.1f}')")
    local mib; mib=$(python3 -c "print(f'{$count*$size/1048576/($t1-$t0):.0f}')")
    echo "| $name | $count × $(numfmt --to=iec "$size") | ${rate:-0} | $secs s | $mib MiB/s |"
}

echo "Catch-up after a member missed writes (group of 2, loopback, one disk; $(nproc) cores)."
echo
echo "| case | missed | heal rate limit (MiB/s, 0 = none) | back to active | copy speed |"
echo "|---|---|---|---|---|"
run small "$SMALL" 4096
run big "$BIG" $((64 << 20))
run big-limited "$((BIG / 2))" $((64 << 20)) "$LIMIT_MIB"

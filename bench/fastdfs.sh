#!/usr/bin/env bash
# The FastDFS protocol front end against the native protocol, on the same
# cluster in the same run: one tracker and a group of two storage nodes,
# each with its FastDFS listener. `cairn bench` uploads, downloads and
# deletes files through the native client, then (`--fastdfs`) through a
# FastDFS client written by others (the `fastdfs` crate), which asks the
# tracker for a node before each operation as FastDFS clients do. The two
# alternate, so the machine's swings fall on both. Each figure is the
# median of RUNS runs (min–max). Prints Markdown on stdout.
#
#   cargo build --release && bench/fastdfs.sh > /tmp/fastdfs.md
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp), RUNS (default 3).
set -euo pipefail
NAME=fastdfs
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}

TRACKER="127.0.0.1:$(port)"
FDFS_TRACKER="127.0.0.1:$(port)"
"$BIN" tracker --listen "$TRACKER" --data "$WORK/t" --fastdfs-listen "$FDFS_TRACKER" >"$WORK/t.log" 2>&1 & PIDS+=($!)
for i in 1 2; do
    "$BIN" storage --tracker "$TRACKER" --group g1 --listen "127.0.0.1:$(port)" --data "$WORK/s$i" \
        --fastdfs-listen "127.0.0.1:$(port)" --heartbeat-ms 500 >"$WORK/s$i.log" 2>&1 & PIDS+=($!)
done
wait_active 2
# The tracker learns the nodes' FastDFS addresses from their heartbeats.
sleep 1

declare -A SERIES
add() { SERIES[$1]="${SERIES[$1]:-} $2"; }
one() { # PROTOCOL SIZE COUNT CONCURRENCY
    local j flags=()
    [ "$1" = fastdfs ] && flags=(--fastdfs "$FDFS_TRACKER")
    j=$("$BIN" bench --tracker "$TRACKER" "${flags[@]}" --size "$2" --count "$3" --concurrency "$4" --json)
    for phase in upload download delete; do
        add "$1,$2,c$4,$phase" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]]["ops_per_s"])' "$phase" <<<"$j")"
        [ "$phase" = delete ] && continue
        add "$1,$2,c$4,${phase}mib" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]]["mib_per_s"])' "$phase" <<<"$j")"
    done
}
CASES=("4K 2000 1" "4K 8000 8" "64K 1000 1" "64K 4000 8" "1M 200 1" "1M 800 8")
for run in $(seq 1 "$RUNS"); do
    echo "run $run of $RUNS" >&2
    for c in "${CASES[@]}"; do
        # shellcheck disable=SC2086
        one native $c
        # shellcheck disable=SC2086
        one fastdfs $c
    done
done

med() {
    python3 -c '
import statistics, sys
v = sorted(float(x) for x in sys.argv[1].split())
f = "{:,.%sf}" % sys.argv[2]
print(f"{f.format(statistics.median(v))} ({f.format(v[0])}–{f.format(v[-1])})" if v else "–")' "${SERIES[$1]:-}" "${2:-0}"
}
echo "## bench/fastdfs.sh, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); tracker and a group of two storage nodes on loopback. Medians of $RUNS runs (min–max)."
echo
echo "| file size | concurrency | native upload/s | FastDFS upload/s | native download/s | FastDFS download/s | native down MiB/s | FastDFS down MiB/s | native delete/s | FastDFS delete/s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in "${CASES[@]}"; do
    read -r size _ conc <<<"$c"
    k="$size,c$conc"
    echo "| $size | $conc | $(med "native,$k,upload") | $(med "fastdfs,$k,upload") | $(med "native,$k,download") | $(med "fastdfs,$k,download") | $(med "native,$k,downloadmib") | $(med "fastdfs,$k,downloadmib") | $(med "native,$k,delete") | $(med "fastdfs,$k,delete") |"
done

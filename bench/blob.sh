#!/usr/bin/env bash
# Blob-layer benchmark: `cairn bench` against a group of one and a group of
# three storage nodes on loopback, beside the raw speed of the same disk.
# Prints a Markdown report on stdout; docs/perf.md records its output.
#
#   cargo build --release && bench/blob.sh > /tmp/report.md
#
# Env: CAIRN_BIN (default target/release/cairn, or $CARGO_TARGET_DIR's),
#      BENCH_DIR (default /var/tmp; must be on the disk being measured),
#      RUNS (default 3: each figure is the median of RUNS runs, with min-max).
set -euo pipefail
NAME=blob
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}

# start_cluster N: one tracker and a group of N storage nodes; sets TRACKER.
start_cluster() {
    local n=$1 dir="$WORK/c$1"
    for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
    PIDS=()
    rm -rf "$dir"; mkdir -p "$dir"
    TRACKER="127.0.0.1:$(port)"
    "$BIN" tracker --listen "$TRACKER" --data "$dir/t" >"$dir/t.log" 2>&1 & PIDS+=($!)
    for i in $(seq 1 "$n"); do
        "$BIN" storage --tracker "$TRACKER" --group g1 --listen "127.0.0.1:$(port)" --data "$dir/s$i" \
            --fastdfs-listen none --heartbeat-ms 500 >"$dir/s$i.log" 2>&1 & PIDS+=($!)
    done
    wait_active "$n"
}

# median/min/max of a list of numbers
stats() { python3 -c 'import sys,statistics as s; v=sorted(float(x) for x in sys.argv[1:]); print(f"{s.median(v):.0f} ({v[0]:.0f}–{v[-1]:.0f})")' "$@"; }
stats1() { python3 -c 'import sys,statistics as s; v=sorted(float(x) for x in sys.argv[1:]); print(f"{s.median(v):.1f} ({v[0]:.1f}–{v[-1]:.1f})")' "$@"; }

# one row: nodes size count concurrency
row() {
    local nodes=$1 size=$2 count=$3 conc=$4
    local up=() upm=() down=() downm=() p50u=() p99u=() p50d=() p99d=()
    for _ in $(seq 1 "$RUNS"); do
        local j
        j=$("$BIN" bench --tracker "$TRACKER" --size "$size" --count "$count" --concurrency "$conc" --json)
        read -r a b c d e f g h < <(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); u,d=r["upload"],r["download"]; print(u["ops_per_s"],u["mib_per_s"],d["ops_per_s"],d["mib_per_s"],u["p50_ms"],u["p99_ms"],d["p50_ms"],d["p99_ms"])' "$j")
        up+=("$a"); upm+=("$b"); down+=("$c"); downm+=("$d"); p50u+=("$e"); p99u+=("$f"); p50d+=("$g"); p99d+=("$h")
    done
    echo "| $nodes | $size | $conc | $count | $(stats "${up[@]}") | $(stats1 "${upm[@]}") | $(stats1 "${p50u[@]}") / $(stats1 "${p99u[@]}") | $(stats "${down[@]}") | $(stats1 "${downm[@]}") | $(stats1 "${p50d[@]}") / $(stats1 "${p99d[@]}") |"
}

echo "## Blob layer: \`cairn bench\` ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
echo
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(df -h "$WORK" | awk 'NR==2{print $1" ("$2")"}'); all processes on loopback. Medians of $RUNS runs (min–max)."
echo
echo "| group size | file size | concurrency | files | upload ops/s | upload MiB/s | upload p50 / p99 ms | download ops/s | download MiB/s | download p50 / p99 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for nodes in 1 3; do
    start_cluster "$nodes"
    row "$nodes" 4K 2000 1
    row "$nodes" 4K 5000 8
    row "$nodes" 1M 300 1
    row "$nodes" 1M 500 8
done
for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
PIDS=()

echo
echo "## The same disk, raw (dd)"
echo
f="$WORK/dd.bin"
seqw=$(dd if=/dev/zero of="$f" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
seqr=$(dd if="$f" of=/dev/null bs=1M 2>&1 | tail -1)
rm -f "$f"
dsync=$(dd if=/dev/zero of="$f" bs=4k count=2000 oflag=dsync 2>&1 | tail -1)
rm -f "$f"
echo "| test | result |"
echo "|---|---|"
echo "| 1 GiB sequential write, \`dd bs=1M conv=fdatasync\` | $seqw |"
echo "| 1 GiB sequential read (cache dropped), \`dd bs=1M\` | $seqr |"
echo "| 4 KiB writes each synced, \`dd bs=4k count=2000 oflag=dsync\` | $dsync |"

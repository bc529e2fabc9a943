#!/usr/bin/env bash
# Small-file churn through a mount: `cairn server` (tracker, one storage
# node, meta service) and `cairn mount`; 8 threads create, read back and
# delete 4 KiB files (crates/cli/tests/churn.py), 1,000 first and then
# ROUNDS rounds of 10,000, with the mount's resident memory after each.
# Prints Markdown on stdout.
#
#   cargo build --release && bench/churn.sh > /tmp/churn.md
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp), ROUNDS (default 5), THREADS (default 8).
set -euo pipefail
NAME=churn
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-8}
MNT="$WORK/mnt"
mkdir -p "$MNT"
TRACKER="127.0.0.1:$(port)"
META="127.0.0.1:$(port)"
export CAIRN_DATA="$WORK/data" CAIRN_META="$META" CAIRN_TRACKER="$TRACKER"
"$BIN" server --data "$WORK/data" --listen "$TRACKER" --storage-listen "127.0.0.1:$(port)" --meta-listen "$META" \
    --fastdfs-listen none --fastdfs-storage-listen none --http-listen none >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do "$BIN" volume list >/dev/null 2>&1 && break; sleep 0.05; done
"$BIN" volume create bench >/dev/null
"$BIN" mount bench "$MNT" >"$WORK/mount.log" 2>&1 &
MOUNT_PID=$!
PIDS+=("$MOUNT_PID")
for _ in $(seq 1 200); do grep -q " $MNT " /proc/mounts && break; sleep 0.05; done
trap 'fusermount3 -u "$MNT" 2>/dev/null || true; cleanup' EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$MOUNT_PID/status"; }
mkdir "$MNT/churn"
echo "| files | create | read | delete | mount RSS after |"
echo "|---|---|---|---|---|"
row() { # count
    local out
    out=$(python3 crates/cli/tests/churn.py "$MNT/churn" "$1" "$THREADS")
    # "create N/s read N/s delete N/s"
    read -r _ c _ r _ d <<<"$out"
    echo "| $1 | $c | $r | $d | $(rss) KiB |"
}
row 1000
for _ in $(seq 1 "$ROUNDS"); do row 10000; done

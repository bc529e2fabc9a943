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
start_mount
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

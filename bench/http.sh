#!/usr/bin/env bash
# HTTP download benchmark: a single-machine cluster (`cairn server`) with
# HTTP downloads on; a 1 GiB file is uploaded, then downloaded whole with
# curl to /dev/null (three runs), next to the disk itself (the blob file
# read with dd, cold and warm cache) and the FastDFS protocol download.
# Prints Markdown on stdout.
#
#   cargo build --release && bench/http.sh > /tmp/http.md
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp), SIZE_MIB (default 1024).
set -euo pipefail
NAME=http
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SIZE_MIB=${SIZE_MIB:-1024}
start_http_server
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$WORK/big.bin"
ID=$("$BIN" upload --tracker "$TRACKER" "$WORK/big.bin")
rm -f "$WORK/big.bin"
BLOB=$(find "$WORK/data" -type f -name "$(basename "$ID")" | head -1)
mibs() { python3 -c "import sys; print(f'{$1 / (1 << 20) / float(sys.argv[1]):.0f}')" "$2"; }
echo "| what | run | MiB/s |"
echo "|---|---|---|"
for run in 1 2 3; do
    cold
    t=$( { /usr/bin/time -f %e dd if="$BLOB" of=/dev/null bs=1M status=none; } 2>&1 )
    echo "| disk: dd of the blob file, cold cache | $run | $(mibs $((SIZE_MIB << 20)) "$t") |"
    cold
    speed=$(curl -s -o /dev/null -w '%{speed_download}' "http://$HTTP/$ID")
    echo "| HTTP GET with curl, cold cache | $run | $(python3 -c "print(f'{$speed / (1 << 20):.0f}')") |"
done
t=$( { /usr/bin/time -f %e dd if="$BLOB" of=/dev/null bs=1M status=none; } 2>&1 )
echo "| disk: dd of the blob file, warm cache | 1 | $(mibs $((SIZE_MIB << 20)) "$t") |"
for run in 1 2 3; do
    speed=$(curl -s -o /dev/null -w '%{speed_download}' "http://$HTTP/$ID")
    echo "| HTTP GET with curl, warm cache | $run | $(python3 -c "print(f'{$speed / (1 << 20):.0f}')") |"
done

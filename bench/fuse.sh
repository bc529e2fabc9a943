#!/usr/bin/env bash
# FUSE benchmark: `cairn server` (tracker, one storage node, meta service)
# and a mounted volume; fio sequential 1 GiB write/read with 1 MiB blocks,
# 4 KiB random read/write, then 10,000 files of 4 KiB: create, stat, read,
# `ls -l`, delete. Prints Markdown on stdout.
#
#   cargo build --release && bench/fuse.sh > /tmp/fuse.md
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp), FILES (default 10000), SIZE (default 1G).
set -euo pipefail
NAME=fuse
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
FILES=${FILES:-10000}
SIZE=${SIZE:-1G}
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
PIDS+=($!)
for _ in $(seq 1 200); do grep -q " $MNT " /proc/mounts && break; sleep 0.05; done
trap 'fusermount3 -u "$MNT" 2>/dev/null || true; cleanup' EXIT
cold() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
fio_bw() { # name rw bs [extra]: prints MiB/s and IOPS
    fio --name="$1" --filename="$MNT/fio.dat" --size="$SIZE" --rw="$2" --bs="$3" --ioengine=psync \
        --output-format=json "${@:4}" 2>/dev/null |
        python3 -c 'import json,sys; t=sys.stdin.read(); j=json.loads(t[t.index("{"):])["jobs"][0]; d=j["read"] if j["read"]["io_bytes"] else j["write"]; print("%.0f MiB/s | %.0f" % (d["bw"] / 1024, d["iops"]))'
}
echo "| workload | MiB/s | IOPS |"
echo "|---|---|---|"
echo "| fio sequential write $SIZE, 1 MiB blocks | $(fio_bw seqw write 1M --end_fsync=1) |"
cold
echo "| fio sequential read $SIZE, 1 MiB blocks | $(fio_bw seqr read 1M) |"
echo "| fio 4 KiB random read, 1 job | $(fio_bw randr randread 4k --runtime=20 --time_based) |"
echo "| fio 4 KiB random write, 1 job | $(fio_bw randw randwrite 4k --runtime=20 --time_based --end_fsync=1) |"
rm -f "$MNT/fio.dat"
mkdir "$MNT/files"
head -c 4096 /dev/urandom >"$WORK/4k"
rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):.0f}')" "$FILES" "$1"; }
t0=$(date +%s.%N); for i in $(seq 1 "$FILES"); do cp "$WORK/4k" "$MNT/files/f$i"; done; t1=$(date +%s.%N)
echo "| create $FILES × 4 KiB (cp) | | $(rate "$(echo "$t1 - $t0" | bc)")/s |"
t0=$(date +%s.%N); find "$MNT/files" -type f -exec stat -c %s {} + >/dev/null; t1=$(date +%s.%N)
echo "| stat of those files | | $(rate "$(echo "$t1 - $t0" | bc)")/s |"
t0=$(date +%s.%N); cat "$MNT"/files/* >/dev/null; t1=$(date +%s.%N)
echo "| read of those files | | $(rate "$(echo "$t1 - $t0" | bc)")/s |"
t0=$(date +%s.%N); ls -l "$MNT/files" >/dev/null; t1=$(date +%s.%N)
echo "| \`ls -l\` of the directory | | $(echo "$t1 - $t0" | bc | xargs printf '%.2f') s |"
t0=$(date +%s.%N); rm -rf "$MNT/files"; t1=$(date +%s.%N)
echo "| delete of those files | | $(rate "$(echo "$t1 - $t0" | bc)")/s |"

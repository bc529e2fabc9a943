#!/usr/bin/env bash
# FUSE benchmark: `cairn server` (tracker, one storage node, meta service)
# and a mounted volume, and the same workloads on a plain directory of the
# same disk in the same run: fio sequential 1 GiB write/read with 1 MiB
# blocks, 4 KiB random read/write, then 10,000 files of 4 KiB: create,
# stat, read, `ls -l`, delete. Prints Markdown on stdout.
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
start_mount
LOCAL="$WORK/local"
mkdir -p "$LOCAL"
fio_bw() { # dir name rw bs [extra]: prints "MiB/s, IOPS"
    fio --name="$2" --filename="$1/fio.dat" --size="$SIZE" --rw="$3" --bs="$4" --ioengine=psync \
        --output-format=json "${@:5}" 2>/dev/null | fio_result | awk '{ printf "%.0f MiB/s, %.0f IOPS\n", $1, $2 }'
}
rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):.0f}/s')" "$FILES" "$1"; }
since() { echo "$(date +%s.%N) - $1" | bc; }
head -c 4096 /dev/urandom >"$WORK/4k"
declare -A R
for where in mount local; do
    dir=$MNT; [ "$where" = local ] && dir=$LOCAL
    R[$where,seqw]=$(fio_bw "$dir" seqw write 1M --end_fsync=1)
    cold
    R[$where,seqr]=$(fio_bw "$dir" seqr read 1M)
    R[$where,randr]=$(fio_bw "$dir" randr randread 4k --runtime=20 --time_based)
    R[$where,randw]=$(fio_bw "$dir" randw randwrite 4k --runtime=20 --time_based --end_fsync=1)
    rm -f "$dir/fio.dat"
    mkdir "$dir/files"
    t0=$(date +%s.%N); for i in $(seq 1 "$FILES"); do cp "$WORK/4k" "$dir/files/f$i"; done
    R[$where,create]=$(rate "$(since "$t0")")
    cold
    t0=$(date +%s.%N); find "$dir/files" -type f -exec stat -c %s {} + >/dev/null
    R[$where,stat]=$(rate "$(since "$t0")")
    t0=$(date +%s.%N); cat "$dir"/files/* >/dev/null
    R[$where,read]=$(rate "$(since "$t0")")
    cold
    t0=$(date +%s.%N); ls -l "$dir/files" >/dev/null
    R[$where,ls]=$(printf '%.2f s' "$(since "$t0")")
    t0=$(date +%s.%N); rm -rf "$dir/files"
    R[$where,delete]=$(rate "$(since "$t0")")
done
echo "| workload | mount | local disk |"
echo "|---|---|---|"
row() { echo "| $1 | ${R[mount,$2]} | ${R[local,$2]} |"; }
row "fio sequential write $SIZE, 1 MiB blocks" seqw
row "fio sequential read $SIZE, 1 MiB blocks (cold)" seqr
row "fio 4 KiB random read, 1 job, 20 s" randr
row "fio 4 KiB random write, 1 job, 20 s" randw
row "create $FILES × 4 KiB (cp, one at a time)" create
row "stat of those files (cold)" stat
row "read of those files" read
row "\`ls -l\` of the directory (cold)" ls
row "delete of those files (rm -rf)" delete

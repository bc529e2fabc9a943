#!/usr/bin/env bash
# What bounds the issue 6 targets that bench/all.sh shows missed, measured
# rather than argued: on one tracker, a group of two storage nodes, the
# meta service and a mount of a volume on that group, each workload runs
# while the disk's counters (/proc/diskstats of the device under
# BENCH_DIR) and, for the sequential read, `perf record -a` watch it.
# Prints Markdown.
#
#   - 1 MiB uploads at concurrency 8 (`cairn bench`) and fio's sequential
#     write through the mount: bytes the device wrote per byte stored, and
#     how busy it was, beside fio's sequential write on a plain directory;
#   - 4 KiB creates one at a time through the mount: each call's median
#     time, the device's flushes per file and their time, beside the same
#     loop with an fsync per file on a plain directory;
#   - fio's sequential read of 1 GiB through the mount (cold), the 1 MiB
#     uploads and fio's sequential write through the mount: the share of
#     CPU time per process and the hottest symbols (`perf record -a -g`);
#   - where the guest reports its free pages to the host (a balloon with
#     free page reporting: /sys/module/page_reporting), the 1 MiB uploads
#     again with the reporting off, so the cost of faulting memory back in
#     from the host is measured, not guessed. The setting is put back on
#     exit.
#
#   cargo build --release && bench/bounds.sh > /tmp/bounds.md
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp), FILES (default 2000).
set -euo pipefail
NAME=bounds
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
FILES=${FILES:-2000}
command -v fio >/dev/null || { echo "bench/bounds.sh needs fio (apt-get install fio)" >&2; exit 1; }
command -v perf >/dev/null || { echo "bench/bounds.sh needs perf (apt-get install linux-perf)" >&2; exit 1; }

# The whole disk under the work directory (its partition's parent, if any).
src=$(df --output=source "$WORK" | tail -1)
DEV=$(lsblk -no pkname "$src" 2>/dev/null | head -1)
[ -n "$DEV" ] || DEV=$(basename "$src")
grep -q " $DEV " /proc/diskstats || { echo "bench/bounds.sh: no counters for $DEV" >&2; exit 1; }

start_volume_cluster g1
mkdir -p "$WORK/local"

# The device's counters (sectors written, ms busy, flushes, ms flushing),
# then the CPUs' (busy and all jiffies, from /proc/stat).
disk() {
    awk -v d="$DEV" '$3 == d { print $10, $13, ($19 == "" ? 0 : $19), ($20 == "" ? 0 : $20) }' /proc/diskstats
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
# counted CMD...: runs CMD (its output to $WORK/cmd.out) between two
# readings of the counters; sets MIB (device MiB written), BUSY (% of the
# wall time the device was busy), FLUSHES, FLUSH_US (µs per flush), CPU
# (% of the CPUs' time busy) and WALL (seconds).
counted() {
    local a b t0 t1
    sync
    a=$(disk); t0=$(date +%s.%N)
    "$@" >"$WORK/cmd.out"
    sync
    b=$(disk); t1=$(date +%s.%N)
    # shellcheck disable=SC2086
    read -r MIB BUSY FLUSHES FLUSH_US CPU WALL < <(python3 - "$t0" "$t1" $a $b <<'PY'
import sys
wall = float(sys.argv[2]) - float(sys.argv[1])
a = [float(x) for x in sys.argv[3:9]]; b = [float(x) for x in sys.argv[9:15]]
d = [y - x for x, y in zip(a, b)]
print(f"{d[0] * 512 / 2**20:.0f} {100 * d[1] / 1000 / wall:.0f} {d[2]:.0f} {d[3] * 1000 / d[2] if d[2] else 0:.0f} {100 * d[4] / d[5]:.0f} {wall:.1f}")
PY
    )
}
# watched STORED_MIB CMD...: what the device wrote per byte stored, how
# busy it and the CPUs were, as one table cell.
watched() {
    local stored=$1
    shift
    counted "$@"
    python3 -c 'import sys; m, s = float(sys.argv[1]), float(sys.argv[2]); print(f"{m:,.0f} MiB written ({m / s:.2f} per byte stored), device busy {sys.argv[3]}% of {sys.argv[5]} s, CPUs busy {sys.argv[4]}%")' "$MIB" "$stored" "$BUSY" "$CPU" "$WALL"
}

echo "## What bounds the missed targets (bench/bounds.sh, $(date -u +%F), commit $(git rev-parse --short HEAD))"
echo
echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); device $DEV under ${BENCH_DIR:-/var/tmp}; a tracker, a group of two storage nodes, the meta service and a mount of a volume on that group."
echo
upload_rate() { python3 -c 'import json,sys; print("%.0f MiB/s" % json.load(open(sys.argv[1]))["upload"]["mib_per_s"])' "$WORK/cmd.out"; }
fio_rate() { fio_result <"$WORK/cmd.out" | awk '{ printf "%.0f MiB/s\n", $1 }'; } # of fio's JSON in $WORK/cmd.out
upload_1m() { "$BIN" bench --group g1 --size 1M --count 800 --concurrency 8 --json; }
fio_seq() { # DIR write|read
    fio --name=s --filename="$1/fio.dat" --size=1G --rw="$2" --bs=1M --ioengine=psync --end_fsync=1 --output-format=json 2>/dev/null
}

echo "### Bytes to the disk: 1 MiB uploads and sequential writes"
echo
echo "| workload | rate | the device |"
echo "|---|---|---|"
r=$(watched 800 upload_1m)
echo "| 1 MiB uploads, group of two, c=8 (800 MiB; the bench's downloads and deletes follow in the same window) | $(upload_rate) | $r |"
r=$(watched 1024 fio_seq "$MNT" write); echo "| fio sequential write, 1 GiB through the mount | $(fio_rate) | $r |"
rm -f "$MNT/fio.dat"
r=$(watched 1024 fio_seq "$WORK/local" write); echo "| fio sequential write, 1 GiB, plain directory | $(fio_rate) | $r |"
rm -f "$WORK/local/fio.dat"
echo
profiled "#### 1 MiB uploads, group of two, c=8" upload_1m
echo "($(upload_rate) in this run.)"
echo
profiled "#### fio sequential write of 1 GiB through the mount" fio_seq "$MNT" write
echo "($(fio_rate) in this run.)"
rm -f "$MNT/fio.dat"
echo

# The guest's free page reporting: what the 1 MiB uploads do with it off.
ORDER=/sys/module/page_reporting/parameters/page_reporting_order
if [ -w "$ORDER" ]; then
    was=$(cat "$ORDER")
    trap 'echo "$was" >"$ORDER"; unmount_and_clean' EXIT
    echo "#### 1 MiB uploads with the guest's free page reporting on (as found: order $was) and off"
    echo
    echo "| round | reporting on | reporting off |"
    echo "|---|---|---|"
    for round in 1 2 3; do
        # Reporting runs in passes a few seconds apart: the pages the last
        # round held must have gone back to the host before this one.
        echo "$was" >"$ORDER"
        cold
        sleep 10
        upload_1m >"$WORK/cmd.out"; on=$(upload_rate)
        # An order above the largest free block: nothing is reported. A
        # write of 4 GiB through the page cache, then dropped, makes the
        # guest hold the memory the uploads will take.
        echo 11 >"$ORDER"
        dd if=/dev/zero of="$WORK/hold" bs=1M count=4096 status=none; rm -f "$WORK/hold"
        cold
        upload_1m >"$WORK/cmd.out"; off=$(upload_rate)
        echo "| $round | $on | $off |"
    done
    echo "$was" >"$ORDER"
    echo
fi

echo "### Creates of 4 KiB files one at a time: where a file's time goes"
echo
cat >"$WORK/create.py" <<'PY'
import os, statistics, sys, time
d, n, sync = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "fsync"
os.makedirs(d, exist_ok=True)
data = os.urandom(4096)
t = {"open": [], "write": [], "fsync": [], "close": []}
t0 = time.perf_counter()
for i in range(n):
    a = time.perf_counter(); fd = os.open(f"{d}/f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    b = time.perf_counter(); os.write(fd, data)
    c = time.perf_counter()
    if sync:
        os.fsync(fd)
    e = time.perf_counter(); os.close(fd); f = time.perf_counter()
    t["open"].append(b - a); t["write"].append(c - b); t["fsync"].append(e - c); t["close"].append(f - e)
wall = time.perf_counter() - t0
med = {k: statistics.median(v) * 1e6 for k, v in t.items()}
print(f"{n / wall:,.0f}/s | {med['open']:.0f} | {med['write']:.0f} | {med['fsync']:.0f} | {med['close']:.0f}")
PY
echo "| loop | files/s | open µs | write µs | fsync µs | close µs | device flushes per file | µs per flush | CPUs busy |"
echo "|---|---|---|---|---|---|---|---|---|"
flushes() { # LABEL DIR MODE
    counted python3 "$WORK/create.py" "$2" "$FILES" "$3"
    python3 -c 'import sys; print(f"| {sys.argv[1]} | {sys.argv[2]} | {int(sys.argv[3]) / int(sys.argv[4]):.1f} | {sys.argv[5]} | {sys.argv[6]}% |")' \
        "$1" "$(cat "$WORK/cmd.out")" "$FLUSHES" "$FILES" "$FLUSH_US" "$CPU"
}
flushes "mount: open, write, close" "$MNT/c1" plain
flushes "plain directory: open, write, close" "$WORK/local/c1" plain
flushes "plain directory: open, write, fsync, close" "$WORK/local/c2" fsync
echo
dd if=/dev/urandom of="$MNT/big" bs=1M count=1024 conv=fsync status=none
cold
profiled "### Sequential read of 1 GiB through the mount (cold): CPU by process and the hottest symbols" \
    fio --name=r --filename="$MNT/big" --rw=read --bs=1M --ioengine=psync --output-format=json
echo "(fio: $(fio_rate).)"

#!/usr/bin/env bash
# The whole benchmark in one run on one machine: Cairn and the local disk
# under the same workloads, each figure the median of RUNS runs with the
# min–max beside it. Writes a Markdown section (date, commit, cores,
# memory) to stdout; with --append, also appends it to docs/perf.md.
#
#   cargo build --release && bench/all.sh --append
#
# Cluster: one tracker, two groups of two storage nodes (g1, g2), the meta
# service, and a volume over both groups mounted with `cairn mount`.
#   - native client, group g1 (2 members): `cairn bench` with 4 KiB, 64 KiB
#     and 1 MiB files at concurrency 1 and 8;
#   - the mount: fio sequential write/read (1 MiB blocks), 4 KiB random
#     read/write with 1 and 4 jobs, and bench/files.py (4 KiB files created,
#     stat'ed, read, renamed, deleted one at a time; `ls -l`; mkdir/rmdir);
#   - the local disk, a plain directory next to the cluster's data: the
#     same fio jobs and loops, plus create + write + fsync per file;
#   - with GLUSTER=1, a GlusterFS replica 3 volume on this machine (three
#     bricks on the same disk, its own FUSE client, default options): the
#     same fio jobs and loops (bench/gluster.sh).
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp: the disk measured), RUNS
# (default 3), FILES (default 10000), DIRS (default 2000), SIZE (fio
# sequential size, default 1G), RAND_SECS (default 10), GLUSTER (1: add
# GlusterFS; needs root and glusterfs-server).
set -euo pipefail
NAME=all
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
FILES=${FILES:-10000}
DIRS=${DIRS:-2000}
SIZE=${SIZE:-1G}
RAND_SECS=${RAND_SECS:-10}
GLUSTER=${GLUSTER:-0}
APPEND=0
[ "${1:-}" = "--append" ] && APPEND=1
command -v fio >/dev/null || { echo "bench/all.sh needs fio (apt-get install fio)" >&2; exit 1; }

# ---- the cluster ----
start_volume_cluster g1 g2
mkdir -p "$WORK/local"
PLACES="mount local"
if [ "$GLUSTER" = 1 ]; then
    # shellcheck source=bench/gluster.sh
    source "$(dirname "$0")/gluster.sh"
    trap 'stop_gluster; unmount_and_clean' EXIT
    PLACES="mount local gluster"
fi

# ---- measurements: each appends one number to a named series ----
declare -A SERIES
add() { SERIES[$1]="${SERIES[$1]:-} $2"; }
# fio_run DIR KEY RW BS JOBS [extra]: adds MiB/s (sequential) or IOPS (random)
fio_run() {
    local out
    out=$(fio --name="$2" --directory="$1" --filename=fio.dat --size="$SIZE" --rw="$3" --bs="$4" --numjobs="$5" \
        --ioengine=psync --group_reporting --output-format=json "${@:6}" 2>/dev/null)
    local bw iops
    read -r bw iops < <(fio_result <<<"$out")
    if [ "${2##*,}" = seq ]; then add "$2" "$bw"; else add "$2" "$iops"; fi
}
native() { # SIZE COUNT CONCURRENCY
    local j
    j=$("$BIN" bench --group g1 --size "$1" --count "$2" --concurrency "$3" --json)
    add "native,$1,c$3,up" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["upload"]["ops_per_s"])' <<<"$j")"
    add "native,$1,c$3,down" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["download"]["ops_per_s"])' <<<"$j")"
    add "native,$1,c$3,upmib" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["upload"]["mib_per_s"])' <<<"$j")"
    add "native,$1,c$3,downmib" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["download"]["mib_per_s"])' <<<"$j")"
}
for run in $(seq 1 "$RUNS"); do
    echo "run $run of $RUNS" >&2
    native 4K 2000 1
    native 4K 8000 8
    native 64K 1000 1
    native 64K 4000 8
    native 1M 200 1
    native 1M 800 8
    for where in $PLACES; do
        case $where in mount) dir=$MNT ;; local) dir="$WORK/local" ;; gluster) start_gluster && dir=$GMNT ;; esac
        fio_run "$dir" "$where,seqw,seq" write 1M 1 --end_fsync=1
        cold
        fio_run "$dir" "$where,seqr,seq" read 1M 1
        for jobs in 1 4; do
            fio_run "$dir" "$where,randr$jobs,rand" randread 4k "$jobs" --runtime="$RAND_SECS" --time_based
            fio_run "$dir" "$where,randw$jobs,rand" randwrite 4k "$jobs" --runtime="$RAND_SECS" --time_based --end_fsync=1
        done
        rm -f "$dir"/fio.dat*
        flags=(); [ "$where" = local ] && flags=(--fsync)
        j=$(python3 bench/files.py "$dir" --files "$FILES" --dirs "$DIRS" "${flags[@]}")
        for k in create stat read ls_seconds rename delete mkdir rmdir create8 create_fsync; do
            v=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$j" "$k")
            [ -n "$v" ] && add "$where,$k" "$v"
        done
        if [ "$where" = gluster ]; then stop_gluster; fi
    done
done

# ---- the report ----
med() { # KEY [decimals]: "median (min–max)"
    python3 -c '
import statistics, sys
v = sorted(float(x) for x in sys.argv[1].split())
f = "{:,.%sf}" % sys.argv[2]
print(f"{f.format(statistics.median(v))} ({f.format(v[0])}–{f.format(v[-1])})" if v else "–")' "${SERIES[$1]:-}" "${2:-0}"
}
report() {
    local mem cores
    cores=$(nproc)
    mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
    echo "## bench/all.sh, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    echo "$cores cores, $mem; data on $(df --output=source "$WORK" | tail -1) ($BENCH_DISK_NOTE). Medians of $RUNS runs (min–max)."
    echo "Cluster: two groups of two storage nodes, tracker, meta service and mount on this one machine."
    echo
    echo "### Native client, group of 2 (\`cairn bench --group g1\`)"
    echo
    echo "| file size | concurrency | upload files/s | upload MiB/s | download files/s | download MiB/s |"
    echo "|---|---|---|---|---|---|"
    for s in 4K 64K 1M; do
        for c in 1 8; do
            echo "| $s | $c | $(med "native,$s,c$c,up") | $(med "native,$s,c$c,upmib" 1) | $(med "native,$s,c$c,down") | $(med "native,$s,c$c,downmib" 1) |"
        done
    done
    echo
    echo "### FUSE mount of a volume on two groups of 2, and the local disk"
    echo
    local gl_head="" gl_rule="" gl_none=""
    if [ "$GLUSTER" = 1 ]; then
        echo "GlusterFS: a replica 3 volume of three bricks on the same disk, its FUSE client, default"
        echo "options (no sync at \`close\`: the durability Cairn's mount adds there is not in its figures)."
        echo
        gl_head=" GlusterFS replica 3 |" gl_rule="---|" gl_none=" – |"
    fi
    echo "| workload | mount | local disk |$gl_head"
    echo "|---|---|---|$gl_rule"
    row() {
        local gl=""
        [ "$GLUSTER" = 1 ] && gl=" $(med "gluster,$2" "${3:-0}") |"
        echo "| $1 | $(med "mount,$2" "${3:-0}") | $(med "local,$2" "${3:-0}") |$gl"
    }
    row "fio sequential write $SIZE, 1 MiB blocks, MiB/s" "seqw,seq"
    row "fio sequential read $SIZE, 1 MiB blocks (cold), MiB/s" "seqr,seq"
    row "fio 4 KiB random read, 1 job, IOPS" "randr1,rand"
    row "fio 4 KiB random read, 4 jobs, IOPS" "randr4,rand"
    row "fio 4 KiB random write, 1 job, IOPS" "randw1,rand"
    row "fio 4 KiB random write, 4 jobs, IOPS" "randw4,rand"
    row "create $FILES × 4 KiB, one at a time, files/s" create
    row "stat of those files, /s" stat
    row "read of those files, /s" read
    row "\`ls -l\` of the directory, seconds" ls_seconds 2
    row "rename of those files, /s" rename
    row "delete of those files, /s" delete
    row "mkdir of $DIRS directories, /s" mkdir
    row "rmdir of those directories, /s" rmdir
    row "create of $FILES × 4 KiB by 8 threads, files/s" create8
    echo "| create + write 4 KiB + fsync per file, files/s | – | $(med local,create_fsync) |$gl_none"
}
BENCH_DISK_NOTE=${BENCH_DISK_NOTE:-"BENCH_DIR=${BENCH_DIR:-/var/tmp}"}
out=$(report)
echo "$out"
if [ "$APPEND" = 1 ]; then
    printf '\n%s\n' "$out" >>docs/perf.md
fi

#!/usr/bin/env bash
# Where the time goes in one workload through a mount of `cairn server`:
# `perf record -a -g` over the whole machine while the workload runs, then
# the share of CPU time per process and the hottest symbols. Prints text.
#
#   cargo build --release && bench/profile.sh create|create8|stat|seqwrite|upload4k|randread4
#
# create8: the same creates by 8 threads, each in a directory of its own.
#
# randread4: fio 4 KiB random reads by 4 jobs over a 1 GiB file that 10 s
# of random writes have just cut into many slices (as bench/all.sh runs
# them), profiled for 10 s.
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp), FILES (default 3000).
set -euo pipefail
NAME=profile
WORKLOAD=${1:?usage: bench/profile.sh create|create8|stat|seqwrite|upload4k|randread4}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
FILES=${FILES:-3000}
command -v perf >/dev/null || { echo "bench/profile.sh needs perf (apt-get install linux-perf)" >&2; exit 1; }
start_mount
D="$MNT/p"
mkdir -p "$D"
prepare=""
case $WORKLOAD in
    create) run="import os; d=os.urandom(4096)
for i in range($FILES): open('$D/f%d' % i, 'wb').write(d)" ;;
    create8) run="import os, threading; d=os.urandom(4096)
def one(w):
    os.mkdir('$D/w%d' % w)
    for i in range($FILES // 8): open('$D/w%d/f%d' % (w, i), 'wb').write(d)
ts = [threading.Thread(target=one, args=(w,)) for w in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]" ;;
    stat) prepare="import os; d=os.urandom(4096)
for i in range($FILES): open('$D/f%d' % i, 'wb').write(d)"
        run="import os
for _ in range(20):
    for i in range($FILES): os.stat('$D/f%d' % i)" ;;
    seqwrite) run="import os; b=os.urandom(1 << 20)
with open('$D/big', 'wb') as f:
    for _ in range(1024): f.write(b)
    os.fsync(f.fileno())" ;;
    upload4k) run="import subprocess; subprocess.run(['$BIN', 'bench', '--size', '4K', '--count', '$((FILES * 3))', '--concurrency', '8'], check=True, stdout=subprocess.DEVNULL)" ;;
    randread4)
        fio_cmd="['fio', '--name=p', '--directory=$D', '--filename=fio.dat', '--size=1G', '--ioengine=psync', '--group_reporting'"
        prepare="import subprocess
subprocess.run($fio_cmd, '--rw=write', '--bs=1M', '--end_fsync=1'], check=True, stdout=subprocess.DEVNULL)
subprocess.run($fio_cmd, '--rw=randwrite', '--bs=4k', '--runtime=10', '--time_based', '--end_fsync=1'], check=True, stdout=subprocess.DEVNULL)"
        run="import subprocess
subprocess.run($fio_cmd, '--rw=randread', '--bs=4k', '--numjobs=4', '--runtime=10', '--time_based'], check=True)" ;;
    *) echo "unknown workload $WORKLOAD" >&2; exit 1 ;;
esac
[ -n "$prepare" ] && python3 -c "$prepare"
profiled "## $WORKLOAD: CPU samples by process, then the hottest symbols (self time)" python3 -c "$run"
grep -E "IOPS|BW=" "$WORK/cmd.out" || true

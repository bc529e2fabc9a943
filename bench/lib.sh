# Shared by the bench scripts: the binary, a work dir on the disk being
# measured, cleanup of every started process, and free loopback ports.
# Source it after setting NAME (used in messages and the work dir's name).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${CAIRN_BIN:-$TARGET/release/cairn}
[ -x "$BIN" ] || { echo "bench/$NAME.sh: $BIN not found; run cargo build --release" >&2; exit 1; }
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/cairn-$NAME.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
export CAIRN_SECRET=bench-secret
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_active N [SECONDS]: waits (default 30 s) until the tracker at
# $TRACKER lists N members active and ready to take uploads, looking every
# 50 ms (catch-up times are measured by it); fails the script otherwise.
wait_active() {
    local n=$1 have=0 deadline=$((SECONDS + ${2:-30}))
    while [ "$SECONDS" -lt "$deadline" ]; do
        have=$("$BIN" status --json --tracker "$TRACKER" 2>/dev/null |
            python3 -c 'import json,sys; print(sum(1 for g in json.load(sys.stdin)["groups"] for m in g["members"] if m["ready"] and m["state"] == "active"))' 2>/dev/null || echo 0)
        [ "$have" = "$n" ] && return 0
        sleep 0.05
    done
    echo "bench/$NAME.sh: $have of $n storage nodes active (logs in $WORK)" >&2
    exit 1
}
# Drops the page cache (needs root), so the next read goes to the device.
cold() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
# The exit of a script that mounted $MNT: unmount, then stop and remove the rest.
unmount_and_clean() { fusermount3 -u "$MNT" 2>/dev/null || true; cleanup; }
# fio's JSON report on stdin: "MiB/s IOPS" of its first job, in the
# direction that moved bytes.
fio_result() {
    python3 -c '
import json, sys
t = sys.stdin.read(); j = json.loads(t[t.index("{"):])["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
print(d["bw"] / 1024, d["iops"])'
}
# profiled TITLE CMD...: runs CMD (its output to $WORK/cmd.out) while
# `perf record -a -g` watches the whole machine, then prints TITLE, the
# share of CPU samples per process and the hottest symbols, as a Markdown
# code block.
profiled() {
    local title=$1
    shift
    # Started apart from CMD, which may be a shell function.
    perf record -a -g -F 499 -o "$WORK/perf.data" 2>"$WORK/perf.err" &
    local perf=$!
    PIDS+=("$perf")
    sleep 0.5
    "$@" >"$WORK/cmd.out"
    kill -INT "$perf"
    # perf ends with the signal's status (130) when all went well.
    local rc=0
    wait "$perf" || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 130 ] || { cat "$WORK/perf.err" >&2; exit 1; }
    echo "$title"
    echo
    echo '```'
    # sed, not head: head would end the pipe early and fail it (pipefail).
    perf report -i "$WORK/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -v '^#' | grep '%' | sed -n 1,10p
    echo
    perf report -i "$WORK/perf.data" --no-children --sort comm,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep '%' | sed -n 1,20p
    echo '```'
    echo
}
# start_volume_cluster GROUP...: a tracker, two storage nodes per group,
# the meta service, and a volume `bench` over those groups mounted on
# $MNT; sets TRACKER and META (exported for the CLI) and unmounts on exit.
start_volume_cluster() {
    TRACKER="127.0.0.1:$(port)"
    META="127.0.0.1:$(port)"
    export CAIRN_TRACKER="$TRACKER" CAIRN_META="$META"
    "$BIN" tracker --listen "$TRACKER" --data "$WORK/t" >"$WORK/t.log" 2>&1 & PIDS+=($!)
    local g i
    for g in "$@"; do
        for i in 1 2; do
            "$BIN" storage --tracker "$TRACKER" --group "$g" --listen "127.0.0.1:$(port)" --data "$WORK/$g-$i" \
                --fastdfs-listen none --heartbeat-ms 500 >"$WORK/$g-$i.log" 2>&1 & PIDS+=($!)
        done
    done
    "$BIN" meta --listen "$META" --data "$WORK/meta" >"$WORK/meta.log" 2>&1 & PIDS+=($!)
    wait_active $((2 * $#))
    for _ in $(seq 1 100); do "$BIN" volume list >/dev/null 2>&1 && break; sleep 0.1; done
    "$BIN" volume create bench --groups "$(IFS=,; echo "$*")" >/dev/null
    MNT="$WORK/mnt"
    mkdir -p "$MNT"
    "$BIN" mount bench "$MNT" >"$WORK/mount.log" 2>&1 & PIDS+=($!)
    for _ in $(seq 1 200); do grep -q " $MNT " /proc/mounts && break; sleep 0.05; done
    grep -q " $MNT " /proc/mounts || { echo "bench/$NAME.sh: the mount did not come up" >&2; cat "$WORK/mount.log" >&2; exit 1; }
    trap unmount_and_clean EXIT
}
# `cairn server` (tracker, one storage node, meta service) and a volume
# `bench` mounted on $MNT; sets MOUNT_PID and unmounts on exit.
start_mount() {
    MNT="$WORK/mnt"
    mkdir -p "$MNT"
    local tracker meta
    tracker="127.0.0.1:$(port)"
    meta="127.0.0.1:$(port)"
    export CAIRN_DATA="$WORK/data" CAIRN_META="$meta" CAIRN_TRACKER="$tracker"
    "$BIN" server --data "$WORK/data" --listen "$tracker" --storage-listen "127.0.0.1:$(port)" --meta-listen "$meta" \
        --fastdfs-listen none --fastdfs-storage-listen none --http-listen none >"$WORK/server.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 200); do "$BIN" volume list >/dev/null 2>&1 && break; sleep 0.05; done
    "$BIN" volume create bench >/dev/null
    # shellcheck disable=SC2086
    "$BIN" mount bench "$MNT" ${MOUNT_FLAGS:-} >"$WORK/mount.log" 2>&1 &
    MOUNT_PID=$!
    PIDS+=("$MOUNT_PID")
    for _ in $(seq 1 200); do grep -q " $MNT " /proc/mounts && break; sleep 0.05; done
    trap unmount_and_clean EXIT
}
# `cairn server` (tracker and one storage node) with HTTP downloads on;
# sets TRACKER and HTTP.
start_http_server() {
    TRACKER="127.0.0.1:$(port)"
    HTTP="127.0.0.1:$(port)"
    "$BIN" server --data "$WORK/data" --listen "$TRACKER" --storage-listen "127.0.0.1:$(port)" \
        --fastdfs-listen none --fastdfs-storage-listen none --http-listen "$HTTP" >"$WORK/server.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 200); do "$BIN" status --tracker "$TRACKER" >/dev/null 2>&1 && break; sleep 0.05; done
    sleep 1
}

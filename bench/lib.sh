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
    trap 'fusermount3 -u "$MNT" 2>/dev/null || true; cleanup' EXIT
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
    trap 'fusermount3 -u "$MNT" 2>/dev/null || true; cleanup' EXIT
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

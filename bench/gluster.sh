# GlusterFS beside Cairn in bench/all.sh (GLUSTER=1): a replica 3 volume
# of three bricks under $WORK, mounted with its own FUSE client, so the
# same fio jobs and file loops run on it in the same run. Sourced by
# all.sh after lib.sh; needs root and Debian's glusterfs-server. all.sh
# starts a fresh volume for the GlusterFS part of each run and stops it
# after, so its daemons take no CPU from Cairn's or the local disk's part.
#
# glusterd refuses loopback addresses for bricks, and its bricks find it
# on its fixed port (24007) at the bricks' address. So the bricks and
# glusterd listen on a private address added to `lo` for the run (nothing
# outside this machine can reach an address on `lo`), and port 24007 must
# be free.

GLUSTER_ADDR=${GLUSTER_ADDR:-10.213.0.1}
GLUSTER_DIR="$WORK/gluster"
GMNT="$GLUSTER_DIR/mnt"
GLUSTER_ADDED_ADDR=0

gluster_cli() { gluster --glusterd-sock="$GLUSTER_DIR/glusterd.socket" --mode=script "$@"; }

start_gluster() {
    command -v glusterd >/dev/null || {
        echo "GLUSTER=1 needs glusterfs-server (apt-get install glusterfs-server)" >&2
        exit 1
    }
    if ss -tln | grep -q ":24007 "; then
        echo "GLUSTER=1: port 24007 is taken (another glusterd?); glusterd's bricks can only find it there" >&2
        exit 1
    fi
    if ! ip -4 addr show dev lo | grep -q " $GLUSTER_ADDR/"; then
        ip addr add "$GLUSTER_ADDR/32" dev lo
        GLUSTER_ADDED_ADDR=1
    fi
    rm -rf "$GLUSTER_DIR"
    mkdir -p "$GLUSTER_DIR/wd" "$GLUSTER_DIR/b1" "$GLUSTER_DIR/b2" "$GLUSTER_DIR/b3" "$GMNT"
    local base
    base=$(python3 -c 'import random; print(random.randrange(40000, 50000, 100))')
    cat >"$GLUSTER_DIR/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $GLUSTER_DIR/wd
    option transport-type socket
    option transport.socket.bind-address $GLUSTER_ADDR
    option transport.socket.listen-port 24007
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
    option base-port $base
    option max-port $((base + 50))
    option glusterd-sockfile $GLUSTER_DIR/glusterd.socket
end-volume
EOF
    glusterd -f "$GLUSTER_DIR/glusterd.vol" -p "$GLUSTER_DIR/glusterd.pid" -l "$GLUSTER_DIR/glusterd.log" --log-level=WARNING
    for _ in $(seq 1 100); do gluster_cli volume list >/dev/null 2>&1 && break; sleep 0.1; done
    # `force`: three bricks of one replica set on one machine.
    gluster_cli volume create cairnbench replica 3 \
        "$GLUSTER_ADDR:$GLUSTER_DIR/b1" "$GLUSTER_ADDR:$GLUSTER_DIR/b2" "$GLUSTER_ADDR:$GLUSTER_DIR/b3" force >/dev/null
    gluster_cli volume start cairnbench >/dev/null
    glusterfs --volfile-server="$GLUSTER_ADDR" --volfile-id=cairnbench -l "$GLUSTER_DIR/mount.log" "$GMNT"
    for _ in $(seq 1 100); do grep -q " $GMNT " /proc/mounts && break; sleep 0.1; done
    grep -q " $GMNT " /proc/mounts || { echo "the GlusterFS volume did not mount: $GLUSTER_DIR/mount.log" >&2; exit 1; }
}

stop_gluster() {
    umount "$GMNT" 2>/dev/null || true
    gluster_cli volume stop cairnbench force >/dev/null 2>&1 || true
    [ -f "$GLUSTER_DIR/glusterd.pid" ] && kill "$(cat "$GLUSTER_DIR/glusterd.pid")" 2>/dev/null || true
    # The bricks and the self-heal daemon, should the stop have missed one.
    pkill -f "glusterfsd.*$GLUSTER_DIR" 2>/dev/null || true
    pkill -f "glustershd.*cairnbench|shd/cairnbench" 2>/dev/null || true
    # glusterd gone, so the next start finds its port free.
    for _ in $(seq 1 100); do ss -tln | grep -q ":24007 " || break; sleep 0.1; done
    if [ "$GLUSTER_ADDED_ADDR" = 1 ]; then
        ip addr del "$GLUSTER_ADDR/32" dev lo 2>/dev/null || true
        GLUSTER_ADDED_ADDR=0
    fi
}

#!/usr/bin/env bash
# Slave uploads (FastDFS command 21: a thumbnail stored beside its photo,
# named after it) through a storage node's FastDFS listener, on a tracker
# and a group of two: 4 KiB and 64 KiB slaves of one master, one client
# connection at a time and eight at once, each kept open as FastDFS
# clients keep theirs. The client is a few lines of Python speaking the
# wire format (`cairn bench --fastdfs` goes through the `fastdfs` crate,
# which has no slave upload). Prints one line per case, per second.
#
#   cargo build --release && bench/fastdfs-slave.sh
#
# Env: CAIRN_BIN, BENCH_DIR (default /var/tmp).
set -euo pipefail
NAME=fastdfs-slave
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
TRACKER="127.0.0.1:$(port)"
"$BIN" tracker --listen "$TRACKER" --data "$WORK/t" >"$WORK/t.log" 2>&1 & PIDS+=($!)
F1=$(port)
"$BIN" storage --tracker "$TRACKER" --group g1 --listen "127.0.0.1:$(port)" --data "$WORK/s1" --fastdfs-listen "127.0.0.1:$F1" --heartbeat-ms 500 >"$WORK/s1.log" 2>&1 & PIDS+=($!)
"$BIN" storage --tracker "$TRACKER" --group g1 --listen "127.0.0.1:$(port)" --data "$WORK/s2" --fastdfs-listen "127.0.0.1:$(port)" --heartbeat-ms 500 >"$WORK/s2.log" 2>&1 & PIDS+=($!)
wait_active 2
# The node's listener learns its group from the cluster map.
sleep 1
python3 - "$F1" <<'PY'
import socket, struct, sys, time, threading, os
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); return s
def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise IOError("closed")
        b += c
    return b
def call(s, cmd, body):
    s.sendall(struct.pack(">QBB", len(body), cmd, 0) + body)
    n, c, st = struct.unpack(">QBB", recvn(s, 10))
    return st, recvn(s, n)
def field(t, n): return t.encode().ljust(n, b"\0")
s = conn()
st, b = call(s, 11, b"\xff" + struct.pack(">Q", 5) + field("jpg", 6) + b"photo")
assert st == 0, st
master = b[16:].decode()
for size in (4096, 65536):
    data = os.urandom(size)
    for conc, n in ((1, 1500), (8, 4000)):
        per = n // conc
        def work(t):
            c = conn()
            for i in range(per):
                body = struct.pack(">QQ", len(master), size) + field(f"_{size}_{conc}_{t}_{i}", 16) + field("png", 6) + master.encode() + data
                st, _ = call(c, 21, body)
                assert st == 0, st
        ts = [threading.Thread(target=work, args=(t,)) for t in range(conc)]
        t0 = time.perf_counter()
        for t in ts: t.start()
        for t in ts: t.join()
        print(f"slave {size//1024}K c{conc}: {per*conc/(time.perf_counter()-t0):.0f}/s")
PY

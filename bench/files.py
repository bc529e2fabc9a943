#!/usr/bin/env python3
"""File loops for bench/all.sh, run in one process (no fork per file, so
the figures are the file system's, not `cp`'s): N files of 4 KiB created,
stat'ed, read, renamed and deleted one at a time, `ls -l` of their
directory, and mkdir/rmdir of D directories. With --fsync, also a loop of
create + write 4 KiB + fsync per file (the cost of durability without
batching). Then the same creates by 8 threads at once, each in a
directory of its own (`make -j8`, parallel unpacking: what group commit
serves). Prints one JSON object: operations per second per phase, and
seconds for `ls -l`.

    bench/files.py DIR [--files N] [--dirs D] [--fsync]
"""
import argparse
import json
import os
import subprocess
import threading
import time


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--dirs", type=int, default=2000)
    ap.add_argument("--fsync", action="store_true")
    a = ap.parse_args()
    root = os.path.join(a.dir, "files-bench")
    d = os.path.join(root, "f")
    os.makedirs(d)
    data = os.urandom(4096)
    n = a.files
    names = [os.path.join(d, f"file{i:06d}") for i in range(n)]
    renamed = [p + ".r" for p in names]

    def create():
        for p in names:
            with open(p, "wb") as f:
                f.write(data)

    def stat():
        for p in names:
            os.stat(p)

    def read():
        for p in names:
            with open(p, "rb") as f:
                f.read()

    def ls():
        subprocess.run(["ls", "-l", d], stdout=subprocess.DEVNULL, check=True)

    def rename():
        for p, q in zip(names, renamed):
            os.rename(p, q)

    def delete():
        for q in renamed:
            os.unlink(q)

    dirs = [os.path.join(root, f"dir{i:05d}") for i in range(a.dirs)]

    def mkdirs():
        for p in dirs:
            os.mkdir(p)

    def rmdirs():
        for p in dirs:
            os.rmdir(p)

    out = {}
    out["create"] = n / timed(create)
    out["stat"] = n / timed(stat)
    out["read"] = n / timed(read)
    out["ls_seconds"] = timed(ls)
    out["rename"] = n / timed(rename)
    out["delete"] = n / timed(delete)
    out["mkdir"] = a.dirs / timed(mkdirs)
    out["rmdir"] = a.dirs / timed(rmdirs)
    writers = 8
    per = max(1, n // writers)
    par_dirs = [os.path.join(root, f"par{w}") for w in range(writers)]
    for p in par_dirs:
        os.mkdir(p)

    def create_parallel():
        def one(p):
            for i in range(per):
                with open(os.path.join(p, f"file{i:06d}"), "wb") as f:
                    f.write(data)

        threads = [threading.Thread(target=one, args=(p,)) for p in par_dirs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    out["create8"] = writers * per / timed(create_parallel)
    for p in par_dirs:
        for i in range(per):
            os.unlink(os.path.join(p, f"file{i:06d}"))
        os.rmdir(p)
    if a.fsync:
        synced = [os.path.join(d, f"sync{i:06d}") for i in range(min(n, 2000))]

        def fsync_loop():
            for p in synced:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, data)
                os.fsync(fd)
                os.close(fd)

        out["create_fsync"] = len(synced) / timed(fsync_loop)
        for p in synced:
            os.unlink(p)
    os.rmdir(d)
    os.rmdir(root)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Small-file churn on a mount: COUNT files of 4 KiB created, read back and
deleted by WORKERS threads, in batches of at most 10,000 (so the
directories stay small), under ROOT. Prints files per second for each step.

    python3 churn.py ROOT COUNT WORKERS
"""
import concurrent.futures as cf
import os
import sys
import time

root, count, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(4096)
DIRS = 50


def path(i):
    return f"{root}/d{i % DIRS}/f{i}"


def create(i):
    with open(path(i), "wb") as f:
        f.write(data)


def read(i):
    with open(path(i), "rb") as f:
        if f.read() != data:
            raise SystemExit(f"{path(i)}: content differs")


def delete(i):
    os.unlink(path(i))


for d in range(DIRS):
    os.makedirs(f"{root}/d{d}", exist_ok=True)
took = {"create": 0.0, "read": 0.0, "delete": 0.0}
with cf.ThreadPoolExecutor(workers) as ex:
    for start in range(0, count, 10_000):
        batch = range(start, min(count, start + 10_000))
        for step, fn in (("create", create), ("read", read), ("delete", delete)):
            t = time.monotonic()
            list(ex.map(fn, batch))
            took[step] += time.monotonic() - t
print(" ".join(f"{step} {count / max(t, 1e-9):.0f}/s" for step, t in took.items()))

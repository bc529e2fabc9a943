"""Real FastDFS Python clients against a Cairn cluster.

    python fastdfs_clients.py py3fdfs HOST:PORT         (16-byte IP replies)
    python fastdfs_clients.py fastdfs-client HOST:PORT  (46-byte IP replies)

Exits non-zero, saying what differed, on the first mismatch.
"""

import os
import sys


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)


def trackers(addr):
    host, port = addr.rsplit(":", 1)
    return {"host_tuple": (host,), "port": int(port), "timeout": 30, "name": "Tracker Pool"}


def common(c, label):
    """Upload, whole download, delete, then the download must fail."""
    data = os.urandom(200_000)
    r = c.upload_by_buffer(data, "bin")
    check(r is not None and r["Status"].startswith("Upload successed"), f"{label}: upload {r}")
    fid = r["Remote file_id"]
    fid_s = fid.decode() if isinstance(fid, bytes) else fid
    check(fid_s.endswith(".bin") and "/M00/" in fid_s, f"{label}: file id {fid_s}")
    got = c.download_to_buffer(fid)
    check(got["Content"] == data, f"{label}: downloaded bytes differ")
    return fid, data


def assert_gone(c, fid, label):
    """A deleted file must not download any more."""
    try:
        c.download_to_buffer(fid)
    except Exception:
        return
    check(False, f"{label}: deleted file still downloads")


def py3fdfs(addr):
    from fdfs_client.client import Fdfs_client

    c = Fdfs_client(trackers(addr))
    fid, _ = common(c, "py3fdfs")
    r = c.upload_appender_by_buffer(b"hello", "txt")
    aid = r["Remote file_id"]
    c.append_by_buffer(b" world", aid)
    check(c.download_to_buffer(aid)["Content"] == b"hello world", "py3fdfs: append")
    c.modify_by_buffer(b"HELLO", aid, 0)
    check(c.download_to_buffer(aid)["Content"] == b"HELLO world", "py3fdfs: modify")
    c.truncate_file(5, aid)
    check(c.download_to_buffer(aid)["Content"] == b"HELLO", "py3fdfs: truncate")
    c.delete_file(fid)
    c.delete_file(aid)
    for gone in (fid, aid):
        assert_gone(c, gone, "py3fdfs")
    print("py3fdfs ok", flush=True)


def fastdfs_client(addr):
    from fastdfs_client.client import FastdfsClient

    c = FastdfsClient(trackers(addr))
    fid, data = common(c, "fastdfs-client")
    part = c.download_to_buffer(fid, offset=1000, down_bytes=5000)
    check(part["Content"] == data[1000:6000], "fastdfs-client: ranged download")
    tail = c.download_to_buffer(fid, offset=199_990)
    check(tail["Content"] == data[199_990:], "fastdfs-client: download to the end")
    c.delete_file(fid)
    assert_gone(c, fid, "fastdfs-client")
    print("fastdfs-client ok", flush=True)


if __name__ == "__main__":
    kind, addr = sys.argv[1], sys.argv[2]
    {"py3fdfs": py3fdfs, "fastdfs-client": fastdfs_client}[kind](addr)

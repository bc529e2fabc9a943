//! Writes a small meta database holding every kind of record the namespace
//! stores (`src/key.rs`), as the code of its commit writes them: the
//! fixtures of `tests/fixtures/`, which `tests/format.rs` opens with the
//! code of today, so that a change that would silently change the stored
//! format fails there.
//!
//! Run once per format version, from the commit that introduces it, and
//! keep the file as `tests/fixtures/meta-vN.redb`:
//! `cargo run -p cairn-meta --example write_fixture -- OUT.redb`.
//! (`meta-v1.redb` was written by this example at commit cf3a0ad, before the
//! database had a version key; `meta-v2.redb` by the commit that added `b`,
//! the holders of blobs shared by a server-side copy.)

use std::path::PathBuf;

use cairn_meta::key;
use cairn_meta::records::{decode, encode, Inode, Slice as StoredSlice};
use cairn_meta::{Engine, Kind, Namespace, NewNode, RedbEngine, SetAttr, Slice, ROOT};

fn slice(offset: u64, len: u64, blob: &str) -> Slice {
    Slice { offset, len, blob: blob.into(), blob_offset: 0 }
}

fn node(kind: Kind, perm: u32, rdev: u32, target: &[u8]) -> NewNode {
    NewNode { kind, perm, uid: 1000, gid: 100, rdev, target: target.to_vec() }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: write_fixture OUT.redb")?);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("meta.redb");
    let inline_ino;
    {
        let ns = Namespace::open(RedbEngine::open(&db)?)?;
        // `v` and `n`: two volumes, so the counter is past the first.
        let v = ns.create_volume("photos", vec!["group1".into(), "group2".into()], 1 << 20)?.id;
        let other = ns.create_volume("empty", vec![], 64 << 20)?.id;
        assert_eq!((v, other), (1, 2));
        // `i`, `d`, `c`: a directory, and one inode of every other kind.
        let docs = ns.mkdir(v, ROOT, b"docs", 0o750, 1000, 100)?.ino;
        let file = ns.mknod(v, docs, b"report.txt", node(Kind::File, 0o640, 0, b""))?.ino;
        ns.mknod(v, ROOT, b"link", node(Kind::Symlink, 0o777, 0, b"docs/report.txt"))?;
        ns.mknod(v, ROOT, b"pipe", node(Kind::Fifo, 0o600, 0, b""))?;
        ns.mknod(v, ROOT, b"sock", node(Kind::Socket, 0o600, 0, b""))?;
        ns.mknod(v, ROOT, b"tty", node(Kind::CharDev, 0o620, (4 << 8) | 1, b""))?;
        ns.mknod(v, ROOT, b"disk", node(Kind::BlockDev, 0o660, (8 << 8) | 16, b""))?;
        // A hard link: two entries, one inode with nlink 2.
        ns.link(v, file, ROOT, b"report-link")?;
        // Extended attributes.
        ns.setxattr(v, file, b"user.colour", b"blue", true, false)?;
        ns.setxattr(v, docs, b"user.empty", b"", true, false)?;
        // `s`: slices of a file, and `u`: the volume's bytes.
        ns.write(
            v,
            file,
            vec![slice(0, 4096, "group1/M00/00/00/first.bin"), slice(4096, 100, "group1/M00/00/01/second.bin")],
        )?;
        // `b` (version 2): a server-side copy shares the report's blobs.
        let copy = ns.mknod(v, docs, b"report-copy.txt", node(Kind::File, 0o640, 0, b""))?.ino;
        ns.clone_content(v, file, copy)?;
        // `k`: a file with more slices than the compactor lets pass.
        let many = ns.mknod(v, ROOT, b"fragmented", node(Kind::File, 0o644, 0, b""))?.ino;
        let pieces: Vec<Slice> =
            (0..20u64).map(|i| slice(i * 10, 10, &format!("group2/M00/00/02/piece{i:02}.bin"))).collect();
        ns.write(v, many, pieces)?;
        // `g`: blobs a truncation dropped, for the collector.
        let cut = ns.mknod(v, ROOT, b"truncated", node(Kind::File, 0o644, 0, b""))?.ino;
        ns.write(v, cut, vec![slice(0, 50, "group1/M00/00/03/dropped.bin")])?;
        ns.setattr(v, cut, SetAttr { size: Some(0), ..Default::default() })?;
        // `o`: a file unlinked while a mount holds it open.
        let open = ns.mknod(v, ROOT, b"open-unlinked", node(Kind::File, 0o644, 0, b""))?.ino;
        ns.write(v, open, vec![slice(0, 7, "group1/M00/00/04/held.bin")])?;
        ns.unlink(v, ROOT, b"open-unlinked")?;
        ns.keep_open(v, 0x5e55, &[open])?;
        // `r`: a tagged change, applied at most once.
        ns.tagged(0x5e55, 42, || ns.mkdir(v, ROOT, b"tagged", 0o755, 0, 0))?;
        // `m`: a mount attached to the volume.
        ns.attach(v, 0x5e55, "mount host:/mnt/photos (pid 4121)", 60)?;
        // An inode as written before 2026-11-22: its slices inline.
        inline_ino = ns.mknod(v, ROOT, b"old-inline", node(Kind::File, 0o644, 0, b""))?.ino;
        ns.sync()?;
    }
    {
        let engine = RedbEngine::open(&db)?;
        engine.write(|w| {
            let k = key::inode(1, inline_ino);
            let mut i: Inode = decode(&w.get(&k)?.ok_or_else(|| cairn_meta::MetaError::NotFound("inline".into()))?)?;
            let inline =
                [slice(0, 300, "group1/M00/00/05/inline-a.bin"), slice(300, 200, "group1/M00/00/05/inline-b.bin")];
            i.slices = inline.into_iter().map(StoredSlice::from).collect();
            i.attr.size = 500;
            w.put(&k, &encode(&i)?)?;
            // Its bytes in the volume's counter, as a save would move it.
            let u = key::usage(1);
            let now: u64 = decode(&w.get(&u)?.unwrap_or_default()).unwrap_or(0);
            w.put(&u, &encode(&(now + 500))?)
        })?;
    }
    // Opened once more: the redo log is applied and emptied by a durable
    // commit, so the database file alone holds everything.
    drop(RedbEngine::open(&db)?);
    let mut raw = redb::Database::open(&db)?;
    raw.compact()?;
    drop(raw);
    std::fs::copy(&db, &out)?;
    // What it holds, by key tag: every kind of record must be there (read
    // from a copy: opening writes to the file).
    let copy = dir.path().join("copy.redb");
    std::fs::copy(&out, &copy)?;
    let engine = RedbEngine::open(&copy)?;
    let all = engine.read(|r| r.scan(&[], &[0xFF], usize::MAX))?;
    let mut tags = std::collections::BTreeMap::<char, usize>::new();
    for (k, _) in &all {
        *tags.entry(k[0] as char).or_default() += 1;
    }
    println!("records by key tag: {tags:?}");
    drop(engine);
    println!("{} ({} bytes)", out.display(), std::fs::metadata(&out)?.len());
    Ok(())
}

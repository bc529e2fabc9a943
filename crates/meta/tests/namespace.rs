//! The namespace's operations on the embedded engine.

use cairn_meta::slices::Piece;
use cairn_meta::{Kind, MetaError, Namespace, NewNode, RedbEngine, RenameMode, SetAttr, Slice, DEFAULT_CHUNK, ROOT};

fn ns(dir: &tempfile::TempDir) -> Namespace<RedbEngine> {
    Namespace::open(RedbEngine::open(&dir.path().join("meta.redb")).unwrap()).unwrap()
}

fn file(uid: u32) -> NewNode {
    NewNode { kind: Kind::File, perm: 0o644, uid, gid: uid, rdev: 0, target: vec![] }
}

#[test]
fn volumes_are_created_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("photos", vec!["g1".into(), "g2".into()], DEFAULT_CHUNK).unwrap();
    assert_eq!(n.create_volume("photos", vec![], DEFAULT_CHUNK), Err(MetaError::Exists("volume photos".into())));
    assert!(n.create_volume("bad/name", vec![], DEFAULT_CHUNK).is_err());
    n.create_volume("builds", vec![], DEFAULT_CHUNK).unwrap();
    let names: Vec<String> = n.volumes().unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, vec!["builds", "photos"]);
    let root = n.getattr(v.id, ROOT).unwrap();
    assert_eq!((root.kind, root.perm, root.nlink), (Kind::Dir, 0o755, 2));
    let f = n.mknod(v.id, ROOT, b"a.jpg", file(0)).unwrap();
    n.write(v.id, f.ino, vec![Slice { offset: 0, len: 10, blob: "g1/M00/00/00/x".into(), blob_offset: 0 }]).unwrap();
    n.delete_volume("photos", false, 60).unwrap();
    assert!(n.volume("photos").is_err());
    assert!(n.getattr(v.id, ROOT).is_err());
    assert_eq!(n.garbage(i64::MAX, None, 10).unwrap(), vec!["g1/M00/00/00/x".to_string()]);
    assert!(n.getattr(n.volume("builds").unwrap().id, ROOT).is_ok(), "other volumes untouched");
}

#[test]
fn directories_links_and_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    let d = n.mkdir(v, ROOT, b"d", 0o750, 1000, 1000).unwrap();
    assert_eq!(n.getattr(v, ROOT).unwrap().nlink, 3);
    let f = n.mknod(v, d.ino, b"f", file(1000)).unwrap();
    assert_eq!(n.lookup(v, d.ino, b"f").unwrap().ino, f.ino);
    assert_eq!(n.lookup(v, d.ino, b"..").unwrap().ino, ROOT);
    assert_eq!(n.mknod(v, d.ino, b"f", file(0)).map(|_| ()), Err(MetaError::Exists("f".into())));
    assert_eq!(n.link(v, f.ino, ROOT, b"g").unwrap().nlink, 2);
    assert_eq!(n.rmdir(v, ROOT, b"d"), Err(MetaError::NotEmpty));
    assert_eq!(n.unlink(v, ROOT, b"d"), Err(MetaError::IsDir));
    n.unlink(v, d.ino, b"f").unwrap();
    assert_eq!(n.getattr(v, f.ino).unwrap().nlink, 1);
    n.unlink(v, ROOT, b"g").unwrap();
    // No link left: kept as an orphan until released.
    assert_eq!(n.getattr(v, f.ino).unwrap().nlink, 0);
    assert_eq!(n.orphans(v).unwrap(), vec![f.ino]);
    n.release(v, f.ino, 7, 60).unwrap();
    assert!(n.getattr(v, f.ino).is_err());
    n.rmdir(v, ROOT, b"d").unwrap();
    assert_eq!(n.getattr(v, ROOT).unwrap().nlink, 2);
    let s = n
        .mknod(
            v,
            ROOT,
            b"l",
            NewNode { kind: Kind::Symlink, perm: 0, uid: 0, gid: 0, rdev: 0, target: b"/etc/x".to_vec() },
        )
        .unwrap();
    assert_eq!((s.size, n.readlink(v, s.ino).unwrap()), (6, b"/etc/x".to_vec()));
    assert_eq!(n.mknod(v, ROOT, &[b'x'; 256], file(0)).map(|_| ()), Err(MetaError::NameTooLong));
}

#[test]
fn readdir_pages_through_a_large_directory() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    for i in 0..2500 {
        n.mknod(v, ROOT, format!("f{i:05}").as_bytes(), file(0)).unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = n.readdir(v, ROOT, after.as_deref(), 1000).unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().0.clone());
        seen.extend(page.into_iter().map(|(name, _)| name));
    }
    assert_eq!(seen.len(), 2500);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn renames_replace_refuse_exchange_and_never_loop() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    let a = n.mkdir(v, ROOT, b"a", 0o755, 0, 0).unwrap();
    let b = n.mkdir(v, a.ino, b"b", 0o755, 0, 0).unwrap();
    let x = n.mknod(v, ROOT, b"x", file(0)).unwrap();
    let y = n.mknod(v, ROOT, b"y", file(0)).unwrap();
    assert!(matches!(n.rename(v, ROOT, b"a", b.ino, b"a2", RenameMode::Replace), Err(MetaError::Invalid(_))));
    assert_eq!(n.rename(v, ROOT, b"x", ROOT, b"y", RenameMode::NoReplace), Err(MetaError::Exists("y".into())));
    n.rename(v, ROOT, b"x", ROOT, b"y", RenameMode::Exchange).unwrap();
    assert_eq!(n.lookup(v, ROOT, b"y").unwrap().ino, x.ino);
    assert_eq!(n.lookup(v, ROOT, b"x").unwrap().ino, y.ino);
    // Replacing drops the old target (an orphan: it may be open).
    n.rename(v, ROOT, b"x", ROOT, b"y", RenameMode::Replace).unwrap();
    assert_eq!(n.lookup(v, ROOT, b"y").unwrap().ino, y.ino);
    assert!(n.lookup(v, ROOT, b"x").is_err());
    assert_eq!(n.orphans(v).unwrap(), vec![x.ino]);
    // A directory moves with its link counts.
    n.rename(v, a.ino, b"b", ROOT, b"b", RenameMode::Replace).unwrap();
    assert_eq!(n.getattr(v, a.ino).unwrap().nlink, 2);
    assert_eq!(n.getattr(v, ROOT).unwrap().nlink, 4);
    assert_eq!(n.lookup(v, b.ino, b"..").unwrap().ino, ROOT);
    assert_eq!(n.rename(v, ROOT, b"y", ROOT, b"a", RenameMode::Replace), Err(MetaError::IsDir));
    assert_eq!(n.rename(v, ROOT, b"a", ROOT, b"y", RenameMode::Replace), Err(MetaError::NotDir));
    n.rename(v, ROOT, b"b", ROOT, b"a", RenameMode::Replace).unwrap(); // over an empty directory
    assert_eq!(n.getattr(v, ROOT).unwrap().nlink, 3);
}

#[test]
fn content_is_slices_and_truncation_collects_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    let f = n.mknod(v, ROOT, b"f", file(0)).unwrap();
    let s = |offset, len, blob: &str| Slice { offset, len, blob: blob.into(), blob_offset: 0 };
    n.write(v, f.ino, vec![s(0, 100, "A"), s(1000, 100, "B")]).unwrap();
    assert_eq!(n.getattr(v, f.ino).unwrap().size, 1100);
    let (_, pieces) = n.read(v, f.ino, 50, 1000).unwrap();
    assert_eq!(pieces[1], Piece::Hole { len: 900 });
    n.setattr(v, f.ino, SetAttr { size: Some(500), ..Default::default() }).unwrap();
    assert_eq!(n.garbage(i64::MAX, None, 10).unwrap(), vec!["B".to_string()]);
    n.collected(&["B".to_string()]).unwrap();
    assert!(n.garbage(i64::MAX, None, 10).unwrap().is_empty());
    n.setxattr(v, f.ino, b"user.k", b"v", true, false).unwrap();
    assert_eq!(n.setxattr(v, f.ino, b"user.k", b"v", true, false), Err(MetaError::Exists("extended attribute".into())));
    assert_eq!(n.getxattr(v, f.ino, b"user.k").unwrap(), b"v");
    assert_eq!(n.listxattr(v, f.ino).unwrap(), vec![b"user.k".to_vec()]);
    n.removexattr(v, f.ino, b"user.k").unwrap();
    assert_eq!(n.getxattr(v, f.ino, b"user.k"), Err(MetaError::NoAttr));
}

#[test]
fn everything_survives_reopening_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (v, ino) = {
        let n = ns(&dir);
        let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
        let d = n.mkdir(v, ROOT, b"d", 0o755, 0, 0).unwrap();
        (v, n.mknod(v, d.ino, b"f", file(7)).unwrap().ino)
    };
    let n = ns(&dir);
    let d = n.lookup(v, ROOT, b"d").unwrap();
    assert_eq!(n.lookup(v, d.ino, b"f").unwrap().ino, ino);
    // New inode numbers continue past the old ones.
    assert!(n.mknod(v, ROOT, b"g", file(0)).unwrap().ino > ino);
}

#[test]
fn open_unlinked_files_live_while_a_mount_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    let (a, b) = (n.mknod(v, ROOT, b"a", file(0)).unwrap().ino, n.mknod(v, ROOT, b"b", file(0)).unwrap().ino);
    n.write(v, b, vec![Slice { offset: 0, len: 3, blob: "g1/M00/00/00/b".into(), blob_offset: 0 }]).unwrap();
    n.unlink(v, ROOT, b"a").unwrap();
    n.unlink(v, ROOT, b"b").unwrap();
    // Mounts 1 and 2 hold `a`; mount 3 holds `b` and then dies.
    n.keep_open(v, 1, &[a]).unwrap();
    n.keep_open(v, 2, &[a]).unwrap();
    n.keep_open(v, 3, &[b]).unwrap();
    n.release(v, a, 1, 60).unwrap();
    assert!(n.getattr(v, a).is_ok(), "mount 2 still holds it");
    let now = cairn_meta::Time::now().secs;
    assert_eq!(n.sweep(now, 60, 100).unwrap(), (0, 0), "nothing expired yet");
    // A lease later nobody has said anything: both go, b's blob to the collector.
    assert_eq!(n.sweep(now + 61, 60, 100).unwrap().0, 2);
    assert!(n.getattr(v, a).is_err() && n.getattr(v, b).is_err());
    assert!(n.orphans(v).unwrap().is_empty());
    assert_eq!(n.garbage(i64::MAX, None, 10).unwrap(), vec!["g1/M00/00/00/b".to_string()]);
    assert_eq!(n.check(v).unwrap().1, Vec::<String>::new());
}

#[test]
fn a_tagged_change_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    n.tagged(9, 1, || n.mknod(v, ROOT, b"f", file(0))).unwrap();
    // The same change again (a retry): refused as applied, nothing changes.
    assert_eq!(n.tagged(9, 1, || n.mknod(v, ROOT, b"f", file(0))).map(|_| ()), Err(MetaError::AlreadyApplied));
    assert_eq!(n.tagged(9, 2, || n.unlink(v, ROOT, b"f")), Ok(()));
    assert_eq!(n.tagged(9, 2, || n.unlink(v, ROOT, b"f")), Err(MetaError::AlreadyApplied));
    // A failed change leaves no tag: its retry runs (and fails the same way).
    assert!(n.tagged(9, 3, || n.unlink(v, ROOT, b"nope")).is_err());
    assert!(matches!(n.tagged(9, 3, || n.unlink(v, ROOT, b"nope")), Err(MetaError::NotFound(_))));
    // Untagged changes are unaffected; old tags are forgotten.
    n.mknod(v, ROOT, b"g", file(0)).unwrap();
    assert_eq!(n.sweep(cairn_meta::Time::now().secs + 601, 60, 100).unwrap().1, 2);
}

#[test]
fn check_finds_a_consistent_namespace_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    let d = n.mkdir(v, ROOT, b"d", 0o755, 0, 0).unwrap();
    let e = n.mkdir(v, d.ino, b"e", 0o755, 0, 0).unwrap();
    let f = n.mknod(v, e.ino, b"f", file(0)).unwrap();
    n.link(v, f.ino, ROOT, b"f2").unwrap();
    n.rename(v, d.ino, b"e", ROOT, b"e2", RenameMode::Replace).unwrap();
    let (examined, problems) = n.check(v).unwrap();
    assert_eq!(problems, Vec::<String>::new());
    // 4 inodes (root, d, e, f) and 4 entries (d, e2, f, f2).
    assert_eq!(examined, 8);
}

#[test]
fn compaction_keeps_slices_written_during_the_merge_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    let f = n.mknod(v, ROOT, b"f", file(0)).unwrap().ino;
    let sl = |offset, len, blob: &str| Slice { offset, len, blob: blob.into(), blob_offset: 0 };
    n.write(v, f, vec![sl(0, 4, "a"), sl(4, 4, "b")]).unwrap();
    let (_, expected) = n.slices(v, f).unwrap();
    // Written while the compactor merged a+b into m.
    n.write(v, f, vec![sl(2, 1, "c")]).unwrap();
    assert!(n.compact(v, f, &expected, vec![sl(0, 8, "m")]).unwrap());
    assert_eq!(n.slices(v, f).unwrap().1, vec![sl(0, 8, "m"), sl(2, 1, "c")]);
    let mut gone = n.garbage(i64::MAX, None, 10).unwrap();
    gone.sort();
    assert_eq!(gone, vec!["a".to_string(), "b".to_string()]);
    // A truncate since the merge voids it.
    let (_, expected) = n.slices(v, f).unwrap();
    n.setattr(v, f, SetAttr { size: Some(5), ..Default::default() }).unwrap();
    assert!(!n.compact(v, f, &expected, vec![sl(0, 8, "z")]).unwrap());
}

#[test]
fn the_garbage_queue_is_read_in_batches_past_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    let f = n.mknod(v, ROOT, b"f", file(0)).unwrap();
    // 2,500 blobs, more than a page of the queue; all garbage once truncated away.
    let slices = (0..2500u64)
        .map(|i| Slice { offset: i, len: 1, blob: format!("g1/M00/00/00/{i:05}"), blob_offset: 0 })
        .collect();
    n.write(v, f.ino, slices).unwrap();
    n.setattr(v, f.ino, SetAttr { size: Some(0), ..Default::default() }).unwrap();
    assert!(n.garbage(0, None, 10_000).unwrap().is_empty(), "none queued before time 0");
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = n.garbage(i64::MAX, after.as_deref(), 1000).unwrap();
        seen.extend(batch.iter().cloned());
        if batch.len() < 1000 {
            break;
        }
        after = batch.last().cloned();
    }
    let want: Vec<String> = (0..2500).map(|i| format!("g1/M00/00/00/{i:05}")).collect();
    assert_eq!(seen, want, "every blob once, in order, past each cursor");
    // A blob that cannot be deleted yet does not hide those after it.
    n.collected(&want[1..]).unwrap();
    assert_eq!(n.garbage(i64::MAX, Some(&want[0]), 10).unwrap(), Vec::<String>::new());
    assert_eq!(n.garbage(i64::MAX, None, 10).unwrap(), want[..1].to_vec());
}

#[test]
fn bytes_used_follow_writes_truncates_links_and_frees() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    let used = |n: &Namespace<RedbEngine>| n.stats(v).unwrap().bytes;
    let f = n.mknod(v, ROOT, b"f", file(0)).unwrap();
    n.write(v, f.ino, vec![Slice { offset: 0, len: 1000, blob: "g1/M00/00/00/a".into(), blob_offset: 0 }]).unwrap();
    assert_eq!(used(&n), 1000);
    n.link(v, f.ino, ROOT, b"g").unwrap();
    assert_eq!(used(&n), 1000, "a hard link counts once");
    n.setattr(v, f.ino, SetAttr { size: Some(400), ..Default::default() }).unwrap();
    assert_eq!(used(&n), 400);
    n.mkdir(v, ROOT, b"d", 0o755, 0, 0).unwrap();
    assert_eq!(used(&n), 400, "directories count nothing");
    n.unlink(v, ROOT, b"f").unwrap();
    n.unlink(v, ROOT, b"g").unwrap();
    assert_eq!(used(&n), 400, "unlinked while it may be open: still there");
    n.release(v, f.ino, 7, 60).unwrap();
    assert_eq!(used(&n), 0);
    assert_eq!(n.usage(v).unwrap(), 0);
}

#[test]
fn an_attached_volume_is_deleted_only_with_force_or_once_detached() {
    let dir = tempfile::tempdir().unwrap();
    let n = ns(&dir);
    let v = n.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
    n.attach(v, 42, "mount host:/mnt (pid 1)", 60).unwrap();
    assert_eq!(n.clients(v, 60).unwrap().len(), 1);
    match n.delete_volume("v", false, 60) {
        Err(MetaError::Busy(m)) => assert!(m.contains("mount host:/mnt (pid 1)"), "{m}"),
        other => panic!("{other:?}"),
    }
    n.detach(v, 42).unwrap();
    assert!(n.clients(v, 60).unwrap().is_empty());
    n.delete_volume("v", false, 60).unwrap();
    let w = n.create_volume("w", vec![], DEFAULT_CHUNK).unwrap().id;
    n.attach(w, 43, "gateway", 60).unwrap();
    n.delete_volume("w", true, 60).unwrap();
    assert!(n.attach(w, 43, "gateway", 60).is_err(), "no attaching to a deleted volume");
}

#[test]
fn bytes_used_are_counted_once_for_a_volume_made_before_the_counter() {
    use cairn_meta::{Engine, KvWrite};
    let dir = tempfile::tempdir().unwrap();
    let v = {
        let n = ns(&dir);
        let v = n.create_volume("old", vec![], DEFAULT_CHUNK).unwrap().id;
        for (i, len) in [(0u8, 700u64), (1, 300)] {
            let f = n.mknod(v, ROOT, &[b'f', b'0' + i], file(0)).unwrap();
            n.write(v, f.ino, vec![Slice { offset: 0, len, blob: format!("g1/M00/00/00/{i}"), blob_offset: 0 }])
                .unwrap();
        }
        v
    };
    // As a database written before the counter was kept: no `u` key.
    let engine = RedbEngine::open(&dir.path().join("meta.redb")).unwrap();
    let mut key = vec![b'u'];
    key.extend_from_slice(&v.to_be_bytes());
    engine.write(|w: &mut dyn KvWrite| w.delete(&key)).unwrap();
    let n = Namespace::open(engine).unwrap();
    assert_eq!(n.usage(v).unwrap(), 0);
    n.count_usage_where_missing().unwrap();
    assert_eq!(n.usage(v).unwrap(), 1000);
    n.count_usage_where_missing().unwrap();
    assert_eq!(n.usage(v).unwrap(), 1000, "counted once");
}

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt as _;

use super::*;

fn open(dir: &Path) -> Store {
    open_with(dir, DEFAULT_PACK_MAX)
}

/// `pack_max` 0: every blob in a file of its own.
fn open_with(dir: &Path, pack_max: u64) -> Store {
    Store::open(dir, StoreConfig { group: "g1".into(), store_paths: vec![], policy: PathPolicy::RoundRobin, pack_max })
        .unwrap()
}

/// Both layouts: packed (small blobs) and a file per blob.
const LAYOUTS: [u64; 2] = [DEFAULT_PACK_MAX, 0];

/// Where a blob's byte `at` is on disk, whichever way it is stored.
fn byte_on_disk(store: &Store, id: &FileId, at: u64) -> (std::path::PathBuf, u64) {
    match store.packs[0].open_blob(&id.to_string()).unwrap() {
        Some((_, loc, _)) => (store.packs[0].path_of(&loc), loc.content_at() + at),
        None => (store.paths[0].blob_path(id), at),
    }
}

fn flip(path: &Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 1], at).unwrap();
}

fn spooled(store: &Store, data: &[u8]) -> Spooled {
    let mut s = store.spool(0).unwrap();
    for piece in data.chunks(7000) {
        s.write(piece).unwrap();
    }
    s.finish().unwrap()
}

fn read_all(store: &Store, id: &FileId, offset: u64, len: Option<u64>) -> Result<Vec<u8>> {
    let mut r = store.read(id, offset, len)?;
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk()? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn create_read_ranges_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let content = data(300_000, 1);
    let (id, rec) = store.create(spooled(&store, &content), "jpg", false, vec![]).unwrap();
    assert_eq!(rec.size, 300_000);
    assert_eq!(rec.crc32, crc32fast::hash(&content));
    assert_eq!(id.info().crc32, rec.crc32);
    assert_eq!(id.info().size(), Some(300_000));
    assert_eq!(id.info().source_node, store.node_id());
    assert_eq!(read_all(&store, &id, 0, None).unwrap(), content);
    assert_eq!(read_all(&store, &id, 65_530, Some(20)).unwrap(), &content[65_530..65_550]);
    assert_eq!(read_all(&store, &id, 299_990, Some(100)).unwrap(), &content[299_990..]);
    assert_eq!(read_all(&store, &id, 300_000, None).unwrap(), b"");
    assert!(read_all(&store, &id, 300_001, None).is_err());
    assert_eq!(store.stats().files, 1);
    store.delete(&id, Origin::Local).unwrap();
    assert!(matches!(store.read(&id, 0, None), Err(Error::NotFound(_))));
    assert!(matches!(store.delete(&id, Origin::Local), Err(Error::NotFound(_))));
    store.delete(&id, Origin::Replica).unwrap();
    assert_eq!(store.stats().files, 0);
}

#[test]
fn empty_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (id, _) = store.create(spooled(&store, b""), "", false, vec![]).unwrap();
    assert_eq!(read_all(&store, &id, 0, None).unwrap(), b"");
}

#[test]
fn appender_append_modify_truncate_keep_checksums_right() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut model = data(100_000, 2);
    let (id, _) = store.create(spooled(&store, &model), "log", true, vec![]).unwrap();
    assert!(id.info().is_appender());
    let more = data(70_000, 3);
    assert_eq!(store.append(&id, spooled(&store, &more), None, Origin::Local).unwrap(), 100_000);
    model.extend_from_slice(&more);
    // a replica replaying the same append is a no-op; a wrong size is out of sync
    assert_eq!(store.append(&id, spooled(&store, &more), Some(100_000), Origin::Replica).unwrap(), 100_000);
    assert!(matches!(store.append(&id, spooled(&store, b"x"), Some(5), Origin::Replica), Err(Error::OutOfSync(_))));
    let patch = data(80_000, 4);
    store.modify(&id, 60_000, spooled(&store, &patch), Origin::Local).unwrap();
    model[60_000..140_000].copy_from_slice(&patch);
    let tail = data(50_000, 5);
    store.modify(&id, 150_000, spooled(&store, &tail), Origin::Local).unwrap();
    model.truncate(150_000);
    model.extend_from_slice(&tail);
    assert!(store.modify(&id, 1 << 30, spooled(&store, b"x"), Origin::Local).is_err());
    let rec = store.record(&id).unwrap();
    assert_eq!(rec.size, model.len() as u64);
    assert_eq!(rec.crc32, crc32fast::hash(&model));
    assert_eq!(read_all(&store, &id, 0, None).unwrap(), model);
    store.truncate(&id, 70_001, Origin::Local).unwrap();
    model.truncate(70_001);
    assert_eq!(read_all(&store, &id, 0, None).unwrap(), model);
    store.truncate(&id, 200_000, Origin::Local).unwrap();
    model.resize(200_000, 0);
    assert_eq!(read_all(&store, &id, 0, None).unwrap(), model);
    assert_eq!(store.record(&id).unwrap().crc32, crc32fast::hash(&model));
    let (regular, _) = store.create(spooled(&store, b"abc"), "", false, vec![]).unwrap();
    assert!(matches!(store.truncate(&regular, 1, Origin::Local), Err(Error::NotAppender(_))));
}

#[test]
fn metadata_overwrite_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    let (id, _) = store.create(spooled(&store, b"x"), "", false, vec![kv("b", "1"), kv("a", "2")]).unwrap();
    assert_eq!(store.record(&id).unwrap().meta, vec![kv("a", "2"), kv("b", "1")]);
    store.set_meta(&id, vec![kv("b", "9"), kv("c", "3")], true, Origin::Local).unwrap();
    assert_eq!(store.record(&id).unwrap().meta, vec![kv("a", "2"), kv("b", "9"), kv("c", "3")]);
    store.set_meta(&id, vec![kv("z", "0")], false, Origin::Local).unwrap();
    assert_eq!(store.record(&id).unwrap().meta, vec![kv("z", "0")]);
}

#[test]
fn corruption_is_detected_not_returned() {
    for pack_max in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), pack_max);
        let content = data(200_000, 6);
        let (id, _) = store.create(spooled(&store, &content), "bin", false, vec![]).unwrap();
        let (path, at) = byte_on_disk(&store, &id, 150_000);
        flip(&path, at);
        // the first block still reads; the damaged one does not
        assert_eq!(read_all(&store, &id, 0, Some(1000)).unwrap(), &content[..1000]);
        assert!(matches!(read_all(&store, &id, 0, None), Err(Error::ChecksumMismatch { offset: 131072, .. })));
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), 0);
    let content = data(200_000, 6);
    let (id, _) = store.create(spooled(&store, &content), "bin", false, vec![]).unwrap();
    let path = store.paths[0].blob_path(&id);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..100]).unwrap();
    assert!(matches!(read_all(&store, &id, 0, None), Err(Error::ChecksumMismatch { .. })));
}

#[test]
fn replica_create_is_idempotent_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir.path().join("a"));
    let b = open(&dir.path().join("b"));
    let content = data(1000, 7);
    let (id, rec) = a.create(spooled(&a, &content), "txt", false, vec![]).unwrap();
    b.create_as(spooled(&b, &content), &id, &rec.info(), vec![], Origin::Replica).unwrap();
    b.create_as(spooled(&b, &content), &id, &rec.info(), vec![], Origin::Replica).unwrap();
    assert_eq!(read_all(&b, &id, 0, None).unwrap(), content);
    assert_eq!(b.record(&id).unwrap().info(), rec.info());
    let other = data(1000, 8);
    assert!(b.create_as(spooled(&b, &other), &id, &rec.info(), vec![], Origin::Replica).is_err());
    assert_eq!(b.list().unwrap(), vec![id]);
}

#[test]
fn reopen_keeps_node_id_and_counts_and_refuses_foreign_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (node, id) = {
        let s = open(dir.path());
        let (id, _) = s.create(spooled(&s, b"hello"), "", false, vec![]).unwrap();
        (s.node_id(), id)
    };
    let s = open(dir.path());
    assert_eq!(s.node_id(), node);
    assert_eq!(s.stats().files, 1);
    assert_eq!(s.stats().bytes, 5);
    assert!(s.contains(&id));
    // While it is open, its store path is locked: another store is refused.
    let locked = |other: &Path| {
        Store::open(
            other,
            StoreConfig {
                group: "g1".into(),
                store_paths: vec![dir.path().join("store0")],
                policy: PathPolicy::MostFree,
                pack_max: DEFAULT_PACK_MAX,
            },
        )
    };
    let other = tempfile::tempdir().unwrap();
    assert!(matches!(locked(other.path()), Err(Error::Locked(_))));
    // Closed, its store path still belongs to its node: refused too.
    drop(s);
    let err = Store::open(
        other.path(),
        StoreConfig {
            group: "g1".into(),
            store_paths: vec![dir.path().join("store0")],
            policy: PathPolicy::MostFree,
            pack_max: DEFAULT_PACK_MAX,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Setup { .. }));
}

#[test]
fn wrong_group_or_store_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = FileId::parse("g2/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin").unwrap();
    assert!(matches!(store.read(&id, 0, None), Err(Error::WrongPlace(_))));
    let id = FileId::parse("g1/M05/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin").unwrap();
    assert!(matches!(store.read(&id, 0, None), Err(Error::WrongPlace(_))));
}

#[test]
fn an_abandoned_reservation_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r = store.reserve(spooled(&store, b"gone"), "", false, vec![]).unwrap();
    let id = r.id().clone();
    assert!(!store.contains(&id), "reserved but not committed is invisible");
    drop(r);
    assert!(!store.paths[0].blob_path(&id).exists());
    let r = store.reserve(spooled(&store, b"kept"), "", false, vec![]).unwrap();
    let (id, _) = store.commit(r).unwrap();
    assert_eq!(read_all(&store, &id, 0, None).unwrap(), b"kept");
    assert_eq!(std::fs::read_dir(store.paths[0].tmp_dir()).unwrap().count(), 0, "spools are cleaned up");
}

#[test]
fn deleted_ids_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (id, info) = {
        let store = open(dir.path());
        let (id, rec) = store.create(spooled(&store, b"once"), "", false, vec![]).unwrap();
        store.delete(&id, Origin::Local).unwrap();
        (id, rec.info())
    };
    let store = open(dir.path());
    assert!(store.was_deleted(&id), "the delete survives a restart");
    assert!(store.create_as(spooled(&store, b"once"), &id, &info, vec![], Origin::Replica).is_err());
    assert!(store.replace(spooled(&store, b"once"), &id, &info, vec![], Expect::Any).is_err());
    let (dels, more) = store.binlog().deletes_after(0, 10).unwrap();
    assert_eq!((dels.len(), more), (1, false));
    assert_eq!(dels[0].1, id.to_string());
}

#[test]
fn a_copy_racing_a_delete_never_outlives_it() {
    // A catch-up copies a blob while the primary's delete of it arrives:
    // whichever runs first, the blob must not be there after both.
    for pack_max in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let src = open_with(&dir.path().join("src"), pack_max);
        let dst = std::sync::Arc::new(open_with(&dir.path().join("dst"), pack_max));
        let content = data(3000, 5);
        let blobs: Vec<_> =
            (0..400).map(|_| src.create(spooled(&src, &content), "bin", false, vec![]).unwrap()).collect();
        let ids: Vec<FileId> = blobs.iter().map(|(id, _)| id.clone()).collect();
        let spools: Vec<Spooled> = blobs.iter().map(|_| spooled(&dst, &content)).collect();
        // Both threads start on each blob together.
        let go = std::sync::Arc::new(std::sync::Barrier::new(2));
        let deleter = {
            let (dst, ids, go) = (dst.clone(), ids.clone(), go.clone());
            std::thread::spawn(move || {
                for id in &ids {
                    go.wait();
                    dst.delete(id, Origin::Replica).unwrap();
                }
            })
        };
        for ((id, rec), spool) in blobs.iter().zip(spools) {
            go.wait();
            // Refused once the tombstone is there; that is the point.
            let _ = dst.replace(spool, id, &rec.info(), vec![], Expect::Absent);
        }
        deleter.join().unwrap();
        let back: Vec<_> = ids.iter().filter(|id| dst.contains(id)).collect();
        assert!(back.is_empty(), "pack_max {pack_max}: deleted blobs came back: {back:?}");
    }
}

#[test]
fn replace_mends_a_damaged_blob() {
    for pack_max in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), pack_max);
        let content = data(100_000, 9);
        let (id, rec) = store.create(spooled(&store, &content), "", false, vec![]).unwrap();
        let (path, at) = byte_on_disk(&store, &id, 70_000);
        flip(&path, at);
        assert!(read_all(&store, &id, 0, None).is_err());
        store.replace(spooled(&store, &content), &id, &rec.info(), vec![], Expect::Any).unwrap();
        assert_eq!(read_all(&store, &id, 0, None).unwrap(), content);
        drop(store);
        let store = open_with(dir.path(), pack_max);
        assert_eq!(read_all(&store, &id, 0, None).unwrap(), content, "the mended copy is what a restart finds");
        assert_eq!(store.stats().files, 1);
    }
}

#[test]
fn a_blob_under_repair_never_goes_missing_for_a_reader() {
    for pack_max in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_with(dir.path(), pack_max));
        let content = data(20_000, 5);
        let (id, rec) = store.create(spooled(&store, &content), "", false, vec![]).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, id, done, content) = (store.clone(), id.clone(), done.clone(), content.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    assert!(store.contains(&id), "the blob went missing during a repair");
                    assert!(store.list().unwrap().contains(&id), "the listing lost the blob during a repair");
                    assert_eq!(read_all(&store, &id, 0, None).unwrap(), content);
                    reads += 1;
                }
                reads
            })
        };
        for _ in 0..200 {
            store.replace(spooled(&store, &content), &id, &rec.info(), vec![], Expect::Any).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(store.stats().files, 1, "a repair replaces a blob, it does not add one");
        assert_eq!(store.stats().bytes, 20_000);
    }
}

#[test]
fn a_repair_moves_a_loose_blob_into_a_pack_and_a_restart_finds_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let content = data(30_000, 6);
    let (id, rec) = {
        let store = open_with(dir.path(), 0);
        store.create(spooled(&store, &content), "", false, vec![]).unwrap()
    };
    let store = open_with(dir.path(), DEFAULT_PACK_MAX);
    store.replace(spooled(&store, &content), &id, &rec.info(), vec![], Expect::Any).unwrap();
    assert!(store.is_packed(&id));
    assert!(!store.paths[0].blob_path(&id).exists() && !store.paths[0].record_path(&id).exists());
    drop(store);
    let store = open_with(dir.path(), DEFAULT_PACK_MAX);
    assert_eq!(read_all(&store, &id, 0, None).unwrap(), content);
    assert_eq!(store.stats().files, 1);
}

#[test]
fn uploads_named_but_not_committed_are_found_at_open_and_discard_leaves_a_tombstone() {
    for pack_max in LAYOUTS {
        named_but_not_committed(pack_max);
    }
}

fn named_but_not_committed(pack_max: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (pending, lost_record) = {
        let store = open_with(dir.path(), 0);
        let reserved = store.reserve(spooled(&store, &data(5000, 3)), "txt", false, vec![]).unwrap();
        let pending = reserved.id().clone();
        // A process killed here leaves the name linked and no record.
        std::mem::forget(reserved);
        let (committed, _) = store.create(spooled(&store, &data(100, 4)), "txt", false, vec![]).unwrap();
        // A committed blob whose record is lost is damage, not a pending upload.
        let sp = store.place(&committed).unwrap();
        std::fs::remove_file(sp.record_path(&committed)).unwrap();
        (pending, committed)
    };
    let store = open_with(dir.path(), pack_max);
    let (pending, lost_record) = if pack_max == 0 {
        // One process per data directory: closed before it is opened again.
        drop(store);
        (pending, lost_record)
    } else {
        // The same with packs: a reservation without its put.
        for id in store.take_unfinished() {
            store.discard(&id, Origin::Local).unwrap();
        }
        let reserved = store.reserve(spooled(&store, &data(5000, 3)), "txt", false, vec![]).unwrap();
        let pending = reserved.id().clone();
        std::mem::forget(reserved);
        drop(store);
        (pending, lost_record)
    };
    let store = open_with(dir.path(), pack_max);
    let found = store.take_unfinished();
    // The name went into the binlog before anyone could learn it, so the
    // node's reconcile finds it there and settles it with the group.
    let logged = store.binlog().mentioned(&[pending.to_string()].into()).unwrap();
    assert!(logged.contains(&pending.to_string()), "a reserved name is logged");
    if pack_max == 0 {
        // A linked name without a record may also be a committed blob
        // whose record was lost: left to the reconcile, which asks the
        // group, not discarded unasked.
        assert!(found.is_empty(), "{found:?}");
    } else {
        // A pack reservation is never a committed blob.
        assert_eq!(found, vec![pending.clone()]);
    }
    assert!(!found.contains(&lost_record));
    assert!(store.take_unfinished().is_empty(), "taken once");
    store.discard(&pending, Origin::Local).unwrap();
    assert!(store.was_deleted(&pending));
    assert!(!store.contains_any(&pending));
    // Absent everywhere, a discard still succeeds and leaves its tombstone.
    let (other, _) = store.create(spooled(&store, &data(10, 5)), "txt", false, vec![]).unwrap();
    store.delete(&other, Origin::Local).unwrap();
    assert!(store.delete(&other, Origin::Local).is_err());
    store.discard(&other, Origin::Local).unwrap();
}

/// A change made here is logged before it is applied: a process killed
/// between the two (here: a change that fails half-way, its content file
/// gone) leaves a line for the node's reconcile to settle with its peers,
/// never a change that no line names. A peer's forwarded change is logged
/// once applied.
#[test]
fn a_change_made_here_is_logged_before_it_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), 0);
    let lines = |store: &Store, id: &FileId| -> Vec<bool> {
        let (entries, _, _) = store.binlog().tail(0, 0, 1000).unwrap();
        entries.iter().filter(|e| e.file_id == id.to_string()).map(|e| e.here).collect()
    };
    let (id, _) = store.create(spooled(&store, &data(1000, 1)), "log", true, vec![]).unwrap();
    assert_eq!(lines(&store, &id), vec![true]);
    std::fs::remove_file(store.paths[0].blob_path(&id)).unwrap();
    assert!(store.append(&id, spooled(&store, &data(10, 2)), None, Origin::Local).is_err());
    assert!(store.modify(&id, 0, spooled(&store, &data(10, 3)), Origin::Local).is_err());
    assert!(store.truncate(&id, 5, Origin::Local).is_err());
    assert_eq!(lines(&store, &id), vec![true; 4], "append, modify and truncate logged although they failed");
    assert!(store.append(&id, spooled(&store, &data(10, 2)), Some(1000), Origin::Replica).is_err());
    assert_eq!(lines(&store, &id).len(), 4, "a peer's change that failed is not logged");
    // A name is logged as soon as it is reserved, before the peers hear it.
    let reserved = store.reserve(spooled(&store, &data(500, 4)), "log", false, vec![]).unwrap();
    let named = reserved.id().clone();
    std::mem::forget(reserved);
    assert_eq!(lines(&store, &named), vec![true]);
}

#[test]
fn a_removed_mark_holds_at_once_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(!store.is_removed());
    store.mark_removed().unwrap();
    assert!(store.is_removed(), "kept in memory once written");
    drop(store);
    assert!(open(dir.path()).is_removed(), "read back from the data directory at open");
}

/// Every file under `dir`, with its content.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn a_delete_stays_done_when_a_crash_undid_all_but_its_binlog_line() {
    // A delete is durable by its binlog line alone: the pack tombstone and
    // the unlinks are not synced. Here every file of the store path is put
    // back as it was before the delete (what a crash may leave), the
    // binlog keeps the line, and the blob must stay deleted, twice over.
    for pack_max in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let content = data(100_000, 3);
        let (gone, kept) = {
            let store = open_with(dir.path(), pack_max);
            let (gone, _) = store.create(spooled(&store, &content), "bin", false, vec![]).unwrap();
            let (kept, _) = store.create(spooled(&store, &content), "bin", false, vec![]).unwrap();
            let before = snapshot(&dir.path().join("store0"));
            store.delete(&gone, Origin::Local).unwrap();
            assert!(!store.contains_any(&gone));
            drop(store);
            for (path, bytes) in before {
                std::fs::write(path, bytes).unwrap();
            }
            (gone, kept)
        };
        for reopening in 0..2 {
            let store = open_with(dir.path(), pack_max);
            let what = format!("pack_max {pack_max}, reopening {reopening}");
            assert!(store.was_deleted(&gone), "{what}");
            assert!(!store.contains_any(&gone), "{what}: the deleted blob is back");
            assert!(matches!(read_all(&store, &gone, 0, None), Err(Error::NotFound(_))), "{what}");
            assert_eq!(store.list().unwrap(), vec![kept.clone()], "{what}: listed for a peer's catch-up");
            assert_eq!((store.stats().files, store.stats().bytes), (1, 100_000), "{what}");
            assert!(!store.paths[0].blob_path(&gone).exists(), "{what}: its file is unlinked at open");
            assert_eq!(read_all(&store, &kept, 0, None).unwrap(), content, "{what}");
            let info = info_of(&store, &kept);
            assert!(store.replace(spooled(&store, &content), &gone, &info, vec![], Expect::Any).is_err(), "{what}");
        }
    }
}

fn info_of(store: &Store, id: &FileId) -> BlobInfo {
    store.record(id).unwrap().info()
}

#[test]
fn concurrent_deletes_each_leave_their_line_and_stay_deleted() {
    for pack_max in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(open_with(dir.path(), pack_max));
        let ids: Vec<FileId> = (0..160)
            .map(|i| store.create(spooled(&store, &data(5000, i as u8)), "", false, vec![]).unwrap().0)
            .collect();
        let threads: Vec<_> = ids
            .chunks(20)
            .enumerate()
            .map(|(t, chunk)| {
                let (store, chunk) = (store.clone(), chunk.to_vec());
                // Half the threads delete as the primary, half as a replica.
                let origin = if t % 2 == 0 { Origin::Local } else { Origin::Replica };
                std::thread::spawn(move || chunk.iter().for_each(|id| store.delete(id, origin).unwrap()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(store.stats().files, 0, "pack_max {pack_max}");
        let (dels, more) = store.binlog().deletes_after(0, 1000).unwrap();
        assert_eq!((dels.len(), more), (160, false), "pack_max {pack_max}: one line per delete");
        drop(store);
        let store = open_with(dir.path(), pack_max);
        assert!(ids.iter().all(|id| store.was_deleted(id) && !store.contains_any(id)), "pack_max {pack_max}");
        assert_eq!(store.stats().files, 0, "pack_max {pack_max}");
    }
}

#[test]
fn an_unsynced_delete_is_seen_at_once_and_its_files_wait_in_tmp_until_reclaimed() {
    for pack_max in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), pack_max);
        let (id, _) = store.create(spooled(&store, &data(70_000, 9)), "bin", false, vec![]).unwrap();
        let done = store.delete_unsynced(&id, Origin::Local, false).unwrap();
        assert!(done.line > 0 && done.line <= store.binlog().last_seq(), "pack_max {pack_max}");
        // Before any sync: no reader, listing or copy finds it.
        assert!(matches!(read_all(&store, &id, 0, None), Err(Error::NotFound(_))), "pack_max {pack_max}");
        assert!(store.list().unwrap().is_empty() && store.was_deleted(&id), "pack_max {pack_max}");
        let tmp_files = || std::fs::read_dir(store.paths[0].tmp_dir()).unwrap().count();
        // Packed: nothing to reclaim; loose: record and content set aside.
        assert_eq!((done.set_aside.len(), tmp_files()), if pack_max == 0 { (2, 2) } else { (0, 0) });
        let line = done.line;
        store.binlog().sync_through(line).unwrap();
        done.reclaim();
        assert_eq!(tmp_files(), 0, "pack_max {pack_max}: reclaimed");
        assert!(matches!(store.delete_unsynced(&id, Origin::Local, false), Err(Error::NotFound(_))));
        // A discard or a replica's delete of what is gone still leaves its line.
        let again = store.delete_unsynced(&id, Origin::Replica, false).unwrap();
        assert!(again.line > line, "pack_max {pack_max}");
    }
}

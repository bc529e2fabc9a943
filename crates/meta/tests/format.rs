//! The meta database's stored format (docs/formats/meta.md): a database
//! written by an earlier version opens with this one and holds what it held,
//! and each record type encodes to the bytes its format version fixed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_meta::records::{self, decode, encode, Client, Dirent, Holders, Inode, SliceRef, Time, Volume};
use cairn_meta::{key, Engine, Kind, MetaError, Namespace, RedbEngine, Slice, FORMAT_VERSION, ROOT};

/// A copy of fixture `name` in `dir` (opening writes to a database).
fn fixture(name: &str, dir: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let to = dir.join("meta.redb");
    std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    to
}

fn slice(offset: u64, len: u64, blob: &str) -> Slice {
    Slice { offset, len, blob: blob.into(), blob_offset: 0 }
}

fn blobs(slices: &[Slice]) -> Vec<&str> {
    slices.iter().map(|s| s.blob.as_str()).collect()
}

/// Every kind of record in the database written by the format as it was
/// before it had a version (`examples/write_fixture.rs` at commit cf3a0ad),
/// with its values.
#[test]
fn a_version_1_database_opens_and_holds_every_kind_of_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture("meta-v1.redb", dir.path());
    let engine = RedbEngine::open(&path).unwrap();
    // Read raw, before the namespace stamps it: no version key, so version 1.
    let (version, unlinked_holders) = engine
        .read(|r| {
            assert_eq!(r.get(key::FORMAT)?, None, "the fixture predates the version key");
            let holders = r.scan(b"o", b"p", 10)?;
            assert_eq!(holders.len(), 1);
            Ok((cairn_meta::stored_version(r)?, decode::<Holders>(&holders[0].1)?))
        })
        .unwrap();
    assert_eq!(version, Some(1));
    let ns = Namespace::open(engine).unwrap();
    // Migrated to today's version at open (1 → 2 adds `b`, with nothing to rewrite).
    assert_eq!(ns.format_version().unwrap(), FORMAT_VERSION);

    // `v`, `n`: volumes, and the counter past them.
    let vols = ns.volumes().unwrap();
    let named: Vec<(u32, &str, &[String], u64)> =
        vols.iter().map(|v| (v.id, v.name.as_str(), v.groups.as_slice(), v.chunk_size)).collect();
    assert_eq!(
        named,
        vec![
            (2, "empty", &[][..], 64 << 20),
            (1, "photos", &["group1".to_string(), "group2".to_string()][..], 1 << 20)
        ]
    );
    assert!(vols.iter().all(|v| v.created > 1_700_000_000), "{vols:?}");
    let v = 1;

    // `d` and `i`: every entry of the root, with its kind, and each inode.
    let root: Vec<(String, Kind)> = ns
        .readdir(v, ROOT, None, 100)
        .unwrap()
        .into_iter()
        .map(|(n, d)| (String::from_utf8(n).unwrap(), d.kind))
        .collect();
    let want = [
        ("disk", Kind::BlockDev),
        ("docs", Kind::Dir),
        ("fragmented", Kind::File),
        ("link", Kind::Symlink),
        ("old-inline", Kind::File),
        ("pipe", Kind::Fifo),
        ("report-link", Kind::File),
        ("sock", Kind::Socket),
        ("tagged", Kind::Dir),
        ("truncated", Kind::File),
        ("tty", Kind::CharDev),
    ];
    assert_eq!(root, want.iter().map(|(n, k)| (n.to_string(), *k)).collect::<Vec<_>>());
    let root_attr = ns.getattr(v, ROOT).unwrap();
    assert_eq!((root_attr.kind, root_attr.perm, root_attr.nlink), (Kind::Dir, 0o755, 4), "two subdirectories");
    let docs = ns.lookup(v, ROOT, b"docs").unwrap();
    assert_eq!((docs.perm, docs.uid, docs.gid, docs.nlink), (0o750, 1000, 100, 2));
    let report = ns.lookup(v, docs.ino, b"report.txt").unwrap();
    assert_eq!((report.kind, report.perm, report.size, report.nlink), (Kind::File, 0o640, 4196, 2));
    assert_eq!(ns.lookup(v, ROOT, b"report-link").unwrap().ino, report.ino, "a hard link");
    assert!(report.mtime.secs > 1_700_000_000 && report.crtime <= report.mtime);
    let link = ns.lookup(v, ROOT, b"link").unwrap();
    assert_eq!((link.perm, link.size), (0o777, 15));
    assert_eq!(ns.readlink(v, link.ino).unwrap(), b"docs/report.txt");
    assert_eq!(ns.lookup(v, ROOT, b"tty").unwrap().rdev, (4 << 8) | 1);
    assert_eq!(ns.lookup(v, ROOT, b"disk").unwrap().rdev, (8 << 8) | 16);
    assert_eq!(ns.lookup(v, ROOT, b"pipe").unwrap().perm, 0o600);

    // Extended attributes, in the inode record.
    assert_eq!(ns.getxattr(v, report.ino, b"user.colour").unwrap(), b"blue");
    assert_eq!(ns.getxattr(v, docs.ino, b"user.empty").unwrap(), b"");
    assert_eq!(ns.listxattr(v, report.ino).unwrap(), vec![b"user.colour".to_vec()]);

    // `s`: a file's slices, and what a read of it resolves to.
    let (_, content) = ns.slices(v, report.ino).unwrap();
    assert_eq!(
        content,
        vec![slice(0, 4096, "group1/M00/00/00/first.bin"), slice(4096, 100, "group1/M00/00/01/second.bin")]
    );
    assert_eq!(ns.read(v, report.ino, 4000, 1000).unwrap().1.len(), 2);

    // `k`: the file with many slices waits for the slice merger.
    let fragmented = ns.lookup(v, ROOT, b"fragmented").unwrap();
    assert_eq!(ns.compact_candidates(10).unwrap(), vec![(v, fragmented.ino)]);
    let (_, page, total, generation) = ns.slices_page(v, fragmented.ino, 18, 10).unwrap();
    assert_eq!(
        (blobs(&page), total, generation),
        (vec!["group2/M00/00/02/piece18.bin", "group2/M00/00/02/piece19.bin"], 20, 0)
    );

    // `g`: the blob a truncation dropped waits for the collector.
    assert_eq!(ns.lookup(v, ROOT, b"truncated").unwrap().size, 0);
    assert_eq!(ns.garbage(i64::MAX, None, 10).unwrap(), vec!["group1/M00/00/03/dropped.bin".to_string()]);

    // `o`: the file unlinked while a mount held it open, with its holder.
    let orphans = ns.orphans(v).unwrap();
    assert_eq!(orphans.len(), 1);
    let held = ns.getattr(v, orphans[0]).unwrap();
    assert_eq!((held.nlink, held.size), (0, 7));
    assert_eq!(blobs(&ns.slices(v, held.ino).unwrap().1), ["group1/M00/00/04/held.bin"]);
    assert_eq!(unlinked_holders.sessions.keys().copied().collect::<Vec<_>>(), vec![0x5e55]);
    assert!(unlinked_holders.last_seen() >= unlinked_holders.since);

    // `r`: the tagged change is not applied again.
    let again = ns.tagged(0x5e55, 42, || ns.mkdir(v, ROOT, b"tagged-again", 0o755, 0, 0));
    assert_eq!(again.unwrap_err(), MetaError::AlreadyApplied);

    // `m`: the mount attached to the volume.
    let ten_years = 10 * 365 * 86_400;
    let clients = ns.clients(v, ten_years).unwrap();
    let attached: Vec<(u64, &str)> = clients.iter().map(|c| (c.session, c.what.as_str())).collect();
    assert_eq!(attached, vec![(0x5e55, "mount host:/mnt/photos (pid 4121)")]);

    // An inode written before slices had their own key: still inline.
    let old = ns.lookup(v, ROOT, b"old-inline").unwrap();
    assert_eq!(old.size, 500);
    assert_eq!(
        blobs(&ns.slices(v, old.ino).unwrap().1),
        ["group1/M00/00/05/inline-a.bin", "group1/M00/00/05/inline-b.bin"]
    );

    // `u`: bytes of the volume's files (the unlinked one counts until freed).
    assert_eq!(ns.usage(v).unwrap(), 4196 + 20 * 10 + 7 + 500);
    // `c`: 13 inodes were allocated; the next is 14.
    assert_eq!(ns.stats(v).unwrap().inodes, 13);
    let node = cairn_meta::NewNode { kind: Kind::File, perm: 0o644, uid: 0, gid: 0, rdev: 0, target: vec![] };
    assert_eq!(ns.mknod(v, ROOT, b"new", node).unwrap().ino, 14);
    // And the next volume is 3.
    assert_eq!(ns.create_volume("third", vec![], 1 << 20).unwrap().id, 3);

    assert_eq!(ns.check(v).unwrap().1, Vec::<String>::new());
    drop(ns);
    // Stamped with the version it was found in, migrated, and opened again as such.
    let engine = RedbEngine::open(&path).unwrap();
    assert_eq!(engine.read(|r| r.get(key::FORMAT)).unwrap(), Some(encode(&FORMAT_VERSION).unwrap()));
    assert_eq!(Namespace::open(engine).unwrap().lookup(v, ROOT, b"new").unwrap().ino, 14);
}

/// Each record of the version 1 fixture decodes as its stored type and
/// encodes back to the same bytes: the stored types are today's format.
#[test]
fn every_record_of_the_version_1_fixture_encodes_back_to_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RedbEngine::open(&fixture("meta-v1.redb", dir.path())).unwrap();
    let all = engine.read(|r| r.scan(&[], &[0xFF], usize::MAX)).unwrap();
    fn again<T: serde::Serialize + serde::de::DeserializeOwned>(raw: &[u8]) -> Vec<u8> {
        encode(&decode::<T>(raw).unwrap()).unwrap()
    }
    let mut seen = BTreeMap::<u8, usize>::new();
    for (k, raw) in &all {
        let back = match k[0] {
            b'v' => again::<Volume>(raw),
            b'i' => again::<Inode>(raw),
            b's' => again::<(u64, Vec<records::Slice>)>(raw),
            b'd' => again::<Dirent>(raw),
            b'o' => again::<Holders>(raw),
            b'm' => again::<Client>(raw),
            b'n' => again::<u32>(raw),
            b'c' | b'u' => again::<u64>(raw),
            b'r' | b'g' => again::<i64>(raw),
            b'k' => raw.clone(),
            other => panic!("a record under an unknown tag {:?}", other as char),
        };
        assert_eq!(&back, raw, "record {k:?}");
        *seen.entry(k[0]).or_default() += 1;
    }
    let tags: String = seen.keys().map(|&t| t as char).collect();
    assert_eq!(tags, "cdgikmnorsuv", "every kind of record is in the fixture");
}

/// The bytes of each stored record type, fixed by format version 1. A
/// change to a record type (or to a wire type it was once shared with)
/// that changes them fails here: it needs a new format version.
#[test]
fn each_record_type_encodes_to_the_bytes_of_version_1() {
    let t = Time { secs: 1_700_000_000, nanos: 5 };
    let attr = records::Attr {
        ino: 3,
        kind: records::Kind::File,
        perm: 0o640,
        uid: 1000,
        gid: 100,
        size: 300,
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        nlink: 1,
        rdev: 0,
    };
    let time = [0x80, 0xc4, 0x9f, 0xd5, 0x0c, 0x05]; // zigzag varint secs, varint nanos
    let attr_bytes =
        [[3, 0, 0xa0, 0x03, 0xe8, 0x07, 100, 0xac, 0x02].as_slice(), &time, &time, &time, &time, &[1, 0]].concat();
    assert_eq!(encode(&attr).unwrap(), attr_bytes);
    let kinds = [
        records::Kind::File,
        records::Kind::Dir,
        records::Kind::Symlink,
        records::Kind::Fifo,
        records::Kind::Socket,
        records::Kind::CharDev,
        records::Kind::BlockDev,
    ];
    for (i, k) in kinds.into_iter().enumerate() {
        assert_eq!(encode(&k).unwrap(), [i as u8], "{k:?}");
    }
    let s = records::Slice { offset: 4096, len: 10, blob: "g/M".into(), blob_offset: 1 };
    let slice_bytes = [0x80, 0x20, 10, 3, b'g', b'/', b'M', 1];
    assert_eq!(encode(&s).unwrap(), slice_bytes);
    let borrowed = SliceRef { offset: 4096, len: 10, blob: "g/M", blob_offset: 1 };
    assert_eq!(encode(&borrowed).unwrap(), slice_bytes, "the borrowed form is the same record");
    assert_eq!(encode(&(7u64, vec![s.clone()])).unwrap(), [[7, 1].as_slice(), &slice_bytes].concat());

    let inode = Inode {
        attr: attr.clone(),
        parent: 1,
        target: b"t".to_vec(),
        slices: vec![s],
        xattrs: [(b"user.a".to_vec(), b"b".to_vec())].into_iter().collect(),
    };
    let inode_bytes = [&attr_bytes[..], &[1, 1, b't', 1], &slice_bytes, &[1, 6], b"user.a", &[1, b'b']].concat();
    assert_eq!(encode(&inode).unwrap(), inode_bytes);

    let vol = Volume { id: 1, name: "v".into(), groups: vec!["g1".into()], chunk_size: 1 << 20, created: 2 };
    assert_eq!(encode(&vol).unwrap(), [1, 1, b'v', 1, 2, b'g', b'1', 0x80, 0x80, 0x40, 2]);
    let dirent = Dirent { ino: 300, kind: records::Kind::Symlink };
    assert_eq!(encode(&dirent).unwrap(), [0xac, 0x02, 2]);
    let holders = Holders { since: -1, sessions: [(2, 3)].into_iter().collect() };
    assert_eq!(encode(&holders).unwrap(), [1, 1, 2, 6]);
    let client = Client { session: 2, what: "m".into(), last_seen: 1 };
    assert_eq!(encode(&client).unwrap(), [2, 1, b'm', 2]);
    assert_eq!(encode(&1u32).unwrap(), [1]);
    assert_eq!(encode(&FORMAT_VERSION).unwrap(), [2]);
}

/// Version 2 adds `b`: how many more files than one hold a blob that a
/// server-side copy shares. Its fixture (`examples/write_fixture.rs` at the
/// commit that added it) has a copy of the report, and the shared blobs
/// outlive the original.
#[test]
fn a_version_2_database_keeps_blobs_shared_by_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RedbEngine::open(&fixture("meta-v2.redb", dir.path())).unwrap();
    let (version, shared) = engine
        .read(|r| {
            let shared: Vec<(String, u64)> = r
                .scan(b"b", b"c", 10)?
                .into_iter()
                .map(|(k, v)| Ok((String::from_utf8_lossy(&k[1..]).into_owned(), decode::<u64>(&v)?)))
                .collect::<Result<_, MetaError>>()?;
            Ok((cairn_meta::stored_version(r)?, shared))
        })
        .unwrap();
    assert_eq!(version, Some(2));
    let blobs_of_report = ["group1/M00/00/00/first.bin", "group1/M00/00/01/second.bin"];
    assert_eq!(shared, blobs_of_report.iter().map(|b| (b.to_string(), 1)).collect::<Vec<_>>());
    let ns = Namespace::open(engine).unwrap();
    let v = ns.volume("photos").unwrap().id;
    let docs = ns.lookup(v, ROOT, b"docs").unwrap().ino;
    let report = ns.lookup(v, docs, b"report.txt").unwrap().ino;
    let copy = ns.lookup(v, docs, b"report-copy.txt").unwrap().ino;
    assert_eq!(ns.slices(v, copy).unwrap().1, ns.slices(v, report).unwrap().1);
}

//! The file-system layer's path API (what the S3, WebDAV and HTTP
//! gateways speak), used in-process over a real tracker, storage node and
//! meta service: permissions as the kernel checks them, listings in pages,
//! atomic replace, server-side copy, uploads cut off.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cairn_client::Client;
use cairn_fs::{Caller, Fs, PathFs, PutOptions, VolPath};
use cairn_proto::meta::{Kind, NewNode};
use cairn_proto::Errno;
use futures::StreamExt;
use tokio::io::{AsyncRead, ReadBuf};

use crate::common::{content, listing, rt, Cluster};

const ALICE: Caller = Caller { uid: 1000, gid: 1000, groups: Vec::new() };
const BOB: Caller = Caller { uid: 1001, gid: 1001, groups: Vec::new() };

/// A cluster of one storage node and a meta service (with `meta_flags`),
/// a volume `v`, and its path API in this process.
struct Env {
    c: Cluster,
    client: Client,
    rt: tokio::runtime::Runtime,
    paths: PathFs,
}

fn env(meta_flags: &[&str]) -> Env {
    let mut c = Cluster::start(1, &[("g1", 1)]);
    c.add_meta_with(meta_flags);
    c.ok(&["volume", "create", "v", "--groups", "g1"]);
    let rt = rt();
    let fs = rt.block_on(Fs::open(c.meta_client(0), Arc::new(c.client()), "v")).expect("open the volume");
    let fs = Arc::new(fs);
    rt.block_on(Fs::attach(&fs, "path API test".into())).expect("attach");
    let client = c.client();
    Env { c, client, rt, paths: PathFs::new(fs) }
}

fn p(path: &str) -> VolPath {
    VolPath::parse(path).expect("a valid path")
}

impl Env {
    fn put(&self, who: &Caller, path: &str, data: &[u8]) -> Result<(), Errno> {
        self.rt.block_on(self.paths.put(who, &p(path), data, &PutOptions::default())).map(drop).map_err(|e| e.errno)
    }

    fn read(&self, who: &Caller, path: &str) -> Result<Vec<u8>, Errno> {
        self.rt.block_on(async {
            let (_, mut s) = self.paths.read(who, &p(path), 0, None).await.map_err(|e| e.errno)?;
            let mut out = Vec::new();
            while let Some(chunk) = s.next().await {
                out.extend_from_slice(&chunk.map_err(|e| e.errno)?);
            }
            Ok(out)
        })
    }

    fn delete(&self, who: &Caller, path: &str) -> Result<(), Errno> {
        self.rt.block_on(self.paths.delete(who, &p(path))).map_err(|e| e.errno)
    }

    fn rename(&self, who: &Caller, from: &str, to: &str) -> Result<(), Errno> {
        self.rt.block_on(self.paths.rename(who, &p(from), &p(to), true)).map_err(|e| e.errno)
    }

    fn mkdir(&self, who: &Caller, path: &str, perm: u32) -> Result<(), Errno> {
        self.rt.block_on(self.paths.mkdir_all(who, &p(path), perm)).map(drop).map_err(|e| e.errno)
    }

    fn chmod(&self, who: &Caller, path: &str, perm: u32) -> Result<(), Errno> {
        self.rt.block_on(self.paths.chmod(who, &p(path), perm)).map(drop).map_err(|e| e.errno)
    }

    fn chown(&self, who: &Caller, path: &str, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
        self.rt.block_on(self.paths.chown(who, &p(path), uid, gid)).map(drop).map_err(|e| e.errno)
    }

    fn exists(&self, path: &str) -> bool {
        match self.rt.block_on(self.paths.stat(&Caller::root(), &p(path))) {
            Ok(_) => true,
            Err(e) if e.errno == Errno::ENOENT => false,
            Err(e) => panic!("stat {path}: {e}"),
        }
    }

    /// Blobs on the storage node.
    fn blobs(&self) -> usize {
        listing(&self.c, &self.client, 0).len()
    }

    /// Waits until the node holds `n` blobs.
    fn wait_blobs(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.blobs();
            if now == n {
                return;
            }
            assert!(Instant::now() < deadline, "the node holds {now} blobs, not {n}, after {limit:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the volume's files hold `bytes` (a deleted file is
    /// freed once its lease has run out).
    fn wait_used(&self, bytes: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let used = self.rt.block_on(self.paths.fs().statfs()).expect("statfs").used;
            if used == bytes {
                return;
            }
            assert!(Instant::now() < deadline, "the volume holds {used} bytes, not {bytes}, after {limit:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn assert_consistent(&self) {
        let out = self.c.ok(&["volume", "check", "v"]);
        assert!(out.contains(" 0 problems"), "{out}");
    }
}

#[test]
fn a_caller_without_write_permission_on_a_directory_cannot_change_its_names() {
    let e = env(&[]);
    let root = Caller::root();
    e.mkdir(&root, "home/alice", 0o755).unwrap();
    e.chown(&root, "home/alice", Some(ALICE.uid), Some(ALICE.gid)).unwrap();
    e.put(&ALICE, "home/alice/notes.txt", b"mine").unwrap();
    e.mkdir(&ALICE, "home/alice/sub", 0o755).unwrap();

    // Bob may look (0755) but not change anything in the directory.
    assert_eq!(e.read(&BOB, "home/alice/notes.txt").unwrap(), b"mine");
    assert_eq!(e.put(&BOB, "home/alice/bobs.txt", b"x"), Err(Errno::EACCES));
    assert_eq!(e.put(&BOB, "home/alice/notes.txt", b"replaced"), Err(Errno::EACCES));
    assert_eq!(e.delete(&BOB, "home/alice/notes.txt"), Err(Errno::EACCES));
    assert_eq!(e.delete(&BOB, "home/alice/sub"), Err(Errno::EACCES));
    assert_eq!(e.rename(&BOB, "home/alice/notes.txt", "home/alice/moved.txt"), Err(Errno::EACCES));
    assert_eq!(e.mkdir(&BOB, "home/alice/new", 0o755), Err(Errno::EACCES));
    // Out of it into a directory Bob may write: still needs write on the source's.
    e.mkdir(&root, "tmp", 0o777).unwrap();
    e.chmod(&root, "tmp", 0o777).unwrap();
    assert_eq!(e.rename(&BOB, "home/alice/notes.txt", "tmp/stolen.txt"), Err(Errno::EACCES));
    // Nor copy into Alice's directory, though he may read the source.
    assert_eq!(
        e.rt.block_on(e.paths.copy(&BOB, &p("home/alice/notes.txt"), &p("home/alice/copy"))).unwrap_err().errno,
        Errno::EACCES
    );
    assert!(e.rt.block_on(e.paths.copy(&BOB, &p("home/alice/notes.txt"), &p("tmp/copy"))).is_ok());
    assert_eq!(e.read(&BOB, "tmp/copy").unwrap(), b"mine");

    // Without search permission the names below cannot even be reached.
    e.chmod(&ALICE, "home/alice", 0o700).unwrap();
    assert_eq!(e.read(&BOB, "home/alice/notes.txt"), Err(Errno::EACCES));
    assert_eq!(e.rt.block_on(e.paths.stat(&BOB, &p("home/alice/sub"))).unwrap_err().errno, Errno::EACCES);
    let listed = e.rt.block_on(e.paths.list(&BOB, &p("home/alice"), b"", None, 100));
    assert_eq!(listed.unwrap_err().errno, Errno::EACCES);

    // Alice, the owner, and root may do all of it; nothing else changed.
    e.rename(&ALICE, "home/alice/notes.txt", "home/alice/moved.txt").unwrap();
    e.put(&ALICE, "home/alice/moved.txt", b"again").unwrap();
    e.delete(&root, "home/alice/sub").unwrap();
    let names: Vec<Vec<u8>> =
        e.rt.block_on(e.paths.list(&ALICE, &p("home/alice"), b"", None, 100))
            .unwrap()
            .entries
            .into_iter()
            .map(|l| l.name)
            .collect();
    assert_eq!(names, [b"moved.txt".to_vec()]);
    assert_eq!(e.read(&ALICE, "home/alice/moved.txt").unwrap(), b"again");
    e.assert_consistent();
}

#[test]
fn in_a_sticky_directory_only_the_owners_and_root_remove_or_rename() {
    let e = env(&[]);
    let root = Caller::root();
    e.mkdir(&root, "tmp", 0o777).unwrap();
    e.chmod(&root, "tmp", 0o1777).unwrap();
    e.put(&ALICE, "tmp/alice.txt", b"a").unwrap();
    e.put(&BOB, "tmp/bob.txt", b"b").unwrap();

    assert_eq!(e.delete(&BOB, "tmp/alice.txt"), Err(Errno::EPERM));
    assert_eq!(e.rename(&BOB, "tmp/alice.txt", "tmp/mine.txt"), Err(Errno::EPERM));
    assert_eq!(e.rename(&BOB, "tmp/bob.txt", "tmp/alice.txt"), Err(Errno::EPERM), "replacing hers");
    assert_eq!(e.put(&BOB, "tmp/alice.txt", b"overwritten"), Err(Errno::EPERM));
    assert_eq!(e.read(&BOB, "tmp/alice.txt").unwrap(), b"a");

    e.rename(&BOB, "tmp/bob.txt", "tmp/bob2.txt").unwrap();
    e.delete(&BOB, "tmp/bob2.txt").unwrap();
    e.rename(&ALICE, "tmp/alice.txt", "tmp/alice2.txt").unwrap();
    e.put(&BOB, "tmp/bob.txt", b"b").unwrap();
    e.delete(&root, "tmp/bob.txt").unwrap();

    // Without the sticky bit, write permission on the directory is enough.
    e.chmod(&root, "tmp", 0o777).unwrap();
    e.delete(&BOB, "tmp/alice2.txt").unwrap();
    assert!(!e.exists("tmp/alice2.txt"));
    e.assert_consistent();
}

#[test]
fn only_the_owner_or_root_changes_a_mode_or_an_owner() {
    let e = env(&[]);
    let root = Caller::root();
    e.mkdir(&root, "pub", 0o777).unwrap();
    e.chmod(&root, "pub", 0o777).unwrap();
    e.put(&ALICE, "pub/f", b"alice's").unwrap();

    assert_eq!(e.chmod(&BOB, "pub/f", 0o666), Err(Errno::EPERM));
    assert_eq!(e.chown(&BOB, "pub/f", None, Some(BOB.gid)), Err(Errno::EPERM));
    assert_eq!(e.chown(&ALICE, "pub/f", Some(BOB.uid), None), Err(Errno::EPERM), "giving a file away");
    assert_eq!(e.read(&BOB, "pub/f").unwrap(), b"alice's");

    e.chmod(&ALICE, "pub/f", 0o600).unwrap();
    assert_eq!(e.read(&BOB, "pub/f"), Err(Errno::EACCES));
    assert_eq!(e.rt.block_on(e.paths.stat(&ALICE, &p("pub/f"))).unwrap().perm, 0o600);
    e.chmod(&root, "pub/f", 0o644).unwrap();
    assert_eq!(e.read(&BOB, "pub/f").unwrap(), b"alice's");
    e.chown(&root, "pub/f", Some(BOB.uid), Some(BOB.gid)).unwrap();
    e.chmod(&BOB, "pub/f", 0o600).unwrap();
    assert_eq!(e.chmod(&ALICE, "pub/f", 0o644), Err(Errno::EPERM), "no longer hers");
}

#[test]
fn a_large_directory_lists_in_pages_by_prefix_and_start_after() {
    const FILES: usize = 10_000;
    let e = env(&[]);
    let root = Caller::root();
    let dir = e.rt.block_on(e.paths.mkdir_all(&root, &p("big"), 0o755)).unwrap();
    // Made through the inode API, many at once: the listing is under test.
    let mut names: Vec<Vec<u8>> = (0..FILES).map(|i| format!("item-{i:05}").into_bytes()).collect();
    names.extend((0..50).map(|i| format!("a{i}").into_bytes()));
    names.extend((0..50).map(|i| format!("zz{i}").into_bytes()));
    names.push(b"item".to_vec());
    e.rt.block_on(async {
        let fs = e.paths.fs();
        futures::stream::iter(names.iter())
            .map(|n| async move {
                let node = NewNode { kind: Kind::File, perm: 0o644, uid: 0, gid: 0, rdev: 0, target: vec![] };
                fs.mknod(dir.ino, n, node).await.unwrap();
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
    });

    let list_all = |prefix: &[u8], start_after: Option<&[u8]>| {
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut after = start_after.map(<[u8]>::to_vec);
        let mut pages = 0;
        loop {
            let page = e.rt.block_on(e.paths.list(&ALICE, &p("big"), prefix, after.as_deref(), 1000)).unwrap();
            assert!(page.entries.len() <= 1000);
            pages += 1;
            assert!(pages <= FILES / 1000 + 2, "the listing does not end");
            got.extend(page.entries.into_iter().map(|l| l.name));
            match page.next {
                Some(n) => after = Some(n),
                None => return (got, pages),
            }
        }
    };
    let mut want: Vec<Vec<u8>> = names.iter().filter(|n| n.starts_with(b"item-")).cloned().collect();
    want.sort();
    let (got, pages) = list_all(b"item-", None);
    assert_eq!(got.len(), FILES);
    assert!(got == want, "every name once, in order");
    assert!(pages >= FILES / 1000);
    let (got, _) = list_all(b"item-", Some(b"item-04999"));
    assert!(got == want[5000..], "the names after item-04999");
    let (got, _) = list_all(b"item-", Some(b"a"));
    assert!(got == want, "a start before the prefix");
    let (got, _) = list_all(b"item", None);
    assert_eq!(got.len(), FILES + 1, "`item` itself and every item-");
    assert_eq!(got[0], b"item");
    let (got, _) = list_all(b"", Some(b"item-09998"));
    let tail: Vec<Vec<u8>> =
        std::iter::once(b"item-09999".to_vec()).chain((0..50).map(|i| format!("zz{i}").into_bytes())).collect();
    let mut tail = tail;
    tail.sort();
    assert!(got == tail, "no prefix: every name after");
}

/// A body that yields `data` a piece at a time, then fails (a client cut
/// off mid-upload) if `cut` is set.
struct Body {
    data: Vec<u8>,
    at: usize,
    cut: bool,
}

impl AsyncRead for Body {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.at == self.data.len() {
            if self.cut {
                return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")));
            }
            return Poll::Ready(Ok(()));
        }
        let n = buf.remaining().min(self.data.len() - self.at).min(256 << 10);
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

#[test]
fn a_reader_during_an_atomic_replace_sees_the_old_file_or_the_new_never_a_mix() {
    let e = env(&[]);
    let root = Caller::root();
    let old = content(9 << 20, 1);
    let new = content(13 << 20, 2);
    e.put(&root, "f", &old).unwrap();

    // A reader that started on the old file keeps reading it whole, even
    // when the replace lands in the middle of its stream.
    let (first, rest) = e.rt.block_on(async {
        let (a, mut s) = e.paths.read(&root, &p("f"), 0, None).await.unwrap();
        assert_eq!(a.size, old.len() as u64);
        let first = s.next().await.unwrap().unwrap();
        e.paths.put(&root, &p("f"), &new[..], &PutOptions::default()).await.unwrap();
        let mut rest = Vec::new();
        while let Some(c) = s.next().await {
            rest.extend_from_slice(&c.unwrap());
        }
        (first, rest)
    });
    assert!([first.to_vec(), rest].concat() == old, "the stream begun before the replace is the old file");
    assert!(e.read(&root, "f").unwrap() == new);

    // Replaces and reads at once: every read is one whole version. While
    // an upload is on its way, the path shows the previous version.
    let versions = [old.clone(), new.clone(), content(5 << 20, 3)];
    e.rt.block_on(async {
        let paths = e.paths.clone();
        let writer = {
            let (paths, versions) = (paths.clone(), versions.clone());
            tokio::spawn(async move {
                for i in 0..6 {
                    let v = &versions[i % versions.len()];
                    let body = Body { data: v.clone(), at: 0, cut: false };
                    paths.put(&Caller::root(), &p("f"), body, &PutOptions::default()).await.unwrap();
                }
            })
        };
        let mut seen = [0usize; 3];
        while !writer.is_finished() {
            let (a, mut s) = paths.read(&Caller::root(), &p("f"), 0, None).await.unwrap();
            let mut got = Vec::with_capacity(a.size as usize);
            while let Some(c) = s.next().await {
                got.extend_from_slice(&c.unwrap());
            }
            let which = versions.iter().position(|v| *v == got);
            let Some(which) = which else { panic!("a read of {} bytes matches no version whole", got.len()) };
            seen[which] += 1;
        }
        writer.await.unwrap();
        assert!(seen.iter().sum::<usize>() >= 2, "reads ran beside the replaces: {seen:?}");
    });
    assert!(e.read(&root, "f").unwrap() == versions[5 % 3]);
    e.assert_consistent();
}

#[test]
fn a_server_side_copy_of_100_mib_adds_no_blob_and_keeps_its_blobs_past_the_source() {
    // Deleted files are freed once no client can still have them open
    // (the lease), and their blobs deleted after the grace: both short.
    let e = env(&["--collect-after-secs", "1", "--orphan-lease-secs", "3"]);
    let root = Caller::root();
    let data = content(100 << 20, 7);
    let meta = PutOptions { perm: 0o640, xattrs: vec![(b"user.origin".to_vec(), b"camera".to_vec())] };
    e.rt.block_on(e.paths.put(&root, &p("src"), &data[..], &meta)).unwrap();
    let before = e.blobs();
    assert!(before >= 2, "100 MiB makes several blobs ({before})");

    let copy = e.rt.block_on(e.paths.copy(&root, &p("src"), &p("copy"))).unwrap();
    assert_eq!((copy.size, copy.perm), (100 << 20, 0o640));
    assert_eq!(e.blobs(), before, "no blob added");
    assert!(e.read(&root, "copy").unwrap() == data);
    let md = e.rt.block_on(e.paths.metadata(&root, &p("copy"))).unwrap();
    assert_eq!(md, [(b"user.origin".to_vec(), b"camera".to_vec())]);

    // The source goes; the copy still holds the blobs past the grace.
    e.delete(&root, "src").unwrap();
    e.wait_used(100 << 20, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(e.blobs(), before, "the copy's blobs are kept");
    assert!(e.read(&root, "copy").unwrap() == data);
    // Then the copy goes, and its blobs with it.
    e.delete(&root, "copy").unwrap();
    e.wait_blobs(0, Duration::from_secs(30));
    e.assert_consistent();
}

#[test]
fn an_upload_cut_off_mid_stream_leaves_no_file_and_after_the_grace_no_blob() {
    let e = env(&["--collect-after-secs", "3", "--orphan-lease-secs", "3"]);
    let root = Caller::root();
    e.put(&root, "kept", b"an unrelated small file").unwrap();
    let baseline = e.blobs();

    // 20 MiB, then the client goes: two 8 MiB buffers were uploaded by then.
    let body = Body { data: content(20 << 20, 9), at: 0, cut: true };
    let err = e.rt.block_on(e.paths.put(&root, &p("cut"), body, &PutOptions::default())).unwrap_err();
    assert_eq!(err.errno, Errno::ECANCELED, "{err}");
    assert!(!e.exists("cut"));
    let listed = e.rt.block_on(e.paths.list(&root, &VolPath::root(), b"", None, 100)).unwrap();
    let names: Vec<&[u8]> = listed.entries.iter().map(|l| l.name.as_slice()).collect();
    assert_eq!(names, [&b"kept"[..]], "no upload left behind, hidden or not");
    let uploaded = e.blobs();
    assert!(uploaded > baseline, "the cut-off upload had stored blobs ({uploaded} vs {baseline})");

    // The same over an existing file: the old one stays, whole.
    e.put(&root, "cut", b"before").unwrap();
    let body = Body { data: content(12 << 20, 10), at: 0, cut: true };
    assert!(e.rt.block_on(e.paths.put(&root, &p("cut"), body, &PutOptions::default())).is_err());
    assert_eq!(e.read(&root, "cut").unwrap(), b"before");
    e.delete(&root, "cut").unwrap();

    e.wait_blobs(baseline, Duration::from_secs(30));
    assert_eq!(e.read(&root, "kept").unwrap(), b"an unrelated small file");
    e.assert_consistent();
}

//! A volume mounted with FUSE (real `cairn mount` processes) on a cluster
//! of a tracker, a meta service and two groups of two storage nodes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_proto::meta::{MetaRequest, MetaResponse};

use crate::common::{content, count_files, Cluster, Proc};

/// A mount process; unmounted (then killed) when dropped.
pub(crate) struct Mount {
    pub(crate) proc: Proc,
    pub(crate) path: PathBuf,
}

impl Mount {
    pub(crate) fn new(c: &Cluster, volume: &str, name: &str) -> Mount {
        Self::with_flags(c, volume, name, &[])
    }

    pub(crate) fn with_flags(c: &Cluster, volume: &str, name: &str, flags: &[&str]) -> Mount {
        assert!(
            Command::new("fusermount3").arg("-V").output().is_ok_and(|o| o.status.success()),
            "fusermount3 is missing: scripts/test installs fuse3"
        );
        let path = c.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        let args = vec![
            "mount".into(),
            volume.into(),
            path.display().to_string(),
            "--meta".into(),
            c.metas[0].addr.clone(),
            "--tracker".into(),
            c.tracker_list(),
            "--secret-file".into(),
            c.secret_file.display().to_string(),
            "--cache-dir".into(),
            c.dir.path().join("cache").display().to_string(),
        ];
        let mut args = args;
        args.extend(flags.iter().map(|f| f.to_string()));
        let proc = Proc::spawn(name, &c.metas[0].addr, args, c.dir.path());
        let m = Mount { proc, path };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !mounted(&m.path) {
            assert!(Instant::now() < deadline, "{} did not mount", m.path.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.path).status();
        self.proc.kill();
    }
}

pub(crate) fn mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(&path.display().to_string()))
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cluster() -> Cluster {
    cluster_with_meta(&[])
}

fn cluster_with_meta(meta_flags: &[&str]) -> Cluster {
    let mut c = Cluster::start(1, &[("g1", 2), ("g2", 2)]);
    c.add_meta_with(meta_flags);
    c.ok(&["volume", "create", "v", "--groups", "g1,g2"]);
    c
}

/// `cairn volume check`: the namespace is consistent.
fn assert_consistent(c: &Cluster, volume: &str) {
    let out = c.ok(&["volume", "check", volume]);
    assert!(out.contains(" 0 problems"), "{out}");
}

/// A source tree with what `cp -a` must keep: modes, times, symlinks,
/// hard links, an empty file, a file of several MiB, nested directories.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::write(root.join("a/small.txt"), b"small\n").unwrap();
    std::fs::write(root.join("a/empty"), b"").unwrap();
    std::fs::write(root.join("a/b/big.bin"), content(5 << 20, 42)).unwrap();
    for i in 0..200 {
        std::fs::write(root.join(format!("a/b/c/f{i:03}")), content(100 + i * 37, i as u64)).unwrap();
    }
    std::fs::hard_link(root.join("a/small.txt"), root.join("a/hard.txt")).unwrap();
    std::os::unix::fs::symlink("small.txt", root.join("a/link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("a/dangling")).unwrap();
    sh(&format!("chmod 600 {0}/a/small.txt && chmod 751 {0}/a/b && touch -h -d '2019-05-06 07:08:09' {0}/a/link {0}/a/b/big.bin", root.display()));
}

/// Every path below `root` with (kind, mode, size, mtime, nlink, link target).
fn describe(root: &Path) -> Vec<(String, String)> {
    let out = sh(&format!("cd {} && find . -print0 | xargs -0 stat -c '%n|%F|%a|%s|%Y|%h' | sort", root.display()));
    out.lines()
        .map(|l| {
            let (name, rest) = l.split_once('|').unwrap();
            let mut rest = rest.to_string();
            // Directory sizes differ between file systems; everything else must not.
            if rest.starts_with("directory|") {
                let mut f: Vec<&str> = rest.split('|').collect();
                f[2] = "-";
                rest = f.join("|");
            }
            let target = std::fs::read_link(root.join(name)).map(|t| t.display().to_string()).unwrap_or_default();
            (name.to_string(), format!("{rest}|{target}"))
        })
        .collect()
}

#[test]
fn cp_and_tar_of_a_tree_keep_everything() {
    let c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let src = c.dir.path().join("src");
    make_tree(&src);
    sh(&format!("cp -a {}/a {}/a", src.display(), m.path.display()));
    sh(&format!("diff -r --no-dereference {}/a {}/a", src.display(), m.path.display()));
    assert_eq!(describe(&src.join("a")), describe(&m.path.join("a")));
    // And out again with tar.
    let out = c.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    sh(&format!("tar -C {} -cf - a | tar -C {} -xpf -", m.path.display(), out.display()));
    sh(&format!("diff -r --no-dereference {}/a {}/a", src.display(), out.display()));
    assert_eq!(describe(&src.join("a")), describe(&out.join("a")));
    // Hard links are one inode.
    let (x, y) =
        (std::fs::metadata(m.path.join("a/small.txt")).unwrap(), std::fs::metadata(m.path.join("a/hard.txt")).unwrap());
    assert_eq!((x.ino(), x.nlink()), (y.ino(), 2));
}

#[test]
fn a_meta_service_killed_during_cp_is_a_pause() {
    let mut c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let src = c.dir.path().join("src");
    make_tree(&src);
    for d in 0..8 {
        let dir = src.join(format!("a/more{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..125 {
            std::fs::write(dir.join(format!("g{i:03}")), content(1000 + i * 131, (d * 1000 + i) as u64)).unwrap();
        }
    }
    let total = count_files(&src.join("a"));
    let mut cp = Command::new("cp").arg("-a").arg(src.join("a")).arg(m.path.join("a")).spawn().unwrap();
    // SIGKILL the meta service twice mid-copy; the mount retries until it is
    // back. Each kill waits for the copy to make progress rather than for a
    // clock, which a fast run outran: 100 more files, of over 1,000.
    let mut copied = 0;
    for _ in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(60);
        copied = loop {
            let now = count_files(&m.path.join("a"));
            if now >= copied + 100 {
                break now;
            }
            assert!(cp.try_wait().unwrap().is_none(), "cp finished before the meta service was killed");
            assert!(Instant::now() < deadline, "cp made no progress for 60 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(copied < total, "cp copied everything before the meta service was killed");
        c.metas[0].kill();
        std::thread::sleep(Duration::from_millis(700));
        c.metas[0].start();
    }
    let status = cp.wait().unwrap();
    assert!(status.success(), "cp -a failed across meta restarts");
    // Every file whole, nothing dangling, nothing twice.
    sh(&format!("diff -r --no-dereference {}/a {}/a", src.display(), m.path.display()));
    assert_eq!(describe(&src.join("a")), describe(&m.path.join("a")));
    assert_consistent(&c, "v");
}

#[test]
fn files_a_dead_mount_held_open_are_freed() {
    let c = cluster_with_meta(&["--orphan-lease-secs", "2"]);
    let (a, b) = (Mount::new(&c, "v", "mnt-a"), Mount::new(&c, "v", "mnt-b"));
    std::fs::write(a.path.join("held"), b"kept while open").unwrap();
    // A process holds the file open through mount a; mount b unlinks it.
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3<{}; exec sleep 600", a.path.join("held").display()))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(b.path.join("held")).unwrap();
    let meta = c.meta_client(0);
    let garbage = || match rt_block(meta.call(MetaRequest::Garbage { before: i64::MAX, after: None, limit: 100 })) {
        Ok(MetaResponse::Names(n)) => n.len(),
        other => panic!("garbage: {other:?}"),
    };
    // Several leases later it is still there for the holder.
    std::thread::sleep(Duration::from_secs(5));
    let fd = format!("/proc/{}/fd/3", holder.id());
    assert_eq!(std::fs::read(&fd).unwrap(), b"kept while open");
    assert_eq!(garbage(), 0, "freed while still open");
    // Mount a dies (SIGKILL) with the file open: within a lease or two it is freed.
    let _ = holder.kill();
    let _ = holder.wait();
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(15);
    while garbage() == 0 {
        assert!(Instant::now() < deadline, "the dead mount's open-unlinked file was never freed");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_consistent(&c, "v");
}

#[test]
fn a_file_unlinked_while_open_is_freed_at_its_last_close() {
    // A lease far longer than the test: only the mount's release of the
    // file frees it in time. (A mount skips the release of files it knows
    // to have a link; these it must not skip.)
    let c = cluster_with_meta(&["--orphan-lease-secs", "3600"]);
    let (a, b) = (Mount::new(&c, "v", "mnt-a"), Mount::new(&c, "v", "mnt-b"));
    let meta = c.meta_client(0);
    let garbage = || match rt_block(meta.call(MetaRequest::Garbage { before: i64::MAX, after: None, limit: 100 })) {
        Ok(MetaResponse::Names(n)) => n.len(),
        other => panic!("garbage: {other:?}"),
    };
    // Unlinked through the mount that has it open.
    std::fs::write(a.path.join("own"), b"unlinked here").unwrap();
    let open = std::fs::File::open(a.path.join("own")).unwrap();
    std::fs::remove_file(a.path.join("own")).unwrap();
    assert_eq!(garbage(), 0, "freed while open");
    drop(open);
    eventually("the file unlinked through its own mount freed at close", || garbage() == 1);
    // Unlinked through another mount, once the holder's mount has heard.
    std::fs::write(a.path.join("other"), b"unlinked elsewhere").unwrap();
    let open = std::fs::File::open(a.path.join("other")).unwrap();
    assert_eq!(std::fs::metadata(a.path.join("other")).unwrap().nlink(), 1);
    std::fs::remove_file(b.path.join("other")).unwrap();
    eventually("mount a hears of the unlink", || !a.path.join("other").exists());
    assert_eq!(garbage(), 1, "freed while open");
    drop(open);
    eventually("the file unlinked through another mount freed at close", || garbage() == 2);
    assert_consistent(&c, "v");
}

/// Runs a Python script; it must succeed.
fn python(script: &str) {
    let out = Command::new("python3").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The attributes and slices of the file at `path` of volume `v`, as the
/// meta service has them.
fn slices_of(c: &Cluster, path: &Path) -> (cairn_proto::meta::Attr, Vec<cairn_proto::meta::Slice>) {
    let meta = c.meta_client(0);
    let ino = std::fs::metadata(path).unwrap().ino();
    let vol = rt_block(meta.volume("v")).unwrap().id;
    match rt_block(meta.call(MetaRequest::Slices { vol, ino })) {
        Ok(MetaResponse::Slices(attr, slices)) => (attr, slices),
        other => panic!("slices of {}: {other:?}", path.display()),
    }
}

#[test]
fn scattered_writes_of_one_flush_go_up_as_one_blob() {
    let c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let file = m.path.join("scattered");
    // Three writes far apart, one close: three runs of one buffer.
    python(&format!(
        "import os\nfd = os.open('{}', os.O_CREAT | os.O_WRONLY)\nfor at, b in ((0, b'first'), (1 << 20, b'second'), (3 << 20, b'third')):\n    os.pwrite(fd, b, at)\nos.close(fd)",
        file.display()
    ));
    let (attr, slices) = slices_of(&c, &file);
    assert_eq!(attr.size, (3 << 20) + 5);
    let placed: Vec<(u64, u64, u64)> = slices.iter().map(|s| (s.offset, s.len, s.blob_offset)).collect();
    assert_eq!(placed, vec![(0, 5, 0), (1 << 20, 6, 5), (3 << 20, 5, 11)]);
    assert!(slices.iter().all(|s| s.blob == slices[0].blob), "one blob: {slices:?}");
    let mut expect = vec![0u8; (3 << 20) + 5];
    expect[..5].copy_from_slice(b"first");
    expect[1 << 20..(1 << 20) + 6].copy_from_slice(b"second");
    expect[3 << 20..].copy_from_slice(b"third");
    let other = Mount::new(&c, "v", "mnt-2");
    assert_eq!(std::fs::read(other.path.join("scattered")).unwrap(), expect, "read back on another mount");

    // 20 pieces share a blob; 19 are overwritten one by one (fsync'd, a
    // blob each): the compactor must not keep the shared blob alive for
    // the last small piece of it.
    let file = m.path.join("shared");
    python(&format!(
        "import os\nfd = os.open('{}', os.O_CREAT | os.O_WRONLY)\nfor i in range(20):\n    os.pwrite(fd, b'old%02d' % i, i * 65536)\nos.fsync(fd)\nos.close(fd)",
        file.display()
    ));
    let slices = || slices_of(&c, &file).1;
    // Taken before the overwrites: the compactor may merge while they run,
    // and the first slice's blob is then a new one of its own. (If it has
    // merged the 20 pieces already, in the milliseconds since the fsync,
    // they no longer share a blob and there is nothing left to wait for.)
    let first = slices();
    assert_eq!(first.len(), 20, "{first:?}");
    let shared = first.iter().all(|s| s.blob == first[0].blob).then(|| first[0].blob.clone());
    python(&format!(
        "import os\nfd = os.open('{}', os.O_WRONLY)\nfor i in range(1, 20):\n    os.pwrite(fd, b'new%02d' % i, i * 65536)\n    os.fsync(fd)\nos.close(fd)",
        file.display()
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while slices().iter().any(|s| Some(&s.blob) == shared.as_ref()) {
        assert!(Instant::now() < deadline, "the shared blob is still referenced: {:?}", slices());
        std::thread::sleep(Duration::from_millis(200));
    }
    let data = std::fs::read(&file).unwrap();
    for i in 0..20 {
        let want = if i == 0 { "old00".to_string() } else { format!("new{i:02}") };
        assert_eq!(&data[i * 65536..i * 65536 + 5], want.as_bytes());
    }
}

#[test]
fn blobs_of_a_deleted_file_are_deleted_from_the_groups_after_the_grace() {
    // An unlinked file is kept for the orphan lease (another mount may
    // have it open and not have said so yet), then its blobs wait out the
    // collector's grace: both short here.
    let c = cluster_with_meta(&["--collect-after-secs", "1", "--orphan-lease-secs", "1"]);
    let m = Mount::new(&c, "v", "mnt");
    let file = m.path.join("log");
    // 1,200 fsync'd appends: as many blobs (more than one batch of the
    // collector), some merged by the compactor meanwhile.
    python(&format!(
        "import os\nfd = os.open('{}', os.O_CREAT | os.O_WRONLY | os.O_APPEND)\nfor i in range(1200):\n    os.write(fd, b'%04d' % i)\n    os.fsync(fd)\nos.close(fd)",
        file.display()
    ));
    let (_, slices) = slices_of(&c, &file);
    let meta = c.meta_client(0);
    let blobs: Vec<cairn_proto::FileId> = slices.iter().map(|s| cairn_proto::FileId::parse(&s.blob).unwrap()).collect();
    let client = c.client();
    let readable = |id: &cairn_proto::FileId| rt_block(client.download_to(id, 0, None, &mut Vec::new())).is_ok();
    assert!(blobs.iter().all(readable));
    std::fs::remove_file(&file).unwrap();
    let garbage = || match rt_block(meta.call(MetaRequest::Garbage { before: i64::MAX, after: None, limit: 10_000 })) {
        Ok(MetaResponse::Names(n)) => n.len(),
        other => panic!("garbage: {other:?}"),
    };
    // Whichever of its blobs the compactor had not merged away yet go
    // with the file; every one of them must end up deleted.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut left = blobs;
    loop {
        left.retain(|id| readable(id));
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s, {} blobs still stored ({} queued for the collector): {left:?}",
            left.len(),
            garbage()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_consistent(&c, "v");
}

#[test]
fn a_file_of_more_slices_than_one_answer_carries_reads_whole_and_is_compacted() {
    // A file written at random holds a slice per write: here 24,000
    // slices (about 1.3 MB of them, more than a control frame's 1 MiB) of
    // one uploaded blob, committed straight to the meta service in
    // batches, as the mount commits its buffers. A hole after each one
    // leaves the compactor nothing to merge, so the list stays that long.
    let c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let file = m.path.join("patchwork");
    std::fs::write(&file, b"").unwrap();
    let ino = std::fs::metadata(&file).unwrap().ino();
    let blob = content(1 << 20, 11);
    let client = c.client();
    let id = rt_block(client.upload(&cairn_client::UploadOptions::default(), cairn_client::Body::from(blob.clone())))
        .unwrap()
        .to_string();
    let meta = c.meta_client(0);
    let vol = rt_block(meta.volume("v")).unwrap().id;
    const PIECE: u64 = 1024;
    const COUNT: u64 = 24_000;
    let from = |i: u64| (i * 37 % 1024) * PIECE; // where piece i comes from in the blob
    let piece =
        |i: u64| cairn_proto::meta::Slice { offset: i * PIECE, len: PIECE, blob: id.clone(), blob_offset: from(i) };
    let write = |pieces: Vec<cairn_proto::meta::Slice>| {
        for batch in pieces.chunks(4_000) {
            rt_block(meta.call(MetaRequest::Write { vol, ino, slices: batch.to_vec() })).unwrap();
        }
    };
    write((0..COUNT).map(|i| piece(2 * i)).collect());
    let mut expect = vec![0u8; (2 * COUNT * PIECE) as usize];
    let fill = |expect: &mut Vec<u8>, i: u64| {
        let (at, src) = ((i * PIECE) as usize, from(i) as usize);
        expect[at..at + PIECE as usize].copy_from_slice(&blob[src..src + PIECE as usize]);
    };
    for i in 0..COUNT {
        fill(&mut expect, 2 * i);
    }
    expect.truncate(((2 * COUNT - 1) * PIECE) as usize);
    let read = std::fs::read(&file).unwrap();
    assert!(read == expect, "the file read back differs from what its slices say");
    // Asked for the whole list in one answer (as older clients do), the
    // service says it is too large rather than dropping the connection.
    match rt_block(meta.call(MetaRequest::Slices { vol, ino })) {
        Err(cairn_client::Error::Namespace { errno: cairn_proto::Errno::EIO, message }) => {
            assert!(message.contains("a page at a time"))
        }
        other => panic!("the whole list in one answer: {other:?}"),
    }
    // The compactor reads the list a page at a time too; finding nothing
    // to merge, it takes the file off its queue.
    let queued = || match rt_block(meta.call(MetaRequest::CompactCandidates { limit: 100 })) {
        Ok(MetaResponse::Inodes(files)) => files.contains(&(vol, ino)),
        other => panic!("compact candidates: {other:?}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while queued() {
        assert!(Instant::now() < deadline, "still queued for the compactor after 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(rt_block(meta.slices(vol, ino)).unwrap().1.len(), COUNT as usize);
    // The holes filled (another 24,000 slices), the content is contiguous:
    // the compactor merges it, whatever pages it read meanwhile.
    write((0..COUNT).map(|i| piece(2 * i + 1)).collect());
    expect.resize((2 * COUNT * PIECE) as usize, 0);
    for i in 0..COUNT {
        fill(&mut expect, 2 * i + 1);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, now, _) = rt_block(meta.slices(vol, ino)).unwrap();
        if now.len() <= 16 {
            break;
        }
        assert!(Instant::now() < deadline, "still {} slices after 120 s", now.len());
        std::thread::sleep(Duration::from_millis(500));
    }
    let m2 = Mount::new(&c, "v", "mnt-2");
    assert!(std::fs::read(m2.path.join("patchwork")).unwrap() == expect, "the merged file differs");
    assert_consistent(&c, "v");
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS value")
}

#[test]
fn the_mount_stays_small_over_100k_small_files() {
    let c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let pid = m.proc.child.as_ref().expect("mount process").id();
    let churn = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/churn.py");
    let run = |dir: &str, count: u32| {
        let root = m.path.join(dir);
        std::fs::create_dir_all(&root).unwrap();
        let out = Command::new("python3").arg(&churn).arg(&root).arg(count.to_string()).arg("8").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "churn of {count} files failed:\n{text}");
        println!("{count} files: {}", text.trim());
    };
    run("first", 1_000);
    let after_first = rss_kib(pid);
    run("rest", 99_000);
    let after_all = rss_kib(pid);
    println!("mount RSS: {after_first} KiB after 1,000 files, {after_all} KiB after 100,000");
    assert!(after_all <= 2 * after_first, "the mount grew from {after_first} KiB to {after_all} KiB");
    assert_consistent(&c, "v");
}

#[test]
fn a_large_directory_lists_whole_a_page_at_a_time() {
    let c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    std::fs::create_dir(m.path.join("big")).unwrap();
    let dir = std::fs::metadata(m.path.join("big")).unwrap().ino();
    // 3,500 entries (several meta pages), made through the meta service for speed.
    let meta = std::sync::Arc::new(c.meta_client(0));
    let vol = rt_block(meta.volume("v")).unwrap().id;
    rt_block(async {
        let mut set = tokio::task::JoinSet::new();
        for w in 0..16u32 {
            let meta = meta.clone();
            set.spawn(async move {
                for i in (w..3500).step_by(16) {
                    let node = cairn_proto::meta::NewNode {
                        kind: cairn_proto::meta::Kind::File,
                        perm: 0o644,
                        uid: 0,
                        gid: 0,
                        rdev: 0,
                        target: vec![],
                    };
                    let name = format!("entry-{i:05}").into_bytes();
                    meta.call(MetaRequest::Mknod { vol, parent: dir, name, node }).await.unwrap();
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
    let listed = sh(&format!("ls -f {} | sort", m.path.join("big").display()));
    let mut want: Vec<String> = (0..3500).map(|i| format!("entry-{i:05}")).collect();
    want.extend([".".to_string(), "..".to_string()]);
    want.sort();
    assert_eq!(listed.lines().collect::<Vec<_>>(), want);
    // Removing while listing (what `rm -rf` does) removes everything.
    sh(&format!("rm -rf {}", m.path.join("big").display()));
    assert!(!m.path.join("big").exists());
    assert_consistent(&c, "v");
}

#[test]
fn many_small_writes_are_merged_into_few_slices() {
    let c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let path = m.path.join("log");
    // 40 appends, each made durable on its own: 40 slices.
    let mut expect = Vec::new();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        for i in 0..40 {
            let line = format!("line {i:03} {}\n", "x".repeat(90));
            f.write_all(line.as_bytes()).unwrap();
            f.sync_all().unwrap();
            expect.extend_from_slice(line.as_bytes());
        }
    }
    let ino = std::fs::metadata(&path).unwrap().ino();
    let meta = c.meta_client(0);
    let vol = rt_block(meta.volume("v")).unwrap().id;
    let slices = || match rt_block(meta.call(MetaRequest::Slices { vol, ino })) {
        Ok(MetaResponse::Slices(_, s)) => s.len(),
        other => panic!("slices: {other:?}"),
    };
    assert!(slices() >= 40, "each fsync'd append is a slice");
    let deadline = Instant::now() + Duration::from_secs(30);
    while slices() > 1 {
        assert!(Instant::now() < deadline, "the compactor never merged the file ({} slices)", slices());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(std::fs::read(&path).unwrap(), expect, "same content after the merge");
    // A file that grows by small appends past a whole merged run: the run
    // keeps its blob, only the tail is rewritten.
    let big = m.path.join("big");
    let mut expect: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big).unwrap();
        f.write_all(&expect).unwrap();
        f.sync_all().unwrap();
        for i in 0..40 {
            let line = format!("tail {i:03}\n");
            f.write_all(line.as_bytes()).unwrap();
            f.sync_all().unwrap();
            expect.extend_from_slice(line.as_bytes());
        }
    }
    let ino = std::fs::metadata(&big).unwrap().ino();
    let slices_of = || match rt_block(meta.call(MetaRequest::Slices { vol, ino })) {
        Ok(MetaResponse::Slices(_, s)) => s,
        other => panic!("slices: {other:?}"),
    };
    let first = slices_of()[0].clone();
    assert_eq!((first.offset, first.len), (0, 8 << 20), "the 8 MiB write is one slice");
    // 41 slices until a merge (it may run while the appends still come).
    let deadline = Instant::now() + Duration::from_secs(30);
    while slices_of().len() > 40 {
        assert!(Instant::now() < deadline, "the compactor never merged the tail ({} slices)", slices_of().len());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(slices_of()[0], first, "the untouched 8 MiB run kept its blob");
    assert_eq!(std::fs::read(&big).unwrap(), expect, "same content after the merge");
    assert_consistent(&c, "v");
}

fn rt_block<F: std::future::Future>(f: F) -> F::Output {
    crate::common::rt().block_on(f)
}

#[test]
fn two_mounts_see_each_others_files() {
    let c = cluster();
    let (a, b) = (Mount::new(&c, "v", "mnt-a"), Mount::new(&c, "v", "mnt-b"));
    let data = content(3 << 20, 9);
    std::fs::write(a.path.join("written-on-a"), &data).unwrap();
    assert_eq!(std::fs::read(b.path.join("written-on-a")).unwrap(), data, "read back whole on the other mount");
    // Renames, appends, truncation, mode changes and removal show through
    // too, long before the kernel's cache timeout (30 s): each mount drops
    // what the other changes as the meta service reports it.
    let (stat_b, stat_a) = (b.path.join("written-on-a"), a.path.join("renamed"));
    assert_eq!(std::fs::metadata(&stat_b).unwrap().len(), data.len() as u64); // now cached on b
    sh(&format!("mv {0}/written-on-a {0}/renamed && printf tail >> {0}/renamed", a.path.display()));
    let mut expect = data.clone();
    expect.extend_from_slice(b"tail");
    eventually("the rename and append show on b", || {
        !stat_b.exists() && std::fs::read(b.path.join("renamed")).is_ok_and(|d| d == expect)
    });
    sh(&format!("truncate -s 1000 {0}/renamed && chmod 600 {0}/renamed", b.path.display()));
    eventually("the truncation and chmod show on a", || {
        std::fs::metadata(&stat_a).is_ok_and(|m| m.len() == 1000 && m.mode() & 0o777 == 0o600)
            && std::fs::read(&stat_a).is_ok_and(|d| d == data[..1000])
    });
    // Extended attributes: each mount learns a file's names once (the
    // kernel asks before every write) and still sees the other's changes.
    let xattr = |m: &Mount, name: &str| {
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import os\ntry: print(os.getxattr('{}', '{name}').decode())\nexcept OSError as e: print('errno', e.errno)",
                m.path.join("renamed").display()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(xattr(&a, "user.k"), format!("errno {}", libc::ENODATA));
    sh(&format!("printf more >> {}/renamed", a.path.display())); // the kernel's capability check, answered on a
    sh(&format!("python3 -c \"import os; os.setxattr('{}/renamed', 'user.k', b'set-on-b')\"", b.path.display()));
    eventually("b's new attribute shows on a", || xattr(&a, "user.k") == "set-on-b");
    sh(&format!("python3 -c \"import os; os.removexattr('{}/renamed', 'user.k')\"", b.path.display()));
    eventually("b's removal of it shows on a", || xattr(&a, "user.k") == format!("errno {}", libc::ENODATA));
    std::fs::remove_file(b.path.join("renamed")).unwrap();
    eventually("the removal shows on a", || !stat_a.exists());
}

#[test]
fn names_another_mount_adds_to_a_directory_made_here_show_here() {
    // A mount answers lookups in a directory it made without asking the
    // meta service (it knows every name there): another mount's names in
    // it must still show, once the change feed reports them.
    let c = cluster();
    let (a, b) = (Mount::new(&c, "v", "mnt-a"), Mount::new(&c, "v", "mnt-b"));
    let dir = a.path.join("made-on-a");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("own"), b"a").unwrap();
    assert!(!dir.join("looked-for").exists()); // answered on a without a round trip
    std::fs::remove_file(dir.join("own")).unwrap();
    assert!(!dir.join("own").exists());
    std::fs::write(b.path.join("made-on-a/looked-for"), b"from b").unwrap();
    std::fs::write(b.path.join("made-on-a/never-looked-for"), b"from b").unwrap();
    eventually("b's names show on a", || {
        std::fs::read(dir.join("looked-for")).is_ok_and(|d| d == b"from b")
            && std::fs::read(dir.join("never-looked-for")).is_ok_and(|d| d == b"from b")
    });
    // Creating a name b made meanwhile, exclusively, is refused on a.
    std::fs::write(b.path.join("made-on-a/raced"), b"b").unwrap();
    let mut excl = std::fs::OpenOptions::new();
    excl.write(true).create_new(true);
    eventually("a's exclusive create of b's name fails", || {
        excl.open(dir.join("raced")).is_err_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists)
    });
    assert_eq!(std::fs::read(dir.join("raced")).unwrap(), b"b");
    // Opened for appending right after the other mount made it, before or
    // after a hears of it: either way the open finds b's file, not a new one.
    std::fs::create_dir(a.path.join("race")).unwrap();
    for i in 0..20 {
        std::fs::write(b.path.join(format!("race/r{i}")), b"b").unwrap();
        let mut f =
            std::fs::OpenOptions::new().append(true).create(true).open(a.path.join(format!("race/r{i}"))).unwrap();
        std::io::Write::write_all(&mut f, b"a").unwrap();
        drop(f);
        assert_eq!(std::fs::read(a.path.join(format!("race/r{i}"))).unwrap(), b"ba", "r{i}");
    }
    // A directory made here and filled here answers from what it knows.
    std::fs::create_dir(a.path.join("filled")).unwrap();
    for i in 0..50 {
        std::fs::write(a.path.join(format!("filled/f{i}")), [i as u8]).unwrap();
    }
    std::fs::rename(a.path.join("filled/f0"), a.path.join("filled/moved")).unwrap();
    assert!(!a.path.join("filled/f0").exists());
    assert_eq!(std::fs::read(a.path.join("filled/moved")).unwrap(), [0]);
    assert_eq!(std::fs::read_dir(a.path.join("filled")).unwrap().count(), 50);
    eventually("b sees a's directory whole", || {
        std::fs::read_dir(b.path.join("filled")).is_ok_and(|d| d.count() == 50)
    });
}

#[test]
fn a_file_read_again_comes_from_the_kernel_cache_until_it_changes() {
    let mut c = cluster();
    let (a, b) = (Mount::new(&c, "v", "mnt-a"), Mount::new(&c, "v", "mnt-b"));
    let (on_a, on_b) = (a.path.join("f"), b.path.join("f"));
    let mut data = content(2 << 20, 3);
    std::fs::write(&on_b, &data).unwrap();
    std::fs::write(b.path.join("never-read-on-a"), content(1 << 20, 4)).unwrap();
    assert_eq!(std::fs::read(&on_a).unwrap(), data);
    assert_eq!(std::fs::read(&on_a).unwrap(), data);
    // Another mount's change, same size, closed before the next open
    // here: that open must see it (close-to-open), whatever the kernel
    // kept of the file.
    sh(&format!("printf CHANGED | dd of={} bs=1 seek=1048576 conv=notrunc status=none", on_b.display()));
    data[1 << 20..(1 << 20) + 7].copy_from_slice(b"CHANGED");
    assert_eq!(std::fs::read(&on_a).unwrap(), data, "the other mount's write shows at the next open");
    // This mount's own write keeps the pages current too.
    sh(&format!("printf 'MINE' | dd of={} bs=1 seek=100 conv=notrunc status=none", on_a.display()));
    data[100..104].copy_from_slice(b"MINE");
    assert_eq!(std::fs::read(&on_a).unwrap(), data);
    assert_eq!(std::fs::read(&on_b).unwrap(), data);
    std::fs::read(&on_a).unwrap();
    // With every storage node gone, the file a has read comes whole from
    // its kernel's pages; one it never read cannot be had.
    for (_, node) in &mut c.nodes {
        node.kill();
    }
    assert_eq!(std::fs::read(&on_a).unwrap(), data, "read again from the kernel's cache");
    let other = Command::new("timeout").arg("60").arg("cat").arg(a.path.join("never-read-on-a")).output().unwrap();
    assert!(!other.status.success() || other.stdout.len() != 1 << 20, "the storage nodes are really gone");
}

/// 4 KiB of `file` at `offset`, from the mount rather than the kernel's
/// pages (dropped first).
fn read_past_the_kernel(file: &std::fs::File, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    rustix::fs::fadvise(file, 0, 0, rustix::fs::Advice::DontNeed).expect("posix_fadvise");
    let mut buf = vec![0; 4096];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

#[test]
fn blocks_read_twice_at_random_are_served_from_the_mounts_disk_cache() {
    let mut c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let path = m.path.join("f");
    let data = content(4 << 20, 9);
    std::fs::write(&path, &data).unwrap();
    let at = |block: usize, offset: usize| (block << 20) + offset;
    let f = std::fs::File::open(&path).unwrap();
    // Block 1 read twice (kept at the second read), block 3 once.
    for (block, offset) in [(1, 256 << 10), (1, 512 << 10), (3, 256 << 10)] {
        let (o, got) = (at(block, offset), read_past_the_kernel(&f, at(block, offset) as u64).unwrap());
        assert!(got == data[o..o + 4096], "read at {o}");
    }
    let cached =
        || walkdir(&c.dir.path().join("cache")).iter().map(|p| p.metadata().map_or(0, |m| m.len())).sum::<u64>();
    // Written to the cache beside the read's answer.
    eventually("one block kept on the mount's disk", || cached() == 1 << 20);
    drop(f);
    for (_, node) in &mut c.nodes {
        node.kill();
    }
    // A new open (the kernel's pages dropped too): block 1 comes from the
    // mount's disk, anywhere in it; block 3 cannot be had.
    let f = std::fs::File::open(&path).unwrap();
    for offset in [0, 4096, 768 << 10, (1 << 20) - 4096] {
        let got = read_past_the_kernel(&f, at(1, offset) as u64).expect("served from the block cache");
        assert!(got == data[at(1, offset)..at(1, offset) + 4096], "block 1 at {offset}");
    }
    let other = read_past_the_kernel(&f, at(3, 512 << 10) as u64);
    assert!(other.is_err(), "a block read once was not kept, and the storage nodes are really gone");
}

/// Every file under `dir`.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Waits up to 5 s for `cond`, far less than the kernel cache's timeout.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn posix_basics_on_the_mount() {
    let c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let p = |s: &str| m.path.join(s);
    // fsync of a file with nothing buffered and fsyncdir reach the meta
    // service (names are on its disk only then, or 5 ms later).
    std::fs::create_dir(p("synced")).unwrap();
    std::fs::File::create(p("synced/empty")).unwrap().sync_all().unwrap();
    std::fs::File::open(p("synced")).unwrap().sync_all().unwrap();
    std::fs::File::open(&m.path).unwrap().sync_all().unwrap();
    // Sparse files and holes.
    sh(&format!(
        "truncate -s 10M {0} && printf x | dd of={0} bs=1 seek=5000000 conv=notrunc status=none",
        p("sparse").display()
    ));
    let sparse = std::fs::read(p("sparse")).unwrap();
    assert_eq!(sparse.len(), 10 << 20);
    assert_eq!(sparse[5_000_000], b'x');
    assert!(sparse[..5_000_000].iter().all(|&b| b == 0));
    // Past 4 GiB: a sparse 5 GiB file with a byte written at 4.5 GiB.
    sh(&format!(
        "truncate -s 5G {0} && printf y | dd of={0} bs=1 seek=4831838208 conv=notrunc status=none",
        p("huge").display()
    ));
    assert_eq!(std::fs::metadata(p("huge")).unwrap().len(), 5 << 30);
    let around = sh(&format!("dd if={} bs=1 skip=4831838207 count=3 status=none | od -An -c", p("huge").display()));
    assert_eq!(around.split_whitespace().collect::<Vec<_>>(), vec!["\\0", "y", "\\0"]);
    std::fs::remove_file(p("huge")).unwrap();
    // A writer past one full buffer (8 MiB, then uploading in the
    // background) reads back what it wrote through another descriptor,
    // in flight or buffered, and an overwrite of bytes in flight wins.
    {
        use std::io::{Read, Seek, SeekFrom, Write};
        let data = content(9 << 20, 77);
        let mut w = std::fs::File::create(p("streamed")).unwrap();
        w.write_all(&data).unwrap();
        let mut r = std::fs::File::open(p("streamed")).unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert!(back == data, "read back while the first buffer was in flight");
        w.write_all(&data[..1 << 20]).unwrap();
        w.seek(SeekFrom::Start(100)).unwrap();
        w.write_all(b"overwritten").unwrap();
        drop(w);
        let got = std::fs::read(p("streamed")).unwrap();
        assert_eq!(got.len(), 10 << 20);
        assert_eq!(&got[100..111], b"overwritten");
        assert!(got[111..9 << 20] == data[111..], "the rest of the first buffer");
        assert!(got[9 << 20..] == data[..1 << 20], "the second buffer");
        std::fs::remove_file(p("streamed")).unwrap();
    }
    // Overwrite in the middle, then read across.
    std::fs::write(p("f"), b"0123456789").unwrap();
    sh(&format!("printf AB | dd of={} bs=1 seek=4 conv=notrunc status=none", p("f").display()));
    assert_eq!(std::fs::read(p("f")).unwrap(), b"0123AB6789");
    // An unlinked file stays readable while open.
    let mut open = std::fs::File::open(p("f")).unwrap();
    std::fs::remove_file(p("f")).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut open, &mut s).unwrap();
    assert_eq!(s, "0123AB6789");
    drop(open);
    // Rename over, rmdir of a non-empty directory, xattrs, statfs.
    sh(&format!("mkdir {0}/d && touch {0}/d/x && echo new > {0}/n && mv {0}/n {0}/sparse", m.path.display()));
    assert_eq!(std::fs::read(p("sparse")).unwrap(), b"new\n");
    assert!(std::fs::remove_dir(p("d")).is_err());
    sh(&format!("setfattr -n user.color -v blue {0}/sparse 2>/dev/null || python3 -c \"import os; os.setxattr('{0}/sparse', 'user.color', b'blue')\"", m.path.display()));
    let v = sh(&format!(
        "python3 -c \"import os; print(os.getxattr('{}/sparse', 'user.color').decode())\"",
        m.path.display()
    ));
    assert_eq!(v.trim(), "blue");
    // Listings carry attributes (readdirplus) and whether each file has
    // extended attributes; what a listing said must not hide one set after
    // it, nor one set before it.
    let listed = sh(&format!("ls -l {0} && ls -l {0}/d", m.path.display()));
    assert!(listed.contains("sparse") && listed.contains(" x\n"), "{listed}");
    let v = sh(&format!(
        "python3 -c \"import os; print(os.getxattr('{0}/sparse', 'user.color').decode()); os.setxattr('{0}/d/x', 'user.k', b'v'); print(os.getxattr('{0}/d/x', 'user.k').decode(), os.listxattr('{0}/d/x'))\"",
        m.path.display()
    ));
    assert_eq!(v.trim(), "blue\nv ['user.k']");
    // SELinux labels and POSIX ACLs are not kept: asking is EOPNOTSUPP (so
    // `ls -l` stops asking per file), on a file that has other attributes too.
    let v = sh(&format!(
        "python3 -c \"\nimport os\nfor n in ('security.selinux', 'system.posix_acl_access'):\n  try: os.getxattr('{0}/sparse', n); print('found')\n  except OSError as e: print(e.errno)\ntry: os.setxattr('{0}/sparse', 'security.selinux', b'x'); print('set')\nexcept OSError as e: print(e.errno)\n\"",
        m.path.display()
    ));
    assert_eq!(v.split_whitespace().collect::<Vec<_>>(), ["95", "95", "95"], "{v}");
    let sizes = sh(&format!("stat -c '%n %s' {0}/sparse {0}/d/x", m.path.display()));
    assert_eq!(sizes.trim(), format!("{0}/sparse 4\n{0}/d/x 0", m.path.display()));
    let df = sh(&format!("df -k {} | tail -1", m.path.display()));
    assert!(df.split_whitespace().nth(1).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0) > 0, "{df}");
}

/// A tool `scripts/test` installs with `cargo install`.
fn cargo_tool(name: &str) -> PathBuf {
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo/bin").join(name);
    if home.exists() {
        return home;
    }
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap();
    assert!(found.status.success(), "{name} is missing: scripts/test installs it (cargo install {name})");
    PathBuf::from(String::from_utf8_lossy(&found.stdout).trim())
}

#[test]
fn pjdfstest_passes_in_full() {
    let c = cluster();
    // pjdfstest acts as other users too (nobody, tests): the mount lets them in.
    let m = Mount::with_flags(&c, "v", "mnt", &["--allow-other"]);
    let dir = m.path.join("pjd");
    sh(&format!("mkdir {0} && chmod 777 {0}", dir.display()));
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pjdfstest.toml");
    let out = Command::new(cargo_tool("pjdfstest"))
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(&dir)
        .current_dir(c.dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let failed: Vec<&str> = text.lines().filter(|l| l.trim_end().ends_with("FAILED")).collect();
    let summary = text.lines().find(|l| l.starts_with("Summary:")).unwrap_or("no summary");
    assert!(out.status.success() && failed.is_empty(), "{summary}\nfailed: {failed:#?}");
    assert!(summary.contains(" 0 failed"), "{summary}");
}

#[test]
fn fsx_finds_no_mismatch() {
    let c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let ops = std::env::var("CAIRN_FSX_OPS").unwrap_or_else(|_| "100000".into());
    let out = Command::new(cargo_tool("fsx"))
        .args(["-N", &ops, "-S", "42", "-q", "-P"])
        .arg(c.dir.path())
        .arg(m.path.join("fsx.file"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("A-OK"), "fsx failed:\n{text}");
}

#[test]
fn fio_verifies_across_a_remount() {
    let c = cluster();
    assert!(
        Command::new("fio").arg("--version").output().is_ok_and(|o| o.status.success()),
        "fio is missing: scripts/test installs it"
    );
    let fio = |path: &Path, extra: &[&str]| {
        let out = Command::new("fio")
            .args(["--name=verify", "--size=48M", "--bs=1M", "--rw=write", "--verify=crc32c", "--ioengine=psync"])
            .arg(format!("--filename={}", path.join("fio.dat").display()))
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !text.contains("verify: bad"), "fio {extra:?} failed:\n{text}");
    };
    {
        let m = Mount::new(&c, "v", "mnt");
        fio(&m.path, &["--do_verify=1"]);
    }
    // Unmounted and mounted again: the data comes back from the cluster.
    let m = Mount::new(&c, "v", "mnt2");
    fio(&m.path, &["--verify_only"]);
}

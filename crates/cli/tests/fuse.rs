//! A volume mounted with FUSE (real `cairn mount` processes) on a cluster
//! of a tracker, a meta service and two groups of two storage nodes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{content, Cluster, Proc};

/// A mount process; unmounted (then killed) when dropped.
struct Mount {
    proc: Proc,
    path: PathBuf,
}

impl Mount {
    fn new(c: &Cluster, volume: &str, name: &str) -> Mount {
        Self::with_flags(c, volume, name, &[])
    }

    fn with_flags(c: &Cluster, volume: &str, name: &str, flags: &[&str]) -> Mount {
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

fn mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(&path.display().to_string()))
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cluster() -> Cluster {
    let mut c = Cluster::start(1, &[("g1", 2), ("g2", 2)]);
    c.add_meta();
    c.ok(&["volume", "create", "v", "--groups", "g1,g2"]);
    c
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
fn two_mounts_see_each_others_files() {
    let c = cluster();
    let (a, b) = (Mount::new(&c, "v", "mnt-a"), Mount::new(&c, "v", "mnt-b"));
    let data = content(3 << 20, 9);
    std::fs::write(a.path.join("written-on-a"), &data).unwrap();
    assert_eq!(std::fs::read(b.path.join("written-on-a")).unwrap(), data, "read back whole on the other mount");
    // Renames, appends, truncation and removal show through too.
    sh(&format!("mv {0}/written-on-a {0}/renamed && printf tail >> {0}/renamed", a.path.display()));
    std::thread::sleep(Duration::from_millis(1100)); // the kernel's attribute cache
    let mut expect = data.clone();
    expect.extend_from_slice(b"tail");
    assert_eq!(std::fs::read(b.path.join("renamed")).unwrap(), expect);
    sh(&format!("truncate -s 1000 {}/renamed", b.path.display()));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(std::fs::read(a.path.join("renamed")).unwrap(), &data[..1000]);
    std::fs::remove_file(b.path.join("renamed")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(!a.path.join("renamed").exists());
}

#[test]
fn posix_basics_on_the_mount() {
    let c = cluster();
    let m = Mount::new(&c, "v", "mnt");
    let p = |s: &str| m.path.join(s);
    // Sparse files and holes.
    sh(&format!(
        "truncate -s 10M {0} && printf x | dd of={0} bs=1 seek=5000000 conv=notrunc status=none",
        p("sparse").display()
    ));
    let sparse = std::fs::read(p("sparse")).unwrap();
    assert_eq!(sparse.len(), 10 << 20);
    assert_eq!(sparse[5_000_000], b'x');
    assert!(sparse[..5_000_000].iter().all(|&b| b == 0));
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

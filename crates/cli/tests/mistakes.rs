//! A user's ordinary mistakes destroy nothing: a download aimed at a
//! device, a FIFO, a symlink or a directory; a volume over a group the
//! cluster does not have; two daemons on one data directory; a mount on a
//! mounted or non-empty directory; deleting a volume that is mounted.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{cairn_bin, content, free_port, Cluster};
use crate::fuse::{mounted, Mount};

/// A process this test started, killed when the test ends however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// `mknod PATH c MAJOR MINOR` (the suite runs as root, as `scripts/test` does).
fn char_device(path: &Path, major: u32, minor: u32) {
    let out = Command::new("mknod").arg(path).args(["c", &major.to_string(), &minor.to_string()]).output().unwrap();
    assert!(out.status.success(), "mknod (the tests need root): {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn download_writes_into_devices_and_fifos_follows_symlinks_and_refuses_directories() {
    let c = Cluster::start(1, &[("g1", 1)]);
    let data = content(300_000, 7);
    let src = c.dir.path().join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let id = c.ok(&["upload", src.to_str().unwrap()]).trim().to_string();
    let out = c.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();

    // A device is written into, never replaced by a regular file.
    let null = out.join("null");
    char_device(&null, 1, 3);
    c.ok(&["download", &id, "-o", null.to_str().unwrap()]);
    assert!(std::fs::symlink_metadata(&null).unwrap().file_type().is_char_device(), "the null device was replaced");
    let full = out.join("full");
    char_device(&full, 1, 7);
    let o = c.cli(&["download", &id, "-o", full.to_str().unwrap()]);
    assert!(!o.status.success(), "a write to the full device must fail");
    assert!(stderr(&o).contains("No space left"), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&full).unwrap().file_type().is_char_device(), "the full device was replaced");

    // A FIFO is written into: a reader on the other end gets the content.
    let fifo = out.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            std::fs::File::open(&fifo).unwrap().read_to_end(&mut got).unwrap();
            got
        })
    };
    c.ok(&["download", &id, "-o", fifo.to_str().unwrap()]);
    assert_eq!(reader.join().unwrap(), data, "what came through the FIFO");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    // A symlink is followed (as cp does): the link stays, its target gets
    // the content, even a target that does not exist yet.
    std::fs::write(out.join("target"), b"old").unwrap();
    std::os::unix::fs::symlink("target", out.join("link")).unwrap();
    c.ok(&["download", &id, "-o", out.join("link").to_str().unwrap()]);
    assert!(std::fs::symlink_metadata(out.join("link")).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(out.join("target")).unwrap(), data);
    std::os::unix::fs::symlink("fresh", out.join("dangling")).unwrap();
    c.ok(&["download", &id, "-o", out.join("dangling").to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("fresh")).unwrap(), data);

    // A directory is refused before anything is fetched, leaving nothing.
    let before = names(&out);
    let parent_before = names(c.dir.path());
    let o = c.cli(&["download", &id, "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "one line: {}", stderr(&o));
    assert_eq!(names(&out), before);
    assert_eq!(names(c.dir.path()), parent_before, "nothing left beside the directory");

    // A failed download leaves no partial file, and the old file as it was.
    std::fs::write(out.join("keep"), b"keep me").unwrap();
    let missing = id.replace(&id[id.len() - 10..id.len() - 4], "AAAAAA");
    let o = c.cli(&["download", &missing, "-o", out.join("keep").to_str().unwrap()]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(out.join("keep")).unwrap(), b"keep me");
    assert!(names(&out).iter().all(|n| !n.contains(".part")), "{:?}", names(&out));

    // A regular file is replaced whole, with a regular file's mode.
    c.ok(&["download", &id, "-o", out.join("keep").to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("keep")).unwrap(), data);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(out.join("keep")).unwrap().permissions());
    assert_ne!(mode & 0o044, 0, "not a private temporary file's mode: {mode:o}");
}

#[test]
fn a_volume_over_a_missing_group_is_refused_and_its_writes_fail_with_eio() {
    let mut c = Cluster::start(1, &[("g1", 1)]);
    c.add_meta();
    let o = c.cli(&["volume", "create", "v2", "--groups", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no group nosuch in the cluster (it has g1)"), "{}", stderr(&o));
    assert!(c.ok(&["volume", "list"]).contains("no volumes"));

    // A volume whose group went away after it was made (made here through
    // the meta service directly, as a group removed later leaves it).
    let m = c.meta_client(0);
    crate::common::rt().block_on(m.create_volume("gone", vec!["g9".into()], 1 << 26)).unwrap();
    let info = c.ok(&["volume", "info", "gone"]);
    assert!(info.contains("MISSING from the cluster: g9"), "{info}");
    let status = c.ok(&["status"]);
    assert!(status.contains("volume gone: groups g9 are not in the cluster"), "{status}");

    let mnt = Mount::new(&c, "gone", "mnt");
    let f = mnt.path.join("f");
    // Python checks what close() and fsync() say.
    let script = format!(
        "import os\nfd = os.open({f:?}, os.O_WRONLY | os.O_CREAT)\nos.write(fd, b'hi\\n')\ntry:\n    os.fsync(fd)\n    print('fsync ok')\nexcept OSError as e:\n    print('fsync', e.errno)\ntry:\n    os.close(fd)\n    print('close ok')\nexcept OSError as e:\n    print('close', e.errno)\n",
        f = f.display().to_string()
    );
    let out = Command::new("python3").arg("-c").arg(&script).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("fsync 5"), "fsync must fail with EIO: {said} {}", String::from_utf8_lossy(&out.stderr));
    // Never a file whose content reads as zeros: what could not be stored is gone.
    let content = std::fs::read(&f).unwrap();
    assert!(!content.contains(&0), "the file reads as zeros: {content:?}");
    assert_eq!(std::fs::metadata(&f).unwrap().len(), content.len() as u64);
    let log = std::fs::read_to_string(&mnt.proc.log).unwrap();
    assert!(log.contains("a write could not be stored") && log.contains("g9"), "the mount's log: {log}");
}

/// `cairn server` on `data` with every listener on a port of its own.
fn server(data: &Path, log: &Path) -> Killed {
    let port = || format!("127.0.0.1:{}", free_port());
    let out = std::fs::File::create(log).unwrap();
    Command::new(cairn_bin())
        .args(["server", "--data", data.to_str().unwrap()])
        .args(["--listen", &port(), "--storage-listen", &port(), "--meta-listen", &port()])
        .args(["--fastdfs-listen", &port(), "--fastdfs-storage-listen", &port(), "--http-listen", &port()])
        .env_remove("CAIRN_SECRET")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .map(Killed)
        .unwrap()
}

#[test]
fn a_second_process_on_one_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = server(&data, &dir.path().join("first.log"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(dir.path().join("first.log")).unwrap().contains("meta service on") {
        assert!(Instant::now() < deadline, "the first server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut second = server(&data, &dir.path().join("second.log"));
    let status = second.0.wait().unwrap();
    let said = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("in use by another cairn process (pid {}, cairn server)", first.0.id())), "{said}");
    // The storage node's own directory and store path are locked too: a
    // storage node pointed at the server's is refused.
    let secret = data.join("secret");
    let o = Command::new(cairn_bin())
        .args(["storage", "--tracker", "127.0.0.1:1", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--fastdfs-listen", "none", "--data", dir.path().join("other").to_str().unwrap()])
        .args(["--store-path", data.join("storage/store0").to_str().unwrap()])
        .args(["--secret-file", secret.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("store0 is in use by another cairn process"), "{}", stderr(&o));
    assert!(first.0.try_wait().unwrap().is_none(), "the first server must keep running");
    drop(first);
    // Gone with its process: the directory can be used again.
    let mut third = server(&data, &dir.path().join("third.log"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(dir.path().join("third.log")).unwrap().contains("meta service on") {
        assert!(third.0.try_wait().unwrap().is_none(), "the server did not start after the first was killed");
        assert!(Instant::now() < deadline, "the server did not start after the first was killed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mounts_refuse_mounted_and_non_empty_directories_and_a_mounted_volume_is_not_deleted() {
    let mut c = Cluster::start(1, &[("g1", 1)]);
    c.add_meta();
    c.ok(&["volume", "create", "v"]);
    let first = Mount::new(&c, "v", "mnt");
    std::fs::write(first.path.join("kept"), b"still here").unwrap();
    let mount = |dir: &Path, extra: &[&str]| {
        let mut args = vec!["mount", "v", dir.to_str().unwrap(), "--daemon"];
        args.extend_from_slice(extra);
        c.cli(&args)
    };

    let o = mount(&first.path, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is already a mount point"), "{}", stderr(&o));
    assert_eq!(std::fs::read(first.path.join("kept")).unwrap(), b"still here");

    let full = c.dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("mine"), b"x").unwrap();
    let o = mount(&full, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not empty"), "{}", stderr(&o));
    assert!(!mounted(&full));

    // The mount says what it is: delete is refused while it is there.
    let info = c.ok(&["volume", "info", "v"]);
    assert!(info.contains("attached    mount ") && info.contains(first.path.to_str().unwrap()), "{info}");
    let o = c.cli(&["volume", "delete", "v"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("in use by mount") && stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read(first.path.join("kept")).unwrap(), b"still here");

    // An explicit choice is honoured: --nonempty mounts over entries.
    let o = mount(&full, &["--nonempty"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(mounted(&full));
    assert!(Command::new("fusermount3").arg("-u").arg(&full).status().unwrap().success());

    // Unmounted, the volume is free: the mount detached itself at unmount.
    assert!(Command::new("fusermount3").arg("-u").arg(&first.path).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.ok(&["volume", "info", "v"]).contains("(pid") {
        assert!(Instant::now() < deadline, "the unmounted mount is still attached");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&first.proc.log).unwrap();
    assert!(!log.contains("Unmount failed"), "an unmount that worked logged a failure: {log}");
    assert!(!log.contains("\u{1b}["), "colour codes in a log file: {log}");
    c.ok(&["volume", "delete", "v"]);
}

#[test]
fn a_mounted_volume_is_deleted_with_force() {
    let mut c = Cluster::start(1, &[("g1", 1)]);
    c.add_meta();
    c.ok(&["volume", "create", "v"]);
    let _m = Mount::new(&c, "v", "mnt");
    assert!(!c.cli(&["volume", "delete", "v"]).status.success());
    c.ok(&["volume", "delete", "v", "--force"]);
    assert!(!c.ok(&["volume", "list"]).contains("v "));
}

/// A storage node on another loopback address than 127.0.0.1 (as a node
/// of a real cluster is on its host's address): its FastDFS listener,
/// whose address is not given, is on that host, where the tracker sends
/// FastDFS clients; a second node asking for the same port on that host
/// is refused with the flag that moves it.
#[test]
fn listeners_default_to_the_nodes_host_and_a_taken_port_names_its_flag() {
    let c = Cluster::start(1, &[]);
    // An address of 127/8 of this test's own, so the default port is free.
    let host = format!("127.0.{}.{}", 100 + std::process::id() % 100, 2 + free_port() % 250);
    let node = |name: &str| {
        let dir = c.dir.path().join(name);
        Command::new(cairn_bin())
            .args(["storage", "--tracker", &c.tracker_list(), "--group", "g1", "--heartbeat-ms", "200"])
            .args(["--listen", &format!("{host}:{}", free_port()), "--data", dir.to_str().unwrap()])
            .args(["--secret-file", c.secret_file.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = Killed(node("n1"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let fastdfs = loop {
        // The tracker may still be starting.
        if let Ok(map) = crate::common::rt().block_on(c.client().status()) {
            if let Some(addr) = map.groups.iter().flat_map(|g| &g.members).find_map(|m| m.fastdfs_addr.clone()) {
                break addr;
            }
        }
        assert!(first.0.try_wait().unwrap().is_none(), "the node exited");
        assert!(Instant::now() < deadline, "the node did not report its FastDFS listener");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(fastdfs, format!("{host}:23000"), "advertised where it listens");
    assert!(std::net::TcpStream::connect(&fastdfs).is_ok(), "nothing listens at {fastdfs}");

    let second = node("n2").wait_with_output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let said = stderr(&second);
    assert!(said.contains(&format!("{host}:23000 is already in use")) && said.contains("--fastdfs-listen"), "{said}");
}

/// A meta database written by a newer Cairn (a format version this binary
/// does not know) is refused at start, in one line that says what to do,
/// and left as it was.
#[test]
fn a_meta_database_of_a_newer_format_is_refused_in_one_line() {
    use cairn_meta::records::encode;
    use cairn_meta::{key, Engine, Namespace, RedbEngine, FORMAT_VERSION};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("meta");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("meta.redb");
    {
        let ns = Namespace::open(RedbEngine::open(&db).unwrap()).unwrap();
        ns.create_volume("v", vec![], cairn_meta::DEFAULT_CHUNK).unwrap();
        drop(ns);
        let engine = RedbEngine::open(&db).unwrap();
        engine.write(|w| w.put(key::FORMAT, &encode(&(FORMAT_VERSION + 1))?)).unwrap();
    }
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "test-secret-please-ignore\n").unwrap();
    let o = Command::new(cairn_bin())
        .args(["meta", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--data", data.to_str().unwrap(), "--secret-file", secret.to_str().unwrap()])
        .output()
        .unwrap();
    let said = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    let newer = format!("format version {}, newer than this cairn reads (up to {FORMAT_VERSION})", FORMAT_VERSION + 1);
    assert!(said.contains(&newer), "{said}");
    let errors: Vec<&str> = said.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{said}");
    assert!(errors[0].contains(&newer) && errors[0].ends_with("run a newer cairn"), "one line: {said}");
    let engine = RedbEngine::open(&db).unwrap();
    let kept = engine.read(|r| r.get(key::FORMAT)).unwrap();
    assert_eq!(kept, Some(encode(&(FORMAT_VERSION + 1)).unwrap()), "not stamped over");
}

//! A cluster of real `cairn` processes on loopback, for tests.
//!
//! Each test makes its own [`Cluster`] in a fresh temp dir, on ports it
//! picks itself; every process is killed (SIGKILL) when the cluster drops.
//! When a test fails, the tail of every process log is printed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cairn_client::{Client, ClientConfig};
use cairn_proto::{ClusterSecret, FileId, MemberState, Request, Response};

/// The binary under test (`CAIRN_BIN` overrides).
pub fn cairn_bin() -> PathBuf {
    std::env::var_os("CAIRN_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cairn")))
}

/// A port free right now on 127.0.0.1, below the kernel's ephemeral range
/// (32768 and up on Linux): a port the kernel handed out with `bind(0)`
/// can be taken by any outgoing connection before the daemon binds it.
/// Each test process walks its own stretch of 20000–32767, starting from
/// its PID, so parallel tests rarely meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20000;
    const SPAN: u32 = 12768;
    let start = (std::process::id().wrapping_mul(7919)) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n * 13) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range")
}

/// One daemon process.
pub struct Proc {
    pub name: String,
    pub addr: String,
    pub args: Vec<String>,
    pub log: PathBuf,
    pub child: Option<Child>,
    /// Its FastDFS-protocol listener, if it has one.
    pub fastdfs: Option<String>,
    /// Its HTTP download listener, if it has one.
    pub http: Option<String>,
}

impl Proc {
    pub fn spawn(name: &str, addr: &str, args: Vec<String>, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let flag = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1)).cloned();
        let (fastdfs, http) = (flag("--fastdfs-listen"), flag("--http-listen"));
        let mut p = Proc { name: name.into(), addr: addr.into(), args, log, child: None, fastdfs, http };
        p.start();
        p
    }

    /// (Re)starts the process with its original arguments.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(cairn_bin())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg(format!("-{sig}")).arg(c.id().to_string()).status();
        }
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running cluster.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub secret_file: PathBuf,
    pub trackers: Vec<Proc>,
    /// Storage nodes, as (group, process).
    pub nodes: Vec<(String, Proc)>,
    /// Meta services.
    pub metas: Vec<Proc>,
}

/// Heartbeat interval the tests run with, so that failures are noticed fast.
pub const HEARTBEAT_MS: u64 = 200;
/// Offline detection the tests run with.
pub const OFFLINE_AFTER_MS: u64 = 1200;

impl Cluster {
    /// `trackers` trackers and, for each `(group, n)`, `n` storage nodes.
    pub fn start(trackers: usize, groups: &[(&str, usize)]) -> Cluster {
        Self::start_with(trackers, groups, &[])
    }

    /// Same, with extra flags for every storage node.
    pub fn start_with(trackers: usize, groups: &[(&str, usize)], storage_flags: &[&str]) -> Cluster {
        Self::start_full(trackers, groups, &[], storage_flags)
    }

    /// Same, with extra flags for trackers and storage nodes.
    pub fn start_full(
        trackers: usize,
        groups: &[(&str, usize)],
        tracker_flags: &[&str],
        storage_flags: &[&str],
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "test-secret-please-ignore\n").expect("secret");
        let mut c = Cluster { dir, secret_file, trackers: Vec::new(), nodes: Vec::new(), metas: Vec::new() };
        for i in 0..trackers {
            let addr = format!("127.0.0.1:{}", free_port());
            let data = c.dir.path().join(format!("tracker{i}"));
            let args = vec![
                "tracker".into(),
                "--listen".into(),
                addr.clone(),
                "--data".into(),
                data.display().to_string(),
                "--secret-file".into(),
                c.secret_file.display().to_string(),
                "--offline-after-ms".into(),
                OFFLINE_AFTER_MS.to_string(),
                "--fastdfs-listen".into(),
                format!("127.0.0.1:{}", free_port()),
            ];
            let mut args = args;
            args.extend(tracker_flags.iter().map(|s| s.to_string()));
            c.trackers.push(Proc::spawn(&format!("tracker{i}"), &addr, args, c.dir.path()));
        }
        for (group, n) in groups {
            for _ in 0..*n {
                c.add_node(group, storage_flags);
            }
        }
        c.wait_active();
        c
    }

    /// Starts one more storage node in `group` (none: a spare); returns its index.
    pub fn add_node(&mut self, group: &str, flags: &[&str]) -> usize {
        let i = self.nodes.len();
        let addr = format!("127.0.0.1:{}", free_port());
        let data = self.dir.path().join(format!("node{i}"));
        let mut args: Vec<String> = vec!["storage".into(), "--tracker".into(), self.tracker_list()];
        if group.is_empty() {
            args.push("--spare".into());
        } else {
            args.extend(["--group".into(), group.into()]);
        }
        args.extend([
            "--listen".into(),
            addr.clone(),
            "--data".into(),
            data.display().to_string(),
            "--secret-file".into(),
            self.secret_file.display().to_string(),
            "--heartbeat-ms".into(),
            HEARTBEAT_MS.to_string(),
            "--fastdfs-listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--http-listen".into(),
            format!("127.0.0.1:{}", free_port()),
        ]);
        args.extend(flags.iter().map(|s| s.to_string()));
        self.nodes.push((group.to_string(), Proc::spawn(&format!("node{i}"), &addr, args, self.dir.path())));
        i
    }

    /// Starts a meta service (`cairn meta`) for this cluster; returns its index.
    pub fn add_meta(&mut self) -> usize {
        self.add_meta_with(&[])
    }

    /// Starts a meta service with extra flags; returns its index.
    pub fn add_meta_with(&mut self, flags: &[&str]) -> usize {
        let i = self.metas.len();
        let addr = format!("127.0.0.1:{}", free_port());
        let args: Vec<String> = vec![
            "meta".into(),
            "--listen".into(),
            addr.clone(),
            "--data".into(),
            self.dir.path().join(format!("meta{i}")).display().to_string(),
            "--tracker".into(),
            self.tracker_list(),
            "--secret-file".into(),
            self.secret_file.display().to_string(),
        ];
        let mut args = args;
        args.extend(flags.iter().map(|f| f.to_string()));
        self.metas.push(Proc::spawn(&format!("meta{i}"), &addr, args, self.dir.path()));
        let m = cairn_client::MetaClient::new(addr, self.secret());
        let deadline = Instant::now() + Duration::from_secs(10);
        while rt().block_on(m.volumes()).is_err() {
            assert!(Instant::now() < deadline, "meta service did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        i
    }

    /// A client of meta service `i`.
    pub fn meta_client(&self, i: usize) -> cairn_client::MetaClient {
        cairn_client::MetaClient::new(self.metas[i].addr.clone(), self.secret())
    }

    pub fn tracker_list(&self) -> String {
        self.trackers.iter().map(|t| t.addr.clone()).collect::<Vec<_>>().join(",")
    }

    pub fn secret(&self) -> ClusterSecret {
        ClusterSecret::from_text("test-secret-please-ignore").expect("secret")
    }

    /// A native client.
    pub fn client(&self) -> Client {
        Client::new(ClientConfig::new(self.trackers.iter().map(|t| t.addr.clone()).collect(), self.secret()))
    }

    /// Runs the CLI against this cluster.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, None)
    }

    /// Runs the CLI with bytes on standard input.
    pub fn cli_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        use std::io::Write;
        let mut child = Command::new(cairn_bin())
            .args(args)
            .env("CAIRN_TRACKER", self.tracker_list())
            .env("CAIRN_SECRET", "test-secret-please-ignore")
            .env("CAIRN_META", self.metas.first().map(|m| m.addr.clone()).unwrap_or_default())
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cairn");
        if let Some(bytes) = stdin {
            let mut s = child.stdin.take().expect("stdin");
            // A command that fails before reading its input closes the pipe;
            // its exit status and stderr tell the test what happened.
            let _ = s.write_all(bytes);
        }
        child.wait_with_output().expect("wait cairn")
    }

    /// Runs the CLI and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until every running storage node is active, and knows it, at
    /// every running tracker.
    pub fn wait_active(&self) {
        let expected: Vec<&str> =
            self.nodes.iter().filter(|(_, p)| p.child.is_some()).map(|(_, p)| p.addr.as_str()).collect();
        self.wait_members(Duration::from_secs(30), |members| {
            expected.iter().all(|a| members.iter().any(|m| m.addr == *a && m.state == MemberState::Active && m.ready))
        });
    }

    /// Waits until `pred` holds over (addr, state) of all members at every running tracker.
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&[(String, MemberState)]) -> bool) {
        self.wait_members(limit, |members| {
            let states: Vec<(String, MemberState)> = members.iter().map(|m| (m.addr.clone(), m.state)).collect();
            pred(&states)
        })
    }

    /// Waits until `pred` holds over all members at every running tracker.
    pub fn wait_members(&self, limit: Duration, pred: impl Fn(&[cairn_proto::MemberStatus]) -> bool) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let deadline = Instant::now() + limit;
        loop {
            let mut all_ok = true;
            for t in self.trackers.iter().filter(|t| t.child.is_some()) {
                let client = Client::new(ClientConfig::new(vec![t.addr.clone()], self.secret()));
                let members: Vec<cairn_proto::MemberStatus> = rt
                    .block_on(client.status())
                    .map(|m| m.groups.into_iter().flat_map(|g| g.members).collect())
                    .unwrap_or_default();
                all_ok &= pred(&members);
            }
            if all_ok {
                return;
            }
            assert!(Instant::now() < deadline, "cluster did not reach the expected state in {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node ID a storage node's data dir holds (waits for it to exist).
    pub fn node_id(&self, i: usize) -> u32 {
        let path = self.dir.path().join(format!("node{i}/node_id"));
        for _ in 0..100 {
            if let Some(id) = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()) {
                return id;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node{i} never wrote its node ID");
    }

    /// The incarnation the trackers know for node `i` (0 if unknown).
    pub fn incarnation(&self, i: usize) -> u64 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let addr = self.node_addr(i);
        rt.block_on(self.client().status())
            .ok()
            .and_then(|m| m.groups.into_iter().flat_map(|g| g.members).find(|m| m.addr == addr).map(|m| m.incarnation))
            .unwrap_or(0)
    }

    /// Waits until the process now running as node `i` (its ID, a new
    /// incarnation) is active and ready, and so has caught up.
    pub fn wait_restarted(&self, i: usize, old_incarnation: u64) {
        let (id, addr) = (self.node_id(i), self.node_addr(i));
        self.wait_members(Duration::from_secs(30), |members| {
            members.iter().any(|m| {
                m.id == id
                    && m.addr == addr
                    && m.incarnation != old_incarnation
                    && m.state == MemberState::Active
                    && m.ready
            })
        });
    }

    pub fn node_addr(&self, i: usize) -> String {
        self.nodes[i].1.addr.clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in self.trackers.iter().chain(self.nodes.iter().map(|(_, p)| p)).chain(self.metas.iter()) {
                eprintln!("----- {} ({}) log tail -----\n{}", p.name, p.addr, p.tail());
            }
        }
    }
}

/// How many files are under `dir`, counting through subdirectories; a
/// directory that cannot be read (not there yet) counts none.
pub fn count_files(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten().map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum()
}

/// Deterministic pseudo-random content.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Writes pseudo-random content to a file in chunks, without holding it all.
pub fn write_big_file(path: &Path, len: u64, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut left = len;
    let mut s = seed;
    while left > 0 {
        let n = left.min(1 << 20) as usize;
        f.write_all(&content(n, s)).expect("write");
        s += 1;
        left -= n as u64;
    }
    f.flush().expect("flush");
}

/// Compares two files chunk by chunk.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a).expect("open a"), std::fs::File::open(b).expect("open b"));
    if fa.metadata().map(|m| m.len()).ok() != fb.metadata().map(|m| m.len()).ok() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).expect("read a");
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).expect("read b");
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

/// (id, size, crc) of every blob a node holds, from the node itself.
pub fn listing(c: &Cluster, client: &Client, node: usize) -> BTreeMap<String, (u64, u32)> {
    rt().block_on(async {
        let mut out = BTreeMap::new();
        let mut after = None;
        loop {
            let r = client
                .node_call(&c.node_addr(node), &Request::ListBlobs { after: after.clone(), limit: 1000 })
                .await
                .unwrap();
            let Response::Blobs { blobs, more } = r else { panic!("unexpected {r:?}") };
            after = blobs.last().map(|b| b.file_id.clone());
            for b in blobs {
                out.insert(b.file_id, (b.size, b.crc32));
            }
            if !more {
                return out;
            }
        }
    })
}

pub fn read_from(client: &Client, addr: &str, id: &FileId) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    rt().block_on(client.download_from(addr, id, 0, None, &mut got)).ok().map(|_| got)
}

//! The CLI's shapes and the single-machine server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::common::{cairn_bin, free_port, Cluster};

#[test]
fn status_json_has_groups_members_and_states() {
    let c = Cluster::start(1, &[("g1", 2), ("g2", 1)]);
    let v: serde_json::Value = serde_json::from_str(&c.ok(&["status", "--json"])).unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["name"], "g1");
    assert_eq!(groups[0]["members"].as_array().unwrap().len(), 2);
    for g in groups {
        for m in g["members"].as_array().unwrap() {
            assert!(m["id"].as_u64().is_some());
            assert!(m["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
            assert_eq!(m["state"], "active");
        }
    }
    let table = c.ok(&["status"]);
    assert!(table.contains("group g1") && table.contains("active") && table.contains("primary"), "{table}");
    // uploads land in the named group
    let out = c.cli_stdin(&["upload", "--group", "g2", "-"], Some(b"x"));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("g2/"));
    let out = c.cli_stdin(&["upload", "--group", "nope", "-"], Some(b"x"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no group named nope"));
}

#[test]
fn a_full_group_and_an_unreachable_tracker_are_clear_errors() {
    let c = Cluster::start_full(1, &[("g1", 1)], &["--reserved-space", "100%"], &[]);
    let out = c.cli_stdin(&["upload", "-"], Some(b"x"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("full"), "{err}");
    let out = std::process::Command::new(cairn_bin())
        .args(["upload", "/dev/null", "--tracker", &format!("127.0.0.1:{}", free_port())])
        .env("CAIRN_SECRET", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no tracker reachable") && err.lines().count() == 1, "{err}");
}

#[test]
fn bench_reports_every_phase_as_json() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let out = c.ok(&["bench", "--size", "4K", "--count", "40", "--concurrency", "4", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for phase in ["upload", "download", "delete"] {
        for key in ["ops_per_s", "mib_per_s", "p50_ms", "p99_ms", "errors"] {
            assert!(v[phase][key].is_number(), "{phase}.{key} missing in {out}");
        }
        assert_eq!(v[phase]["errors"], 0);
    }
}

/// A `cairn server` of a test, with a home of its own: `XDG_STATE_HOME`
/// (where it records its secret's place) and `CAIRN_DATA` point into the
/// test's directory, never at the user's. Killed on drop.
struct Server {
    dir: tempfile::TempDir,
    child: Child,
    tracker: String,
    meta: String,
    http: String,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let tracker = format!("127.0.0.1:{}", free_port());
        let meta = format!("127.0.0.1:{}", free_port());
        let http = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = Command::new(cairn_bin());
        cmd.args(["server", "--data", dir.path().join("data").to_str().unwrap(), "--listen", &tracker])
            .args(["--storage-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--fastdfs-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--fastdfs-storage-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--http-listen", &http, "--meta-listen", &meta])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        Self::home(&mut cmd, dir.path());
        let child = cmd.spawn().unwrap();
        let server = Server { dir, child, tracker, meta, http };
        // Up once its tracker answers and the storage node has joined.
        for _ in 0..200 {
            if String::from_utf8_lossy(&server.cli(&["status"]).stdout).contains(" active ") {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not come up; log:\n{}", server.log());
    }

    /// The per-user places of a client or server of this test.
    fn home(cmd: &mut Command, dir: &Path) {
        cmd.env("XDG_STATE_HOME", dir.join("state"))
            .env("CAIRN_DATA", dir.join("client-data"))
            .env("HOME", dir)
            .env_remove("CAIRN_SECRET")
            .env_remove("CAIRN_TRACKER")
            .env_remove("CAIRN_META");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn secret(&self) -> PathBuf {
        self.dir.path().join("data").join("secret")
    }

    /// A client command as a user on this host runs it: nothing but the
    /// tracker's address (and the meta service's) given, unless `args` do.
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, &[])
    }

    fn cli_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(cairn_bin());
        cmd.args(args);
        if !args.contains(&"--tracker") {
            cmd.args(["--tracker", &self.tracker]);
        }
        if args.first() == Some(&"volume") && !args.contains(&"--meta") {
            cmd.args(["--meta", &self.meta]);
        }
        Self::home(&mut cmd, self.dir.path());
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        // A command that fails before reading its input closes the pipe.
        let _ = input.write_all(stdin);
        drop(input);
        child.wait_with_output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one line a failed command wrote, checked to be one line.
fn one_line_error(out: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("cairn: error: "), "{err}");
    err
}

#[test]
fn server_starts_a_working_cluster_and_its_clients_find_its_secret() {
    let server = Server::start();
    // Started with --data DIR, and the client was told nothing about it.
    let out = server.cli_stdin(&["upload", "-"], b"quick start");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.starts_with("group1/M00/"), "{}\nlog:\n{}", String::from_utf8_lossy(&out.stderr), server.log());
    assert_eq!(server.cli(&["download", &id, "-o", "-"]).stdout, b"quick start");
    // The last server started wins over a secret an earlier one left in
    // the default data dir; an exported CAIRN_DATA wins over both.
    let home = server.dir.path().join("home");
    let stale = home.join(".local/share/cairn");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("secret"), "an earlier server's\n").unwrap();
    let status = |data: Option<&Path>| {
        let mut cmd = Command::new(cairn_bin());
        cmd.args(["status", "--tracker", &server.tracker]);
        Server::home(&mut cmd, server.dir.path());
        cmd.env("HOME", &home).env_remove("XDG_DATA_HOME");
        match data {
            Some(d) => cmd.env("CAIRN_DATA", d),
            None => cmd.env_remove("CAIRN_DATA"),
        };
        cmd.output().unwrap()
    };
    assert!(status(None).status.success(), "{}", String::from_utf8_lossy(&status(None).stderr));
    let err = one_line_error(&status(Some(&stale)), 1);
    assert!(err.contains("authentication failed") && err.contains(stale.to_str().unwrap()), "{err}");
    let record = server.dir.path().join("state/cairn/server-secret");
    assert_eq!(std::fs::read_to_string(&record).unwrap().trim(), server.secret().to_str().unwrap());
    let log = server.log();
    assert!(log.contains(&format!("tracker  {}", server.tracker)) && log.contains(server.secret().to_str().unwrap()));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(server.secret()).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the secret file must not be readable by others");
}

#[test]
fn a_missing_secret_lists_every_place_looked() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(cairn_bin());
    cmd.args(["status", "--tracker", &format!("127.0.0.1:{}", free_port())]);
    Server::home(&mut cmd, dir.path());
    let err = one_line_error(&cmd.output().unwrap(), 1);
    let state = dir.path().join("state/cairn/server-secret");
    let data = dir.path().join("client-data/secret");
    for place in ["--secret-file", "CAIRN_SECRET", data.to_str().unwrap(), state.to_str().unwrap()] {
        assert!(err.contains(place), "{place} missing in: {err}");
    }
}

#[test]
fn a_wrong_secret_names_the_daemon_and_where_the_secret_came_from() {
    let server = Server::start();
    let wrong = server.dir.path().join("wrong");
    std::fs::write(&wrong, "not the secret\n").unwrap();
    let wrong = wrong.to_str().unwrap();
    for (args, role, addr) in
        [(vec!["status"], "tracker", &server.tracker), (vec!["volume", "list"], "meta service", &server.meta)]
    {
        let mut args = args.clone();
        args.extend(["--secret-file", wrong]);
        let err = one_line_error(&server.cli(&args), 1);
        assert!(err.starts_with(&format!("cairn: error: {role} {addr}: authentication failed")), "{err}");
        assert!(err.contains(&format!("secret is from --secret-file {wrong}")), "{err}");
        assert_eq!(err.matches("authentication failed").count(), 1, "{err}");
    }
}

#[test]
fn a_port_of_another_protocol_is_named() {
    let server = Server::start();
    let out = server.cli(&["status", "--tracker", &server.http]);
    let err = one_line_error(&out, 1);
    assert!(err.contains("does not speak Cairn's protocol; is it an HTTP port?"), "{err}");
    let gone = format!("127.0.0.1:{}", free_port());
    let err = one_line_error(&server.cli(&["status", "--tracker", &gone]), 1);
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
    let err = one_line_error(&server.cli(&["volume", "list", "--meta", &gone]), 1);
    assert!(err.starts_with(&format!("cairn: error: meta service {gone}: ")), "{err}");
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let run = |args: &[&str]| Command::new(cairn_bin()).args(args).output().unwrap();
    let err = one_line_error(&run(&["upload", "--no-such-flag"]), 2);
    assert!(err.contains("'--no-such-flag'") && err.trim_end().ends_with("(see cairn upload --help)"), "{err}");
    let err = one_line_error(&run(&["--log-level", "info", "volume", "create", "-o", "x"]), 2);
    assert!(err.trim_end().ends_with("(see cairn volume create --help)"), "{err}");
    let err = one_line_error(&run(&["volume", "create"]), 2);
    assert!(err.contains("<NAME>") && err.trim_end().ends_with("(see cairn volume create --help)"), "{err}");
    let err = one_line_error(&run(&["download", "--length", "x", "ID"]), 2);
    assert!(err.contains("'x'") && err.trim_end().ends_with("(see cairn download --help)"), "{err}");
    let err = one_line_error(&run(&["uplod"]), 2);
    assert!(err.contains("'upload'") && err.trim_end().ends_with("(see cairn --help)"), "{err}");
    let err = one_line_error(&run(&["status", "--log-level", "loud"]), 2);
    assert!(err.contains("--log-level"), "{err}");
    let help = run(&["server", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("meta service"));
    let help = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    assert!(help.contains("create|list|info|check|delete"), "{help}");
}

#[test]
fn a_bad_config_file_says_which_sections_exist() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    std::fs::write(&file, "[tracker]\nlisten = \"127.0.0.1:1\"\n\n[gateway]\nlisten = \"x\"\n").unwrap();
    let out = Command::new(cairn_bin())
        .args(["tracker", "--config", file.to_str().unwrap(), "--data", dir.path().to_str().unwrap()])
        .env("CAIRN_SECRET", "x")
        .output()
        .unwrap();
    let err = one_line_error(&out, 1);
    assert!(err.contains(
        "line 4: unknown section [gateway]; this version reads [tracker], [storage], [meta], [server] and [mount]"
    ));
}

#[test]
fn server_logs_are_plain_text_quiet_about_early_closes_and_say_when_they_stop() {
    let mut server = Server::start();
    // Large enough to go out with sendfile, which the early close interrupts.
    let big = crate::common::content(16 << 20, 7);
    let id = String::from_utf8(server.cli_stdin(&["upload", "-"], &big).stdout).unwrap().trim().to_string();
    assert!(id.starts_with("group1/"), "{}", server.log());
    for _ in 0..3 {
        let mut cmd = Command::new(cairn_bin());
        cmd.args(["download", &id, "-o", "-", "--tracker", &server.tracker]);
        Server::home(&mut cmd, server.dir.path());
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = [0u8; 1];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a reader that had enough is no failure: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let log = server.log();
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log}");
    assert!(!log.contains(" ERROR "), "an early close logged as an error:\n{log}");
    assert!(!log.contains("=Some("), "an Option logged with its Debug form:\n{log}");
    assert!(log.contains("INFO received SIGTERM, shutting down") && log.contains("INFO stopped"), "{log}");
}

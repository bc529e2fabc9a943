//! The CLI's shapes and the single-machine server.

use std::time::Duration;

use crate::common::{cairn_bin, free_port, Cluster, Proc};

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

#[test]
fn server_starts_a_working_cluster_with_its_own_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (tp, sp) = (free_port(), free_port());
    let tracker = format!("127.0.0.1:{tp}");
    let args: Vec<String> = [
        "server",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        &tracker,
        "--storage-listen",
        &format!("127.0.0.1:{sp}"),
        "--fastdfs-listen",
        &format!("127.0.0.1:{}", free_port()),
        "--fastdfs-storage-listen",
        &format!("127.0.0.1:{}", free_port()),
        "--http-listen",
        &format!("127.0.0.1:{}", free_port()),
        "--meta-listen",
        &format!("127.0.0.1:{}", free_port()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = Proc {
        name: "server".into(),
        addr: tracker.clone(),
        args,
        log: dir.path().join("server.log"),
        child: None,
        fastdfs: None,
        http: None,
    };
    let mut server = server;
    server.start();
    let secret = data.join("secret");
    let run = |args: &[&str], stdin: Option<&[u8]>| {
        use std::io::Write;
        let mut child = std::process::Command::new(cairn_bin())
            .args(args)
            .args(["--tracker", &tracker, "--secret-file", secret.to_str().unwrap()])
            .env_remove("CAIRN_SECRET")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        // The child may exit before reading (server not up yet): that is
        // what the retry loop is for, not a test failure.
        let _ = input.write_all(stdin.unwrap_or_default());
        drop(input);
        child.wait_with_output().unwrap()
    };
    let mut id = String::new();
    for _ in 0..100 {
        let out = run(&["upload", "-"], Some(b"quick start"));
        if out.status.success() {
            id = String::from_utf8(out.stdout).unwrap().trim().to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        id.starts_with("group1/M00/"),
        "server never took an upload; log:\n{}",
        std::fs::read_to_string(&server.log).unwrap_or_default()
    );
    let out = run(&["download", &id, "-o", "-"], None);
    assert_eq!(out.stdout, b"quick start");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains(&format!("tracker  {tracker}")) && log.contains(secret.to_str().unwrap()), "{log}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the secret file must not be readable by others");
}

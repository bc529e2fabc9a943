//! Bad input: hostile file IDs, garbage on the wire, wrong secrets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cairn_client::{Body, UploadOptions};
use rand::RngCore;

use crate::common::{content, Cluster};

fn refused(c: &Cluster, args: &[&str], expect: &str) {
    let out = c.cli(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cairn {args:?} succeeded");
    assert!(err.contains(expect), "cairn {args:?}: expected {expect:?} in {err:?}");
    assert!(!err.contains("panicked") && err.lines().count() == 1, "not a clean one-line error: {err}");
}

#[test]
fn hostile_file_ids_are_refused() {
    let c = Cluster::start(1, &[("g1", 1)]);
    let good_name = "oYYBAGsBecWACOG5AAGGoM4nA6g482.bin";
    for bad in [
        "g1/M00/../00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin".to_string(),
        "g1/M00/00/00/../../../../../etc/passwd".to_string(),
        "/etc/passwd".to_string(),
        "/g1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin".to_string(),
        // (`…48.bin` would be a well-formed slave name: prefix `48`.)
        "g1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g48..bin".to_string(),
        "g1/M00/00/00/short".to_string(),
        "g1/MZZ/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin".to_string(),
        "g1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin/../x".to_string(),
    ] {
        for cmd in ["download", "delete", "info"] {
            refused(&c, &[cmd, &bad], "invalid file ID");
        }
    }
    refused(&c, &["download", &format!("nogroup/M00/00/00/{good_name}")], "no group named nogroup");
    refused(&c, &["download", &format!("g1/M05/00/00/{good_name}")], "no store path");
    refused(&c, &["download", &format!("g1/M00/00/00/{good_name}")], "no such file");
    refused(&c, &["delete", &format!("g1/M00/00/00/{good_name}")], "no such file");
    refused(&c, &["upload", "--ext", "../x", "/dev/null"], "extension");
    refused(&c, &["upload", "/definitely/not/here"], "cannot read");
}

/// Sends bytes on a raw connection and closes it.
fn poke(addr: &str, bytes: &[u8]) {
    if let Ok(mut s) = TcpStream::connect(addr) {
        let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
        let _ = s.write_all(bytes);
        let mut sink = [0u8; 4096];
        let _ = s.read(&mut sink);
    }
}

#[test]
fn garbage_and_truncated_frames_leave_every_daemon_serving() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let addrs: Vec<String> = c.trackers.iter().map(|t| t.addr.clone()).chain((0..2).map(|i| c.node_addr(i))).collect();
    let mut rng = rand::thread_rng();
    for addr in &addrs {
        for len in [1usize, 3, 4, 5, 100, 4096, 70_000] {
            let mut junk = vec![0u8; len];
            rng.fill_bytes(&mut junk);
            poke(addr, &junk);
        }
        poke(addr, &u32::MAX.to_be_bytes());
        poke(addr, &[0, 0, 0, 50, 1, 2, 3]);
        poke(addr, &[]);
    }
    // Authenticated, then garbage or a cut-off frame: the daemon drops that
    // connection and nothing else.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        for addr in &addrs {
            for bytes in
                [vec![0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], vec![0, 0, 1, 0, 7], vec![0, 0]]
            {
                let mut conn = cairn_proto::net::connect(addr, &c.secret(), Duration::from_secs(3)).await.unwrap();
                conn.write_all(&bytes).await.unwrap();
                conn.flush().await.unwrap();
                drop(conn);
            }
            // an upload whose body is cut off mid-chunk
            let mut conn = cairn_proto::net::connect(addr, &c.secret(), Duration::from_secs(3)).await.unwrap();
            let req = cairn_proto::Request::Upload { appender: false, ext: String::new(), store_path: None };
            cairn_proto::frame::write_frame(&mut conn, &req).await.unwrap();
            conn.write_all(&[0, 0, 16, 0, 1, 2, 3]).await.unwrap();
            conn.flush().await.unwrap();
            drop(conn);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let client = c.client();
    let data = content(100_000, 9);
    let id =
        rt.block_on(client.upload(&UploadOptions::default(), Body::from(data.clone()))).expect("cluster still serves");
    for i in 0..2 {
        let mut got = Vec::new();
        rt.block_on(client.download_from(&c.node_addr(i), &id, 0, None, &mut got)).unwrap();
        assert_eq!(got, data);
    }
    // no spool was left behind by the cut-off upload
    for i in 0..2 {
        let tmp = c.dir.path().join(format!("node{i}/store0/tmp"));
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "leftover spool in {}", tmp.display());
    }
}

#[test]
fn a_wrong_secret_is_refused_with_a_clear_error() {
    let c = Cluster::start(1, &[("g1", 1)]);
    let out = std::process::Command::new(crate::common::cairn_bin())
        .args(["status", "--tracker", &c.trackers[0].addr])
        .env("CAIRN_SECRET", "not-the-secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secret"), "{err}");
    // a storage node with the wrong secret never joins
    let dir = c.dir.path().join("intruder");
    let port = crate::common::free_port();
    let mut p = std::process::Command::new(crate::common::cairn_bin())
        .args(["storage", "--tracker", &c.trackers[0].addr, "--group", "g1", "--data", dir.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--heartbeat-ms", "100"])
        .env("CAIRN_SECRET", "not-the-secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let status = c.ok(&["status", "--json"]);
    let _ = p.kill();
    let _ = p.wait();
    assert!(!status.contains(&port.to_string()), "intruder joined: {status}");
}

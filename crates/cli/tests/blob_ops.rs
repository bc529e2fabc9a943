//! The blob layer end to end on a group of three.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_client::{Body, UploadOptions};
use cairn_proto::{FileId, Request, Response};

use crate::common::{content, same_file, write_big_file, Cluster};

fn from_each(c: &Cluster, id: &str, extra: &[&str]) -> Vec<Vec<u8>> {
    (0..c.nodes.len())
        .map(|i| {
            let addr = c.node_addr(i);
            let mut args = vec!["download", id, "--from", addr.as_str(), "-o", "-"];
            args.extend_from_slice(extra);
            let out = c.cli(&args);
            assert!(out.status.success(), "download from {addr}: {}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        })
        .collect()
}

#[test]
fn files_of_every_size_read_back_identical_from_each_member() {
    let c = Cluster::start(1, &[("g1", 3)]);
    for (i, size) in [0u64, 1, 4096, 1 << 20, 300 << 20].into_iter().enumerate() {
        let src = c.dir.path().join(format!("in{i}.bin"));
        write_big_file(&src, size, i as u64);
        let id = c.ok(&["upload", src.to_str().unwrap()]).trim().to_string();
        assert!(id.starts_with("g1/M00/"), "{id}");
        assert!(id.ends_with(".bin"), "{id}");
        for n in 0..3 {
            let out = c.dir.path().join(format!("out{i}-{n}.bin"));
            c.ok(&["download", &id, "--from", &c.node_addr(n), "-o", out.to_str().unwrap()]);
            assert!(same_file(&src, &out), "size {size} differs on node {n}");
            std::fs::remove_file(&out).unwrap();
        }
        let info: serde_json::Value = serde_json::from_str(&c.ok(&["info", &id, "--json"])).unwrap();
        assert_eq!(info["size"], size);
        assert_eq!(info["appender"], false);
    }
}

#[test]
fn ranged_reads() {
    let c = Cluster::start(1, &[("g1", 3)]);
    let data = content((1 << 20) + 3, 7);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(c.client().upload(&UploadOptions::default(), Body::from(data.clone()))).unwrap().to_string();
    for (off, len) in
        [(0usize, Some(10usize)), (65535, Some(2)), (1_000_000, None), (data.len() - 1, Some(100)), (data.len(), None)]
    {
        let mut extra = vec!["--offset".to_string(), off.to_string()];
        if let Some(l) = len {
            extra.extend(["--length".to_string(), l.to_string()]);
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let end = len.map(|l| (off + l).min(data.len())).unwrap_or(data.len());
        for got in from_each(&c, &id, &extra) {
            assert_eq!(got, &data[off..end], "range {off}+{len:?}");
        }
    }
    let out = c.cli(&["download", &id, "--offset", &(data.len() + 1).to_string(), "-o", "-"]);
    assert!(!out.status.success());
}

#[test]
fn appender_mutations_reach_every_member() {
    let c = Cluster::start(1, &[("g1", 3)]);
    let out = c.cli_stdin(&["upload", "--appender", "-"], Some(b"hello"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(FileId::parse(&id).unwrap().info().is_appender());
    assert!(c.cli_stdin(&["append", &id, "-"], Some(b" world")).status.success());
    assert!(c.cli_stdin(&["modify", &id, "0", "-"], Some(b"J")).status.success());
    for got in from_each(&c, &id, &[]) {
        assert_eq!(got, b"Jello world");
    }
    c.ok(&["truncate", &id, "8"]);
    for got in from_each(&c, &id, &[]) {
        assert_eq!(got, b"Jello wo");
    }
    // large append through a file, across block boundaries
    let big = content(200_000, 3);
    let f = c.dir.path().join("more.bin");
    std::fs::write(&f, &big).unwrap();
    c.ok(&["append", &id, f.to_str().unwrap()]);
    let mut model = b"Jello wo".to_vec();
    model.extend_from_slice(&big);
    for got in from_each(&c, &id, &[]) {
        assert_eq!(got, model);
    }
    let info: serde_json::Value = serde_json::from_str(&c.ok(&["info", &id, "--json"])).unwrap();
    assert_eq!(info["size"], model.len());
    assert_eq!(info["crc32"], format!("{:08x}", crc32(&model)));
    // a regular file refuses appender operations
    let reg = c.cli_stdin(&["upload", "-"], Some(b"plain"));
    let reg = String::from_utf8(reg.stdout).unwrap().trim().to_string();
    let out = c.cli_stdin(&["append", &reg, "-"], Some(b"x"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an appender"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn crc32(data: &[u8]) -> u32 {
    // bitwise CRC32 (IEEE), independent of the implementation under test
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn meta_on(c: &Cluster, node: usize, id: &str) -> BTreeMap<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut conn =
            cairn_proto::net::connect(&c.node_addr(node), &c.secret(), Duration::from_secs(3)).await.unwrap();
        match cairn_proto::net::call(&mut conn, &Request::GetMeta { file_id: id.to_string() }).await.unwrap() {
            Response::Meta(m) => m.into_iter().collect(),
            other => panic!("unexpected {other:?}"),
        }
    })
}

#[test]
fn metadata_and_slave_files() {
    let c = Cluster::start(1, &[("g1", 3)]);
    let src = c.dir.path().join("photo.jpg");
    std::fs::write(&src, content(50_000, 1)).unwrap();
    let id = c.ok(&["upload", src.to_str().unwrap()]).trim().to_string();
    c.ok(&["meta-set", &id, "width=1024", "height=768"]);
    c.ok(&["meta-set", &id, "--merge", "height=800", "author=ann"]);
    let m: BTreeMap<String, String> = serde_json::from_str(&c.ok(&["meta-get", &id, "--json"])).unwrap();
    let want: BTreeMap<String, String> = [("author", "ann"), ("height", "800"), ("width", "1024")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(m, want);
    for n in 0..3 {
        assert_eq!(meta_on(&c, n, &id), want, "metadata on node {n}");
    }
    c.ok(&["meta-set", &id, "only=this"]);
    assert_eq!(c.ok(&["meta-get", &id]), "only=this\n");
    for n in 0..3 {
        assert_eq!(meta_on(&c, n, &id).len(), 1);
    }

    let thumb = c.dir.path().join("thumb.jpg");
    std::fs::write(&thumb, content(3_000, 2)).unwrap();
    let sid = c.ok(&["upload", "--slave-of", &id, "--prefix", "_150x150", thumb.to_str().unwrap()]).trim().to_string();
    assert_eq!(sid, format!("{}_150x150.jpg", id.trim_end_matches(".jpg")));
    for got in from_each(&c, &sid, &[]) {
        assert_eq!(got, content(3_000, 2));
    }
    // the same slave twice is refused; a slave of a missing master too
    assert!(!c.cli(&["upload", "--slave-of", &id, "--prefix", "_150x150", thumb.to_str().unwrap()]).status.success());
    c.ok(&["delete", &id]);
    assert!(!c.cli(&["upload", "--slave-of", &id, "--prefix", "_s", thumb.to_str().unwrap()]).status.success());
}

#[test]
fn delete_removes_the_file_from_every_member() {
    let c = Cluster::start(1, &[("g1", 3)]);
    let out = c.cli_stdin(&["upload", "--ext", "txt", "-"], Some(b"bye"));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(from_each(&c, &id, &[]), vec![b"bye".to_vec(); 3]);
    c.ok(&["delete", &id]);
    for n in 0..3 {
        let out = c.cli(&["download", &id, "--from", &c.node_addr(n), "-o", "-"]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no such file"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = c.cli(&["delete", &id]);
    assert!(!out.status.success(), "a second delete reports the file missing");
}

#[test]
fn concurrent_uploads_from_eight_clients_get_distinct_ids() {
    let c = Cluster::start(1, &[("g1", 3)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let trackers: Vec<String> = c.trackers.iter().map(|t| t.addr.clone()).collect();
    let secret = c.secret();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let client = cairn_client::Client::new(cairn_client::ClientConfig::new(trackers.clone(), secret.clone()));
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..25u64 {
                    let data = content(1000 + (w * 25 + i) as usize, w * 1000 + i);
                    let id = client.upload(&UploadOptions::default(), Body::from(data.clone())).await.expect("upload");
                    out.push((id, data));
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert_eq!(results.len(), 200);
    let ids: std::collections::HashSet<String> = results.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(ids.len(), 200, "IDs must be distinct");
    let client = c.client();
    rt.block_on(async {
        for (n, (id, data)) in results.iter().enumerate() {
            let addr = c.node_addr(n % 3);
            let mut got = Vec::new();
            client.download_from(&addr, id, 0, None, &mut got).await.expect("download");
            assert_eq!(&got, data);
        }
    });
}

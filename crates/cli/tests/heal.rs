//! Recovery: members that come back, wiped disks, corruption behind a
//! node's back. Real processes, real SIGKILL.

use std::time::Duration;

use cairn_client::{Body, Client, UploadOptions};
use cairn_proto::FileId;

use crate::common::{content, count_files, listing, read_from, rt, Cluster};

fn upload_many(client: &Client, n: u64, seed: u64) -> Vec<(FileId, Vec<u8>)> {
    rt().block_on(async {
        let mut out = Vec::new();
        for i in 0..n {
            let data = content(1000 + (i as usize * 997) % 70_000, seed + i);
            let id = client.upload(&UploadOptions::default(), Body::from(data.clone())).await.expect("upload");
            out.push((id, data));
        }
        out
    })
}

/// Blob path on a node's disk, for damaging it behind the node's back.
fn blob_path(c: &Cluster, node: usize, id: &FileId) -> std::path::PathBuf {
    c.dir.path().join(format!("node{node}/store0/data/{:02X}/{:02X}/{}", id.dir1(), id.dir2(), id.name()))
}

#[test]
fn a_member_back_from_sigkill_catches_up_and_applies_deletes() {
    let mut c = Cluster::start(1, &[("g1", 3)]);
    let client = c.client();
    let before = upload_many(&client, 20, 1);
    let appender = rt()
        .block_on(client.upload(&UploadOptions { appender: true, ..Default::default() }, Body::from(b"log:".to_vec())))
        .unwrap();
    let old = c.incarnation(2);
    c.nodes[2].1.kill();
    let during = upload_many(&client, 20, 100);
    rt().block_on(async {
        for (id, _) in &before[..10] {
            client.delete(id).await.expect("delete while a member is down");
        }
        client.append(&appender, Body::from(b" more".to_vec())).await.expect("append while a member is down");
    });
    c.nodes[2].1.start();
    c.wait_restarted(2, old);
    let addr = c.node_addr(2);
    for (id, data) in before[10..].iter().chain(during.iter()) {
        assert!(read_from(&client, &addr, id).as_ref() == Some(data), "{id} missing or wrong on the returned member");
    }
    for (id, _) in &before[..10] {
        assert!(read_from(&client, &addr, id).is_none(), "{id} was deleted while the member was away");
    }
    assert_eq!(read_from(&client, &addr, &appender).unwrap(), b"log: more");
    let l0 = listing(&c, &client, 0);
    assert_eq!(listing(&c, &client, 1), l0);
    assert_eq!(listing(&c, &client, 2), l0, "every member holds the same files with the same checksums");
    let heal: serde_json::Value = serde_json::from_str(&c.ok(&["heal", "status", "--json"])).unwrap();
    assert_eq!(heal["groups"][0]["healthy"], true, "{heal}");
}

#[test]
fn a_wiped_member_fills_up_from_its_peers() {
    let mut c = Cluster::start(1, &[("g1", 2)]);
    let client = c.client();
    let files = upload_many(&client, 40, 7);
    let old = c.incarnation(1);
    c.nodes[1].1.kill();
    let data = c.dir.path().join("node1");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    c.nodes[1].1.start();
    c.wait_restarted(1, old);
    let addr = c.node_addr(1);
    for (id, d) in &files {
        assert!(read_from(&client, &addr, id).as_ref() == Some(d), "{id} missing or wrong on the wiped member");
    }
    // the old ID (same address, now offline) is dropped at the next heartbeats
    c.wait_members(Duration::from_secs(10), |m| m.len() == 2);
    assert_eq!(listing(&c, &client, 1), listing(&c, &client, 0));
    let status: serde_json::Value = serde_json::from_str(&c.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        status["groups"][0]["members"].as_array().unwrap().len(),
        2,
        "the wiped node's old ID is gone: {status}"
    );
    let heal = c.ok(&["heal", "status"]);
    assert!(heal.contains("2/2 members in sync (healthy)"), "{heal}");
}

#[test]
fn scrub_finds_and_repairs_damaged_blobs_and_reads_stay_correct() {
    // A file per blob here; damage inside pack files is the next test.
    let c = Cluster::start_with(1, &[("g1", 2)], &["--scrub-interval-secs", "0", "--pack-max-size", "0"]);
    let client = c.client();
    let files = upload_many(&client, 200, 11);
    // 1% flipped bits, plus one truncated and one removed behind the node's back
    for (id, _) in &files[0..2] {
        let p = blob_path(&c, 1, id);
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len() / 2;
        bytes[n] ^= 0x55;
        std::fs::write(&p, bytes).unwrap();
    }
    let p = blob_path(&c, 1, &files[2].0);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len / 3).unwrap();
    std::fs::remove_file(blob_path(&c, 1, &files[3].0)).unwrap();
    // Reads during the damage return correct bytes (from the healthy member).
    rt().block_on(async {
        for (id, d) in &files[..4] {
            for _ in 0..2 {
                assert!(&client.download_bytes(id, 0, None).await.unwrap() == d, "{id} read wrong bytes");
            }
        }
    });
    assert_eq!(scrub_and_wait(&c, 1).0, 200);
    let addr = c.node_addr(1);
    for (id, d) in &files {
        assert!(read_from(&client, &addr, id).as_ref() == Some(d), "{id} missing or wrong after the scrub");
    }
    assert_eq!(listing(&c, &client, 1), listing(&c, &client, 0));
}

#[test]
fn large_reads_are_checked_block_by_block_by_the_client_and_a_damaged_copy_is_repaired() {
    // Reads of 256 KiB and more get whole blocks the node does not check
    // (it sends them from its page cache); the client checks each one.
    let c = Cluster::start_with(1, &[("g1", 2)], &["--scrub-interval-secs", "0"]);
    let client = c.client();
    // More than one reply's worth of blocks (64 MiB), and a short last block.
    let big = content(65 * 1024 * 1024 + 12_345, 77);
    let mid = content(3 * 1024 * 1024 + 999, 78);
    let (big_id, mid_id) = rt().block_on(async {
        let b = client.upload(&UploadOptions::default(), Body::from(big.clone())).await.expect("upload");
        let m = client.upload(&UploadOptions::default(), Body::from(mid.clone())).await.expect("upload");
        (b, m)
    });
    let (a0, a1) = (c.node_addr(0), c.node_addr(1));
    rt().block_on(async {
        let mut got = Vec::new();
        client.download_from(&a0, &big_id, 0, None, &mut got).await.expect("whole");
        assert!(got == big, "a read of more than one reply's blocks");
        for (at, len) in [(100_000u64, Some(2_000_000u64)), (65_536, Some(300_000)), (3_000_000, None)] {
            let mut got = Vec::new();
            client.download_from(&a0, &mid_id, at, len, &mut got).await.expect("range");
            let end = len.map_or(mid.len(), |l| (at + l) as usize);
            assert!(got == mid[at as usize..end], "range {at}+{len:?}");
        }
    });
    // Damage one byte of the second MiB on member 1, behind its back.
    let p = blob_path(&c, 1, &mid_id);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[(1 << 20) + 4321] ^= 0x01;
    std::fs::write(&p, bytes).unwrap();
    rt().block_on(async {
        // Blocks before the damage are served; a read through it is
        // refused by that member, never answered with the bad byte.
        let mut head = Vec::new();
        client.download_from(&a1, &mid_id, 0, Some(1 << 20), &mut head).await.expect("undamaged range");
        assert!(head == mid[..1 << 20]);
        let mut got = Vec::new();
        let err = client.download_from(&a1, &mid_id, 0, None, &mut got).await;
        assert!(err.is_err(), "the damaged member refuses the read");
        assert!(got.len() <= 1 << 20, "no byte of the damaged block was handed out ({} were)", got.len());
        // Any member: the healthy one answers.
        for _ in 0..3 {
            assert!(client.download_bytes(&mid_id, 0, None).await.unwrap() == mid);
        }
    });
    // The damaged member had its copy repaired from its peer.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while read_from(&client, &a1, &mid_id).as_ref() != Some(&mid) {
        assert!(std::time::Instant::now() < deadline, "the damaged copy was not repaired");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs a scrub on `node` and waits for it to finish; returns how many
/// blobs it checked.
/// Runs a scrub of `node` and waits for it: (blobs checked, bad ones found).
fn scrub_and_wait(c: &Cluster, node: usize) -> (u64, u64) {
    let out = c.ok(&["scrub", "start", "--node", &c.node_addr(node)]);
    assert!(out.contains("running") || out.contains("scrubs done"), "{out}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v: serde_json::Value = serde_json::from_str(&c.ok(&["scrub", "status", "--json"])).unwrap();
        let n = v["nodes"].as_array().unwrap().iter().find(|n| n["addr"] == c.node_addr(node)).unwrap().clone();
        if n["scrub"]["completed"].as_u64() >= Some(1) && n["scrub"]["running"] == false {
            return (n["scrub"]["checked"].as_u64().unwrap(), n["scrub"]["bad"].as_u64().unwrap());
        }
        assert!(std::time::Instant::now() < deadline, "scrub did not finish: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bit_rot_inside_pack_files_is_repaired_and_packed_blobs_survive_sigkill() {
    let mut c = Cluster::start_with(1, &[("g1", 2)], &["--scrub-interval-secs", "0"]);
    let client = c.client();
    let files = upload_many(&client, 60, 31);
    let packs = c.dir.path().join("node1/store0/packs");
    let mut pack_files: Vec<_> = std::fs::read_dir(&packs).unwrap().flatten().map(|e| e.path()).collect();
    pack_files.sort();
    assert!(!pack_files.is_empty(), "small uploads are packed");
    let blob_dir = c.dir.path().join("node1/store0/data");
    let loose = count_files(&blob_dir);
    assert_eq!(loose, 0, "no file of its own for a small blob");
    // Flip a bit in the middle of three blobs' content, found in the pack
    // by their bytes.
    for (_, data) in &files[..3] {
        let path = pack_files.last().unwrap();
        let mut bytes = std::fs::read(path).unwrap();
        let at = bytes.windows(data.len()).position(|w| w == &data[..]).expect("content is in the pack");
        bytes[at + data.len() / 2] ^= 0x10;
        std::fs::write(path, bytes).unwrap();
    }
    rt().block_on(async {
        for (id, d) in &files[..3] {
            assert!(&client.download_bytes(id, 0, None).await.unwrap() == d, "{id} read wrong bytes");
        }
    });
    // The reads above queued repairs of what they found bad, which may run
    // beside this scrub: a blob under repair is swapped for its good copy
    // in one step, so the scrub still lists all 60. A second scrub, after
    // every repair, must find nothing bad.
    assert_eq!(scrub_and_wait(&c, 1).0, 60);
    assert_eq!(scrub_and_wait(&c, 1), (60, 0));
    let addr = c.node_addr(1);
    for (id, d) in &files {
        assert!(read_from(&client, &addr, id).as_ref() == Some(d), "{id} missing or wrong after the scrub");
    }
    // Deletes and a SIGKILL: what was acknowledged is there after the
    // restart, what was deleted is not.
    rt().block_on(async {
        for (id, _) in &files[..20] {
            client.delete(id).await.expect("delete");
        }
    });
    let old = c.incarnation(1);
    c.nodes[1].1.kill();
    c.nodes[1].1.start();
    c.wait_restarted(1, old);
    for (i, (id, d)) in files.iter().enumerate() {
        let got = read_from(&client, &addr, id);
        if i < 20 {
            assert!(got.is_none(), "{id} was deleted");
        } else {
            assert!(got.as_ref() == Some(d), "{id} missing or wrong after SIGKILL");
        }
    }
    assert_eq!(listing(&c, &client, 1), listing(&c, &client, 0));
}

#[test]
fn a_spare_added_to_a_group_fills_up_and_a_removed_member_serves_nothing() {
    let mut c = Cluster::start(1, &[("g1", 2)]);
    let client = c.client();
    let files = upload_many(&client, 30, 21);
    let spare = c.add_node("", &[]);
    let addr = c.node_addr(spare);
    // The spare shows up as such, and is not a member of anything yet.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !c.ok(&["status"]).contains(&addr) {
        assert!(std::time::Instant::now() < deadline, "the spare never reported");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = c.ok(&["group", "add-node", "g1", &addr]);
    assert!(out.contains("joins g1"), "{out}");
    c.wait_members(Duration::from_secs(30), |m| {
        m.iter().any(|m| m.addr == addr && m.state == cairn_proto::MemberState::Active && m.ready)
    });
    for (id, d) in &files {
        assert!(read_from(&client, &addr, id).as_ref() == Some(d), "{id} missing on the added member");
    }
    // Remove an original member: the group stays writable and healthy.
    let gone = c.node_id(0);
    let out = c.ok(&["group", "remove-node", "g1", &gone.to_string()]);
    assert!(out.contains("removed"), "{out}");
    c.wait_members(Duration::from_secs(10), |m| {
        m.iter().any(|m| m.id == gone && m.state == cairn_proto::MemberState::Removed)
    });
    // The node hears it at its next heartbeat and stops serving.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read_from(&client, &c.node_addr(0), &files[0].0).is_some() {
        assert!(std::time::Instant::now() < deadline, "the removed member still serves reads");
        std::thread::sleep(Duration::from_millis(100));
    }
    let more = upload_many(&client, 5, 500);
    let heal: serde_json::Value = serde_json::from_str(&c.ok(&["heal", "status", "--json"])).unwrap();
    assert_eq!(heal["groups"][0]["healthy"], true, "{heal}");
    for (id, _) in &more {
        assert!(read_from(&client, &c.node_addr(0), id).is_none(), "a removed member serves nothing");
    }
    // The node remembers it was removed, across a restart.
    c.nodes[0].1.kill();
    c.nodes[0].1.start();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(read_from(&client, &c.node_addr(0), &files[0].0).is_none(), "still removed after a restart");
    let last = c.cli(&["group", "remove-node", "g1", &c.node_id(1).to_string()]);
    assert!(last.status.success(), "another member can go while one stays active");
    let refused = c.cli(&["group", "remove-node", "g1", &c.node_id(spare).to_string()]);
    assert!(!refused.status.success(), "the last active member cannot be removed");
}

//! Deletes stay done: a delete is durable by its binlog line alone (the
//! pack tombstone and the unlinks are not synced, docs/decisions/0013), so
//! these kill members right after deletes were acknowledged and check that
//! no deleted file is read, listed or copied back, on any member. Real
//! processes, real SIGKILL.

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_client::{Body, Client, UploadOptions};
use cairn_proto::FileId;

use crate::common::{content, listing, read_from, rt, Cluster};

/// Uploads small (packed) and large (a file each) blobs.
fn upload_mixed(client: &Client, small: u64, large: u64, seed: u64) -> Vec<(FileId, Vec<u8>)> {
    rt().block_on(async {
        let mut out = Vec::new();
        for i in 0..small + large {
            let len = if i < small { 4096 } else { 1 << 20 };
            let data = content(len, seed + i);
            let id = client.upload(&UploadOptions::default(), Body::from(data.clone())).await.expect("upload");
            out.push((id, data));
        }
        out
    })
}

/// Deletes `ids` from 8 tasks at once (so they share syncs), each
/// acknowledged.
fn delete_all(client: Arc<Client>, ids: Vec<FileId>) {
    rt().block_on(async move {
        let ids = Arc::new(ids);
        let tasks: Vec<_> = (0..8)
            .map(|k| {
                let (client, ids) = (client.clone(), ids.clone());
                tokio::spawn(async move {
                    for id in ids.iter().skip(k).step_by(8) {
                        client.delete(id).await.expect("delete acknowledged");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("delete task");
        }
    });
}

fn cp(from: &std::path::Path, to: &std::path::Path) {
    let ok = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp").success();
    assert!(ok, "cp -a {from:?} {to:?}");
}

/// Node `node` neither serves nor lists any of `gone`, and serves every one
/// of `kept` whole.
fn check_node(c: &Cluster, client: &Client, node: usize, gone: &[FileId], kept: &[(FileId, Vec<u8>)]) {
    let addr = c.node_addr(node);
    let listed: BTreeSet<String> = listing(c, client, node).into_keys().collect();
    for id in gone {
        assert!(read_from(client, &addr, id).is_none(), "node {node}: deleted {id} is readable again");
        assert!(!listed.contains(&id.to_string()), "node {node}: deleted {id} is listed again");
    }
    for (id, data) in kept {
        assert!(read_from(client, &addr, id).as_ref() == Some(data), "node {node}: {id} missing or wrong");
    }
}

#[test]
fn deletes_acknowledged_just_before_a_sigkill_stay_done_on_every_member() {
    let mut c = Cluster::start(1, &[("g1", 2)]);
    let client = Arc::new(c.client());
    let files = upload_mixed(&client, 60, 6, 1);
    let (gone, kept): (Vec<_>, Vec<_>) = files.into_iter().enumerate().partition(|(i, _)| i % 3 != 0);
    let gone: Vec<FileId> = gone.into_iter().map(|(_, (id, _))| id).collect();
    let kept: Vec<(FileId, Vec<u8>)> = kept.into_iter().map(|(_, f)| f).collect();
    // Each node's store path (packs and blob files, not its binlog) as it
    // is before the deletes, copied while the node is stopped.
    let stores: Vec<_> = (0..2).map(|i| c.dir.path().join(format!("node{i}/store0"))).collect();
    let saved: Vec<_> = (0..2).map(|i| c.dir.path().join(format!("node{i}-store0-before"))).collect();
    for i in 0..2 {
        c.nodes[i].1.signal("STOP");
        cp(&stores[i], &saved[i]);
        c.nodes[i].1.signal("CONT");
    }
    delete_all(client.clone(), gone.clone());
    // Killed the moment the last delete was acknowledged: neither the
    // once-a-second binlog flush nor any later sync ran for these.
    let olds: Vec<u64> = (0..2).map(|i| c.incarnation(i)).collect();
    for i in 0..2 {
        c.nodes[i].1.kill();
    }
    // Both come back as a power cut of the whole group may leave them:
    // none of the pack tombstones and renames, which are not synced,
    // reached their disks; the synced binlog lines did. Neither has an
    // active peer to catch up from, so each must delete them all again at
    // open on its own.
    for i in 0..2 {
        std::fs::remove_dir_all(&stores[i]).unwrap();
        cp(&saved[i], &stores[i]);
    }
    for i in 0..2 {
        c.nodes[i].1.start();
    }
    for (i, old) in olds.into_iter().enumerate() {
        c.wait_restarted(i, old);
    }
    for node in 0..2 {
        check_node(&c, &client, node, &gone, &kept);
    }
    assert_eq!(listing(&c, &client, 0), listing(&c, &client, 1), "both members hold the same files");
}

#[test]
fn deletes_made_while_a_member_was_away_reach_it_even_after_its_source_was_killed() {
    let mut c = Cluster::start(1, &[("g1", 3)]);
    let client = Arc::new(c.client());
    let files = upload_mixed(&client, 40, 4, 100);
    // Node 2 goes away holding every file.
    let away = c.incarnation(2);
    c.nodes[2].1.kill();
    let (gone, kept): (Vec<_>, Vec<_>) = files.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let gone: Vec<FileId> = gone.into_iter().map(|(_, (id, _))| id).collect();
    let kept: Vec<(FileId, Vec<u8>)> = kept.into_iter().map(|(_, f)| f).collect();
    delete_all(client.clone(), gone.clone());
    // The two members that took the deletes are killed at once after the
    // acknowledgements, and come back before the absent one does: it can
    // learn of the deletes only from their binlogs.
    let olds: Vec<u64> = (0..2).map(|i| c.incarnation(i)).collect();
    for i in 0..2 {
        c.nodes[i].1.kill();
    }
    for i in 0..2 {
        c.nodes[i].1.start();
    }
    for (i, old) in olds.into_iter().enumerate() {
        c.wait_restarted(i, old);
    }
    c.nodes[2].1.start();
    c.wait_restarted(2, away);
    for node in 0..3 {
        check_node(&c, &client, node, &gone, &kept);
    }
    let l0 = listing(&c, &client, 0);
    assert_eq!(listing(&c, &client, 1), l0);
    assert_eq!(listing(&c, &client, 2), l0, "the returned member holds exactly what its peers hold");
}

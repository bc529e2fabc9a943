//! Losing a member or a tracker.

use cairn_client::{Body, UploadOptions};
use cairn_proto::MemberState;

use crate::common::{content, Cluster};

#[test]
fn uploads_go_on_when_a_member_is_killed() {
    let mut c = Cluster::start(1, &[("g1", 3)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = c.client();
    let before = rt.block_on(client.upload(&UploadOptions::default(), Body::from(content(5000, 1)))).unwrap();
    // Kill the primary: the harder case, since mutations must fail over too.
    let map = rt.block_on(client.status()).unwrap();
    let primary = map.groups[0].primary.unwrap();
    let victim_addr = map.groups[0].members.iter().find(|m| m.id == primary).unwrap().addr.clone();
    let victim = (0..3).find(|&i| c.node_addr(i) == victim_addr).unwrap();
    c.nodes[victim].1.kill();
    // Right away, before the tracker notices, and after: every upload succeeds.
    let mut uploaded = Vec::new();
    for i in 0..30u64 {
        let data = content(10_000 + i as usize, 100 + i);
        let id =
            rt.block_on(client.upload(&UploadOptions::default(), Body::from(data.clone()))).expect("upload after kill");
        uploaded.push((id, data));
    }
    let survivors: Vec<String> = (0..3).filter(|&i| i != victim).map(|i| c.node_addr(i)).collect();
    c.wait_for(std::time::Duration::from_secs(10), |s| {
        s.iter().any(|(a, st)| a == &victim_addr && *st == MemberState::Offline)
    });
    for (id, data) in uploaded.iter().chain(std::iter::once(&(before.clone(), content(5000, 1)))) {
        for addr in &survivors {
            let mut got = Vec::new();
            rt.block_on(client.download_from(addr, id, 0, None, &mut got)).expect("read from a survivor");
            assert_eq!(&got, data);
        }
    }
    // A new primary took over under a higher epoch; mutations work again.
    let map = rt.block_on(client.status()).unwrap();
    assert_ne!(map.groups[0].primary, Some(primary));
    assert!(map.groups[0].epoch >= 2);
    let (id, _) = &uploaded[0];
    rt.block_on(client.delete(id)).expect("delete after failover");
    for addr in &survivors {
        let mut got = Vec::new();
        assert!(rt.block_on(client.download_from(addr, id, 0, None, &mut got)).is_err());
    }
    let out = c.ok(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let states: Vec<String> = v["groups"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states.iter().filter(|s| *s == "offline").count(), 1, "{states:?}");
    assert_eq!(states.iter().filter(|s| *s == "active").count(), 2, "{states:?}");
}

#[test]
fn a_second_tracker_takes_over_when_the_first_stops() {
    let mut c = Cluster::start(2, &[("g1", 2)]);
    let src = c.dir.path().join("f.txt");
    std::fs::write(&src, b"tracked").unwrap();
    let id = c.ok(&["upload", src.to_str().unwrap()]).trim().to_string();
    c.trackers[0].kill();
    let id2 = c.ok(&["upload", src.to_str().unwrap()]).trim().to_string();
    assert_ne!(id, id2);
    for i in [&id, &id2] {
        assert_eq!(c.ok(&["download", i, "-o", "-"]), "tracked");
    }
    // and back: the restarted tracker rebuilds its map from heartbeats
    c.trackers[0].start();
    c.trackers[1].kill();
    c.wait_active();
    let id3 = c.ok(&["upload", src.to_str().unwrap()]).trim().to_string();
    assert_eq!(c.ok(&["download", &id3, "-o", "-"]), "tracked");
}

/// A tracker restarted while another keeps running learns every member as
/// syncing, while the other still counts them all active: each member must
/// be able to catch up from a peer the running tracker vouches for, or the
/// two would wait on each other for ever.
#[test]
fn a_tracker_restarted_beside_a_running_one_sees_the_group_active_again() {
    let mut c = Cluster::start(2, &[("g1", 2)]);
    let src = c.dir.path().join("f.txt");
    std::fs::write(&src, b"tracked").unwrap();
    let id = c.ok(&["upload", src.to_str().unwrap()]).trim().to_string();
    c.trackers[0].kill();
    c.trackers[0].start();
    c.wait_active();
    c.trackers[1].kill();
    let id2 = c.ok(&["upload", src.to_str().unwrap()]).trim().to_string();
    for i in [&id, &id2] {
        assert_eq!(c.ok(&["download", i, "-o", "-"]), "tracked");
    }
}

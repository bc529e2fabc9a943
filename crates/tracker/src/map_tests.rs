//! Unit tests of the cluster map's rules (`map.rs`): membership, offline
//! detection, primaries and epochs, placement.

use std::time::Duration;

use cairn_proto::StorePathUsage;

use super::*;

fn report(id: u32, group: &str, free: u64) -> NodeReport {
    NodeReport {
        node_id: id,
        group: group.into(),
        addr: format!("127.0.0.1:{id}"),
        store_paths: vec![StorePathUsage { total: 1000, free }],
        files: 0,
        bytes: 0,
        load: 0,
        epoch: 0,
        primary: None,
        write_set: vec![],
        ready: true,
        incarnation: 1,
        caught_up_round: 0,
        missed: vec![],
        removed: false,
        version: "test".into(),
        fastdfs_addr: None,
        http_addr: None,
    }
}

/// A heartbeat from a node that knows `peers` as its write set.
/// The member's current round (it reports having caught up in it).
fn round(s: &ClusterState, id: u32, group: &str) -> u64 {
    s.groups.get(group).and_then(|g| g.members.get(&id)).map(|m| m.syncing_since).unwrap_or(0)
}

fn beat(s: &mut ClusterState, id: u32, group: &str, free: u64, peers: &[u32], now: Instant) -> GroupView {
    let mut r = report(id, group, free);
    r.write_set = peers.to_vec();
    r.caught_up_round = round(s, id, group);
    s.heartbeat(r, now).unwrap()
}

#[test]
fn a_new_member_turns_active_only_once_its_peers_write_to_it() {
    let mut s = state();
    let t = Instant::now();
    let v = beat(&mut s, 1, "g", 500, &[], t);
    assert_eq!(v.members[0].state, MemberState::Syncing, "caught up only in a later report");
    let v = beat(&mut s, 1, "g", 500, &[], t);
    assert_eq!(v.members[0].state, MemberState::Active, "the first member has no one to wait for");
    let v = beat(&mut s, 2, "g", 500, &[1], t);
    assert_eq!(v.members.iter().find(|m| m.id == 2).unwrap().state, MemberState::Syncing);
    let id = FileId::parse("g/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin").unwrap();
    assert_eq!(s.fetch(&id).unwrap(), vec!["127.0.0.1:1".to_string()], "no reads from a syncing member");
    beat(&mut s, 1, "g", 500, &[2], t);
    let v = beat(&mut s, 2, "g", 500, &[1], t);
    assert!(v.members.iter().all(|m| m.state == MemberState::Active));
}

#[test]
fn a_restarted_member_must_catch_up_before_it_is_active_again() {
    let mut s = state();
    let t = Instant::now();
    beat(&mut s, 1, "g", 500, &[2], t);
    beat(&mut s, 2, "g", 500, &[1], t);
    beat(&mut s, 1, "g", 500, &[2], t);
    let mut r = report(2, "g", 500);
    r.write_set = vec![1];
    r.incarnation = 2;
    r.caught_up_round = round(&s, 2, "g");
    let v = s.heartbeat(r.clone(), t).unwrap();
    let m2 = v.members.iter().find(|m| m.id == 2).unwrap().clone();
    assert_eq!(m2.state, MemberState::Syncing);
    assert!(!m2.forwarded, "its peer has not reported it since");
    let v = beat(&mut s, 1, "g", 500, &[2], t);
    assert!(v.members.iter().find(|m| m.id == 2).unwrap().forwarded);
    let v = s.heartbeat(r.clone(), t).unwrap();
    assert_eq!(v.members.iter().find(|m| m.id == 2).unwrap().state, MemberState::Syncing, "not caught up yet");
    r.caught_up_round = m2.round;
    let v = s.heartbeat(r, t).unwrap();
    assert_eq!(v.members.iter().find(|m| m.id == 2).unwrap().state, MemberState::Active);
}

#[test]
fn join_time_stays_and_up_time_follows_a_restart() {
    let mut s = state();
    let t = Instant::now();
    beat(&mut s, 1, "g", 500, &[], t);
    let times = |s: &ClusterState| s.member_times().into_iter().find(|m| m.node_id == 1).unwrap();
    let first = times(&s);
    std::thread::sleep(std::time::Duration::from_millis(20));
    beat(&mut s, 1, "g", 500, &[], t);
    assert_eq!(times(&s), first, "the same process beating again");
    let mut r = report(1, "g", 500);
    r.incarnation = 2;
    s.heartbeat(r, t).unwrap();
    let after = times(&s);
    assert_eq!(after.joined, first.joined, "a restart is no new join");
    assert!(after.up_since > first.up_since, "a restart is a new start");
}

#[test]
fn a_member_that_missed_a_write_goes_offline_then_catches_up_in_a_new_round() {
    let mut s = state();
    let t = Instant::now();
    settle(&mut s, &[(1, "g", 500), (2, "g", 500)], t);
    let r2 = round(&s, 2, "g");
    let v = s.report_missed("g", 0, &[Miss { node_id: 2, round: r2 }]).unwrap();
    assert_eq!(v.members.iter().find(|m| m.id == 2).unwrap().state, MemberState::Offline);
    let id = FileId::parse("g/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin").unwrap();
    assert_eq!(s.fetch(&id).unwrap(), vec!["127.0.0.1:1".to_string()], "no reads from it");
    // its next report puts it back, syncing, in a new round
    let mut r = report(2, "g", 500);
    r.write_set = vec![1];
    r.caught_up_round = r2;
    let v = s.heartbeat(r, t).unwrap();
    let m2 = v.members.iter().find(|m| m.id == 2).unwrap();
    assert_eq!(m2.state, MemberState::Syncing);
    assert!(m2.round > r2);
    // a repeated report about the old round changes nothing
    let v = s.report_missed("g", 0, &[Miss { node_id: 2, round: r2 }]).unwrap();
    assert_eq!(v.members.iter().find(|m| m.id == 2).unwrap().state, MemberState::Syncing);
    settle(&mut s, &[(1, "g", 500), (2, "g", 500)], t);
    assert!(s.status("t", t).groups[0].members.iter().all(|m| m.state == MemberState::Active));
}

#[test]
fn a_member_that_is_not_active_cannot_take_its_peers_offline() {
    let mut s = state();
    let t = Instant::now();
    settle(&mut s, &[(1, "g", 500), (2, "g", 500), (3, "g", 500)], t);
    let (r1, r2, r3) = (round(&s, 1, "g"), round(&s, 2, "g"), round(&s, 3, "g"));
    // 3 was frozen: member 1 left it out of a write.
    s.report_missed("g", 1, &[Miss { node_id: 3, round: r3 }]).unwrap();
    // Back, 3 finishes a stale write and blames 1 and 2: ignored.
    let v = s.report_missed("g", 3, &[Miss { node_id: 1, round: r1 }, Miss { node_id: 2, round: r2 }]).unwrap();
    for id in [1, 2] {
        assert_eq!(v.members.iter().find(|m| m.id == id).unwrap().state, MemberState::Active);
    }
    assert_eq!(v.members.iter().find(|m| m.id == 3).unwrap().state, MemberState::Offline);
}

#[test]
fn removal_needs_another_active_member_and_sticks() {
    let mut s = state();
    let t = Instant::now();
    settle(&mut s, &[(1, "g", 500)], t);
    assert_eq!(s.remove_member("g", 1).unwrap_err().code, ErrorCode::InvalidArgument);
    settle(&mut s, &[(1, "g", 500), (2, "g", 500)], t);
    s.remove_member("g", 1).unwrap();
    let map = s.status("t", t);
    assert_eq!(map.groups[0].primary, Some(2), "the primary moves off a removed member");
    let v = beat(&mut s, 1, "g", 500, &[2], t);
    assert_eq!(v.members.iter().find(|m| m.id == 1).unwrap().state, MemberState::Removed);
    let target = s.place(Some("g"), &[]).unwrap();
    assert_eq!(target.node_id, 2);
}

#[test]
fn a_spare_joins_the_group_it_is_given() {
    let mut s = state();
    let t = Instant::now();
    assert_eq!(s.spare_heartbeat("127.0.0.1:7", "v".into(), t), None);
    assert_eq!(s.add_member("g", "127.0.0.1:8", t).unwrap_err().code, ErrorCode::NotFound);
    s.add_member("g", "127.0.0.1:7", t).unwrap();
    assert_eq!(s.spare_heartbeat("127.0.0.1:7", "v".into(), t), Some("g".into()));
    assert_eq!(s.status("t", t).spares.len(), 1);
    beat(&mut s, 7, "g", 500, &[], t);
    assert!(s.status("t", t).spares.is_empty(), "a member is no longer a spare");
}

/// Heartbeat rounds until every listed member (id, group, free) is
/// settled: each lists the others of its group in its write set.
fn settle(s: &mut ClusterState, members: &[(u32, &str, u64)], now: Instant) {
    for _ in 0..3 {
        for &(id, group, free) in members {
            let peers: Vec<u32> = members.iter().filter(|m| m.1 == group && m.0 != id).map(|m| m.0).collect();
            beat(s, id, group, free, &peers, now);
        }
    }
}

fn state() -> ClusterState {
    ClusterState::new(TrackerConfig { reserved: Reserved::Percent(10.0), ..Default::default() })
}

#[test]
fn primary_moves_with_a_higher_epoch_when_it_goes_offline() {
    let mut s = state();
    let t0 = Instant::now();
    settle(&mut s, &[(2, "g", 500)], t0);
    settle(&mut s, &[(2, "g", 500), (1, "g", 500)], t0);
    let map = s.status("t", t0);
    assert_eq!((map.groups[0].primary, map.groups[0].epoch), (Some(2), 1), "a newcomer does not take over");
    let later = t0 + Duration::from_secs(5);
    beat(&mut s, 1, "g", 500, &[2], later);
    s.sweep(t0 + Duration::from_secs(7));
    let map = s.status("t", t0 + Duration::from_secs(7));
    let g = &map.groups[0];
    assert_eq!((g.primary, g.epoch), (Some(1), 2));
    assert_eq!(g.members.iter().find(|m| m.id == 2).unwrap().state, MemberState::Offline);
    // the old primary coming back does not take over again
    let v = beat(&mut s, 2, "g", 500, &[1], t0 + Duration::from_secs(8));
    assert_eq!((v.primary, v.epoch), (Some(1), 2));
    assert_eq!(v.members.iter().find(|m| m.id == 2).unwrap().state, MemberState::Syncing, "back from offline: syncing");
}

#[test]
fn restarted_tracker_adopts_the_epoch_the_nodes_know() {
    let now = Instant::now();
    let mut s = state();
    let mut r = report(5, "g", 500);
    r.epoch = 9;
    r.primary = Some(7);
    s.heartbeat(r.clone(), now).unwrap();
    r.caught_up_round = round(&s, 5, "g");
    let v = s.heartbeat(r, now).unwrap();
    // node 7 is not known here, so node 5 takes over under a higher epoch
    assert_eq!((v.primary, v.epoch), (Some(5), 10));
    let mut s = state();
    let mut r7 = report(7, "g", 500);
    r7.epoch = 9;
    r7.primary = Some(7);
    s.heartbeat(r7.clone(), now).unwrap();
    r7.caught_up_round = round(&s, 7, "g");
    let v = s.heartbeat(r7, now).unwrap();
    assert_eq!((v.primary, v.epoch), (Some(7), 9));
}

#[test]
fn placement_honours_reserve_policy_and_exclusions() {
    let mut s = state();
    let now = Instant::now();
    settle(&mut s, &[(1, "small", 50), (2, "big", 900), (3, "big", 800)], now);
    for _ in 0..4 {
        assert_eq!(s.place(None, &[]).unwrap().group, "big");
    }
    let e = s.place(Some("small"), &[]).unwrap_err();
    assert_eq!(e.code, ErrorCode::NoSpace);
    assert_eq!(s.place(Some("nope"), &[]).unwrap_err().code, ErrorCode::NotFound);
    let a = s.place(Some("big"), &[]).unwrap().node_id;
    let b = s.place(Some("big"), &[]).unwrap().node_id;
    assert_ne!(a, b, "round robin over members");
    for _ in 0..3 {
        assert_eq!(s.place(Some("big"), &["127.0.0.1:2".into()]).unwrap().node_id, 3);
    }
    beat(&mut s, 2, "big", 10, &[3], now);
    assert_eq!(s.place(None, &[]).unwrap_err().code, ErrorCode::NoSpace);
}

#[test]
fn duplicate_node_ids_are_refused() {
    let mut s = state();
    let now = Instant::now();
    s.heartbeat(report(1, "g", 500), now).unwrap();
    let mut twin = report(1, "g", 500);
    twin.addr = "127.0.0.1:9".into();
    assert_eq!(s.heartbeat(twin, now).unwrap_err().code, ErrorCode::Exists);
}

#[test]
fn fetch_lists_active_members_and_rotates() {
    let mut s = state();
    let now = Instant::now();
    beat(&mut s, 1, "g", 500, &[2], now);
    beat(&mut s, 1, "g", 500, &[2], now);
    beat(&mut s, 2, "g", 500, &[1], now);
    beat(&mut s, 1, "g", 500, &[2], now);
    beat(&mut s, 2, "g", 500, &[1], now);
    let id = FileId::parse("g/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin").unwrap();
    let a = s.fetch(&id).unwrap();
    let b = s.fetch(&id).unwrap();
    assert_eq!(a.len(), 2);
    assert_ne!(a[0], b[0]);
    assert_eq!(s.update(&id).unwrap(), vec!["127.0.0.1:1".to_string()]);
}

//! What the FastDFS 6.16.1 C tools send, byte for byte, and their replies
//! parsed as the 6.16 C client library (`tracker_client.c`,
//! `storage_client.c`) parses them: `fdfs_monitor`, `fdfs_tracker_stat`,
//! `fdfs_storage_stat`, `fdfs_volumn_stat`, `fdfs_regenerate_filename`,
//! tools started with `load_fdfs_parameters_from_tracker`, query-fetch-all.

use std::time::Duration;

use cairn_proto::{FileId, MemberState};

use super::{
    call, connect, content, download, fdfs, fdfs_tracker, field, group_name, name_of, num, set_meta, text, u64be,
};
use super::{upload, upload_slave};
use crate::common::{rt, Cluster};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn recent(t: u64) -> bool {
    t > now() - 600 && t <= now() + 5
}

fn u32be(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

/// `tracker_query_storage_list`: the length tells the IP width; every
/// server is `ip port`.
fn parse_fetch_all(b: &[u8]) -> Vec<String> {
    let (ip, rest) = if (b.len() - 39).is_multiple_of(23) {
        (16, b.len() - 39)
    } else {
        assert!((b.len() - 69).is_multiple_of(53), "response data length: {} is invalid", b.len());
        (46, b.len() - 69)
    };
    let n = 1 + rest / (ip - 1 + 8);
    (0..n)
        .map(|i| {
            let at = 16 + i * (ip - 1 + 8);
            format!("{}:{}", text(&b[at..at + ip - 1]), num(&b[at + ip - 1..]))
        })
        .collect()
}

#[test]
fn fastdfs_616_query_fetch_all_and_fdfs_monitor_records() {
    let c = Cluster::start_full(1, &[("g1", 2)], &["--reserved-space", "10%"], &[]);
    let tracker = fdfs_tracker(&c);
    let ports: Vec<String> = (0..2).map(|i| fdfs(&c, i)).collect();
    let id = upload(&ports[0], 11, "bin", &content(1000, 1));

    // Query fetch all (105): 39 + (n − 1) × 23 bytes, every server with its port.
    let (st, b) = call(&mut connect(&tracker), 105, &group_name(&id));
    assert_eq!((st, b.len()), (0, 62));
    assert_eq!(text(&b[..16]), "g1");
    let mut servers = parse_fetch_all(&b);
    servers.sort();
    let mut want = ports.clone();
    want.sort();
    assert_eq!(servers, want);

    // fdfs_monitor: list groups (91), then list storage (92) per group.
    let mut t = connect(&tracker);
    let (st, g) = call(&mut t, 91, &[]);
    assert_eq!((st, g.len()), (0, 113));
    let (group_total, group_reserved) = (num(&g[17..]), num(&g[17 + 16..]));
    assert!(group_total > 0);
    assert_eq!(group_reserved, group_total / 10, "group reserve of 10%");
    let (st, s) = call(&mut t, 92, &field("g1", 16));
    assert_eq!((st, s.len()), (0, 2 * 487));
    for rec in s.chunks(487) {
        assert_eq!(rec[0], 7, "ACTIVE");
        assert_eq!(rec[1], 6, "read write mode R_OK|W_OK: both (normal)");
        let (join, up) = (num(&rec[58..]), num(&rec[66..]));
        assert!(recent(join) && recent(up) && up >= join, "join time {join}, up time {up}");
        let (total, reserved) = (num(&rec[74..]), num(&rec[90..]));
        assert!(total > 0 && reserved == total / 10, "disk total {total} MB, reserved {reserved} MB");
        assert!(recent(num(&rec[487 - 9..])), "last heartbeat");
    }
    // `fdfs_monitor … list g1 <id>` and `delete` send the ID unpadded.
    let sid = text(&s[2..18]);
    let mut b = field("g1", 16);
    b.extend_from_slice(sid.as_bytes());
    let (st, one) = call(&mut t, 92, &b);
    assert_eq!((st, one.len(), text(&one[2..18])), (0, 487, sid.clone()));
}

#[test]
fn fastdfs_616_extensions_prefixes_and_slave_names() {
    let c = Cluster::start(1, &[("g1", 1)]);
    let storage = fdfs(&c, 0);
    // Two-part extensions (`backup.tar.gz` uploads as `tar.gz`), '_' and '-'.
    for ext in ["tar.gz", "c_d", "a-b"] {
        let data = content(5000, 2);
        let id = upload(&storage, 11, ext, &data);
        assert!(id.ends_with(&format!(".{ext}")), "{id}");
        assert_eq!(FileId::parse(&id).unwrap().ext(), ext);
        assert_eq!(download(&storage, &id, 0, 0), (0, data));
    }
    // Path safety holds: dots only, '..', '/'.
    for ext in ["..", "...", "a..b", ".gz", "a/b"] {
        let mut b = vec![0xFF];
        b.extend(u64be(3));
        b.extend(field(ext, 6));
        b.extend_from_slice(b"abc");
        assert_eq!(call(&mut connect(&storage), 11, &b).0, 22, "extension {ext:?}");
    }
    // Slaves: a prefix with a dot; no extension gives none (not the
    // master's); `-m` without an extension is refused, as FastDFS does.
    let master = upload(&storage, 11, "txt", b"master");
    let stem = master.strip_suffix(".txt").unwrap();
    let (st, body) = upload_slave(&storage, &master, "a.b", "jpg", b"one");
    assert_eq!((st, super::id_of(&body)), (0, format!("{stem}a.b.jpg")));
    let (st, body) = upload_slave(&storage, &master, "_v2", "", b"two");
    let slave = super::id_of(&body);
    assert_eq!((st, slave.as_str()), (0, format!("{stem}_v2").as_str()));
    assert_eq!(download(&storage, &slave, 0, 0), (0, b"two".to_vec()));
    assert_eq!(upload_slave(&storage, &master, "-m", "", b"meta?").0, 22);
    assert_eq!(upload_slave(&storage, &master, "", "png", b"no prefix").0, 22);
    assert_eq!(upload_slave(&storage, &master, "a..b", "png", b"dots").0, 22);
    // The native client reads the same names.
    let client = c.client();
    let got = rt().block_on(client.download_bytes(&FileId::parse(&slave).unwrap(), 0, None)).unwrap();
    assert_eq!(got, b"two");
}

#[test]
fn fastdfs_616_parameters_leader_and_cluster_stats() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let tracker = fdfs_tracker(&c);
    let ports: Vec<String> = (0..2).map(|i| fdfs(&c, i)).collect();
    let mut t = connect(&tracker);

    // load_fdfs_parameters_from_tracker: ini lines, read into 1 KiB or so.
    let (st, p) = call(&mut t, 75, &[]);
    assert_eq!(st, 0);
    let p = String::from_utf8(p).unwrap();
    for line in ["use_storage_id=0", "response_ip_addr_size=16", "reserved_storage_space=5.00%", "use_trunk_file=0"] {
        assert!(p.lines().any(|l| l == line), "{line} missing from {p}");
    }
    assert!(p.lines().all(|l| l.split_once('=').is_some_and(|(k, _)| !k.is_empty())), "{p}");

    // fdfs_tracker_stat: get leader (95), then the stat (96) from it.
    let (st, leader) = call(&mut t, 95, &[]);
    assert_eq!((st, String::from_utf8(leader).unwrap()), (0, tracker.clone()));
    let (st, b) = call(&mut t, 96, &[0, 0, 0]);
    assert_eq!((st, b.len(), b[0]), (0, 1 + 90, 1));
    assert_eq!(text(&b[1..53]), tracker);
    assert_eq!((b[53], b[54]), (1, 1), "leader, active");
    assert!(u32be(&b[59..]) >= 1, "current connections");
    assert!(recent(num(&b[75..])), "up time");
    let (_, b) = call(&mut t, 96, &[2, 0, 0]);
    assert_eq!(b, vec![0], "-F: no follower");

    // fdfs_storage_stat (97): header use_storage_id, use_trunk_file, count[4].
    let (st, b) = call(&mut t, 97, &[0, 0, 0, 0]);
    assert_eq!((st, b.len(), u32be(&b[2..])), (0, 6 + 2 * 106, 2));
    let mut hosts = Vec::new();
    for rec in b[6..].chunks(106) {
        hosts.push(text(&rec[16..68]));
        assert_eq!((rec[68], rec[69]), (0, 7), "not trunk, ACTIVE");
        assert!(recent(num(&rec[90..])) && recent(num(&rec[98..])), "up time, last heartbeat");
    }
    hosts.sort();
    let mut want = ports.clone();
    want.sort();
    assert_eq!(hosts, want);
    let (_, b) = call(&mut t, 97, &[2, b'!', 7, 0]);
    assert_eq!(b, vec![0, 0, 0, 0, 0, 0], "-N: none that is not active");

    // fdfs_volumn_stat (98): header use_trunk_file, count[4]; a group.
    let (st, b) = call(&mut t, 98, &[0, 0, 0, 0]);
    assert_eq!((st, b.len(), u32be(&b[1..])), (0, 5 + 59, 1));
    let g = &b[5..];
    assert_eq!(text(&g[..17]), "g1");
    let (total, free, reserved, avail) = (num(&g[17..]), num(&g[25..]), num(&g[33..]), num(&g[41..]));
    assert!(total > 0 && reserved == total * 5 / 100, "total {total}, reserved {reserved}");
    assert_eq!((g[57], avail), (1, free - reserved), "disk available");
    let (_, b) = call(&mut t, 98, &[1, 0, 0, 0]);
    assert_eq!(b, vec![0, 0, 0, 0, 0], "-d: no group without disk space");
}

#[test]
fn fastdfs_616_delete_storage_as_fdfs_monitor() {
    let mut c = Cluster::start(1, &[("g1", 2)]);
    let tracker = fdfs_tracker(&c);
    let delete = |group: &str, id: &str| {
        let mut b = field(group, 16);
        b.extend_from_slice(id.as_bytes());
        call(&mut connect(&tracker), 93, &b).0
    };
    let id1 = c.node_id(1).to_string();
    assert_eq!(delete("g1", "4242"), 2, "unknown storage: ENOENT");
    assert_eq!(delete("nosuch", &id1), 2, "unknown group: ENOENT");
    assert_eq!(delete("g1", "127.0.0.1"), 2, "an IP both members share names neither");
    assert_eq!(delete("g1", &id1), 16, "an active storage: EBUSY");
    c.nodes[1].1.kill();
    let node = c.node_id(1);
    c.wait_members(Duration::from_secs(20), |ms| ms.iter().any(|m| m.id == node && m.state == MemberState::Offline));
    assert_eq!(delete("g1", &id1), 0, "an offline storage is removed");
    assert_eq!(delete("g1", &id1), 114, "a second time: EALREADY");
    let (_, s) = call(&mut connect(&tracker), 92, &field("g1", 16));
    let rec = s.chunks(487).find(|r| text(&r[2..18]) == id1).unwrap();
    assert_eq!(rec[0], 4, "DELETED");
}

#[test]
fn fastdfs_616_regenerate_appender_filename() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let tracker = fdfs_tracker(&c);
    let storage = fdfs(&c, 0);
    let data = content(300_000, 3);
    let aid = upload(&storage, 23, "log", &data[..100_000]);
    let mut b = u64be(name_of(&aid).len() as u64);
    b.extend(u64be(200_000));
    b.extend_from_slice(name_of(&aid).as_bytes());
    b.extend_from_slice(&data[100_000..]);
    assert_eq!(call(&mut connect(&storage), 24, &b).0, 0, "append");
    assert_eq!(set_meta(&storage, &aid, b'O', b"k\x02v"), 0);

    // fdfs_regenerate_filename: query update (103), then 38 to that storage.
    let (st, q) = call(&mut connect(&tracker), 103, &group_name(&aid));
    assert_eq!(st, 0);
    let at = format!("{}:{}", text(&q[16..31]), num(&q[31..]));
    let (st, body) = call(&mut connect(&at), 38, name_of(&aid).as_bytes());
    assert_eq!(st, 0);
    assert!(body.len() > 16);
    let new = super::id_of(&body);
    let fid = FileId::parse(&new).unwrap();
    assert!(!fid.info().is_appender() && fid.ext() == "log", "{new}");
    assert_eq!(fid.info().size(), Some(data.len() as u64));
    for i in 0..2 {
        assert!(download(&fdfs(&c, i), &new, 0, 0) == (0, data.clone()), "new name on node {i}");
        assert_eq!(download(&fdfs(&c, i), &aid, 0, 0).0, 2, "old name gone on node {i}");
    }
    assert_eq!(call(&mut connect(&storage), 15, &group_name(&new)), (0, b"k\x02v".to_vec()));
    // A regular file is no appender.
    assert_eq!(call(&mut connect(&storage), 38, name_of(&new).as_bytes()).0, 22);
}

#[test]
fn fastdfs_616_edge_answers() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let storage = fdfs(&c, 0);
    let id = upload(&storage, 11, "txt", b"twelve bytes");
    // Get metadata of a file that has none: ENOENT.
    assert_eq!(call(&mut connect(&storage), 15, &group_name(&id)).0, 2);
    // An append of nothing: EINVAL, and the connection stays usable.
    let aid = upload(&storage, 23, "log", b"x");
    let mut s = connect(&storage);
    let mut b = u64be(name_of(&aid).len() as u64);
    b.extend(u64be(0));
    b.extend_from_slice(name_of(&aid).as_bytes());
    assert_eq!(call(&mut s, 24, &b).0, 22);
    assert_eq!(call(&mut s, 111, &[]), (0, vec![]));
    // A download at the offset of the file's size: EINVAL, from either node.
    for i in 0..2 {
        assert_eq!(download(&fdfs(&c, i), &id, 12, 0), (22, vec![]), "node {i}");
        assert_eq!(download(&fdfs(&c, i), &id, 11, 0), (0, b"s".to_vec()), "node {i}");
    }
}

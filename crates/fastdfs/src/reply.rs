//! Encoding replies, field by field as FastDFS 6.x lays them out.

use cairn_proto::MemberState;

use crate::wire::{put_fixed, put_u32, put_u64, IpSize, GROUP_LEN, IP_PORT_LEN, STORAGE_ID_LEN, VERSION_LEN};

/// A server as FastDFS clients address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// IP (or host name) as text.
    pub ip: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// Splits `host:port` (`[v6]:port` too).
    pub fn parse(addr: &str) -> Option<Endpoint> {
        let (host, port) = addr.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(Endpoint { ip: host.to_string(), port: port.parse().ok()? })
    }
}

/// Query-store reply (101/104): `group[16] ip[size-1] port u64 store_path u8`.
pub fn store_one(group: &str, at: &Endpoint, store_path: u8, ip: IpSize) -> Vec<u8> {
    let mut out = fetch_one(group, at, ip);
    out.push(store_path);
    out
}

/// Query-store-all reply (106/107): `group[16]`, then `ip port` per
/// member, then the store path.
pub fn store_all(group: &str, members: &[Endpoint], store_path: u8, ip: IpSize) -> Vec<u8> {
    let mut out = Vec::new();
    put_fixed(&mut out, group, GROUP_LEN);
    for m in members {
        put_fixed(&mut out, &m.ip, ip.size() - 1);
        put_u64(&mut out, u64::from(m.port));
    }
    out.push(store_path);
    out
}

/// Query-fetch and query-update reply (102/103): `group[16] ip[size-1] port u64`.
pub fn fetch_one(group: &str, at: &Endpoint, ip: IpSize) -> Vec<u8> {
    let mut out = Vec::new();
    put_fixed(&mut out, group, GROUP_LEN);
    put_fixed(&mut out, &at.ip, ip.size() - 1);
    put_u64(&mut out, u64::from(at.port));
    out
}

/// Query-fetch-all reply (105): `group[16]`, then `ip[size-1] port u64`
/// for every member, as FastDFS 6.16 sends it and its client reads it:
/// 39 + (n − 1) × 23 bytes with 16-byte IP fields. (Before 6.16 only the
/// first member had a port; the 6.16 client refuses that layout.)
pub fn fetch_all(group: &str, members: &[Endpoint], ip: IpSize) -> Vec<u8> {
    let mut out = Vec::new();
    put_fixed(&mut out, group, GROUP_LEN);
    for m in members {
        put_fixed(&mut out, &m.ip, ip.size() - 1);
        put_u64(&mut out, u64::from(m.port));
    }
    out
}

/// Query-file-info reply (22): size, creation time, CRC32 (sign-extended,
/// as FastDFS writes an `int` into a 64-bit field), source IP.
pub fn file_info(size: u64, created: u64, crc32: u32, source_ip: &str, ip: IpSize) -> Vec<u8> {
    let mut out = Vec::new();
    put_u64(&mut out, size);
    put_u64(&mut out, created);
    put_u64(&mut out, crc32 as i32 as i64 as u64);
    put_fixed(&mut out, source_ip, ip.size());
    out
}

/// One group's statistics (`TrackerGroupStat` as FastDFS 6.13.1 and
/// later send it: with reserved space and readable/writable counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStat {
    /// Name.
    pub name: String,
    /// Total space of the group (its smallest member), MB.
    pub total_mb: u64,
    /// Free space, MB.
    pub free_mb: u64,
    /// Space kept free for safety, MB.
    pub reserved_mb: u64,
    /// Members.
    pub count: u64,
    /// FastDFS port of its storage servers.
    pub storage_port: u64,
    /// Members that serve reads.
    pub readable: u64,
    /// Members that take uploads.
    pub writable: u64,
    /// Store paths per member.
    pub store_path_count: u64,
}

/// Size of one [`GroupStat`] on the wire.
pub const GROUP_STAT_LEN: usize = GROUP_LEN + 1 + 12 * 8;

/// Encodes group statistics.
pub fn group_stat(out: &mut Vec<u8>, g: &GroupStat) {
    put_fixed(out, &g.name, GROUP_LEN + 1);
    for v in [
        g.total_mb,
        g.free_mb,
        g.reserved_mb,
        0, // trunk free MB: no trunk files
        g.count,
        g.storage_port,
        g.readable,
        g.writable,
        0, // current write server
        g.store_path_count,
        256, // subdirectories per path (two levels of 00..FF)
        0,   // current trunk file ID
    ] {
        put_u64(out, v);
    }
}

/// One storage server's status (`TrackerStorageStat` of FastDFS 6.13.1
/// and later: read/write mode, no domain name or HTTP port, reserved
/// space).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStat {
    /// FastDFS status code, see [`status_code`].
    pub status: u8,
    /// Read/write mode, FastDFS's `R_OK | W_OK` bits: see [`rw_mode`].
    pub rw_mode: u8,
    /// Storage ID (Cairn's node ID in decimal).
    pub id: String,
    /// IP clients reach it at.
    pub ip: String,
    /// Software version.
    pub version: String,
    /// When it joined, Unix seconds.
    pub join_time: u64,
    /// Start time, Unix seconds.
    pub up_time: u64,
    /// Total space, MB.
    pub total_mb: u64,
    /// Free space, MB.
    pub free_mb: u64,
    /// Space kept free, MB.
    pub reserved_mb: u64,
    /// Store paths.
    pub store_path_count: u64,
    /// FastDFS port.
    pub storage_port: u64,
    /// Seconds-since-epoch of its last heartbeat.
    pub last_heartbeat: u64,
}

/// Size of one [`StorageStat`] on the wire for an IP field size (487 or
/// 517 bytes).
pub fn storage_stat_len(ip: IpSize) -> usize {
    1 + 1 + STORAGE_ID_LEN + ip.size() + STORAGE_ID_LEN + VERSION_LEN + 10 * 8 + STAT_BUFF_LEN + 1
}

/// `FDFSStorageStatBuff`: three 4-byte connection counters, 38 operation
/// counters and 4 timestamps of 8 bytes.
const STAT_BUFF_LEN: usize = 3 * 4 + 42 * 8;

/// Encodes a storage server's status. Operation counters are not kept
/// per FastDFS command, so they are sent as zero.
pub fn storage_stat(out: &mut Vec<u8>, s: &StorageStat, ip: IpSize) {
    out.push(s.status);
    out.push(s.rw_mode);
    put_fixed(out, &s.id, STORAGE_ID_LEN);
    put_fixed(out, &s.ip, ip.size());
    put_fixed(out, "", STORAGE_ID_LEN); // sync source
    put_fixed(out, &s.version, VERSION_LEN);
    for v in [
        s.join_time,
        s.up_time,
        s.total_mb,
        s.free_mb,
        s.reserved_mb,
        0, // upload priority
        s.store_path_count,
        256, // subdirectories per path
        0,   // current write path
        s.storage_port,
    ] {
        put_u64(out, v);
    }
    out.resize(out.len() + 12 + 38 * 8, 0);
    for v in [0, 0, 0, s.last_heartbeat] {
        put_u64(out, v);
    }
    out.push(0); // not a trunk server
}

/// FastDFS's read/write mode (`FDFSReadWriteMode`): `R_OK` (4) when it
/// serves reads, `W_OK` (2) when it takes uploads; 6 for both.
pub fn rw_mode(readable: bool, writable: bool) -> u8 {
    const R_OK: u8 = 4;
    const W_OK: u8 = 2;
    (if readable { R_OK } else { 0 }) | (if writable { W_OK } else { 0 })
}

/// `host:port` as FastDFS's `format_ip_port` writes it (brackets around an
/// IPv6 address).
pub fn ip_port(ep: &Endpoint) -> String {
    if ep.ip.contains(':') {
        format!("[{}]:{}", ep.ip, ep.port)
    } else {
        format!("{}:{}", ep.ip, ep.port)
    }
}

/// Connection counters as the cluster-stat replies carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connections {
    /// Connection slots allocated.
    pub alloc: u32,
    /// Open now.
    pub current: u32,
    /// Most open at once.
    pub max: u32,
}

fn put_connections(out: &mut Vec<u8>, c: Connections) {
    put_u32(out, c.alloc);
    put_u32(out, c.current);
    put_u32(out, c.max);
}

/// One tracker in the tracker-cluster-stat reply (96).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerEntry {
    /// `ip:port` of its FastDFS listener.
    pub host: String,
    /// Whether it leads.
    pub leader: bool,
    /// Whether it answers.
    pub active: bool,
    /// Its connections.
    pub connections: Connections,
    /// Software version.
    pub version: String,
    /// Start time, Unix seconds.
    pub up_time: u64,
    /// Last heartbeat seen from it, Unix seconds.
    pub last_heartbeat: u64,
}

/// Size of one [`TrackerEntry`] on the wire
/// (`TrackerClusterStatRespBodyPart`).
pub const TRACKER_ENTRY_LEN: usize = IP_PORT_LEN + 2 + 12 + VERSION_LEN + 16;

/// Tracker-cluster-stat reply (96): a one-byte count, then the entries.
pub fn tracker_cluster_stat(trackers: &[TrackerEntry]) -> Vec<u8> {
    let n = trackers.len().min(u8::MAX as usize);
    let mut out = vec![n as u8];
    for t in &trackers[..n] {
        put_fixed(&mut out, &t.host, IP_PORT_LEN);
        out.push(u8::from(t.leader));
        out.push(u8::from(t.active));
        put_connections(&mut out, t.connections);
        put_fixed(&mut out, &t.version, VERSION_LEN);
        put_u64(&mut out, t.up_time);
        put_u64(&mut out, t.last_heartbeat);
    }
    out
}

/// One storage server in the storage-cluster-stat reply (97).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageEntry {
    /// Storage ID.
    pub id: String,
    /// `ip:port` FastDFS clients reach it at.
    pub host: String,
    /// FastDFS status code.
    pub status: u8,
    /// Its connections.
    pub connections: Connections,
    /// Software version.
    pub version: String,
    /// Start time, Unix seconds.
    pub up_time: u64,
    /// Last heartbeat, Unix seconds.
    pub last_heartbeat: u64,
}

/// Size of one [`StorageEntry`] on the wire
/// (`StorageClusterStatRespBodyPart`).
pub const STORAGE_ENTRY_LEN: usize = STORAGE_ID_LEN + IP_PORT_LEN + 2 + 12 + VERSION_LEN + 16;

/// Storage-cluster-stat reply (97): `use_storage_id u8`, `use_trunk_file
/// u8`, a 4-byte count, then the entries (never a trunk server: Cairn has
/// no trunk files).
pub fn storage_cluster_stat(use_storage_id: bool, storages: &[StorageEntry]) -> Vec<u8> {
    let mut out = vec![u8::from(use_storage_id), 0];
    put_u32(&mut out, storages.len() as u32);
    for s in storages {
        put_fixed(&mut out, &s.id, STORAGE_ID_LEN);
        put_fixed(&mut out, &s.host, IP_PORT_LEN);
        out.push(0); // not a trunk server
        out.push(s.status);
        put_connections(&mut out, s.connections);
        put_fixed(&mut out, &s.version, VERSION_LEN);
        put_u64(&mut out, s.up_time);
        put_u64(&mut out, s.last_heartbeat);
    }
    out
}

/// One group in the volume-stat reply (98).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeEntry {
    /// Group name.
    pub name: String,
    /// Total, free, reserved and available space, MB.
    pub total_mb: u64,
    /// Free space, MB.
    pub free_mb: u64,
    /// Space kept free, MB.
    pub reserved_mb: u64,
    /// Space uploads may still take, MB (0 when the disk is not available).
    pub avail_mb: u64,
    /// Whether its free space is above the reserve.
    pub disk_available: bool,
}

/// Size of one [`VolumeEntry`] on the wire (`StorageVolumnStatRespBodyPart`).
pub const VOLUME_ENTRY_LEN: usize = GROUP_LEN + 1 + 5 * 8 + 2;

/// Volume-stat reply (98): `use_trunk_file u8`, a 4-byte count, then the
/// groups.
pub fn volumn_stat(groups: &[VolumeEntry]) -> Vec<u8> {
    let mut out = vec![0];
    put_u32(&mut out, groups.len() as u32);
    for g in groups {
        put_fixed(&mut out, &g.name, GROUP_LEN + 1);
        for v in [g.total_mb, g.free_mb, g.reserved_mb, g.avail_mb, 0] {
            put_u64(&mut out, v);
        }
        out.push(u8::from(g.disk_available));
        out.push(0); // trunk space: no trunk files
    }
    out
}

/// FastDFS's status code for a member state.
pub fn status_code(state: MemberState) -> u8 {
    match state {
        MemberState::Init => 0,
        MemberState::Syncing => 2,
        MemberState::Removed => 4,
        MemberState::Offline => 5,
        MemberState::Active => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoint {
        Endpoint::parse("127.0.0.1:23000").unwrap()
    }

    #[test]
    fn query_store_sizes_follow_the_ip_field() {
        assert_eq!(store_one("group1", &ep(), 0, IpSize::V4).len(), 40);
        assert_eq!(store_one("group1", &ep(), 0, IpSize::V6).len(), 70);
        assert_eq!(fetch_one("group1", &ep(), IpSize::V4).len(), 39);
        assert_eq!(fetch_all("group1", &[ep(), ep()], IpSize::V4).len(), 62);
        assert_eq!(fetch_all("group1", &[ep(), ep(), ep()], IpSize::V6).len(), 69 + 2 * 53);
        assert_eq!(store_all("group1", &[ep(), ep()], 0, IpSize::V6).len(), 16 + 2 * 53 + 1);
        assert_eq!(file_info(1, 2, 3, "127.0.0.1", IpSize::V4).len(), 40);
    }

    #[test]
    fn crc32_is_sign_extended_like_fastdfs() {
        let b = file_info(0, 0, 0xCE27_03A8, "x", IpSize::V4);
        assert_eq!(&b[16..24], &[0xFF, 0xFF, 0xFF, 0xFF, 0xCE, 0x27, 0x03, 0xA8]);
    }

    #[test]
    fn stat_records_have_their_fixed_sizes() {
        let mut g = Vec::new();
        group_stat(&mut g, &GroupStat::default());
        assert_eq!(g.len(), GROUP_STAT_LEN);
        for ip in [IpSize::V4, IpSize::V6] {
            let mut s = Vec::new();
            storage_stat(&mut s, &StorageStat::default(), ip);
            assert_eq!(s.len(), storage_stat_len(ip));
        }
        assert_eq!(GROUP_STAT_LEN, 113);
        // 6.15.5/6.16 cluster-stat records: packed structs of char fields.
        assert_eq!(TRACKER_ENTRY_LEN, 90);
        assert_eq!(STORAGE_ENTRY_LEN, 106);
        assert_eq!(VOLUME_ENTRY_LEN, 59);
        let t = TrackerEntry::default();
        assert_eq!(tracker_cluster_stat(&[t.clone(), t]).len(), 1 + 2 * 90);
        assert_eq!(storage_cluster_stat(false, &[StorageEntry::default()]).len(), 6 + 106);
        assert_eq!(volumn_stat(&vec![VolumeEntry::default(); 3]).len(), 5 + 3 * 59);
        assert_eq!(storage_stat_len(IpSize::V4), 487);
        assert_eq!(storage_stat_len(IpSize::V6), 517);
    }
}

//! The tracker side's figures: group and storage records for the listings
//! (90–92), the cluster statistics of FastDFS 6.15.5/6.16 (96–98) and the
//! parameters FastDFS's tracker hands out (75), from the cluster map and
//! what the tracker in this process knows ([`TrackerFacts`]).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_proto::{GroupStatus, MemberState, MemberStatus};

use crate::reply::{self, Endpoint, GroupStat, StorageEntry, StorageStat, VolumeEntry};
use crate::wire::IpSize;

/// Space kept free on every member, as the tracker is configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReservedSpace {
    /// An absolute amount, bytes.
    Bytes(u64),
    /// A share of each member's disk, percent.
    Percent(f64),
}

impl ReservedSpace {
    /// The reserve of a disk of `total_mb`, MB (FastDFS's
    /// `calc_reserved_space`).
    pub fn of_mb(self, total_mb: u64) -> u64 {
        match self {
            ReservedSpace::Bytes(b) => b.div_ceil(1 << 20),
            ReservedSpace::Percent(p) => (total_mb as f64 * p / 100.0) as u64,
        }
    }

    /// As FastDFS writes `reserved_storage_space` (`20.00%`, `1024MB`).
    pub fn to_fastdfs(self) -> String {
        match self {
            ReservedSpace::Bytes(b) => format!("{}MB", b.div_ceil(1 << 20)),
            ReservedSpace::Percent(p) => format!("{p:.2}%"),
        }
    }
}

/// When the tracker first saw a member, and when it saw its current
/// process start (its first heartbeat after a restart), Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberTimes {
    /// First heartbeat this tracker had from it in its group.
    pub joined: u64,
    /// First heartbeat of its current process (incarnation).
    pub up_since: u64,
}

/// What the tracker in this process knows beyond the cluster map.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerFacts {
    /// The reserve it keeps on members.
    pub reserved: ReservedSpace,
    /// Members' times, by node ID.
    pub members: BTreeMap<u32, MemberTimes>,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(crate) fn mb(bytes: u64) -> u64 {
    bytes >> 20
}

fn port_of(addr: Option<&str>) -> u64 {
    addr.and_then(Endpoint::parse).map(|e| u64::from(e.port)).unwrap_or(0)
}

/// Where FastDFS clients reach a member (its native address's host when it
/// has no FastDFS listener).
pub(crate) fn endpoint(m: &MemberStatus) -> Endpoint {
    m.fastdfs_addr
        .as_deref()
        .and_then(Endpoint::parse)
        .or_else(|| Endpoint::parse(&m.addr).map(|e| Endpoint { port: 0, ..e }))
        .unwrap_or(Endpoint { ip: String::new(), port: 0 })
}

fn reserved_mb(facts: Option<&TrackerFacts>, total_mb: u64) -> u64 {
    facts.map(|f| f.reserved.of_mb(total_mb)).unwrap_or(0)
}

pub(crate) fn group_stat(g: &GroupStatus, facts: Option<&TrackerFacts>) -> GroupStat {
    GroupStat {
        name: g.name.clone(),
        total_mb: mb(g.total),
        free_mb: mb(g.free),
        reserved_mb: reserved_mb(facts, mb(g.total)),
        count: g.members.len() as u64,
        storage_port: port_of(g.members.iter().find_map(|m| m.fastdfs_addr.as_deref())),
        readable: g.members.iter().filter(|m| m.state == MemberState::Active).count() as u64,
        writable: g.members.iter().filter(|m| m.ready).count() as u64,
        store_path_count: 1,
    }
}

fn times(m: &MemberStatus, facts: Option<&TrackerFacts>) -> MemberTimes {
    facts.and_then(|f| f.members.get(&m.id).copied()).unwrap_or_default()
}

fn last_heartbeat(m: &MemberStatus, now: u64) -> u64 {
    now.saturating_sub(m.last_heartbeat_ms / 1000)
}

pub(crate) fn storage_stat(m: &MemberStatus, facts: Option<&TrackerFacts>) -> StorageStat {
    let t = times(m, facts);
    StorageStat {
        status: reply::status_code(m.state),
        rw_mode: reply::rw_mode(m.state == MemberState::Active, m.ready),
        id: m.id.to_string(),
        ip: endpoint(m).ip,
        version: m.version.clone(),
        join_time: t.joined,
        up_time: t.up_since,
        total_mb: mb(m.total),
        free_mb: mb(m.free),
        reserved_mb: reserved_mb(facts, mb(m.total)),
        store_path_count: 1,
        storage_port: port_of(m.fastdfs_addr.as_deref()),
        last_heartbeat: last_heartbeat(m, now_secs()),
    }
}

/// `FDFS_STORAGE_STAT_FILTER_BY_STATUS`.
const BY_STATUS: u8 = 2;

/// Every member of every group that passes the filter of a storage-stat
/// request (97). Cairn has no trunk servers, so the trunk filter (bit 1)
/// is ignored, as FastDFS ignores it with trunk files off.
pub(crate) fn storage_entries(
    groups: &[GroupStatus],
    facts: Option<&TrackerFacts>,
    filter_by: u8,
    op: u8,
    status: u8,
) -> Vec<StorageEntry> {
    let now = now_secs();
    let mut out = Vec::new();
    for m in groups.iter().flat_map(|g| g.members.iter()) {
        let code = reply::status_code(m.state);
        if filter_by & BY_STATUS != 0 {
            let keep = match op {
                b'=' => code == status,
                b'!' => code != status,
                _ => false,
            };
            if !keep {
                continue;
            }
        }
        out.push(StorageEntry {
            id: m.id.to_string(),
            host: reply::ip_port(&endpoint(m)),
            status: code,
            connections: Default::default(),
            version: m.version.clone(),
            up_time: times(m, facts).up_since,
            last_heartbeat: last_heartbeat(m, now),
        });
    }
    out
}

/// `FDFS_VOLUMN_STAT_FILTER_BY_*` (2, trunk available, is ignored with
/// trunk files off, as FastDFS ignores it).
const BY_DISK: u8 = 1;
const BY_SPACE: u8 = 4;

/// Every group that passes the filter of a volume-stat request (98). A
/// group's disk is available when its free space is above the reserve (it
/// takes uploads); with no trunk files, space is available exactly then.
pub(crate) fn volume_entries(
    groups: &[GroupStatus],
    facts: Option<&TrackerFacts>,
    filter_by: u8,
    disk: bool,
    space: bool,
) -> Vec<VolumeEntry> {
    let mut out = Vec::new();
    for g in groups {
        let available = g.writable;
        if (filter_by & BY_DISK != 0 && available != disk) || (filter_by & BY_SPACE != 0 && available != space) {
            continue;
        }
        let (total_mb, free_mb) = (mb(g.total), mb(g.free));
        let reserved_mb = reserved_mb(facts, total_mb);
        out.push(VolumeEntry {
            name: g.name.clone(),
            total_mb,
            free_mb,
            reserved_mb,
            avail_mb: if available { free_mb.saturating_sub(reserved_mb) } else { 0 },
            disk_available: available,
        });
    }
    out
}

/// The `key=value` lines FastDFS's tracker answers a parameter request
/// (75) with, in its order, with Cairn's values. Storage IDs are off: the
/// names carry node IDs, but Cairn does not serve FastDFS's storage-ID list
/// (69) that a client with `use_storage_id` would fetch next. Cairn has no
/// trunk files; their settings are FastDFS's defaults, unused.
pub(crate) fn parameters(ip: IpSize, facts: Option<&TrackerFacts>) -> Vec<u8> {
    let reserved = facts.map(|f| f.reserved.to_fastdfs()).unwrap_or_else(|| "0.00%".into());
    let lines = [
        ("use_storage_id", "0".to_string()),
        ("id_type_in_filename", "ip".into()),
        ("trust_storage_server_id", "0".into()),
        ("response_ip_addr_size", ip.size().to_string()),
        // A member may come back from another address under its node ID.
        ("storage_ip_changed_auto_adjust", "1".into()),
        // Replication is synchronous: a file is on every member it is read
        // from when its upload is answered.
        ("storage_sync_file_max_delay", "0".into()),
        // Each node puts a blob on its store path with the most free space.
        ("store_path", "2".into()),
        ("reserved_storage_space", reserved),
        ("use_trunk_file", "0".into()),
        ("slot_min_size", "256".into()),
        ("slot_max_size", (1 << 20).to_string()),
        ("trunk_alloc_alignment_size", "256".into()),
        ("trunk_file_size", (64 << 20).to_string()),
        ("trunk_create_file_advance", "0".into()),
        ("trunk_create_file_time_base", "02:00".into()),
        ("trunk_create_file_interval", "86400".into()),
        ("trunk_create_file_space_threshold", "0".into()),
        ("trunk_init_check_occupying", "0".into()),
        ("trunk_init_reload_from_binlog", "0".into()),
        ("trunk_free_space_merge", "0".into()),
        ("delete_unused_trunk_files", "0".into()),
        ("trunk_compress_binlog_min_interval", "0".into()),
        ("trunk_compress_binlog_interval", "0".into()),
        ("trunk_compress_binlog_time_base", "03:00".into()),
        ("trunk_binlog_max_backups", "0".into()),
        ("store_slave_file_use_link", "0".into()),
    ];
    lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_space_as_fastdfs_writes_and_applies_it() {
        assert_eq!(ReservedSpace::Percent(5.0).to_fastdfs(), "5.00%");
        assert_eq!(ReservedSpace::Percent(5.0).of_mb(2000), 100);
        assert_eq!(ReservedSpace::Bytes(3 << 30).to_fastdfs(), "3072MB");
        assert_eq!(ReservedSpace::Bytes(3 << 30).of_mb(1), 3072);
    }

    #[test]
    fn parameters_are_ini_lines_with_the_reserve() {
        let facts = TrackerFacts { reserved: ReservedSpace::Percent(10.0), members: BTreeMap::new() };
        let text = String::from_utf8(parameters(IpSize::V6, Some(&facts))).unwrap();
        assert!(text.starts_with("use_storage_id=0\n"), "{text}");
        assert!(text.contains("\nresponse_ip_addr_size=46\n"), "{text}");
        assert!(text.contains("\nreserved_storage_space=10.00%\n"), "{text}");
        assert!(text.ends_with("store_slave_file_use_link=0\n"), "{text}");
        // FastDFS's client reads it into a buffer of a few KiB.
        assert!(text.len() < 1024);
    }
}

//! The cluster map and the rules that act on it.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use cairn_proto::{
    ClusterMap, ErrorCode, FileId, GroupStatus, GroupView, MemberState, MemberStatus, MemberView, Miss, NodeReport,
    SpareStatus, StoreTarget, WireError,
};
use tracing::warn;

use crate::config::{GroupPolicy, MemberPolicy, Reserved, TrackerConfig};

#[derive(Debug, Clone)]
struct Member {
    state: MemberState,
    last_seen: Instant,
    /// Sequence number of the member's last heartbeat at this tracker.
    last_beat: u64,
    /// Sequence number at which it started syncing.
    syncing_since: u64,
    /// When this tracker first heard from it in its group.
    joined: SystemTime,
    /// When this tracker first heard from its current process.
    up_since: SystemTime,
    report: NodeReport,
}

impl Member {
    fn free(&self) -> u64 {
        self.report.store_paths.iter().map(|p| p.free).min().unwrap_or(0)
    }
    fn total(&self) -> u64 {
        self.report.store_paths.iter().map(|p| p.total).min().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default)]
struct Group {
    members: BTreeMap<u32, Member>,
    primary: Option<u32>,
    epoch: u64,
    next_member: usize,
    next_reader: usize,
}

impl Group {
    fn active(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.state == MemberState::Active)
    }

    /// Active members that know they are active, and so take uploads.
    fn takers(&self) -> impl Iterator<Item = &Member> {
        self.active().filter(|m| m.report.ready)
    }

    /// Keeps an active primary: when the primary is gone, the active member
    /// with the lowest ID takes over under a higher epoch. The rule is
    /// deterministic so that several trackers pick the same primary.
    fn ensure_primary(&mut self) {
        let current_ok =
            self.primary.and_then(|p| self.members.get(&p)).is_some_and(|m| m.state == MemberState::Active);
        if current_ok {
            return;
        }
        let next = self.active().map(|m| m.report.node_id).next();
        if let Some(next) = next {
            self.primary = Some(next);
            self.epoch += 1;
        }
    }

    /// Whether every active peer of `id` forwards writes to it. Only
    /// reports sent after the member's round began count: an older one may
    /// list it from before it went away, while the view that peer holds now
    /// leaves it out. (Nodes list a member only once no write they started
    /// without it is still in flight.)
    fn forwarded(&self, id: u32) -> bool {
        let Some(since) = self.members.get(&id).map(|m| m.syncing_since) else { return false };
        self.active()
            .filter(|m| m.report.node_id != id)
            .all(|m| m.last_beat > since && m.report.write_set.contains(&id))
    }

    /// Turns a syncing member active once its peers forward every write to
    /// it and it has caught up in this round: it then holds everything, so
    /// reads may go to it. The member starts catching up only once it sees
    /// itself forwarded, so nothing can fall between the two.
    fn promote(&mut self) {
        let ids: Vec<u32> = self.members.keys().copied().collect();
        for id in ids {
            let m = &self.members[&id];
            if m.state != MemberState::Syncing || m.report.caught_up_round != m.syncing_since {
                continue;
            }
            if self.forwarded(id) {
                if let Some(m) = self.members.get_mut(&id) {
                    m.state = MemberState::Active;
                }
            }
        }
    }

    /// Takes reports that members were left out of writes: each is taken
    /// offline (out of the write set, no reads) and catches up when it next
    /// reports. A report about an older round is already dealt with.
    fn apply_misses(&mut self, reporter: u32, misses: &[Miss]) {
        // Only a member that holds everything may take others offline: a
        // node that was itself away (frozen, cut off) finishes its stale
        // writes late and would otherwise report its healthy peers, leaving
        // the group with no source to catch up from. (0: sender unknown, an
        // older storage node.)
        if reporter != 0 && !self.members.get(&reporter).is_some_and(|m| m.state == MemberState::Active) {
            if !misses.is_empty() {
                warn!(reporter, "ignoring missed writes reported by a member that is not active");
            }
            return;
        }
        for miss in misses {
            if miss.node_id == reporter {
                continue;
            }
            if let Some(m) = self.members.get_mut(&miss.node_id) {
                let live = matches!(m.state, MemberState::Active | MemberState::Syncing);
                if live && m.syncing_since == miss.round {
                    warn!(member = miss.node_id, reporter, addr = %m.report.addr, "member missed a write; offline until it catches up");
                    m.state = MemberState::Offline;
                }
            }
        }
        self.ensure_primary();
    }

    /// (total, free) of the smallest active member: a group holds only what
    /// every member can hold.
    fn capacity(&self) -> (u64, u64) {
        let free = self.active().map(Member::free).min().unwrap_or(0);
        let total = self.active().map(Member::total).min().unwrap_or(0);
        (total, free)
    }

    fn writable(&self, reserved: Reserved) -> bool {
        self.active().next().is_some()
            && self.active().all(|m| match reserved {
                Reserved::Bytes(b) => m.free() > b,
                Reserved::Percent(p) => m.total() > 0 && (m.free() as f64) * 100.0 > p * m.total() as f64,
            })
    }
}

/// When a tracker first heard from a member, and from its current process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberTimes {
    /// The member's node ID.
    pub node_id: u32,
    /// Its first heartbeat in its group, here.
    pub joined: SystemTime,
    /// The first heartbeat of its current process (incarnation), here.
    pub up_since: SystemTime,
}

/// The map of groups and members, and the decisions made on it.
#[derive(Debug)]
pub struct ClusterState {
    cfg: TrackerConfig,
    groups: BTreeMap<String, Group>,
    next_group: usize,
    /// Counts heartbeats, to order them without trusting clocks.
    beats: u64,
    /// Storage nodes without a group, by address.
    spares: BTreeMap<String, Spare>,
}

#[derive(Debug, Clone)]
struct Spare {
    last_seen: Instant,
    version: String,
    assigned: Option<String>,
}

fn err(code: ErrorCode, msg: impl Into<String>) -> WireError {
    WireError::new(code, msg)
}

impl ClusterState {
    /// An empty map.
    pub fn new(cfg: TrackerConfig) -> Self {
        Self { cfg, groups: BTreeMap::new(), next_group: 0, beats: 0, spares: BTreeMap::new() }
    }

    /// Takes a heartbeat and answers with the node's group as now known.
    pub fn heartbeat(&mut self, report: NodeReport, now: Instant) -> Result<GroupView, WireError> {
        cairn_proto::file_id::validate_group(&report.group).map_err(|r| err(ErrorCode::InvalidArgument, r))?;
        if report.store_paths.is_empty() {
            return Err(err(ErrorCode::InvalidArgument, "a storage node needs at least one store path"));
        }
        // The same ID reporting from another address while the first is alive
        // is two nodes sharing an ID (a copied data dir): refuse the newcomer.
        for (name, g) in &self.groups {
            if let Some(m) = g.members.get(&report.node_id) {
                let alive = m.state != MemberState::Offline && now.duration_since(m.last_seen) < self.cfg.offline_after;
                if (name != &report.group || m.report.addr != report.addr) && alive {
                    return Err(err(
                        ErrorCode::Exists,
                        format!("node ID {} is already in use by {} in group {name}", report.node_id, m.report.addr),
                    ));
                }
            }
        }
        for (name, g) in self.groups.iter_mut() {
            if name != &report.group {
                g.members.remove(&report.node_id);
            }
        }
        let name = report.group.clone();
        let group = self.groups.entry(name.clone()).or_default();
        // A restarted tracker starts at epoch 0; the nodes remember the real
        // one, and the primary that went with it.
        if report.epoch > group.epoch {
            group.epoch = report.epoch;
            group.primary = report.primary;
        }
        let id = report.node_id;
        self.beats += 1;
        let beat = self.beats;
        // A member that is new, or back from offline, joins the write set
        // first (syncing) and turns active once its peers forward to it.
        // A new incarnation is a restart: whatever happened while the
        // process was down, it may have missed writes.
        let restarted = group.members.get(&id).is_some_and(|m| m.report.incarnation != report.incarnation);
        let (state, syncing_since) = match group.members.get(&id) {
            // Removal sticks: the node learns it from the answer and keeps
            // a mark on its disk, so trackers restarted later know too.
            _ if report.removed => (MemberState::Removed, beat),
            Some(m) if m.state == MemberState::Removed => (MemberState::Removed, m.syncing_since),
            Some(m) if m.state == MemberState::Active && !restarted => (MemberState::Active, m.syncing_since),
            Some(m) if m.state == MemberState::Syncing && !restarted => (MemberState::Syncing, m.syncing_since),
            _ => (MemberState::Syncing, beat),
        };
        // A new ID at the address of another member is that machine back
        // with an empty disk (two processes cannot listen on one address):
        // the old entry will never answer again.
        let addr = report.addr.clone();
        group.members.retain(|mid, m| {
            let stale = *mid != id && m.report.addr == addr;
            if stale {
                tracing::warn!(old = *mid, new = id, %addr, "a new node ID took over this address; dropping the old one");
            }
            !stale
        });
        let missed = report.missed.clone();
        self.spares.remove(&addr);
        let wall = SystemTime::now();
        let joined = group.members.get(&id).map_or(wall, |m| m.joined);
        let up_since = group.members.get(&id).filter(|_| !restarted).map_or(wall, |m| m.up_since);
        group
            .members
            .insert(id, Member { state, last_seen: now, last_beat: beat, syncing_since, joined, up_since, report });
        group.apply_misses(id, &missed);
        group.promote();
        group.ensure_primary();
        Ok(view(&name, group))
    }

    /// A storage node reports members it left out of a write.
    pub fn report_missed(&mut self, group: &str, reporter: u32, misses: &[Miss]) -> Result<GroupView, WireError> {
        let g =
            self.groups.get_mut(group).ok_or_else(|| err(ErrorCode::NotFound, format!("no group named {group}")))?;
        g.apply_misses(reporter, misses);
        g.promote();
        Ok(view(group, g))
    }

    /// Takes a member out of its group for good. Refused when no other
    /// active member would hold the group's files.
    pub fn remove_member(&mut self, group: &str, node_id: u32) -> Result<(), WireError> {
        let g =
            self.groups.get_mut(group).ok_or_else(|| err(ErrorCode::NotFound, format!("no group named {group}")))?;
        let state = g
            .members
            .get(&node_id)
            .map(|m| m.state)
            .ok_or_else(|| err(ErrorCode::NotFound, format!("group {group} has no member {node_id}")))?;
        if state == MemberState::Removed {
            return Ok(());
        }
        if !g.active().any(|m| m.report.node_id != node_id) {
            return Err(err(
                ErrorCode::InvalidArgument,
                format!(
                    "member {node_id} is the only active member of {group}: removing it would lose the group's files"
                ),
            ));
        }
        if let Some(m) = g.members.get_mut(&node_id) {
            warn!(group, member = node_id, addr = %m.report.addr, "member removed by an operator");
            m.state = MemberState::Removed;
        }
        g.ensure_primary();
        Ok(())
    }

    /// A spare storage node reports; answers with the group it was given.
    pub fn spare_heartbeat(&mut self, addr: &str, version: String, now: Instant) -> Option<String> {
        let spare = self.spares.entry(addr.to_string()).or_insert(Spare {
            last_seen: now,
            version: String::new(),
            assigned: None,
        });
        spare.last_seen = now;
        spare.version = version;
        spare.assigned.clone()
    }

    /// Puts a spare into a group; it joins at its next heartbeat.
    pub fn add_member(&mut self, group: &str, addr: &str, now: Instant) -> Result<(), WireError> {
        cairn_proto::file_id::validate_group(group).map_err(|r| err(ErrorCode::InvalidArgument, r))?;
        let alive = self.cfg.offline_after;
        let spare = self.spares.get_mut(addr).filter(|s| now.duration_since(s.last_seen) < alive).ok_or_else(|| {
            err(
                ErrorCode::NotFound,
                format!("no spare storage node reports from {addr} (start one with `cairn storage --spare`)"),
            )
        })?;
        spare.assigned = Some(group.to_string());
        Ok(())
    }

    /// Marks members that missed their heartbeats offline and moves
    /// primaries away from them.
    pub fn sweep(&mut self, now: Instant) {
        let limit = self.cfg.offline_after;
        for g in self.groups.values_mut() {
            for m in g.members.values_mut() {
                let live = matches!(m.state, MemberState::Active | MemberState::Syncing);
                if live && now.duration_since(m.last_seen) >= limit {
                    m.state = MemberState::Offline;
                }
            }
            g.promote();
            g.ensure_primary();
        }
        self.spares.retain(|_, s| now.duration_since(s.last_seen) < limit * 10);
    }

    /// Chooses where an upload goes.
    pub fn place(&mut self, group: Option<&str>, exclude: &[String]) -> Result<StoreTarget, WireError> {
        let reserved = self.cfg.reserved;
        let name = match group {
            Some(g) => {
                let grp = self.groups.get(g).ok_or_else(|| err(ErrorCode::NotFound, format!("no group named {g}")))?;
                if grp.takers().next().is_none() {
                    return Err(err(ErrorCode::Unavailable, format!("group {g} has no active member")));
                }
                if !grp.writable(reserved) {
                    return Err(err(ErrorCode::NoSpace, format!("group {g} is full (free space below the reserve)")));
                }
                g.to_string()
            }
            None => {
                let writable: Vec<&String> = self
                    .groups
                    .iter()
                    .filter(|(_, g)| g.writable(reserved) && g.takers().any(|m| !exclude.contains(&m.report.addr)))
                    .map(|(n, _)| n)
                    .collect();
                if writable.is_empty() {
                    let has_takers =
                        self.groups.values().any(|g| g.takers().any(|m| !exclude.contains(&m.report.addr)));
                    return Err(if has_takers {
                        err(ErrorCode::NoSpace, "every group is full (free space below the reserve)")
                    } else {
                        err(ErrorCode::Unavailable, "no storage node is ready to take uploads")
                    });
                }
                match self.cfg.group_policy {
                    GroupPolicy::RoundRobin => {
                        self.next_group = self.next_group.wrapping_add(1);
                        writable[self.next_group % writable.len()].clone()
                    }
                    GroupPolicy::MostFree => {
                        (*writable.iter().max_by_key(|n| self.groups[n.as_str()].capacity().1).unwrap_or(&writable[0]))
                            .clone()
                    }
                }
            }
        };
        let policy = self.cfg.member_policy;
        let grp = self.groups.get_mut(&name).ok_or_else(|| err(ErrorCode::NotFound, "group vanished"))?;
        let mut candidates: Vec<&Member> = grp.takers().filter(|m| !exclude.contains(&m.report.addr)).collect();
        if candidates.is_empty() {
            candidates = grp.takers().collect();
        }
        if candidates.is_empty() {
            return Err(err(ErrorCode::Unavailable, format!("group {name} has no active member")));
        }
        let chosen = match policy {
            MemberPolicy::RoundRobin => candidates[grp.next_member % candidates.len()],
            MemberPolicy::LeastLoad => {
                candidates.iter().min_by_key(|m| m.report.load).copied().unwrap_or(candidates[0])
            }
        };
        let target =
            StoreTarget { group: name.clone(), node_id: chosen.report.node_id, addr: chosen.report.addr.clone() };
        grp.next_member = grp.next_member.wrapping_add(1);
        Ok(target)
    }

    /// Members to read a file from, in the order to try them; the first one
    /// rotates so reads spread over the group.
    pub fn fetch(&mut self, id: &FileId) -> Result<Vec<String>, WireError> {
        let g = self
            .groups
            .get_mut(id.group())
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no group named {}", id.group())))?;
        let mut addrs: Vec<String> = g.active().map(|m| m.report.addr.clone()).collect();
        if addrs.is_empty() {
            return Err(err(ErrorCode::Unavailable, format!("group {} has no active member", id.group())));
        }
        g.next_reader = g.next_reader.wrapping_add(1);
        let n = g.next_reader % addrs.len();
        addrs.rotate_left(n);
        Ok(addrs)
    }

    /// Where to send a mutation: the group's primary, which orders them.
    pub fn update(&self, id: &FileId) -> Result<Vec<String>, WireError> {
        let g = self
            .groups
            .get(id.group())
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no group named {}", id.group())))?;
        let primary = g
            .primary
            .and_then(|p| g.members.get(&p))
            .filter(|m| m.state == MemberState::Active)
            .ok_or_else(|| err(ErrorCode::Unavailable, format!("group {} has no active primary", id.group())))?;
        Ok(vec![primary.report.addr.clone()])
    }

    /// The reserve kept on members.
    pub fn reserved(&self) -> Reserved {
        self.cfg.reserved
    }

    /// When this tracker first heard from each member of each group, and
    /// from its current process. Nodes do not report these; a restarted
    /// tracker starts them again.
    pub fn member_times(&self) -> Vec<MemberTimes> {
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .map(|m| MemberTimes { node_id: m.report.node_id, joined: m.joined, up_since: m.up_since })
            .collect()
    }

    /// The whole map, for `cairn status`.
    pub fn status(&self, tracker: &str, now: Instant) -> ClusterMap {
        let groups = self
            .groups
            .iter()
            .map(|(name, g)| {
                let (total, free) = g.capacity();
                GroupStatus {
                    name: name.clone(),
                    epoch: g.epoch,
                    primary: g.primary,
                    free,
                    total,
                    writable: g.writable(self.cfg.reserved),
                    members: g
                        .members
                        .values()
                        .map(|m| MemberStatus {
                            id: m.report.node_id,
                            addr: m.report.addr.clone(),
                            state: m.state,
                            primary: g.primary == Some(m.report.node_id),
                            ready: m.report.ready && m.state == MemberState::Active,
                            incarnation: m.report.incarnation,
                            total: m.report.store_paths.iter().map(|p| p.total).sum(),
                            free: m.report.store_paths.iter().map(|p| p.free).sum(),
                            files: m.report.files,
                            bytes: m.report.bytes,
                            load: m.report.load,
                            last_heartbeat_ms: now.saturating_duration_since(m.last_seen).as_millis() as u64,
                            version: m.report.version.clone(),
                            fastdfs_addr: m.report.fastdfs_addr.clone(),
                            http_addr: m.report.http_addr.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        let spares = self
            .spares
            .iter()
            .map(|(addr, s)| SpareStatus {
                addr: addr.clone(),
                assigned: s.assigned.clone(),
                last_heartbeat_ms: now.saturating_duration_since(s.last_seen).as_millis() as u64,
                version: s.version.clone(),
            })
            .collect();
        ClusterMap { tracker: tracker.to_string(), groups, spares }
    }
}

fn view(name: &str, g: &Group) -> GroupView {
    GroupView {
        name: name.to_string(),
        epoch: g.epoch,
        primary: g.primary,
        members: g
            .members
            .values()
            .map(|m| MemberView {
                id: m.report.node_id,
                addr: m.report.addr.clone(),
                state: m.state,
                round: m.syncing_since,
                forwarded: m.state == MemberState::Syncing && g.forwarded(m.report.node_id),
                http_addr: m.report.http_addr.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;

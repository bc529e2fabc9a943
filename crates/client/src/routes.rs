//! The group map, kept for a moment: which members of each group read and
//! take uploads. Asking a tracker before every upload and download costs a
//! round trip each; the map changes rarely (a member joins, leaves or
//! fails), so the client keeps the trackers' whole map for [`ROUTE_TTL`]
//! and spreads requests over members itself. A stale map is safe: a member
//! that is no longer active refuses reads and uploads, and the client then
//! drops the map and asks again. Mutations of existing blobs go to the
//! group's primary from the same map: a member that is not (or no longer)
//! primary refuses them (`NotPrimary`, or `StaleEpoch` from its peers), and
//! the client drops the map and asks a tracker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_proto::{ClusterMap, MemberState};

/// How long a map is used before it is asked for again.
pub(crate) const ROUTE_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Group {
    /// Active members: they serve reads.
    readers: Vec<String>,
    /// Active members ready for uploads, when the group has room.
    takers: Vec<String>,
    /// The primary, when it is active: it takes deletes, appends and the
    /// other mutations of existing blobs.
    primary: Option<String>,
}

/// The cached map.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    map: Mutex<Option<(Instant, HashMap<String, Group>)>>,
    cursor: AtomicUsize,
}

impl Routes {
    /// Keeps a fresh map from a tracker.
    pub(crate) fn learn(&self, map: &ClusterMap) {
        let groups = map
            .groups
            .iter()
            .map(|g| {
                let active = || g.members.iter().filter(|m| m.state == MemberState::Active);
                let readers = active().map(|m| m.addr.clone()).collect();
                let takers = if g.writable {
                    active().filter(|m| m.ready).map(|m| m.addr.clone()).collect()
                } else {
                    Vec::new()
                };
                let primary = active().find(|m| Some(m.id) == g.primary).map(|m| m.addr.clone());
                (g.name.clone(), Group { readers, takers, primary })
            })
            .collect();
        *self.map.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), groups));
    }

    /// Drops the map (a member it named failed).
    pub(crate) fn forget(&self) {
        *self.map.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether a fresh map is held.
    pub(crate) fn fresh(&self) -> bool {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|(at, _)| at.elapsed() < ROUTE_TTL)
    }

    /// The members to read a blob of `group` from, in the order to try
    /// them (rotated per call), if the map is fresh and knows some.
    pub(crate) fn readers(&self, group: &str) -> Option<Vec<String>> {
        self.pick(group, |g| &g.readers)
    }

    /// The members of `group` to try for an upload, in order, if the map
    /// is fresh and the group has some.
    pub(crate) fn takers(&self, group: &str) -> Option<Vec<String>> {
        self.pick(group, |g| &g.takers)
    }

    /// The primary of `group`, if the map is fresh and names an active one.
    pub(crate) fn primary(&self, group: &str) -> Option<String> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (at, groups) = m.as_ref()?;
        if at.elapsed() >= ROUTE_TTL {
            return None;
        }
        groups.get(group)?.primary.clone()
    }

    fn pick(&self, group: &str, which: impl Fn(&Group) -> &Vec<String>) -> Option<Vec<String>> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (at, groups) = m.as_ref()?;
        if at.elapsed() >= ROUTE_TTL {
            return None;
        }
        let mut members = which(groups.get(group)?).clone();
        if members.is_empty() {
            return None;
        }
        let n = self.cursor.fetch_add(1, Ordering::Relaxed) % members.len();
        members.rotate_left(n);
        Some(members)
    }
}

#[cfg(test)]
mod tests {
    use cairn_proto::{GroupStatus, MemberStatus};

    use super::*;

    fn member(addr: &str, state: MemberState, ready: bool) -> MemberStatus {
        MemberStatus {
            id: 1,
            addr: addr.into(),
            state,
            primary: false,
            ready,
            incarnation: 0,
            total: 0,
            free: 0,
            files: 0,
            bytes: 0,
            load: 0,
            last_heartbeat_ms: 0,
            version: String::new(),
            fastdfs_addr: None,
            http_addr: None,
        }
    }

    #[test]
    fn reads_go_to_active_members_and_uploads_to_ready_ones_of_writable_groups() {
        let r = Routes::default();
        assert!(r.readers("g1").is_none(), "no map yet");
        let g = |name: &str, writable| GroupStatus {
            name: name.into(),
            epoch: 1,
            primary: None,
            free: 0,
            total: 0,
            writable,
            members: vec![
                member("a", MemberState::Active, true),
                member("b", MemberState::Active, false),
                member("c", MemberState::Syncing, true),
            ],
        };
        r.learn(&ClusterMap { tracker: "t".into(), groups: vec![g("g1", true), g("full", false)], spares: vec![] });
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            let readers = r.readers("g1").unwrap();
            assert_eq!(readers.len(), 2);
            seen.insert(readers[0].clone());
        }
        assert_eq!(seen.len(), 2, "reads are spread over both active members");
        assert_eq!(r.takers("g1").unwrap(), vec!["a".to_string()]);
        assert!(r.takers("full").is_none(), "a full group takes no uploads");
        assert!(r.readers("nope").is_none());
        r.forget();
        assert!(r.readers("g1").is_none());
    }
}

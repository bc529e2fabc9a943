//! Members left out of a write.
//!
//! When a peer fails or stalls during a write, the write completes on the
//! others, and the peer no longer holds everything its group holds. Before
//! the client is answered, the node tells every tracker, which takes the
//! member offline (no reads, out of the write set) until it reports again
//! and catches up. Each report names the member's round at that tracker, so
//! a late or repeated report about a round already over changes nothing.
//! Reports are also repeated in heartbeats until each tracker's view shows
//! the member moved on: a tracker that was unreachable learns it later.

use std::time::Duration;

use cairn_proto::{MemberState, Miss, Request, Response};
use futures::future::join_all;
use tracing::warn;

use crate::node::Node;

/// Time a write waits for a tracker to take a miss report.
const REPORT_TIMEOUT: Duration = Duration::from_millis(200);

impl Node {
    /// Records that `members` missed a write and tells the trackers.
    pub(crate) async fn report_missed(&self, members: &[u32]) {
        if members.is_empty() {
            return;
        }
        let mut pending: Vec<(String, Miss)> = Vec::new();
        for &id in members {
            for s in self.view.standing(id) {
                if matches!(s.state, MemberState::Active | MemberState::Syncing) {
                    pending.push((s.tracker, Miss { node_id: id, round: s.round }));
                }
            }
        }
        {
            let mut missed = self.missed.lock().unwrap_or_else(|p| p.into_inner());
            for p in &pending {
                if !missed.contains(p) {
                    missed.push(p.clone());
                }
            }
        }
        let group = self.store.group().to_string();
        let trackers: Vec<String> = self.cfg.trackers.clone();
        join_all(trackers.into_iter().map(|t| {
            let missed: Vec<Miss> = pending.iter().filter(|(pt, _)| *pt == t).map(|(_, m)| *m).collect();
            let group = group.clone();
            async move {
                if missed.is_empty() {
                    return;
                }
                let req = Request::ReportMissedBy { group, reporter: self.id(), missed };
                match tokio::time::timeout(REPORT_TIMEOUT, self.pool.call(&t, &req)).await {
                    Ok(Ok(Response::Group(view))) => {
                        self.view.update(&t, view);
                        self.prune_missed();
                    }
                    Ok(Ok(other)) => warn!(tracker = %t, got = %other.name(), "unexpected answer to a miss report"),
                    Ok(Err(e)) => warn!(tracker = %t, error = %e, "could not report a missed write; will repeat it"),
                    Err(_) => warn!(tracker = %t, "miss report timed out; will repeat it"),
                }
            }
        }))
        .await;
    }

    /// Misses not yet seen through by `tracker`, for its heartbeat.
    pub(crate) fn missed_for(&self, tracker: &str) -> Vec<Miss> {
        let missed = self.missed.lock().unwrap_or_else(|p| p.into_inner());
        missed.iter().filter(|(t, _)| t == tracker).map(|(_, m)| *m).collect()
    }

    /// Forgets misses a tracker has acted on: its view shows the member in
    /// another round, or not live.
    pub(crate) fn prune_missed(&self) {
        let mut missed = self.missed.lock().unwrap_or_else(|p| p.into_inner());
        missed.retain(|(t, m)| {
            self.view.of_tracker(t).is_some_and(|v| {
                v.members.iter().any(|x| {
                    x.id == m.node_id
                        && x.round == m.round
                        && matches!(x.state, MemberState::Active | MemberState::Syncing)
                })
            })
        });
    }
}

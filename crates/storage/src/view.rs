//! The node's picture of its group, merged from every tracker's answers.
//!
//! Trackers answer independently and may briefly disagree (one has not yet
//! heard from a newcomer). The node therefore keeps each tracker's latest
//! view and errs on the side of durability: it forwards writes to the union
//! of the members any tracker puts in the write set, and takes epoch and
//! primary from the view with the highest epoch.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use cairn_proto::{ErrorCode, GroupView, MemberState, ProtoError};

use crate::error::refuse;

/// Latest view from each tracker.
#[derive(Debug)]
pub struct View {
    views: RwLock<HashMap<String, (Instant, GroupView)>>,
    /// Views older than this (a tracker that stopped answering) are ignored
    /// while fresher ones exist.
    stale_after: Duration,
}

/// What one operation needs to know about the group, taken at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Highest epoch known.
    pub epoch: u64,
    /// Primary of that epoch.
    pub primary: Option<u32>,
    /// Its address, if known.
    pub primary_addr: Option<String>,
    /// Every member in any tracker's write set (active or syncing), by ID.
    pub write_set: Vec<(u32, String)>,
    /// Members some tracker counts active (they hold everything), by ID.
    pub active: Vec<(u32, String)>,
}

/// This node as one tracker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The tracker.
    pub tracker: String,
    /// State there.
    pub state: MemberState,
    /// Round there (see [`cairn_proto::MemberView::round`]).
    pub round: u64,
    /// Whether every active peer forwards writes to it.
    pub forwarded: bool,
}

impl Snapshot {
    /// The write set without this node: (ID, address).
    pub fn peers(&self, me: u32) -> Vec<(u32, String)> {
        self.write_set.iter().filter(|(id, _)| *id != me).cloned().collect()
    }

    /// Active members other than this node, (ID, address): sources for
    /// copies. An entry with this node's own address (its previous ID,
    /// before a wipe) is not another member.
    pub fn sources(&self, me: u32) -> Vec<(u32, String)> {
        let mine: Vec<&String> = self.write_set.iter().filter(|(id, _)| *id == me).map(|(_, a)| a).collect();
        self.active.iter().filter(|(id, a)| *id != me && !mine.contains(&a)).cloned().collect()
    }

    /// Refuses unless this node is the primary.
    pub fn require_primary(&self, me: u32) -> Result<(), ProtoError> {
        if self.primary == Some(me) {
            return Ok(());
        }
        let addr = self.primary_addr.as_deref().unwrap_or("unknown");
        Err(refuse(ErrorCode::NotPrimary, format!("mutations go to the group's primary ({addr})")))
    }
}

impl View {
    /// An empty view; `heartbeat` is the nodes' heartbeat interval.
    pub fn new(heartbeat: Duration) -> Self {
        Self { views: RwLock::new(HashMap::new()), stale_after: heartbeat * 5 + Duration::from_secs(1) }
    }

    /// Takes a tracker's answer.
    pub fn update(&self, tracker: &str, view: GroupView) {
        self.views.write().unwrap_or_else(|p| p.into_inner()).insert(tracker.to_string(), (Instant::now(), view));
    }

    fn fresh(&self) -> Vec<GroupView> {
        self.fresh_by_tracker().into_iter().map(|(_, _, v)| v).collect()
    }

    /// The views to go by, with their trackers and when they arrived.
    fn fresh_by_tracker(&self) -> Vec<(String, Instant, GroupView)> {
        let views = self.views.read().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let fresh: Vec<(String, Instant, GroupView)> = views
            .iter()
            .filter(|(_, (t, _))| now.duration_since(*t) < self.stale_after)
            .map(|(k, (t, v))| (k.clone(), *t, v.clone()))
            .collect();
        if fresh.is_empty() {
            // Every tracker is gone: keep serving with what we last knew.
            views
                .iter()
                .max_by_key(|(_, (t, _))| *t)
                .map(|(k, (t, v))| vec![(k.clone(), *t, v.clone())])
                .unwrap_or_default()
        } else {
            fresh
        }
    }

    /// How each tracker sees member `id` (state, round, forwarded), for
    /// the trackers that list it.
    pub fn standing(&self, id: u32) -> Vec<Standing> {
        self.fresh_by_tracker()
            .into_iter()
            .filter_map(|(tracker, _, v)| {
                v.members.iter().find(|m| m.id == id).map(|m| Standing {
                    tracker,
                    state: m.state,
                    round: m.round,
                    forwarded: m.forwarded,
                })
            })
            .collect()
    }

    /// Whether every tracker to go by has answered since `t`.
    pub fn all_answered_since(&self, t: Instant) -> bool {
        let views = self.fresh_by_tracker();
        !views.is_empty() && views.iter().all(|(_, at, _)| *at > t)
    }

    /// The view one tracker last gave.
    pub fn of_tracker(&self, tracker: &str) -> Option<GroupView> {
        self.views.read().unwrap_or_else(|p| p.into_inner()).get(tracker).map(|(_, v)| v.clone())
    }

    /// The group as of now, if any tracker has answered yet.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let views = self.fresh();
        let top = views.iter().max_by_key(|v| v.epoch)?;
        let primary_addr = top.primary.and_then(|p| top.members.iter().find(|m| m.id == p)).map(|m| m.addr.clone());
        let mut write_set: Vec<(u32, String)> = Vec::new();
        let mut active: Vec<(u32, String)> = Vec::new();
        for v in &views {
            for m in &v.members {
                if matches!(m.state, MemberState::Active | MemberState::Syncing)
                    && !write_set.iter().any(|(id, _)| *id == m.id)
                {
                    write_set.push((m.id, m.addr.clone()));
                }
                if m.state == MemberState::Active && !active.iter().any(|(id, _)| *id == m.id) {
                    active.push((m.id, m.addr.clone()));
                }
            }
        }
        Some(Snapshot { epoch: top.epoch, primary: top.primary, primary_addr, write_set, active })
    }

    /// HTTP download addresses of the active members other than `me`.
    pub fn http_peers(&self, me: u32) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in self.fresh() {
            for m in v.members.iter().filter(|m| m.id != me && m.state == MemberState::Active) {
                if let Some(a) = m.http_addr.as_ref().filter(|a| !out.contains(a)) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    /// Epoch, primary and write set, for heartbeats.
    pub fn report(&self) -> (u64, Option<u32>, Vec<u32>) {
        match self.snapshot() {
            Some(s) => (s.epoch, s.primary, s.write_set.iter().map(|(id, _)| *id).collect()),
            None => (0, None, Vec::new()),
        }
    }

    /// Highest epoch known.
    pub fn epoch(&self) -> u64 {
        self.snapshot().map(|s| s.epoch).unwrap_or(0)
    }

    /// The group, provided some tracker counts this node active: a node that
    /// does not know its peers must not take writes it cannot replicate.
    pub fn ready(&self, me: u32) -> Result<Snapshot, ProtoError> {
        let views = self.fresh();
        if views.is_empty() {
            return Err(refuse(ErrorCode::NotReady, "storage node has not heard from any tracker yet"));
        }
        let states: Vec<MemberState> =
            views.iter().filter_map(|v| v.members.iter().find(|m| m.id == me)).map(|m| m.state).collect();
        if !states.contains(&MemberState::Active) {
            let why = states.first().map(|s| s.as_str()).unwrap_or("not yet a member");
            return Err(refuse(ErrorCode::NotReady, format!("storage node is {why} in its group")));
        }
        self.snapshot().ok_or_else(|| refuse(ErrorCode::NotReady, "no group view"))
    }
}

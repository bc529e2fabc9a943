//! The node's picture of its group.

use std::sync::RwLock;

use cairn_proto::{ErrorCode, GroupView, MemberState, ProtoError};

use crate::error::refuse;

/// The latest [`GroupView`] from any tracker.
#[derive(Debug, Default)]
pub struct View {
    current: RwLock<Option<GroupView>>,
}

impl View {
    /// Takes a tracker's answer unless it is older than what we know.
    /// Several trackers answer independently; the highest epoch wins.
    pub fn update(&self, view: GroupView) {
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        if cur.as_ref().is_none_or(|c| view.epoch >= c.epoch) {
            *cur = Some(view);
        }
    }

    /// The view, if any tracker has answered yet.
    pub fn get(&self) -> Option<GroupView> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Epoch and primary, for heartbeats.
    pub fn epoch(&self) -> (u64, Option<u32>) {
        self.get().map(|v| (v.epoch, v.primary)).unwrap_or((0, None))
    }

    /// The view, provided this node is an active member of it: a node that
    /// does not know its peers must not take writes it cannot replicate.
    pub fn ready(&self, me: u32) -> Result<GroupView, ProtoError> {
        let v = self.get().ok_or_else(|| refuse(ErrorCode::NotReady, "storage node has not heard from any tracker yet"))?;
        match v.members.iter().find(|m| m.id == me) {
            Some(m) if m.state == MemberState::Active => Ok(v),
            Some(m) => Err(refuse(ErrorCode::NotReady, format!("storage node is {} in its group", m.state.as_str()))),
            None => Err(refuse(ErrorCode::NotReady, "storage node is not yet a member of its group")),
        }
    }
}

/// Addresses of the other active members.
pub fn active_peers(v: &GroupView, me: u32) -> Vec<String> {
    v.members.iter().filter(|m| m.id != me && m.state == MemberState::Active).map(|m| m.addr.clone()).collect()
}

/// Refuses unless this node is the primary.
pub fn require_primary(v: &GroupView, me: u32) -> Result<(), ProtoError> {
    if v.primary == Some(me) {
        return Ok(());
    }
    let addr = v.primary.and_then(|p| v.members.iter().find(|m| m.id == p)).map(|m| m.addr.as_str()).unwrap_or("unknown");
    Err(refuse(ErrorCode::NotPrimary, format!("mutations of appender files go to the group's primary ({addr})")))
}

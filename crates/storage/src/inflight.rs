//! Writes in flight, and the barrier they put on what a node reports.
//!
//! A node tells trackers which members it forwards writes to (its write
//! set), and a tracker lets a returning member start its catch-up only once
//! every active peer lists it (`forwarded`). That is only sound if no write
//! the node started *without* the member is still running: such a write
//! could land on the peer after the member's catch-up had looked. So each
//! write registers the write set it was started with, and the node reports
//! only members that every running write includes.

use std::collections::HashMap;
use std::sync::Mutex;

use cairn_proto::ProtoError;

use crate::node::Node;
use crate::view::Snapshot;

/// The running writes' write sets, by token.
#[derive(Debug, Default)]
pub struct InFlight {
    writes: Mutex<(u64, HashMap<u64, Vec<u32>>)>,
}

/// A running write; unregisters itself when dropped.
pub struct WriteGuard<'a> {
    inflight: &'a InFlight,
    token: u64,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.inflight.writes.lock().unwrap_or_else(|p| p.into_inner()).1.remove(&self.token);
    }
}

impl Node {
    /// The group view for a write this node originates, registered until
    /// the guard is dropped. Refused unless this node is active.
    pub(crate) fn begin_write(&self) -> Result<(Snapshot, WriteGuard<'_>), ProtoError> {
        let mut w = self.inflight.writes.lock().unwrap_or_else(|p| p.into_inner());
        let view = self.ready()?;
        w.0 += 1;
        let token = w.0;
        w.1.insert(token, view.write_set.iter().map(|(id, _)| *id).collect());
        Ok((view, WriteGuard { inflight: &self.inflight, token }))
    }

    /// Whether no write this node originated is running.
    pub(crate) fn no_writes_running(&self) -> bool {
        self.inflight.writes.lock().unwrap_or_else(|p| p.into_inner()).1.is_empty()
    }

    /// The write set to report: members of the current view that every
    /// running write also includes.
    pub(crate) fn reported_write_set(&self) -> Vec<u32> {
        let w = self.inflight.writes.lock().unwrap_or_else(|p| p.into_inner());
        let (_, _, mut set) = self.view.report();
        set.retain(|id| w.1.values().all(|s| s.contains(id)));
        set
    }
}

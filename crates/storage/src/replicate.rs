//! Forwarding to peers: the originator's side of replication.

use std::time::Duration;

use cairn_proto::frame::{expect_frame, write_body_end, write_chunk, write_frame};
use cairn_proto::net::check;
use cairn_proto::{ErrorCode, Pooled, ProtoError, ReplicaCommit, ReplicaOp, Request, Response};
use futures::future::join_all;
use tokio::io::AsyncWriteExt;
use tracing::warn;

use crate::node::Node;
use crate::view::Snapshot;

/// Time allowed per byte on top of the replica timeout when a peer fsyncs a
/// large body: 1 s per 32 MiB, slower than any disk worth storing on.
const FSYNC_ALLOWANCE_BYTES_PER_SEC: u64 = 32 << 20;

/// Body streams to the active peers of one write. A peer that fails or
/// stalls past the replica timeout is dropped from the set, and the write
/// goes on without it; the caller reports it (see `missed.rs`) before
/// answering the client.
pub struct ReplicaSet<'a> {
    node: &'a Node,
    streams: Vec<(u32, Pooled)>,
    outcome: Outcome,
    sent: u64,
}

/// How a replicated write went on the peers.
#[derive(Debug, Default)]
#[must_use]
pub struct Outcome {
    /// Members left out (failed or stalled): they must be reported.
    pub missed: Vec<u32>,
    /// A peer knows a newer epoch: this node's view is out of date, and a
    /// mutation it ordered must be refused (the client asks again).
    pub stale: bool,
}

/// Why a peer left a write.
enum Left {
    /// It failed or stalled.
    Out,
    /// It refused an older epoch.
    Stale,
}

impl<'a> ReplicaSet<'a> {
    /// Opens a stream to every active peer and sends the header.
    pub async fn open(node: &'a Node, view: &Snapshot, header: Request) -> ReplicaSet<'a> {
        let peers = view.peers(node.id());
        let t = node.cfg.replica_timeout;
        let header = &header;
        let opened = join_all(peers.into_iter().map(|(id, addr)| async move {
            let r = tokio::time::timeout(t, async {
                let mut c = node.pool.get(&addr).await?;
                write_frame(&mut c.conn, header).await?;
                Ok::<_, ProtoError>(c)
            })
            .await;
            settle(node, &addr, "open", r).map(|c| (id, c)).map_err(|why| (id, why))
        }))
        .await;
        let mut outcome = Outcome::default();
        let streams = split(opened, &mut outcome);
        ReplicaSet { node, streams, outcome, sent: 0 }
    }

    /// Sends one chunk to every peer still in the set. With `flush` false
    /// it may wait in the connection's buffer for what follows: a body kept
    /// in memory (see [`cairn_store::Spool::stays_in_memory`]) gives a peer
    /// nothing to do before the commit frame, so header, body and commit go
    /// in one write and wake the peer once instead of three times.
    pub async fn send_chunk(&mut self, data: &[u8], flush: bool) {
        if self.streams.is_empty() {
            return;
        }
        self.sent += data.len() as u64;
        self.send("send", Some(data), flush).await;
    }

    /// Ends the body on every peer, so they fsync a spooled body while the
    /// caller does too (`flush`), or (not flushed) along with the commit.
    pub async fn end_body(&mut self, flush: bool) {
        self.send("end", None, flush).await;
    }

    /// Writes a chunk (or, for `None`, the end of the body) to every peer,
    /// dropping those that fail or stall.
    async fn send(&mut self, step: &'static str, data: Option<&[u8]>, flush: bool) {
        let t = self.node.cfg.replica_timeout;
        let node = self.node;
        let streams = std::mem::take(&mut self.streams);
        let kept = join_all(streams.into_iter().map(|(id, mut s)| async move {
            let r = tokio::time::timeout(t, async {
                match data {
                    Some(d) => write_chunk(&mut s.conn, d).await?,
                    None => write_body_end(&mut s.conn).await?,
                }
                if flush {
                    s.conn.flush().await?;
                }
                Ok::<_, ProtoError>(())
            })
            .await;
            let addr = s.addr.clone();
            settle(node, &addr, step, r.map(|r| r.map(|()| s))).map(|s| (id, s)).map_err(|why| (id, why))
        }))
        .await;
        self.streams = split(kept, &mut self.outcome);
    }

    /// Tells every peer what to do with the body and waits for each to
    /// confirm it is on disk.
    pub async fn commit(self, commit: &ReplicaCommit) -> Outcome {
        let t = self.node.cfg.replica_timeout + Duration::from_secs(self.sent / FSYNC_ALLOWANCE_BYTES_PER_SEC);
        let node = self.node;
        let done = join_all(self.streams.into_iter().map(|(id, mut s)| async move {
            let r = tokio::time::timeout(t, async {
                write_frame(&mut s.conn, commit).await?;
                s.conn.flush().await?;
                let resp: Response = expect_frame(&mut s.conn).await?;
                check(resp)?;
                Ok::<_, ProtoError>(())
            })
            .await;
            let addr = s.addr.clone();
            settle(node, &addr, "commit", r.map(|r| r.map(|()| s))).map(|s| node.pool.put(s)).map_err(|why| (id, why))
        }))
        .await;
        let mut outcome = self.outcome;
        split(done, &mut outcome);
        outcome
    }

    /// Gives up: the connections close and each peer throws its spool away.
    pub fn abort(self) {}
}

/// Sends a mutation without a body to every peer of the write set.
pub async fn replicate_op(node: &Node, view: &Snapshot, op: ReplicaOp) -> Outcome {
    let peers = view.peers(node.id());
    let req = Request::ReplicaOp { epoch: view.epoch, op };
    let t = node.cfg.replica_timeout;
    let req = &req;
    let done = join_all(peers.into_iter().map(|(id, addr)| async move {
        let r = tokio::time::timeout(t, node.pool.call(&addr, req)).await;
        settle(node, &addr, "apply", r.map(|r| r.map(|_| ()))).map_err(|why| (id, why))
    }))
    .await;
    let mut outcome = Outcome::default();
    split(done, &mut outcome);
    outcome
}

/// Keeps the peers still in the write; notes the others in `outcome`.
fn split<T>(results: Vec<Result<T, (u32, Left)>>, outcome: &mut Outcome) -> Vec<T> {
    let mut kept = Vec::new();
    for r in results {
        match r {
            Ok(k) => kept.push(k),
            Err((id, Left::Out)) => outcome.missed.push(id),
            Err((_, Left::Stale)) => outcome.stale = true,
        }
    }
    kept
}

/// Logs and drops a failed or stalled peer.
fn settle<T>(
    node: &Node,
    addr: &str,
    step: &str,
    r: Result<Result<T, ProtoError>, tokio::time::error::Elapsed>,
) -> Result<T, Left> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(ProtoError::Remote(e))) if e.code == ErrorCode::StaleEpoch => {
            warn!(peer = addr, step, error = %e, "a peer knows a newer epoch; this node's view is out of date");
            node.beat_now();
            Err(Left::Stale)
        }
        Ok(Err(e)) => {
            if e.is_connection() {
                node.pool.forget(addr);
            }
            warn!(peer = addr, step, error = %e, "replica left out of the write");
            Err(Left::Out)
        }
        Err(_) => {
            node.pool.forget(addr);
            warn!(peer = addr, step, "replica timed out; left out of the write");
            Err(Left::Out)
        }
    }
}

impl Outcome {
    /// Reports the members left out, then refuses if a peer knew a newer
    /// epoch (the mutation may stand here but not everywhere: the client
    /// asks the trackers again, and the true primary's write fixes this
    /// node's copy or takes it out of the group to catch up).
    pub async fn settle(self, node: &Node) -> Result<(), ProtoError> {
        node.report_missed(&self.missed).await;
        // A node the trackers no longer count active (it was frozen or cut
        // off while this write ran) must not acknowledge a write its peers
        // lack: the trackers ignore its report, and its own catch-up will
        // drop the blob. The client is refused and tries elsewhere.
        if !self.missed.is_empty() && !node.fully_active() {
            return Err(crate::error::refuse(
                ErrorCode::NotReady,
                "this node left its group's active set during the write; not acknowledged",
            ));
        }
        if self.stale {
            return Err(crate::error::refuse(
                ErrorCode::StaleEpoch,
                "this node's view of its group is out of date; ask the trackers again",
            ));
        }
        Ok(())
    }
}

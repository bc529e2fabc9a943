//! A peer's side of replication: applying what the originator forwards.

use cairn_proto::frame::{expect_frame, write_frame};
use cairn_proto::{BodyReader, Conn, ErrorCode, ProtoError, ReplicaCommit, ReplicaOp, Response};
use cairn_store::{Origin, Spool};

use crate::error::refuse;
use crate::mutate::apply_op;
use crate::node::{blocking, parse_id, Node};

fn stale(node: &Node, epoch: u64) -> Option<ProtoError> {
    let mine = node.view.epoch();
    (epoch < mine).then(|| refuse(ErrorCode::StaleEpoch, format!("request from epoch {epoch}, this node is at {mine}")))
}

/// Receives a body into a spool, makes it durable as soon as it ends, then
/// does what the commit frame says. The body and the commit frame are always
/// read whole, so the connection stays usable after a refusal.
pub async fn body(node: &Node, conn: &mut Conn, epoch: u64, store_path: u8) -> Result<(), ProtoError> {
    let mut failure = None;
    let mut spool: Option<Spool> = None;
    match node.store.spool(store_path) {
        Ok(s) => spool = Some(s),
        Err(e) => failure = Some(crate::error::remote(e)),
    }
    let mut body = BodyReader::new();
    while let Some(chunk) = body.next(conn).await? {
        if let Some(mut s) = spool.take() {
            // Small bodies stay in memory: no blocking thread for them.
            let written = if s.stays_in_memory(chunk.len()) {
                s.write(&chunk).map(|()| s).map_err(crate::error::remote)
            } else {
                blocking(move || s.write(&chunk).map(|()| s)).await
            };
            match written {
                Ok(s) => spool = Some(s),
                Err(e) => failure = Some(e),
            }
        }
    }
    let finished = match spool {
        Some(s) if failure.is_none() && s.stays_in_memory(0) => Some(s.finish().map_err(crate::error::remote)),
        Some(s) if failure.is_none() => Some(blocking(move || s.finish()).await),
        _ => None,
    };
    let spooled = match finished {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            failure = Some(e);
            None
        }
        None => None,
    };
    let commit: ReplicaCommit = expect_frame(conn).await?;
    // New blobs may come from any active member; only the primary orders
    // changes to existing ones, so only those must carry the current epoch.
    if matches!(commit, ReplicaCommit::Append { .. } | ReplicaCommit::Modify { .. }) {
        failure = failure.or_else(|| stale(node, epoch));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let Some(spooled) = spooled else {
        return Err(refuse(ErrorCode::Internal, "spool lost"));
    };
    let store = node.store.clone();
    match commit {
        ReplicaCommit::Create { file_id, info, meta } => {
            let id = parse_id(&file_id)?;
            blocking(move || store.create_as(spooled, &id, &info, meta, Origin::Replica)).await?;
        }
        ReplicaCommit::Append { file_id, at } => {
            let id = parse_id(&file_id)?;
            let r = blocking(move || store.append(&id, spooled, Some(at), Origin::Replica)).await.map(|_| ());
            behind_is_fine(node, &file_id, r)?;
        }
        ReplicaCommit::Modify { file_id, offset } => {
            let id = parse_id(&file_id)?;
            let r = blocking(move || store.modify(&id, offset, spooled, Origin::Replica)).await;
            behind_is_fine(node, &file_id, r)?;
        }
        ReplicaCommit::Abort => drop(spooled),
    }
    write_frame(conn, &Response::Ok).await
}

/// Applies a body-less mutation from the primary.
pub async fn op(node: &Node, conn: &mut Conn, epoch: u64, op: ReplicaOp) -> Result<(), ProtoError> {
    if let Some(e) = stale(node, epoch) {
        return Err(e);
    }
    let file_id = crate::mutate::op_file_id(&op).to_string();
    let r = match op {
        // Batched with the other deletes on this node: one binlog sync each batch.
        ReplicaOp::Delete { file_id } => node.deleter.delete(parse_id(&file_id)?, Origin::Replica, false).await,
        op => {
            let store = node.store.clone();
            blocking(move || apply_op(&store, op, Origin::Replica)).await
        }
    };
    behind_is_fine(node, &file_id, r)?;
    write_frame(conn, &Response::Ok).await
}

/// A member that is still catching up may not yet hold the blob a change
/// is for, or hold an older copy. That is not a missed write: it notes the
/// blob, and its catch-up copies it again from the primary (which applied
/// the change before forwarding it) before it reports itself caught up.
/// An active member must hold it: there the failure stands.
fn behind_is_fine(node: &Node, file_id: &str, r: Result<(), ProtoError>) -> Result<(), ProtoError> {
    match r {
        Err(ProtoError::Remote(e))
            if matches!(e.code, ErrorCode::NotFound | ErrorCode::OutOfSync) && !node.fully_active() =>
        {
            node.dirty.lock().unwrap_or_else(|p| p.into_inner()).insert(file_id.to_string());
            Ok(())
        }
        other => other,
    }
}

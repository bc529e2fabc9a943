//! Deletes and discards, on the group's primary: applied here and on every
//! member of the write set at the same time.
//!
//! Other mutations of an existing blob are applied here first and then
//! forwarded (`mutate.rs`); a delete need not wait for its own apply
//! before the peers start theirs. Each member makes its delete durable by
//! an fsync of its binlog (`cairn_store`'s `deletes.rs`, batched by the
//! node's delete thread, `deleter.rs`), so doing them one after the other
//! cost two fsyncs of latency per delete; side by side it costs one. The blob's order lock is held until every member answered, so
//! the mutations of one blob stay ordered as decision 0003 requires.

use cairn_proto::frame::write_frame;
use cairn_proto::{Conn, ErrorCode, FileId, ProtoError, ReplicaOp, Response};
use cairn_store::Origin;

use crate::node::{blocking, Node};
use crate::replicate::replicate_op;
use crate::view::Snapshot;

/// Deletes `id` here and on the write set. A `discard` succeeds where the
/// blob is absent (the tombstone is what matters); a delete of a blob this
/// node never held is refused before any peer hears of it.
pub(crate) async fn delete(
    node: &Node,
    conn: &mut Conn,
    view: &Snapshot,
    id: FileId,
    discard: bool,
) -> Result<(), ProtoError> {
    delete_here(node, view, id, discard).await?;
    write_frame(conn, &Response::Ok).await
}

/// [`delete`] without a connection to answer on (a front end in this
/// process): done once it returns `Ok`.
pub(crate) async fn delete_here(node: &Node, view: &Snapshot, id: FileId, discard: bool) -> Result<(), ProtoError> {
    let op = ReplicaOp::Delete { file_id: id.to_string() };
    // A packed blob is known from memory; a blob in files of its own
    // costs a `stat`, off the async threads.
    let here = discard || node.store.is_packed(&id) || {
        let (store, id) = (node.store.clone(), id.clone());
        blocking(move || Ok(store.contains_any(&id))).await?
    };
    if !here {
        // Applied here alone first, as other mutations are: it answers
        // "not found" (or why the ID is not this node's) without a peer
        // hearing of it.
        let store = node.store.clone();
        let local_id = id.clone();
        if let Err(e) = blocking(move || store.delete(&local_id, Origin::Local)).await {
            // A delete repeated after a primary died in the middle of it
            // (its client could not tell whether it was done) finds the
            // blob gone here, where the dead primary's forward arrived.
            // The tombstone says this group deleted it: the delete goes to
            // the write set again, so the members that forward never
            // reached drop it too, and the answer stays "not found" (a
            // second delete of a deleted file is refused, as FastDFS does;
            // the client that repeated its own takes that as done).
            let gone = matches!(&e, ProtoError::Remote(w) if w.code == ErrorCode::NotFound);
            if gone && node.store.was_deleted(&id) {
                let _ = replicate_op(node, view, op).await.settle(node).await;
            }
            return Err(e);
        }
        // It arrived between the check and the delete (a catch-up's copy).
        replicate_op(node, view, op).await.settle(node).await?;
        return Ok(());
    }
    let local = node.deleter.delete(id, Origin::Local, discard);
    let (applied, outcome) = tokio::join!(local, replicate_op(node, view, op));
    let settled = outcome.settle(node).await;
    // Not applied here (a disk error, or the blob went between the check
    // and the delete): the client is told and may repeat it; the peers'
    // deletes stand, as a delete never undone does.
    applied?;
    settled?;
    Ok(())
}

//! Mutations of existing blobs, on the group's primary.

use cairn_proto::frame::write_frame;
use cairn_proto::{Conn, ErrorCode, ProtoError, ReplicaCommit, ReplicaOp, Request, Response};
use cairn_store::Origin;

use crate::error::refuse;
use crate::node::{blocking, parse_id, Node};
use crate::replicate::replicate_op;
use crate::upload::{receive, refuse_body, ConnBody};

/// Delete, discard, truncate and set-metadata: apply here, then on every
/// member of the write set, holding the blob's order lock throughout
/// (deletes and discards: here and on the members at once, `delete.rs`).
pub async fn op(node: &Node, conn: &mut Conn, req: Request) -> Result<(), ProtoError> {
    let (view, _write) = node.begin_write()?;
    view.require_primary(node.id())?;
    let discard = matches!(req, Request::Discard { .. });
    let op = match req {
        Request::Delete { file_id } | Request::Discard { file_id } => {
            let id = parse_id(&file_id)?;
            let _order = node.order(&id).await;
            return crate::delete::delete(node, conn, &view, id, discard).await;
        }
        Request::Truncate { file_id, size } => ReplicaOp::Truncate { file_id, size },
        Request::SetMeta { file_id, meta, merge } => ReplicaOp::SetMeta { file_id, meta, merge },
        _ => unreachable!("dispatch sends only delete, discard, truncate and set-meta here"),
    };
    let id = parse_id(op_file_id(&op))?;
    let _order = node.order(&id).await;
    let store = node.store.clone();
    let local = op.clone();
    blocking(move || apply_op(&store, local, Origin::Local)).await?;
    replicate_op(node, &view, op).await.settle(node).await?;
    write_frame(conn, &Response::Ok).await
}

pub(crate) fn op_file_id(op: &ReplicaOp) -> &str {
    match op {
        ReplicaOp::Delete { file_id } | ReplicaOp::Truncate { file_id, .. } | ReplicaOp::SetMeta { file_id, .. } => {
            file_id
        }
    }
}

/// Applies a body-less mutation to the local store.
pub(crate) fn apply_op(store: &cairn_store::Store, op: ReplicaOp, origin: Origin) -> cairn_store::Result<()> {
    let parse = |s: &str| cairn_proto::FileId::parse(s).map_err(|e| cairn_store::Error::InvalidArgument(e.to_string()));
    match op {
        ReplicaOp::Delete { file_id } => store.delete(&parse(&file_id)?, origin),
        ReplicaOp::Truncate { file_id, size } => store.truncate(&parse(&file_id)?, size, origin),
        ReplicaOp::SetMeta { file_id, meta, merge } => {
            check_meta(&meta)?;
            store.set_meta(&parse(&file_id)?, meta, merge, origin)
        }
    }
}

/// Bounds on metadata, as FastDFS has them: names up to 64 bytes, values up
/// to 256, and no separator characters that its wire format uses.
fn check_meta(meta: &[(String, String)]) -> cairn_store::Result<()> {
    for (k, v) in meta {
        if k.is_empty() || k.len() > 64 || v.len() > 256 || k.contains(['\x01', '\x02']) || v.contains(['\x01', '\x02'])
        {
            return Err(cairn_store::Error::InvalidArgument(format!(
                "bad metadata pair {k:?}: names are 1-64 bytes, values at most 256, without \\x01 or \\x02"
            )));
        }
    }
    Ok(())
}

/// Append to an appender blob.
pub async fn append(node: &Node, conn: &mut Conn, file_id: &str) -> Result<(), ProtoError> {
    body_op(node, conn, file_id, None).await
}

/// Overwrite part of an appender blob.
pub async fn modify(node: &Node, conn: &mut Conn, file_id: &str, offset: u64) -> Result<(), ProtoError> {
    body_op(node, conn, file_id, Some(offset)).await
}

async fn body_op(node: &Node, conn: &mut Conn, file_id: &str, modify_at: Option<u64>) -> Result<(), ProtoError> {
    let prep = node.begin_write().and_then(|(view, guard)| {
        view.require_primary(node.id())?;
        Ok((view, guard, parse_id(file_id)?))
    });
    let (view, _write, id) = match prep {
        Ok(p) => p,
        Err(e) => return Err(refuse_body(conn, e).await),
    };
    let (spooled, replicas) = receive(node, &mut ConnBody::new(conn), &view, id.store_path()).await?;
    let _order = node.order(&id).await;
    let store = node.store.clone();
    let local_id = id.clone();
    let applied = blocking(move || match modify_at {
        None => store.append(&local_id, spooled, None, Origin::Local),
        Some(offset) => store.modify(&local_id, offset, spooled, Origin::Local).map(|()| offset),
    })
    .await;
    match applied {
        Ok(at) => {
            let commit = match modify_at {
                None => ReplicaCommit::Append { file_id: id.to_string(), at },
                Some(offset) => ReplicaCommit::Modify { file_id: id.to_string(), offset },
            };
            match replicas.commit(&commit).await.settle(node).await {
                Ok(()) => write_frame(conn, &Response::Ok).await,
                // Applied here, and on the peers that took it, yet refused
                // (this node's view turned out stale, or it left the active
                // set): a client taking that for "not applied" would append
                // again on the true primary, and the bytes would be there
                // twice. A modify is idempotent and keeps the plain refusal.
                Err(e) if modify_at.is_none() => Err(refuse(
                    ErrorCode::Uncertain,
                    format!("the append was applied on this node but not acknowledged ({e}); not safe to repeat"),
                )),
                Err(e) => Err(e),
            }
        }
        Err(e) => {
            replicas.abort();
            Err(e)
        }
    }
}

//! Uploads on the member a client chose, and the body intake shared with
//! appends and modifications.

use std::future::Future;

use bytes::Bytes;
use cairn_proto::file_id::validate_ext;
use cairn_proto::frame::write_frame;
use cairn_proto::{BodyReader, Conn, ErrorCode, FileId, ProtoError, ReplicaCommit, ReplicaOp, Request, Response};
use cairn_store::{Origin, Spool, Spooled};
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::error::refuse;
use crate::node::{blocking, joined, parse_id, Node};
use crate::replicate::{replicate_op, ReplicaSet};
use crate::view::Snapshot;

/// Reads what is left of a request's body so the connection stays usable,
/// then returns the error that refused the request.
pub(crate) async fn refuse_body(conn: &mut Conn, err: ProtoError) -> ProtoError {
    ConnBody::new(conn).refuse(err).await
}

/// Where a body's bytes come from: a native connection's chunked body, or
/// a stream of chunks from a front end in this process.
pub(crate) trait BodySource: Send {
    /// The next chunk, or `None` once the body has ended.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, ProtoError>> + Send;
    /// Takes what is left of the body, so that its sender can go on, then
    /// gives back `err`, the reason it was refused.
    fn refuse(&mut self, err: ProtoError) -> impl Future<Output = ProtoError> + Send;
}

/// The body that follows a request on a native connection.
pub(crate) struct ConnBody<'c> {
    conn: &'c mut Conn,
    reader: BodyReader,
}

impl<'c> ConnBody<'c> {
    pub(crate) fn new(conn: &'c mut Conn) -> Self {
        Self { conn, reader: BodyReader::new() }
    }
}

impl BodySource for ConnBody<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ProtoError> {
        self.reader.next(self.conn).await
    }

    async fn refuse(&mut self, err: ProtoError) -> ProtoError {
        match self.reader.drain(self.conn).await {
            Ok(()) => err,
            Err(broken) => broken,
        }
    }
}

/// A body handed over in chunks by a front end in this process. Its error
/// means the front end's own client stopped sending: the upload is
/// abandoned, as a native client's abort is. What is left of it is the
/// front end's to skip.
pub(crate) struct StreamBody(pub(crate) BoxStream<'static, std::io::Result<Bytes>>);

impl BodySource for StreamBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ProtoError> {
        match self.0.next().await {
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(_)) => Err(ProtoError::BodyAborted),
            None => Ok(None),
        }
    }

    async fn refuse(&mut self, err: ProtoError) -> ProtoError {
        err
    }
}

/// Takes a body from the client into a local spool on `store_path` while
/// streaming it to the group's other active members.
pub(crate) async fn receive<'a>(
    node: &'a Node,
    body: &mut impl BodySource,
    view: &Snapshot,
    store_path: u8,
) -> Result<(Spooled, ReplicaSet<'a>), ProtoError> {
    // Making a spool does no I/O (a file is made only once the body
    // outgrows memory).
    let spool = match node.store.spool(store_path) {
        Ok(s) => s,
        Err(e) => return Err(body.refuse(crate::error::remote(e)).await),
    };
    let mut replicas = ReplicaSet::open(node, view, Request::ReplicaBody { epoch: view.epoch, store_path }).await;
    let mut spool: Option<Spool> = Some(spool);
    let mut failure: Option<ProtoError> = None;
    loop {
        let chunk = match body.next_chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(ProtoError::BodyAborted) => {
                replicas.abort();
                return Err(refuse(ErrorCode::InvalidArgument, "the client aborted the upload"));
            }
            Err(e) => {
                replicas.abort();
                return Err(e);
            }
        };
        let Some(mut s) = spool.take() else { continue };
        let local = if s.stays_in_memory(chunk.len()) {
            let written = s.write(&chunk).map(|()| s).map_err(crate::error::remote);
            replicas.send_chunk(&chunk, false).await;
            written
        } else {
            let local_chunk = chunk.clone();
            let local = blocking(move || s.write(&local_chunk).map(|()| s));
            let (local, ()) = tokio::join!(local, replicas.send_chunk(&chunk, true));
            local
        };
        match local {
            Ok(s) => spool = Some(s),
            Err(e) => failure = Some(e),
        }
    }
    let spool = match (spool, failure) {
        (Some(s), None) => s,
        (_, failure) => {
            replicas.abort();
            return Err(failure.unwrap_or_else(|| refuse(ErrorCode::Internal, "spool lost")));
        }
    };
    let (spooled, ()) = if spool.stays_in_memory(0) {
        let spooled = spool.finish().map_err(crate::error::remote);
        replicas.end_body(false).await;
        (spooled, ())
    } else {
        tokio::join!(blocking(move || spool.finish()), replicas.end_body(true))
    };
    match spooled {
        Ok(s) => Ok((s, replicas)),
        Err(e) => {
            replicas.abort();
            Err(e)
        }
    }
}

/// A new blob with a fresh name, answered with its ID.
pub async fn upload(
    node: &Node,
    conn: &mut Conn,
    appender: bool,
    ext: String,
    store_path: Option<u8>,
) -> Result<(), ProtoError> {
    let id = upload_from(node, &mut ConnBody::new(conn), appender, ext, store_path).await?;
    write_frame(conn, &Response::FileId(id.to_string())).await
}

/// A new blob with a fresh name, from any body: its ID once every active
/// member of the group has it on disk.
pub(crate) async fn upload_from(
    node: &Node,
    body: &mut impl BodySource,
    appender: bool,
    ext: String,
    store_path: Option<u8>,
) -> Result<FileId, ProtoError> {
    let prep = node.begin_write().and_then(|(view, guard)| {
        validate_ext(&ext).map_err(|r| refuse(ErrorCode::InvalidArgument, r))?;
        let sp = node.store.choose_path(store_path).map_err(crate::error::remote)?;
        Ok((view, guard, sp))
    });
    let (view, _write, sp) = match prep {
        Ok(p) => p,
        Err(e) => return Err(body.refuse(e).await),
    };
    let (spooled, replicas) = receive(node, body, &view, sp).await?;
    // Naming and writing are one task on a blocking thread, which hands the
    // name back as soon as it is taken: the peers commit while this node
    // does, and a small upload pays one hand-off to the blocking pool, not
    // two (on two cores each hand-off is a thread wake-up on the hot path).
    let store = node.store.clone();
    let (named_tx, named_rx) = tokio::sync::oneshot::channel();
    let local = tokio::task::spawn_blocking(move || {
        let reserved = store.reserve(spooled, &ext, appender, vec![])?;
        let _ = named_tx.send((reserved.id().clone(), reserved.record().info()));
        store.commit(reserved)
    });
    let local = joined(local);
    let Ok((id, info)) = named_rx.await else {
        // The task ended without a name: it could not reserve one.
        replicas.abort();
        return Err(match local.await {
            Err(e) => e,
            Ok(_) => refuse(ErrorCode::Internal, "an upload was written without a name"),
        });
    };
    let commit = ReplicaCommit::Create { file_id: id.to_string(), info, meta: vec![] };
    let (local, outcome) = tokio::join!(local, replicas.commit(&commit));
    match local {
        Ok(_) => {
            outcome.settle(node).await?;
            Ok(id)
        }
        Err(e) => {
            // Peers may hold a blob this node could not keep: take it back.
            let _ = outcome.settle(node).await;
            let _ = replicate_op(node, &view, ReplicaOp::Delete { file_id: id.to_string() }).await.settle(node).await;
            Err(e)
        }
    }
}

/// A slave file: named from its master, stored beside it.
pub async fn upload_slave(
    node: &Node,
    conn: &mut Conn,
    master: String,
    prefix: String,
    ext: String,
) -> Result<(), ProtoError> {
    let slave = upload_slave_from(node, &mut ConnBody::new(conn), &master, &prefix, &ext).await?;
    write_frame(conn, &Response::FileId(slave.to_string())).await
}

/// A slave file of `master` (this group's; it must exist here) from any
/// body: its ID, the master's name with `prefix` and `ext`, once every
/// active member of the group has it on disk. A name already taken is
/// refused before the body is read.
pub(crate) async fn upload_slave_from(
    node: &Node,
    body: &mut impl BodySource,
    master: &str,
    prefix: &str,
    ext: &str,
) -> Result<FileId, ProtoError> {
    let prep = node.begin_write().and_then(|(view, guard)| {
        let master = parse_id(master)?;
        let slave = master.slave(prefix, ext).map_err(|e| refuse(ErrorCode::InvalidArgument, e.to_string()))?;
        Ok((view, guard, master, slave))
    });
    let (view, _write, master, slave) = match prep {
        Ok(p) => p,
        Err(e) => return Err(body.refuse(e).await),
    };
    let store = node.store.clone();
    if let Err(e) = blocking(move || store.record(&master).map(|_| ())).await {
        return Err(body.refuse(e).await);
    }
    if node.store.contains(&slave) {
        return Err(body.refuse(refuse(ErrorCode::Exists, format!("slave file {slave} already exists"))).await);
    }
    let (spooled, replicas) = receive(node, body, &view, slave.store_path()).await?;
    let info = cairn_proto::BlobInfo {
        size: spooled.size,
        crc32: spooled.crc32,
        created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        source_node: node.id(),
        appender: false,
    };
    let store = node.store.clone();
    let (id, inf) = (slave.clone(), info.clone());
    match blocking(move || store.create_as(spooled, &id, &inf, vec![], Origin::Local)).await {
        Ok(()) => {
            replicas
                .commit(&ReplicaCommit::Create { file_id: slave.to_string(), info, meta: vec![] })
                .await
                .settle(node)
                .await?;
            Ok(slave)
        }
        Err(e) => {
            replicas.abort();
            Err(e)
        }
    }
}

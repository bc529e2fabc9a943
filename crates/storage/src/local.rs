//! The node as a front end that runs in the same process (the FastDFS
//! storage listener) reaches it: without a hop over loopback to the node
//! and a copy through the front end. FastDFS serves a download from the
//! disk of the node the client asked, and stores an upload there, and so
//! does this.
//!
//! - Reads come from the verified reader, as HTTP downloads' do, so a
//!   damaged block is never sent, and its repair is queued.
//! - Uploads and slave uploads take the path a native one to this node
//!   takes: spooled here while streamed to the group's other active
//!   members, answered once every one of them has the blob on disk.
//! - Deletes on the primary take the path of a native delete to it.

use std::sync::{Arc, OnceLock, Weak};

use cairn_proto::{ErrorCode, FileId, ProtoError};
use futures::stream::BoxStream;
use futures::StreamExt;
use tracing::warn;

use crate::node::Node;
use crate::upload::StreamBody;

/// A handle on the node for front ends beside it; it answers once the
/// node runs (`run` binds it), and sends callers to the cluster before
/// that.
#[derive(Clone, Default)]
pub struct LocalNode {
    node: Arc<OnceLock<Weak<Node>>>,
}

/// An opened local read: its length, then its verified bytes.
pub struct LocalRead {
    /// Bytes the read will yield, fixed at opening (an appender blob may
    /// grow meanwhile; the read does not follow it).
    pub len: u64,
    /// The bytes, in chunks. An error ends it early: the caller has the
    /// rest read from another member.
    pub chunks: BoxStream<'static, std::io::Result<bytes::Bytes>>,
}

impl LocalNode {
    pub(crate) fn bind(&self, node: &Arc<Node>) {
        let _ = self.node.set(Arc::downgrade(node));
    }

    /// `[offset, offset + length)` of `id` (to its end without a length),
    /// if this node is an active member of its group and holds the blob
    /// whole and undamaged where the read starts. `None` sends the caller to
    /// the cluster, which knows how to answer everything else (a missing
    /// file, an offset past the end, a member that is catching up).
    pub async fn open(&self, id: &FileId, offset: u64, length: Option<u64>) -> Option<LocalRead> {
        let node = self.node.get()?.upgrade()?;
        // A member that is catching up may hold an older appender blob.
        node.ready().ok()?;
        let store = node.store.clone();
        let rid = id.clone();
        // The open and the first chunk in one trip to a blocking thread: a
        // small file is then sent from memory without a second one.
        let opened = tokio::task::spawn_blocking(move || {
            let mut reader = store.read(&rid, offset, length)?;
            let len = reader.remaining();
            let first = reader.next_chunk()?;
            Ok::<_, cairn_store::Error>((reader, len, first))
        })
        .await
        .ok()?;
        let (reader, len, first) = match opened {
            Ok(o) => o,
            Err(e) => {
                crate::read::damaged(&node, id, &e);
                return None;
            }
        };
        let first = futures::stream::iter(first.map(|c| Ok(c.into_bytes())));
        if reader.remaining() == 0 {
            return Some(LocalRead { len, chunks: first.boxed() });
        }
        Some(LocalRead { len, chunks: first.chain(verified_chunks(node, id.clone(), reader)).boxed() })
    }

    /// Whether [`LocalNode::upload`] would take an upload now: the node
    /// runs here and is an active member of its group. Asked before the
    /// body is read, so that a caller told no can still send it through
    /// the cluster.
    pub fn takes_uploads(&self) -> bool {
        self.node.get().and_then(Weak::upgrade).is_some_and(|n| n.ready().is_ok())
    }

    /// Stores `body` as a new blob (an appender blob if `appender`) with
    /// extension `ext`, here and on every other active member of the
    /// group, as a native upload to this node does; its ID once all have
    /// it on disk. A body that ends in an error is not stored.
    pub async fn upload(
        &self,
        appender: bool,
        ext: String,
        body: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> Result<FileId, ProtoError> {
        let node = self.running()?;
        let _load = node.busy();
        crate::upload::upload_from(&node, &mut StreamBody(body), appender, ext, None).await
    }

    /// Stores `body` as the slave file of `master` named with `prefix` and
    /// `ext` (a thumbnail beside its photo), here and on every other active
    /// member, as a native slave upload to this node does; its ID once all
    /// have it on disk. The master must be on this node.
    pub async fn upload_slave(
        &self,
        master: &FileId,
        prefix: &str,
        ext: &str,
        body: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> Result<FileId, ProtoError> {
        let node = self.running()?;
        let _load = node.busy();
        crate::upload::upload_slave_from(&node, &mut StreamBody(body), &master.to_string(), prefix, ext).await
    }

    /// Deletes `id` from the group, as a native delete to this node does
    /// (here and on every other member at once, durable on each before the
    /// answer), if this node is the group's primary and ready; `None` sends
    /// the caller to the cluster. A FastDFS client is sent to the primary
    /// for a delete, so its delete costs no hop over loopback.
    pub async fn delete(&self, id: &FileId) -> Option<Result<(), ProtoError>> {
        let node = self.node.get()?.upgrade()?;
        let (view, _write) = node.begin_write().ok()?;
        view.require_primary(node.id()).ok()?;
        let _load = node.busy();
        let _order = node.order(id).await;
        Some(crate::delete::delete_here(&node, &view, id.clone(), false).await)
    }

    fn running(&self) -> Result<Arc<Node>, ProtoError> {
        self.node
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| crate::error::refuse(ErrorCode::NotReady, "the storage node is not running"))
    }
}

/// Verified chunks, read ahead on a blocking thread, for HTTP downloads and
/// local reads. A bad block ends the stream with an error (the reader sees
/// a cut transfer, never bad bytes) and queues a repair.
pub(crate) fn verified_chunks(
    node: Arc<Node>,
    id: FileId,
    mut reader: cairn_store::BlobReader,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || loop {
        let item = reader.next_chunk();
        let last = !matches!(item, Ok(Some(_)));
        if tx.blocking_send(item).is_err() || last {
            return;
        }
    });
    futures::stream::unfold((rx, node, id), |(mut rx, node, id)| async move {
        match rx.recv().await? {
            Ok(Some(chunk)) => Some((Ok(chunk.into_bytes()), (rx, node, id))),
            Ok(None) => None,
            Err(e) => {
                warn!(file_id = %id, error = %e, "a read of this node's copy found a damaged block");
                crate::read::damaged(&node, &id, &e);
                Some((Err(std::io::Error::other(e.to_string())), (rx, node, id)))
            }
        }
    })
}

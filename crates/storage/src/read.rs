//! Reads: downloads, file info, metadata. Reads need no tracker, so a node
//! keeps serving them while every tracker is down.

use cairn_proto::frame::{write_body_abort, write_body_end, write_chunk, write_frame};
use cairn_proto::{Conn, ProtoError, Response};
use tokio::io::AsyncWriteExt;
use tracing::error;

use crate::error::wire;
use crate::node::{blocking, parse_id, Node};

/// Chunks read ahead of the socket during a download.
const READ_AHEAD: usize = 4;

/// Streams a verified range of a blob. A checksum failure midway aborts the
/// body and sends the error, so the client never takes bad bytes for good
/// ones and can go to another member.
pub async fn download(
    node: &Node,
    conn: &mut Conn,
    file_id: &str,
    offset: u64,
    length: Option<u64>,
) -> Result<(), ProtoError> {
    let id = parse_id(file_id)?;
    let store = node.store.clone();
    let read_id = id.clone();
    // The first chunk is read with the opening, on the same blocking
    // thread: a small read (most are) then needs no streaming task.
    let (reader, first) = blocking(move || {
        store.read(&read_id, offset, length).map(|mut r| {
            let first = r.next_chunk();
            (r, first)
        })
    })
    .await?;
    let first = match first {
        Ok(chunk) => chunk,
        Err(e) => {
            // Nothing sent yet: a plain error, and the client asks another member.
            damaged(node, &id, &e);
            return Err(crate::error::remote(e));
        }
    };
    write_frame(conn, &Response::Data { length: reader.remaining() + first.as_ref().map_or(0, |c| c.len() as u64) })
        .await?;
    if let Some(chunk) = first {
        write_chunk(conn, &chunk).await?;
    }
    if reader.remaining() == 0 {
        return write_body_end(conn).await;
    }
    stream(node, conn, id, reader).await
}

/// Queues a repair of a blob whose read found it damaged.
pub(crate) fn damaged(node: &Node, id: &cairn_proto::FileId, e: &cairn_store::Error) {
    if matches!(e, cairn_store::Error::ChecksumMismatch { .. } | cairn_store::Error::CorruptRecord { .. }) {
        if let Some(me) = node.arc() {
            crate::scrub::queue_repair(&me, id.clone());
        }
    }
}

/// A whole blob with its record, for a peer's catch-up or repair.
pub async fn fetch_blob(node: &Node, conn: &mut Conn, file_id: &str) -> Result<(), ProtoError> {
    let id = parse_id(file_id)?;
    let store = node.store.clone();
    let read_id = id.clone();
    let reader = blocking(move || store.read(&read_id, 0, None)).await?;
    let rec = reader.record();
    write_frame(conn, &Response::Blob { info: rec.info(), meta: rec.meta.clone() }).await?;
    stream(node, conn, id, reader).await
}

/// Streams a reader as a body, reading ahead on a blocking thread.
async fn stream(
    node: &Node,
    conn: &mut Conn,
    id: cairn_proto::FileId,
    mut reader: cairn_store::BlobReader,
) -> Result<(), ProtoError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || loop {
        let item = reader.next_chunk();
        let last = !matches!(item, Ok(Some(_)));
        if tx.blocking_send(item).is_err() || last {
            return;
        }
    });
    while let Some(item) = rx.recv().await {
        match item {
            Ok(Some(chunk)) => write_chunk(conn, &chunk).await?,
            Ok(None) => break,
            Err(e) => {
                error!(file_id = %id, error = %e, "read failed; download aborted");
                damaged(node, &id, &e);
                write_body_abort(conn).await?;
                write_frame(conn, &Response::Error(wire(e))).await?;
                conn.flush().await?;
                return Ok(());
            }
        }
    }
    write_body_end(conn).await
}

/// Size, CRC32, creation facts.
pub async fn file_info(node: &Node, conn: &mut Conn, file_id: &str) -> Result<(), ProtoError> {
    let id = parse_id(file_id)?;
    let store = node.store.clone();
    let rec = blocking(move || store.record(&id)).await?;
    write_frame(conn, &Response::Info(rec.info())).await
}

/// Metadata pairs, sorted by key.
pub async fn get_meta(node: &Node, conn: &mut Conn, file_id: &str) -> Result<(), ProtoError> {
    let id = parse_id(file_id)?;
    let store = node.store.clone();
    let rec = blocking(move || store.record(&id)).await?;
    write_frame(conn, &Response::Meta(rec.meta)).await
}
